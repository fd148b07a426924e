package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/client/cli"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

const pw = "password1"

// jsonError is qq's --json output for a failed command.
type jsonError struct {
	Error struct {
		Code    protocol.Code `json:"code"`
		Message string        `json:"message"`
		Exit    int           `json:"exit"`
	} `json:"error"`
}

type result struct {
	stdout, stderr string
	code           int
	err            error
}

func testApp(env map[string]string, stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{
		getenv: func(k string) string { return env[k] },
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		loc:    time.UTC,
		now:    time.Now,
	}
}

// qq runs qq with args and env (plus QQ_ADDR=addr unless env has one).
func qq(t *testing.T, addr string, env map[string]string, args ...string) result {
	t.Helper()
	e := map[string]string{"QQ_ADDR": addr, "QQ_PASSWORD": pw}
	for k, v := range env {
		e[k] = v
	}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := testApp(e, strings.NewReader(""), &out, &errOut).run(ctx, args)
	return result{out.String(), errOut.String(), exitCode(err), err}
}

func (r result) errText() string {
	if r.err == nil {
		return ""
	}
	return r.err.Error()
}

func expect(t *testing.T, r result, code int, stdoutHas ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d (err %v), want %d\nstdout: %s\nstderr: %s", r.code, r.err, code, r.stdout, r.stderr)
	}
	for _, s := range stdoutHas {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("stdout %q does not contain %q", r.stdout, s)
		}
	}
}

func expectErr(t *testing.T, r result, code int, errHas string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.errText(), errHas) {
		t.Fatalf("exit %d, err %q; want %d and an error containing %q\nstdout: %s", r.code, r.errText(), code, errHas, r.stdout)
	}
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("output %q: %v", s, err)
	}
	if dec.More() {
		t.Fatalf("output %q: more than one JSON value", s)
	}
	return v
}

func TestUsage(t *testing.T) {
	r := qq(t, "", nil, "-h")
	expect(t, r, exitOK, "Exit codes", "register <user>", "QQ_PASSWORD")
	expect(t, qq(t, "", nil, "help"), exitOK, "Exit codes")
	expect(t, qq(t, "", nil, "send", "-h"), exitOK, "Exit codes")
	for _, args := range [][]string{
		{"frobnicate"},
		{"--bogus"},
		{"send"},
		{"send", "bob"},
		{"send", "--cid"},
		{"users", "extra"},
		{"offline", "--limit", "x"},
		{"offline", "--limit", "-1"},
		{"history"},
		{"history", "a", "b"},
		{"register"},
		{"register", "Bad Name"},
		{"chat", "extra"},
	} {
		r := qq(t, "127.0.0.1:1", map[string]string{"QQ_USER": "alice"}, args...)
		if r.code != exitUsage {
			t.Errorf("qq %q: exit %d (%v), want %d", args, r.code, r.err, exitUsage)
		}
	}
	// Missing user or password.
	expectErr(t, qq(t, "127.0.0.1:1", nil, "users"), exitUsage, "--user")
	expectErr(t, qq(t, "127.0.0.1:1", map[string]string{"QQ_USER": "alice", "QQ_PASSWORD": ""}, "users"), exitUsage, "QQ_PASSWORD")
}

func TestCannotConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	expectErr(t, qq(t, addr, map[string]string{"QQ_USER": "alice"}, "users"), exitConnect, "cannot connect to "+addr)
	r := qq(t, "", nil, "--addr", addr, "--json", "register", "alice")
	expect(t, r, exitConnect, `"exit":2`)
}

