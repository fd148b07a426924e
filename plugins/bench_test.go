package plugins_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/qqchat/qq/plugins"
)

// Run with:
//
//	go test -run '^$' -bench . -benchtime 2s ./plugins/
//
// "direct" calls the Go implementation, "grpc" goes through the adapters
// over a gRPC connection inside the process, "process" through a real
// plugin subprocess (Unix socket, mutual TLS).

var batchSizes = []int{1, 64}

func filterBatch(n int) []plugins.FilterMessage {
	msgs := make([]plugins.FilterMessage, n)
	for i := range msgs {
		msgs[i] = plugins.FilterMessage{From: "alice", To: "bob", Body: "hello bob, this is a message of ordinary length", TS: int64(i)}
	}
	return msgs
}

func BenchmarkFilterCall(b *testing.B) {
	impls := []struct {
		name string
		get  func(b *testing.B) plugins.Filter
	}{
		{"direct", func(*testing.B) plugins.Filter { return testFilter{} }},
		{"grpc", func(b *testing.B) plugins.Filter { return inProcessFilter(b, nil) }},
		{"process", func(b *testing.B) plugins.Filter {
			p, err := startPlugin(b, "bench", plugins.KindFilter, nil, plugins.Env{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return p.Filter()
		}},
	}
	for _, impl := range impls {
		for _, n := range batchSizes {
			b.Run(fmt.Sprintf("%s/batch=%d", impl.name, n), func(b *testing.B) {
				f := impl.get(b)
				msgs := filterBatch(n)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := f.Filter(ctx, msgs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
			})
		}
	}
}

// BenchmarkStorageWrite writes batches to sqlitestore with synchronous
// "off", so that the figures show the call's cost rather than fsync's.
func BenchmarkStorageWrite(b *testing.B) {
	impls := []struct {
		name string
		get  func(b *testing.B) plugins.Storage
	}{
		{"direct", func(b *testing.B) plugins.Storage {
			env, cfg := sqliteConfig(b, "off")
			s, err := newTestStorage(env, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
		{"grpc", func(b *testing.B) plugins.Storage {
			env, cfg := sqliteConfig(b, "off")
			return inProcessStorage(b, newTestStorage, env, cfg)
		}},
		{"process", func(b *testing.B) plugins.Storage {
			env, cfg := sqliteConfig(b, "off")
			p, err := startPlugin(b, "bench", plugins.KindStorage, cfg, env, nil)
			if err != nil {
				b.Fatal(err)
			}
			return p.Storage()
		}},
	}
	for _, impl := range impls {
		for _, n := range batchSizes {
			b.Run(fmt.Sprintf("%s/batch=%d", impl.name, n), func(b *testing.B) {
				st := impl.get(b)
				ctx := context.Background()
				for _, u := range []string{"alice", "bob"} {
					if err := st.CreateUser(ctx, u, "h"); err != nil {
						b.Fatal(err)
					}
				}
				batch := &plugins.WriteBatch{Messages: make([]plugins.NewMessage, n)}
				seq := 0
				b.ReportAllocs()
				for b.Loop() {
					for i := range batch.Messages {
						seq++
						batch.Messages[i] = msg("alice", "bob", "hello bob, this is a message of ordinary length", "c"+strconv.Itoa(seq))
					}
					if _, err := st.Write(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
			})
		}
	}
}
