package pebblestore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
)

// t0 is the fake clock's start: 2025-11-26T12:00:00Z.
var t0 = time.UnixMilli(1_764_158_400_000)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

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

// openAt opens a store at path with a small cache, closed when the test
// ends (a second Close is harmless).
func openAt(tb testing.TB, path string, c *clock, opts ...func(*pebblestore.Options)) *pebblestore.Store {
	tb.Helper()
	o := pebblestore.Options{Path: path, DedupWindow: 24 * time.Hour, CacheSize: 8 << 20, MemTableSize: 4 << 20}
	if c != nil {
		o.Now = c.Now
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := pebblestore.Open(context.Background(), o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// newStore opens a fresh store with users alice, bob and carol and a fake
// clock at t0.
func newStore(tb testing.TB, opts ...func(*pebblestore.Options)) (*pebblestore.Store, string, *clock) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "qq.pebble")
	c := &clock{t: t0}
	s := openAt(tb, path, c, opts...)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := s.CreateUser(context.Background(), u, "h-"+u); err != nil {
			tb.Fatal(err)
		}
	}
	return s, path, c
}

func nm(from, to, body, cid string) plugins.NewMessage {
	return plugins.NewMessage{From: from, To: to, Body: body, CID: cid, Status: protocol.StatusQueued}
}

func write(tb testing.TB, s *pebblestore.Store, b *plugins.WriteBatch) []plugins.AppendResult {
	tb.Helper()
	res, err := s.Write(context.Background(), b)
	if err != nil {
		tb.Fatalf("Write: %v", err)
	}
	return res
}

func send(tb testing.TB, s *pebblestore.Store, msgs ...plugins.NewMessage) []plugins.AppendResult {
	tb.Helper()
	return write(tb, s, &plugins.WriteBatch{Messages: msgs})
}

func ids(res []plugins.AppendResult) []string {
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = r.Message.ID
	}
	return out
}

func pendingIDs(tb testing.TB, s *pebblestore.Store, user string) []string {
	tb.Helper()
	p, _, err := s.Pending(context.Background(), user, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(p))
	for i, m := range p {
		out[i] = m.ID
	}
	return out
}

