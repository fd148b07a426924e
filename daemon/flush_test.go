package daemon_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/qqchat/qq/daemon/daemontest"
)

// TestBatchOutputToManySessions: when one batch answers and pushes to
// hundreds of connections (the answer stage then writes them from several
// goroutines), every sender gets its oks in order and every recipient its
// pushes in order, each exactly once.
func TestBatchOutputToManySessions(t *testing.T) {
	const users, each = 300, 4
	s := daemontest.Start(t)
	s.Users(t, users)
	conns := make([]*daemontest.Conn, users)
	for i := range conns {
		conns[i] = s.Dial(t)
		conns[i].Login(fmt.Sprintf("u%d", i), "password1")
	}
	// Everyone writes its sends at once, so that batches hold many
	// senders and recipients.
	var start sync.WaitGroup
	start.Add(1)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			start.Wait()
			var b []byte
			for k := range each {
				b = fmt.Appendf(b, `{"type":"send","id":%d,"to":"u%d","body":"m %d %d"}`+"\n", k, (i+1)%users, i, k)
			}
			c.SendRaw(b)
		})
	}
	start.Done()
	wg.Wait()
	for i, c := range conns {
		from := (i + users - 1) % users
		oks, pushes := 0, 0
		for oks < each || pushes < each {
			f := c.Read()
			switch f.Type {
			case "ok":
				if f.ID == nil || string(f.ID) != fmt.Sprint(oks) {
					t.Fatalf("u%d: ok %s, want id %d", i, f.ID, oks)
				}
				oks++
			case "msg":
				if want := fmt.Sprintf("m %d %d", from, pushes); f.Body != want {
					t.Fatalf("u%d: push %q, want %q", i, f.Body, want)
				}
				pushes++
			default:
				t.Fatalf("u%d: unexpected %s frame", i, f.Type)
			}
		}
	}
	for _, c := range conns {
		c.ExpectSilence(0)
	}
}
