package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const pw = "password1"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.Dial(testCtx(t), addr, client.Options{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// user registers name (unless it exists) and returns a logged-in client.
func user(t *testing.T, s *daemontest.Server, name string) *client.Client {
	t.Helper()
	ctx := testCtx(t)
	c := dial(t, s.Addr)
	if err := c.Register(ctx, name, pw); err != nil && !errors.Is(err, &protocol.Error{Code: protocol.CodeUserExists}) {
		t.Fatalf("Register %s: %v", name, err)
	}
	if _, err := c.Login(ctx, name, pw); err != nil {
		t.Fatalf("Login %s: %v", name, err)
	}
	return c
}

func register(t *testing.T, s *daemontest.Server, names ...string) {
	t.Helper()
	c := dial(t, s.Addr)
	for _, n := range names {
		if err := c.Register(testCtx(t), n, pw); err != nil {
			t.Fatalf("Register %s: %v", n, err)
		}
	}
	c.Close()
}

func recv(t *testing.T, c *client.Client) protocol.Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatalf("Messages closed: %v", c.Err())
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	panic("unreachable")
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	if !errors.Is(err, &protocol.Error{Code: code}) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("err = %#v, want a *protocol.Error with code %s", err, code)
	}
}

func TestHello(t *testing.T) {
	s := daemontest.Start(t)
	c := dial(t, s.Addr)
	h := c.Hello()
	if h.Server != "qqd" || h.Proto != protocol.Version || h.Version == "" {
		t.Fatalf("Hello = %+v", h)
	}
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatalf("Ping before login: %v", err)
	}
}

func TestSendReceiveAck(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob := user(t, s, "alice"), user(t, s, "bob")

	r, err := alice.Send(ctx, "bob", "hi bob\nsecond line \"quoted\" ✓")
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r.MsgID == "" || r.TS == 0 || r.Status != protocol.StatusSent || r.Body != "" {
		t.Fatalf("Send = %+v", r)
	}
	m := recv(t, bob)
	want := protocol.Message{ID: r.MsgID, From: "alice", To: "bob", Body: "hi bob\nsecond line \"quoted\" ✓", TS: r.TS}
	if m != want {
		t.Fatalf("push = %+v, want %+v", m, want)
	}
	// Pushed but not acked: still pending.
	msgs, more, err := bob.Offline(ctx, 0)
	if err != nil || more || len(msgs) != 1 || msgs[0] != want {
		t.Fatalf("Offline = %+v, %v, %v", msgs, more, err)
	}
	if err := bob.Ack(ctx, m.ID, "no-such-id"); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := bob.Ack(ctx); err != nil {
		t.Fatalf("empty Ack: %v", err)
	}
	msgs, more, err = bob.Offline(ctx, 0)
	if err != nil || more || len(msgs) != 0 || msgs == nil {
		t.Fatalf("Offline after ack = %#v, %v, %v", msgs, more, err)
	}
}

func TestOfflinePages(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	register(t, s, "bob")
	alice := user(t, s, "alice")
	var ids []string
	for i := range 5 {
		r, err := alice.Send(ctx, "bob", fmt.Sprint("m", i))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if r.Status != protocol.StatusQueued {
			t.Fatalf("Status = %q, want queued", r.Status)
		}
		ids = append(ids, r.MsgID)
	}
	bob := dial(t, s.Addr)
	pending, err := bob.Login(ctx, "bob", pw)
	if err != nil || pending != 5 {
		t.Fatalf("Login = %d, %v; want 5 pending", pending, err)
	}
	var got []string
	for page := 0; ; page++ {
		msgs, more, err := bob.Offline(ctx, 2)
		if err != nil {
			t.Fatalf("Offline: %v", err)
		}
		if len(msgs) > 2 {
			t.Fatalf("page of %d, limit 2", len(msgs))
		}
		for _, m := range msgs {
			got = append(got, m.ID)
			if m.From != "alice" || m.To != "bob" {
				t.Fatalf("msg %+v", m)
			}
		}
		if err := bob.Ack(ctx, msgIDs(msgs)...); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		if !more {
			break
		}
		if page > 5 {
			t.Fatal("too many pages")
		}
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("offline ids %v, want %v", got, ids)
	}
	select {
	case m := <-bob.Messages():
		t.Fatalf("pending message %+v was pushed", m)
	case <-time.After(50 * time.Millisecond):
	}
}