func counts(tb testing.TB, s *pebblestore.Store, user string) (userCount, total int64) {
	tb.Helper()
	ctx := context.Background()
	n, err := s.PendingCount(ctx, user)
	if err != nil {
		tb.Fatal(err)
	}
	all, err := s.CountPending(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return n, all
}

// TestIDs: ids are the seq in 13 lowercase Crockford base32 characters,
// increasing along the acceptance order, and keep increasing after a
// reopen.
func TestIDs(t *testing.T) {
	s, path, c := newStore(t)
	first := ids(send(t, s, nm("alice", "bob", "1", ""), nm("bob", "alice", "2", "")))
	if first[0] != "0000000000001" || first[1] != "0000000000002" {
		t.Errorf("first ids = %v, want 0000000000001 and 0000000000002", first)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c)
	next := ids(send(t, s, nm("alice", "bob", "3", "")))
	if next[0] != "0000000000003" || len(next[0]) != pebblestore.MsgIDLen {
		t.Errorf("id after reopen = %v, want 0000000000003", next)
	}
}

// TestTimestampsAcrossRestart: a clock that goes back, across a reopen
// too, never makes timestamps decrease.
func TestTimestampsAcrossRestart(t *testing.T) {
	s, path, c := newStore(t)
	c.Set(t0.Add(time.Hour))
	a := send(t, s, nm("alice", "bob", "late", ""))[0].Message
	if a.TS != t0.Add(time.Hour).UnixMilli() {
		t.Fatalf("ts = %d, want the clock's %d", a.TS, t0.Add(time.Hour).UnixMilli())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.Set(t0) // back an hour
	s = openAt(t, path, c)
	b := send(t, s, nm("alice", "bob", "early", ""))[0].Message
	if b.TS != a.TS {
		t.Errorf("ts after the clock went back = %d, want %d (the last one)", b.TS, a.TS)
	}
}

// TestAckCursor: acks in any order settle exactly the acked messages; the
// out-of-order ones are kept apart until the run before them is acked,
// then the cursor passes them; counts survive a reopen.
func TestAckCursor(t *testing.T) {
	s, path, c := newStore(t)
	ctx := context.Background()
	var msgs []plugins.NewMessage
	for i := range 8 {
		msgs = append(msgs, nm("alice", "bob", fmt.Sprint(i), ""))
	}
	m := ids(send(t, s, msgs...))
	other := ids(send(t, s, nm("bob", "alice", "x", "")))
	ack := func(user string, ids ...string) {
		t.Helper()
		write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: user, MsgIDs: ids}}})
	}
	check := func(step string, wantPending []string, wantOutOfOrder int) {
		t.Helper()
		if got := pendingIDs(t, s, "bob"); !slices.Equal(got, wantPending) {
			t.Errorf("%s: Pending(bob) = %v, want %v", step, got, wantPending)
		}
		if n, all := counts(t, s, "bob"); n != int64(len(wantPending)) || all != n+1 {
			t.Errorf("%s: PendingCount(bob) = %d, CountPending = %d; want %d and %d", step, n, all, len(wantPending), len(wantPending)+1)
		}
		mem, stored, err := pebblestore.OutOfOrderAcks(s, "bob")
		if err != nil || mem != wantOutOfOrder || stored != wantOutOfOrder {
			t.Errorf("%s: out-of-order acks %d in memory, %d stored (%v); want %d", step, mem, stored, err, wantOutOfOrder)
		}
	}
	check("start", m, 0)
	ack("bob", m[2], m[5], other[0], "nope") // another's message and an unknown id are ignored
	check("two out of order", []string{m[0], m[1], m[3], m[4], m[6], m[7]}, 2)
	ack("bob", m[1])
	check("three out of order", []string{m[0], m[3], m[4], m[6], m[7]}, 3)
	ack("bob", m[0]) // the cursor passes m0..m2
	check("run of three", []string{m[3], m[4], m[6], m[7]}, 1)
	ack("bob", m[2], m[0], m[5]) // acked already
	check("acked again", []string{m[3], m[4], m[6], m[7]}, 1)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c)
	check("reopened", []string{m[3], m[4], m[6], m[7]}, 1)
	ack("bob", m[4], m[3])
	check("past m5", []string{m[6], m[7]}, 0)
	if n, err := s.DeleteUser(ctx, "bob"); err != nil || n != 2 {
		t.Fatalf("DeleteUser(bob) = %d, %v; want 2", n, err)
	}
	if n, all := counts(t, s, "bob"); n != 0 || all != 1 {
		t.Errorf("after DeleteUser: PendingCount(bob) = %d, CountPending = %d; want 0 and 1", n, all)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c)
	if n, all := counts(t, s, "bob"); n != 0 || all != 1 {
		t.Errorf("reopened after DeleteUser: PendingCount(bob) = %d, CountPending = %d; want 0 and 1", n, all)
	}
	if n, err := s.CountUsers(ctx); err != nil || n != 2 {
		t.Errorf("CountUsers = %d, %v; want 2", n, err)
	}
}

