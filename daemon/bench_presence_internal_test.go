package daemon

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/qqchat/qq/config"
)

// BenchmarkPresenceLogin measures what presence costs a login of a user
// with 500 friends, all online (issue target: at most 5 ms of server
// CPU): reading the friends and blocks from storage (SQLite, as qqd
// does), joining the registry, and pushing "online" to 500 friends'
// connections; then the logout's "offline" to the same 500 after the
// debounce (1 ns here), which the loop waits for. So one op is a whole
// login and logout cycle as friends see it.
func BenchmarkPresenceLogin(b *testing.B) {
	const friends = 500
	srv := newBenchServer(b, func(c *config.Config) { c.Presence.OfflineDebounce = time.Nanosecond })
	ps := srv.acquirePlugs()
	st, so := ps.rawStorage, ps.social
	ps.release()
	if so == nil {
		b.Fatal("storage without Social")
	}
	ctx := context.Background()
	if err := st.CreateUser(ctx, "star", "x"); err != nil {
		b.Fatal(err)
	}
	for i := range friends {
		f := fmt.Sprintf("f%d", i)
		if err := st.CreateUser(ctx, f, "x"); err != nil {
			b.Fatal(err)
		}
		if _, err := so.RequestFriend(ctx, "star", f, "", 1); err != nil {
			b.Fatal(err)
		}
		if err := so.AnswerFriendRequest(ctx, f, "star", true, 2); err != nil {
			b.Fatal(err)
		}
		benchLogin(srv, f).joinPresence([]string{"star"}, nil)
	}
	pushed := func() uint64 { return uint64(testutil.ToFloat64(srv.m.presencePushes)) }
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := processCPU(b)
	start := pushed()
	for b.Loop() {
		s := benchLogin(srv, "star")
		fs, blocks, err := s.loadSocial()
		if err != nil || len(fs) != friends {
			b.Fatalf("loadSocial: %d friends, %v", len(fs), err)
		}
		s.joinPresence(fs, blocks)
		s.closeNow(CloseClientQuit)
		for srv.presence.Len() > friends { // the debounced offline has gone out
			runtime.Gosched()
		}
	}
	// The last offline push may still be on its way (the entry goes
	// before the push).
	for deadline := time.Now().Add(10 * time.Second); pushed()-start < uint64(2*friends*b.N) && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	if got := pushed() - start; got != uint64(2*friends*b.N) {
		b.Fatalf("%d presence pushes, want %d", got, 2*friends*b.N)
	}
	srv.writers.Wait()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N)/1000, "cpu-ms/login")
	benchPerUnit(b, &before, b.N, 1, "login")
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
