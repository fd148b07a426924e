package pebblestore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
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
	const users, friendsEach, blocksEach = 1000, 20, 5
	s, _, _ := newStore(b, func(o *pebblestore.Options) { o.CacheSize, o.MemTableSize = 0, 0 })
	ctx := context.Background()
	name := func(u int) string { return fmt.Sprintf("u%d", u) }
	for u := range users {
		if err := s.CreateUser(ctx, name(u), "hash"); err != nil && !errors.Is(err, plugins.ErrUserExists) {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// peers[u] are u's friends: u±1 .. u±friendsEach/2, wrapping around.
	var peers [][]int
	if friends {
		peers = make([][]int, users)
		var fr, bl [][2]string
		for u := range users {
			for k := 1; k <= friendsEach/2; k++ {
				v := (u + k) % users
				peers[u], peers[v] = append(peers[u], v), append(peers[v], u)
				fr = append(fr, [2]string{name(u), name(v)})
			}
			for k := range blocksEach { // users no one befriends: u + 100, 200, ...
				bl = append(bl, [2]string{name(u), name((u + 100*(k+1)) % users)})
			}
		}
		if err := pebblestore.PutRelations(s, fr, bl); err != nil {
			b.Fatal(err)
		}
	}
	run := time.Now().UnixNano()
	cpu0 := cpuTime(b)
	msgs := make([]plugins.NewMessage, n)
	var acks []plugins.Ack
	body := strings.Repeat("x", 100)
	for i := 0; b.Loop(); i++ {
		for j := range msgs {
			from := rng.IntN(users)
			var to int
			if friends {
				to = peers[from][rng.IntN(len(peers[from]))]
			} else if to = rng.IntN(users - 1); to >= from {
				to++
			}
			msgs[j] = nm(name(from), name(to), body, fmt.Sprintf("c%d-%d-%d", run, i, j))
			msgs[j].FriendsOnly = friends
		}
		res, err := s.Write(ctx, &plugins.WriteBatch{Messages: msgs, Acks: acks})
		if err != nil {
			b.Fatal(err)
		}
		acks = acks[:0]
		for j, r := range res {
			if r.Err != nil || r.Duplicate {
				b.Fatalf("message %d: %+v", j, r)
			}
			acks = append(acks, plugins.Ack{User: msgs[j].To, MsgIDs: []string{r.Message.ID}})
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N*n), "cpu-ns/msg")
	// Whether the run was long enough to fill the memtable: a run that
	// never flushes measures neither the flushes nor lookups that reach
	// the sstables.
	b.ReportMetric(float64(pebblestore.Flushes(s)), "flushes")
}

// cpuTime is the user+system CPU time of this process so far: with fsync
// in every commit, wall time per message says little about cost.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
