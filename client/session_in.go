package client

import (
	"context"
	"errors"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds a Session's incoming side: messages delivered once, in
// each sender's order, across connections; acks kept until the server
// confirms them; group entries caught up after a reconnect.

// inbox is what a session knows of incoming messages and group entries.
// Session.mu guards it.
type inbox struct {
	// While a connection catches up after its login, its pushes are held
	// back and delivered after what was pending (messages) or what was
	// synced (group entries), so that the order holds.
	catchingMsgs, catchingGroups bool
	heldMsgs                     []protocol.Message
	heldEntries                  []Event

	unacked map[string]struct{} // delivered, not acked by the application
	acking  map[string]struct{} // acked by the application, not confirmed by a server
	recent  idRing              // confirmed acks, the latest SeenIDs
	ackSig  chan struct{}       // closed and replaced at each Ack

	groupSeen    map[string]int64 // the highest seq delivered, per group
	groupBase    map[string]int64 // the group's last_seq at the first login
	groupsListed bool             // groupBase is set
}

func newInbox(seen int) inbox {
	return inbox{
		unacked:   make(map[string]struct{}),
		acking:    make(map[string]struct{}),
		recent:    newIDRing(seen),
		ackSig:    make(chan struct{}),
		groupSeen: make(map[string]int64),
		groupBase: make(map[string]int64),
	}
}

func (in *inbox) startCatchUp() {
	in.catchingMsgs, in.catchingGroups = true, true
	in.heldMsgs, in.heldEntries = nil, nil
}

// stopCatchUp drops what was held back when a connection ends before its
// catch-up did: held messages are still pending (nobody acked them) and
// come back with offline, held group entries come back with group_sync.
func (in *inbox) stopCatchUp() {
	in.catchingMsgs, in.catchingGroups = false, false
	in.heldMsgs, in.heldEntries = nil, nil
}

func (in *inbox) seen(id string) bool {
	if _, ok := in.unacked[id]; ok {
		return true
	}
	if _, ok := in.acking[id]; ok {
		return true
	}
	return in.recent.has(id)
}

// idRing remembers the last ids added to it.
type idRing struct {
	ids  map[string]struct{}
	ring []string
	next int
}

func newIDRing(n int) idRing {
	return idRing{ids: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (r *idRing) has(id string) bool {
	_, ok := r.ids[id]
	return ok
}

func (r *idRing) add(id string) {
	if r.has(id) {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next] = id
	r.next = (r.next + 1) % len(r.ring)
	r.ids[id] = struct{}{}
}

// forward moves c's pushes into the session's queues until c's channels
// are closed.
func (s *Session) forward(c *Client) {
	msgs, evs := c.Messages(), c.Events()
	for msgs != nil || evs != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			s.mu.Lock()
			if s.in.catchingMsgs {
				s.in.heldMsgs = append(s.in.heldMsgs, m)
			} else {
				s.deliverLocked(m)
			}
			s.mu.Unlock()
		case e, ok := <-evs:
			if !ok {
				evs = nil
				continue
			}
			if e.Type != protocol.TypeGroupEntry || e.Entry == nil {
				s.emit(e)
				continue
			}
			s.mu.Lock()
			if s.in.catchingGroups {
				s.in.heldEntries = append(s.in.heldEntries, e)
			} else {
				s.deliverEntryLocked(e)
			}
			s.mu.Unlock()
		}
	}
}

// deliverLocked queues m for Messages unless it was delivered before.
// s.mu is held.
func (s *Session) deliverLocked(m protocol.Message) {
	if s.in.seen(m.ID) {
		return
	}
	s.in.unacked[m.ID] = struct{}{}
	s.msgs.push(m)
}

// deliverEntryLocked queues a group_entry event unless its entry was
// delivered before. s.mu is held.
func (s *Session) deliverEntryLocked(e Event) {
	g := e.Entry.Group
	if e.Entry.Seq <= s.in.groupSeen[g] {
		return
	}
	s.in.groupSeen[g] = e.Entry.Seq
	s.emit(e)
}

// Ack settles messages, as Client.Ack does, through the session: the ids
// are recorded at once, so that they are not delivered again, and sent
// on the current connection. An ack not confirmed by the server (the
// connection was down or dropped, or the server answered an error) is
// sent again after the next login, before anything is fetched. Ack
// returns nil when the server confirmed the ack or when there is no
// connection to send it on now; ctx.Err() when ctx ended first, and the
// server's error reply (the ack is kept for the next login).
func (s *Session) Ack(ctx context.Context, msgIDs ...string) error {
	if len(msgIDs) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.err != nil {
		err := s.endErrLocked()
		s.mu.Unlock()
		return err
	}
	for _, id := range msgIDs {
		delete(s.in.unacked, id)
		s.in.acking[id] = struct{}{}
	}
	close(s.in.ackSig)
	s.in.ackSig = make(chan struct{})
	c := s.c
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	for chunk := range chunks(msgIDs, maxAckIDs) {
		err := c.Ack(ctx, chunk...)
		var pe *protocol.Error
		switch {
		case err == nil:
			s.confirmAcks(chunk)
		case errors.As(err, &pe):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		default: // the connection ended: sent after the next login
			return nil
		}
	}
	return nil
}

// chunks yields ids in slices of at most n.
func chunks(ids []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(ids) > 0 {
			k := min(len(ids), n)
			if !yield(ids[:k]) {
				return
			}
			ids = ids[k:]
		}
	}
}

