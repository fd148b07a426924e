package admin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

// daemonBackend is qqd's adapter in miniature: *daemon.Server serves the
// Backend but for Plugins and Reload, which come from the plugin set.
type daemonBackend struct {
	*daemon.Server
}

var _ admin.Backend = daemonBackend{}

func (daemonBackend) Plugins() []plugins.Status { return nil }
func (daemonBackend) Reload(context.Context) ([]string, error) {
	return nil, errors.New("no configuration file to reload")
}

// TestRealDaemon drives a real in-process qqd through the admin socket:
// users, stats, broadcast, and a kick that ends the user's raw QQP
// session with reason admin and the operator's text.
func TestRealDaemon(t *testing.T) {
	srv := daemontest.Start(t)
	alice := srv.User(t, "alice")
	bob := srv.User(t, "bob")
	_, c := start(t, admin.Options{}, daemonBackend{srv.Daemon})
	ctx := ctx(t)

	users, err := c.Users(ctx)
	if err != nil || len(users) != 2 || users[0].User != "alice" || users[1].User != "bob" || len(users[0].Sessions) != 1 {
		t.Fatalf("Users = %+v, %v; want alice and bob with one session each", users, err)
	}
	if users[0].Sessions[0].Remote != alice.C.LocalAddr().String() {
		t.Errorf("alice's remote = %s, want %s", users[0].Sessions[0].Remote, alice.C.LocalAddr())
	}
	st, err := c.Stats(ctx)
	if err != nil || st.LoggedIn != 2 || st.UsersOnline != 2 || st.Connections != 2 {
		t.Errorf("Stats = %+v, %v; want 2 logged in", st, err)
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

// TestRealDaemonAccounts: accounts made over the socket work on the
// protocol, and the daemon's errors arrive with their codes and texts.
func TestRealDaemonAccounts(t *testing.T) {
	srv := daemontest.Start(t)
	_, c := start(t, admin.Options{}, daemonBackend{srv.Daemon})
	ctx := ctx(t)

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
