package pebblestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/storagedump"
)

// dumpSource opens the store the dump benchmarks read: the one at
// $QQ_DUMP_STORE (a copy: Open prunes its old de-duplication keys), or
// a new one with 100,000 messages between 100 users, 1% of them pending.
// It returns the store and its number of messages.
func dumpSource(b *testing.B) (*pebblestore.Store, int64) {
	b.Helper()
	ctx := context.Background()
	if path := os.Getenv("QQ_DUMP_STORE"); path != "" {
		s, err := pebblestore.Open(ctx, pebblestore.Options{Path: path, NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		var n int64
		if err := s.Export(ctx, func(r *storagedump.Record) error {
			if r.Trailer != nil {
				n = r.Trailer.Messages
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		return s, n
	}
	s, _, _ := newStore(b, func(o *pebblestore.Options) { o.NoSync = true })
	const users, total, batch = 100, 100_000, 1000
	for i := range users {
		if err := s.CreateUser(ctx, fmt.Sprintf("u%d", i), "h"); err != nil {
			b.Fatal(err)
		}
	}
	var acks []plugins.Ack
	for i := 0; i < total; i += batch {
		msgs := make([]plugins.NewMessage, batch)
		for j := range msgs {
			k := i + j
			msgs[j] = nm(fmt.Sprintf("u%d", k%users), fmt.Sprintf("u%d", k*7%users), "a body of some forty bytes, more or less", fmt.Sprintf("c%d", k))
		}
		res := write(b, s, &plugins.WriteBatch{Messages: msgs, Acks: acks})
		acks = acks[:0]
		for j, r := range res {
			if (i+j)%100 != 0 {
				acks = append(acks, plugins.Ack{User: msgs[j].To, MsgIDs: []string{r.Message.ID}})
			}
		}
	}
	write(b, s, &plugins.WriteBatch{Acks: acks})
	return s, total
}

// BenchmarkDumpExport: Export of the whole store, the records discarded
// (raw) or encoded as JSON lines to nowhere (json), in messages per
// second.
func BenchmarkDumpExport(b *testing.B) {
	s, n := dumpSource(b)
	for _, enc := range []bool{false, true} {
		name := "raw"
		if enc {
			name = "json"
		}
		b.Run(name, func(b *testing.B) {
			e := json.NewEncoder(io.Discard)
			start := time.Now()
			for range b.N {
				if err := s.Export(context.Background(), func(r *storagedump.Record) error {
					if enc {
						return e.Encode(r)
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkDumpMigrate: Export of the whole store into Import of a new
// one, as `qqd storage migrate` streams them (the export runs in its own
// goroutine), in messages per second.
func BenchmarkDumpMigrate(b *testing.B) {
	s, n := dumpSource(b)
	ctx := context.Background()
	var elapsed time.Duration
	for i := range b.N {
		dst, err := pebblestore.Open(ctx, pebblestore.Options{Path: filepath.Join(b.TempDir(), fmt.Sprintf("dst%d", i)), DedupWindow: 24 * time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		ch := make(chan *storagedump.Record, 1024)
		errc := make(chan error, 1)
		go func() {
			defer close(ch)
			errc <- s.Export(ctx, func(r *storagedump.Record) error {
				ch <- r
				return nil
			})
		}()
		err = dst.Import(ctx, func() (*storagedump.Record, error) {
			r, ok := <-ch
			if !ok {
				return nil, io.EOF
			}
			return r, nil
		})
		for range ch { // drain, should the import have stopped early
		}
		if xerr := <-errc; xerr != nil {
			b.Fatal(xerr)
		}
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		if err := dst.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "msgs/s")
}
