package antispam

import "math"

// maxBodiesPerSender bounds the distinct bodies tracked per sender for the
// repeat rule.
const maxBodiesPerSender = 64

// ring keeps the timestamps of the latest accepted messages of one window,
// at most as many as the window's limit: if all of them are in the window,
// the limit is reached.
type ring struct {
	ts   []int64
	next int // where the next timestamp goes once ts is full
}

// countAfter returns how many timestamps are later than cutoff.
func (r *ring) countAfter(cutoff int64) int {
	n := 0
	for _, t := range r.ts {
		if t > cutoff {
			n++
		}
	}
	return n
}

// latest returns the largest timestamp, or the smallest int64 when empty.
func (r *ring) latest() int64 {
	m := int64(math.MinInt64)
	for _, t := range r.ts {
		m = max(m, t)
	}
	return m
}

// add records ts, replacing the oldest entry when size are kept.
func (r *ring) add(ts int64, size int) {
	if len(r.ts) < size {
		r.ts = append(r.ts, ts)
		return
	}
	r.ts[r.next] = ts
	r.next = (r.next + 1) % size
}

// sender is the state of one sender, a node of the LRU list.
type sender struct {
	key        string
	prev, next *sender
	last       int64 // largest TS of any message, accepted or not

	flood  ring
	links  ring
	bodies map[uint64]*bodyState // by body hash
}

// bodyState tracks one body (by hash) of one sender for the repeat rule.
type bodyState struct {
	last   int64            // largest TS of an accepted message with it
	recips map[uint64]*ring // by recipient hash: accepted TS to them
}

// prune forgets the recipients with no message later than cutoff.
func (b *bodyState) prune(cutoff int64) {
	for k, r := range b.recips {
		if r.latest() <= cutoff {
			delete(b.recips, k)
		}
	}
}

// body returns the state of body hash h, creating it, and making room by
// forgetting expired bodies (last <= cutoff) or else the least recently
// sent one.
func (s *sender) body(h uint64, cutoff int64) *bodyState {
	if b := s.bodies[h]; b != nil {
		return b
	}
	if s.bodies == nil {
		s.bodies = make(map[uint64]*bodyState)
	}
	if len(s.bodies) >= maxBodiesPerSender {
		oldest, oldestKey := int64(math.MaxInt64), uint64(0)
		for k, b := range s.bodies {
			if b.last <= cutoff {
				delete(s.bodies, k)
			} else if b.last < oldest {
				oldest, oldestKey = b.last, k
			}
		}
		if len(s.bodies) >= maxBodiesPerSender {
			delete(s.bodies, oldestKey)
		}
	}
	b := &bodyState{recips: make(map[uint64]*ring)}
	s.bodies[h] = b
	return b
}

// lru is a list of senders, most recently active first, with a map by key.
// The zero value is not usable; use init.
type lru struct {
	root    sender // sentinel: root.next is the most recent, root.prev the least
	senders map[string]*sender
}

func (l *lru) init() {
	l.root.next, l.root.prev = &l.root, &l.root
	l.senders = make(map[string]*sender)
}

func (l *lru) len() int { return len(l.senders) }

func (l *lru) unlink(s *sender) {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

func (l *lru) pushFront(s *sender) {
	s.prev, s.next = &l.root, l.root.next
	l.root.next.prev = s
	l.root.next = s
}

// oldest returns the least recently active sender, or nil.
func (l *lru) oldest() *sender {
	if l.root.prev == &l.root {
		return nil
	}
	return l.root.prev
}

func (l *lru) remove(s *sender) {
	l.unlink(s)
	delete(l.senders, s.key)
}

// touch returns the sender for key, created if needed, as the most recently
// active one, evicting the least recently active senders beyond capacity.
func (l *lru) touch(key string, capacity int) *sender {
	if s := l.senders[key]; s != nil {
		l.unlink(s)
		l.pushFront(s)
		return s
	}
	for len(l.senders) >= capacity {
		l.remove(l.oldest())
	}
	s := &sender{key: key, last: math.MinInt64}
	l.senders[key] = s
	l.pushFront(s)
	return s
}
