package daemon_test

import (
	"context"
	"errors"
	"testing"

	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
)

func TestAccountMethods(t *testing.T) {
	s := daemontest.Start(t)
	d := s.Daemon
	ctx := context.Background()
	for _, tc := range []struct {
		user, pw string
		want     error
	}{
		{"carol", "carol-password", nil},
		{"carol", "carol-password", daemon.ErrAccountExists},
		{"Carol", "carol-password", daemon.ErrInvalidAccount},
		{"dave", "short", daemon.ErrInvalidAccount},
	} {
		if err := d.AddAccount(ctx, tc.user, tc.pw); !errors.Is(err, tc.want) {
			t.Errorf("AddAccount(%q) = %v, want %v", tc.user, err, tc.want)
		}
	}
	c := s.Dial(t)
	c.Login("carol", "carol-password")

	if err := d.SetPassword(ctx, "carol", "new-password"); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPassword(ctx, "nobody", "new-password"); !errors.Is(err, daemon.ErrNoAccount) {
		t.Fatalf("SetPassword(nobody) = %v", err)
	}
	c2 := s.Dial(t)
	c2.Send(`{"type":"login","id":1,"user":"carol","password":"carol-password"}`)
	c2.Expect(`{"type":"error","id":1,"code":"auth_failed"}`)
	c2.Login("carol", "new-password")

	alice := s.User(t, "alice")
	alice.Send(`{"type":"send","id":1,"to":"carol","body":"hi"}`)
	alice.Expect(`{"type":"ok","id":1}`)

	if _, err := d.RemoveAccount(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*daemontest.Conn{c, c2} {
		conn.Expect(`{"type":"msg"}`)
		conn.Expect(`{"type":"kicked","reason":"admin","message":"account removed"}`)
	}
	alice.Send(`{"type":"send","id":2,"to":"carol","body":"gone?"}`)
	alice.Expect(`{"type":"error","id":2,"code":"unknown_user"}`)
	if _, err := d.RemoveAccount(ctx, "carol"); !errors.Is(err, daemon.ErrNoAccount) {
		t.Fatalf("RemoveAccount twice = %v", err)
	}
}
