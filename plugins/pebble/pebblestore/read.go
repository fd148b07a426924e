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

// maxPrealloc bounds the capacity reserved for a page up front.
const maxPrealloc = 256

// PasswordHash returns the stored hash of user, or an error wrapping
// plugins.ErrUnknownUser (also for a deleted user).
func (s *Store) PasswordHash(_ context.Context, user string) (string, error) {
	v, done, err := s.acquire("password hash")
	if err != nil {
		return "", err
	}
	defer done()
	val, err := get(v.snap, userKey(user))
	if err != nil {
		return "", fmt.Errorf("pebblestore: password hash: %w", err)
	}
	if val == nil {
		return "", fmt.Errorf("pebblestore: password hash: user %q: %w", user, plugins.ErrUnknownUser)
	}
	u, err := decodeUser(val)
	if err != nil {
		return "", fmt.Errorf("pebblestore: password hash: %w", err)
	}
	if u.Deleted {
		return "", fmt.Errorf("pebblestore: password hash: user %q: %w", user, plugins.ErrUnknownUser)
	}
	return u.Hash, nil
}

// CountUsers returns how many accounts exist, deleted ones excluded: a
// count kept in memory.
func (s *Store) CountUsers(context.Context) (int64, error) {
	_, done, err := s.acquire("count users")
	if err != nil {
		return 0, err
	}
	defer done()
	s.vmu.RLock()
	defer s.vmu.RUnlock()
	return s.users, nil
}

// CountPending returns how many messages are pending over all users: a
// count kept in memory.
func (s *Store) CountPending(context.Context) (int64, error) {
	_, done, err := s.acquire("count pending")
	if err != nil {
		return 0, err
	}
	defer done()
	s.vmu.RLock()
	defer s.vmu.RUnlock()
	return s.total, nil
}

// PendingCount returns how many messages are pending for user: a count
// kept in memory.
func (s *Store) PendingCount(_ context.Context, user string) (int64, error) {
	_, done, err := s.acquire("pending count")
	if err != nil {
		return 0, err
	}
	defer done()
	s.vmu.RLock()
	defer s.vmu.RUnlock()
	return s.pending[user], nil
}

// LookupCIDs returns, for each key, the message stored under its
// (From, CID) as a Duplicate result, or a zero result when there is none
// (or the key's CID is empty).
func (s *Store) LookupCIDs(_ context.Context, keys []plugins.CIDKey) ([]plugins.AppendResult, error) {
	v, done, err := s.acquire("lookup cids")
	if err != nil {
		return nil, err
	}
	defer done()
	results := make([]plugins.AppendResult, len(keys))
	buckets := s.buckets(s.clock())
	for i, k := range keys {
		if k.CID == "" {
			continue
		}
		r, found, err := s.lookupCID(v.snap, k.From, k.CID, buckets)
		if err != nil {
			return nil, fmt.Errorf("pebblestore: lookup cids: %w", err)
		}
		if found {
			results[i] = r
		}
	}
	return results, nil
}

// Pending returns up to limit (at least 1) of the oldest messages pending
// for user, oldest first, and whether more are pending: the held-back
// entries, then the inbox entries after the user's cursor that are not
// acked out of order.
func (s *Store) Pending(_ context.Context, user string, limit int) ([]protocol.Message, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("pebblestore: pending: limit %d is not positive", limit)
	}
	v, done, err := s.acquire("pending")
	if err != nil {
		return nil, false, err
	}
	defer done()
	msgs, more, err := pending(v.snap, user, limit)
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: pending: %w", err)
	}
	return msgs, more, nil
}

