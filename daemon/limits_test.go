package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// startLimited runs a qqd like daemontest.Start (limits lifted), then
// changed by opts, with its metrics on a registry of its own.
func startLimited(t *testing.T, opts ...func(*config.Config)) (*daemontest.Server, *prometheus.Registry) {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	daemontest.SQLite(cfg)
	daemontest.Unlimited(cfg)
	for _, o := range opts {
		o(cfg)
	}
	reg := prometheus.NewRegistry()
	return daemontest.StartDeps(t, cfg, daemon.Deps{Registry: reg}), reg
}

func wantMetric(t *testing.T, g prometheus.Gatherer, want float64, name string, labels ...string) {
	t.Helper()
	if got := daemontest.MetricValue(t, g, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// TestConnectionLimits: past max_connections_per_ip (counted per remote
// address) or max_connections, a new connection gets kicked
// too_many_connections instead of hello and is closed; the others go on,
// and a closed connection frees its place.
func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name               string
		total, perIP       int
		from1, from2       int // connections from 127.0.0.1, then 127.0.0.2
		want1, want2       int // of them accepted
		refusedBy          string
		freeFrom, freeTest string // a place freed on one address is usable from the other
	}{
		{name: "per_ip", total: 1000, perIP: 16, from1: 100, from2: 3, want1: 16, want2: 3,
			refusedBy: "max_connections_per_ip", freeFrom: "127.0.0.1", freeTest: "127.0.0.1"},
		{name: "total", total: 10, perIP: 16, from1: 8, from2: 5, want1: 8, want2: 2,
			refusedBy: "max_connections", freeFrom: "127.0.0.1", freeTest: "127.0.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, reg := startLimited(t, func(c *config.Config) {
				c.Limits.MaxConnections = tc.total
				c.Limits.MaxConnectionsPerIP = tc.perIP
			})
			var open []*daemontest.Conn
			dial := func(local string, n, want int) {
				accepted := 0
				for i := range n {
					c := daemontest.DialRawFrom(t, s.Addr, local)
					f := c.Read()
					switch {
					case f.Type == protocol.TypeHello:
						accepted++
						open = append(open, c)
						if accepted > want {
							t.Fatalf("connection %d from %s accepted, want only %d", i, local, want)
						}
					case f.Type == protocol.TypeKicked && f.Reason == string(protocol.KickTooManyConnections) && f.Message != "":
						if accepted < want {
							t.Fatalf("connection %d from %s refused after %d accepted, want %d", i, local, accepted, want)
						}
						c.ExpectClosed()
					default:
						t.Fatalf("connection %d from %s: got %+v", i, local, f)
					}
				}
				if accepted != want {
					t.Fatalf("%d connections from %s accepted, want %d", accepted, local, want)
				}
			}
			dial("127.0.0.1", tc.from1, tc.want1)
			dial("127.0.0.2", tc.from2, tc.want2)
			refused := float64(tc.from1 + tc.from2 - tc.want1 - tc.want2)
			wantMetric(t, reg, refused, "qqd_connections_closed_total", "reason", "too_many_connections")
			wantMetric(t, reg, refused, "qqd_limit_refusals_total", "reason", tc.refusedBy)
			wantMetric(t, reg, float64(tc.want1+tc.want2), "qqd_connections_open")

			// The accepted ones are served.
			for i, c := range open {
				c.Send(fmt.Sprintf(`{"type":"ping","id":%d}`, i))
			}
			for i, c := range open {
				c.Expect(fmt.Sprintf(`{"type":"ok","id":%d}`, i))
			}
			open[0].Register("alice", "password1")
			open[0].Login("alice", "password1")

			// Closing one (from freeFrom) frees a place: the server sees
			// the close a moment later.
			for _, c := range open {
				if strings.HasPrefix(c.C.LocalAddr().String(), tc.freeFrom+":") {
					c.C.Close()
					break
				}
			}
			deadline := time.Now().Add(daemontest.Timeout)
			for {
				c := daemontest.DialRawFrom(t, s.Addr, tc.freeTest)
				f := c.Read()
				if f.Type == protocol.TypeHello {
					break
				}
				c.C.Close()
				if time.Now().After(deadline) {
					t.Fatalf("no place freed: %+v", f)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestSendRate: a pipelined flood gets exactly send_burst oks, then
// rate_limited with a retry_after_ms up to one token's time, for all of the
// user's connections; the refused sends stored nothing; after
// retry_after_ms a send goes through.
func TestSendRate(t *testing.T) {
	const burst, flood = 5, 12
	s, reg := startLimited(t, func(c *config.Config) {
		c.Limits.SendRate = 1
		c.Limits.SendBurst = burst
	})
	alice := s.User(t, "alice")
	alice2 := s.Dial(t)
	alice2.Login("alice", "password1")
	bob := s.User(t, "bob")

	var sb strings.Builder
	for i := range flood {
		fmt.Fprintf(&sb, `{"type":"send","id":%d,"to":"bob","body":"m%d"}`+"\n", i, i)
	}
	alice.SendRaw([]byte(sb.String()))
	var retry int64
	for i := range flood {
		if i < burst {
			alice.Expect(fmt.Sprintf(`{"type":"ok","id":%d,"status":"sent"}`, i))
			continue
		}
		f := alice.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"rate_limited"}`, i))
		if f.RetryAfterMS < 1 || f.RetryAfterMS > 1000 || f.Message == "" {
			t.Fatalf("send %d: retry_after_ms %d, message %q; want 1..1000 and a message", i, f.RetryAfterMS, f.Message)
		}
		retry = f.RetryAfterMS
	}
	// The bucket is the user's, not the connection's.
	alice2.Send(`{"type":"send","id":"other","to":"bob","body":"from the other connection","cid":"c1"}`)
	f := alice2.Expect(`{"type":"error","id":"other","code":"rate_limited"}`)
	retry = max(retry, f.RetryAfterMS)

	// Refused sends stored nothing.
	for i := range burst {
		bob.Expect(fmt.Sprintf(`{"type":"msg","body":"m%d"}`, i))
	}
	bob.Send(`{"type":"history","id":"h","with":"alice"}`)
	if h := bob.Expect(`{"type":"ok","id":"h"}`); len(h.Messages) != burst {
		t.Fatalf("history has %d messages, want %d", len(h.Messages), burst)
	}

	time.Sleep(time.Duration(retry) * time.Millisecond)
	alice2.Send(`{"type":"send","id":"again","to":"bob","body":"from the other connection","cid":"c1"}`)
	alice2.Expect(`{"type":"ok","id":"again","status":"sent"}`)
	bob.Expect(`{"type":"msg","body":"from the other connection"}`)

	wantMetric(t, reg, flood-burst+1, "qqd_messages_total", "result", "rate_limited")
	wantMetric(t, reg, flood-burst+1, "qqd_limit_refusals_total", "reason", "send_rate")
	wantMetric(t, reg, burst+1, "qqd_messages_total", "result", "sent")
}

// TestAuthLimits: login attempts are limited per account (failed ones)
// and per remote address (logins and registrations), answered
// rate_limited before the credentials are looked at, the same for an
// account that exists and one that does not.
func TestAuthLimits(t *testing.T) {
	t.Run("per_account", func(t *testing.T) {
		const limit = 3
		s, reg := startLimited(t, func(c *config.Config) { c.Limits.AuthPerAccountPerMinute = limit })
		c := s.Dial(t)
		for _, u := range []string{"alice", "bob", "carol"} {
			c.Register(u, "password1")
		}
		login := func(c *daemontest.Conn, user, pw string) *protocol.ServerFrame {
			t.Helper()
			c.Send(fmt.Sprintf(`{"type":"login","id":"l","user":%q,"password":%q}`, user, pw))
			return c.Read()
		}
		// Successful logins do not count.
		for range 2 * limit {
			if f := login(s.Dial(t), "bob", "password1"); f.Type != protocol.TypeOK {
				t.Fatalf("bob's login: %+v", f)
			}
		}
		messages := map[string]string{}
		for _, user := range []string{"alice", "ghost"} { // ghost does not exist
			for i := range limit {
				if f := login(c, user, "guess"+fmt.Sprint(i)); f.Code != protocol.CodeAuthFailed {
					t.Fatalf("%s guess %d: %+v, want auth_failed", user, i, f)
				}
			}
			for _, pw := range []string{"guess", "password1"} { // the right one too
				f := login(c, user, pw)
				if f.Code != protocol.CodeRateLimited || f.RetryAfterMS < 1 || f.RetryAfterMS > 60_000 {
					t.Fatalf("%s after %d failures: %+v, want rate_limited with retry_after_ms", user, limit, f)
				}
				messages[user] = f.Message
			}
		}
		if messages["alice"] != messages["ghost"] {
			t.Errorf("messages differ for an existing and an unknown account: %q, %q", messages["alice"], messages["ghost"])
		}
		// Other accounts are not affected.
		if f := login(c, "carol", "password1"); f.Type != protocol.TypeOK {
			t.Fatalf("carol's login: %+v", f)
		}
		wantMetric(t, reg, 4, "qqd_logins_total", "result", "rate_limited")
		wantMetric(t, reg, 4, "qqd_limit_refusals_total", "reason", "auth_per_account_per_minute")
		wantMetric(t, reg, 2*limit, "qqd_logins_total", "result", "auth_failed")
	})
	t.Run("per_ip", func(t *testing.T) {
		const limit, regLimit = 5, 3
		s, reg := startLimited(t, func(c *config.Config) {
			c.Limits.AuthPerIPPerMinute = limit
			c.Limits.RegisterPerIPPerMinute = regLimit
			c.Limits.ExemptNetworks = nil // the test's clients are on loopback
		})
		c := s.Dial(t)
		for i := range regLimit {
			c.Register(fmt.Sprintf("u%d", i), "password1")
		}
		// A registration flood is refused; requests that never reach a
		// password (bad names) do not count.
		c.Send(`{"type":"register","id":"bad","user":"Bad Name","password":"password1"}`)
		c.Expect(`{"type":"error","id":"bad","code":"bad_request"}`)
		c.Send(`{"type":"register","id":"r","user":"flood","password":"password1"}`)
		f := c.Expect(`{"type":"error","id":"r","code":"rate_limited"}`)
		if f.RetryAfterMS < 1 || f.RetryAfterMS > 60_000/regLimit {
			t.Errorf("retry_after_ms = %d, want 1..%d", f.RetryAfterMS, 60_000/regLimit)
		}
		// Many users behind one address (a NAT) log in freely: successful
		// logins do not count.
		for i := range 4 * limit {
			s.Dial(t).Login(fmt.Sprintf("u%d", i%regLimit), "password1")
		}
		// A guesser is throttled: limit failures over any accounts, known
		// or not, and then even the right password is refused.
		for i := range limit {
			user := []string{"u0", "ghost", "u1"}[i%3]
			c.Send(fmt.Sprintf(`{"type":"login","id":%d,"user":%q,"password":"guess%d"}`, i, user, i))
			c.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"auth_failed"}`, i))
		}
		c2 := s.Dial(t)
		c2.Send(`{"type":"login","id":"l","user":"u2","password":"password1"}`)
		c2.Expect(`{"type":"error","id":"l","code":"rate_limited"}`)
		// Another address is not.
		other := s.DialFrom(t, "127.0.0.2")
		other.Register("flood", "password1")
		other.Login("u2", "password1")
		wantMetric(t, reg, 1, "qqd_registrations_total", "result", "rate_limited")
		wantMetric(t, reg, regLimit+1, "qqd_registrations_total", "result", "ok")
		wantMetric(t, reg, 1, "qqd_limit_refusals_total", "reason", "register_per_ip_per_minute")
		wantMetric(t, reg, 1, "qqd_limit_refusals_total", "reason", "auth_per_ip_per_minute")
		wantMetric(t, reg, limit, "qqd_logins_total", "result", "auth_failed")
	})
	t.Run("exempt_networks", func(t *testing.T) {
		s, reg := startLimited(t, func(c *config.Config) {
			c.Limits.AuthPerIPPerMinute = 1
			c.Limits.RegisterPerIPPerMinute = 1
			c.Limits.ExemptNetworks = []string{"127.0.0.2", "127.0.3.0/24"}
		})
		for _, addr := range []string{"127.0.0.2", "127.0.3.9"} {
			c := s.DialFrom(t, addr)
			for i := range 3 {
				user := fmt.Sprintf("x%s-%d", strings.ReplaceAll(addr, ".", ""), i)
				c.Register(user, "password1")
				c.Send(fmt.Sprintf(`{"type":"login","id":%d,"user":%q,"password":"wrong-password"}`, i, user))
				c.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"auth_failed"}`, i))
			}
		}
		// 127.0.0.1 is not exempt here (the list replaces the default).
		c := s.Dial(t)
		c.Register("y0", "password1")
		c.Send(`{"type":"register","id":"r","user":"y1","password":"password1"}`)
		c.Expect(`{"type":"error","id":"r","code":"rate_limited"}`)
		wantMetric(t, reg, 6+1, "qqd_registrations_total", "result", "ok")
		wantMetric(t, reg, 0, "qqd_limit_refusals_total", "reason", "auth_per_ip_per_minute")
	})
}

// TestRegisterTakenNameNoHash: registering a taken name is answered
// user_exists before the password is hashed, so a flood of them costs no
// Argon2id work; a new name costs one hash and a login one verification
// (an unknown user's login too).
func TestRegisterTakenNameNoHash(t *testing.T) {
	s, reg := startLimited(t)
	c := s.Dial(t)
	c.Register("alice", "password1")
	wantMetric(t, reg, 1, "qqd_password_hashes_total")
	for i := range 5 {
		c.Send(fmt.Sprintf(`{"type":"register","id":%d,"user":"alice","password":"other-password"}`, i))
		c.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"user_exists"}`, i))
	}
	wantMetric(t, reg, 1, "qqd_password_hashes_total")
	wantMetric(t, reg, 5, "qqd_registrations_total", "result", "exists")
	// A deleted account's name stays taken; the lookup does not see it,
	// so it costs a hash, and CreateUser refuses it.
	if _, err := s.Daemon.RemoveAccount(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	c.Send(`{"type":"register","id":"d","user":"alice","password":"password2"}`)
	c.Expect(`{"type":"error","id":"d","code":"user_exists"}`)
	wantMetric(t, reg, 2, "qqd_password_hashes_total")
	c.Send(`{"type":"login","id":"l","user":"ghost","password":"password1"}`)
	c.Expect(`{"type":"error","id":"l","code":"auth_failed"}`)
	wantMetric(t, reg, 3, "qqd_password_hashes_total")
}

