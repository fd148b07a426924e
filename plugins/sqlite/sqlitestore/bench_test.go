package sqlitestore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// BenchmarkWrite measures group commits of batches of messages with cids.
func BenchmarkWrite(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		for _, n := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, n), func(b *testing.B) {
				s, _, _ := newStore(b, func(o *sqlitestore.Options) { o.Synchronous = sync })
				ctx := context.Background()
				msgs := make([]plugins.NewMessage, n)
				batch := &plugins.WriteBatch{Messages: msgs}
				for i := 0; b.Loop(); i++ {
					for j := range msgs {
						msgs[j] = nm("alice", "bob", "a message of moderate length, like most chat messages", fmt.Sprintf("%d-%d", i, j))
					}
					if _, err := s.Write(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
