package pebblestore

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
