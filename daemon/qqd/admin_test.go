package main

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/adminserver"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

// dialAdmin serves the admin API with qqd's adminBackend around d, with
// the plugins statuses reports and a reload that is always refused, and
// returns a Client of it. Both end with the test.
func dialAdmin(t *testing.T, d *daemon.Server, statuses func() []plugins.Status) *admin.Client {
	t.Helper()
	b := adminBackend{d: d, statuses: statuses, reload: func(context.Context) ([]string, error) {
		return nil, errors.New("no configuration file to reload")
	}}
	s, err := adminserver.Listen(adminserver.Options{Path: filepath.Join(t.TempDir(), "admin.sock")}, b)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() { s.Close(); <-done })
	c, err := admin.Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func adminCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// TestAdminBackend drives a real in-process daemon through the admin
// socket and qqd's adapter: users, stats, plugins, broadcast, and a kick
// that ends the user's raw QQP session with reason admin and the
// operator's text.
func TestAdminBackend(t *testing.T) {
	srv := daemontest.Start(t)
	alice := srv.User(t, "alice")
	bob := srv.User(t, "bob")
	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := dialAdmin(t, srv.Daemon, func() []plugins.Status {
		return []plugins.Status{
			{Name: "sqlite", Kind: plugins.KindStorage, Up: true, Pid: 42, Since: since, Restarts: 1},
			{Name: "antispam", Kind: plugins.KindFilter, Since: since, Restarts: 3, LastErr: "process exited"},
		}
	})
	ctx := adminCtx(t)

	users, err := c.Users(ctx)
	if err != nil || len(users) != 2 || users[0].User != "alice" || users[1].User != "bob" || len(users[0].Sessions) != 1 {
		t.Fatalf("Users = %+v, %v; want alice and bob with one session each", users, err)
	}
	if users[0].Sessions[0].Remote != alice.C.LocalAddr().String() {
		t.Errorf("alice's remote = %s, want %s", users[0].Sessions[0].Remote, alice.C.LocalAddr())
	}
	st, err := c.Stats(ctx)
	if err != nil || st.LoggedIn != 2 || st.UsersOnline != 2 || st.Connections != 2 || st.Version != daemon.Version() || st.Started.IsZero() {
		t.Errorf("Stats = %+v, %v; want 2 logged in, version %s", st, err, daemon.Version())
	}
	ps, err := c.Plugins(ctx)
	want := []admin.Plugin{
		{Name: "sqlite", Kind: "storage", Up: true, Pid: 42, Since: since, Restarts: 1},
		{Name: "antispam", Kind: "filter", Since: since, Restarts: 3, LastError: "process exited"},
	}
	if err != nil || len(ps) != 2 || ps[0] != want[0] || ps[1] != want[1] {
		t.Errorf("Plugins = %+v, %v; want %+v", ps, err, want)
	}

	if n, err := c.Broadcast(ctx, "maintenance at 5"); n != 2 || err != nil {
		t.Errorf("Broadcast = %d, %v; want 2", n, err)
	}
	alice.Expect(`{"type":"notice","message":"maintenance at 5"}`)
	bob.Expect(`{"type":"notice","message":"maintenance at 5"}`)

	if n, err := c.Kick(ctx, "alice", "spamming the lobby"); n != 1 || err != nil {
		t.Fatalf("Kick = %d, %v; want 1", n, err)
	}
	alice.Expect(`{"type":"kicked","reason":"admin","message":"spamming the lobby"}`)
	alice.ExpectClosed()

	var ae *admin.APIError
	if _, err := c.Kick(ctx, "alice", ""); !errors.As(err, &ae) || ae.Code != admin.CodeNotOnline {
		t.Errorf("second Kick of alice = %v; want not_online", err)
	}
	users, err = c.Users(ctx)
	if err != nil || len(users) != 1 || users[0].User != "bob" {
		t.Errorf("Users after the kick = %+v, %v; want bob only", users, err)
	}
	if _, err := c.Reload(ctx); !errors.As(err, &ae) || ae.Code != admin.CodeReloadRefused || ae.Message != "no configuration file to reload" {
		t.Errorf("Reload = %v; want reload_refused", err)
	}
}

