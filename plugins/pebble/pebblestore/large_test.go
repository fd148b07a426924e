package pebblestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins/pebble/pebblestore"
)

// openLarge opens the store named by QQ_PEBBLE_LARGE (a copy of one that
// `qqbench fill --storage pebble` filled, with users u0..u<QQ_LARGE_USERS-1>),
// or skips: the benchmarks below measure reads at a size no test builds.
func openLarge(b *testing.B) (*pebblestore.Store, int) {
	path := os.Getenv("QQ_PEBBLE_LARGE")
	if path == "" {
		b.Skip("QQ_PEBBLE_LARGE names no filled store")
	}
	users := 1000
	if v := os.Getenv("QQ_LARGE_USERS"); v != "" {
		fmt.Sscan(v, &users)
	}
	start := time.Now()
	s, err := pebblestore.Open(context.Background(), pebblestore.Options{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("open: %v", time.Since(start))
	b.Cleanup(func() { s.Close() })
	return s, users
}

// BenchmarkLargeHistory is qqbench's history call on a large store: the
// newest page of 50 of a random conversation.
func BenchmarkLargeHistory(b *testing.B) {
	s, users := openLarge(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	var msgs int
	for range b.N {
		i, j := r.IntN(users), r.IntN(users)
		for j == i {
			j = r.IntN(users)
		}
		page, _, err := s.History(ctx, fmt.Sprintf("u%d", i), fmt.Sprintf("u%d", j), "", 50)
		if err != nil {
			b.Fatal(err)
		}
		msgs += len(page)
	}
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/call")
}

// BenchmarkLargePending is the offline call: the oldest page of 50 a user
// has pending.
func BenchmarkLargePending(b *testing.B) {
	s, users := openLarge(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	var msgs int
	for range b.N {
		page, _, err := s.Pending(ctx, fmt.Sprintf("u%d", r.IntN(users)), 50)
		if err != nil {
			b.Fatal(err)
		}
		msgs += len(page)
	}
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/call")
}