// TestDedupWindow: a key is found for the whole window, across a reopen,
// and forgotten once its day bucket is older than the window (PruneCIDs
// drops it).
func TestDedupWindow(t *testing.T) {
	s, path, c := newStore(t)
	ctx := context.Background()
	first := send(t, s, nm("alice", "bob", "one", "k"))[0]
	c.Set(t0.Add(23 * time.Hour))
	if r := send(t, s, nm("alice", "bob", "retry", "k"))[0]; !r.Duplicate || r.Message != first.Message {
		t.Fatalf("retry within the window = %+v, want a duplicate of %+v", r, first)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c)
	if r, err := s.LookupCIDs(ctx, []plugins.CIDKey{{From: "alice", CID: "k"}}); err != nil || !r[0].Duplicate || r[0].Message != first.Message {
		t.Fatalf("LookupCIDs after reopen = %+v, %v; want %+v", r, err, first)
	}
	c.Set(t0.Add(72 * time.Hour))
	if err := s.PruneCIDs(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := s.LookupCIDs(ctx, []plugins.CIDKey{{From: "alice", CID: "k"}}); err != nil || r[0].Duplicate {
		t.Fatalf("LookupCIDs after the window = %+v, %v; want none", r, err)
	}
	if b, err := pebblestore.DedupBuckets(s); err != nil || len(b) != 0 {
		t.Errorf("buckets after pruning = %v, %v; want none", b, err)
	}
	if r := send(t, s, nm("alice", "bob", "anew", "k"))[0]; r.Duplicate || r.Err != nil {
		t.Errorf("send after the window = %+v, want stored anew", r)
	}
}

// TestDedupWindowChange: keys stored with one dedup_window setting are
// still found after a reopen with another (forever to 24h and back).
func TestDedupWindowChange(t *testing.T) {
	s, path, c := newStore(t, func(o *pebblestore.Options) { o.DedupWindow = 0 })
	forever := send(t, s, nm("alice", "bob", "one", "forever"))[0]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c) // 24h
	day := send(t, s, nm("alice", "bob", "two", "day"))[0]
	for _, want := range []plugins.AppendResult{forever, day} {
		r := send(t, s, nm("alice", "bob", "retry", map[bool]string{true: "forever", false: "day"}[want.Message.ID == forever.Message.ID]))[0]
		if !r.Duplicate || r.Message != want.Message {
			t.Errorf("retry with a 24h window = %+v, want a duplicate of %+v", r, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c, func(o *pebblestore.Options) { o.DedupWindow = 0 })
	if r := send(t, s, nm("alice", "bob", "retry", "day"))[0]; !r.Duplicate || r.Message != day.Message {
		t.Errorf("retry back with no window = %+v, want a duplicate of %+v", r, day)
	}
}

// TestReadsSeeOnlyPublished: a Write's messages and acks are invisible
// to every read until its commit has returned (fsync included) and the
// store published it: a read between the two sees the state before.
func TestReadsSeeOnlyPublished(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	old := send(t, s, nm("alice", "bob", "old", "k0"))[0].Message
	var checked bool
	pebblestore.SetBeforePublish(s, func() {
		checked = true
		if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{old.ID}) {
			t.Errorf("Pending(bob) before publication = %v, want only %s", got, old.ID)
		}
		h, _, err := s.History(ctx, "alice", "bob", "", 10)
		if err != nil || len(h) != 1 {
			t.Errorf("History before publication = %+v, %v; want one message", h, err)
		}
		if r, err := s.LookupCIDs(ctx, []plugins.CIDKey{{From: "alice", CID: "k1"}}); err != nil || r[0].Duplicate {
			t.Errorf("LookupCIDs before publication = %+v, %v; want none", r, err)
		}
		if n, all := counts(t, s, "bob"); n != 1 || all != 1 {
			t.Errorf("counts before publication = %d, %d; want 1, 1", n, all)
		}
	})
	res := write(t, s, &plugins.WriteBatch{
		Messages: []plugins.NewMessage{nm("alice", "bob", "new", "k1")},
		Acks:     []plugins.Ack{{User: "bob", MsgIDs: []string{old.ID}}},
	})
	if !checked {
		t.Fatal("the hook did not run")
	}
	pebblestore.SetBeforePublish(s, nil)
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{res[0].Message.ID}) {
		t.Errorf("Pending(bob) after Write = %v, want %s", got, res[0].Message.ID)
	}
}

// TestConcurrentReads: reads running while Writes commit see whole
// batches, and the counts agree with Pending (run with -race).
func TestConcurrentReads(t *testing.T) {
	s, _, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				p, _, err := s.Pending(ctx, "bob", 100000)
				if err != nil {
					errs <- err
					return
				}
				if len(p)%4 != 0 {
					errs <- fmt.Errorf("Pending(bob) has %d messages: a torn batch", len(p))
					return
				}
			}
		})
	}
	for i := range 50 {
		var msgs []plugins.NewMessage
		for j := range 4 {
			msgs = append(msgs, nm("alice", "bob", "x", fmt.Sprintf("%d-%d", i, j)))
		}
		send(t, s, msgs...)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, all := counts(t, s, "bob"); n != 200 || all != 200 {
		t.Errorf("counts = %d, %d; want 200", n, all)
	}
}