// TestAdminAccounts: accounts made over the socket work on the
// protocol, and the daemon's account errors arrive as the admin API's,
// with their codes and the daemon's texts.
func TestAdminAccounts(t *testing.T) {
	srv := daemontest.Start(t)
	c := dialAdmin(t, srv.Daemon, func() []plugins.Status { return nil })
	ctx := adminCtx(t)

	if err := c.AddAccount(ctx, "dave", "dave-secret"); err != nil {
		t.Fatalf("AddAccount = %v", err)
	}
	srv.Dial(t).Login("dave", "dave-secret")
	if err := c.AddAccount(ctx, "dave", "dave-secret"); !errors.Is(err, admin.ErrUserExists) {
		t.Errorf("AddAccount again = %v, want ErrUserExists", err)
	}
	if err := c.AddAccount(ctx, "erin", "short"); !errors.Is(err, admin.ErrInvalid) || err.Error() != "password must be 8 to 1024 bytes of UTF-8" {
		t.Errorf("AddAccount short password = %v, want ErrInvalid with the rule", err)
	}
	if err := c.AddAccount(ctx, "Erin!", "long-enough"); !errors.Is(err, admin.ErrInvalid) || err.Error() != "user must be 1-32 bytes of a-z, 0-9, '_', '.', '-', starting with a letter or digit" {
		t.Errorf("AddAccount bad name = %v, want ErrInvalid with the rule", err)
	}

	if err := c.SetPassword(ctx, "dave", "dave-new-secret"); err != nil {
		t.Fatalf("SetPassword = %v", err)
	}
	dave := srv.Dial(t)
	dave.Login("dave", "dave-new-secret")
	if err := c.SetPassword(ctx, "zed", "whatever-1"); !errors.Is(err, admin.ErrUnknownUser) {
		t.Errorf("SetPassword(zed) = %v, want ErrUnknownUser", err)
	}

	if _, err := c.RemoveAccount(ctx, "dave"); err != nil {
		t.Fatalf("RemoveAccount = %v", err)
	}
	dave.Expect(`{"type":"kicked","reason":"admin","message":"account removed"}`)
	dave.ExpectClosed()
	if _, err := c.RemoveAccount(ctx, "dave"); !errors.Is(err, admin.ErrUnknownUser) {
		t.Errorf("RemoveAccount again = %v, want ErrUnknownUser", err)
	}
}

