package route_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/qqchat/qq/daemon/route"
)

type conn struct{ user string }

func (c *conn) User() string { return c.user }

var _ route.Router[*conn] = (*route.Local[*conn])(nil)

// collect is a Deliverer that records whom a push reached, with which
// frame.
type collect struct {
	got    []*conn
	frames []string
}

func (c *collect) Deliver(s *conn, frame []byte) {
	c.got = append(c.got, s)
	c.frames = append(c.frames, string(frame))
}

func pushed(r route.Router[*conn], user string, epoch uint64) []*conn {
	var c collect
	r.Push(user, epoch, []byte("frame"), &c)
	for _, f := range c.frames {
		if f != "frame" {
			panic("Push delivered another frame: " + f)
		}
	}
	return c.got
}

func TestLocal(t *testing.T) {
	r := route.NewLocal[*conn]()
	a1, a2, b := &conn{"alice"}, &conn{"alice"}, &conn{"bob"}
	r.Join(a1)
	e1 := r.Advance()
	r.Join(a2)
	r.Join(b)
	if got := r.Users(); !slices.Equal(got, []string{"alice", "bob"}) || r.Count() != 2 {
		t.Fatalf("Users() = %v, Count() = %d", got, r.Count())
	}
	// a2 joined at epoch e1: pushes of e1 (committed before it joined)
	// do not reach it, later ones do.
	if got := pushed(r, "alice", e1); !slices.Equal(got, []*conn{a1}) {
		t.Errorf("Push(epoch %d) reached %v, want a1 only", e1, got)
	}
	e2 := r.Advance()
	if got := pushed(r, "alice", e2); !slices.Equal(got, []*conn{a1, a2}) {
		t.Errorf("Push(epoch %d) reached %v, want a1 and a2", e2, got)
	}
	if got := pushed(r, "alice", route.AllEpochs); len(got) != 2 {
		t.Errorf("Push(AllEpochs) reached %d sessions, want 2", len(got))
	}
	r.Leave(a1)
	r.Leave(a1) // no-op
	if got := pushed(r, "alice", route.AllEpochs); !slices.Equal(got, []*conn{a2}) || !r.Online("alice") {
		t.Errorf("after Leave(a1): %v, online %v", got, r.Online("alice"))
	}
	r.Leave(a2)
	if r.Online("alice") || r.Count() != 1 || len(pushed(r, "alice", route.AllEpochs)) != 0 {
		t.Errorf("alice still online after her last session left")
	}
	r.Leave(&conn{"carol"}) // never joined: no-op
}

// TestLeaveDuringPush: a session may leave (from inside deliver, as a
// session that starts closing does) while a push iterates its user's
// sessions; the push finishes on its snapshot.
func TestLeaveDuringPush(t *testing.T) {
	r := route.NewLocal[*conn]()
	cs := []*conn{{"alice"}, {"alice"}, {"alice"}}
	for _, c := range cs {
		r.Join(c)
	}
	n := 0
	r.Push("alice", route.AllEpochs, nil, deliverFunc(func(c *conn) {
		n++
		r.Leave(c)
	}))
	if n != 3 || r.Online("alice") {
		t.Errorf("push reached %d sessions, online after %v; want 3 and false", n, r.Online("alice"))
	}

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				c := &conn{"bob"}
				r.Join(c)
				r.Push("bob", r.Advance(), nil, deliverFunc(func(*conn) {}))
				if (i+j)%2 == 0 {
					r.Leave(c)
				}
			}
		})
	}
	wg.Wait()
	if total := len(r.Sessions(nil, "bob")); total != 800 {
		t.Errorf("%d bob sessions joined, want 800", total)
	}
}

type deliverFunc func(*conn)

func (f deliverFunc) Deliver(c *conn, _ []byte) { f(c) }
