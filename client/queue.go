package client

import (
	"sync"

	"github.com/qqchat/qq/daemon/protocol"
)

// msgQueue is an unbounded FIFO of pushes between the reader goroutine,
// which must never block on a consumer, and the pump feeding Messages.
type msgQueue struct {
	mu     sync.Mutex
	items  []protocol.Message
	head   int  // items[head:] are queued
	ended  bool // no more pushes will come
	signal chan struct{}
}

// shrinkCap is the capacity above which a drained queue frees its array.
const shrinkCap = 1024

func (q *msgQueue) push(m protocol.Message) {
	q.mu.Lock()
	q.items = append(q.items, m)
	q.mu.Unlock()
	q.notify()
}

func (q *msgQueue) end() {
	q.mu.Lock()
	q.ended = true
	q.mu.Unlock()
	q.notify()
}

func (q *msgQueue) notify() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pop takes the oldest message. ok is false when the queue is empty; ended
// then reports whether it will stay empty.
func (q *msgQueue) pop() (m protocol.Message, ok, ended bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return protocol.Message{}, false, q.ended
	}
	m = q.items[q.head]
	q.items[q.head] = protocol.Message{}
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