// TestAdminGroups drives the group endpoints through qqd's adapter
// against a real daemon: listings, and an operator's removal and
// dissolution, made in the owner's name and pushed to the members as
// their own entries.
func TestAdminGroups(t *testing.T) {
	srv := daemontest.Start(t)
	c := dialAdmin(t, srv.Daemon, func() []plugins.Status { return nil })
	ctx := adminCtx(t)
	alice, bob, carol := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
	alice.Send(`{"type":"group_create","id":"1","name":"crew"}`)
	g := alice.Expect(`{"type":"ok","id":"1","seq":1}`).Group
	for _, u := range []*daemontest.Conn{bob, carol} {
		u.Send(`{"type":"group_join","id":"2","group":"` + g + `"}`)
		u.Expect(`{"type":"ok","id":"2","status":"joined"}`)
	}
	alice.Expect(`{"type":"group_entry","group":"` + g + `","seq":2,"kind":"joined","target":"bob"}`)
	alice.Expect(`{"type":"group_entry","group":"` + g + `","seq":3,"kind":"joined","target":"carol"}`)
	bob.Expect(`{"type":"group_entry","group":"` + g + `","seq":3,"kind":"joined","target":"carol"}`)

	gs, err := c.UserGroups(ctx, "bob")
	if err != nil || len(gs) != 1 || gs[0] != (admin.Group{Group: g, Name: "crew", Owner: "alice", Policy: "open", History: "joined",
		Members: 3, LastSeq: 3, Role: "member"}) {
		t.Fatalf("UserGroups(bob) = %+v, %v", gs, err)
	}
	if gs, err := c.UserGroups(ctx, "nobody"); err != nil || len(gs) != 0 {
		t.Errorf("UserGroups(nobody) = %+v, %v; want none", gs, err)
	}
	ms, more, err := c.GroupMembers(ctx, g, "", 2)
	if err != nil || !more || len(ms) != 2 || ms[0] != (admin.GroupMember{User: "alice", Role: "owner"}) || ms[1].User != "bob" {
		t.Fatalf("GroupMembers = %+v, %v, %v", ms, more, err)
	}
	if _, err := c.Group(ctx, "999999"); !errors.Is(err, admin.ErrNoGroup) {
		t.Errorf("Group(999999) = %v, want ErrNoGroup", err)
	}

	// The operator removes carol: the owner is the actor, and every member
	// online, carol too, gets the entry.
	r, err := c.RemoveGroupMember(ctx, g, "carol")
	if err != nil || *r != (admin.GroupChangeReply{Group: g, Seq: 4, Actor: "alice"}) {
		t.Fatalf("RemoveGroupMember(carol) = %+v, %v", r, err)
	}
	kicked := `{"type":"group_entry","group":"` + g + `","seq":4,"kind":"kicked","actor":"alice","target":"carol"}`
	alice.Expect(kicked)
	bob.Expect(kicked)
	carol.Expect(kicked)
	if _, err := c.RemoveGroupMember(ctx, g, "carol"); !errors.Is(err, admin.ErrNotMember) {
		t.Errorf("RemoveGroupMember(carol) again = %v, want ErrNotMember", err)
	}
	if _, err := c.RemoveGroupMember(ctx, g, "alice"); !errors.Is(err, admin.ErrNotAllowed) ||
		err.Error() != "alice owns group "+g+"; dissolve the group instead" {
		t.Errorf("RemoveGroupMember(owner) = %v, want ErrNotAllowed", err)
	}

	r, err = c.DissolveGroup(ctx, g)
	if err != nil || *r != (admin.GroupChangeReply{Group: g, Seq: 5, Actor: "alice"}) {
		t.Fatalf("DissolveGroup = %+v, %v", r, err)
	}
	dissolved := `{"type":"group_entry","group":"` + g + `","seq":5,"kind":"dissolved","actor":"alice"}`
	alice.Expect(dissolved)
	bob.Expect(dissolved)
	carol.ExpectSilence(50 * time.Millisecond) // removed at 4, she never sees 5
	if gi, err := c.Group(ctx, g); err != nil || !gi.Dissolved || gi.LastSeq != 5 {
		t.Errorf("Group after the dissolution = %+v, %v", gi, err)
	}
	if _, err := c.DissolveGroup(ctx, g); !errors.Is(err, admin.ErrNoGroup) {
		t.Errorf("DissolveGroup again = %v, want ErrNoGroup", err)
	}
	bob.Send(`{"type":"group_send","id":"3","group":"` + g + `","body":"anyone?"}`)
	bob.Expect(`{"type":"error","id":"3","code":"no_group"}`)
}

// TestAdminGroupsOff: with a storage that keeps no groups, the group
// endpoints answer groups_off.
func TestAdminGroupsOff(t *testing.T) {
	cfg := daemontest.Config(t)
	srv := daemontest.StartWith(t, cfg, struct{ plugins.Storage }{daemontest.OpenStore(t, cfg)})
	c := dialAdmin(t, srv.Daemon, func() []plugins.Status { return nil })
	ctx := adminCtx(t)
	if _, err := c.UserGroups(ctx, "alice"); !errors.Is(err, admin.ErrGroupsOff) {
		t.Errorf("UserGroups = %v, want ErrGroupsOff", err)
	}
	if _, err := c.DissolveGroup(ctx, "1"); !errors.Is(err, admin.ErrGroupsOff) {
		t.Errorf("DissolveGroup = %v, want ErrGroupsOff", err)
	}
}

// rememberLogin logs user in on a new connection with remember and
// returns the connection and the resume token the ok carries.
func rememberLogin(t *testing.T, srv *daemontest.Server, user string) (*daemontest.Conn, string) {
	t.Helper()
	c := srv.Dial(t)
	c.Send(`{"type":"login","id":"login","user":"` + user + `","password":"password1","remember":true}`)
	f := c.Expect(`{"type":"ok","id":"login","user":"` + user + `"}`)
	if !strings.HasPrefix(f.Token, "qqt1.") || f.TokenExpires <= time.Now().UnixMilli() {
		t.Fatalf("login with remember: %+v; want a token and its expiry", f)
	}
	return c, f.Token
}