func pending(r pebble.Reader, user string, limit int) ([]protocol.Message, bool, error) {
	msgs := make([]protocol.Message, 0, min(limit, maxPrealloc)+1)
	// The held-back entries first: they are below the cursor. Their
	// values carry the records (empty in stores written before they did:
	// then the m key).
	held := lpPrefix(pHeld, user)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: held, UpperBound: prefixEnd(held)})
	if err != nil {
		return nil, false, err
	}
	for ok := it.First(); ok && len(msgs) <= limit; ok = it.Next() {
		seq := seqSuffix(it.Key())
		rec, err := copiedMsg(r, seq, it.Value())
		if err != nil {
			_ = it.Close()
			return nil, false, err
		}
		msgs = append(msgs, rec.message(seq))
	}
	if err := it.Close(); err != nil {
		return nil, false, err
	}
	var seqs []uint64
	if len(msgs) <= limit {
		cursor, err := getCursor(r, user)
		if err != nil {
			return nil, false, err
		}
		acked := make(map[uint64]bool)
		if err := scan(r, lpPrefix(pAcked, user), func(k, _ []byte) error {
			acked[seqSuffix(k)] = true
			return nil
		}); err != nil {
			return nil, false, err
		}
		prefix := lpPrefix(pInbox, user)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: appendSeq(bytes.Clone(prefix), cursor+1), UpperBound: prefixEnd(prefix)})
		if err != nil {
			return nil, false, err
		}
		for ok := it.First(); ok && len(msgs)+len(seqs) <= limit; ok = it.Next() {
			if seq := seqSuffix(it.Key()); !acked[seq] {
				seqs = append(seqs, seq)
			}
		}
		if err := it.Close(); err != nil {
			return nil, false, err
		}
	}
	more := len(msgs)+len(seqs) > limit
	if more {
		if len(seqs) > 0 {
			seqs = seqs[:len(seqs)-1]
		} else {
			msgs = msgs[:limit]
		}
	}
	rest, err := readMessages(r, seqs)
	return append(msgs, rest...), more, err
}

// copiedMsg decodes the copy of the record of seq that val (an h or p
// value) carries, or reads the m key when val is empty (a store written
// before those values carried records).
func copiedMsg(r pebble.Reader, seq uint64, val []byte) (msgRecord, error) {
	if len(val) > 0 {
		return decodeMsg(val)
	}
	return readMsg(r, seq)
}

// readMessages reads the messages with seqs from r, in that order.
func readMessages(r pebble.Reader, seqs []uint64) ([]protocol.Message, error) {
	msgs := make([]protocol.Message, len(seqs))
	for i, seq := range seqs {
		rec, err := readMsg(r, seq)
		if err != nil {
			return nil, err
		}
		msgs[i] = rec.message(seq)
	}
	return msgs, nil
}

// History returns a page of the conversation between user and with; see
// plugins.Storage. It iterates the conversation's h keys backwards from
// the cursor (or the end), reading one page and one key more.
func (s *Store) History(_ context.Context, user, with, before string, limit int) ([]protocol.Message, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("pebblestore: history: limit %d is not positive", limit)
	}
	v, done, err := s.acquire("history")
	if err != nil {
		return nil, false, err
	}
	defer done()
	// A deleted account's conversations stay readable: with only has to
	// have been registered once.
	known, err := has(v.snap, userKey(with))
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: history: %w", err)
	}
	if !known {
		return nil, false, fmt.Errorf("pebblestore: history: user %q: %w", with, plugins.ErrUnknownUser)
	}
	conv := convPrefix(user, with)
	upper := prefixEnd(conv)
	if before != "" {
		seq, ok, err := resolveID(v.snap, before)
		if err != nil {
			return nil, false, fmt.Errorf("pebblestore: history: %w", err)
		}
		k := appendSeq(bytes.Clone(conv), seq)
		if ok {
			ok, err = has(v.snap, k)
			if err != nil {
				return nil, false, fmt.Errorf("pebblestore: history: %w", err)
			}
		}
		if !ok {
			return nil, false, fmt.Errorf("pebblestore: history: before %q: %w", before, plugins.ErrBadCursor)
		}
		upper = k
	}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: conv, UpperBound: upper})
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: history: %w", err)
	}
	// The page, newest first: the records the h values carry, or (an
	// empty value, written before they did) the m record of the seq.
	msgs := make([]protocol.Message, 0, min(limit, maxPrealloc)+1)
	for ok := it.Last(); ok && len(msgs) <= limit; ok = it.Prev() {
		seq := seqSuffix(it.Key())
		rec, err := copiedMsg(v.snap, seq, it.Value())
		if err != nil {
			_ = it.Close()
			return nil, false, fmt.Errorf("pebblestore: history: %w", err)
		}
		msgs = append(msgs, rec.message(seq))
	}
	if err := it.Close(); err != nil {
		return nil, false, fmt.Errorf("pebblestore: history: %w", err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	slices.Reverse(msgs)
	return msgs, more, nil
}
