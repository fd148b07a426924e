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
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchWriteMixed(b, n) })
	}
}

func benchWriteMixed(b *testing.B, n int) {
	const users = 1000
	s, _, _ := newStore(b, func(o *pebblestore.Options) { o.CacheSize, o.MemTableSize = 0, 0 })
	ctx := context.Background()
	name := func(u int) string { return fmt.Sprintf("u%d", u) }
	for u := range users {
		if err := s.CreateUser(ctx, name(u), "hash"); err != nil && !errors.Is(err, plugins.ErrUserExists) {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	run := time.Now().UnixNano()
	cpu0 := cpuTime(b)
	msgs := make([]plugins.NewMessage, n)
	var acks []plugins.Ack
	body := strings.Repeat("x", 100)
	for i := 0; b.Loop(); i++ {
		for j := range msgs {
			from := rng.IntN(users)
			to := rng.IntN(users - 1)
			if to >= from {
				to++
			}
			msgs[j] = nm(name(from), name(to), body, fmt.Sprintf("c%d-%d-%d", run, i, j))
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