// tokenID is the public id in a resume token: "qqt1.<id>.<secret>".
func tokenID(tok string) string { return strings.Split(tok, ".")[1] }

// resume sends a resume with tok on a new connection and returns the
// connection and the reply.
func resume(t *testing.T, srv *daemontest.Server, tok string) (*daemontest.Conn, string) {
	t.Helper()
	c := srv.Dial(t)
	c.Send(`{"type":"resume","id":"r","token":"` + tok + `"}`)
	return c, c.ReadLine()
}

// TestAdminTokens drives the token endpoints through qqd's adapter
// against a real daemon on real SQLite: the tokens of logins with
// remember are listed without their secrets, one revoked by id no longer
// resumes while the other does, and a kick with revoke ends every session
// and every token, so that no resume brings the user back; for a user
// who is not online it is no error.
func TestAdminTokens(t *testing.T) {
	srv := daemontest.Start(t)
	if _, ok := plugins.TokensOf(srv.Store); !ok {
		t.Fatal("sqlitestore does not implement plugins.Tokens: resume tokens are off, nothing to list or revoke")
	}
	c := dialAdmin(t, srv.Daemon, func() []plugins.Status { return nil })
	ctx := adminCtx(t)
	alice := srv.User(t, "alice") // a password login: no token
	if !slices.Contains(alice.Hello.Features, "resume") {
		t.Fatalf("hello %+v does not offer resume, though the storage keeps tokens", alice.Hello)
	}
	srv.User(t, "bob")
	before := time.Now().Truncate(time.Millisecond)
	a1, tok1 := rememberLogin(t, srv, "alice")
	a2, tok2 := rememberLogin(t, srv, "alice")
	id1, id2 := tokenID(tok1), tokenID(tok2)

	ts, err := c.Tokens(ctx, "alice")
	if err != nil || len(ts) != 2 {
		t.Fatalf("Tokens(alice) = %+v, %v; want 2", ts, err)
	}
	ids, want := []string{ts[0].ID, ts[1].ID}, []string{id1, id2}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("token ids = %q, want %q", ids, want)
	}
	for _, tk := range ts {
		if tk.Created.Before(before) || tk.Created.After(time.Now()) || tk.LastUsed.Before(tk.Created) ||
			!tk.Expires.After(time.Now()) || tk.Expires.After(tk.Created.Add(srv.Config.Tokens.Idle)) {
			t.Errorf("token %+v: want created now and expiring within tokens.idle", tk)
		}
	}
	if ts, err := c.Tokens(ctx, "bob"); err != nil || len(ts) != 0 {
		t.Errorf("Tokens(bob) = %+v, %v; want none", ts, err)
	}

	// Another user's token is left alone; a revoked one no longer resumes.
	if n, err := c.RevokeTokens(ctx, "bob", id1); n != 0 || err != nil {
		t.Errorf("RevokeTokens(bob, alice's id) = %d, %v; want 0", n, err)
	}
	if n, err := c.RevokeTokens(ctx, "alice", id1); n != 1 || err != nil {
		t.Fatalf("RevokeTokens(alice, %s) = %d, %v; want 1", id1, n, err)
	}
	if n, err := c.RevokeTokens(ctx, "alice", id1); n != 0 || err != nil {
		t.Errorf("RevokeTokens(alice, %s) again = %d, %v; want 0", id1, n, err)
	}
	if ts, err := c.Tokens(ctx, "alice"); err != nil || len(ts) != 1 || ts[0].ID != id2 {
		t.Errorf("Tokens(alice) after the revocation = %+v, %v; want %s only", ts, err, id2)
	}
	if _, r := resume(t, srv, tok1); daemontest.Match(r, `{"type":"error","id":"r","code":"auth_failed"}`) != nil {
		t.Errorf("resume with the revoked token: %s; want auth_failed", r)
	}
	a3, r := resume(t, srv, tok2)
	if err := daemontest.Match(r, `{"type":"ok","id":"r","user":"alice"}`); err != nil {
		t.Fatalf("resume with the other token: %v", err)
	}

	// kick --revoke: every session goes, and so does every token.
	kicked, revoked, err := c.KickRevoke(ctx, "alice", "account compromised")
	if kicked != 4 || revoked != 1 || err != nil {
		t.Fatalf("KickRevoke(alice) = %d, %d, %v; want 4 sessions, 1 token", kicked, revoked, err)
	}
	for _, s := range []*daemontest.Conn{alice, a1, a2, a3} {
		s.Expect(`{"type":"kicked","reason":"admin","message":"account compromised"}`)
		s.ExpectClosed()
	}
	if _, r := resume(t, srv, tok2); daemontest.Match(r, `{"type":"error","id":"r","code":"auth_failed"}`) != nil {
		t.Errorf("resume after kick --revoke: %s; want auth_failed", r)
	}
	if ts, err := c.Tokens(ctx, "alice"); err != nil || len(ts) != 0 {
		t.Errorf("Tokens(alice) after kick --revoke = %+v, %v; want none", ts, err)
	}
	if kicked, revoked, err := c.KickRevoke(ctx, "alice", ""); kicked != 0 || revoked != 0 || err != nil {
		t.Errorf("KickRevoke(alice) again = %d, %d, %v; want 0, 0, no error", kicked, revoked, err)
	}

	// A user who is not online but holds a token: the revocation is the
	// point, so not online is no error.
	b1, btok := rememberLogin(t, srv, "bob")
	if n, err := c.Kick(ctx, "bob", ""); n != 2 || err != nil {
		t.Fatalf("Kick(bob) = %d, %v; want 2", n, err)
	}
	b1.Expect(`{"type":"kicked","reason":"admin"}`)
	b1.ExpectClosed()
	if kicked, revoked, err := c.KickRevoke(ctx, "bob", ""); kicked != 0 || revoked != 1 || err != nil {
		t.Errorf("KickRevoke(bob) offline = %d, %d, %v; want 0 sessions, 1 token, no error", kicked, revoked, err)
	}
	if _, r := resume(t, srv, btok); daemontest.Match(r, `{"type":"error","id":"r","code":"auth_failed"}`) != nil {
		t.Errorf("bob's resume after kick --revoke: %s; want auth_failed", r)
	}
}