func msgIDs(ms []protocol.Message) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestHistory(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob := user(t, s, "alice"), user(t, s, "bob")
	var ids []string
	for i := range 5 {
		from, to := alice, "bob"
		if i%2 == 1 {
			from, to = bob, "alice"
		}
		r, err := from.Send(ctx, to, fmt.Sprint("h", i))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		ids = append(ids, r.MsgID)
	}
	msgs, more, err := alice.History(ctx, "bob", "", 2)
	if err != nil || !more || len(msgs) != 2 || msgs[0].ID != ids[3] || msgs[1].ID != ids[4] {
		t.Fatalf("History newest = %+v, %v, %v", msgs, more, err)
	}
	msgs, more, err = bob.History(ctx, "alice", ids[3], 0)
	if err != nil || more || len(msgs) != 3 || msgs[0].ID != ids[0] || msgs[2].ID != ids[2] {
		t.Fatalf("History before = %+v, %v, %v", msgs, more, err)
	}
	if msgs[0].From != "alice" || msgs[1].From != "bob" || msgs[1].Body != "h1" {
		t.Fatalf("History = %+v", msgs)
	}
	_, _, err = alice.History(ctx, "nobody", "", 0)
	wantCode(t, err, protocol.CodeUnknownUser)
	_, _, err = alice.History(ctx, "bob", "no-such-id", 0)
	wantCode(t, err, protocol.CodeBadRequest)
}

func TestUsersAndLogout(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	bob, alice := user(t, s, "bob"), user(t, s, "alice")
	users, err := alice.Users(ctx)
	if err != nil || strings.Join(users, ",") != "alice,bob" {
		t.Fatalf("Users = %v, %v", users, err)
	}
	if err := bob.Logout(ctx); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	select {
	case <-bob.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection not ended after logout")
	}
	if _, ok := <-bob.Messages(); ok {
		t.Fatal("Messages not closed")
	}
	if !errors.Is(bob.Err(), io.EOF) {
		t.Fatalf("Err = %v, want EOF", bob.Err())
	}
	if err := bob.Ping(ctx); err == nil || !errors.Is(err, io.EOF) {
		t.Fatalf("Ping after the end = %v", err)
	}
	users, err = alice.Users(ctx)
	if err != nil || strings.Join(users, ",") != "alice" {
		t.Fatalf("Users after logout = %v, %v", users, err)
	}
	bob.Close()
	bob.Close()
}