// TestClosed: every method fails after Close, and Close twice is fine.
func TestClosed(t *testing.T) {
	s, _, _ := newStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	ctx := context.Background()
	if _, err := s.CountPending(ctx); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("CountPending after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Token(ctx, "x"); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("Token after Close = %v, want ErrClosed", err)
	}
	if err := s.Block(ctx, "alice", "bob", 1); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("Block after Close = %v, want ErrClosed", err)
	}
}

// TestTokensSurviveReopen: tokens are durable, touches and revocations
// too once written.
func TestTokensSurviveReopen(t *testing.T) {
	s, path, c := newStore(t)
	ctx := context.Background()
	tok := plugins.Token{ID: "0123456789abcdef", User: "alice", Hash: []byte{0, 1, 255}, Created: 10, LastUsed: 10, Expires: 99}
	if err := s.AddToken(ctx, tok, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchTokens(ctx, []plugins.TokenUse{{ID: tok.ID, TS: 20}, {ID: tok.ID, TS: 15}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c)
	got, err := s.Token(ctx, tok.ID)
	tok.LastUsed = 20
	if err != nil || got.User != tok.User || string(got.Hash) != string(tok.Hash) || got.LastUsed != 20 || got.Expires != 99 {
		t.Errorf("Token after reopen = %+v, %v; want %+v", got, err, tok)
	}
}

// TestGroupsReopen: group ids and the global sequence (which group
// messages share with direct ones) continue after a reopen, and a
// group's log, cursors and mentions are as they were.
func TestGroupsReopen(t *testing.T) {
	s, path, c := newStore(t)
	ctx := context.Background()
	g, err := s.CreateGroup(ctx, "alice", "g", plugins.PolicyOpen, plugins.HistoryJoined, t0.UnixMilli(), plugins.GroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GroupOp(ctx, plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "bob", TS: t0.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	res := write(t, s, &plugins.WriteBatch{
		Messages:      []plugins.NewMessage{nm("alice", "bob", "direct", "d1")},
		GroupMessages: []plugins.NewGroupMessage{{Group: g.ID, From: "alice", Body: "hi @bob", CID: "g1", Mentions: []string{"bob"}}},
	})
	if res[0].Message.ID != "0000000000001" || res[1].Group == nil || res[1].Group.MsgID != "0000000000002" {
		t.Fatalf("results = %+v, %+v; want ids 0000000000001 and 0000000000002", res[0], res[1].Group)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c)
	g2, err := s.CreateGroup(ctx, "bob", "h", plugins.PolicyOpen, plugins.HistoryJoined, t0.UnixMilli(), plugins.GroupLimits{})
	if err != nil || g2.ID != g.ID+1 {
		t.Fatalf("CreateGroup after reopen = %+v, %v; want id %d", g2, err, g.ID+1)
	}
	if r := send(t, s, nm("bob", "alice", "next", ""))[0]; r.Message.ID != "0000000000003" {
		t.Errorf("id after reopen = %q, want 0000000000003", r.Message.ID)
	}
	if r, err := s.LookupCIDs(ctx, []plugins.CIDKey{{From: "alice", CID: "g1"}}); err != nil || r[0].Group == nil || r[0].Group.Seq != res[1].Group.Seq {
		t.Errorf("LookupCIDs(g1) after reopen = %+v, %v; want the group message", r, err)
	}
	ugs, err := s.UserGroups(ctx, "bob")
	if err != nil || len(ugs) != 2 || ugs[0].ID != g.ID || ugs[0].Unread != 2 || ugs[0].Mentions != 1 {
		t.Errorf("UserGroups(bob) after reopen = %+v, %v; want group %d with 2 unread, 1 mention, and group %d", ugs, err, g.ID, g2.ID)
	}
}

// TestForeignIDs: a message that keeps a foreign id (a ULID, as a
// migration from sqlitestore would leave) reads back with it, pages
// history with it as the cursor and is settled by an ack of it; the ids
// of later messages are the store's own.
func TestForeignIDs(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	const ulid = "01jq8e2r3v4w5x6y7z8a9b0c1d"
	if err := pebblestore.PutForeignMessage(s, ulid, "alice", "bob", "old"); err != nil {
		t.Fatal(err)
	}
	next := send(t, s, nm("alice", "bob", "new", ""))[0].Message
	if next.ID != "0000000000002" {
		t.Errorf("id after a foreign one = %q, want 0000000000002", next.ID)
	}
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{ulid, next.ID}) {
		t.Errorf("Pending(bob) = %v, want [%s %s]", got, ulid, next.ID)
	}
	h, more, err := s.History(ctx, "bob", "alice", next.ID, 10)
	if err != nil || more || len(h) != 1 || h[0].ID != ulid || h[0].Body != "old" {
		t.Errorf("History before %s = %+v, %v, %v; want the foreign message", next.ID, h, more, err)
	}
	if h, _, err := s.History(ctx, "bob", "alice", ulid, 10); err != nil || len(h) != 0 {
		t.Errorf("History before %s = %+v, %v; want none", ulid, h, err)
	}
	if _, _, err := s.History(ctx, "alice", "carol", ulid, 10); !errors.Is(err, plugins.ErrBadCursor) {
		t.Errorf("History(alice, carol) before %s = %v, want ErrBadCursor", ulid, err)
	}
	write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "alice", MsgIDs: []string{ulid}}}}) // not alice's
	write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{ulid}}}})
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{next.ID}) {
		t.Errorf("Pending(bob) after the ack = %v, want [%s]", got, next.ID)
	}
	if n, all := counts(t, s, "bob"); n != 1 || all != 1 {
		t.Errorf("counts after the ack = %d, %d; want 1, 1", n, all)
	}
}

