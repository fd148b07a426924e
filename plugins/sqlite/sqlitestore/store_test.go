package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the sqlite storage plugin: see
	// servePluginArg.
	if len(os.Args) == 2 && os.Args[1] == servePluginArg {
		plugins.ServeStorage(sqlitestore.New)
		return
	}
	// Plugin children built with -race would sleep 1s on exit to report
	// races.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	goleak.VerifyTestMain(m)
}

// t0 is the fake clock's start: 2025-11-26T12:00:00Z.
var t0 = time.UnixMilli(1_764_158_400_000)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openAt opens a store at path with the given clock and options edits,
// closing it at the end of the test.
func openAt(t testing.TB, path string, clk *clock, edit ...func(*sqlitestore.Options)) *sqlitestore.Store {
	t.Helper()
	opts := sqlitestore.Options{Path: path, DedupWindow: 24 * time.Hour}
	if clk != nil {
		opts.Now = clk.Now
	}
	for _, e := range edit {
		e(&opts)
	}
	s, err := sqlitestore.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newStore opens a store in a fresh directory with users alice, bob and
// carol.
func newStore(t testing.TB, edit ...func(*sqlitestore.Options)) (*sqlitestore.Store, *clock, string) {
	t.Helper()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "qq.db")
	s := openAt(t, path, clk, edit...)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := s.CreateUser(context.Background(), u, "hash-"+u); err != nil {
			t.Fatalf("CreateUser(%s): %v", u, err)
		}
	}
	return s, clk, path
}

func nm(from, to, body, cid string) plugins.NewMessage {
	return plugins.NewMessage{From: from, To: to, Body: body, CID: cid, Status: protocol.StatusQueued}
}

// write runs a batch that must succeed.
func write(t testing.TB, s *sqlitestore.Store, b *plugins.WriteBatch) []plugins.AppendResult {
	t.Helper()
	res, err := s.Write(context.Background(), b)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := len(b.Messages) + len(b.GroupMessages); len(res) != n {
		t.Fatalf("Write: %d results for %d messages", len(res), n)
	}
	return res
}

func send(t testing.TB, s *sqlitestore.Store, msgs ...plugins.NewMessage) []plugins.AppendResult {
	t.Helper()
	return write(t, s, &plugins.WriteBatch{Messages: msgs})
}

func ack(t testing.TB, s *sqlitestore.Store, user string, ids ...string) {
	t.Helper()
	write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: user, MsgIDs: ids}}})
}

func pendingCount(t testing.TB, s *sqlitestore.Store, user string) int64 {
	t.Helper()
	n, err := s.PendingCount(context.Background(), user)
	if err != nil {
		t.Fatalf("PendingCount(%s): %v", user, err)
	}
	return n
}

