package client

import "sync"

// queue is an unbounded FIFO of pushes between the reader goroutine,
// which must never block on a consumer, and the pump feeding Messages (or
// Events).
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	head   int  // items[head:] are queued
	ended  bool // no more pushes will come
	signal chan struct{}
}

// shrinkCap is the capacity above which a drained queue frees its array.
const shrinkCap = 1024

func (q *queue[T]) push(m T) {
	q.mu.Lock()
	q.items = append(q.items, m)
	q.mu.Unlock()
	q.notify()
}

func (q *queue[T]) end() {
	q.mu.Lock()
	q.ended = true
	q.mu.Unlock()
	q.notify()
}

func (q *queue[T]) notify() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pop takes the oldest item. ok is false when the queue is empty; ended
// then reports whether it will stay empty.
func (q *queue[T]) pop() (m T, ok, ended bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return m, false, q.ended
	}
	m = q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	switch {
	case q.head == len(q.items):
		if cap(q.items) > shrinkCap {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
		q.head = 0
	case q.head >= shrinkCap && q.head*2 >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	return m, true, false
}

// pump moves items from q to out until q has ended and is drained, or
// closed is closed; then it closes out.
func pump[T any](q *queue[T], out chan<- T, closed <-chan struct{}) {
	defer close(out)
	for {
		m, ok, ended := q.pop()
		if ok {
			select {
			case out <- m:
				continue
			case <-closed:
				return
			}
		}
		if ended {
			return
		}
		select {
		case <-q.signal:
		case <-closed:
			return
		}
	}
}