// TestAdminTokensOff: with resume tokens turned off, or a storage that
// keeps none, the token endpoints answer tokens_off, and a kick with
// revoke kicks no one (a plain kick still does).
func TestAdminTokensOff(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(t *testing.T) *daemontest.Server
	}{
		{"disabled", func(t *testing.T) *daemontest.Server {
			return daemontest.Start(t, func(c *config.Config) { c.Tokens.Enabled = false })
		}},
		{"storage without tokens", func(t *testing.T) *daemontest.Server {
			cfg := daemontest.Config(t)
			return daemontest.StartWith(t, cfg, struct{ plugins.Storage }{daemontest.OpenStore(t, cfg)})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.start(t)
			c := dialAdmin(t, srv.Daemon, func() []plugins.Status { return nil })
			ctx := adminCtx(t)
			alice := srv.User(t, "alice")
			if slices.Contains(alice.Hello.Features, "resume") {
				t.Fatalf("hello %+v offers resume", alice.Hello)
			}
			if _, err := c.Tokens(ctx, "alice"); !errors.Is(err, admin.ErrTokensOff) {
				t.Errorf("Tokens = %v, want ErrTokensOff", err)
			}
			if _, err := c.RevokeTokens(ctx, "alice"); !errors.Is(err, admin.ErrTokensOff) {
				t.Errorf("RevokeTokens = %v, want ErrTokensOff", err)
			}
			if _, _, err := c.KickRevoke(ctx, "alice", ""); !errors.Is(err, admin.ErrTokensOff) {
				t.Errorf("KickRevoke = %v, want ErrTokensOff", err)
			}
			if users, err := c.Users(ctx); err != nil || len(users) != 1 {
				t.Errorf("Users after the refused kick = %+v, %v; want alice still online", users, err)
			}
			if n, err := c.Kick(ctx, "alice", ""); n != 1 || err != nil {
				t.Errorf("Kick = %d, %v; want 1", n, err)
			}
			alice.Expect(`{"type":"kicked","reason":"admin"}`)
		})
	}
}