// TestPendingCap: sends to a user with max_pending_per_user undelivered
// messages are refused (rejected, with a message); the earlier ones stay
// intact, a cid retry of one is still answered, and once the recipient
// acks some, sends go through again.
func TestPendingCap(t *testing.T) {
	const limit = 5
	s, reg := startLimited(t, func(c *config.Config) { c.Limits.MaxPendingPerUser = limit })
	alice := s.User(t, "alice")
	carol := s.User(t, "carol")
	alice.Register("bob", "password1") // bob stays offline

	var sb strings.Builder
	for i := range limit + 3 {
		fmt.Fprintf(&sb, `{"type":"send","id":%d,"to":"bob","body":"m%d","cid":"a%d"}`+"\n", i, i, i)
	}
	alice.SendRaw([]byte(sb.String()))
	var first string
	for i := range limit + 3 {
		if i < limit {
			f := alice.Expect(fmt.Sprintf(`{"type":"ok","id":%d,"status":"queued"}`, i))
			if i == 0 {
				first = f.MsgID
			}
			continue
		}
		f := alice.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"rejected"}`, i))
		if !strings.Contains(f.Message, "undelivered") {
			t.Errorf("message %q does not say why", f.Message)
		}
	}
	carol.Send(`{"type":"send","id":"c","to":"bob","body":"me too"}`)
	carol.Expect(`{"type":"error","id":"c","code":"rejected"}`)
	// A retry of a stored message is answered as before.
	alice.Send(`{"type":"send","id":"retry","to":"bob","body":"m0","cid":"a0"}`)
	alice.Expect(fmt.Sprintf(`{"type":"ok","id":"retry","msg_id":%q}`, first))
	// Other recipients are not affected.
	alice.Send(`{"type":"send","id":"other","to":"carol","body":"hi"}`)
	alice.Expect(`{"type":"ok","id":"other"}`)

	bob := s.Dial(t)
	if n := bob.Login("bob", "password1"); n != limit {
		t.Fatalf("bob has %d pending, want %d", n, limit)
	}
	bob.Send(`{"type":"offline","id":"o"}`)
	msgs := bob.Expect(`{"type":"ok","id":"o","more":false}`).Messages
	if got := bodies(msgs); got != "m0 m1 m2 m3 m4" {
		t.Fatalf("pending bodies %q", got)
	}
	bob.Send(fmt.Sprintf(`{"type":"ack","id":"a","msg_ids":[%q,%q]}`, msgs[0].ID, msgs[1].ID))
	bob.Expect(`{"type":"ok","id":"a"}`)
	for i, want := range []string{"ok", "ok", "error"} {
		alice.Send(fmt.Sprintf(`{"type":"send","id":"after%d","to":"bob","body":"n%d"}`, i, i))
		alice.Expect(fmt.Sprintf(`{"type":%q,"id":"after%d"}`, want, i))
	}
	bob.Expect(`{"type":"msg","body":"n0"}`)
	bob.Expect(`{"type":"msg","body":"n1"}`)

	wantMetric(t, reg, 5, "qqd_messages_total", "result", "recipient_full")
	wantMetric(t, reg, 5, "qqd_limit_refusals_total", "reason", "max_pending_per_user")
	wantMetric(t, reg, 1, "qqd_messages_total", "result", "duplicate")
}

// TestPendingCapConcurrent: senders flooding one recipient at once get
// exactly max_pending_per_user oks in all.
func TestPendingCapConcurrent(t *testing.T) {
	const limit, senders, each = 40, 6, 15
	s, _ := startLimited(t, func(c *config.Config) {
		c.Limits.MaxPendingPerUser = limit
		c.Storage.BatchMax = 8 // many batches
	})
	s.Dial(t).Register("bob", "password1")
	conns := make([]*daemontest.Conn, senders)
	for i := range conns {
		conns[i] = s.User(t, fmt.Sprintf("s%d", i))
	}
	var mu sync.Mutex
	oks := 0
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			var sb strings.Builder
			for j := range each {
				fmt.Fprintf(&sb, `{"type":"send","id":%d,"to":"bob","body":"%d-%d"}`+"\n", j, i, j)
			}
			c.SendRaw([]byte(sb.String()))
			for range each {
				line, err := c.TryRead()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if daemontest.Match(line, `{"type":"ok"}`) == nil {
					oks++
				} else if err := daemontest.Match(line, `{"type":"error","code":"rejected"}`); err != nil {
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if oks != limit {
		t.Fatalf("%d sends accepted, want %d", oks, limit)
	}
	if n := s.Dial(t).Login("bob", "password1"); n != limit {
		t.Fatalf("bob has %d pending, want %d", n, limit)
	}
}