// TestDedupFilterExact: the in-memory filters of the de-duplication keys
// never hide a stored key: after enough keys that the filter of a bucket
// grows, over two day buckets, and again after a reopen (the
// filters rebuilt from the database), every retry is a duplicate of its
// message.
func TestDedupFilterExact(t *testing.T) {
	s, path, c := newStore(t, func(o *pebblestore.Options) { o.NoSync = true })
	// 14,000 keys in the first bucket: more than a new filter is sized
	// for (minCIDFilterBits/cidFilterBitsPerKey, 13,107), so it grows.
	const batches, per, nextDay = 16, 1000, 14
	stored := make(map[string]protocol.Message)
	msgs := make([]plugins.NewMessage, per)
	for i := range batches {
		if i == nextDay {
			c.Set(t0.Add(23 * time.Hour)) // the next day bucket
		}
		for j := range msgs {
			msgs[j] = nm("alice", "bob", "x", fmt.Sprintf("c%d-%d", i, j))
		}
		for j, r := range write(t, s, &plugins.WriteBatch{Messages: msgs}) {
			if r.Err != nil || r.Duplicate {
				t.Fatalf("batch %d message %d: %+v", i, j, r)
			}
			stored[msgs[j].CID] = r.Message
		}
	}
	retryAll := func(when string) {
		t.Helper()
		for i := range batches {
			for j := range msgs {
				msgs[j] = nm("alice", "bob", "retry", fmt.Sprintf("c%d-%d", i, j))
			}
			for j, r := range write(t, s, &plugins.WriteBatch{Messages: msgs}) {
				if want := stored[msgs[j].CID]; !r.Duplicate || r.Message != want {
					t.Fatalf("%s: retry of %s = %+v, want a duplicate of %+v", when, msgs[j].CID, r, want)
				}
			}
		}
	}
	retryAll("after the writes")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c, func(o *pebblestore.Options) { o.NoSync = true })
	retryAll("after a reopen")
}
