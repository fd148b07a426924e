package plugins_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins"
)

// TestTokensRoundTrip: the Tokens calls, their answers and their errors
// cross the gRPC boundary; the hash comes back byte for byte.
func TestTokensRoundTrip(t *testing.T) {
	ctx := context.Background()
	env, cfg := sqliteConfig(t, "normal")
	st := inProcessStorage(t, newTestStorage, env, cfg)
	tk, ok := plugins.TokensOf(st)
	if !ok {
		t.Fatal("TokensOf = false over gRPC, want the plugin's Tokens")
	}
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	const ts = 1_764_158_400_000
	a1 := plugins.Token{ID: "00000000000000a1", User: "alice", Hash: []byte{0, 0xff, 0xc3, 0x28, 0}, Created: ts, LastUsed: ts + 1, Expires: ts + 2}
	a2 := plugins.Token{ID: "00000000000000a2", User: "alice", Hash: bytes.Repeat([]byte{7}, 32), Created: ts + 10, LastUsed: ts + 10, Expires: ts + 20}
	for _, x := range []plugins.Token{a1, a2} {
		if err := tk.AddToken(ctx, x, 20); err != nil {
			t.Fatalf("AddToken(%s) = %v", x.ID, err)
		}
	}
	for _, tt := range []struct {
		name    string
		err     error
		want    error
		wantTxt string
	}{
		{"taken id", tk.AddToken(ctx, plugins.Token{ID: a1.ID, User: "bob"}, 20), plugins.ErrTokenExists, "add token"},
		{"unknown user", tk.AddToken(ctx, plugins.Token{ID: "00000000000000b1", User: "ghost"}, 20), plugins.ErrUnknownUser, "add token"},
		{"no token", func() error { _, err := tk.Token(ctx, "00000000000000ff"); return err }(), plugins.ErrNoToken, "token"},
	} {
		if !errors.Is(tt.err, tt.want) || !strings.Contains(tt.err.Error(), tt.wantTxt) || !strings.Contains(tt.err.Error(), "sqlitestore") {
			t.Errorf("%s: %v, want %v naming %q and the store", tt.name, tt.err, tt.want, tt.wantTxt)
		}
	}
	got, err := tk.Token(ctx, a1.ID)
	if err != nil || got.ID != a1.ID || got.User != "alice" || !bytes.Equal(got.Hash, a1.Hash) ||
		got.Created != a1.Created || got.LastUsed != a1.LastUsed || got.Expires != a1.Expires {
		t.Errorf("Token(a1) = %+v, %v; want %+v", got, err, a1)
	}
	if err := tk.TouchTokens(ctx, []plugins.TokenUse{{ID: a1.ID, TS: ts + 50}, {ID: "00000000000000ff", TS: ts + 60}}); err != nil {
		t.Errorf("TouchTokens = %v", err)
	}
	if err := tk.TouchTokens(ctx, nil); err != nil {
		t.Errorf("TouchTokens(nil) = %v", err)
	}
	ts2, err := tk.UserTokens(ctx, "alice")
	if err != nil || len(ts2) != 2 || ts2[0].ID != a1.ID || ts2[0].LastUsed != ts+50 || ts2[1].ID != a2.ID || !bytes.Equal(ts2[1].Hash, a2.Hash) {
		t.Errorf("UserTokens(alice) = %+v, %v; want a1 (touched), a2", ts2, err)
	}
	if none, err := tk.UserTokens(ctx, "bob"); err != nil || none == nil || len(none) != 0 {
		t.Errorf("UserTokens(bob) = %#v, %v; want an empty slice", none, err)
	}
	if n, err := tk.RevokeTokens(ctx, "alice", []string{a2.ID, "00000000000000ff"}); err != nil || n != 1 {
		t.Errorf("RevokeTokens(alice, a2) = %d, %v; want 1", n, err)
	}
	if n, err := tk.PurgeTokens(ctx, ts+3, ts); err != nil || n != 1 {
		t.Errorf("PurgeTokens = %d, %v; want 1 (a1 expired)", n, err)
	}
	if n, err := tk.RevokeTokens(ctx, "alice", nil); err != nil || n != 0 {
		t.Errorf("RevokeTokens(alice) = %d, %v; want 0", n, err)
	}
}
