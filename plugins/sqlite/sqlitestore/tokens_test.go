package sqlitestore_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// token is a test token of user: id, a 32-byte hash that starts with a
// zero byte and holds every high bit pattern, times from t0.
func token(id, user string, used int64) plugins.Token {
	hash := make([]byte, 32)
	for i := range hash {
		hash[i] = byte(i * 37) // 0x00 first, then bytes >= 0x80 too
	}
	hash[31] = id[len(id)-1]
	ms := t0.UnixMilli()
	return plugins.Token{ID: id, User: user, Hash: hash, Created: ms, LastUsed: ms + used, Expires: ms + 3_600_000}
}

func equalTokens(a, b []plugins.Token) bool {
	return slices.EqualFunc(a, b, func(x, y plugins.Token) bool {
		return x.ID == y.ID && x.User == y.User && bytes.Equal(x.Hash, y.Hash) &&
			x.Created == y.Created && x.LastUsed == y.LastUsed && x.Expires == y.Expires
	})
}

func userTokens(t *testing.T, s *sqlitestore.Store, user string) []plugins.Token {
	t.Helper()
	ts, err := s.UserTokens(context.Background(), user)
	if err != nil {
		t.Fatalf("UserTokens(%s): %v", user, err)
	}
	return ts
}

// TestTokensDurable: what AddToken, TouchTokens and RevokeTokens committed
// is on the file: a second Store opened beside the first (as after a
// crash) sees it, and so does the Store reopened after Close, the hash
// byte for byte.
func TestTokensDurable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, clk, path := newStore(t)
	a1, a2, a3, b1 := token("00000000000000a1", "alice", 1), token("00000000000000a2", "alice", 2), token("00000000000000a3", "alice", 3), token("00000000000000b1", "bob", 1)
	for _, tk := range []plugins.Token{a1, a2, a3, b1} {
		if err := s.AddToken(ctx, tk, 20); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TouchTokens(ctx, []plugins.TokenUse{{ID: a1.ID, TS: a1.LastUsed + 100}}); err != nil {
		t.Fatal(err)
	}
	a1.LastUsed += 100
	if n, err := s.RevokeTokens(ctx, "alice", []string{a2.ID}); err != nil || n != 1 {
		t.Fatalf("RevokeTokens = %d, %v", n, err)
	}
	want := []plugins.Token{a1, a3}

	beside := openAt(t, path, clk)
	if got := userTokens(t, beside, "alice"); !equalTokens(got, want) {
		t.Errorf("UserTokens(alice) on a second store = %+v, want %+v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := openAt(t, path, clk)
	if got := userTokens(t, reopened, "alice"); !equalTokens(got, want) {
		t.Errorf("UserTokens(alice) after a reopen = %+v, want %+v", got, want)
	}
	if got, err := reopened.Token(ctx, b1.ID); err != nil || !equalTokens([]plugins.Token{got}, []plugins.Token{b1}) {
		t.Errorf("Token(b1) after a reopen = %+v, %v; want %+v", got, err, b1)
	}
	if _, err := reopened.Token(ctx, a2.ID); !errors.Is(err, plugins.ErrNoToken) {
		t.Errorf("Token(a2) after a reopen = %v, want ErrNoToken (revoked)", err)
	}
	// What one store did to a user holds for the other: a password change
	// on the second store empties alice's tokens for the first.
	if err := reopened.SetPasswordHash(ctx, "alice", "new"); err != nil {
		t.Fatal(err)
	}
	if got := userTokens(t, beside, "alice"); len(got) != 0 {
		t.Errorf("UserTokens(alice) after a password change by another store = %+v, want none", got)
	}
}

// TestTouchTokensRestoresSync: TouchTokens commits without fsync, like a
// Write of acks only, then the writer is back at FULL for everything
// else; the touch is applied.
func TestTouchTokensRestoresSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t)
	tk := token("00000000000000a1", "alice", 0)
	if err := s.AddToken(ctx, tk, 20); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchTokens(ctx, []plugins.TokenUse{{ID: tk.ID, TS: tk.LastUsed + 5}}); err != nil {
		t.Fatal(err)
	}
	if got, err := sqlitestore.WriterPragma(s, "synchronous"); err != nil || got != "2" {
		t.Fatalf("synchronous after TouchTokens = %q (%v), want 2 (FULL)", got, err)
	}
	if got, err := s.Token(ctx, tk.ID); err != nil || got.LastUsed != tk.LastUsed+5 {
		t.Errorf("Token after TouchTokens = %+v, %v; want LastUsed %d", got, err, tk.LastUsed+5)
	}
}

