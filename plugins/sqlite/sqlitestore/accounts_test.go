package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

func countUsers(t testing.TB, s *sqlitestore.Store) int64 {
	t.Helper()
	n, err := s.CountUsers(context.Background())
	if err != nil {
		t.Fatalf("CountUsers: %v", err)
	}
	return n
}

func TestSetPasswordHash(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.DeleteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		user     string
		hash     string
		wantErr  error
		wantHash string // PasswordHash(user) afterwards, when no error
	}{
		{name: "replaces", user: "alice", hash: "new-alice", wantHash: "new-alice"},
		{name: "same hash again", user: "alice", hash: "new-alice", wantHash: "new-alice"},
		{name: "empty hash is stored", user: "bob", hash: "", wantHash: ""},
		{name: "unknown user", user: "ghost", hash: "h", wantErr: plugins.ErrUnknownUser},
		{name: "names are byte-wise", user: "Alice", hash: "h", wantErr: plugins.ErrUnknownUser},
		{name: "deleted user", user: "carol", hash: "h", wantErr: plugins.ErrUnknownUser},
	}
	for _, tt := range tests { // sequential: hashes accumulate
		t.Run(tt.name, func(t *testing.T) {
			err := s.SetPasswordHash(ctx, tt.user, tt.hash)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SetPasswordHash = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if h, err := s.PasswordHash(ctx, tt.user); err != nil || h != tt.wantHash {
				t.Fatalf("PasswordHash = %q, %v; want %q", h, err, tt.wantHash)
			}
		})
	}
	// The others are untouched, and a deleted user does not come back.
	if h, err := s.PasswordHash(ctx, "alice"); err != nil || h != "new-alice" {
		t.Errorf("PasswordHash(alice) = %q, %v", h, err)
	}
	if _, err := s.PasswordHash(ctx, "carol"); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Errorf("PasswordHash(carol) = %v, want ErrUnknownUser", err)
	}
	if n := countUsers(t, s); n != 2 {
		t.Errorf("CountUsers = %d, want 2", n)
	}
}

func TestCountUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "qq.db"), newClock())
	tests := []struct {
		name string
		op   func() error
		want int64
	}{
		{"empty", func() error { return nil }, 0},
		{"one", func() error { return s.CreateUser(ctx, "alice", "h") }, 1},
		{"two", func() error { return s.CreateUser(ctx, "bob", "h") }, 2},
		{"taken name", func() error {
			if err := s.CreateUser(ctx, "bob", "h"); !errors.Is(err, plugins.ErrUserExists) {
				return fmt.Errorf("CreateUser(bob) again = %v", err)
			}
			return nil
		}, 2},
		{"password change", func() error { return s.SetPasswordHash(ctx, "bob", "x") }, 2},
		{"deleted", func() error { _, err := s.DeleteUser(ctx, "bob"); return err }, 1},
		{"deleted name stays taken", func() error {
			if err := s.CreateUser(ctx, "bob", "h"); !errors.Is(err, plugins.ErrUserExists) {
				return fmt.Errorf("CreateUser(bob) after delete = %v", err)
			}
			return nil
		}, 1},
		{"three", func() error { return s.CreateUser(ctx, "carol", "h") }, 2},
	}
	for _, tt := range tests { // sequential: accounts accumulate
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); err != nil {
				t.Fatal(err)
			}
			if n := countUsers(t, s); n != tt.want {
				t.Fatalf("CountUsers = %d, want %d", n, tt.want)
			}
		})
	}
}

func TestCountPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t) // alice, bob, carol
	var res []plugins.AppendResult
	tests := []struct {
		name string
		op   func()
		want int64
	}{
		{"empty", func() {}, 0},
		{"three sent", func() {
			res = send(t, s, nm("alice", "bob", "a0", "c0"), nm("alice", "bob", "a1", ""), nm("carol", "alice", "c0", ""))
		}, 3},
		{"cid retry is no new message", func() { send(t, s, nm("alice", "bob", "a0", "c0")) }, 3},
		{"unknown recipient is not stored", func() { send(t, s, nm("alice", "ghost", "x", "")) }, 3},
		{"to self", func() { send(t, s, nm("alice", "alice", "n0", "")) }, 4},
		{"acked", func() { ack(t, s, "bob", res[0].Message.ID) }, 3},
		{"acked again", func() { ack(t, s, "bob", res[0].Message.ID) }, 3},
		{"acked by another user", func() { ack(t, s, "carol", res[1].Message.ID) }, 3},
		{"recipient deleted", func() {
			if _, err := s.DeleteUser(ctx, "bob"); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"sender deleted", func() {
			if _, err := s.DeleteUser(ctx, "carol"); err != nil {
				t.Fatal(err)
			}
		}, 2},
	}
	for _, tt := range tests { // sequential: messages accumulate
		t.Run(tt.name, func(t *testing.T) {
			tt.op()
			n, err := s.CountPending(ctx)
			if err != nil || n != tt.want {
				t.Fatalf("CountPending = %d, %v; want %d", n, err, tt.want)
			}
			// It agrees with the per-user counts.
			var sum int64
			for _, u := range []string{"alice", "bob", "carol"} {
				sum += pendingCount(t, s, u)
			}
			if sum != n {
				t.Fatalf("sum of PendingCount = %d, CountPending = %d", sum, n)
			}
		})
	}
}

func TestDeleteUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// Each case starts from alice, bob, carol and dave, with
	// alice->bob a0 a1 a2 (a0 acked), carol->bob c0, bob->alice b0
	// (pending for alice) and alice->alice n0; dave has no messages.
	type fixture struct {
		s          *sqlitestore.Store
		path       string
		a, c, b, n []protocol.Message
	}
	setup := func(t *testing.T) *fixture {
		s, _, path := newStore(t)
		if err := s.CreateUser(ctx, "dave", "hash-dave"); err != nil {
			t.Fatal(err)
		}
		f := &fixture{s: s, path: path}
		for _, r := range send(t, s, nm("alice", "bob", "a0", "ka0"), nm("alice", "bob", "a1", "ka1"), nm("alice", "bob", "a2", "")) {
			f.a = append(f.a, r.Message)
		}
		ack(t, s, "bob", f.a[0].ID)
		res := send(t, s, nm("carol", "bob", "c0", ""), nm("bob", "alice", "b0", "kb0"), nm("alice", "alice", "n0", ""))
		f.c, f.b, f.n = []protocol.Message{res[0].Message}, []protocol.Message{res[1].Message}, []protocol.Message{res[2].Message}
		return f
	}

	tests := []struct {
		name        string
		user        string
		wantDropped int64
		wantErr     error
		check       func(t *testing.T, f *fixture)
	}{
		{name: "drops pending, keeps history", user: "bob", wantDropped: 3, check: func(t *testing.T, f *fixture) {
			s := f.s
			// No login, nothing pending.
			if _, err := s.PasswordHash(ctx, "bob"); !errors.Is(err, plugins.ErrUnknownUser) {
				t.Errorf("PasswordHash(bob) = %v, want ErrUnknownUser", err)
			}
			if n := pendingCount(t, s, "bob"); n != 0 {
				t.Errorf("PendingCount(bob) = %d, want 0", n)
			}
			if p, more, err := s.Pending(ctx, "bob", 10); err != nil || more || len(p) != 0 {
				t.Errorf("Pending(bob) = %+v, %v, %v; want none", p, more, err)
			}
			// What bob sent stays pending for its recipient.
			if p, _, err := s.Pending(ctx, "alice", 10); err != nil || !slices.Equal(p, []protocol.Message{f.b[0], f.n[0]}) {
				t.Errorf("Pending(alice) = %+v, %v; want b0, n0", p, err)
			}
			// Neither recipient nor sender.
			res := send(t, s, nm("alice", "bob", "to the deleted", ""), nm("bob", "alice", "from the deleted", ""), nm("carol", "alice", "fine", ""))
			for i, wantErr := range []bool{true, true, false} {
				if got := errors.Is(res[i].Err, plugins.ErrUnknownUser); got != wantErr || (wantErr && res[i].Message.ID != "") {
					t.Errorf("send %d = %+v, want ErrUnknownUser %v", i, res[i], wantErr)
				}
			}
			if n := pendingCount(t, s, "bob"); n != 0 {
				t.Errorf("PendingCount(bob) after sends = %d, want 0", n)
			}
			// An ack by the deleted user changes nothing.
			ack(t, s, "bob", f.a[1].ID, f.a[2].ID)
			// The other side keeps its history, in both directions.
			want := []protocol.Message{f.a[0], f.a[1], f.a[2], f.b[0]}
			if h, more, err := s.History(ctx, "alice", "bob", "", 10); err != nil || more || !slices.Equal(h, want) {
				t.Errorf("History(alice, bob) = %+v, %v, %v; want %+v", h, more, err, want)
			}
			if h, _, err := s.History(ctx, "bob", "carol", "", 10); err != nil || !slices.Equal(h, f.c) {
				t.Errorf("History(bob, carol) = %+v, %v; want %+v", h, err, f.c)
			}
			// Paging with a cursor still works.
			if h, more, err := s.History(ctx, "alice", "bob", f.b[0].ID, 2); err != nil || !more || !slices.Equal(h, want[1:3]) {
				t.Errorf("History(alice, bob) before b0 = %+v, %v, %v", h, more, err)
			}
			// The de-duplication keys of both sides stay.
			if r := send(t, s, nm("alice", "bob", "retry", "ka1"))[0]; !r.Duplicate || r.Message != f.a[1] {
				t.Errorf("cid retry to the deleted user = %+v, want duplicate of %+v", r, f.a[1])
			}
			// The name is not free again; the account does not come back.
			if err := s.CreateUser(ctx, "bob", "h"); !errors.Is(err, plugins.ErrUserExists) {
				t.Errorf("CreateUser(bob) = %v, want ErrUserExists", err)
			}
			if err := s.SetPasswordHash(ctx, "bob", "h"); !errors.Is(err, plugins.ErrUnknownUser) {
				t.Errorf("SetPasswordHash(bob) = %v, want ErrUnknownUser", err)
			}
			if _, err := s.PasswordHash(ctx, "bob"); !errors.Is(err, plugins.ErrUnknownUser) {
				t.Errorf("PasswordHash(bob) after CreateUser = %v, want ErrUnknownUser", err)
			}
			if n, err := s.DeleteUser(ctx, "bob"); !errors.Is(err, plugins.ErrUnknownUser) || n != 0 {
				t.Errorf("DeleteUser(bob) again = %d, %v; want ErrUnknownUser", n, err)
			}
			if n := countUsers(t, s); n != 3 {
				t.Errorf("CountUsers = %d, want 3", n)
			}
		}},
		{name: "nothing pending", user: "dave", wantDropped: 0, check: func(t *testing.T, f *fixture) {
			if n := countUsers(t, f.s); n != 3 {
				t.Errorf("CountUsers = %d, want 3", n)
			}
			if _, _, err := f.s.History(ctx, "alice", "dave", "", 10); err != nil {
				t.Errorf("History(alice, dave) = %v, want an empty conversation", err)
			}
		}},
		{name: "own messages to self", user: "alice", wantDropped: 2, check: func(t *testing.T, f *fixture) {
			// b0 and n0 were pending for alice; what alice sent bob stays.
			if p, _, err := f.s.Pending(ctx, "bob", 10); err != nil || !slices.Equal(p, []protocol.Message{f.a[1], f.a[2], f.c[0]}) {
				t.Errorf("Pending(bob) = %+v, %v", p, err)
			}
			if h, _, err := f.s.History(ctx, "alice", "alice", "", 10); err != nil || !slices.Equal(h, f.n) {
				t.Errorf("History(alice, alice) = %+v, %v", h, err)
			}
		}},
		{name: "unknown user", user: "ghost", wantErr: plugins.ErrUnknownUser, check: func(t *testing.T, f *fixture) {
			if n := countUsers(t, f.s); n != 4 {
				t.Errorf("CountUsers = %d, want 4", n)
			}
		}},
		{name: "names are byte-wise", user: "Bob", wantErr: plugins.ErrUnknownUser, check: func(t *testing.T, f *fixture) {
			if n := pendingCount(t, f.s, "bob"); n != 3 {
				t.Errorf("PendingCount(bob) = %d, want 3", n)
			}
		}},
		{name: "survives a reopen", user: "bob", wantDropped: 3, check: func(t *testing.T, f *fixture) {
			if err := f.s.Close(); err != nil {
				t.Fatal(err)
			}
			s := openAt(t, f.path, newClock())
			if _, err := s.PasswordHash(ctx, "bob"); !errors.Is(err, plugins.ErrUnknownUser) {
				t.Errorf("PasswordHash(bob) = %v, want ErrUnknownUser", err)
			}
			if n := pendingCount(t, s, "bob"); n != 0 {
				t.Errorf("PendingCount(bob) = %d, want 0", n)
			}
			if h, _, err := s.History(ctx, "alice", "bob", "", 10); err != nil || len(h) != 4 {
				t.Errorf("History(alice, bob) = %d messages, %v; want 4", len(h), err)
			}
			if n := countUsers(t, s); n != 3 {
				t.Errorf("CountUsers = %d, want 3", n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			n, err := f.s.DeleteUser(ctx, tt.user)
			if !errors.Is(err, tt.wantErr) || n != tt.wantDropped {
				t.Fatalf("DeleteUser(%s) = %d, %v; want %d, %v", tt.user, n, err, tt.wantDropped, tt.wantErr)
			}
			tt.check(t, f)
		})
	}

	t.Run("cancelled context changes nothing", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := f.s.DeleteUser(cctx, "bob"); !errors.Is(err, context.Canceled) {
			t.Fatalf("DeleteUser with a cancelled context = %v", err)
		}
		if h, err := f.s.PasswordHash(ctx, "bob"); err != nil || h != "hash-bob" {
			t.Errorf("PasswordHash(bob) = %q, %v", h, err)
		}
		if n := pendingCount(t, f.s, "bob"); n != 3 {
			t.Errorf("PendingCount(bob) = %d, want 3", n)
		}
	})
}

