package daemon

import (
	"strings"
	"testing"
)

// BenchmarkDispatch measures session.handle, one frame per op, on a
// logged-in session: decode, the handler table, the login gate and the
// handler.
//
//   - ping: the cheapest request; includes queuing the ok and starting
//     the connection's writer goroutine when its queue was empty (the
//     write goes to a benchConn).
//   - send/cid, send/nocid: the decode and validation of a send up to
//     pipeline.submit (field reads, server cid for a send without one,
//     the send-rate bucket, the inflight slot, the writeReq). The
//     pipeline is replaced by a bare channel that the benchmark drains,
//     so filters and storage are not part of it (BenchmarkSend and
//     BenchmarkAnswer cover them).
func BenchmarkDispatch(b *testing.B) {
	body := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name   string
		line   string
		submit bool // the handler submits to the pipeline
	}{
		{"ping", `{"type":"ping","id":"p-17"}`, false},
		{"send/cid", `{"type":"send","id":"c-17","to":"bob","body":"` + body + `","cid":"alice-17"}`, true},
		{"send/nocid", `{"type":"send","id":"c-17","to":"bob","body":"` + body + `"}`, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := newBenchServer(b)
			s := benchLogin(srv, "alice")
			line := []byte(tc.line)

			// The real pipeline is restored before Shutdown stops it
			// (cleanups run last-registered first).
			real := srv.pipe
			in := make(chan *writeReq, 1)
			srv.pipe = &pipeline{srv: srv, in: in}
			b.Cleanup(func() { srv.pipe = real })

			check := func() {
				if !tc.submit {
					return
				}
				select {
				case r := <-in:
					r.sess.releaseInflight()
				default:
					b.Fatalf("%s: nothing submitted (the handler answered an error)", tc.name)
				}
			}
			s.handle(line)
			check()
			b.ReportAllocs()
			for b.Loop() {
				s.handle(line)
				check()
			}
			b.StopTimer()
			srv.writers.Wait() // no more output is queued
			if s.isClosing() {
				b.Fatal("session closed during the benchmark")
			}
			if !tc.submit && benchWritten(s) == 0 {
				b.Fatal("no reply was written")
			}
		})
	}
}
