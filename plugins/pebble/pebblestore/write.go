package pebblestore

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// writing runs fn with a new indexed batch under s.wmu and commits the batch (with
// the durable write option) unless fn fails or leaves it empty. what
// names the operation in errors.
func (s *Store) writing(ctx context.Context, what string, fn func(b *pebble.Batch, d *delta) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writable(ctx); err != nil {
		return fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	b := s.db.NewIndexedBatch() // reads through it see its own writes
	defer b.Close()
	var d delta
	if err := fn(b, &d); err != nil {
		return fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	if b.Empty() {
		return nil
	}
	if _, err := s.commit(ctx, b, s.syncOpt, &d); err != nil {
		return fmt.Errorf("pebblestore: %s: commit: %w", what, err)
	}
	return nil
}

// writable says whether a write may begin. The caller holds s.wmu.
func (s *Store) writable(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.broken != nil {
		return s.broken
	}
	if s.readOnly {
		return errReadOnly
	}
	return ctx.Err()
}

// errReadOnly refuses the writes of a store opened read-only on a full
// disk.
var errReadOnly = fmt.Errorf("opened read-only because the disk was full at open (restart once space is free): %w", ErrLowSpace)

// user reads the record of name as the writer sees it (everything
// committed), or nil. The caller holds s.wmu.
func (s *Store) user(name string) (*userRecord, error) {
	v, err := get(s.db, userKey(name))
	if err != nil || v == nil {
		return nil, err
	}
	u, err := decodeUser(v)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// isLive reports whether name is a live user, from the cache or the
// database. The caller holds s.wmu.
func (s *Store) isLive(name string) (bool, error) {
	if _, ok := s.known[name]; ok {
		return true, nil
	}
	u, err := s.user(name)
	if err != nil {
		return false, fmt.Errorf("look up user: %w", err)
	}
	if u == nil || u.Deleted {
		return false, nil
	}
	if len(s.known) >= maxKnownUsers {
		clear(s.known)
	}
	s.known[name] = struct{}{}
	return true, nil
}

// live fails with ErrUnknownUser naming the first of names that is not a
// live user. The caller holds s.wmu.
func (s *Store) live(names ...string) error {
	for _, name := range names {
		ok, err := s.isLive(name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("user %q: %w", name, plugins.ErrUnknownUser)
		}
	}
	return nil
}

// CreateUser stores a new account. It returns an error wrapping
// plugins.ErrUserExists when the name is taken, by an account or by a
// deleted one (names are never reused).
func (s *Store) CreateUser(ctx context.Context, user, passwordHash string) error {
	return s.writing(ctx, fmt.Sprintf("create user %q", user), func(b *pebble.Batch, d *delta) error {
		if err := s.roomForData(); err != nil {
			return err
		}
		u, err := s.user(user)
		if err != nil {
			return err
		}
		if u != nil {
			return plugins.ErrUserExists
		}
		d.users = 1
		return b.Set(userKey(user), userRecord{Hash: passwordHash, Created: s.now().UnixMilli()}.append(nil), nil)
	})
}

// SetPasswordHash replaces the password hash of user and, in the same
// batch, removes every resume token of user. It returns an error
// wrapping plugins.ErrUnknownUser when the user does not exist or was
// deleted.
func (s *Store) SetPasswordHash(ctx context.Context, user, passwordHash string) error {
	return s.writing(ctx, "set password hash", func(b *pebble.Batch, _ *delta) error {
		u, err := s.user(user)
		if err != nil {
			return err
		}
		if u == nil || u.Deleted {
			return fmt.Errorf("user %q: %w", user, plugins.ErrUnknownUser)
		}
		if err := b.Set(userKey(user), userRecord{Hash: passwordHash, Created: u.Created}.append(nil), nil); err != nil {
			return err
		}
		_, err = s.dropUserTokens(b, user, nil)
		return err
	})
}

// DeleteUser deletes the account of user in one batch: the record is
// marked deleted (its hash erased), the user's ack cursor moves past
// every message stored so far (it returns how many were pending), and
// its friendships, friend requests, blocks (both directions) and resume
// tokens are dropped; it leaves its groups (see plugins.Groups, "Deleted
// accounts"). History stays, and so does the name.
func (s *Store) DeleteUser(ctx context.Context, user string) (int64, error) {
	var dropped int64
	err := s.writing(ctx, "delete user", func(b *pebble.Batch, d *delta) error {
		u, err := s.user(user)
		if err != nil {
			return err
		}
		if u == nil || u.Deleted {
			return fmt.Errorf("user %q: %w", user, plugins.ErrUnknownUser)
		}
		if err := b.Set(userKey(user), userRecord{Deleted: true, Created: u.Created, DeletedAt: s.now().UnixMilli()}.append(nil), nil); err != nil {
			return err
		}
		d.users = -1
		d.forget = []string{user}
		// Drop pending: the cursor passes everything, the out-of-order
		// acks go.
		dropped = s.pending[user]
		d.addPending(user, -dropped)
		if err := b.Set(key(pCursor, user), u64(s.lastSeq), nil); err != nil {
			return err
		}
		d.setCursor(user, s.lastSeq)
		if set := s.acked[user]; len(set) > 0 {
			for seq := range set {
				if err := b.Delete(seqKey(pAcked, user, seq), nil); err != nil {
					return err
				}
			}
			d.ackDelta(user).clear = true
		}
		if n := s.held[user]; n > 0 {
			p := lpPrefix(pHeld, user)
			if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
				return err
			}
			d.addHeld(user, -n)
		}
		if err := s.dropSocial(b, user); err != nil {
			return fmt.Errorf("drop friendships, requests and blocks: %w", err)
		}
		if _, err := s.dropUserTokens(b, user, nil); err != nil {
			return fmt.Errorf("drop tokens: %w", err)
		}
		t := s.newGtx(b)
		if err := s.leaveGroups(t, user, s.clock()); err != nil {
			return fmt.Errorf("leave groups: %w", err)
		}
		return t.flush()
	})
	if err != nil {
		return 0, err
	}
	return dropped, nil
}

// Write stores the batch's messages and applies its acks in one Pebble
// batch, committed with fsync (unless Options.NoSync) before it returns;
// see the package documentation.
func (s *Store) Write(ctx context.Context, wb *plugins.WriteBatch) ([]plugins.AppendResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writable(ctx); err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: write: %w", err)}
	}
	if wb == nil || len(wb.Messages)+len(wb.Acks)+len(wb.GroupMessages)+len(wb.GroupAcks) == 0 {
		return []plugins.AppendResult{}, nil
	}
	if len(wb.Messages)+len(wb.GroupMessages) > 0 {
		if err := s.roomForData(); err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: write: %w", err)}
		}
		if err := s.cids.grow(s.db); err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: write: grow de-duplication filters: %w", err)}
		}
	}
	groups := len(wb.GroupMessages)+len(wb.GroupAcks) > 0
	var b *pebble.Batch
	var w batchWriter
	if groups {
		b = s.db.NewIndexedBatch() // the group checks read the batch's own writes
		w = b
	} else {
		// Staged, to go into the batch in key order (see stagedWrites).
		s.staged.reset()
		w = &s.staged
	}
	defer func() {
		if b != nil {
			_ = b.Close()
		}
	}()
	var d delta
	firstSeq := s.lastSeq
	results, err := s.appendMessages(ctx, w, &d, wb.Messages)
	if err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: append: %w", err)}
	}
	if groups {
		t := s.newGtx(b)
		groupResults, err := s.appendGroup(ctx, t, wb.GroupMessages, wb.GroupLimits)
		if err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: append group messages: %w", err)}
		}
		results = append(results, groupResults...)
		if err := s.ackGroups(ctx, t, wb.GroupAcks); err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: group ack: %w", err)}
		}
		if err := t.flush(); err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: group ack: %w", err)}
		}
	}
	if err := s.ack(ctx, w, &d, wb.Acks); err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: ack: %w", err)}
	}
	if s.lastSeq != firstSeq {
		if err := w.Set(metaKey, appendSeqMeta(nil, s.lastSeq, s.lastTS.Load()), nil); err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: write: %w", err)}
		}
	}
	if !groups {
		b = s.db.NewBatch()
		if err := s.staged.apply(b); err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("pebblestore: write: %w", err)}
		}
	}
	if b.Empty() {
		return results, nil
	}
	// commit gives up with nothing written if ctx has ended; a commit,
	// once begun, cannot be called back, so the Write then waits for it.
	if begun, err := s.commit(ctx, b, s.syncOpt, &d); err != nil {
		return nil, &plugins.WriteError{MaybeWritten: begun, Err: fmt.Errorf("pebblestore: commit: %w", err)}
	}
	return results, nil
}

