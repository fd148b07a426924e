package client

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"

	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds a Session's outgoing side: the outbox, which keeps each
// send until its ok or a refusal and re-sends it, with its cid, after a
// reconnect.

// Outgoing is a send in a session's outbox: a message to the user To, or
// to the group Group with Mentions.
type Outgoing struct {
	CID      string
	To       string
	Group    string
	Body     string
	Mentions []string
}

// SendDone is the outcome of a send from the outbox.
type SendDone struct {
	Outgoing
	// Result is the ok to a send to a user, GroupResult the ok to a send
	// to a group; zero when Err is set.
	Result      SendResult
	GroupResult GroupSendResult
	// Err is the server's refusal, a *protocol.Error (nil: stored).
	Err error
}

// outEntry is a send in the outbox.
type outEntry struct {
	Outgoing
	done chan struct{} // closed when the send is stored or refused
	// Set before done is closed:
	res  SendResult
	gres GroupSendResult
	err  error

	waiters int // Send calls waiting for the result; Session.mu
	tries   int // busy refusals in a row; the writer's own
	// fresh: the session made the cid up and has not written the send
	// yet, so the first write goes with SendFirst. The writer's own.
	fresh bool
}

// outbox is a session's sends waiting for their ok, in the order they
// were queued. Session.mu guards it.
type outbox struct {
	entries []*outEntry
	byCID   map[string]*outEntry
	signal  chan struct{} // an entry was added; capacity 1
	changed chan struct{} // closed and replaced when an entry leaves
}

func newOutbox() outbox {
	return outbox{byCID: make(map[string]*outEntry), signal: make(chan struct{}, 1), changed: make(chan struct{})}
}

// Send sends body to the user to through the outbox, with a new random
// cid: see SendCID.
func (s *Session) Send(ctx context.Context, to, body string) (SendResult, error) {
	return s.SendCID(ctx, to, body, "")
}

// SendCID queues body to the user to in the outbox, with the client id
// cid ("": a new random one), and waits for the result. The session
// writes the outbox in order, one send at a time, and re-sends a send
// that got no answer, with the same cid, after each reconnect: the
// server stores it exactly once. A send to a cid already in the outbox
// waits for that send instead.
//
// It returns the ok, or the server's refusal (a *protocol.Error such as
// unknown_user, too_large, rejected: a refusal is final and the send
// leaves the outbox; rate_limited and unavailable are not refusals: the
// session retries after the wait). While the session is disconnected it
// keeps waiting. When ctx ends first it returns ctx.Err(), and the send
// stays in the outbox: it is still sent, and its outcome is reported by
// an EventSendDone event. When the session ends first it returns its
// end (see Err), and Unsent lists the send. With OutboxSize sends
// already waiting it fails at once with ErrOutboxFull.
func (s *Session) SendCID(ctx context.Context, to, body, cid string) (SendResult, error) {
	if err := ctx.Err(); err != nil {
		return SendResult{}, err
	}
	e, err := s.enqueue(Outgoing{CID: cid, To: to, Body: body}, true)
	if err != nil {
		return SendResult{}, err
	}
	if err := s.await(ctx, e); err != nil {
		return SendResult{}, err
	}
	return e.res, e.err
}

// GroupSend sends body to group through the outbox, mentioning the users
// named (or MentionAll), with a new random cid: see GroupSendCID.
func (s *Session) GroupSend(ctx context.Context, group, body string, mentions ...string) (GroupSendResult, error) {
	return s.GroupSendCID(ctx, group, body, "", mentions...)
}

// GroupSendCID is SendCID for a message to group: the same outbox, in
// the same order, with the same guarantees.
func (s *Session) GroupSendCID(ctx context.Context, group, body, cid string, mentions ...string) (GroupSendResult, error) {
	if err := ctx.Err(); err != nil {
		return GroupSendResult{}, err
	}
	e, err := s.enqueue(Outgoing{CID: cid, Group: group, Body: body, Mentions: slices.Clone(mentions)}, true)
	if err != nil {
		return GroupSendResult{}, err
	}
	if err := s.await(ctx, e); err != nil {
		return GroupSendResult{}, err
	}
	return e.gres, e.err
}

// Enqueue queues body to the user to in the outbox, with the client id
// cid ("": a new random one), and returns at once with the cid. The
// send's outcome is reported by an EventSendDone event. Otherwise it is
// as SendCID.
func (s *Session) Enqueue(to, body, cid string) (string, error) {
	e, err := s.enqueue(Outgoing{CID: cid, To: to, Body: body}, false)
	if err != nil {
		return "", err
	}
	return e.CID, nil
}

