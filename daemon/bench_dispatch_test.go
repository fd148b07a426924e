package daemon_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// BenchmarkDispatchTCP measures a logged-in connection's whole request
// path for the cheapest request, over real TCP on loopback: the client
// writes a burst of pipelined pings in one write and reads every ok, one
// burst per op. It covers the reader loop (frame split, read deadline),
// decode, the handler table, queuing the ok, the writer goroutine and both
// ends' syscalls. Reported per frame; allocs/frame counts the client's
// allocations too (it makes none per frame).
func BenchmarkDispatchTCP(b *testing.B) {
	for _, n := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("ping/pipelined=%d", n), func(b *testing.B) {
			s := daemontest.Start(b)
			c := s.User(b, "alice")
			burst := bytes.Repeat([]byte(`{"type":"ping","id":"p-17"}`+"\n"), n)
			fr := protocol.NewFrameReader(c.C, 1<<16) // Conn's own reader is empty after login
			ok := []byte(`{"type":"ok","id":"p-17"}`)

			b.ReportAllocs()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			ops := 0
			for b.Loop() {
				if ops%4096 == 0 { // a deadline per op would cost the client a timer update
					c.C.SetDeadline(time.Now().Add(daemontest.Timeout))
				}
				if _, err := c.C.Write(burst); err != nil {
					b.Fatal(err)
				}
				for range n {
					line, err := fr.ReadFrame()
					if err != nil {
						b.Fatal(err)
					}
					if !bytes.Equal(line, ok) {
						b.Fatalf("got %s, want %s", line, ok)
					}
				}
				ops++
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			frames := float64(ops * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/frames, "ns/frame")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/frames, "allocs/frame")
		})
	}
}
