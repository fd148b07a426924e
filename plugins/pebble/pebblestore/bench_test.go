package pebblestore_test

import (
	"fmt"
	"testing"

	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// BenchmarkWriteMixed is the shape of qqd's load, the same workload as
// sqlitestore's BenchmarkWriteMixed (so their figures compare): batches of
// messages with cids between random pairs of 1,000 users, each batch
// also acking the messages of the batch before it (every message is
// delivered and acked once), with fsync on commit.
func BenchmarkWriteMixed(b *testing.B) {
	for _, n := range []int{16, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchWriteMixed(b, n, false) })
	}
}

// BenchmarkWriteMixedFriends is BenchmarkWriteMixed with friendships and
// blocks in use, as sqlitestore's: every user has 20 friends and blocks 5
// other users, and every message is FriendsOnly, between friends (so it
// passes both checks: the block lookup and the friendship lookup).
func BenchmarkWriteMixedFriends(b *testing.B) {
	for _, n := range []int{16, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchWriteMixed(b, n, true) })
	}
}

func benchWriteMixed(b *testing.B, n int, friends bool) {
	s, _, _ := newStore(b, func(o *pebblestore.Options) { o.CacheSize, o.MemTableSize = 0, 0 })
	storagetest.WriteMixed(b, s, n, friends, func(fr, bl [][2]string) error { return pebblestore.PutRelations(s, fr, bl) })
	// Whether the run was long enough to fill the memtable: a run that
	// never flushes measures neither the flushes nor lookups that reach
	// the sstables.
	b.ReportMetric(float64(pebblestore.Flushes(s)), "flushes")
}
