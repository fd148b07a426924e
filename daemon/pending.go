package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// errRecipientFull answers a send to a user who has
// limits.max_pending_per_user undelivered messages.
var errRecipientFull = protocol.Errorf(protocol.CodeRejected,
	"the recipient has too many undelivered messages; try again later")

// pendingCap enforces limits.max_pending_per_user in the pipeline's store
// stage, without a storage call per send.
//
// For each recipient it keeps bound, an upper bound of the messages
// committed and pending for them, and inflight, the messages admitted to a
// Write whose outcome the answer stage has not seen yet. A new message is
// admitted while bound+inflight < max; admitting counts it in inflight,
// and the answer stage moves it to bound once committed (or drops it, if
// it was not stored).
//
// bound is seeded from Storage.PendingCount the first time a recipient is
// seen, and seeded again only when the cap would refuse a message and
// either the recipient acked since the last seed (dirty) or that seed is
// older than reseedAfter: acks only lower the true count, so a stale bound
// is still an upper bound, and only matters near the cap. A seed is made
// exact against Writes that finish while it runs: the messages moved to
// bound meanwhile (added) are added to it; ones committed before the count
// and moved after are counted twice, which refuses early, never late.
//
// Cost: one PendingCount per recipient first seen (per process, or after
// its entry was dropped), and one per refused message at most every
// reseedAfter, or after each ack by a recipient who is at the cap. Memory:
// an entry per recipient seen; past maxPendingEntries, entries with nothing
// in flight are dropped (they are seeded again when needed).
type pendingCap struct {
	mu sync.Mutex
	m  map[string]*pendingEntry
}

type pendingEntry struct {
	bound    int64
	inflight int64
	added    int64 // messages moved to bound, ever
	seeded   bool
	seededAt time.Time
	dirty    bool // an ack by this user committed since the last seed
}

const (
	maxPendingEntries = 100_000
	reseedAfter       = 30 * time.Second
)

func newPendingCap() *pendingCap { return &pendingCap{m: make(map[string]*pendingEntry)} }

func (c *pendingCap) entryLocked(user string) *pendingEntry {
	e := c.m[user]
	if e == nil {
		e = &pendingEntry{}
		c.m[user] = e
	}
	return e
}

// admit decides, for the sends of batch that are still new, whether their
// recipient can take one more message, in batch order, and refuses the
// others with errRecipientFull. When the storage cannot count a
// recipient's pending messages, their messages are admitted (the limit is
// not checked). It runs in the store stage only.
func (p *pipeline) admit(ps *plugSet, batch []*writeReq) {
	c := p.srv.pendingCap
	limit := int64(p.srv.cfg.Limits.MaxPendingPerUser)
	var seeded map[string]bool // recipients seeded for this batch: whether it worked
	for _, r := range batch {
		if !r.isSend || r.dup != nil || r.refuse != nil {
			continue
		}
		to := r.msg.To
		c.mu.Lock()
		e := c.entryLocked(to)
		need := !e.seeded ||
			e.bound+e.inflight >= limit && (e.dirty || time.Since(e.seededAt) >= reseedAfter)
		c.mu.Unlock()
		if need {
			ok, done := seeded[to]
			if !done {
				if seeded == nil {
					seeded = make(map[string]bool)
				}
				err := p.seed(ps, to)
				if err != nil {
					p.srv.log.Warn("storage pending count failed; max_pending_per_user not checked", "err", err)
				}
				ok = err == nil
				seeded[to] = ok
			}
			if !ok {
				// Fail open: the limit guards against abuse, and a
				// storage that cannot count will most likely fail the
				// Write too, which answers for itself.
				c.mu.Lock()
				c.entryLocked(to).inflight++
				c.mu.Unlock()
				r.admitted = true
				continue
			}
		}
		c.mu.Lock()
		e = c.entryLocked(to)
		if e.seeded && e.bound+e.inflight < limit {
			e.inflight++
			r.admitted = true
		}
		c.mu.Unlock()
		if !r.admitted {
			r.refuse = errRecipientFull
			p.srv.m.limited[limitPending].Inc()
		}
	}
	c.mu.Lock()
	if len(c.m) > maxPendingEntries {
		for u, e := range c.m {
			if len(c.m) <= maxPendingEntries*3/4 {
				break
			}
			if e.inflight == 0 {
				delete(c.m, u)
			}
		}
	}
	c.mu.Unlock()
}

// seed sets user's bound from the storage.
func (p *pipeline) seed(ps *plugSet, user string) error {
	c := p.srv.pendingCap
	c.mu.Lock()
	e := c.entryLocked(user)
	added := e.added
	e.dirty = false
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), p.srv.cfg.Storage.Timeout)
	n, err := ps.storage.PendingCount(ctx, user)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.entryLocked(user) // not dropped: only admit drops, in this goroutine
	if err != nil {
		e.dirty = true
		return err
	}
	e.bound = n + (e.added - added)
	e.seeded = true
	e.seededAt = time.Now()
	return nil
}

// settle accounts for b's Write once its outcome is known, before any of
// b is answered: admitted messages leave inflight, stored ones join their
// recipient's bound, and acks mark the acking user's bound stale.
func (p *pipeline) settle(b *batch) {
	c := p.srv.pendingCap
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for _, r := range b.reqs {
		switch {
		case r.dup != nil || r.refuse != nil:
		case r.isSend:
			var res *plugins.AppendResult
			if b.err == nil {
				res = &b.results[i]
			}
			i++
			if !r.admitted {
				continue
			}
			e := c.entryLocked(r.msg.To)
			e.inflight--
			switch {
			case b.err != nil:
				// Maybe stored: count it, and read the count again when
				// it matters.
				e.bound++
				e.added++
				e.dirty = true
			case res.Err == nil && !res.Duplicate:
				e.bound++
				e.added++
			}
		case len(r.ack) > 0:
			if e := c.m[r.sess.user]; e != nil {
				e.dirty = true
			}
		}
	}
}