var msgIDRE = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{26}$`)

func TestOpenOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		opts    sqlitestore.Options
		wantErr string
		sync    string // PRAGMA synchronous when no error
	}{
		{name: "empty path", opts: sqlitestore.Options{}, wantErr: "empty path"},
		{name: "bad synchronous", opts: sqlitestore.Options{Path: filepath.Join(dir, "a.db"), Synchronous: "extra"}, wantErr: "synchronous"},
		{name: "negative window", opts: sqlitestore.Options{Path: filepath.Join(dir, "b.db"), DedupWindow: -time.Second}, wantErr: "negative"},
		{name: "default full", opts: sqlitestore.Options{Path: filepath.Join(dir, "c.db")}, sync: "2"},
		{name: "normal", opts: sqlitestore.Options{Path: filepath.Join(dir, "d.db"), Synchronous: "normal"}, sync: "1"},
		{name: "off upper case", opts: sqlitestore.Options{Path: filepath.Join(dir, "e.db"), Synchronous: "OFF"}, sync: "0"},
		{name: "creates directories", opts: sqlitestore.Options{Path: filepath.Join(dir, "x", "y", "f.db")}, sync: "2"},
		{name: "odd characters in path", opts: sqlitestore.Options{Path: filepath.Join(dir, "we?ird #dir%20&x=y", "g h.db")}, sync: "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sqlitestore.Open(context.Background(), tt.opts)
			if tt.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatalf("Open succeeded, want error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "sqlitestore: open") {
					t.Fatalf("Open error = %q, want sqlitestore: open ... %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			for pragma, want := range map[string]string{
				"synchronous":  tt.sync,
				"journal_mode": "wal",
				"foreign_keys": "1",
				"busy_timeout": "5000",
				"user_version": "5",
			} {
				got, err := sqlitestore.WriterPragma(s, pragma)
				if err != nil || got != want {
					t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
				}
			}
			fi, err := os.Stat(tt.opts.Path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("database file mode = %v, want 0600", perm)
			}
			// SQLite uses that very file: its WAL is next to it.
			if fi, err := os.Stat(tt.opts.Path + "-wal"); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("WAL file: %v, %v", fi, err)
			}
		})
	}
	fi, err := os.Stat(filepath.Join(dir, "x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory mode = %v, want 0700", perm)
	}
}

func TestWriteAppend(t *testing.T) {
	t.Parallel()
	s, clk, _ := newStore(t)
	m1 := nm("alice", "bob", "hi bob", "c1")
	m2 := nm("bob", "alice", "hi alice", "")
	m2.Status = protocol.StatusSent
	res := send(t, s, m1, m2)
	seen := map[string]bool{}
	for i, want := range []plugins.NewMessage{m1, m2} {
		r := res[i]
		if r.Err != nil || r.Duplicate {
			t.Fatalf("result %d: %+v", i, r)
		}
		if !msgIDRE.MatchString(r.Message.ID) || seen[r.Message.ID] {
			t.Errorf("result %d: bad or repeated msg_id %q", i, r.Message.ID)
		}
		seen[r.Message.ID] = true
		got := r.Message
		if got.From != want.From || got.To != want.To || got.Body != want.Body || got.TS != clk.Now().UnixMilli() || r.Status != want.Status {
			t.Errorf("result %d = %+v status %s, want %+v at %d", i, got, r.Status, want, clk.Now().UnixMilli())
		}
	}
	// The stored messages read back exactly as the results say.
	p, more, err := s.Pending(context.Background(), "bob", 10)
	if err != nil || more || len(p) != 1 || p[0] != res[0].Message {
		t.Errorf("Pending(bob) = %+v, %v, %v; want [%+v]", p, more, err, res[0].Message)
	}
	h, _, err := s.History(context.Background(), "alice", "bob", "", 10)
	if err != nil || !slices.Equal(h, []protocol.Message{res[0].Message, res[1].Message}) {
		t.Errorf("History = %+v, %v", h, err)
	}
	// An empty batch is a no-op.
	if res, err := s.Write(context.Background(), &plugins.WriteBatch{}); err != nil || len(res) != 0 {
		t.Errorf("empty Write = %v, %v", res, err)
	}
	if res, err := s.Write(context.Background(), nil); err != nil || len(res) != 0 {
		t.Errorf("nil Write = %v, %v", res, err)
	}
}

func TestWriteBodyBytes(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	bodies := []string{
		"plain",
		"nul\x00inside",
		"héllo wörld 🌍",
		"\xff\xfe not utf-8",
		"  leading and trailing spaces  ",
		strings.Repeat("x", 65536),
	}
	var msgs []plugins.NewMessage
	for _, b := range bodies {
		msgs = append(msgs, nm("alice", "bob", b, ""))
	}
	send(t, s, msgs...)
	p, _, err := s.Pending(context.Background(), "bob", len(bodies))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range p {
		if m.Body != bodies[i] {
			t.Errorf("body %d = %q, want %q", i, m.Body, bodies[i])
		}
	}
}

// TestSQLiteChoices covers what the sqlite store decides where the
// Storage contract leaves a choice (the contract itself is checked by the
// storagetest suite, TestConformance).
func TestSQLiteChoices(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	first := send(t, s, nm("alice", "bob", "a", "x"))[0]
	t.Run("page limits below 1 are errors", func(t *testing.T) {
		for _, limit := range []int{0, -1} {
			if _, _, err := s.Pending(ctx, "bob", limit); err == nil {
				t.Errorf("Pending(limit %d) succeeded", limit)
			}
			if _, _, err := s.History(ctx, "alice", "bob", "", limit); err == nil {
				t.Errorf("History(limit %d) succeeded", limit)
			}
		}
	})
	t.Run("a retry to an unknown user is still a duplicate", func(t *testing.T) {
		if r := send(t, s, nm("alice", "ghost", "b", "x"))[0]; !r.Duplicate || r.Err != nil || r.Message != first.Message {
			t.Errorf("retry = %+v, want a duplicate of %+v", r, first)
		}
	})
	t.Run("no friend request or block to oneself", func(t *testing.T) {
		if _, err := s.RequestFriend(ctx, "alice", "alice", "", 1); err == nil || errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("RequestFriend(alice, alice) = %v, want an error", err)
		}
		if err := s.Block(ctx, "alice", "alice", 1); err == nil || errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("Block(alice, alice) = %v, want an error", err)
		}
		if r, err := s.Relation(ctx, "alice", "alice"); err != nil || r != (plugins.Relation{}) {
			t.Errorf("Relation(alice, alice) = %+v, %v", r, err)
		}
	})
	t.Run("a deleted sender's requests and blocks are refused", func(t *testing.T) {
		if err := s.CreateUser(ctx, "gone", "h"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteUser(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RequestFriend(ctx, "gone", "alice", "", 1); !errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("RequestFriend from a deleted user = %v, want ErrUnknownUser", err)
		}
		if err := s.Block(ctx, "gone", "alice", 1); !errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("Block by a deleted user = %v, want ErrUnknownUser", err)
		}
	})
}

func TestTimestamps(t *testing.T) {
	t.Parallel()
	s, clk, path := newStore(t)
	base := t0.UnixMilli()
	steps := []struct {
		clock  time.Duration // clock offset from t0 at the write
		wantTS int64         // offset of the stored ts from t0, in ms
	}{
		{0, 0},
		{-time.Hour, 0}, // the clock went back: ts stays
		{5 * time.Millisecond, 5},
		{-10 * time.Millisecond, 5},
		{time.Second, 1000},
	}
	var want []int64
	for i, st := range steps {
		clk.Set(t0.Add(st.clock))
		res := send(t, s, nm("alice", "bob", fmt.Sprint(i), ""), nm("bob", "alice", fmt.Sprint(i), ""))
		for _, r := range res {
			if got := r.Message.TS - base; got != st.wantTS {
				t.Errorf("step %d: ts = t0%+d, want t0%+d", i, got, st.wantTS)
			}
			want = append(want, r.Message.TS)
		}
	}
	h, _, err := s.History(context.Background(), "alice", "bob", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range h {
		got = append(got, m.TS)
	}
	if !slices.Equal(got, want) || !slices.IsSorted(got) {
		t.Errorf("history ts = %v, want %v (sorted)", got, want)
	}

	// Across a restart with a clock that went back a day.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clk2 := newClock()
	clk2.Set(t0.Add(-24 * time.Hour))
	s2 := openAt(t, path, clk2)
	r := send(t, s2, nm("alice", "bob", "after restart", ""))[0]
	if r.Message.TS != want[len(want)-1] {
		t.Errorf("ts after reopen = %d, want %d", r.Message.TS, want[len(want)-1])
	}
}

func TestDurableWithoutClose(t *testing.T) {
	t.Parallel()
	s, clk, path := newStore(t)
	res := send(t, s, nm("alice", "bob", "committed", "c1"), nm("bob", "alice", "also", "c2"))
	ack(t, s, "alice", res[1].Message.ID)

	// A second store on the same file while the first is still open, as
	// after a crash: everything committed is there.
	s2 := openAt(t, path, clk)
	p, more, err := s2.Pending(context.Background(), "bob", 10)
	if err != nil || more || len(p) != 1 || p[0] != res[0].Message {
		t.Fatalf("Pending on second store = %+v, %v, %v; want [%+v]", p, more, err, res[0].Message)
	}
	if n := pendingCount(t, s2, "alice"); n != 0 {
		t.Errorf("alice pending on second store = %d, want 0 (acked)", n)
	}
	if h, err := s2.PasswordHash(context.Background(), "carol"); err != nil || h != "hash-carol" {
		t.Errorf("PasswordHash on second store = %q, %v", h, err)
	}
	r := send(t, s2, nm("alice", "bob", "retry", "c1"))[0]
	if !r.Duplicate || r.Message != res[0].Message {
		t.Errorf("cid retry on second store = %+v, want duplicate of %+v", r, res[0].Message)
	}
	// Both stores keep working side by side.
	r1 := send(t, s, nm("alice", "bob", "from first", ""))[0]
	r2 := send(t, s2, nm("alice", "bob", "from second", ""))[0]
	if r1.Err != nil || r2.Err != nil {
		t.Errorf("writes = %+v, %+v", r1, r2)
	}
	if n := pendingCount(t, s, "bob"); n != 3 {
		t.Errorf("bob pending = %d, want 3", n)
	}
}

// TestAnotherWriter: what another Store commits to the same file (a
// block, a deleted account) holds for this Store's next Write, although
// it keeps caches of both.
func TestAnotherWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, clk, path := newStore(t)
	send(t, s, nm("alice", "bob", "warm the caches", ""), nm("bob", "carol", "warm the caches", ""))
	other := openAt(t, path, clk)
	if err := other.Block(ctx, "bob", "alice", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := other.DeleteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	res := send(t, s, nm("alice", "bob", "blocked", ""), nm("bob", "carol", "deleted", ""), nm("bob", "alice", "fine", ""))
	if !errors.Is(res[0].Err, plugins.ErrBlocked) || !errors.Is(res[1].Err, plugins.ErrUnknownUser) || res[2].Err != nil {
		t.Errorf("results after the other store's writes = %+v, want ErrBlocked, ErrUnknownUser, stored", res)
	}
	if err := other.Unblock(ctx, "bob", "alice"); err != nil {
		t.Fatal(err)
	}
	if r := send(t, s, nm("alice", "bob", "unblocked", ""))[0]; r.Err != nil {
		t.Errorf("result after the other store's Unblock = %+v, want stored", r)
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "qq.db")
	ctx := context.Background()

	// Opening again is a no-op that keeps the data.
	for i := range 3 {
		s, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: path})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if i == 0 {
			if err := s.CreateUser(ctx, "alice", "h"); err != nil {
				t.Fatal(err)
			}
		}
		v, err := sqlitestore.WriterPragma(s, "user_version")
		if err != nil || v != "5" {
			t.Errorf("open %d: user_version = %q, %v; want 5", i, v, err)
		}
		if h, err := s.PasswordHash(ctx, "alice"); err != nil || h != "h" {
			t.Errorf("open %d: PasswordHash = %q, %v", i, h, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// A database from a newer program is refused.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: path})
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer database succeeded")
	}
	if !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Errorf("Open error = %q, want it to name the newer schema version", err)
	}

	// A database that is not SQLite is refused.
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: junk}); err == nil {
		s.Close()
		t.Fatal("Open of a non-database succeeded")
	}
}

func TestPruneCIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("window", func(t *testing.T) {
		t.Parallel()
		s, clk, path := newStore(t)
		old := send(t, s, nm("alice", "bob", "old", "old"))[0].Message
		clk.Add(23 * time.Hour)
		recent := send(t, s, nm("alice", "bob", "recent", "recent"))[0].Message
		clk.Add(2 * time.Hour) // old is 25 h old, recent 2 h

		n, err := s.PruneCIDs(ctx)
		if err != nil || n != 1 {
			t.Fatalf("PruneCIDs = %d, %v; want 1", n, err)
		}
		if n, err := s.PruneCIDs(ctx); err != nil || n != 0 {
			t.Fatalf("second PruneCIDs = %d, %v; want 0", n, err)
		}
		res := send(t, s, nm("alice", "bob", "old again", "old"), nm("alice", "bob", "recent again", "recent"))
		if res[0].Duplicate || res[0].Message.ID == old.ID {
			t.Errorf("forgotten cid: %+v, want a new message", res[0])
		}
		if !res[1].Duplicate || res[1].Message != recent {
			t.Errorf("remembered cid: %+v, want duplicate of %+v", res[1], recent)
		}
		// The pruned message itself stays.
		if p, _, err := s.Pending(ctx, "bob", 10); err != nil || len(p) != 3 || p[0] != old {
			t.Errorf("Pending = %+v, %v", p, err)
		}

		// Open prunes: a day later the remaining keys are forgotten.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		clk.Add(48 * time.Hour)
		s2 := openAt(t, path, clk)
		if r := send(t, s2, nm("alice", "bob", "x", "recent"))[0]; r.Duplicate {
			t.Errorf("cid remembered across reopen past the window: %+v", r)
		}
	})

	t.Run("group messages", func(t *testing.T) {
		t.Parallel()
		s, clk, _ := newStore(t)
		g, err := s.CreateGroup(ctx, "alice", "g", plugins.PolicyOpen, plugins.HistoryJoined, t0.UnixMilli(), plugins.GroupLimits{})
		if err != nil {
			t.Fatal(err)
		}
		gsend := func(body, cid string) plugins.AppendResult {
			t.Helper()
			return write(t, s, &plugins.WriteBatch{GroupMessages: []plugins.NewGroupMessage{{Group: g.ID, From: "alice", Body: body, CID: cid}}})[0]
		}
		old := gsend("old", "old").Group
		direct := send(t, s, nm("alice", "bob", "direct", "direct"))[0].Message
		clk.Add(23 * time.Hour)
		recent := gsend("recent", "recent").Group
		clk.Add(2 * time.Hour)
		if n, err := s.PruneCIDs(ctx); err != nil || n != 2 {
			t.Fatalf("PruneCIDs = %d, %v; want 2 (a group message's and a direct message's)", n, err)
		}
		if r := gsend("old again", "old"); r.Duplicate || r.Group.Seq == old.Seq {
			t.Errorf("forgotten group cid: %+v, want a new entry", r)
		}
		if r := gsend("direct again", "direct"); r.Duplicate || r.Group == nil || r.Message.ID == direct.ID {
			t.Errorf("forgotten direct cid: %+v, want a new group entry", r)
		}
		if r := gsend("recent again", "recent"); !r.Duplicate || r.Group == nil || r.Group.MsgID != recent.MsgID {
			t.Errorf("remembered cid: %+v, want a duplicate of %+v", r, recent)
		}
		// The pruned entry itself stays, without its cid.
		es, _, err := s.Log(ctx, g.ID, "alice", 0, 0, 10)
		if err != nil || len(es) != 5 || es[1].MsgID != old.MsgID || es[1].CID != "" || es[1].Body != "old" {
			t.Errorf("Log = %+v, %v; want the old entry without its cid", es, err)
		}
	})

	t.Run("zero window keeps cids forever", func(t *testing.T) {
		t.Parallel()
		s, clk, _ := newStore(t, func(o *sqlitestore.Options) { o.DedupWindow = 0 })
		first := send(t, s, nm("alice", "bob", "x", "k"))[0].Message
		clk.Add(10000 * time.Hour)
		if n, err := s.PruneCIDs(ctx); err != nil || n != 0 {
			t.Fatalf("PruneCIDs = %d, %v; want 0", n, err)
		}
		if r := send(t, s, nm("alice", "bob", "y", "k"))[0]; !r.Duplicate || r.Message != first {
			t.Errorf("retry = %+v, want duplicate", r)
		}
	})

	t.Run("many", func(t *testing.T) {
		t.Parallel()
		s, clk, _ := newStore(t, func(o *sqlitestore.Options) { o.Synchronous = "off" })
		const total = 12000 // more than one prune batch
		for i := 0; i < total; i += 1000 {
			var msgs []plugins.NewMessage
			for j := range 1000 {
				msgs = append(msgs, nm("alice", "bob", "b", fmt.Sprint(i+j)))
			}
			send(t, s, msgs...)
		}
		clk.Add(25 * time.Hour)
		if n, err := s.PruneCIDs(ctx); err != nil || n != total {
			t.Fatalf("PruneCIDs = %d, %v; want %d", n, err, total)
		}
	})
}

func TestWriteContext(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	for _, tc := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled", cancelled, context.Canceled},
		{"deadline exceeded", expired, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Write(tc.ctx, &plugins.WriteBatch{
				Messages: []plugins.NewMessage{nm("alice", "bob", "x", "c")},
				Acks:     []plugins.Ack{{User: "bob", MsgIDs: []string{"whatever"}}},
			})
			var we *plugins.WriteError
			if !errors.As(err, &we) || we.MaybeWritten || !errors.Is(err, tc.want) || res != nil {
				t.Fatalf("Write = %v, %v; want *WriteError{MaybeWritten: false} wrapping %v", res, err, tc.want)
			}
		})
	}
	if n := pendingCount(t, s, "bob"); n != 0 {
		t.Errorf("bob pending = %d, want 0", n)
	}
	// The cid was not taken.
	if r := send(t, s, nm("alice", "bob", "x", "c"))[0]; r.Duplicate {
		t.Errorf("cid of a failed write was remembered")
	}
	// Reads honour the context too.
	if _, _, err := s.History(cancelled, "alice", "bob", "", 5); !errors.Is(err, context.Canceled) {
		t.Errorf("History with cancelled context = %v", err)
	}
}

func TestWriteDiskFull(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	before := send(t, s, nm("alice", "bob", "before", ""))[0].Message

	// Simulate a full disk: the database may not grow.
	pages, err := sqlitestore.WriterPragma(s, "page_count")
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitestore.WriterExec(s, "PRAGMA max_page_count = "+pages); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 256<<10)
	for i := range 3 { // repeatedly: the writer must not be poisoned
		res, err := s.Write(ctx, &plugins.WriteBatch{
			Messages: []plugins.NewMessage{nm("bob", "alice", "small", fmt.Sprint("s", i)), nm("alice", "bob", big, fmt.Sprint("b", i))},
			Acks:     []plugins.Ack{{User: "bob", MsgIDs: []string{before.ID}}},
		})
		var we *plugins.WriteError
		var se *sqlite.Error
		if !errors.As(err, &we) || we.MaybeWritten || res != nil {
			t.Fatalf("Write on a full disk = %v, %v; want *WriteError{MaybeWritten: false}", res, err)
		}
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_FULL {
			t.Errorf("Write error = %v, want SQLITE_FULL", err)
		}
		if !strings.HasPrefix(we.Err.Error(), "sqlitestore: ") {
			t.Errorf("error %q lacks context", we.Err)
		}
	}
	// Nothing of the batches is visible: neither the small message nor the ack.
	if p, _, err := s.Pending(ctx, "bob", 10); err != nil || len(p) != 1 || p[0] != before {
		t.Errorf("bob pending = %+v, %v; want only %+v", p, err, before)
	}
	if n := pendingCount(t, s, "alice"); n != 0 {
		t.Errorf("alice pending = %d, want 0", n)
	}

	// Space returns: the store works again.
	if err := sqlitestore.WriterExec(s, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	res := write(t, s, &plugins.WriteBatch{
		Messages: []plugins.NewMessage{nm("alice", "bob", big, "b0")},
		Acks:     []plugins.Ack{{User: "bob", MsgIDs: []string{before.ID}}},
	})
	if res[0].Duplicate || res[0].Err != nil {
		t.Errorf("write after recovery = %+v", res[0])
	}
	if p, _, err := s.Pending(ctx, "bob", 10); err != nil || len(p) != 1 || p[0].Body != big {
		t.Errorf("bob pending after recovery: %d messages, %v", len(p), err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{nm("alice", "bob", "x", "")}})
	var we *plugins.WriteError
	if !errors.As(err, &we) || we.MaybeWritten || !errors.Is(err, sqlitestore.ErrClosed) {
		t.Errorf("Write after Close = %v", err)
	}
	calls := map[string]error{
		"CreateUser": s.CreateUser(ctx, "zed", "h"),
	}
	_, calls["PasswordHash"] = s.PasswordHash(ctx, "alice")
	calls["SetPasswordHash"] = s.SetPasswordHash(ctx, "alice", "h")
	_, calls["DeleteUser"] = s.DeleteUser(ctx, "alice")
	_, calls["CountUsers"] = s.CountUsers(ctx)
	_, calls["CountPending"] = s.CountPending(ctx)
	_, calls["PendingCount"] = s.PendingCount(ctx, "bob")
	_, _, calls["Pending"] = s.Pending(ctx, "bob", 1)
	_, _, calls["History"] = s.History(ctx, "alice", "bob", "", 1)
	_, calls["PruneCIDs"] = s.PruneCIDs(ctx)
	_, calls["RequestFriend"] = s.RequestFriend(ctx, "alice", "bob", "", 1)
	calls["AnswerFriendRequest"] = s.AnswerFriendRequest(ctx, "bob", "alice", true, 1)
	calls["CancelFriendRequest"] = s.CancelFriendRequest(ctx, "alice", "bob")
	calls["RemoveFriend"] = s.RemoveFriend(ctx, "alice", "bob")
	_, calls["Friends"] = s.Friends(ctx, "alice")
	calls["Block"] = s.Block(ctx, "alice", "bob", 1)
	calls["Unblock"] = s.Unblock(ctx, "alice", "bob")
	_, calls["Blocks"] = s.Blocks(ctx, "alice")
	_, calls["Relation"] = s.Relation(ctx, "alice", "bob")
	for name, err := range calls {
		if !errors.Is(err, sqlitestore.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t, func(o *sqlitestore.Options) { o.Synchronous = "normal" })
	ctx := context.Background()
	const writers, perWriter = 6, 15
	senders := []string{"alice", "bob", "carol"}
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for w := range writers {
		wg.Go(func() {
			from := senders[w%len(senders)]
			for i := range perWriter {
				res, err := s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
					nm(from, "bob", fmt.Sprintf("%d/%d", w, i), fmt.Sprintf("%d/%d", w, i)),
				}})
				if err != nil || res[0].Err != nil {
					errc <- fmt.Errorf("writer %d: %v %+v", w, err, res)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := s.Pending(ctx, "bob", 10); err != nil {
					errc <- err
					return
				}
				if _, _, err := s.History(ctx, "alice", "bob", "", 10); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	p, more, err := s.Pending(ctx, "bob", writers*perWriter+1)
	if err != nil || more || len(p) != writers*perWriter {
		t.Fatalf("Pending = %d messages, more %v, %v", len(p), more, err)
	}
	// Each writer's messages are in its order, and ts never decreases.
	next := make([]int, writers)
	for i, m := range p {
		var w, n int
		if _, err := fmt.Sscanf(m.Body, "%d/%d", &w, &n); err != nil || n != next[w] {
			t.Fatalf("message %d %q out of order", i, m.Body)
		}
		next[w]++
		if i > 0 && m.TS < p[i-1].TS {
			t.Fatalf("ts decreases at %d", i)
		}
	}
}

func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	for _, q := range sqlitestore.Queries() {
		plan, err := sqlitestore.QueryPlan(s, q)
		if err != nil {
			t.Errorf("%s: %v", q.Name, err)
			continue
		}
		if !strings.Contains(plan, q.Index) {
			t.Errorf("%s: plan does not use %s:\n%s", q.Name, q.Index, plan)
		}
		for _, table := range []string{"messages", "users", "friends", "friend_requests", "blocks",
			"groups", "group_members", "group_log", "group_cursors", "group_mentions", "group_requests", "tokens"} {
			if strings.Contains(plan, "SCAN "+table+"\n") { // a full table scan
				t.Errorf("%s: plan scans %s:\n%s", q.Name, table, plan)
			}
		}
	}
}

func TestConvKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ a, b, want string }{
		{"alice", "bob", "5:alice bob"},
		{"bob", "alice", "5:alice bob"},
		{"alice", "alice", "5:alice alice"},
		{"a b", "c", "3:a b c"}, // a name with the separator stays unambiguous
		{"a", "b c", "1:a b c"},
	}
	for _, tt := range tests {
		if got := sqlitestore.ConvKey(tt.a, tt.b); got != tt.want {
			t.Errorf("ConvKey(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestMsgIDs(t *testing.T) {
	t.Parallel()
	s, clk, _ := newStore(t)
	var msgs []plugins.NewMessage
	for range 200 {
		msgs = append(msgs, nm("alice", "bob", "x", ""))
	}
	seen := map[string]bool{}
	for _, r := range send(t, s, msgs...) {
		id := r.Message.ID
		if len(id) != sqlitestore.MsgIDLen || !msgIDRE.MatchString(id) || seen[id] {
			t.Fatalf("bad or repeated msg_id %q", id)
		}
		seen[id] = true
	}
	// The first 10 characters encode the timestamp: later ids sort after.
	a := send(t, s, nm("alice", "bob", "a", ""))[0].Message.ID
	clk.Add(time.Millisecond)
	b := send(t, s, nm("alice", "bob", "b", ""))[0].Message.ID
	if a[:10] >= b[:10] {
		t.Errorf("timestamp prefixes %q, %q not increasing", a[:10], b[:10])
	}
}

// TestAckOnlyWriteRestoresSync: an ack-only Write commits without fsync
// (synchronous NORMAL for that commit), then the writer is back at FULL
// for everything else; the ack is applied.
func TestAckOnlyWriteRestoresSync(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	res := send(t, s, nm("alice", "bob", "hi", "c1"))
	ack(t, s, "bob", res[0].Message.ID)
	if got, err := sqlitestore.WriterPragma(s, "synchronous"); err != nil || got != "2" {
		t.Fatalf("synchronous after an ack-only write = %q (%v), want 2 (FULL)", got, err)
	}
	if n, err := s.PendingCount(context.Background(), "bob"); err != nil || n != 0 {
		t.Fatalf("bob has %d pending (%v) after the ack", n, err)
	}
}
