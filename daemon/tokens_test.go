package daemon_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/daemon/token"
	"github.com/qqchat/qq/plugins"
)

// remember logs c in as user with remember and returns the token.
func remember(t *testing.T, c *daemontest.Conn, user string) string {
	t.Helper()
	c.Send(fmt.Sprintf(`{"type":"login","id":"rl","user":%q,"password":"password1","remember":true}`, user))
	f := c.Expect(`{"type":"ok","id":"rl"}`)
	if f.User != user || !strings.HasPrefix(f.Token, token.Prefix) || f.TokenExpires == 0 {
		t.Fatalf("login with remember: %+v", f)
	}
	return f.Token
}

// resume expects a resume with tok on a new connection to log in as user,
// and returns the connection.
func resume(t *testing.T, s *daemontest.Server, tok, user string) *daemontest.Conn {
	t.Helper()
	c := s.Dial(t)
	c.Send(fmt.Sprintf(`{"type":"resume","id":"r","token":%q}`, tok))
	f := c.Expect(fmt.Sprintf(`{"type":"ok","id":"r","user":%q}`, user))
	if f.TokenExpires == 0 || f.Token != "" {
		t.Fatalf("resume reply: %+v", f)
	}
	return c
}

// resumeFails expects a resume with tok on a new connection to fail with
// auth_failed.
func resumeFails(t *testing.T, s *daemontest.Server, tok string) {
	t.Helper()
	c := s.Dial(t)
	c.Send(fmt.Sprintf(`{"type":"resume","id":"r","token":%q}`, tok))
	c.Expect(`{"type":"error","id":"r","code":"auth_failed"}`)
	c.C.Close()
}

// TestResume: a login with remember gets a token; resume logs in with it,
// on as many connections and as often as wanted, without a password hash;
// the session is a session like any other; logout of a session revokes
// its own token only.
func TestResume(t *testing.T) {
	s, reg := startLimited(t)
	alice := s.Dial(t)
	if !slices.Contains(alice.Hello.Features, protocol.FeatureResume) {
		t.Fatalf("hello lacks resume: %+v", alice.Hello)
	}
	alice.Register("alice", "password1")
	alice.Register("bob", "password1")
	start := time.Now().UnixMilli()
	tok := remember(t, alice, "alice")
	wantMetric(t, reg, 1, "qqd_tokens_issued_total")
	// A plain login gets no token.
	bob := s.Dial(t)
	bob.Send(`{"type":"login","id":1,"user":"bob","password":"password1","remember":false}`)
	if f := bob.Expect(`{"type":"ok","id":1,"user":"bob"}`); f.Token != "" {
		t.Fatalf("login without remember got a token: %+v", f)
	}
	bob.Send(`{"type":"send","id":2,"to":"alice","body":"while you were away"}`)
	bob.Expect(`{"type":"ok","id":2}`)
	alice.Expect(`{"type":"msg","from":"bob","body":"while you were away"}`)

	hashes := daemontest.MetricValue(t, reg, "qqd_password_hashes_total")
	a2 := s.Dial(t)
	a2.Send(fmt.Sprintf(`{"type":"resume","id":"r","token":%q,"user":"alice"}`, tok))
	f := a2.Expect(`{"type":"ok","id":"r","user":"alice","pending":1}`)
	lifetime := s.Config.Tokens.Lifetime.Milliseconds()
	if f.TokenExpires < start+lifetime || f.TokenExpires > time.Now().UnixMilli()+lifetime {
		t.Fatalf("token_expires %d, want about now + %d", f.TokenExpires, lifetime)
	}
	a3 := resume(t, s, tok, "alice")
	bob.Send(`{"type":"send","id":3,"to":"alice","body":"to all three"}`)
	bob.Expect(`{"type":"ok","id":3,"status":"sent"}`)
	for _, c := range []*daemontest.Conn{alice, a2, a3} {
		c.Expect(`{"type":"msg","from":"bob","body":"to all three"}`)
	}
	bob.Send(`{"type":"users","id":4}`)
	bob.Expect(`{"type":"ok","id":4,"users":["alice","bob"]}`)
	if got := daemontest.MetricValue(t, reg, "qqd_password_hashes_total"); got != hashes {
		t.Errorf("resumes computed %v password hashes", got-hashes)
	}
	wantMetric(t, reg, 2, "qqd_resumes_total", "result", "ok")

	// A resumed session is logged in: resume and login again are refused.
	a3.Send(fmt.Sprintf(`{"type":"resume","id":"again","token":%q}`, tok))
	a3.Expect(`{"type":"error","id":"again","code":"already_logged_in"}`)
	// A second token for alice; logging out of a3 revokes tok, not it.
	other := remember(t, s.Dial(t), "alice")
	a3.Send(`{"type":"logout","id":"bye"}`)
	a3.Expect(`{"type":"ok","id":"bye"}`)
	a3.ExpectClosed()
	wantMetric(t, reg, 1, "qqd_tokens_revoked_total", "reason", "logout")
	resumeFails(t, s, tok)
	resume(t, s, other, "alice")
	// alice's other connections stay logged in.
	alice.Send(`{"type":"ping","id":"p"}`)
	alice.Expect(`{"type":"ok","id":"p"}`)
	wantMetric(t, reg, 1, "qqd_resumes_total", "result", "auth_failed")
}