// TestMigrateV1ToV2: a database written by schema version 1 opens with its
// data intact, and accounts can then be deleted.
func TestMigrateV1ToV2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "qq.db")
	if err := sqlitestore.MigrateTo(path, 1); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ts := t0.UnixMilli()
	const (
		idA = "01kb00hsg0aaaaaaaaaaaaaaaa"
		idB = "01kb00hsg0bbbbbbbbbbbbbbbb"
		idC = "01kb00hsg0cccccccccccccccc"
	)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO users (name, pw_hash, created_ms) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)`,
			[]any{"alice", "hash-alice", ts, "bob", "hash-bob", ts, "carol", "hash-carol", ts}},
		{`INSERT INTO messages (msg_id, sender, recipient, conv, body, ts, cid, status, pending) VALUES
			(?, 'alice', 'bob', ?, 'pending for bob', ?, 'k1', 'queued', 1),
			(?, 'bob', 'alice', ?, 'acked by alice', ?, NULL, 'sent', 0),
			(?, 'carol', 'bob', ?, 'also for bob', ?, NULL, 'queued', 1)`,
			[]any{idA, sqlitestore.ConvKey("alice", "bob"), ts, idB, sqlitestore.ConvKey("alice", "bob"), ts + 1, idC, sqlitestore.ConvKey("bob", "carol"), ts + 2}},
	} {
		if _, err := db.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != 1 {
		t.Fatalf("user_version before = %d, %v; want 1", v, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openAt(t, path, newClock())
	if v, err := sqlitestore.WriterPragma(s, "user_version"); err != nil || v != fmt.Sprint(sqlitestore.SchemaVersion) || v != "2" {
		t.Fatalf("user_version = %q, %v; want 2", v, err)
	}
	// The data is intact.
	if h, err := s.PasswordHash(ctx, "bob"); err != nil || h != "hash-bob" {
		t.Errorf("PasswordHash(bob) = %q, %v", h, err)
	}
	if n := countUsers(t, s); n != 3 {
		t.Errorf("CountUsers = %d, want 3", n)
	}
	msgA := protocol.Message{ID: idA, From: "alice", To: "bob", Body: "pending for bob", TS: ts}
	msgB := protocol.Message{ID: idB, From: "bob", To: "alice", Body: "acked by alice", TS: ts + 1}
	msgC := protocol.Message{ID: idC, From: "carol", To: "bob", Body: "also for bob", TS: ts + 2}
	if p, _, err := s.Pending(ctx, "bob", 10); err != nil || !slices.Equal(p, []protocol.Message{msgA, msgC}) {
		t.Errorf("Pending(bob) = %+v, %v", p, err)
	}
	if n := pendingCount(t, s, "alice"); n != 0 {
		t.Errorf("PendingCount(alice) = %d, want 0", n)
	}
	if h, _, err := s.History(ctx, "alice", "bob", "", 10); err != nil || !slices.Equal(h, []protocol.Message{msgA, msgB}) {
		t.Errorf("History(alice, bob) = %+v, %v", h, err)
	}
	if r := send(t, s, nm("alice", "bob", "retry", "k1"))[0]; !r.Duplicate || r.Message != msgA || r.Status != protocol.StatusQueued {
		t.Errorf("cid retry = %+v, want duplicate of %+v", r, msgA)
	}
	// New messages come after the old ones.
	r := send(t, s, nm("carol", "alice", "new", ""))[0]
	if r.Err != nil || r.Message.TS < ts+2 {
		t.Errorf("new message = %+v", r)
	}
	// The new methods work on the migrated data.
	if err := s.SetPasswordHash(ctx, "alice", "new-alice"); err != nil {
		t.Errorf("SetPasswordHash(alice) = %v", err)
	}
	if n, err := s.DeleteUser(ctx, "bob"); err != nil || n != 2 {
		t.Errorf("DeleteUser(bob) = %d, %v; want 2", n, err)
	}
	if h, _, err := s.History(ctx, "alice", "bob", "", 10); err != nil || !slices.Equal(h, []protocol.Message{msgA, msgB}) {
		t.Errorf("History(alice, bob) after delete = %+v, %v", h, err)
	}
	if n := countUsers(t, s); n != 2 {
		t.Errorf("CountUsers after delete = %d, want 2", n)
	}
	for _, pragma := range []string{"integrity_check", "foreign_key_check"} {
		got, err := sqlitestore.WriterPragma(s, pragma)
		if pragma == "foreign_key_check" && errors.Is(err, sql.ErrNoRows) {
			continue // no violations: no rows
		}
		if err != nil || got != "ok" {
			t.Errorf("PRAGMA %s = %q, %v", pragma, got, err)
		}
	}
}