// confirmAcks records that the server confirmed acks of ids.
func (s *Session) confirmAcks(ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.in.acking, id)
		s.in.recent.add(id)
	}
}

// sendAcks acks ids on c, and reports false if c ended. An error reply
// leaves the ids to the next login.
func (s *Session) sendAcks(c *Client, ids []string) bool {
	for chunk := range chunks(ids, maxAckIDs) {
		err := c.Ack(s.ctx, chunk...)
		var pe *protocol.Error
		switch {
		case err == nil:
			s.confirmAcks(chunk)
		case errors.As(err, &pe):
			s.log.Warn("qq session: ack refused", "err", err)
		default:
			return false
		}
	}
	return true
}

// catchUp runs after each login: group entries written meanwhile, then
// the acks not confirmed and every pending message.
func (s *Session) catchUp(c *Client) {
	if s.catchUpGroups(c) {
		s.catchUpMessages(c)
	}
}

// catchUpMessages sends the acks not confirmed, then fetches the pending
// messages page by page and delivers those not delivered before. A page
// after the first is fetched once the application acked the previous
// one (the server returns the oldest pending messages). Pushes held back
// meanwhile follow.
func (s *Session) catchUpMessages(c *Client) {
	s.mu.Lock()
	acking := make([]string, 0, len(s.in.acking))
	for id := range s.in.acking {
		acking = append(acking, id)
	}
	s.mu.Unlock()
	if !s.sendAcks(c, acking) {
		return
	}
	for tries := 0; ; {
		msgs, more, err := c.Offline(s.ctx, s.opts.OfflinePage)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				return // the connection ended
			}
			if busy(pe) {
				tries++
				if !s.wait(c, s.retryDelay(pe, tries)) {
					return
				}
				continue
			}
			s.log.Warn("qq session: offline refused; pending messages are not fetched", "err", err)
			break
		}
		tries = 0
		s.mu.Lock()
		for _, m := range msgs {
			s.deliverLocked(m)
		}
		s.mu.Unlock()
		if !more || len(msgs) == 0 {
			break
		}
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		if !s.awaitAcks(c, ids) || !s.sendAcks(c, ids) {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.in.catchingMsgs {
		return
	}
	s.in.catchingMsgs = false
	for _, m := range s.in.heldMsgs {
		s.deliverLocked(m)
	}
	s.in.heldMsgs = nil
}