// cidKey names a message of a batch by its (From, CID).
type cidKey struct{ from, cid string }

// appendMessages adds msgs to b and returns their results. The caller
// holds s.wmu.
func (s *Store) appendMessages(ctx context.Context, b batchWriter, d *delta, msgs []plugins.NewMessage) ([]plugins.AppendResult, error) {
	results := make([]plugins.AppendResult, len(msgs))
	if len(msgs) == 0 {
		return results, nil
	}
	ts := s.nextTS()
	bucket := s.writeBucket(ts)
	lookupBuckets := s.buckets(ts)
	inBatch := make(map[cidKey]int) // index of the result stored under a key
	var val []byte
	for i, m := range msgs {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if m.CID != "" {
			if j, ok := inBatch[cidKey{m.From, m.CID}]; ok {
				results[i] = results[j]
				results[i].Duplicate = true
				continue
			}
			r, found, err := s.findCID(s.db, m.From, m.CID, lookupBuckets)
			if err != nil {
				return nil, err
			}
			if found {
				results[i] = r
				continue
			}
		}
		refused, err := s.refusal(m)
		if err != nil {
			return nil, err
		}
		if refused != nil {
			results[i].Err = refused
			continue
		}
		s.lastSeq++
		seq := s.lastSeq
		rec := msgRecord{TS: ts, From: m.From, To: m.To, Body: m.Body, CID: m.CID, Status: string(m.Status)}
		val = rec.append(val[:0])
		if err := b.Set(msgKey(seq), val, nil); err != nil {
			return nil, err
		}
		// The history key carries the record too: a History page is then
		// one range read, not a point read per message.
		if err := b.Set(appendSeq(convPrefix(m.From, m.To), seq), val, nil); err != nil {
			return nil, err
		}
		if err := b.Set(seqKey(pInbox, m.To, seq), nil, nil); err != nil {
			return nil, err
		}
		if m.CID != "" {
			k := dedupKey(bucket, m.From, m.CID)
			s.cids.add(bucket, k[dedupHeaderLen:])
			if err := b.Set(k, appendDedupRef(nil, seq), nil); err != nil {
				return nil, err
			}
			inBatch[cidKey{m.From, m.CID}] = i
		}
		d.addPending(m.To, 1)
		d.delivered = append(d.delivered, recentMsg{seq: seq, to: m.To})
		results[i] = plugins.AppendResult{
			Message: protocol.Message{ID: msgID(seq), From: m.From, To: m.To, Body: m.Body, TS: ts},
			Status:  m.Status,
		}
	}
	return results, nil
}

