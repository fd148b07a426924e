package pgstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
	"github.com/qqchat/qq/plugins/storagetest"
)

// BenchmarkWriteMixed is the shape of qqd's load, the workload of
// sqlitestore's and pebblestore's BenchmarkWriteMixed: batches of
// messages with cids between random pairs of 1,000 users, each batch
// also acking the messages of the batch before it. The PostgreSQL server
// runs on the same machine with fsync on; cpu-ns/msg counts this process
// only, not the server's work.
func BenchmarkWriteMixed(b *testing.B) {
	for _, n := range []int{16, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchWriteMixed(b, n, false) })
	}
}

// BenchmarkWriteMixedFriends is BenchmarkWriteMixed with friendships and
// blocks in use: every message is FriendsOnly, between friends.
func BenchmarkWriteMixedFriends(b *testing.B) {
	for _, n := range []int{16, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchWriteMixed(b, n, true) })
	}
}

func benchWriteMixed(b *testing.B, n int, friends bool) {
	dsn := pgtesting.NewDB(b, server)
	s := openTestStore(b, dsn)
	storagetest.WriteMixed(b, s, n, friends, func(fr, bl [][2]string) error {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		both := make([][2]string, 0, 2*len(fr)) // a friendship is two rows
		for _, p := range fr {
			both = append(both, p, [2]string{p[1], p[0]})
		}
		for _, q := range []struct {
			table string
			cols  []string
			pairs [][2]string
		}{{"friends", []string{"owner", "friend", "since_ms"}, both}, {"blocks", []string{"blocker", "blocked", "ts"}, bl}} {
			rows := make([][]any, len(q.pairs))
			for i, p := range q.pairs {
				rows[i] = []any{p[0], p[1], int64(1)}
			}
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{q.table}, q.cols, pgx.CopyFromRows(rows)); err != nil {
				return err
			}
		}
		return nil
	})
}