// busy reports whether an error reply means "not now": the same request
// may succeed later.
func busy(pe *protocol.Error) bool {
	switch pe.Code {
	case protocol.CodeRateLimited, protocol.CodeUnavailable:
		return true
	}
	return false
}

// retryDelay is the wait before retrying a request refused as busy, for
// the tries-th time.
func (s *Session) retryDelay(pe *protocol.Error, tries int) time.Duration {
	if pe.Code == protocol.CodeRateLimited && pe.RetryAfterMS > 0 {
		return time.Duration(pe.RetryAfterMS) * time.Millisecond
	}
	return backoff(tries, s.opts.MinBackoff, s.opts.MaxBackoff)
}

// awaitAcks waits until the application acked every id of ids that the
// session delivered to it, and reports false if c ended first.
func (s *Session) awaitAcks(c *Client, ids []string) bool {
	for {
		s.mu.Lock()
		waiting := false
		for _, id := range ids {
			if _, ok := s.in.unacked[id]; ok {
				waiting = true
				break
			}
		}
		sig := s.in.ackSig
		s.mu.Unlock()
		if !waiting {
			return true
		}
		select {
		case <-sig:
		case <-c.Done():
			return false
		case <-s.closed:
			return false
		}
	}
}

// catchUpGroups catches up the groups after a reconnect: for each group
// whose log grew past what the session delivered (or, for a group it has
// not seen, past the user's read cursor), the entries are fetched with
// group_sync and delivered as group_entry events. At the first login it
// only notes each group's last seq. Pushed entries held back meanwhile
// follow. It reports false if c ended (then nothing held back is
// delivered: the next login syncs from what was).
func (s *Session) catchUpGroups(c *Client) bool {
	if !c.Has(protocol.FeatureGroups) {
		s.releaseEntries()
		return true
	}
	gl, err := c.Groups(s.ctx)
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			s.log.Warn("qq session: groups refused; group entries are not caught up", "err", err)
			s.releaseEntries()
			return true
		}
		return false
	}
	type sync struct {
		group string
		after int64
	}
	var todo []sync
	s.mu.Lock()
	first := !s.in.groupsListed
	s.in.groupsListed = true
	for _, g := range gl {
		if first {
			s.in.groupBase[g.Group] = g.LastSeq
			continue
		}
		seen, ok1 := s.in.groupSeen[g.Group]
		base, ok2 := s.in.groupBase[g.Group]
		after := max(seen, base)
		if !ok1 && !ok2 {
			after = g.ReadSeq
		}
		if g.LastSeq > after {
			todo = append(todo, sync{g.Group, after})
		}
	}
	s.mu.Unlock()
	for _, w := range todo {
		after := w.after
		for {
			es, more, err := c.GroupSync(s.ctx, w.group, after, 0)
			if err != nil {
				var pe *protocol.Error
				if errors.As(err, &pe) { // left or dissolved meanwhile
					s.log.Debug("qq session: group_sync refused", "group", w.group, "err", err)
					break
				}
				return false
			}
			if len(es) == 0 {
				break
			}
			s.mu.Lock()
			for i := range es {
				e := es[i]
				if e.Group == "" {
					e.Group = w.group
				}
				s.deliverEntryLocked(Event{Type: protocol.TypeGroupEntry, Group: e.Group, TS: e.TS, Entry: &e})
			}
			s.mu.Unlock()
			after = es[len(es)-1].Seq
			if !more {
				break
			}
		}
	}
	s.releaseEntries()
	return true
}

// releaseEntries ends the groups' catch-up: the entries held back are
// delivered, those not delivered before.
func (s *Session) releaseEntries() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.in.catchingGroups {
		return
	}
	s.in.catchingGroups = false
	for _, e := range s.in.heldEntries {
		s.deliverEntryLocked(e)
	}
	s.in.heldEntries = nil
}