func TestServerErrors(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	register(t, s, "bob")
	c := dial(t, s.Addr)

	_, err := c.Send(ctx, "bob", "x")
	wantCode(t, err, protocol.CodeNotLoggedIn)
	_, err = c.Login(ctx, "alice", pw)
	wantCode(t, err, protocol.CodeAuthFailed)
	wantCode(t, c.Register(ctx, "Alice!", pw), protocol.CodeBadRequest)
	wantCode(t, c.Register(ctx, "bob", pw), protocol.CodeUserExists)
	if err := c.Register(ctx, "alice", pw); err != nil {
		t.Fatalf("Register: %v", err)
	}
	_, err = c.Login(ctx, "alice", "wrong-password")
	wantCode(t, err, protocol.CodeAuthFailed)
	if _, err := c.Login(ctx, "alice", pw); err != nil {
		t.Fatalf("Login: %v", err)
	}
	_, err = c.Login(ctx, "alice", pw)
	wantCode(t, err, protocol.CodeAlreadyLoggedIn)
	_, err = c.Send(ctx, "nobody", "x")
	wantCode(t, err, protocol.CodeUnknownUser)
	_, err = c.Send(ctx, "bob", strings.Repeat("x", s.Config.Limits.MaxBodyBytes+1))
	wantCode(t, err, protocol.CodeTooLarge)
	_, err = c.Send(ctx, "bob", "")
	wantCode(t, err, protocol.CodeBadRequest)
	// Failed requests leave the connection usable.
	if _, err := c.Send(ctx, "bob", strings.Repeat("y", s.Config.Limits.MaxBodyBytes)); err != nil {
		t.Fatalf("Send of max_body_bytes: %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// The error of a refused request keeps the server's message, not only its
// code: for unavailable it is what tells a filter outage from a storage one.
func TestServerErrorKeepsMessage(t *testing.T) {
	s := daemontest.StartWithPlugins(t, daemontest.Config(t), nil, daemontest.BrokenChain())
	register(t, s, "bob")
	c := user(t, s, "alice")
	_, err := c.Send(testCtx(t), "bob", "hi")
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("Send through a failing filter: %v, want a *protocol.Error", err)
	}
	if pe.Code != protocol.CodeUnavailable || pe.Message != "message filter unavailable; nothing was stored" {
		t.Fatalf("Send through a failing filter: code %q, message %q; want unavailable, %q",
			pe.Code, pe.Message, "message filter unavailable; nothing was stored")
	}
	if !strings.Contains(err.Error(), pe.Message) {
		t.Fatalf("Send error %q does not carry the server's message", err)
	}
}

func TestFrameTooLarge(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	register(t, s, "bob")
	c := user(t, s, "alice")
	_, err := c.Send(ctx, "bob", strings.Repeat("z", s.Config.Limits.MaxFrameBytes+1))
	if err == nil {
		t.Fatal("Send of a frame over max_frame_bytes succeeded")
	}
	<-c.Done()
	// The server may reset the connection before the error frame is read;
	// when it was read, it is the reason.
	t.Logf("Send: %v; Err: %v", err, c.Err())
	if errors.As(c.Err(), new(*protocol.Error)) {
		wantCode(t, err, protocol.CodeFrameTooLarge)
	}
}

func TestSendCID(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob := user(t, s, "alice"), user(t, s, "bob")
	r1, err := alice.SendCID(ctx, "bob", "once", "cid-1")
	if err != nil {
		t.Fatalf("SendCID: %v", err)
	}
	r2, err := alice.SendCID(ctx, "bob", "ignored", "cid-1")
	if err != nil || r2.MsgID != r1.MsgID || r2.TS != r1.TS || r2.Status != r1.Status {
		t.Fatalf("retry = %+v, %v; want %+v", r2, err, r1)
	}
	// The stored body differs from the retry's: the ok may carry it.
	if r2.Body != "" && r2.Body != "once" {
		t.Fatalf("retry body %q", r2.Body)
	}
	r3, err := alice.Send(ctx, "bob", "after")
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if m := recv(t, bob); m.ID != r1.MsgID || m.Body != "once" {
		t.Fatalf("first push %+v", m)
	}
	if m := recv(t, bob); m.ID != r3.MsgID {
		t.Fatalf("second push %+v, want %s (the retry must not be delivered)", m, r3.MsgID)
	}
}

func TestConcurrentSends(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob := user(t, s, "alice"), user(t, s, "bob")
	const workers, each = 40, 25
	var (
		mu  sync.Mutex
		ids = make(map[string]string) // msg_id -> body
		wg  sync.WaitGroup
	)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf("w%d-%d", w, i)
				r, err := alice.Send(ctx, "bob", body)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if prev, dup := ids[r.MsgID]; dup {
					errs <- fmt.Errorf("msg_id %s for %q and %q", r.MsgID, prev, body)
				}
				ids[r.MsgID] = body
				mu.Unlock()
			}
		})
	}
	// Pings interleaved from another goroutine are matched too.
	wg.Go(func() {
		for range 50 {
			if err := alice.Ping(ctx); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(ids) != workers*each {
		t.Fatalf("%d distinct ids, want %d", len(ids), workers*each)
	}
	// Per worker, bodies arrive in send order; every id arrives once.
	next := make(map[string]int)
	for range workers * each {
		m := recv(t, bob)
		body, ok := ids[m.ID]
		if !ok || body != m.Body {
			t.Fatalf("push %+v: sent %q", m, body)
		}
		delete(ids, m.ID)
		w, i, _ := strings.Cut(strings.TrimPrefix(m.Body, "w"), "-")
		if n, _ := strconv.Atoi(i); n != next[w] {
			t.Fatalf("worker %s: got message %d, want %d", w, n, next[w])
		}
		next[w]++
	}
}

func TestSlowMessagesReaderDoesNotBlockReplies(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice := user(t, s, "alice")
	const n = 2000
	ids := make([]string, n)
	start := time.Now()
	for i := range n {
		r, err := alice.Send(ctx, "alice", strconv.Itoa(i))
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		ids[i] = r.MsgID
	}
	t.Logf("%d sends to self without reading Messages: %v", n, time.Since(start))
	for i := range n {
		m := recv(t, alice)
		if m.ID != ids[i] || m.Body != strconv.Itoa(i) {
			t.Fatalf("push %d = %+v, want id %s", i, m, ids[i])
		}
	}
	if err := alice.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestShutdownKicks(t *testing.T) {
	s := daemontest.Start(t)
	c := user(t, s, "alice")
	s.Shutdown()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection not ended by shutdown")
	}
	var ke *client.KickedError
	if !errors.As(c.Err(), &ke) || ke.Reason != protocol.KickShutdown {
		t.Fatalf("Err = %v, want kicked shutdown", c.Err())
	}
	// qqd's default reconnect_spread is 10 s.
	if ke.RetryAfter < time.Millisecond || ke.RetryAfter > 10*time.Second {
		t.Fatalf("RetryAfter = %v, want 1ms..10s", ke.RetryAfter)
	}
	if err := c.Ping(testCtx(t)); !errors.As(err, &ke) {
		t.Fatalf("Ping after kick = %v, want the kick", err)
	}
}

// fake is a scripted server for what a real qqd does not do on demand.
type fake struct {
	conn net.Conn
	r    *bufio.Reader
}

// startFake dials a listener that writes hello and hands over the server
// side of the connection.
func startFake(t *testing.T, hello string, opts client.Options) (*client.Client, *fake, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			srv <- nil
			return
		}
		if hello != "" {
			io.WriteString(conn, hello+"\n")
		}
		srv <- conn
	}()
	ctx, cancel := context.WithTimeout(testCtx(t), 500*time.Millisecond)
	defer cancel()
	c, err := client.Dial(ctx, ln.Addr().String(), opts)
	conn := <-srv
	if conn == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { conn.Close() })
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, &fake{conn: conn, r: bufio.NewReader(conn)}, err
}