// TestTokensClosed: every Tokens method fails with ErrClosed after Close.
func TestTokensClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tk := token("00000000000000a1", "alice", 0)
	for name, call := range map[string]func() error{
		"AddToken":           func() error { return s.AddToken(ctx, tk, 20) },
		"Token":              func() error { _, err := s.Token(ctx, tk.ID); return err },
		"TouchTokens":        func() error { return s.TouchTokens(ctx, []plugins.TokenUse{{ID: tk.ID, TS: 1}}) },
		"TouchTokens (none)": func() error { return s.TouchTokens(ctx, nil) },
		"UserTokens":         func() error { _, err := s.UserTokens(ctx, "alice"); return err },
		"RevokeTokens":       func() error { _, err := s.RevokeTokens(ctx, "alice", nil); return err },
		"PurgeTokens":        func() error { _, err := s.PurgeTokens(ctx, 1, 1); return err },
	} {
		if err := call(); !errors.Is(err, sqlitestore.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// TestMigrateV4 opens a database of the previous schema version (4:
// groups, before resume tokens) with the current code: it migrates to
// the newest schema, the same as a new database's, keeps every account
// and message, and tokens then work on it (not for a deleted account).
func TestMigrateV4(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := t0.UnixMilli()
	const idA = "01kb00hsg0aaaaaaaaaaaaaaaa"
	path := oldDatabase(t, 4, []sqlStmt{
		{`INSERT INTO users (name, pw_hash, created_ms, deleted_ms) VALUES (?, ?, ?, NULL), (?, ?, ?, NULL), (?, '', ?, ?)`,
			[]any{"alice", "hash-alice", ts, "bob", "hash-bob", ts, "dave", ts, ts + 5}},
		{`INSERT INTO messages (msg_id, sender, recipient, conv, body, ts, cid, status, pending) VALUES
			(?, 'alice', 'bob', ?, 'pending for bob', ?, 'k1', 'queued', 1)`,
			[]any{idA, sqlitestore.ConvKey("alice", "bob"), ts}},
		{`INSERT INTO friends (owner, friend, since_ms) VALUES ('alice', 'bob', ?), ('bob', 'alice', ?)`, []any{ts, ts}},
	})

	s := openMigrated(t, path, 4)
	msgA := protocol.Message{ID: idA, From: "alice", To: "bob", Body: "pending for bob", TS: ts}
	if p, _, err := s.Pending(ctx, "bob", 10); err != nil || !slices.Equal(p, []protocol.Message{msgA}) {
		t.Errorf("Pending(bob) = %+v, %v", p, err)
	}
	if h, err := s.PasswordHash(ctx, "alice"); err != nil || h != "hash-alice" {
		t.Errorf("PasswordHash(alice) = %q, %v", h, err)
	}
	if r, err := s.Relation(ctx, "alice", "bob"); err != nil || !r.Friends {
		t.Errorf("Relation(alice, bob) = %+v, %v", r, err)
	}
	tk := token("00000000000000a1", "alice", 0)
	if err := s.AddToken(ctx, tk, 20); err != nil {
		t.Fatalf("AddToken on a migrated database: %v", err)
	}
	if got := userTokens(t, s, "alice"); !equalTokens(got, []plugins.Token{tk}) {
		t.Errorf("UserTokens(alice) = %+v, want %+v", got, tk)
	}
	if err := s.AddToken(ctx, token("00000000000000d1", "dave", 0), 20); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Errorf("AddToken for the deleted dave = %v, want ErrUnknownUser", err)
	}
	if _, err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := userTokens(t, s, "alice"); len(got) != 0 {
		t.Errorf("UserTokens(alice) after DeleteUser = %+v, want none", got)
	}
	checkIntegrity(t, s)
}
