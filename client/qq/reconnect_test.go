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
)

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
	r := daemontest.StartRestartable(t)
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
	r.Restart()
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
// refused; on a server without resume tokens --remember stores nothing,
// and a remembered login falls back to the password.
func TestRememberFile(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.Tokens.Enabled = false })
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

// tokenPath is the token file of user on the server at addr under dir.
func tokenPath(dir, addr, user string) string {
	return filepath.Join(dir, "qq", "token-"+strings.ReplaceAll(addr, ":", "_")+"-"+user)
}

// TestChatRemember: --remember writes the token to a 0600 file; the next
// chat resumes with it without asking for the password, and so does the
// chat after a restart of qqd; /quit keeps it, /logout revokes and
// deletes it; a refused remembered login is forgotten and the password
// asked for.
func TestChatRemember(t *testing.T) {
	r := daemontest.StartRestartable(t)
	expect(t, qq(t, r.Addr, nil, "register", "alice"), exitOK)
	dir := t.TempDir()
	path := tokenPath(dir, r.Addr, "alice")

	c := startChatIn(t, r.Addr, "alice", dir, nil, "--remember")
	c.waitFor("login remembered in "+path+" (/logout forgets it)\n", "type /help")
	c.quit()
	c.waitFor("bye (still remembered: /logout forgets the login)\n")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("token directory: %v, %v; want mode 0700", di.Mode(), err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	if !strings.HasPrefix(token, "qqt1.") {
		t.Fatalf("token file holds %q", token)
	}

	// No password: the remembered login resumes, across a restart too.
	noPassword := map[string]string{"QQ_PASSWORD": ""}
	c = startChatIn(t, r.Addr, "alice", dir, noPassword)
	c.waitFor("type /help")
	r.Shutdown()
	c.waitFor("reconnecting…\n")
	r.Restart()
	c.waitFor("reconnected\n")
	c.typeLine("/msg alice note to self")
	c.waitFor("] alice: note to self\n")
	c.typeLine("/logout")
	c.waitFor("logged out\n", "the remembered login is forgotten\n", "bye\n")
	if err := c.end(); err != nil {
		t.Fatalf("chat: %v", err)
	}
	if n := strings.Count(c.out.String(), "] alice: note to self\n"); n != 1 {
		t.Fatalf("a message to oneself shown %d times:\n%s", n, c.out.String())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("token file after /logout: %v", err)
	}
	if _, err := client.Connect(t.Context(), r.Addr, client.SessionOptions{Token: token}); !isCode(err, protocol.CodeAuthFailed) {
		t.Fatalf("the token after /logout: %v, want auth_failed", err)
	}

	// A refused remembered login is forgotten; without a password to ask
	// for, the chat then stops there.
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = startChatIn(t, r.Addr, "alice", dir, noPassword)
	if err := c.end(); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "QQ_PASSWORD") {
		t.Fatalf("chat with a revoked remembered login and no password: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("refused token file kept: %v", err)
	}
	if !strings.Contains(c.out.String(), "the remembered login was refused (expired or revoked)") {
		t.Fatalf("output %q does not say the remembered login was refused", c.out.String())
	}
}