const qqdHello = `{"type":"hello","server":"qqd","version":"1.0.0","proto":1}`

func (f *fake) read(t *testing.T) string {
	t.Helper()
	f.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := f.r.ReadString('\n')
	if err != nil {
		t.Fatalf("fake read: %v", err)
	}
	return line
}

func (f *fake) write(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(f.conn, l+"\n"); err != nil {
			t.Fatalf("fake write: %v", err)
		}
	}
}

func TestDialBadHello(t *testing.T) {
	for _, tc := range []struct{ name, hello, want string }{
		{"silent", "", "deadline exceeded"},
		{"proto2", `{"type":"hello","server":"qqd","version":"9.0.0","proto":2}`, "QQP/2"},
		{"error", `{"type":"error","id":null,"code":"unavailable","message":"full"}`, "unavailable"},
		{"garbage", `hello there`, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := startFake(t, tc.hello, client.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Dial = %v, %v; want an error containing %q", c, err, tc.want)
			}
		})
	}
}

func TestRequestFrames(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for _, tc := range []struct {
		call  func() error
		want  string
		reply string
	}{
		{func() error { _, _, err := c.Offline(ctx, 0); return err }, `{"type":"offline","id":"1"}`, `{"type":"ok","id":"1","messages":[],"more":false}`},
		{func() error { _, _, err := c.Offline(ctx, 7); return err }, `{"type":"offline","id":"2","limit":7}`, `{"type":"ok","id":"2","messages":[],"more":false}`},
		{func() error { _, _, err := c.History(ctx, "bob", "", 0); return err }, `{"type":"history","id":"3","with":"bob"}`, `{"type":"ok","id":"3","messages":[]}`},
		{func() error { _, _, err := c.History(ctx, "bob", "m1", 5); return err }, `{"type":"history","id":"4","with":"bob","before":"m1","limit":5}`, `{"type":"ok","id":"4"}`},
		{func() error { return c.Ack(ctx) }, `{"type":"ack","id":"5","msg_ids":[]}`, `{"type":"ok","id":"5"}`},
		{func() error { _, err := c.SendCID(ctx, "bob", "a\"b\n", "c1"); return err }, `{"type":"send","id":"6","to":"bob","body":"a\"b\n","cid":"c1"}`, `{"type":"ok","id":"6","msg_id":"9","ts":1,"status":"sent"}`},
		{func() error { _, err := c.SendFirst(ctx, "bob", "hi", "c2"); return err }, `{"type":"send","id":"7","to":"bob","body":"hi","cid":"c2","first":true}`, `{"type":"ok","id":"7","msg_id":"10","ts":1,"status":"sent"}`},
	} {
		done := make(chan error, 1)
		go func() { done <- tc.call() }()
		if got := f.read(t); got != tc.want+"\n" {
			t.Fatalf("request %s, want %s", got, tc.want)
		}
		f.write(t, tc.reply)
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", tc.want, err)
		}
	}
}

