package antispam

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/qqchat/qq/plugins"
)

// Rejection reasons, shown to the sender.
const (
	ReasonFlood      = "sending too fast; slow down"
	ReasonRepeat     = "same message sent too many times; wait before repeating it"
	ReasonRecipients = "same message sent to too many people; wait before sending it again"
	ReasonLinks      = "too many messages with links; wait before sending more"
)

// Filter is the antispam filter. Create it with New. It is safe for
// concurrent use.
type Filter struct {
	lim  limits
	seed maphash.Seed // keys the body and recipient hashes

	mu  sync.Mutex
	lru lru    // guarded by mu
	buf []byte // guarded by mu: normalised body
}

var _ plugins.FilterFactory = New

// New is the [plugins.FilterFactory] of antispam. It decodes and validates
// config (see [Config]); all problems are reported together, each naming
// its key. env is not used: the state is in memory.
func New(env plugins.Env, config []byte) (plugins.Filter, error) {
	f, err := newFilter(config)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func newFilter(config []byte) (*Filter, error) {
	lim, errs := parseConfig(config)
	if len(errs) > 0 {
		return nil, fmt.Errorf("antispam: invalid config: %w", errors.Join(errs...))
	}
	f := &Filter{lim: lim, seed: maphash.MakeSeed()}
	f.lru.init()
	return f, nil
}

// Filter returns one verdict per message, at the same index: Allow or
// Reject, never Rewrite. Messages are checked in order, each accepted one
// counting for the next. It fails only when ctx is done on entry, before
// any message is counted.
func (f *Filter) Filter(ctx context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("antispam: %w", err)
	}
	out := make([]plugins.Verdict, len(msgs))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range msgs {
		out[i] = f.check(&msgs[i])
	}
	return out, nil
}

func reject(reason string) plugins.Verdict {
	return plugins.Verdict{Action: plugins.Reject, Reason: reason}
}

// check decides for one message and, when it is accepted, counts it.
// f.mu is held.
func (f *Filter) check(m *plugins.FilterMessage) plugins.Verdict {
	lim := &f.lim
	if lim.maxWin == 0 {
		return plugins.Verdict{Action: plugins.Allow} // every rule is off
	}
	now := m.TS
	// Forget the senders whose every message is out of every window.
	for s := f.lru.oldest(); s != nil && s.last <= now-lim.maxWin; s = f.lru.oldest() {
		f.lru.remove(s)
	}
	s := f.lru.touch(m.From, lim.maxSenders)
	s.last = max(s.last, now)

	if lim.floodOn && s.flood.countAfter(now-lim.floodWin) >= lim.floodMax {
		return reject(ReasonFlood)
	}

	var (
		bodyHash, toHash uint64
		bs               *bodyState
		toRing           *ring
		repeatCutoff     = now - lim.repeatWin
	)
	if lim.repeatOn {
		f.buf = appendNormalized(f.buf[:0], m.Body)
		bodyHash = maphash.Bytes(f.seed, f.buf)
		toHash = maphash.String(f.seed, m.To)
		if bs = s.bodies[bodyHash]; bs != nil {
			bs.prune(repeatCutoff)
			toRing = bs.recips[toHash]
			switch {
			case toRing != nil && toRing.countAfter(repeatCutoff) >= lim.sameMax:
				return reject(ReasonRepeat)
			case toRing == nil && len(bs.recips) >= lim.recipMax:
				return reject(ReasonRecipients)
			}
		}
	}

	link := lim.linksOn && hasLink(m.Body)
	if link && s.links.countAfter(now-lim.linksWin) >= lim.linksMax {
		return reject(ReasonLinks)
	}

	// Accepted: count it.
	if lim.floodOn {
		s.flood.add(now, lim.floodMax)
	}
	if lim.repeatOn {
		if bs == nil {
			bs = s.body(bodyHash, repeatCutoff)
		}
		if toRing == nil {
			toRing = new(ring)
			bs.recips[toHash] = toRing
		}
		toRing.add(now, lim.sameMax)
		bs.last = max(bs.last, now)
	}
	if link {
		s.links.add(now, lim.linksMax)
	}
	return plugins.Verdict{Action: plugins.Allow}
}

// tracked returns how many senders are in memory.
func (f *Filter) tracked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lru.len()
}
