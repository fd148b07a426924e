package storagetest

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
)

// WriteMixed runs the storages' BenchmarkWriteMixed workload on st, the
// shape of qqd's load, so that the figures of different storages compare:
// batches of n messages with cids between random pairs of 1,000 users
// (u0..u999, created here if missing), each batch also acking the
// messages of the batch before it (every message is delivered and acked
// once). It reports msgs/s and cpu-ns/msg (user+system CPU of the process,
// which counts a storage's background work too; with fsync in every
// commit, wall time says little about cost).
//
// With friends, every user has 20 friends and blocks 5 other users, and
// every message is FriendsOnly, between friends, so it passes both checks
// (the block lookup and the friendship lookup). relate stores those
// friendships and blocks, given as pairs, directly in the storage (making
// them with the Social calls would cost an fsync each); it is not called
// without friends.
func WriteMixed(b *testing.B, st plugins.Storage, n int, friends bool, relate func(friends, blocks [][2]string) error) {
	const users, friendsEach, blocksEach = 1000, 20, 5
	ctx := context.Background()
	name := func(u int) string { return fmt.Sprintf("u%d", u) }
	for u := range users {
		if err := st.CreateUser(ctx, name(u), "hash"); err != nil && !errors.Is(err, plugins.ErrUserExists) {
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
		if err := relate(fr, bl); err != nil {
			b.Fatal(err)
		}
	}
	run := time.Now().UnixNano()
	cpu0 := CPUTime(b)
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
			msgs[j] = plugins.NewMessage{From: name(from), To: name(to), Body: body,
				CID: fmt.Sprintf("c%d-%d-%d", run, i, j), FriendsOnly: friends}
		}
		res, err := st.Write(ctx, &plugins.WriteBatch{Messages: msgs, Acks: acks})
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
	b.ReportMetric(float64(CPUTime(b)-cpu0)/float64(b.N*n), "cpu-ns/msg")
}

// CPUTime is the user+system CPU time of this process so far.
func CPUTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
