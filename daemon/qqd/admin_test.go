package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/adminserver"
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
