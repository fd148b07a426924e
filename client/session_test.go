package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// gate makes a dialer fail while it is closed.
type gate struct{ closed atomic.Bool }

var errGateClosed = errors.New("test gate closed")

func (g *gate) dialer() *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, Control: func(string, string, syscall.RawConn) error {
		if g.closed.Load() {
			return errGateClosed
		}
		return nil
	}}
}

// fastBackoff reconnects within a few milliseconds.
func fastBackoff(o *client.SessionOptions) {
	o.MinBackoff, o.MaxBackoff = time.Millisecond, 10*time.Millisecond
}

// connect starts a session for user (registered) with the password pw.
func connect(t *testing.T, addr, user string, g *gate, opts ...func(*client.SessionOptions)) *client.Session {
	t.Helper()
	o := client.SessionOptions{User: user, Password: pw}
	if g != nil {
		o.Options.Dialer = g.dialer()
	}
	fastBackoff(&o)
	for _, f := range opts {
		f(&o)
	}
	s, err := client.Connect(testCtx(t), addr, o)
	if err != nil {
		t.Fatalf("Connect %s: %v", user, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// watcher reads a session's messages (acking each) and events.
type watcher struct {
	s       *client.Session
	mu      sync.Mutex
	msgs    []protocol.Message
	events  []client.Event
	changed chan struct{}
	done    chan struct{}
}

func watch(t *testing.T, s *client.Session) *watcher {
	w := &watcher{s: s, changed: make(chan struct{}), done: make(chan struct{})}
	go w.loop(testCtx(t))
	t.Cleanup(func() {
		s.Close()
		<-w.done
	})
	return w
}

func (w *watcher) loop(ctx context.Context) {
	defer close(w.done)
	msgs, evs := w.s.Messages(), w.s.Events()
	for msgs != nil || evs != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			w.mu.Lock()
			w.msgs = append(w.msgs, m)
			w.mu.Unlock()
			w.s.Ack(ctx, m.ID)
		case e, ok := <-evs:
			if !ok {
				evs = nil
				continue
			}
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
		}
		w.mu.Lock()
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

// waitFor waits until cond holds for what the watcher saw.
func (w *watcher) waitFor(t *testing.T, what string, cond func(msgs []protocol.Message, events []client.Event) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		w.mu.Lock()
		ok := cond(w.msgs, w.events)
		ch := w.changed
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-w.done:
			w.mu.Lock()
			ok := cond(w.msgs, w.events)
			w.mu.Unlock()
			if !ok {
				t.Fatalf("session ended (%v) before %s", w.s.Err(), what)
			}
			return
		case <-deadline:
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("no %s within 20s; messages %v; events %v", what, bodies(w.msgs), eventTypes(w.events))
		}
	}
}

// snapshot returns copies of what the watcher saw.
func (w *watcher) snapshot() ([]protocol.Message, []client.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs), slices.Clone(w.events)
}

func (w *watcher) waitEvent(t *testing.T, typ protocol.Type, n int) {
	t.Helper()
	w.waitFor(t, fmt.Sprintf("%d %s events", n, typ), func(_ []protocol.Message, es []client.Event) bool {
		return len(ofType(es, typ)) >= n
	})
}

func (w *watcher) waitBodies(t *testing.T, want ...string) {
	t.Helper()
	w.waitFor(t, fmt.Sprintf("messages %q", want), func(ms []protocol.Message, _ []client.Event) bool {
		got := bodies(ms)
		for _, b := range want {
			if !slices.Contains(got, b) {
				return false
			}
		}
		return true
	})
}

func bodies(ms []protocol.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Body
	}
	return out
}

func eventTypes(es []client.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Type)
	}
	return out
}

