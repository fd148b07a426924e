package limit

import (
	"sync"
	"time"
)

// Pending enforces limits.max_pending_per_user (each recipient's
// undelivered messages) without a storage call per send.
//
// For each recipient it keeps bound, an upper bound of the messages
// committed and pending for them, and inflight, the messages admitted to a
// write whose outcome is not known yet. A new message is admitted while
// bound+inflight < max; admitting counts it in inflight, and Settle moves
// it to bound once committed (or drops it, if it was not stored).
//
// bound is seeded from the storage's pending count (the count function
// given to Admit) the first time a recipient is seen, and seeded again
// only when the cap would refuse a message and either the recipient acked
// since the last seed (Acked) or that seed is older than ReseedAfter: acks
// only lower the true count, so a stale bound is still an upper bound, and
// only matters near the cap. A seed is made exact against writes that
// settle while it runs: the messages moved to bound meanwhile are added to
// it; ones committed before the count and moved after are counted twice,
// which refuses early, never late.
//
// Cost: one count per recipient first seen (per process, or after its
// entry was dropped), and one per refused message at most every
// ReseedAfter, or after each ack by a recipient who is at the cap. Memory:
// an entry per recipient seen; past MaxPendingEntries, entries with
// nothing in flight are dropped (they are seeded again when needed).
//
// Admit and Prune are called from one goroutine (the pipeline's store
// stage); Settle and Acked may run concurrently with them.
type Pending struct {
	max int64
	mu  sync.Mutex
	m   map[string]*pendingEntry
}

type pendingEntry struct {
	bound    int64
	inflight int64
	added    int64 // messages moved to bound, ever
	seeded   bool
	seededAt time.Time
	dirty    bool // an ack by this user committed since the last seed
}

// Bounds of Pending.
const (
	MaxPendingEntries = 100_000
	ReseedAfter       = 30 * time.Second
)

// NewPending returns a cap of max undelivered messages per recipient.
func NewPending(max int) *Pending {
	return &Pending{max: int64(max), m: make(map[string]*pendingEntry)}
}

func (c *Pending) entryLocked(user string) *pendingEntry {
	e := c.m[user]
	if e == nil {
		e = &pendingEntry{}
		c.m[user] = e
	}
	return e
}

// Admit decides whether user can take one more message, and if so counts
// it as in flight: the caller must Settle it. count reads user's pending
// messages from storage; Admit calls it only when the bound needs a seed.
// When count fails the message is admitted (the limit guards against
// abuse, and a storage that cannot count will most likely fail the write
// too, which answers for itself) and the error is returned for logging.
func (c *Pending) Admit(user string, count func(user string) (int64, error)) (admitted bool, err error) {
	c.mu.Lock()
	e := c.entryLocked(user)
	need := !e.seeded || e.bound+e.inflight >= c.max && (e.dirty || time.Since(e.seededAt) >= ReseedAfter)
	c.mu.Unlock()
	if need {
		if err := c.seed(user, count); err != nil {
			c.mu.Lock()
			c.entryLocked(user).inflight++
			c.mu.Unlock()
			return true, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.entryLocked(user)
	if e.seeded && e.bound+e.inflight < c.max {
		e.inflight++
		return true, nil
	}
	return false, nil
}

// seed sets user's bound from the storage.
func (c *Pending) seed(user string, count func(string) (int64, error)) error {
	c.mu.Lock()
	e := c.entryLocked(user)
	added := e.added
	e.dirty = false
	c.mu.Unlock()

	n, err := count(user)

	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.entryLocked(user) // not dropped: only Prune drops, in Admit's goroutine
	if err != nil {
		e.dirty = true
		return err
	}
	e.bound = n + (e.added - added)
	e.seeded = true
	e.seededAt = time.Now()
	return nil
}

// Prune drops entries with nothing in flight once there are more than
// MaxPendingEntries, down to three quarters of it.
func (c *Pending) Prune() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) <= MaxPendingEntries {
		return
	}
	for u, e := range c.m {
		if len(c.m) <= MaxPendingEntries*3/4 {
			break
		}
		if e.inflight == 0 {
			delete(c.m, u)
		}
	}
}

// Outcome is what became of an admitted message.
type Outcome uint8

// Outcomes of an admitted message.
const (
	// NotStored: the message was not stored (refused by storage, or a
	// duplicate of a stored one).
	NotStored Outcome = iota
	// Stored: the message was committed and is pending.
	Stored
	// MaybeStored: the write failed and may have committed it; it is
	// counted, and the count is read again when it matters.
	MaybeStored
)

// Settle accounts for an admitted message to user once its write's
// outcome is known.
func (c *Pending) Settle(user string, o Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entryLocked(user)
	e.inflight--
	switch o {
	case Stored:
		e.bound++
		e.added++
	case MaybeStored:
		e.bound++
		e.added++
		e.dirty = true
	}
}

// Acked marks user's bound stale after an ack by user committed: it is
// seeded again before it refuses a message.
func (c *Pending) Acked(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[user]; e != nil {
		e.dirty = true
	}
}

// Len returns how many recipients are tracked.
func (c *Pending) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