// TestResumeForeignToken: a token of alice never logs in as bob, however
// it is presented, and a guessed secret for a real id fails like an
// unknown token.
func TestResumeForeignToken(t *testing.T) {
	s := daemontest.Start(t)
	s.User(t, "alice")
	s.User(t, "bob")
	tok := remember(t, s.Dial(t), "alice")
	c := s.Dial(t)
	c.Send(fmt.Sprintf(`{"type":"resume","id":1,"token":%q,"user":"bob"}`, tok))
	c.Expect(`{"type":"error","id":1,"code":"auth_failed"}`)
	// Same id, another secret.
	forged := tok[:len(token.Prefix)+17] + token.New().String()[len(token.Prefix)+17:]
	if forged == tok {
		t.Fatal("forged token equals the real one")
	}
	c.Send(fmt.Sprintf(`{"type":"resume","id":2,"token":%q}`, forged))
	c.Expect(`{"type":"error","id":2,"code":"auth_failed"}`)
	// A token that was never issued.
	c.Send(fmt.Sprintf(`{"type":"resume","id":3,"token":%q}`, token.New()))
	c.Expect(`{"type":"error","id":3,"code":"auth_failed"}`)
	// The connection is still logged out, and usable.
	c.Send(`{"type":"users","id":4}`)
	c.Expect(`{"type":"error","id":4,"code":"not_logged_in"}`)
	resume(t, s, tok, "alice")
}

// TestResumeBadInput: malformed tokens, wrong types and tokens in the
// wrong field get their documented errors and change nothing.
func TestResumeBadInput(t *testing.T) {
	s, reg := startLimited(t)
	s.User(t, "alice")
	tok := remember(t, s.Dial(t), "alice")
	c := s.Dial(t)
	for i, tc := range []struct{ req, code string }{
		{`{"type":"resume"}`, "bad_request"},
		{`{"type":"resume","token":null}`, "bad_request"},
		{`{"type":"resume","token":42}`, "bad_request"},
		{`{"type":"resume","token":["` + tok + `"]}`, "bad_request"},
		{`{"type":"resume","token":""}`, "bad_request"},
		{`{"type":"resume","token":"password1"}`, "bad_request"}, // a password in the token field
		{`{"type":"resume","token":"` + strings.ToUpper(tok) + `"}`, "bad_request"},
		{`{"type":"resume","token":"` + tok + `x"}`, "bad_request"},
		{`{"type":"resume","token":"` + tok[:len(tok)-1] + `"}`, "bad_request"},
		{`{"type":"resume","token":"` + tok + `","user":7}`, "bad_request"},
		{`{"type":"login","user":"alice","password":"password1","remember":"yes"}`, "bad_request"},
		// A token in the password field is a wrong password.
		{`{"type":"login","user":"alice","password":"` + tok + `"}`, "auth_failed"},
		// A token in the user field: no such user.
		{`{"type":"login","user":"` + tok + `","password":"password1"}`, "auth_failed"},
		{`{"type":"resume","token":"` + tok + `","user":"` + tok + `"}`, "auth_failed"},
	} {
		req := strings.Replace(tc.req, `{"type"`, fmt.Sprintf(`{"id":%d,"type"`, i), 1)
		c.Send(req)
		c.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":%q}`, i, tc.code))
	}
	c.Send(`{"type":"users","id":"u"}`)
	c.Expect(`{"type":"error","id":"u","code":"not_logged_in"}`)
	// Nothing changed: the token works, alice has one token, no other
	// token was issued or revoked.
	resume(t, s, tok, "alice")
	if ts, err := s.Daemon.UserTokens("alice"); err != nil || len(ts) != 1 {
		t.Fatalf("alice's tokens: %+v, %v", ts, err)
	}
	wantMetric(t, reg, 1, "qqd_tokens_issued_total")
	wantMetric(t, reg, 0, "qqd_tokens_revoked_total", "reason", "logout")
}