// refusal returns why m may not be stored (ErrUnknownUser, ErrBlocked,
// ErrNotFriends), or nil. The caller holds s.wmu.
func (s *Store) refusal(m plugins.NewMessage) (refused, err error) {
	for _, name := range []string{m.To, m.From} {
		ok, err := s.isLive(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return fmt.Errorf("pebblestore: user %q: %w", name, plugins.ErrUnknownUser), nil
		}
	}
	if _, ok := s.blockers[m.To]; ok {
		blocked, err := has(s.db, key(pBlock, m.To, m.From))
		if err != nil {
			return nil, fmt.Errorf("look up block: %w", err)
		}
		if blocked {
			return fmt.Errorf("pebblestore: %q blocks %q: %w", m.To, m.From, plugins.ErrBlocked), nil
		}
	}
	if m.FriendsOnly && m.From != m.To {
		friends, err := has(s.db, key(pFriend, m.From, m.To))
		if err != nil {
			return nil, fmt.Errorf("look up friendship: %w", err)
		}
		if !friends {
			return fmt.Errorf("pebblestore: %q and %q: %w", m.From, m.To, plugins.ErrNotFriends), nil
		}
	}
	return nil, nil
}

// ack adds to b what acks settle: per user, the acked ids that are
// pending for them join the out-of-order set, and the cursor moves over
// the run of settled inbox entries that follows it (dropping them from
// the set). The caller holds s.wmu.
func (s *Store) ack(ctx context.Context, b batchWriter, d *delta, acks []plugins.Ack) error {
	if len(acks) == 0 {
		return nil
	}
	// Group the ids by user, in the order users come.
	byUser := make(map[string][]string, len(acks))
	var users []string
	for _, a := range acks {
		if len(a.MsgIDs) == 0 {
			continue
		}
		if _, ok := byUser[a.User]; !ok {
			users = append(users, a.User)
		}
		byUser[a.User] = append(byUser[a.User], a.MsgIDs...)
	}
	if len(users) == 0 {
		return nil
	}
	// One iterator over every inbox, on what is committed (an ack cannot
	// name a message of its own batch: its id is not out yet), opened
	// when a walk needs it.
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			_ = it.Close()
		}
	}()
	inbox := func() (*pebble.Iterator, error) {
		if it == nil {
			var err error
			it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pInbox}, UpperBound: []byte{pInbox + 1}})
			if err != nil {
				return nil, err
			}
		}
		return it, nil
	}
	n := 0
	for _, user := range users {
		cursor, err := s.cursorOf(user)
		if err != nil {
			return err
		}
		old := s.acked[user]
		// The candidates: acked seqs above the cursor not acked before,
		// and those at or below it, which only a held-back entry can be.
		var cands, below []uint64
		for _, id := range byUser[user] {
			if n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			n++
			seq, ok, err := resolveID(s.db, id)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, done := old[seq]; seq > cursor && !done {
				cands = append(cands, seq)
			} else if seq <= cursor && s.held[user] > 0 {
				below = append(below, seq)
			}
		}
		if err := s.ackHeld(b, d, user, below); err != nil {
			return err
		}
		if len(cands) == 0 {
			continue
		}
		slices.Sort(cands)
		cands = slices.Compact(cands)
		fresh, newCursor, known := s.settleRecent(user, old, cands)
		if !known {
			it, err := inbox()
			if err != nil {
				return err
			}
			if fresh, newCursor, err = walkInbox(it, user, cursor, old, cands); err != nil {
				return err
			}
		}
		if len(fresh) == 0 {
			continue
		}
		d.addPending(user, -int64(len(fresh)))
		// The set above the new cursor: what stays of old, and the fresh
		// acks beyond the cursor.
		var above []uint64
		for seq := range old {
			if seq > newCursor {
				above = append(above, seq)
			}
		}
		for _, seq := range fresh {
			if seq > newCursor {
				above = append(above, seq)
			}
		}
		if len(above) > maxAcked {
			it, err := inbox()
			if err != nil {
				return err
			}
			if err := holdBack(s.db, it, b, d, user, newCursor, old, above); err != nil {
				return err
			}
			continue
		}
		if newCursor != cursor {
			if err := b.Set(key(pCursor, user), u64(newCursor), nil); err != nil {
				return err
			}
			d.setCursor(user, newCursor)
		}
		// The set above the new cursor, as changes to the old one (applied
		// in place once the commit returns: copying the set per batch
		// cost the square of its size). Every entry of old is above the
		// old cursor, so only a cursor that moved passes some.
		ad := d.ackDelta(user)
		if newCursor != cursor {
			for seq := range old {
				if seq <= newCursor {
					if err := b.Delete(seqKey(pAcked, user, seq), nil); err != nil {
						return err
					}
					ad.del = append(ad.del, seq)
				}
			}
		}
		for _, seq := range fresh {
			if seq <= newCursor {
				continue
			}
			ad.add = append(ad.add, seq)
			if err := b.Set(seqKey(pAcked, user, seq), nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// ackHeld settles the acks of user's held-back entries: each seq of
// below (at or below the cursor) that has a p key loses it. The caller
// holds s.wmu.
func (s *Store) ackHeld(b batchWriter, d *delta, user string, below []uint64) error {
	if len(below) == 0 {
		return nil
	}
	slices.Sort(below)
	below = slices.Compact(below)
	var gone int64
	for _, seq := range below {
		k := seqKey(pHeld, user, seq)
		found, err := has(s.db, k)
		if err != nil {
			return err
		}
		if found {
			if err := b.Delete(k, nil); err != nil {
				return err
			}
			gone++
		}
	}
	if gone > 0 {
		d.addPending(user, -gone)
		d.addHeld(user, -gone)
	}
	return nil
}

// holdBack keeps user's out-of-order ack set small when acks would leave
// it with above (the acked seqs above cursor, more than maxAcked; cursor
// is where the acks of this batch moved it): the cursor moves to the
// newest of them, and the inbox entries it passes that are still pending
// are held back (a p key each), so that an old
// message a client never acks does not make every later ack an a key
// (which Pending and Open would read, and memory would hold). The a keys
// of old go. The walk reads the entries between the cursor and the
// newest ack once, and the records of those it holds back from r (the
// committed state); the next walk starts past them.
func holdBack(r pebble.Reader, it *pebble.Iterator, b batchWriter, d *delta, user string, cursor uint64, old map[uint64]struct{}, above []uint64) error {
	slices.Sort(above)
	top := above[len(above)-1]
	prefix := lpPrefix(pInbox, user)
	var held int64
	j := 0
	for ok := it.SeekGE(seqKey(pInbox, user, cursor+1)); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
		seq := seqSuffix(it.Key())
		if seq > top {
			break
		}
		for j < len(above) && above[j] < seq {
			j++
		}
		if j < len(above) && above[j] == seq {
			continue
		}
		// The p value is the message's record, so that Pending reads
		// the held-back messages (old, so scattered over the m range)
		// with one range read, however often the user logs in.
		rec, err := get(r, msgKey(seq))
		if err != nil {
			return err
		}
		if err := b.Set(seqKey(pHeld, user, seq), rec, nil); err != nil {
			return err
		}
		held++
	}
	if err := it.Error(); err != nil {
		return err
	}
	for seq := range old {
		if err := b.Delete(seqKey(pAcked, user, seq), nil); err != nil {
			return err
		}
	}
	if err := b.Set(key(pCursor, user), u64(top), nil); err != nil {
		return err
	}
	d.setCursor(user, top)
	d.addHeld(user, held)
	d.ackDelta(user).clear = true
	return nil
}

// walkInbox settles the acks of user from its inbox in it: cands are the
// acked seqs above cursor not in old (the out-of-order acks before),
// sorted. It walks the inbox from the cursor over the run of settled
// entries (acked before, or now): the cursor moves to its end, and every
// candidate met on the way is this user's. Acks in order, the common
// case, cost this one seek and a step each. It returns the candidates
// found in the inbox and the new cursor.
func walkInbox(it *pebble.Iterator, user string, cursor uint64, old map[uint64]struct{}, cands []uint64) (fresh []uint64, newCursor uint64, err error) {
	prefix := lpPrefix(pInbox, user)
	newCursor = cursor
	c, exhausted := 0, true
	for ok := it.SeekGE(seqKey(pInbox, user, cursor+1)); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
		seq := seqSuffix(it.Key())
		for c < len(cands) && cands[c] < seq {
			c++ // not in the inbox: another user's message
		}
		if c < len(cands) && cands[c] == seq {
			fresh = append(fresh, seq)
			c++
		} else if _, done := old[seq]; !done {
			exhausted = false
			break // the first pending entry
		}
		newCursor = seq
	}
	if err := it.Error(); err != nil {
		return nil, 0, err
	}
	// The candidates after that entry, acked out of order: each
	// looked up on its own (none is in the inbox if the walk ran
	// through it).
	for ; c < len(cands) && !exhausted; c++ {
		k := seqKey(pInbox, user, cands[c])
		if it.SeekGE(k) && bytes.Equal(it.Key(), k) {
			fresh = append(fresh, cands[c])
		}
	}
	if err := it.Error(); err != nil {
		return nil, 0, err
	}
	return fresh, newCursor, nil
}

// settleRecent settles the acks of user, as walkInbox does, without
// reading, when it can: when every candidate is a recent message (see
// Store.recent), so that whose inbox holds it is known, and those of
// user's inbox settle every entry pending for it, the walk would run to
// the end of the inbox: the cursor moves to the last of them or of the
// out-of-order acks before. known is false when it cannot. The caller
// holds s.wmu.
func (s *Store) settleRecent(user string, old map[uint64]struct{}, cands []uint64) (fresh []uint64, newCursor uint64, known bool) {
	for _, seq := range cands {
		r := &s.recent[seq%recentSize]
		if r.seq != seq {
			return nil, 0, false
		}
		if r.to == user {
			fresh = append(fresh, seq)
		}
	}
	if int64(len(fresh)) != s.pending[user]-s.held[user] {
		return nil, 0, false
	}
	if len(fresh) > 0 {
		newCursor = fresh[len(fresh)-1]
	}
	for seq := range old {
		newCursor = max(newCursor, seq)
	}
	return fresh, newCursor, true
}

// cursorOf returns user's ack cursor, from the cache or the database.
// The caller holds s.wmu.
func (s *Store) cursorOf(user string) (uint64, error) {
	if c, ok := s.cursors[user]; ok {
		return c, nil
	}
	c, err := getCursor(s.db, user)
	if err != nil {
		return 0, err
	}
	if len(s.cursors) >= maxKnownUsers {
		clear(s.cursors)
	}
	s.cursors[user] = c
	return c, nil
}

// resolveID returns the seq of the message with id in r: parsed from an
// id of this store's form, else looked up among foreign ids.
func resolveID(r pebble.Reader, id string) (uint64, bool, error) {
	if seq, ok := parseMsgID(id); ok {
		return seq, true, nil
	}
	if id == "" {
		return 0, false, nil
	}
	v, err := get(r, key(pAlias, id))
	if err != nil || v == nil {
		return 0, false, err
	}
	seq, err := decodeU64(v)
	if err != nil {
		return 0, false, fmt.Errorf("alias of %q: %w", id, err)
	}
	return seq, true, nil
}

// writeBucket is the de-duplication bucket of keys stored at ts.
func (s *Store) writeBucket(ts int64) uint32 {
	if s.window == 0 {
		return foreverBucket
	}
	return dayBucket(ts)
}

// buckets are the de-duplication buckets a lookup at now consults, newest
// first: every day the window reaches, or the forever bucket, and the
// legacy buckets.
func (s *Store) buckets(now int64) []uint32 {
	var out []uint32
	if s.window == 0 {
		out = append(out, foreverBucket)
	} else {
		oldest := dayBucket(now - s.window.Milliseconds())
		for b := dayBucket(now); b >= oldest; b-- {
			out = append(out, b)
			if b == 0 {
				break
			}
		}
	}
	return append(out, s.legacyBuckets...)
}

// lookupCID finds the message stored under (from, cid) in r, in the
// given buckets, as a Duplicate result: a direct message, or a group
// message (Group set).
func (s *Store) lookupCID(r pebble.Reader, from, cid string, buckets []uint32) (plugins.AppendResult, bool, error) {
	k := dedupKey(0, from, cid)
	for _, bucket := range buckets {
		setBucket(k, bucket)
		if res, found, err := lookupDedupKey(r, k); found || err != nil {
			return res, found, err
		}
	}
	return plugins.AppendResult{}, false, nil
}

// findCID is lookupCID for a write: it skips the buckets whose filter
// says they do not hold the key, so that a new cid, the common case,
// costs no read. r holds everything committed and the keys of the
// caller's batch. The caller holds s.wmu.
func (s *Store) findCID(r pebble.Reader, from, cid string, buckets []uint32) (plugins.AppendResult, bool, error) {
	var k []byte
	for _, bucket := range buckets {
		if k == nil {
			k = dedupKey(bucket, from, cid)
		}
		if !s.cids.mayContain(bucket, k[dedupHeaderLen:]) {
			continue
		}
		setBucket(k, bucket)
		if res, found, err := lookupDedupKey(r, k); found || err != nil {
			return res, found, err
		}
	}
	return plugins.AppendResult{}, false, nil
}

// lookupDedupKey reads the message the de-duplication key k names in r,
// as a Duplicate result, if r holds k.
func lookupDedupKey(r pebble.Reader, k []byte) (plugins.AppendResult, bool, error) {
	v, err := get(r, k)
	if err != nil || v == nil {
		return plugins.AppendResult{}, false, err
	}
	if len(v) > 0 && v[0] == refGroup {
		res, err := lookupGroupRef(r, v)
		return res, err == nil, err
	}
	seq, err := decodeDedupRef(v)
	if err != nil {
		return plugins.AppendResult{}, false, err
	}
	rec, err := readMsg(r, seq)
	if err != nil {
		return plugins.AppendResult{}, false, err
	}
	return plugins.AppendResult{Message: rec.message(seq), Status: protocol.Status(rec.Status), Duplicate: true}, true, nil
}

// readMsg reads the message with seq from r.
func readMsg(r pebble.Reader, seq uint64) (msgRecord, error) {
	v, err := get(r, msgKey(seq))
	if err != nil {
		return msgRecord{}, err
	}
	if v == nil {
		return msgRecord{}, fmt.Errorf("message %d: missing", seq)
	}
	return decodeMsg(v)
}

// message is the protocol form of the record of seq.
func (m *msgRecord) message(seq uint64) protocol.Message {
	id := m.ID
	if id == "" {
		id = msgID(seq)
	}
	return protocol.Message{ID: id, From: m.From, To: m.To, Body: m.Body, TS: m.TS}
}