func TestOneShot(t *testing.T) {
	s := daemontest.Start(t)
	alice := map[string]string{"QQ_USER": "alice"}
	bob := map[string]string{"QQ_USER": "bob"}

	expect(t, qq(t, s.Addr, nil, "register", "alice"), exitOK, "registered alice")
	expectErr(t, qq(t, s.Addr, nil, "register", "alice"), exitRefused, "alice: user name is taken")
	reg := decode[struct {
		Registered bool   `json:"registered"`
		User       string `json:"user"`
	}](t, qq(t, s.Addr, nil, "register", "--json", "bob").stdout)
	if !reg.Registered || reg.User != "bob" {
		t.Fatalf("register --json = %+v", reg)
	}
	expectErr(t, qq(t, s.Addr, map[string]string{"QQ_PASSWORD": "short"}, "register", "carol"), exitRefused, "invalid request")

	// Login failures.
	r := qq(t, s.Addr, map[string]string{"QQ_USER": "alice", "QQ_PASSWORD": "wrong-password"}, "users")
	expectErr(t, r, exitAuth, "qq register alice")
	expectErr(t, qq(t, s.Addr, map[string]string{"QQ_USER": "nobody"}, "users"), exitAuth, "login failed for nobody")

	// send: flags before <to>, the text is everything after it.
	expect(t, qq(t, s.Addr, alice, "send", "bob", "hello", "--cid", "x"), exitOK, "queued for bob")
	type sendOut struct {
		MsgID  string          `json:"msg_id"`
		TS     int64           `json:"ts"`
		Status protocol.Status `json:"status"`
	}
	s1 := decode[sendOut](t, qq(t, s.Addr, alice, "--json", "send", "--cid", "c1", "bob", "second").stdout)
	s2 := decode[sendOut](t, qq(t, s.Addr, alice, "send", "--json", "--cid", "c1", "bob", "second").stdout)
	if s1.MsgID == "" || s1 != s2 || s1.Status != protocol.StatusQueued {
		t.Fatalf("send --cid twice: %+v then %+v", s1, s2)
	}
	expectErr(t, qq(t, s.Addr, alice, "send", "nobody", "hi"), exitRefused, "nobody: no such user")
	big := strings.Repeat("x", s.Config.Limits.MaxBodyBytes+1)
	expectErr(t, qq(t, s.Addr, alice, "send", "bob", big), exitRefused, "body longer than")
	r = qq(t, s.Addr, alice, "send", "--json", "nobody", "hi")
	je := decode[jsonError](t, r.stdout)
	if r.code != exitRefused || je.Error.Code != protocol.CodeUnknownUser || je.Error.Exit != exitRefused || je.Error.Message != "nobody: no such user" {
		t.Fatalf("send --json to nobody: exit %d, %+v", r.code, je)
	}

	// users: the one-shot's own login counts; a library client keeps bob on.
	bc, err := client.Dial(t.Context(), s.Addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	if _, err := bc.Login(t.Context(), "bob", pw); err != nil {
		t.Fatal(err)
	}
	expect(t, qq(t, s.Addr, alice, "users"), exitOK, "alice\nbob\n")
	users := decode[struct {
		Users []string `json:"users"`
	}](t, qq(t, s.Addr, alice, "users", "--json").stdout)
	if strings.Join(users.Users, ",") != "alice,bob" {
		t.Fatalf("users --json = %v", users)
	}

	// offline: a page, then ack.
	type page struct {
		Messages []protocol.Message `json:"messages"`
		More     bool               `json:"more"`
		Acked    bool               `json:"acked"`
	}
	p := decode[page](t, qq(t, s.Addr, bob, "offline", "--json", "--limit", "1").stdout)
	if len(p.Messages) != 1 || !p.More || p.Acked || p.Messages[0].Body != "hello --cid x" || p.Messages[0].From != "alice" {
		t.Fatalf("offline --limit 1 = %+v", p)
	}
	expect(t, qq(t, s.Addr, bob, "offline"), exitOK, "alice: hello --cid x\n", "alice: second\n")
	p = decode[page](t, qq(t, s.Addr, bob, "--json", "offline", "--ack").stdout)
	if len(p.Messages) != 2 || p.More || !p.Acked {
		t.Fatalf("offline --ack = %+v", p)
	}
	expect(t, qq(t, s.Addr, bob, "offline"), exitOK, "no messages waiting")
	if p := decode[page](t, qq(t, s.Addr, bob, "offline", "--json").stdout); p.Messages == nil || len(p.Messages) != 0 {
		t.Fatalf("empty offline --json = %+v", p)
	}

	// history
	type hist struct {
		Messages []protocol.Message `json:"messages"`
		More     bool               `json:"more"`
	}
	expect(t, qq(t, s.Addr, bob, "history", "alice"), exitOK, "alice: hello --cid x\n[")
	h := decode[hist](t, qq(t, s.Addr, bob, "history", "alice", "--limit", "1", "--json").stdout)
	if len(h.Messages) != 1 || !h.More || h.Messages[0].Body != "second" {
		t.Fatalf("history --limit 1 = %+v", h)
	}
	h2 := decode[hist](t, qq(t, s.Addr, bob, "history", "--json", "--before", h.Messages[0].ID, "alice").stdout)
	if len(h2.Messages) != 1 || h2.More || h2.Messages[0].Body != "hello --cid x" {
		t.Fatalf("history --before = %+v", h2)
	}
	expect(t, qq(t, s.Addr, bob, "history", "--limit", "1", "alice"), exitOK, "(older messages: qq history alice --before ")
	expectErr(t, qq(t, s.Addr, bob, "history", "nobody"), exitRefused, "nobody: no such user")
}

// A filter outage is reported as the server words it, not as a storage
// problem: qq shows the server's message for an error reply.
func TestFilterOutageShowsServerMessage(t *testing.T) {
	s := daemontest.StartWithPlugins(t, daemontest.Config(t), nil, daemontest.BrokenChain())
	alice := map[string]string{"QQ_USER": "alice"}
	expect(t, qq(t, s.Addr, nil, "register", "alice"), exitOK)
	expect(t, qq(t, s.Addr, nil, "register", "bob"), exitOK)

	const want = "message filter unavailable; nothing was stored"
	r := qq(t, s.Addr, alice, "send", "bob", "hi")
	if r.code != exitRefused || r.errText() != want {
		t.Fatalf("send through a failing filter: exit %d, %q; want exit %d, %q", r.code, r.errText(), exitRefused, want)
	}
	r = qq(t, s.Addr, alice, "send", "--json", "bob", "hi")
	je := decode[jsonError](t, r.stdout)
	if je.Error.Code != protocol.CodeUnavailable || je.Error.Message != want || je.Error.Exit != exitRefused {
		t.Fatalf("send --json through a failing filter: %+v", je.Error)
	}
	// And indeed nothing was stored.
	expect(t, qq(t, s.Addr, map[string]string{"QQ_USER": "bob"}, "offline"), exitOK, "no messages waiting")
}

func TestRegisterPrompt(t *testing.T) {
	s := daemontest.Start(t)
	answers := []string{"password1", "password1", "password2", "password3"}
	var prompts []string
	var out, errOut bytes.Buffer
	a := testApp(map[string]string{"QQ_ADDR": s.Addr}, strings.NewReader(""), &out, &errOut)
	a.readPassword = func(_ context.Context, prompt string) (string, error) {
		prompts = append(prompts, prompt)
		p := answers[0]
		answers = answers[1:]
		return p, nil
	}
	if err := a.run(t.Context(), []string{"register", "alice"}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if len(prompts) != 2 || prompts[0] != "password for alice: " {
		t.Fatalf("prompts %q", prompts)
	}
	err := a.run(t.Context(), []string{"register", "bob"})
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("mismatched passwords: %v", err)
	}
}

func TestChat(t *testing.T) {
	s := daemontest.Start(t)
	ctx := t.Context()
	bob, err := client.Dial(ctx, s.Addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	for _, u := range []string{"alice", "bob"} {
		if err := bob.Register(ctx, u, pw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.Login(ctx, "bob", pw); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "alice", "sent while you were away"); err != nil {
		t.Fatal(err)
	}

	inR, inW := io.Pipe()
	defer inW.Close()
	var out daemontest.SyncBuffer
	a := testApp(map[string]string{"QQ_ADDR": s.Addr, "QQ_USER": "alice", "QQ_PASSWORD": pw}, inR, &out, &out)
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, []string{"chat"}) }()

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("output does not contain %q:\n%s", want, out.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	type_ := func(line string) {
		t.Helper()
		if _, err := io.WriteString(inW, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(want string) {
		t.Helper()
		select {
		case m := <-bob.Messages():
			if m.Body != want || m.From != "alice" {
				t.Fatalf("bob got %+v, want %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("bob did not get %q:\n%s", want, out.String())
		}
	}

	waitFor("1 message waiting\n")
	waitFor("] bob: sent while you were away\n")
	waitFor("type /help")
	if _, err := bob.Send(ctx, "alice", "live\x1b[2J"); err != nil {
		t.Fatal(err)
	}
	waitFor("] bob: live\\x1b[2J\n")
	// The first user who wrote became the peer: a plain line answers.
	type_("a plain reply")
	recv("a plain reply")
	waitFor("] alice → bob: a plain reply\n")
	type_("/msg bob hi  there")
	recv("hi  there")
	type_("and a plain line")
	recv("and a plain line")
	type_("//slash")
	recv("/slash")
	type_("/users")
	waitFor("online: alice, bob\n")
	type_("/history bob 2")
	waitFor("(older messages exist: qq history bob --before ")
	waitFor("] alice → bob: and a plain line\n")
	type_("/msg nobody x")
	waitFor("nobody: no such user\n")
	type_("/frob")
	waitFor("unknown command /frob")
	type_("/offline")
	waitFor("no messages waiting\n")
	type_("/help")
	waitFor("/history <user> [n]")
	type_("/quit")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chat: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("chat did not end after /quit:\n%s", out.String())
	}
	waitFor("bye\n")
	// What was displayed was acked.
	c, err := client.Dial(ctx, s.Addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Login(ctx, "alice", pw); err != nil || n != 0 {
		t.Fatalf("alice pending after chat = %d, %v", n, err)
	}
}

func TestChatKicked(t *testing.T) {
	s := daemontest.Start(t)
	reg, err := client.Dial(t.Context(), s.Addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := reg.Register(t.Context(), "alice", pw); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	defer inW.Close()
	var out daemontest.SyncBuffer
	a := testApp(map[string]string{"QQ_ADDR": s.Addr, "QQ_USER": "alice", "QQ_PASSWORD": pw}, inR, &out, &out)
	done := make(chan error, 1)
	go func() { done <- a.run(t.Context(), nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "type /help") {
		if time.Now().After(deadline) {
			t.Fatalf("chat did not start:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A restart is ridden through (TestChatReconnect); an operator's kick
	// ends the chat.
	if n := s.Daemon.Kick("alice", "please stop"); n != 1 {
		t.Fatalf("Kick = %d", n)
	}
	select {
	case err := <-done:
		if exitCode(err) != exitOther || !strings.Contains(err.Error(), "an operator kicked you (please stop)") {
			t.Fatalf("chat ended with %v (exit %d), want the kick", err, exitCode(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("chat did not end after the kick:\n%s", out.String())
	}
}

func TestFormatMessage(t *testing.T) {
	now := time.Date(2026, 3, 5, 18, 0, 0, 0, time.UTC)
	at := func(tm time.Time) int64 { return tm.UnixMilli() }
	for _, tc := range []struct {
		m    protocol.Message
		want string
	}{
		{protocol.Message{From: "alice", Body: "hi", TS: at(time.Date(2026, 3, 5, 15, 4, 0, 0, time.UTC))}, "[15:04] alice: hi\n"},
		{protocol.Message{From: "bob", Body: "a\nb", TS: at(time.Date(2026, 3, 4, 9, 7, 0, 0, time.UTC))}, "[Mar 4 09:07] bob: a\n    b\n"},
		{protocol.Message{From: "bob", Body: "x", TS: at(time.Date(2025, 12, 31, 23, 59, 0, 0, time.UTC))}, "[2025-12-31 23:59] bob: x\n"},
		{protocol.Message{From: "eve", Body: "\x1b]0;pwned\x07\r\ttab \xff ✓", TS: at(now)}, "[18:00] eve: \\x1b]0;pwned\\a\\r\ttab \ufffd ✓\n"},
	} {
		if got := formatMessage(tc.m, now, time.UTC); got != tc.want {
			t.Errorf("formatMessage(%q) = %q, want %q", tc.m.Body, got, tc.want)
		}
	}
}

func TestDescribeAndExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		name string
		want string
		code int
	}{
		// The server's message is shown, with the name the request was
		// about and the retry time around it.
		{&protocol.Error{Code: protocol.CodeUnknownUser, Message: "no such user"}, "bob", "bob: no such user", exitRefused},
		{&protocol.Error{Code: protocol.CodeUserExists, Message: "user name is taken"}, "bob", "bob: user name is taken", exitRefused},
		{&protocol.Error{Code: protocol.CodeTooLarge, Message: "body longer than 16384 bytes"}, "", "body longer than 16384 bytes", exitRefused},
		{&protocol.Error{Code: protocol.CodeRejected, Message: "no spam"}, "", "rejected: no spam", exitRefused},
		{&protocol.Error{Code: protocol.CodeRateLimited, Message: "sending too fast", RetryAfterMS: 250}, "", "sending too fast; retry in 250 ms", exitRefused},
		{&protocol.Error{Code: protocol.CodeAuthFailed, Message: "wrong password"}, "", "login failed: wrong password", exitAuth},
		{&protocol.Error{Code: protocol.CodeNotLoggedIn, Message: "log in first"}, "", "log in first", exitAuth},
		{&protocol.Error{Code: protocol.CodeUnavailable, Message: "message filter unavailable; nothing was stored"}, "", "message filter unavailable; nothing was stored", exitRefused},
		{&protocol.Error{Code: protocol.CodeBadRequest, Message: "cid must be 1-128 bytes"}, "", "invalid request: cid must be 1-128 bytes", exitRefused},
		{&protocol.Error{Code: protocol.CodeFrameTooLarge, Message: "frame longer than max_frame_bytes"}, "", "frame longer than max_frame_bytes (the server closed the connection)", exitRefused},
		{&protocol.Error{Code: "future_code", Message: "m\x1b"}, "", "m\\x1b", exitRefused},
		// qq's own text only when the server sent no message.
		{&protocol.Error{Code: protocol.CodeUnknownUser}, "bob", "bob: not a registered user", exitRefused},
		{&protocol.Error{Code: protocol.CodeTooLarge}, "", "message too large", exitRefused},
		{&protocol.Error{Code: protocol.CodeRateLimited, RetryAfterMS: 250}, "", "rate limited; retry in 250 ms", exitRefused},
		{&protocol.Error{Code: protocol.CodeUserExists}, "", "that user name is taken", exitRefused},
		{&protocol.Error{Code: protocol.CodeAuthFailed}, "", "login failed: wrong user name or password", exitAuth},
		{&protocol.Error{Code: protocol.CodeNotLoggedIn}, "", "not logged in", exitAuth},
		{&protocol.Error{Code: protocol.CodeUnavailable}, "", "the server cannot handle this request right now; try again later", exitRefused},
		{&protocol.Error{Code: protocol.CodeBadRequest}, "", "invalid request", exitRefused},
		{&protocol.Error{Code: "future_code"}, "", "server error future_code", exitRefused},
		{&client.KickedError{Reason: "admin", Message: "bye"}, "", "disconnected by the server: an operator kicked you (bye)", exitOther},
		{context.DeadlineExceeded, "", "timed out waiting for the server", exitOther},
		{errors.New("boom"), "", "boom", exitOther},
	} {
		err := failed(tc.err, tc.name)
		if err.Error() != tc.want || exitCode(err) != tc.code {
			t.Errorf("failed(%v) = %q exit %d, want %q exit %d", tc.err, err, exitCode(err), tc.want, tc.code)
		}
	}
	if exitCode(nil) != exitOK {
		t.Error("exitCode(nil) != 0")
	}
}

// TestParseFlags: qq's global flags are accepted among a command's own,
// through cli.ParseFlags.
func TestParseFlags(t *testing.T) {
	g := &globals{addr: "a:1"}
	fs := g.flagSet("history")
	limit := fs.Int("limit", 0, "")
	pos, err := cli.ParseFlags("qq", fs, []string{"--json", "bob", "--limit", "3", "--addr", "b:2", "--", "--x"}, 0)
	if err != nil || strings.Join(pos, ",") != "bob,--x" || *limit != 3 || !g.json || g.addr != "b:2" {
		t.Fatalf("ParseFlags = %q, %v; limit %d, globals %+v", pos, err, *limit, g)
	}
	g = &globals{}
	fs = g.flagSet("send")
	cid := fs.String("cid", "", "")
	pos, err = cli.ParseFlags("qq", fs, []string{"--cid", "c", "bob", "-n", "--json", "x"}, 1)
	if err != nil || strings.Join(pos, ",") != "bob,-n,--json,x" || *cid != "c" || g.json {
		t.Fatalf("ParseFlags send = %q, %v; cid %q, globals %+v", pos, err, *cid, g)
	}
}
