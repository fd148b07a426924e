package daemon

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
)

// BenchmarkRouter measures the router with sessions users online, one
// real session each (connection: a benchConn), one op per lookup or
// push:
//
//   - online: router.online, which the store stage calls for every send
//     to choose sent or queued.
//   - push: delivering a ~200-byte msg frame to one user through the
//     router's and the session's own API, router.each with
//     session.enqueue: the router's read lock, the epoch check, the
//     session's lock, the append, and starting a writer goroutine when
//     none runs. (It does not call pipeline.push, whose batching of
//     writes belongs to the single answer goroutine: BenchmarkAnswer
//     measures that.)
//   - push+churn: push, while every goroutine also logs a session in and
//     out (router add and remove, the write lock) once per 100 pushes.
//
// serial runs on one goroutine (the writer goroutines it starts run on
// the other Ps); parallel uses b.RunParallel (GOMAXPROCS goroutines), so
// the difference between the two is lock and cache-line contention.
// Recipients are picked round-robin from a random start per goroutine.
func BenchmarkRouter(b *testing.B) {
	m := protocol.Message{ID: "01m8c670vr839tn6mrwvr3cycm", From: "alice", To: "bob",
		Body: strings.Repeat("x", 100), TS: 1795705504632}
	frame := protocol.AppendPush(nil, &m)
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			srv := newBenchServer(b)
			users := make([]string, n)
			for i := range users {
				users[i] = fmt.Sprintf("u%d", i)
				benchLogin(srv, users[i])
			}
			epoch := srv.router.Advance() // every session joined before it
			r := srv.router
			d := &benchDeliverer{}
			push := func(user string) { r.Push(user, epoch, frame, d) }

			b.Run("online/serial", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if !r.Online(users[i]) {
						b.Fatal("not online")
					}
					if i++; i == n {
						i = 0
					}
				}
			})
			b.Run("online/parallel", func(b *testing.B) {
				b.ReportAllocs()
				var missed atomic.Bool
				b.RunParallel(func(pb *testing.PB) {
					i := rand.IntN(n)
					for pb.Next() {
						if !r.Online(users[i]) {
							missed.Store(true)
						}
						if i++; i == n {
							i = 0
						}
					}
				})
				if missed.Load() {
					b.Fatal("not online")
				}
			})
			b.Run("push/serial", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					push(users[i])
					if i++; i == n {
						i = 0
					}
				}
			})
			b.Run("push/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := rand.IntN(n)
					for pb.Next() {
						push(users[i])
						if i++; i == n {
							i = 0
						}
					}
				})
			})
			var churners atomic.Int64
			b.Run("push+churn/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					// A session that is never pushed to (it joins at the
					// current epoch), logged in and out again and again.
					c := newSession(srv, &benchConn{})
					c.user = fmt.Sprintf("churn%d", churners.Add(1))
					c.loggedIn.Store(true)
					i, k := rand.IntN(n), 0
					for pb.Next() {
						push(users[i])
						if i++; i == n {
							i = 0
						}
						if k++; k == 100 {
							k = 0
							r.Join(c)
							r.Leave(c)
						}
					}
				})
			})

			srv.writers.Wait()
			if d.refused.Load() {
				b.Fatal("a session refused output (kicked slow_consumer?)")
			}
			if got := r.Count(); got != n {
				b.Fatalf("%d users online after the pushes, want %d", got, n)
			}
		})
	}
}

// benchDeliverer queues pushes as the pipeline's Deliver does, without the
// deferred flush, and notes a refusal.
type benchDeliverer struct{ refused atomic.Bool }

func (d *benchDeliverer) Deliver(s *session, frame []byte) {
	if !s.enqueue(frame) {
		d.refused.Store(true)
	}
}