func ofType(es []client.Event, t protocol.Type) []client.Event {
	var out []client.Event
	for _, e := range es {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

// from returns the bodies of the messages from sender, in order.
func from(ms []protocol.Message, sender string) []string {
	var out []string
	for _, m := range ms {
		if m.From == sender {
			out = append(out, m.Body)
		}
	}
	return out
}

// history returns the whole conversation of user with other, oldest
// first, read on a new connection.
func history(t *testing.T, s *daemontest.Server, user, with string) []protocol.Message {
	t.Helper()
	c := user1(t, s, user)
	defer c.Close()
	var all []protocol.Message
	before := ""
	for {
		ms, more, err := c.History(testCtx(t), with, before, 500)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		all = append(ms, all...)
		if !more || len(ms) == 0 {
			return all
		}
		before = ms[0].ID
	}
}

// user1 logs user (registered) in on a new connection.
func user1(t *testing.T, s *daemontest.Server, name string) *client.Client {
	t.Helper()
	c := dial(t, s.Addr)
	if _, err := c.Login(testCtx(t), name, pw); err != nil {
		t.Fatalf("Login %s: %v", name, err)
	}
	return c
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// TestSessionRestart: two sessions chat while qqd restarts. Nothing is
// lost, nothing doubled: the sends made during the outage (queued, or
// whose Send gave up) are stored once each, in order; what others sent
// meanwhile arrives with the catch-up; the events tell the story.
func TestSessionRestart(t *testing.T) {
	r := daemontest.StartRestartable(t)
	register(t, r.Server, "alice", "bob", "carol")
	var ag, bg gate
	alice := connect(t, r.Addr, "alice", &ag, func(o *client.SessionOptions) { o.Remember = true })
	bob := connect(t, r.Addr, "bob", &bg)
	aw, bw := watch(t, alice), watch(t, bob)
	ctx := testCtx(t)

	for _, b := range seq("a", 1, 3) {
		if _, err := alice.Send(ctx, "bob", b); err != nil {
			t.Fatalf("Send %s: %v", b, err)
		}
	}
	bw.waitBodies(t, seq("a", 1, 3)...)

	ag.closed.Store(true)
	bg.closed.Store(true)
	r.Shutdown()
	aw.waitEvent(t, client.EventDown, 1)
	bw.waitEvent(t, client.EventDown, 1)
	if _, err := alice.Users(ctx); !errors.Is(err, client.ErrDisconnected) {
		t.Fatalf("Users while down = %v, want ErrDisconnected", err)
	}
	// Sends during the outage: queued, and one whose Send gives up.
	for _, b := range seq("a", 4, 6) {
		if _, err := alice.Enqueue("bob", b, ""); err != nil {
			t.Fatalf("Enqueue %s: %v", b, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := alice.Send(short, "bob", "a7"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send during the outage = %v, want the deadline", err)
	}
	cancel()
	if _, err := bob.Enqueue("alice", "b1", ""); err != nil {
		t.Fatal(err)
	}
	if got := len(alice.Unsent()); got != 4 {
		t.Fatalf("alice has %d unsent, want 4", got)
	}

	r.Restart()
	carol := user1(t, r.Server, "carol")
	for _, b := range []string{"c1", "c2"} {
		if _, err := carol.Send(ctx, "bob", b); err != nil {
			t.Fatal(err)
		}
	}
	bg.closed.Store(false)
	bw.waitEvent(t, client.EventUp, 2)
	bw.waitBodies(t, "c1", "c2")
	ag.closed.Store(false)
	if err := alice.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	for _, b := range seq("a", 8, 9) {
		if _, err := alice.Send(ctx, "bob", b); err != nil {
			t.Fatalf("Send %s: %v", b, err)
		}
	}
	bw.waitBodies(t, seq("a", 1, 9)...)
	aw.waitBodies(t, "b1")
	aw.waitEvent(t, client.EventSendDone, 4)

	bm, _ := bw.snapshot()
	if got, want := from(bm, "alice"), seq("a", 1, 9); !slices.Equal(got, want) {
		t.Errorf("bob got from alice %q, want %q", got, want)
	}
	if got := from(bm, "carol"); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Errorf("bob got from carol %q", got)
	}
	h := history(t, r.Server, "alice", "bob")
	if got := from(h, "alice"); !slices.Equal(got, seq("a", 1, 9)) {
		t.Errorf("alice's messages stored %q: each send must be stored once, in order", got)
	}
	if got := from(h, "bob"); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("bob's messages stored %q", got)
	}

	am, aes := aw.snapshot()
	if got := from(am, "bob"); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("alice got from bob %q", got)
	}
	downs := ofType(aes, client.EventDown)
	var ke *client.KickedError
	if !errors.As(downs[0].Err, &ke) || ke.Reason != protocol.KickShutdown {
		t.Fatalf("EventDown.Err = %v, want the kicked shutdown", downs[0].Err)
	}
	recon := ofType(aes, client.EventReconnecting)
	if len(recon) < 2 || recon[0].Attempt != 1 || recon[0].Delay != ke.RetryAfter || recon[1].Err == nil {
		t.Fatalf("reconnecting events %+v: want attempt 1 after the server's hint %v, then failures", recon, ke.RetryAfter)
	}
	// alice asked for a resume token and came back with it; bob, who did
	// not, with his password.
	ups := ofType(aes, client.EventUp)
	if len(ups) != 2 || ups[0].Attempt != 0 || ups[0].Resumed || ups[1].Attempt < 2 || !ups[1].Resumed {
		t.Fatalf("alice's up events %+v: want the first login, then a resume after some attempts", ups)
	}
	if tok, exp := alice.Token(); !strings.HasPrefix(tok, "qqt1.") || exp.Before(time.Now()) {
		t.Fatalf("alice's Token = %q, %v", tok, exp)
	}
	_, bes := bw.snapshot()
	if ups := ofType(bes, client.EventUp); len(ups) != 2 || ups[1].Resumed {
		t.Fatalf("bob's up events %+v: want a password login again", ups)
	}
	if tok, _ := bob.Token(); tok != "" {
		t.Fatalf("bob's Token = %q without Remember", tok)
	}
	var done []string
	for _, e := range ofType(aes, client.EventSendDone) {
		if e.Err != nil || e.Send.Err != nil || e.Send.To != "bob" || e.Send.CID == "" || e.Send.Result.MsgID == "" {
			t.Errorf("EventSendDone %+v", e.Send)
		}
		done = append(done, e.Send.Body)
	}
	if !slices.Equal(done, seq("a", 4, 7)) {
		t.Errorf("send-done events for %q, want a4..a7", done)
	}
	if n := len(alice.Unsent()); n != 0 {
		t.Errorf("alice has %d unsent after Flush", n)
	}
	// Everything was acked through the sessions (the last acks may still
	// be on their way).
	for _, u := range []string{"alice", "bob"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c := dial(t, r.Addr)
			n, err := c.Login(ctx, u, pw)
			c.Close()
			if err == nil && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s pending after the chat = %d, %v", u, n, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestSessionBackoff: the waits between attempts are random within
// [MinBackoff, MaxBackoff], growing with the attempts, the first being
// the server's retry_after_ms hint.
func TestSessionBackoff(t *testing.T) {
	r := daemontest.StartRestartable(t)
	register(t, r.Server, "alice")
	const lo, hi = 2 * time.Millisecond, 16 * time.Millisecond
	alice := connect(t, r.Addr, "alice", nil, func(o *client.SessionOptions) { o.MinBackoff, o.MaxBackoff = lo, hi })
	w := watch(t, alice)
	r.Shutdown()
	const n = 12
	w.waitEvent(t, client.EventReconnecting, n)
	r.Restart()
	w.waitEvent(t, client.EventUp, 2)

	_, es := w.snapshot()
	var ke *client.KickedError
	if !errors.As(ofType(es, client.EventDown)[0].Err, &ke) || ke.RetryAfter <= 0 {
		t.Fatalf("no kicked shutdown with a hint: %v", ofType(es, client.EventDown)[0].Err)
	}
	recon := ofType(es, client.EventReconnecting)
	distinct := map[time.Duration]bool{}
	for i, e := range recon {
		if e.Attempt != i+1 {
			t.Fatalf("reconnecting event %d has attempt %d", i, e.Attempt)
		}
		if i == 0 {
			if e.Delay != ke.RetryAfter || e.Err != nil {
				t.Fatalf("first attempt: delay %v, err %v; want the hint %v and no error", e.Delay, e.Err, ke.RetryAfter)
			}
			continue
		}
		ceil := min(hi, lo<<e.Attempt)
		if e.Delay < lo || e.Delay > ceil {
			t.Errorf("attempt %d waited %v, want within [%v, %v]", e.Attempt, e.Delay, lo, ceil)
		}
		if e.Err == nil {
			t.Errorf("attempt %d: no error of the failed attempt before it", e.Attempt)
		}
		distinct[e.Delay] = true
	}
	if len(distinct) < 3 {
		t.Errorf("delays %v: not jittered", distinct)
	}
	if up := ofType(es, client.EventUp)[1]; up.Attempt != len(recon) || up.Resumed {
		t.Errorf("EventUp %+v after %d attempts", up, len(recon))
	}
}

// TestSessionEnds: a session ends, with an error the application sees,
// when an operator kicks it or when its password no longer works; a kick
// for idleness is ridden through.
func TestSessionEnds(t *testing.T) {
	t.Run("admin kick", func(t *testing.T) {
		s := daemontest.Start(t)
		register(t, s, "alice")
		alice := connect(t, s.Addr, "alice", nil)
		w := watch(t, alice)
		if n := s.Daemon.Kick("alice", "go away"); n != 1 {
			t.Fatalf("Kick = %d", n)
		}
		<-alice.Done()
		var ke *client.KickedError
		if !errors.As(alice.Err(), &ke) || ke.Reason != protocol.KickAdmin || ke.Message != "go away" {
			t.Fatalf("Err = %v, want the admin kick", alice.Err())
		}
		<-w.done // Messages and Events were closed
		if _, es := w.snapshot(); len(ofType(es, client.EventDown)) != 1 || len(ofType(es, client.EventReconnecting)) != 0 {
			t.Fatalf("events %v: want one down and no reconnection", eventTypes(es))
		}
		if _, err := alice.Send(testCtx(t), "alice", "x"); !errors.As(err, &ke) {
			t.Fatalf("Send after the end = %v", err)
		}
	})
	t.Run("password changed", func(t *testing.T) {
		r := daemontest.StartRestartable(t)
		register(t, r.Server, "alice")
		var g gate
		alice := connect(t, r.Addr, "alice", &g)
		w := watch(t, alice)
		g.closed.Store(true)
		r.Shutdown()
		w.waitEvent(t, client.EventDown, 1)
		if _, err := alice.Enqueue("alice", "unsent", "cid-1"); err != nil {
			t.Fatal(err)
		}
		r.Restart()
		if err := r.Daemon.SetPassword(testCtx(t), "alice", "another-password"); err != nil {
			t.Fatal(err)
		}
		g.closed.Store(false)
		<-alice.Done()
		if !errors.Is(alice.Err(), &protocol.Error{Code: protocol.CodeAuthFailed}) {
			t.Fatalf("Err = %v, want auth_failed", alice.Err())
		}
		<-w.done
		if u := alice.Unsent(); len(u) != 1 || u[0].CID != "cid-1" || u[0].Body != "unsent" {
			t.Fatalf("Unsent = %+v", u)
		}
	})
	t.Run("idle", func(t *testing.T) {
		s := daemontest.Start(t, func(c *config.Config) { c.Limits.IdleTimeout = 200 * time.Millisecond })
		register(t, s, "alice")
		alice := connect(t, s.Addr, "alice", nil, func(o *client.SessionOptions) { o.PingInterval = -1 })
		w := watch(t, alice)
		w.waitEvent(t, client.EventUp, 2)
		_, es := w.snapshot()
		var ke *client.KickedError
		if !errors.As(ofType(es, client.EventDown)[0].Err, &ke) || ke.Reason != protocol.KickIdle {
			t.Fatalf("down: %v, want the idle kick", ofType(es, client.EventDown)[0].Err)
		}
	})
}

// TestSessionSends: refusals are final and reported; busy answers
// (rate_limited) are retried in order; the outbox is bounded.
func TestSessionSends(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.Limits.SendRate, c.Limits.SendBurst = 50, 1 })
	register(t, s, "alice", "bob")
	alice := connect(t, s.Addr, "alice", nil, func(o *client.SessionOptions) { o.OutboxSize = 20 })
	w := watch(t, alice)
	ctx := testCtx(t)

	_, err := alice.Send(ctx, "nobody", "hi")
	wantCode(t, err, protocol.CodeUnknownUser)
	if _, err := alice.EnqueueGroup("1", "to no group", ""); err != nil {
		t.Fatal(err)
	}
	// A burst past the rate: the session waits and retries, in order.
	var cids []string
	for _, b := range seq("m", 1, 10) {
		cid, err := alice.Enqueue("bob", b, "")
		if err != nil {
			t.Fatal(err)
		}
		cids = append(cids, cid)
	}
	if err := alice.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bodies(history(t, s, "bob", "alice")); !slices.Equal(got, seq("m", 1, 10)) {
		t.Fatalf("history = %q", got)
	}
	w.waitEvent(t, client.EventSendDone, 11)
	_, es := w.snapshot()
	done := ofType(es, client.EventSendDone)
	if !errors.Is(done[0].Err, &protocol.Error{Code: protocol.CodeNoGroup}) || done[0].Send.Group != "1" {
		t.Fatalf("group send to no group: %+v", done[0])
	}
	for i, e := range done[1:] {
		if e.Err != nil || e.Send.CID != cids[i] {
			t.Fatalf("send-done %d: %+v, err %v", i, e.Send, e.Err)
		}
	}
	// A cid already in the outbox is the same send.
	r1, err := alice.SendCID(ctx, "bob", "once", "same")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := alice.SendCID(ctx, "bob", "once", "same")
	if err != nil || r2.MsgID != r1.MsgID {
		t.Fatalf("retry with the cid: %+v, %v; first %+v", r2, err, r1)
	}

	// The outbox is bounded.
	s.Shutdown()
	w.waitEvent(t, client.EventDown, 1)
	for i := range 20 {
		if _, err := alice.Enqueue("bob", "x", ""); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
	}
	if _, err := alice.Enqueue("bob", "x", ""); !errors.Is(err, client.ErrOutboxFull) {
		t.Fatalf("Enqueue into a full outbox = %v", err)
	}
	if _, err := alice.Send(ctx, "bob", "x"); !errors.Is(err, client.ErrOutboxFull) {
		t.Fatalf("Send into a full outbox = %v", err)
	}
}

// TestSessionGroups: group entries written while a member was away are
// caught up after the reconnect, once each and in order, with the pushes
// that follow.
func TestSessionGroups(t *testing.T) {
	r := daemontest.StartRestartable(t)
	register(t, r.Server, "alice", "bob")
	ctx := testCtx(t)
	var bg gate
	alice := connect(t, r.Addr, "alice", nil)
	bob := connect(t, r.Addr, "bob", &bg)
	aw, bw := watch(t, alice), watch(t, bob)
	g, err := alice.CreateGroup(ctx, "crew", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.GroupJoin(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.GroupSend(ctx, g, "g1"); err != nil {
		t.Fatal(err)
	}
	entryBodies := func(es []client.Event) []string {
		var out []string
		for _, e := range ofType(es, protocol.TypeGroupEntry) {
			if e.Entry.Kind == "msg" {
				out = append(out, e.Entry.Body)
			}
		}
		return out
	}
	waitEntries := func(w *watcher, want ...string) {
		t.Helper()
		w.waitFor(t, fmt.Sprintf("entries %q", want), func(_ []protocol.Message, es []client.Event) bool {
			return len(entryBodies(es)) >= len(want)
		})
		if _, es := w.snapshot(); !slices.Equal(entryBodies(es), want) {
			t.Fatalf("entries %q, want %q", entryBodies(es), want)
		}
	}
	waitEntries(bw, "g1")

	bg.closed.Store(true)
	r.Shutdown()
	bw.waitEvent(t, client.EventDown, 1)
	r.Restart()
	aw.waitEvent(t, client.EventUp, 2)
	for _, b := range seq("g", 2, 4) {
		if _, err := alice.GroupSend(ctx, g, b); err != nil {
			t.Fatal(err)
		}
	}
	bg.closed.Store(false)
	bw.waitEvent(t, client.EventUp, 2)
	if _, err := alice.GroupSend(ctx, g, "g5"); err != nil {
		t.Fatal(err)
	}
	waitEntries(bw, seq("g", 1, 5)...)
	_, es := bw.snapshot()
	var seqs []int64
	for _, e := range ofType(es, protocol.TypeGroupEntry) {
		seqs = append(seqs, e.Entry.Seq)
	}
	if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
		t.Fatalf("entry seqs %v: want increasing, once each", seqs)
	}
}

// TestSessionResume: resume tokens for real: asked for with Remember,
// used to reconnect (and to connect, with no password at all), refused
// after the password changed (the session then ends with auth_failed, or
// falls back to its password), revoked by Logout; on a server without
// them the session logs in by password.
func TestSessionResume(t *testing.T) {
	bogus := "qqt1.0123456789abcdef." + strings.Repeat("A", 43)
	t.Run("no resume on the server", func(t *testing.T) {
		r := daemontest.StartRestartable(t, func(c *config.Config) { c.Tokens.Enabled = false })
		register(t, r.Server, "alice")
		_, err := client.Connect(testCtx(t), r.Addr, client.SessionOptions{User: "alice", Token: bogus})
		if !errors.Is(err, client.ErrNoCredentials) {
			t.Fatalf("Connect with a token alone = %v, want ErrNoCredentials", err)
		}
		alice := connect(t, r.Addr, "alice", nil, func(o *client.SessionOptions) { o.Token, o.Remember = bogus, true })
		w := watch(t, alice)
		r.Shutdown()
		r.Restart()
		w.waitEvent(t, client.EventUp, 2)
		_, es := w.snapshot()
		for _, up := range ofType(es, client.EventUp) {
			if up.Resumed {
				t.Fatalf("up %+v: resumed on a server without resume", up)
			}
		}
		if tok, _ := alice.Token(); tok != bogus {
			t.Fatalf("Token = %q: a token the server never saw is kept", tok)
		}
	})
	t.Run("token alone", func(t *testing.T) {
		r := daemontest.StartRestartable(t)
		register(t, r.Server, "alice")
		first := connect(t, r.Addr, "alice", nil, func(o *client.SessionOptions) { o.Remember = true })
		token, _ := first.Token()
		first.Close() // not a logout: the token stays valid
		if !strings.HasPrefix(token, "qqt1.") {
			t.Fatalf("Token = %q", token)
		}
		var g gate
		alice, err := client.Connect(testCtx(t), r.Addr, client.SessionOptions{Token: token,
			Options: client.Options{Dialer: g.dialer()}, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatalf("Connect with the token: %v", err)
		}
		w := watch(t, alice)
		if alice.User() != "alice" {
			t.Fatalf("User = %q", alice.User())
		}
		r.Shutdown()
		r.Restart()
		w.waitEvent(t, client.EventUp, 2)
		// The password changes while alice is away: her token is revoked,
		// and she has no password to fall back on.
		g.closed.Store(true)
		r.Shutdown()
		w.waitEvent(t, client.EventDown, 2)
		r.Restart()
		if err := r.Daemon.SetPassword(testCtx(t), "alice", "another-password"); err != nil {
			t.Fatal(err)
		}
		g.closed.Store(false)
		<-alice.Done()
		if !errors.Is(alice.Err(), &protocol.Error{Code: protocol.CodeAuthFailed}) {
			t.Fatalf("Err = %v, want auth_failed", alice.Err())
		}
		if tok, _ := alice.Token(); tok != "" {
			t.Fatalf("Token = %q after it was refused", tok)
		}
		_, es := w.snapshot()
		ups := ofType(es, client.EventUp)
		if len(ups) != 2 || !ups[0].Resumed || !ups[1].Resumed {
			t.Fatalf("up events %+v: want two resumes", ups)
		}
	})
	t.Run("refused token, password", func(t *testing.T) {
		s := daemontest.Start(t)
		register(t, s, "alice")
		alice := connect(t, s.Addr, "alice", nil, func(o *client.SessionOptions) { o.Token, o.Remember = bogus, true })
		w := watch(t, alice)
		w.waitEvent(t, client.EventUp, 1)
		if _, es := w.snapshot(); ofType(es, client.EventUp)[0].Resumed {
			t.Fatal("resumed with a token the server never issued")
		}
		token, _ := alice.Token()
		if token == bogus || !strings.HasPrefix(token, "qqt1.") {
			t.Fatalf("Token = %q: want the new one of the password login", token)
		}
		// Logout revokes it.
		if err := alice.Logout(testCtx(t)); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		if !errors.Is(alice.Err(), client.ErrClosed) {
			t.Fatalf("Err after Logout = %v", alice.Err())
		}
		_, err := client.Connect(testCtx(t), s.Addr, client.SessionOptions{Token: token})
		if !errors.Is(err, &protocol.Error{Code: protocol.CodeAuthFailed}) {
			t.Fatalf("Connect with the token after Logout = %v, want auth_failed", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		s := daemontest.Start(t)
		register(t, s, "alice")
		_, err := client.Connect(testCtx(t), s.Addr, client.SessionOptions{User: "alice", Password: "wrong-password"})
		if !errors.Is(err, &protocol.Error{Code: protocol.CodeAuthFailed}) {
			t.Fatalf("Connect with a wrong password = %v", err)
		}
	})
}

// proxy relays TCP connections to a server; it can drop what the server
// says and cut every connection, as a network that fails would.
type proxy struct {
	ln     net.Listener
	target string
	mute   atomic.Bool // drop the server's bytes
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(s, c); s.Close() })
		p.wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				n, err := s.Read(buf)
				if n > 0 && !p.mute.Load() {
					c.Write(buf[:n])
				}
				if err != nil {
					c.Close()
					return
				}
			}
		})
	}
}

// cut closes every connection relayed so far.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestSessionLostOK: a send stored by the server whose ok is lost with
// the connection is sent again after the reconnect with its cid, and so
// stored once.
func TestSessionLostOK(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := daemontest.StartDeps(t, daemontest.Config(t), daemon.Deps{Registry: reg})
	register(t, s, "alice", "bob")
	p := startProxy(t, s.Addr)
	alice := connect(t, p.addr(), "alice", nil)
	bob := connect(t, s.Addr, "bob", nil)
	aw, bw := watch(t, alice), watch(t, bob)

	p.mute.Store(true)
	cid, err := alice.Enqueue("bob", "x1", "")
	if err != nil {
		t.Fatal(err)
	}
	bw.waitBodies(t, "x1") // stored and pushed; alice heard nothing
	if u := alice.Unsent(); len(u) != 1 || u[0].CID != cid {
		t.Fatalf("Unsent = %+v, want x1 still waiting", u)
	}
	p.cut()
	p.mute.Store(false)
	aw.waitEvent(t, client.EventSendDone, 1)
	if _, err := alice.Send(testCtx(t), "bob", "x2"); err != nil {
		t.Fatal(err)
	}
	bw.waitBodies(t, "x2")
	if got := bodies(history(t, s, "bob", "alice")); !slices.Equal(got, []string{"x1", "x2"}) {
		t.Fatalf("stored %q, want x1 once, then x2", got)
	}
	if got, _ := bw.snapshot(); !slices.Equal(bodies(got), []string{"x1", "x2"}) {
		t.Fatalf("bob got %q", bodies(got))
	}
	_, es := aw.snapshot()
	if d := ofType(es, client.EventSendDone)[0]; d.Err != nil || d.Send.CID != cid || d.Send.Result.MsgID == "" {
		t.Fatalf("send-done %+v, err %v", d.Send, d.Err)
	}
	// The session made both cids up: each went out marked first, so the
	// server looked neither up, but x1's second write, after the
	// reconnect, was not marked and was looked up (and found).
	if n := daemontest.MetricValue(t, reg, "qqd_plugin_call_duration_seconds", "method", "LookupCIDs"); n != 1 {
		t.Errorf("LookupCIDs calls = %v, want 1 (the resend of x1)", n)
	}
}

// TestSessionDedup: a message delivered but not acked before the
// connection was lost is pending still; the catch-up after the reconnect
// does not deliver it again. The catch-up pages through what is pending
// as the application acks it, in order.
func TestSessionDedup(t *testing.T) {
	r := daemontest.StartRestartable(t)
	register(t, r.Server, "bob", "carol")
	ctx := testCtx(t)
	var g gate
	bob := connect(t, r.Addr, "bob", &g, func(o *client.SessionOptions) { o.OfflinePage = 2 })
	go func() {
		for range bob.Events() {
		}
	}()
	next := func(want string) protocol.Message {
		t.Helper()
		select {
		case m, ok := <-bob.Messages():
			if !ok || m.Body != want {
				t.Fatalf("bob got %+v (open %v), want %q", m, ok, want)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("bob did not get %q", want)
		}
		panic("unreachable")
	}
	carol := user1(t, r.Server, "carol")
	if _, err := carol.Send(ctx, "bob", "m1"); err != nil {
		t.Fatal(err)
	}
	m1 := next("m1") // not acked

	g.closed.Store(true)
	r.Shutdown()
	r.Restart()
	carol = user1(t, r.Server, "carol")
	for _, b := range seq("c", 1, 5) {
		if _, err := carol.Send(ctx, "bob", b); err != nil {
			t.Fatal(err)
		}
	}
	g.closed.Store(false)
	// The first page is m1 (delivered already) and c1.
	c1 := next("c1")
	if err := bob.Ack(ctx, m1.ID, c1.ID); err != nil {
		t.Fatal(err)
	}
	c2, c3 := next("c2"), next("c3")
	if err := bob.Ack(ctx, c2.ID, c3.ID); err != nil {
		t.Fatal(err)
	}
	c4, c5 := next("c4"), next("c5")
	if _, err := carol.Send(ctx, "bob", "c6"); err != nil {
		t.Fatal(err)
	}
	c6 := next("c6")
	if err := bob.Ack(ctx, c4.ID, c5.ID, c6.ID); err != nil {
		t.Fatal(err)
	}
	c := dial(t, r.Addr)
	if n, err := c.Login(ctx, "bob", pw); err != nil || n != 0 {
		t.Fatalf("bob pending = %d, %v", n, err)
	}
}