func TestPushesAndEnd(t *testing.T) {
	cl, f, err := startFake(t, qqdHello, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	pinged := make(chan error, 1)
	go func() { pinged <- cl.Ping(ctx) }()
	f.read(t)
	f.write(t,
		`{"type":"msg","msg_id":"1","from":"a","to":"b","body":"one","ts":1}`,
		`{"type":"typing","from":"a"}`,
		``,
		`{"type":"ok","id":"1"}`,
		`{"type":"msg","msg_id":"2","from":"a","to":"b","body":"two","ts":2}`,
		`{"type":"msg","msg_id":"3","from":"a","to":"b","body":"three","ts":3}`,
	)
	if err := <-pinged; err != nil {
		t.Fatalf("Ping: %v", err)
	}
	f.conn.Close()
	<-cl.Done()
	// Messages queued before the end are still delivered, then the channel
	// is closed.
	var bodies []string
	for m := range cl.Messages() {
		bodies = append(bodies, m.Body)
	}
	if strings.Join(bodies, ",") != "one,two,three" {
		t.Fatalf("bodies %v", bodies)
	}
	if !errors.Is(cl.Err(), io.EOF) {
		t.Fatalf("Err = %v", cl.Err())
	}
}

func TestKickedFailsWaitingCalls(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	pinged := make(chan error, 1)
	go func() { pinged <- c.Ping(ctx) }()
	f.read(t)
	f.write(t, `{"type":"kicked","reason":"admin","message":"be nice"}`)
	err = <-pinged
	var ke *client.KickedError
	if !errors.As(err, &ke) || ke.Reason != "admin" || ke.Message != "be nice" {
		t.Fatalf("Ping = %v, want the kick", err)
	}
	if !errors.As(c.Err(), &ke) {
		t.Fatalf("Err = %v", c.Err())
	}
}

func TestContextCancelDiscardsLateReply(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping = %v, want DeadlineExceeded", err)
	}
	f.read(t)
	done := make(chan error, 1)
	go func() { _, err := c.Users(testCtx(t)); done <- err }()
	f.read(t)
	f.write(t, `{"type":"ok","id":"1"}`, `{"type":"ok","id":"2","users":["x"]}`)
	if err := <-done; err != nil {
		t.Fatalf("Users after a cancelled call: %v", err)
	}
	// An already cancelled context sends nothing.
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := c.Ping(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping = %v", err)
	}
}

func TestCloseWithPendingCalls(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A push nobody reads must not keep Close from returning.
	f.write(t, `{"type":"msg","msg_id":"1","from":"a","to":"b","body":"one","ts":1}`)
	ctx := testCtx(t)
	const n = 10
	errs := make(chan error, n)
	for range n {
		go func() { errs <- c.Ping(ctx) }()
	}
	for range n {
		f.read(t)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	for range n {
		if err := <-errs; !errors.Is(err, client.ErrClosed) {
			t.Fatalf("pending Ping = %v, want ErrClosed", err)
		}
	}
	if !errors.Is(c.Err(), client.ErrClosed) {
		t.Fatalf("Err = %v", c.Err())
	}
	if err := c.Ping(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Ping after Close = %v", err)
	}
	if _, ok := <-c.Messages(); ok {
		t.Fatal("Messages open after Close")
	}
}

func TestMaxFrameBytes(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{MaxFrameBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	f.write(t, `{"type":"msg","msg_id":"1","from":"a","to":"b","body":"`+strings.Repeat("x", 100)+`","ts":1}`)
	<-c.Done()
	if !errors.Is(c.Err(), protocol.ErrFrameTooLarge) {
		t.Fatalf("Err = %v", c.Err())
	}
}
