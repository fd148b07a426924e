package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestMigrateV1: a database written by schema version 1 opens (migrated to
// the newest version) with its data intact, and accounts can then be
// deleted.
func TestMigrateV1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := t0.UnixMilli()
	const (
		idA = "01kb00hsg0aaaaaaaaaaaaaaaa"
		idB = "01kb00hsg0bbbbbbbbbbbbbbbb"
		idC = "01kb00hsg0cccccccccccccccc"
	)
	path := oldDatabase(t, 1, []sqlStmt{
		{`INSERT INTO users (name, pw_hash, created_ms) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)`,
			[]any{"alice", "hash-alice", ts, "bob", "hash-bob", ts, "carol", "hash-carol", ts}},
		{`INSERT INTO messages (msg_id, sender, recipient, conv, body, ts, cid, status, pending) VALUES
			(?, 'alice', 'bob', ?, 'pending for bob', ?, 'k1', 'queued', 1),
			(?, 'bob', 'alice', ?, 'acked by alice', ?, NULL, 'sent', 0),
			(?, 'carol', 'bob', ?, 'also for bob', ?, NULL, 'queued', 1)`,
			[]any{idA, sqlitestore.ConvKey("alice", "bob"), ts, idB, sqlitestore.ConvKey("alice", "bob"), ts + 1, idC, sqlitestore.ConvKey("bob", "carol"), ts + 2}},
	})

	s := openAt(t, path, newClock())
	if v, err := sqlitestore.WriterPragma(s, "user_version"); err != nil || v != fmt.Sprint(sqlitestore.SchemaVersion) || v != "5" {
		t.Fatalf("user_version = %q, %v; want 5", v, err)
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
	checkGroupsWork(t, s, "alice", "carol", msgA, "k1")
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

// TestMigrateV01Database opens a database written by the code of v0.1
// (testdata/v0.1.sql, schema version 2) with the current code: it migrates
// to the newest schema and keeps every account and every message, with
// their pending state and de-duplication keys; the friends features then
// work on it.
func TestMigrateV01Database(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dump, err := os.ReadFile(filepath.Join("testdata", "v0.1.sql"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "qq.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(dump)); err != nil {
		t.Fatalf("load testdata/v0.1.sql: %v", err)
	}
	type row struct {
		msg             protocol.Message
		cid, status     sql.NullString
		pending         bool
		recipientExists bool
	}
	var rows []row
	rs, err := db.Query(`SELECT m.msg_id, m.sender, m.recipient, m.body, m.ts, m.cid, m.status, m.pending, u.deleted_ms IS NULL
		FROM messages AS m JOIN users AS u ON u.name = m.recipient ORDER BY m.seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.msg.ID, &r.msg.From, &r.msg.To, &r.msg.Body, &r.msg.TS, &r.cid, &r.status, &r.pending, &r.recipientExists); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 8 {
		t.Fatalf("testdata/v0.1.sql has %d messages, want 8", len(rows))
	}

	// The dump is what the migrations up to version 2 make: the old steps
	// were not edited since.
	fresh := filepath.Join(t.TempDir(), "v2.db")
	if err := sqlitestore.MigrateTo(fresh, 2); err != nil {
		t.Fatal(err)
	}
	if got, want := schemaText(t, path), schemaText(t, fresh); got != want {
		t.Errorf("schema of testdata/v0.1.sql:\n%s\nschema of migrations 1 and 2:\n%s", got, want)
	}

	s := openAt(t, path, newClock())
	if v, err := sqlitestore.WriterPragma(s, "user_version"); err != nil || v != fmt.Sprint(sqlitestore.SchemaVersion) {
		t.Fatalf("user_version = %q, %v; want %d", v, err, sqlitestore.SchemaVersion)
	}
	// Every account, with its hash; the deleted one stays deleted.
	for _, u := range []string{"alice", "bob", "zoë"} {
		if h, err := s.PasswordHash(ctx, u); err != nil || h != "$argon2id$v=19$m=65536,t=1,p=4$"+u {
			t.Errorf("PasswordHash(%s) = %q, %v", u, h, err)
		}
	}
	if h, err := s.PasswordHash(ctx, "carol"); err != nil || h != "$argon2id$v=19$m=65536,t=1,p=4$carol-2" {
		t.Errorf("PasswordHash(carol) = %q, %v", h, err)
	}
	if _, err := s.PasswordHash(ctx, "dave"); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Errorf("PasswordHash(dave) = %v, want ErrUnknownUser", err)
	}
	if err := s.CreateUser(ctx, "dave", "h"); !errors.Is(err, plugins.ErrUserExists) {
		t.Errorf("CreateUser(dave) = %v, want ErrUserExists", err)
	}
	if n := countUsers(t, s); n != 4 {
		t.Errorf("CountUsers = %d, want 4", n)
	}
	// Every message, in every conversation, in order; pending ones still
	// pending, in order; cids still remembered with their status.
	convs := map[string][]protocol.Message{}
	pending := map[string][]protocol.Message{}
	var total int64
	for _, r := range rows {
		k := sqlitestore.ConvKey(r.msg.From, r.msg.To)
		convs[k] = append(convs[k], r.msg)
		if r.pending && r.recipientExists {
			pending[r.msg.To] = append(pending[r.msg.To], r.msg)
			total++
		}
		if r.cid.Valid {
			res := send(t, s, nm(r.msg.From, "alice", "retry", r.cid.String))[0]
			if !res.Duplicate || res.Message != r.msg || string(res.Status) != r.status.String {
				t.Errorf("retry of cid %q = %+v, want a duplicate of %+v with status %s", r.cid.String, res, r.msg, r.status.String)
			}
		}
	}
	for _, r := range rows {
		want := convs[sqlitestore.ConvKey(r.msg.From, r.msg.To)]
		if h, more, err := s.History(ctx, r.msg.From, r.msg.To, "", 100); err != nil || more || !slices.Equal(h, want) {
			t.Errorf("History(%s, %s) = %+v, %v, %v; want %+v", r.msg.From, r.msg.To, h, more, err, want)
		}
	}
	for _, u := range []string{"alice", "bob", "carol", "zoë"} {
		if p, more, err := s.Pending(ctx, u, 100); err != nil || more || !slices.Equal(p, pending[u]) {
			t.Errorf("Pending(%s) = %+v, %v, %v; want %+v", u, p, more, err, pending[u])
		}
	}
	if n, err := s.CountPending(ctx); err != nil || n != total {
		t.Errorf("CountPending = %d, %v; want %d", n, err, total)
	}
	// New messages come after the old ones.
	if r := send(t, s, nm("carol", "alice", "new", ""))[0]; r.Err != nil || r.Message.TS < rows[len(rows)-1].msg.TS {
		t.Errorf("new message = %+v", r)
	}
	// The friends features work on the migrated database.
	if became, err := s.RequestFriend(ctx, "alice", "bob", "hi", 1); err != nil || became {
		t.Errorf("RequestFriend = %v, %v", became, err)
	}
	if err := s.AnswerFriendRequest(ctx, "bob", "alice", true, 2); err != nil {
		t.Errorf("AnswerFriendRequest = %v", err)
	}
	if err := s.Block(ctx, "carol", "zoë", 3); err != nil {
		t.Errorf("Block = %v", err)
	}
	if err := s.Block(ctx, "carol", "dave", 3); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Errorf("Block of the deleted dave = %v, want ErrUnknownUser", err)
	}
	res := send(t, s, nm("zoë", "carol", "blocked", ""), plugins.NewMessage{From: "alice", To: "bob", Body: "friends", FriendsOnly: true, Status: protocol.StatusQueued})
	if !errors.Is(res[0].Err, plugins.ErrBlocked) || res[1].Err != nil {
		t.Errorf("sends after the migration = %+v", res)
	}
	if _, err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Errorf("DeleteUser(alice) = %v", err)
	}
	if r, err := s.Relation(ctx, "bob", "alice"); err != nil || r != (plugins.Relation{}) {
		t.Errorf("Relation(bob, alice) after DeleteUser(alice) = %+v, %v", r, err)
	}
	for _, r := range rows {
		if r.cid.Valid && r.msg.From == "bob" {
			checkGroupsWork(t, s, "bob", "zoë", r.msg, r.cid.String)
			break
		}
	}
	checkIntegrity(t, s)
}

// TestMigrateV3 opens a database of the previous schema version (3:
// friends, before groups) with the current code: it migrates to the
// newest schema, the same as a new database's, and keeps every account,
// message, friendship, request and block; groups then work on it.
func TestMigrateV3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := t0.UnixMilli()
	const (
		idA = "01kb00hsg0aaaaaaaaaaaaaaaa"
		idB = "01kb00hsg0bbbbbbbbbbbbbbbb"
	)
	path := oldDatabase(t, 3, []sqlStmt{
		{`INSERT INTO users (name, pw_hash, created_ms, deleted_ms) VALUES (?, ?, ?, NULL), (?, ?, ?, NULL), (?, ?, ?, NULL), (?, '', ?, ?)`,
			[]any{"alice", "hash-alice", ts, "bob", "hash-bob", ts, "carol", "hash-carol", ts, "dave", ts, ts + 5}},
		{`INSERT INTO messages (msg_id, sender, recipient, conv, body, ts, cid, status, pending) VALUES
			(?, 'alice', 'bob', ?, 'pending for bob', ?, 'k1', 'queued', 1),
			(?, 'bob', 'alice', ?, 'acked by alice', ?, 'k2', 'sent', 0)`,
			[]any{idA, sqlitestore.ConvKey("alice", "bob"), ts, idB, sqlitestore.ConvKey("alice", "bob"), ts + 1}},
		{`INSERT INTO friends (owner, friend, since_ms) VALUES ('alice', 'bob', ?), ('bob', 'alice', ?)`, []any{ts, ts}},
		{`INSERT INTO friend_requests (sender, recipient, note, ts) VALUES ('carol', 'alice', 'hi', ?)`, []any{ts + 2}},
		{`INSERT INTO blocks (blocker, blocked, ts) VALUES ('carol', 'bob', ?)`, []any{ts + 3}},
	})

	s := openMigrated(t, path, 3)
	msgA := protocol.Message{ID: idA, From: "alice", To: "bob", Body: "pending for bob", TS: ts}
	msgB := protocol.Message{ID: idB, From: "bob", To: "alice", Body: "acked by alice", TS: ts + 1}
	if p, _, err := s.Pending(ctx, "bob", 10); err != nil || !slices.Equal(p, []protocol.Message{msgA}) {
		t.Errorf("Pending(bob) = %+v, %v", p, err)
	}
	if h, _, err := s.History(ctx, "alice", "bob", "", 10); err != nil || !slices.Equal(h, []protocol.Message{msgA, msgB}) {
		t.Errorf("History(alice, bob) = %+v, %v", h, err)
	}
	if n := countUsers(t, s); n != 3 {
		t.Errorf("CountUsers = %d, want 3", n)
	}
	l, err := s.Friends(ctx, "alice")
	if err != nil || len(l.Friends) != 1 || l.Friends[0] != (plugins.Friend{User: "bob", Since: ts}) || len(l.Incoming) != 1 {
		t.Errorf("Friends(alice) = %+v, %v", l, err)
	}
	if r := send(t, s, nm("bob", "carol", "blocked", ""))[0]; !errors.Is(r.Err, plugins.ErrBlocked) {
		t.Errorf("message to a blocker = %+v, want ErrBlocked", r)
	}
	if r := send(t, s, nm("alice", "carol", "retry", "k1"))[0]; !r.Duplicate || r.Message != msgA {
		t.Errorf("cid retry = %+v, want a duplicate of %+v", r, msgA)
	}
	checkGroupsWork(t, s, "alice", "carol", msgA, "k1")
	if _, err := s.DeleteUser(ctx, "carol"); err != nil {
		t.Errorf("DeleteUser(carol) = %v", err)
	}
	checkIntegrity(t, s)
}

// checkGroupsWork: on a migrated database, owner can create a group that
// member joins, both send and read, and a group message with oldCID, the
// cid of the old direct message old, is a duplicate of it.
func checkGroupsWork(t *testing.T, s *sqlitestore.Store, owner, member string, old protocol.Message, oldCID string) {
	t.Helper()
	ctx := context.Background()
	g, err := s.CreateGroup(ctx, owner, "after the migration", plugins.PolicyOpen, plugins.HistoryShared, t0.UnixMilli(), plugins.GroupLimits{})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	for _, u := range []string{member, old.From} {
		if u == owner {
			continue
		}
		if _, err := s.GroupOp(ctx, plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: u, TS: t0.UnixMilli()}); err != nil {
			t.Fatalf("join of %s: %v", u, err)
		}
	}
	res := write(t, s, &plugins.WriteBatch{GroupMessages: []plugins.NewGroupMessage{
		{Group: g.ID, From: owner, Body: "hello", Mentions: []string{member}},
		{Group: g.ID, From: member, Body: "hi"},
	}})
	for i, r := range res {
		if r.Err != nil || r.Group == nil {
			t.Errorf("group message %d = %+v", i, r)
		}
	}
	if es, _, err := s.Log(ctx, g.ID, member, 0, 0, 100); err != nil || len(es) < 3 || es[len(es)-1].Body != "hi" {
		t.Errorf("Log = %+v, %v", es, err)
	}
	dup := write(t, s, &plugins.WriteBatch{GroupMessages: []plugins.NewGroupMessage{{Group: g.ID, From: old.From, Body: "retry", CID: oldCID}}})[0]
	if !dup.Duplicate || dup.Message != old || dup.Group != nil {
		t.Errorf("group message with the cid %q of an old message = %+v, want a duplicate of %+v", oldCID, dup, old)
	}
}

// schemaText is the schema of the database at path: every table and index
// with its SQL, sorted by name.
func schemaText(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s: %s\n", typ, name, text)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkIntegrity fails unless SQLite finds the database sound and every
// foreign key satisfied.
func checkIntegrity(t *testing.T, s *sqlitestore.Store) {
	t.Helper()
	if got, err := sqlitestore.WriterPragma(s, "integrity_check"); err != nil || got != "ok" {
		t.Errorf("PRAGMA integrity_check = %q, %v", got, err)
	}
	if got, err := sqlitestore.WriterPragma(s, "foreign_key_check"); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("PRAGMA foreign_key_check = %q, %v; want no rows", got, err)
	}
}

// sqlStmt is one statement with its arguments.
type sqlStmt struct {
	sql  string
	args []any
}

// oldDatabase makes a database of schema version at a new path, with
// stmts run on it, as a qqd of that version would have left it, and
// returns the path.
func oldDatabase(t *testing.T, version int, stmts []sqlStmt) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qq.db")
	if err := sqlitestore.MigrateTo(path, version); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != version {
		t.Fatalf("user_version before = %d, %v; want %d", v, err, version)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// openMigrated opens the database at path, made at schema version from,
// and checks that it migrated to the current version with the schema of a
// new database.
func openMigrated(t *testing.T, path string, from int) *sqlitestore.Store {
	t.Helper()
	s := openAt(t, path, newClock())
	if v, err := sqlitestore.WriterPragma(s, "user_version"); err != nil || v != fmt.Sprint(sqlitestore.SchemaVersion) {
		t.Fatalf("user_version = %q, %v; want %d", v, err, sqlitestore.SchemaVersion)
	}
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	openAt(t, fresh, nil)
	if got, want := schemaText(t, path), schemaText(t, fresh); got != want {
		t.Errorf("schema migrated from version %d:\n%s\nschema of a new database:\n%s", from, got, want)
	}
	return s
}