// TestTokenRevocation: every revocation path ends the token for good, and
// a replay after revocation fails.
func TestTokenRevocation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revoke func(t *testing.T, s *daemontest.Server, tok string)
		// survives: a token issued to alice after the revocation works.
		survives bool
	}{
		{name: "password change", survives: true, revoke: func(t *testing.T, s *daemontest.Server, _ string) {
			if err := s.Daemon.SetPassword(context.Background(), "alice", "password2"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "account deletion", revoke: func(t *testing.T, s *daemontest.Server, _ string) {
			if _, err := s.Daemon.RemoveAccount(context.Background(), "alice"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "operator, all", survives: true, revoke: func(t *testing.T, s *daemontest.Server, _ string) {
			if n, err := s.Daemon.RevokeTokens("alice", nil); err != nil || n != 2 {
				t.Fatalf("RevokeTokens = %d, %v; want 2", n, err)
			}
		}},
		{name: "operator, by id", survives: true, revoke: func(t *testing.T, s *daemontest.Server, tok string) {
			id := tok[len(token.Prefix) : len(token.Prefix)+16]
			// bob's name with alice's id revokes nothing.
			if n, err := s.Daemon.RevokeTokens("bob", []string{id}); err != nil || n != 0 {
				t.Fatalf("RevokeTokens(bob, alice's id) = %d, %v", n, err)
			}
			if n, err := s.Daemon.RevokeTokens("alice", []string{id}); err != nil || n != 1 {
				t.Fatalf("RevokeTokens = %d, %v; want 1", n, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := daemontest.Start(t)
			s.User(t, "bob")
			s.User(t, "alice")
			tok := remember(t, s.Dial(t), "alice")
			tok2 := remember(t, s.Dial(t), "alice")
			bobTok := remember(t, s.Dial(t), "bob")
			tc.revoke(t, s, tok)
			resumeFails(t, s, tok)
			resumeFails(t, s, tok) // a replay fails alike
			if tc.name != "operator, by id" {
				resumeFails(t, s, tok2)
			} else {
				resume(t, s, tok2, "alice")
			}
			resume(t, s, bobTok, "bob") // nobody else's token is touched
			if !tc.survives {
				return
			}
			c := s.Dial(t)
			pw := "password1"
			if tc.name == "password change" {
				pw = "password2"
			}
			c.Send(fmt.Sprintf(`{"type":"login","id":1,"user":"alice","password":%q,"remember":true}`, pw))
			f := c.Expect(`{"type":"ok","id":1}`)
			resume(t, s, f.Token, "alice")
		})
	}
}

// TestTokenExpiry: a token past its idle or absolute end, or past a
// lifetime shortened since it was issued, fails and is deleted.
func TestTokenExpiry(t *testing.T) {
	s, reg := startLimited(t)
	s.User(t, "alice")
	tk, ok := plugins.TokensOf(s.Store)
	if !ok {
		t.Fatal("the test storage keeps no tokens")
	}
	now := time.Now().UnixMilli()
	idle, life := s.Config.Tokens.Idle.Milliseconds(), s.Config.Tokens.Lifetime.Milliseconds()
	// add stores a token as if issued at created, last used at used and
	// ending at expires.
	add := func(created, used, expires int64) string {
		tok := token.New()
		err := tk.AddToken(context.Background(), plugins.Token{
			ID: tok.ID, User: "alice", Hash: tok.Hash(), Created: created, LastUsed: used, Expires: expires,
		}, 100)
		if err != nil {
			t.Fatal(err)
		}
		return tok.String()
	}
	fresh := add(now-1000, now-1000, now+life)
	idleGone := add(now-idle-2000, now-idle-1000, now+life)
	absGone := add(now-life, now-1000, now-1)
	shortened := add(now-life-1000, now-1000, now+life) // issued under a longer lifetime
	almostIdle := add(now-idle+60_000, now-idle+60_000, now+life)
	for _, tok := range []string{idleGone, absGone, shortened} {
		resumeFails(t, s, tok)
	}
	wantMetric(t, reg, 3, "qqd_tokens_revoked_total", "reason", "expired")
	resume(t, s, fresh, "alice")
	resume(t, s, almostIdle, "alice") // and its idle timer restarts
	ts, err := s.Daemon.UserTokens("alice")
	if err != nil || len(ts) != 2 {
		t.Fatalf("alice's tokens after expiry: %+v, %v", ts, err)
	}
	// The use of almostIdle is written back within a second or so.
	id := almostIdle[len(token.Prefix) : len(token.Prefix)+16]
	deadline := time.Now().Add(daemontest.Timeout)
	for {
		rec, err := tk.Token(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.LastUsed >= now {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last use not written back: %+v", rec)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTokensPerUser: past tokens.per_user, a new token replaces the least
// recently used one.
func TestTokensPerUser(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.Tokens.PerUser = 2 })
	s.User(t, "alice")
	t1 := remember(t, s.Dial(t), "alice")
	t2 := remember(t, s.Dial(t), "alice")
	time.Sleep(5 * time.Millisecond) // distinct last-use times
	resume(t, s, t1, "alice")        // t1 is now the more recently used
	s.Daemon.FlushTokenUses()        // write the use back now
	t3 := remember(t, s.Dial(t), "alice")
	resumeFails(t, s, t2)
	resume(t, s, t1, "alice")
	resume(t, s, t3, "alice")
}

// TestTokensSurviveRestart: tokens live in the storage, so a new qqd on
// the same data resumes them; the last uses are written at shutdown.
func TestTokensSurviveRestart(t *testing.T) {
	s := daemontest.Start(t)
	s.User(t, "alice")
	tok := remember(t, s.Dial(t), "alice")
	resume(t, s, tok, "alice")
	used := time.Now().UnixMilli()
	s.Shutdown()
	s = daemontest.StartWith(t, s.Config, nil)
	resume(t, s, tok, "alice")
	ts, err := s.Daemon.UserTokens("alice")
	if err != nil || len(ts) != 1 {
		t.Fatalf("tokens after restart: %+v, %v", ts, err)
	}
	// The resume before the restart was written back by Shutdown.
	if ts[0].LastUsed < used-1000 {
		t.Fatalf("last use %d lost at shutdown (resumed at %d)", ts[0].LastUsed, used)
	}
	if ts[0].Hash != nil {
		t.Fatal("UserTokens returned the hash")
	}
}

// TestResumeLimits: failed resumes share the per-address budget of failed
// logins, successful ones cost nothing (many users behind one address
// resume freely), and an exempt network is not counted.
func TestResumeLimits(t *testing.T) {
	const perIP = 3
	s, reg := startLimited(t, func(c *config.Config) {
		c.Limits.AuthPerIPPerMinute = perIP
		c.Limits.ExemptNetworks = []string{"127.0.0.3/32"}
	})
	s.User(t, "alice")
	tok := remember(t, s.Dial(t), "alice")
	// Many successful resumes from one address: never limited.
	for range 3 * perIP {
		c := s.DialFrom(t, "127.0.0.2")
		c.Send(fmt.Sprintf(`{"type":"resume","id":1,"token":%q}`, tok))
		c.Expect(`{"type":"ok","id":1,"user":"alice"}`)
		c.C.Close()
	}
	// A guesser is throttled after perIP failures...
	g := s.DialFrom(t, "127.0.0.2")
	for i := range perIP {
		g.Send(fmt.Sprintf(`{"type":"resume","id":%d,"token":%q}`, i, token.New()))
		g.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"auth_failed"}`, i))
	}
	g.Send(fmt.Sprintf(`{"type":"resume","id":"x","token":%q}`, tok))
	if f := g.Expect(`{"type":"error","id":"x","code":"rate_limited"}`); f.RetryAfterMS <= 0 {
		t.Fatalf("rate_limited without retry_after_ms: %+v", f)
	}
	// ...and so are its password guesses (one budget).
	g.Send(`{"type":"login","id":"y","user":"alice","password":"guess"}`)
	g.Expect(`{"type":"error","id":"y","code":"rate_limited"}`)
	// Others are not, and an exempt address never is.
	resume(t, s, tok, "alice")
	x := s.DialFrom(t, "127.0.0.3")
	for i := range 2 * perIP {
		x.Send(fmt.Sprintf(`{"type":"resume","id":%d,"token":%q}`, i, token.New()))
		x.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"auth_failed"}`, i))
	}
	wantMetric(t, reg, 1, "qqd_resumes_total", "result", "rate_limited")
}

// TestTokensOff: with tokens.enabled false, hello does not list resume,
// remember is ignored and resume is an unknown type.
func TestTokensOff(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.Tokens.Enabled = false })
	c := s.Dial(t)
	if slices.Contains(c.Hello.Features, protocol.FeatureResume) {
		t.Fatalf("hello lists resume: %+v", c.Hello)
	}
	c.Register("alice", "password1")
	c.Send(`{"type":"login","id":1,"user":"alice","password":"password1","remember":true}`)
	if f := c.Expect(`{"type":"ok","id":1,"user":"alice"}`); f.Token != "" || f.TokenExpires != 0 {
		t.Fatalf("a token with tokens off: %+v", f)
	}
	d := s.Dial(t)
	d.Send(fmt.Sprintf(`{"type":"resume","id":2,"token":%q}`, token.New()))
	d.Expect(`{"type":"error","id":2,"code":"unknown_type"}`)
	if _, err := s.Daemon.UserTokens("alice"); err == nil {
		t.Fatal("UserTokens with tokens off: no error")
	}
}
