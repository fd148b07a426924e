package pebblestore

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Test hooks; compiled into the test binary only.

// MsgIDLen is the length of a msg_id.
const MsgIDLen = msgIDLen

// SetBeforePublish makes every later commit call fn after it returned
// and before readers may see it (fn runs under the write lock).
func SetBeforePublish(s *Store, fn func()) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.beforePublish = fn
}

// OutOfOrderAcks returns how many out-of-order acks the store keeps for
// user, in memory and in the database.
func OutOfOrderAcks(s *Store, user string) (inMemory, stored int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	inMemory = len(s.acked[user])
	err = scan(s.db, lpPrefix(pAcked, user), func([]byte, []byte) error {
		stored++
		return nil
	})
	return inMemory, stored, err
}

// DedupBuckets lists the de-duplication buckets that hold keys.
func DedupBuckets(s *Store) ([]uint32, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.dedupBuckets()
}

// PutForeignMessage stores a message from to to that keeps a foreign id
// (as a migration from another store would), with the next seq, pending
// for to, through the same commit path as Write.
func PutForeignMessage(s *Store, id, from, to, body string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	s.lastSeq++
	seq := s.lastSeq
	rec := msgRecord{TS: s.nextTS(), ID: id, From: from, To: to, Body: body, Status: "queued"}
	for _, kv := range []struct{ k, v []byte }{
		{msgKey(seq), rec.append(nil)},
		{key(pAlias, id), u64(seq)},
		{appendSeq(convPrefix(from, to), seq), nil}, // empty: as a store written before h values carried records
		{seqKey(pInbox, to, seq), nil},
		{metaKey, appendSeqMeta(nil, s.lastSeq, s.lastTS.Load())},
	} {
		if err := b.Set(kv.k, kv.v, nil); err != nil {
			return err
		}
	}
	var d delta
	d.addPending(to, 1)
	_, err := s.commit(context.Background(), b, s.syncOpt, &d)
	return err
}

// PutRelations stores friendships (both sides, since 1) and blocks (at
// 1) directly, in one batch without fsync: a benchmark's setup.
func PutRelations(s *Store, friends, blocks [][2]string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, f := range friends {
		if err := addFriends(b, f[0], f[1], 1); err != nil {
			return err
		}
	}
	for _, bl := range blocks {
		if err := b.Set(key(pBlock, bl[0], bl[1]), i64(1), nil); err != nil {
			return err
		}
		if err := b.Set(key(pBlockR, bl[1], bl[0]), nil, nil); err != nil {
			return err
		}
		s.blockers[bl[0]] = struct{}{}
	}
	_, err := s.commit(context.Background(), b, nil, nil)
	return err
}

// Flushes is how many memtable flushes the store's database has run.
func Flushes(s *Store) int64 { return s.db.Metrics().Flush.Count }

// HeldBack returns how many held-back entries the store keeps for user,
// in its in-memory count and in the database.
func HeldBack(s *Store, user string) (inMemory int64, stored int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	inMemory = s.held[user]
	err = scan(s.db, lpPrefix(pHeld, user), func([]byte, []byte) error {
		stored++
		return nil
	})
	return inMemory, stored, err
}

// MaxAcked is the bound of a user's out-of-order ack set.
const MaxAcked = maxAcked

// PutLegacyAcks acks ids of user the way a store written before held-back
// entries existed could have: an a key each, however many, with the
// cursor left where it is. Reopen the store to load them.
func PutLegacyAcks(s *Store, user string, ids []string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		seq, ok, err := resolveID(s.db, id)
		if err != nil || !ok {
			return fmt.Errorf("resolve %q: %v", id, err)
		}
		if err := b.Set(seqKey(pAcked, user, seq), nil, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}