// EnqueueGroup is Enqueue for a message to group, mentioning the users
// named (or MentionAll).
func (s *Session) EnqueueGroup(group, body, cid string, mentions ...string) (string, error) {
	e, err := s.enqueue(Outgoing{CID: cid, Group: group, Body: body, Mentions: slices.Clone(mentions)}, false)
	if err != nil {
		return "", err
	}
	return e.CID, nil
}

// Unsent returns the sends in the outbox, oldest first: those whose
// result is not known yet. After the session ended, they are those that
// may or may not have been stored; sending them again with their cids
// (within the server's de-duplication window) stores each once.
func (s *Session) Unsent() []Outgoing {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Outgoing, len(s.out.entries))
	for i, e := range s.out.entries {
		out[i] = e.Outgoing
		out[i].Mentions = slices.Clone(e.Mentions)
	}
	return out
}

// Flush waits until the outbox is empty: every send was stored or
// refused. It returns ctx.Err() if ctx ends first, and the session's end
// if it ends first.
func (s *Session) Flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		n, changed := len(s.out.entries), s.out.changed
		var err error
		if s.err != nil {
			err = s.endErrLocked()
		}
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
		}
	}
}

// enqueue adds a send to the outbox, or finds the send with its cid there.
// wait counts a caller that waits for the result.
func (s *Session) enqueue(o Outgoing, wait bool) (*outEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.endErrLocked()
	}
	fresh := o.CID == ""
	if fresh {
		o.CID = rand.Text()
	}
	e := s.out.byCID[o.CID]
	if e == nil {
		if len(s.out.entries) >= s.opts.OutboxSize {
			return nil, ErrOutboxFull
		}
		e = &outEntry{Outgoing: o, done: make(chan struct{}), fresh: fresh}
		s.out.entries = append(s.out.entries, e)
		s.out.byCID[o.CID] = e
		select {
		case s.out.signal <- struct{}{}:
		default:
		}
	}
	if wait {
		e.waiters++
	}
	return e, nil
}

// await waits for e's result. When ctx or the session ends first, e stays
// in the outbox and its result goes to an event.
func (s *Session) await(ctx context.Context, e *outEntry) error {
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	case <-s.done:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-e.done:
		return nil
	default:
	}
	e.waiters--
	if s.err != nil {
		return s.endErrLocked()
	}
	return ctx.Err()
}

// finish takes e out of the outbox with its result.
func (s *Session) finish(e *outEntry, err error) {
	s.mu.Lock()
	e.err = err
	if i := slices.Index(s.out.entries, e); i >= 0 {
		s.out.entries = slices.Delete(s.out.entries, i, i+1)
	}
	delete(s.out.byCID, e.CID)
	close(e.done)
	close(s.out.changed)
	s.out.changed = make(chan struct{})
	report := e.waiters == 0
	s.mu.Unlock()
	if report {
		s.emit(Event{Type: EventSendDone, Err: err, Send: &SendDone{Outgoing: e.Outgoing, Result: e.res, GroupResult: e.gres, Err: err}})
	}
}

// writeOutbox sends the outbox on c, oldest first and one at a time,
// until c ends.
func (s *Session) writeOutbox(c *Client) {
	for {
		s.mu.Lock()
		var e *outEntry
		if len(s.out.entries) > 0 {
			e = s.out.entries[0]
		}
		s.mu.Unlock()
		if e == nil {
			select {
			case <-s.out.signal:
				continue
			case <-c.Done():
				return
			case <-s.closed:
				return
			}
		}
		var err error
		first := e.fresh
		e.fresh = false // a second write is a retry, whatever became of the first
		if e.Group != "" {
			e.gres, err = c.groupSendCID(s.ctx, e.Group, e.Body, e.CID, first, e.Mentions)
		} else {
			e.res, err = c.sendCID(s.ctx, e.To, e.Body, e.CID, first)
		}
		var pe *protocol.Error
		switch {
		case err == nil:
			e.tries = 0
			s.finish(e, nil)
		case errors.As(err, &pe) && busy(pe):
			e.tries++
			if !s.wait(c, s.retryDelay(pe, e.tries)) {
				return
			}
		case errors.As(err, &pe):
			s.finish(e, err)
		default: // c ended, or the session is closing: e stays for the next connection
			return
		}
	}
}
