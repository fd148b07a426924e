package presence

import (
	"sync"
	"time"
)

// Typing tracks who is typing to whom, so that a start with no stop is
// ended by the server: expire after the last start, the stop function is
// called (from a timer goroutine, holding no lock). Memory: one timer per
// (from, to) pair typing now, which the callers' rate limit bounds.
type Typing struct {
	expire time.Duration
	stop   func(from, to string)

	mu     sync.Mutex
	active map[[2]string]*typingTimer
}

// typingTimer is a pair's expiry; its identity tells the timer whether it
// is still the current one.
type typingTimer struct{ t *time.Timer }

// NewTyping returns a Typing that calls stop for a start not followed by
// a stop or another start within expire.
func NewTyping(expire time.Duration, stop func(from, to string)) *Typing {
	return &Typing{expire: expire, stop: stop, active: make(map[[2]string]*typingTimer)}
}

// Start records that from types to to (again), and reports whether this
// begins typing (false: it only extends a start already pushed).
func (t *Typing) Start(from, to string) (begins bool) {
	k := [2]string{from, to}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tm := t.active[k]; tm != nil {
		tm.t.Reset(t.expire)
		return false
	}
	tm := &typingTimer{}
	t.active[k] = tm
	tm.t = time.AfterFunc(t.expire, func() {
		t.mu.Lock()
		if t.active[k] != tm {
			t.mu.Unlock()
			return
		}
		delete(t.active, k)
		t.mu.Unlock()
		t.stop(from, to)
	})
	return true
}

// Stop records that from stopped typing to to, and reports whether from
// was typing (false: nothing to push).
func (t *Typing) Stop(from, to string) (was bool) {
	k := [2]string{from, to}
	t.mu.Lock()
	defer t.mu.Unlock()
	tm := t.active[k]
	if tm == nil {
		return false
	}
	tm.t.Stop()
	delete(t.active, k)
	return true
}

// Len returns how many pairs are typing.
func (t *Typing) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.active)
}
