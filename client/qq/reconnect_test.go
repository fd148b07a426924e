package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// restartable is a qqd that can be stopped and started again on the same
// address, with the same data.
type restartable struct {
	*daemontest.Server
	t   *testing.T
	cfg *config.Config
	st  *sqlitestore.Store
}

// startRestartable starts a qqd whose kicked shutdown asks clients to
// come back within 20 ms.
func startRestartable(t *testing.T) *restartable {
	t.Helper()
	cfg := daemontest.Config(t, func(c *config.Config) { c.ReconnectSpread = 20 * time.Millisecond })
	st := daemontest.OpenStore(t, cfg)
	s := daemontest.StartWith(t, cfg, st)
	again := *cfg
	again.Listen = s.Addr
	return &restartable{Server: s, t: t, cfg: &again, st: st}
}

func (r *restartable) start() {
	r.t.Helper()
	r.Server = daemontest.StartWith(r.t, r.cfg, r.st)
}

// startChatIn is startChat with env added to qq's environment and the
// configuration directory dir ("": none).
func startChatIn(t *testing.T, addr, user, dir string, env map[string]string, args ...string) *chatRun {
	t.Helper()
	inR, inW := io.Pipe()
	r := &chatRun{t: t, in: inW, done: make(chan error, 1)}
	e := map[string]string{"QQ_ADDR": addr, "QQ_USER": user, "QQ_PASSWORD": pw}
	for k, v := range env {
		e[k] = v
	}
	a := testApp(e, inR, &r.out, &r.out)
	if dir != "" {
		a.configDir = func() (string, error) { return dir, nil }
	}
	go func() { r.done <- a.run(t.Context(), append([]string{"chat"}, args...)) }()
	t.Cleanup(func() { inW.Close() })
	return r
}

// end waits for the chat to end and returns its error.
func (r *chatRun) end() error {
	r.t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		r.t.Fatalf("chat did not end:\n%s", r.out.String())
	}
	return nil
}

// sessionUser returns a logged-in session of name (registered).
func sessionUser(t *testing.T, addr, name string) *client.Session {
	t.Helper()
	s, err := client.Connect(t.Context(), addr, client.SessionOptions{User: name, Password: pw,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	go func() {
		for range s.Events() {
		}
	}()
	return s
}

// nextMsg returns s's next message, acked.
func nextMsg(t *testing.T, s *client.Session) protocol.Message {
	t.Helper()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			t.Fatalf("Messages closed: %v", s.Err())
		}
		s.Ack(t.Context(), m.ID)
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	panic("unreachable")
}

// TestChatReconnect: qqd restarts during a chat. The chat says
// "reconnecting…" and "reconnected"; a line typed meanwhile goes out
// once, after the reconnect; what bob sent meanwhile shows once.
func TestChatReconnect(t *testing.T) {
	r := startRestartable(t)
	expect(t, qq(t, r.Addr, nil, "register", "alice"), exitOK)
	expect(t, qq(t, r.Addr, nil, "register", "bob"), exitOK)
	bob := sessionUser(t, r.Addr, "bob")
	ctx := t.Context()
	if _, err := bob.Send(ctx, "alice", "before"); err != nil {
		t.Fatal(err)
	}

	c := startChatIn(t, r.Addr, "alice", "", nil)
	c.waitFor("1 message waiting", "] bob: before\n", "type /help")
	c.typeLine("hi bob")
	if m := nextMsg(t, bob); m.Body != "hi bob" {
		t.Fatalf("bob got %q", m.Body)
	}
	c.waitFor("] alice → bob: hi bob\n")

	r.Shutdown()
	c.waitFor("disconnected by the server: the server is shutting down (server shutting down); reconnecting…\n")
	if _, err := bob.Enqueue("alice", "while you were away", ""); err != nil {
		t.Fatal(err)
	}
	c.typeLine("sent while down")
	c.waitFor(outboxLine + "\n")
	r.start()
	c.waitFor("reconnected")
	c.waitFor("] alice → bob: sent while down\n", "] bob: while you were away\n")
	if m := nextMsg(t, bob); m.Body != "sent while down" {
		t.Fatalf("bob got %q", m.Body)
	}
	if _, err := bob.Send(ctx, "alice", "after"); err != nil {
		t.Fatal(err)
	}
	c.waitFor("] bob: after\n")
	c.quit()

	out := c.out.String()
	for _, line := range []string{"] bob: before\n", "] bob: while you were away\n", "] alice → bob: sent while down\n", "] bob: after\n", "reconnecting…\n"} {
		if n := strings.Count(out, line); n != 1 {
			t.Errorf("%q shown %d times:\n%s", line, n, out)
		}
	}
	lc := dial(t, r.Addr)
	if _, err := lc.Login(ctx, "alice", pw); err != nil {
		t.Fatal(err)
	}
	h, _, err := lc.History(ctx, "bob", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range h {
		bodies = append(bodies, m.Body)
	}
	want := []string{"before", "hi bob", "while you were away", "sent while down", "after"}
	if !slices.Equal(bodies, want) && !slices.Equal(bodies, []string{"before", "hi bob", "sent while down", "while you were away", "after"}) {
		t.Fatalf("history %q: each message once", bodies)
	}
}

func dial(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.Dial(t.Context(), addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRememberFile: a remembered login in a file others may read is
// refused; one the server does not take falls back to the password.
func TestRememberFile(t *testing.T) {
	s := daemontest.Start(t)
	expect(t, qq(t, s.Addr, nil, "register", "alice"), exitOK)
	dir := t.TempDir()
	path := filepath.Join(dir, "qq", "token-"+strings.ReplaceAll(s.Addr, ":", "_")+"-alice")

	// --remember on a server without resume tokens stores nothing.
	c := startChatIn(t, s.Addr, "alice", dir, nil, "--remember")
	c.waitFor("this server does not offer remembered logins: nothing was stored\n", "type /help")
	c.quit()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("token file after --remember without resume: %v", err)
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	token := "qqt1.0123456789abcdef." + strings.Repeat("A", 43)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c = startChatIn(t, s.Addr, "alice", dir, nil)
	err := c.end()
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), path+" may be read or written by others (mode 0644)") {
		t.Fatalf("chat with a 0644 token file: %v (exit %d)", err, exitCode(err))
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	c = startChatIn(t, s.Addr, "alice", dir, nil)
	c.waitFor("this server does not take remembered logins now: log in with your password\n", "type /help")
	c.quit()
}
