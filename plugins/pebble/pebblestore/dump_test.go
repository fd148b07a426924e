package pebblestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/storagedump"
)

// exportAll returns the records s exports.
func exportAll(tb testing.TB, s *pebblestore.Store) []*storagedump.Record {
	tb.Helper()
	var recs []*storagedump.Record
	if err := s.Export(context.Background(), func(r *storagedump.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		tb.Fatalf("Export: %v", err)
	}
	return recs
}

// feed returns a next function over recs, then io.EOF.
func feed(recs []*storagedump.Record) func() (*storagedump.Record, error) {
	i := 0
	return func() (*storagedump.Record, error) {
		if i == len(recs) {
			return nil, io.EOF
		}
		i++
		return recs[i-1], nil
	}
}

// importInto opens a fresh store with clock c and imports recs into it.
func importInto(tb testing.TB, c *clock, recs []*storagedump.Record) (*pebblestore.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "imported.pebble")
	s := openAt(tb, path, c)
	if err := s.Import(context.Background(), feed(recs)); err != nil {
		tb.Fatalf("Import: %v", err)
	}
	return s, path
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// sameRecords fails unless a and b hold the same records in the same
// order, the headers' Created aside.
func sameRecords(tb testing.TB, a, b []*storagedump.Record) {
	tb.Helper()
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) {
			tb.Fatalf("%d records, then %d: record %d is missing from one", len(a), len(b), i)
		}
		x, y := *a[i], *b[i]
		if x.Header != nil && y.Header != nil {
			hx, hy := *x.Header, *y.Header
			hx.Created, hy.Created = 0, 0
			x.Header, y.Header = &hx, &hy
		}
		if !reflect.DeepEqual(x, y) {
			tb.Fatalf("record %d differs:\n first:  %s\n second: %s", i, jsonOf(x), jsonOf(y))
		}
	}
}

var users = []string{"alice", "bob", "carol", "dave", "erin"}

// populate fills s through its public API with everything a dump
// carries: messages pending and acked out of order, a deleted user,
// friends, requests and blocks, groups (kicked, left, muted, renamed,
// dissolved, with mentions and join requests) and tokens. The clock
// advances as it goes, within the de-duplication window.
func populate(t *testing.T, s *pebblestore.Store, c *clock) (cids []plugins.CIDKey) {
	ctx := context.Background()
	now := t0
	tick := func() int64 {
		now = now.Add(time.Minute)
		c.Set(now)
		return now.UnixMilli()
	}
	for _, u := range []string{"dave", "erin"} {
		tick()
		if err := s.CreateUser(ctx, u, "h-"+u); err != nil {
			t.Fatal(err)
		}
	}
	var bob []string
	for i := range 6 {
		tick()
		res := send(t, s,
			nm("alice", "bob", fmt.Sprintf("a->b %d", i), fmt.Sprintf("ab%d", i)),
			nm("bob", "alice", fmt.Sprintf("b->a %d", i), fmt.Sprintf("ba%d", i)),
			nm("carol", "bob", fmt.Sprintf("c->b %d", i), ""),
			nm("dave", "erin", fmt.Sprintf("d->e %d", i), fmt.Sprintf("de%d", i)),
		)
		bob = append(bob, res[0].Message.ID, res[2].Message.ID)
		cids = append(cids, plugins.CIDKey{From: "alice", CID: fmt.Sprintf("ab%d", i)},
			plugins.CIDKey{From: "bob", CID: fmt.Sprintf("ba%d", i)}, plugins.CIDKey{From: "dave", CID: fmt.Sprintf("de%d", i)})
		_ = res
	}
	tick()
	// bob: the first two in order, then the 4th and 6th out of order;
	// alice: all of them.
	write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{bob[0], bob[1], bob[3], bob[5], bob[8]}}}})
	alice := pendingIDs(t, s, "alice")
	write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "alice", MsgIDs: alice}}})
	if _, err := s.DeleteUser(ctx, "erin"); err != nil {
		t.Fatal(err)
	}

	// Friends, requests (two in the same ms), blocks.
	ts := tick()
	if _, err := s.RequestFriend(ctx, "alice", "bob", "hi", ts); err != nil {
		t.Fatal(err)
	}
	if err := s.AnswerFriendRequest(ctx, "bob", "alice", true, tick()); err != nil {
		t.Fatal(err)
	}
	ts = tick()
	for _, from := range []string{"dave", "carol"} {
		if _, err := s.RequestFriend(ctx, from, "alice", "from "+from, ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Block(ctx, "carol", "dave", tick()); err != nil {
		t.Fatal(err)
	}

	// Groups.
	op := func(o plugins.GroupOp) {
		t.Helper()
		o.TS = tick()
		if _, err := s.GroupOp(ctx, o); err != nil {
			t.Fatalf("GroupOp %+v: %v", o, err)
		}
	}
	g1, err := s.CreateGroup(ctx, "alice", "one", plugins.PolicyOpen, plugins.HistoryShared, tick(), plugins.GroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"bob", "carol", "dave"} {
		op(plugins.GroupOp{Kind: plugins.OpJoin, Group: g1.ID, Actor: u})
	}
	gm := func(from, body, cid string, mentions ...string) {
		t.Helper()
		tick()
		res := write(t, s, &plugins.WriteBatch{GroupMessages: []plugins.NewGroupMessage{{Group: g1.ID, From: from, Body: body, CID: cid, Mentions: mentions}}})
		if res[0].Err != nil {
			t.Fatalf("group message %q: %v", body, res[0].Err)
		}
		if cid != "" {
			cids = append(cids, plugins.CIDKey{From: from, CID: cid})
		}
	}
	gm("alice", "hello @bob @carol", "g1", "bob", "carol", "bob")
	gm("bob", "hi @alice", "g2", "alice")
	gm("alice", "everyone @all", "g3", "all")
	gm("carol", "@bob again", "", "bob", "nobody")
	write(t, s, &plugins.WriteBatch{GroupAcks: []plugins.GroupAck{{User: "bob", Group: g1.ID, Seq: 5}}})
	op(plugins.GroupOp{Kind: plugins.OpRename, Group: g1.ID, Actor: "alice", Name: "uno"})
	op(plugins.GroupOp{Kind: plugins.OpMute, Group: g1.ID, Actor: "alice", Target: "carol", Until: now.Add(time.Hour).UnixMilli()})
	op(plugins.GroupOp{Kind: plugins.OpRole, Group: g1.ID, Actor: "alice", Target: "bob", Role: plugins.RoleAdmin})
	op(plugins.GroupOp{Kind: plugins.OpKick, Group: g1.ID, Actor: "bob", Target: "dave"})
	gm("bob", "@carol", "g4", "carol")
	op(plugins.GroupOp{Kind: plugins.OpMute, Group: g1.ID, Actor: "alice", Target: "carol"})
	op(plugins.GroupOp{Kind: plugins.OpLeave, Group: g1.ID, Actor: "carol"})
	op(plugins.GroupOp{Kind: plugins.OpMuteAll, Group: g1.ID, Actor: "alice", On: true})
	op(plugins.GroupOp{Kind: plugins.OpSettings, Group: g1.ID, Actor: "alice", Policy: plugins.PolicyApproval})
	// Mentions of bob after his cursor: named, to all, named again;
	// he reads the first.
	gm("alice", "@bob late", "g5", "bob")
	gm("alice", "@all late", "", "all")
	gm("alice", "@bob later", "g6", "bob")
	write(t, s, &plugins.WriteBatch{GroupAcks: []plugins.GroupAck{{User: "bob", Group: g1.ID, Seq: 18}}})
	if ug, err := s.UserGroups(ctx, "bob"); err != nil || len(ug) == 0 || ug[0].Mentions != 2 || ug[0].Unread != 2 {
		t.Fatalf("UserGroups(bob) = %+v, %v; want 2 unread, 2 mentions in group %d", ug, err, g1.ID)
	}

	g2, err := s.CreateGroup(ctx, "bob", "two", plugins.PolicyApproval, plugins.HistoryJoined, tick(), plugins.GroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	ts = tick()
	for _, u := range []string{"dave", "carol", "alice"} {
		if _, err := s.GroupOp(ctx, plugins.GroupOp{Kind: plugins.OpJoin, Group: g2.ID, Actor: u, TS: ts}); err != nil {
			t.Fatal(err)
		}
	}
	op(plugins.GroupOp{Kind: plugins.OpApprove, Group: g2.ID, Actor: "bob", Target: "alice"})
	op(plugins.GroupOp{Kind: plugins.OpTransfer, Group: g2.ID, Actor: "bob", Target: "alice"})

	g3, err := s.CreateGroup(ctx, "carol", "three", plugins.PolicyInvite, plugins.HistoryJoined, tick(), plugins.GroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	op(plugins.GroupOp{Kind: plugins.OpInvite, Group: g3.ID, Actor: "carol", Target: "dave"})
	op(plugins.GroupOp{Kind: plugins.OpDissolve, Group: g3.ID, Actor: "carol"})

	// Tokens.
	for i, u := range []string{"alice", "alice", "bob"} {
		ts := tick()
		if err := s.AddToken(ctx, plugins.Token{ID: fmt.Sprintf("%016x", i+1), User: u, Hash: []byte{byte(i), 1, 2}, Created: ts, LastUsed: ts, Expires: ts + 1e9}, 5); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TouchTokens(ctx, []plugins.TokenUse{{ID: fmt.Sprintf("%016x", 1), TS: tick()}}); err != nil {
		t.Fatal(err)
	}
	tick()
	return cids
}

// sameReads fails unless a and b answer every read alike.
func sameReads(t *testing.T, a, b *pebblestore.Store, cids []plugins.CIDKey) {
	t.Helper()
	ctx := context.Background()
	check := func(what string, f func(s *pebblestore.Store) (any, error)) {
		t.Helper()
		x, errA := f(a)
		y, errB := f(b)
		if fmt.Sprint(errA) != fmt.Sprint(errB) || !reflect.DeepEqual(x, y) {
			t.Errorf("%s:\n original: %s (%v)\n imported: %s (%v)", what, jsonOf(x), errA, jsonOf(y), errB)
		}
	}
	check("CountUsers", func(s *pebblestore.Store) (any, error) { return s.CountUsers(ctx) })
	check("CountPending", func(s *pebblestore.Store) (any, error) { return s.CountPending(ctx) })
	check("LookupCIDs", func(s *pebblestore.Store) (any, error) { return s.LookupCIDs(ctx, cids) })
	for _, u := range users {
		check("PendingCount "+u, func(s *pebblestore.Store) (any, error) { return s.PendingCount(ctx, u) })
		check("Pending "+u, func(s *pebblestore.Store) (any, error) {
			m, more, err := s.Pending(ctx, u, 100)
			return []any{m, more}, err
		})
		check("PasswordHash "+u, func(s *pebblestore.Store) (any, error) { return s.PasswordHash(ctx, u) })
		check("Friends "+u, func(s *pebblestore.Store) (any, error) { return s.Friends(ctx, u) })
		check("Blocks "+u, func(s *pebblestore.Store) (any, error) { return s.Blocks(ctx, u) })
		check("UserGroups "+u, func(s *pebblestore.Store) (any, error) { return s.UserGroups(ctx, u) })
		check("UserTokens "+u, func(s *pebblestore.Store) (any, error) { return s.UserTokens(ctx, u) })
		for _, w := range users {
			// Every page of the conversation, two at a time, by before
			// cursors.
			check("History "+u+" "+w, func(s *pebblestore.Store) (any, error) {
				var pages [][]protocol.Message
				before := ""
				for {
					h, more, err := s.History(ctx, u, w, before, 2)
					if err != nil {
						return pages, err
					}
					pages = append(pages, h)
					if !more {
						return pages, nil
					}
					before = h[0].ID
				}
			})
		}
		for id := int64(1); id <= 4; id++ {
			check(fmt.Sprintf("Log %d %s", id, u), func(s *pebblestore.Store) (any, error) {
				e, more, err := s.Log(ctx, id, u, 0, 0, 100)
				return []any{e, more}, err
			})
		}
	}
	for id := int64(1); id <= 4; id++ {
		check(fmt.Sprintf("Group %d", id), func(s *pebblestore.Store) (any, error) { return s.Group(ctx, id) })
		check(fmt.Sprintf("Members %d", id), func(s *pebblestore.Store) (any, error) {
			m, more, err := s.Members(ctx, id, "", 100)
			return []any{m, more}, err
		})
		check(fmt.Sprintf("JoinRequests %d", id), func(s *pebblestore.Store) (any, error) { return s.JoinRequests(ctx, id) })
	}
}

// TestExportImportRoundTrip: a store populated through the API exports
// a dump in the documented order; imported into a fresh store and
// exported again it gives the same records, and the imported store
// answers every read as the original does, and goes on from there.
func TestExportImportRoundTrip(t *testing.T) {
	s, _, c := newStore(t)
	cids := populate(t, s, c)
	ctx := context.Background()
	recs := exportAll(t, s)

	// The order and the trailer.
	var tr storagedump.Trailer
	stage := 0
	order := map[string]int{"header": 1, "user": 2, "msg": 3, "friend": 4, "friend_request": 5, "block": 6, "group": 7, "token": 8, "trailer": 9}
	for i, r := range recs {
		var kinds map[string]json.RawMessage
		if err := json.Unmarshal([]byte(jsonOf(r)), &kinds); err != nil || len(kinds) != 1 {
			t.Fatalf("record %d = %s: want exactly one field", i, jsonOf(r))
		}
		for k := range kinds {
			st, ok := order[k]
			if !ok {
				st = order["group"]
			}
			if st < stage {
				t.Fatalf("record %d (%s) after a later section", i, k)
			}
			stage = st
		}
		switch {
		case r.User != nil:
			tr.Users++
		case r.Message != nil:
			tr.Messages++
			if r.Message.Pending {
				tr.Pending++
			}
		case r.Friend != nil:
			tr.Friends++
		case r.FriendRequest != nil:
			tr.FriendRequests++
		case r.Block != nil:
			tr.Blocks++
		case r.Group != nil:
			tr.Groups++
		case r.GroupMember != nil:
			tr.GroupMembers++
		case r.GroupEntry != nil:
			tr.GroupEntries++
		case r.JoinRequest != nil:
			tr.JoinRequests++
		case r.GroupCursor != nil:
			tr.GroupCursors++
		case r.Token != nil:
			tr.Tokens++
		}
	}
	if h := recs[0].Header; h == nil || h.Format != storagedump.Format || h.Source != "pebble" {
		t.Fatalf("first record = %s, want the header", jsonOf(recs[0]))
	}
	if got := recs[len(recs)-1].Trailer; got == nil || *got != tr {
		t.Fatalf("trailer = %s, want %s", jsonOf(recs[len(recs)-1]), jsonOf(tr))
	}
	// What the populated store must have put in it.
	want := storagedump.Trailer{Users: 5, Messages: 24, Friends: 2, FriendRequests: 2, Blocks: 1, Groups: 3, Tokens: 3}
	if tr.Users != want.Users || tr.Messages != want.Messages || tr.Friends != want.Friends ||
		tr.FriendRequests != want.FriendRequests || tr.Blocks != want.Blocks || tr.Groups != want.Groups || tr.Tokens != want.Tokens {
		t.Fatalf("trailer = %s; want at least %s", jsonOf(tr), jsonOf(want))
	}
	if tr.Pending != 7 { // bob's 12 but the 5 acked; alice acked all; erin is deleted
		t.Errorf("pending = %d, want 7 (bob's)", tr.Pending)
	}
	for _, r := range recs {
		if u := r.User; u != nil && (u.Created == 0 || (u.Name == "erin") != (u.Deleted != 0)) {
			t.Errorf("user %s: want a creation time, and a deletion time for erin only", jsonOf(u))
		}
		if m := r.Message; m != nil && m.To == "erin" && m.Pending {
			t.Errorf("message %s to deleted erin is pending", jsonOf(m))
		}
		if g := r.Group; g != nil && g.Created == 0 {
			t.Errorf("group %s without a creation time", jsonOf(g))
		}
	}

	c2 := &clock{t: c.Now()}
	imp, _ := importInto(t, c2, recs)
	sameRecords(t, recs, exportAll(t, imp))
	sameReads(t, s, imp, cids)

	// It goes on where the original stopped: the next message id, group
	// id and timestamp, even with a clock behind; a retried cid is a
	// duplicate of the original message; acks by imported ids settle.
	c2.Set(t0.Add(-time.Hour))
	lastID, lastTS := "", int64(0)
	for _, r := range recs {
		if r.Message != nil {
			lastID, lastTS = r.Message.ID, max(lastTS, r.Message.TS)
		}
	}
	orig, err := s.LookupCIDs(ctx, cids[:1])
	if err != nil {
		t.Fatal(err)
	}
	res := send(t, imp, nm("alice", "bob", "retry", cids[0].CID), nm("alice", "bob", "new", ""))
	if !res[0].Duplicate || res[0].Message != orig[0].Message {
		t.Errorf("retry of cid %s = %+v, want a duplicate of %+v", cids[0].CID, res[0], orig[0].Message)
	}
	if n := res[1].Message; n.ID <= lastID || n.TS < lastTS {
		t.Errorf("new message %+v: want an id after %s and a ts not before the imported ones", n, lastID)
	}
	g, err := imp.CreateGroup(ctx, "alice", "four", plugins.PolicyOpen, plugins.HistoryJoined, c2.Now().UnixMilli(), plugins.GroupLimits{})
	if err != nil || g.ID != 4 {
		t.Errorf("CreateGroup after the import = %+v, %v; want id 4", g, err)
	}
	before := pendingIDs(t, imp, "bob")
	write(t, imp, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{before[0], before[2]}}}})
	after := pendingIDs(t, imp, "bob")
	if want := slices.Concat(before[1:2], before[3:]); !slices.Equal(after, want) {
		t.Errorf("Pending(bob) after acks of %s and %s = %v, want %v", before[0], before[2], after, want)
	}
	if n, all := counts(t, imp, "bob"); n != int64(len(after)) || all != int64(len(after)) {
		t.Errorf("counts after acks = %d, %d; want %d, %d", n, all, len(after), len(after))
	}
}

// ulid makes a sqlitestore-style id: 26 characters, sorting by ms.
func ulid(ms int64, n int) string {
	return fmt.Sprintf("%012x%014x", ms, n)
}

// TestImportForeignIDs: a dump from SQLite, whose message ids are ULIDs,
// imports with every id kept: Pending, History's before cursor, acks
// and de-duplication answers use them; a message older than the
// de-duplication window gets no key; the store's own ids follow, and
// timestamps do not go back.
func TestImportForeignIDs(t *testing.T) {
	ctx := context.Background()
	at := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	msg := func(n int, from, to, cid string, ts int64, pending bool) *storagedump.Record {
		return &storagedump.Record{Message: &storagedump.Message{
			ID: ulid(ts, n), From: from, To: to, Body: fmt.Sprintf("m%d", n), TS: ts, CID: cid, Status: protocol.StatusSent, Pending: pending,
		}}
	}
	recs := []*storagedump.Record{
		{Header: &storagedump.Header{Format: storagedump.Format, Source: "sqlite", Created: at(0)}},
		{User: &storagedump.User{Name: "alice", PasswordHash: "ha", Created: at(-96 * time.Hour)}},
		{User: &storagedump.User{Name: "bob", PasswordHash: "hb", Created: at(-96 * time.Hour)}},
		{User: &storagedump.User{Name: "carol", Created: at(-96 * time.Hour), Deleted: at(-time.Minute)}},
		msg(1, "alice", "bob", "old", at(-72*time.Hour), false),
		msg(2, "alice", "bob", "c2", at(-time.Hour), true),
		msg(3, "bob", "alice", "c3", at(-time.Hour), false),
		msg(4, "alice", "bob", "c4", at(-30*time.Minute), false), // acked out of order
		msg(5, "alice", "bob", "", at(-10*time.Minute), true),
		msg(6, "alice", "carol", "c6", at(-5*time.Minute), false),
		{Trailer: &storagedump.Trailer{Users: 3, Messages: 6, Pending: 2}},
	}
	id := func(n int) string { return recs[3+n].Message.ID }
	s, path := importInto(t, &clock{t: t0}, recs)

	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{id(2), id(5)}) {
		t.Errorf("Pending(bob) = %v, want [%s %s]", got, id(2), id(5))
	}
	if n, all := counts(t, s, "bob"); n != 2 || all != 2 {
		t.Errorf("counts = %d, %d; want 2, 2", n, all)
	}
	if n, err := s.CountUsers(ctx); err != nil || n != 2 {
		t.Errorf("CountUsers = %d, %v; want 2", n, err)
	}
	h, more, err := s.History(ctx, "bob", "alice", id(4), 2)
	if err != nil || !more || len(h) != 2 || h[0].ID != id(2) || h[1].ID != id(3) {
		t.Errorf("History before %s = %+v, %v, %v; want %s, %s and more", id(4), h, more, err, id(2), id(3))
	}
	if h, _, err := s.History(ctx, "bob", "alice", id(1), 2); err != nil || len(h) != 0 {
		t.Errorf("History before %s = %+v, %v; want none", id(1), h, err)
	}
	if h, _, err := s.History(ctx, "alice", "carol", "", 2); err != nil || len(h) != 1 || h[0].ID != id(6) {
		t.Errorf("History(alice, carol) = %+v, %v; want %s", h, err, id(6))
	}
	r, err := s.LookupCIDs(ctx, []plugins.CIDKey{{From: "alice", CID: "c2"}, {From: "bob", CID: "c3"}, {From: "alice", CID: "old"}})
	if err != nil || !r[0].Duplicate || r[0].Message.ID != id(2) || r[0].Status != protocol.StatusSent ||
		r[1].Message.ID != id(3) || r[2].Duplicate {
		t.Errorf("LookupCIDs = %+v, %v; want %s and %s, and none for the cid older than the window", r, err, id(2), id(3))
	}

	// A clock behind the imported messages: new ones still come after.
	res := send(t, s, nm("alice", "bob", "retry", "c4"), nm("alice", "bob", "retry old", "old"), nm("bob", "alice", "new", ""))
	if !res[0].Duplicate || res[0].Message.ID != id(4) || res[0].Message.TS != at(-30*time.Minute) {
		t.Errorf("retry of c4 = %+v, want a duplicate of %s", res[0], id(4))
	}
	if res[1].Duplicate || res[1].Message.ID != "0000000000007" || res[2].Message.ID != "0000000000008" {
		t.Errorf("new messages = %+v, %+v; want ids 0000000000007 and 8 (the cid older than the window is new)", res[1], res[2])
	}
	if ts := res[2].Message.TS; ts < at(-5*time.Minute) {
		t.Errorf("new message ts = %d, before the last imported %d", ts, at(-5*time.Minute))
	}
	write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{id(2), id(5)}}}})
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{res[1].Message.ID}) {
		t.Errorf("Pending(bob) after the acks = %v, want [%s]", got, res[1].Message.ID)
	}

	// All of it survives a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, &clock{t: t0})
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{res[1].Message.ID}) {
		t.Errorf("Pending(bob) after a reopen = %v, want [%s]", got, res[1].Message.ID)
	}
	if h, _, err := s.History(ctx, "bob", "alice", id(3), 5); err != nil || len(h) != 2 || h[0].ID != id(1) {
		t.Errorf("History before %s after a reopen = %+v, %v", id(3), h, err)
	}
	// And exports the foreign ids as they came.
	out := exportAll(t, s)
	for i := 1; i <= 6; i++ {
		if m := out[3+i].Message; m == nil || m.ID != id(i) {
			t.Errorf("exported record %d = %s, want message %s", 3+i, jsonOf(out[3+i]), id(i))
		}
	}
}

// TestImportRefusals: Import refuses a store that holds anything, and
// fails with the error of a dump that breaks off, or ends without its
// trailer, or whose trailer does not match.
func TestImportRefusals(t *testing.T) {
	ctx := context.Background()
	s, _, c := newStore(t)
	send(t, s, nm("alice", "bob", "x", "cx"))
	recs := exportAll(t, s)
	if err := s.Import(ctx, feed(recs)); !errors.Is(err, pebblestore.ErrNotEmpty) {
		t.Errorf("Import into a populated store = %v, want ErrNotEmpty", err)
	}

	broken := errors.New("read error")
	n := 0
	failing := func() (*storagedump.Record, error) {
		if n == 4 {
			return nil, broken
		}
		n++
		return recs[n-1], nil
	}
	fresh := openAt(t, filepath.Join(t.TempDir(), "a.pebble"), c)
	if err := fresh.Import(ctx, failing); !errors.Is(err, broken) {
		t.Errorf("Import that breaks off = %v, want the read error", err)
	}

	fresh = openAt(t, filepath.Join(t.TempDir(), "b.pebble"), c)
	if err := fresh.Import(ctx, feed(recs[:len(recs)-1])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Import without a trailer = %v, want io.ErrUnexpectedEOF", err)
	}

	bad := slices.Clone(recs)
	tr := *bad[len(bad)-1].Trailer
	tr.Messages++
	bad[len(bad)-1] = &storagedump.Record{Trailer: &tr}
	fresh = openAt(t, filepath.Join(t.TempDir(), "c.pebble"), c)
	if err := fresh.Import(ctx, feed(bad)); err == nil {
		t.Error("Import with a wrong trailer succeeded")
	}

	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	fresh = openAt(t, filepath.Join(t.TempDir(), "d.pebble"), c)
	if err := fresh.Import(ctxDone, feed(recs)); !errors.Is(err, context.Canceled) {
		t.Errorf("Import with an ended context = %v, want context.Canceled", err)
	}
}

// TestExportWhileWriting: an export that runs while messages are stored
// reads one view: its trailer counts what it emitted, and its messages
// are a prefix of the acceptance order with no gap.
func TestExportWhileWriting(t *testing.T) {
	s, _, _ := newStore(t)
	send(t, s, nm("alice", "bob", "first", ""))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if _, err := s.Write(context.Background(), &plugins.WriteBatch{Messages: []plugins.NewMessage{nm("bob", "carol", fmt.Sprint(i), "")}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 21 {
		if i == 20 {
			<-done // the last one sees them all
		}
		var msgs []string
		var tr *storagedump.Trailer
		if err := s.Export(context.Background(), func(r *storagedump.Record) error {
			if r.Message != nil {
				msgs = append(msgs, r.Message.ID)
			}
			tr = r.Trailer
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if tr == nil || tr.Messages != int64(len(msgs)) || tr.Pending != int64(len(msgs)) {
			t.Fatalf("trailer %+v after %d messages (all pending)", tr, len(msgs))
		}
		for i, id := range msgs {
			if want := seqID(uint64(i + 1)); id != want {
				t.Fatalf("message %d has id %s, want %s", i, id, want)
			}
		}
		if i == 20 && len(msgs) != 201 {
			t.Fatalf("the export after the writes has %d messages, want 201", len(msgs))
		}
	}
}

// seqID is the id the store gives seq: 13 characters of lowercase
// Crockford base32.
func seqID(seq uint64) string {
	const crockford = "0123456789abcdefghjkmnpqrstvwxyz"
	out := make([]byte, pebblestore.MsgIDLen)
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = crockford[seq&31]
		seq >>= 5
	}
	return string(out)
}

// foreignDump is a dump as the sqlite plugin would write it: users
// u0..u9 (u9 deleted), n messages with ULIDs between them, one in 20
// pending (never for u9), every other one with a cid, a body of 200
// bytes, so that n = 30,000 fills several import chunks.
func foreignDump(n int) []*storagedump.Record {
	recs := []*storagedump.Record{{Header: &storagedump.Header{Format: storagedump.Format, Source: "sqlite", Created: t0.UnixMilli()}}}
	tr := storagedump.Trailer{}
	for i := range 10 {
		u := &storagedump.User{Name: fmt.Sprintf("u%d", i), PasswordHash: "h", Created: t0.Add(-time.Hour).UnixMilli()}
		if i == 9 {
			u.PasswordHash, u.Deleted = "", t0.UnixMilli()
		}
		recs = append(recs, &storagedump.Record{User: u})
		tr.Users++
	}
	body := string(make([]byte, 200))
	for i := range n {
		ts := t0.Add(-time.Hour).UnixMilli() + int64(i/10)
		m := &storagedump.Message{ID: ulid(ts, i), From: fmt.Sprintf("u%d", i%10), To: fmt.Sprintf("u%d", i*7%10), Body: body, TS: ts, Status: protocol.StatusQueued}
		if i%2 == 0 {
			m.CID = fmt.Sprintf("c%d", i)
		}
		if i*13%20 == 0 && m.To != "u9" {
			m.Pending = true
			tr.Pending++
		}
		recs = append(recs, &storagedump.Record{Message: m})
		tr.Messages++
	}
	return append(recs, &storagedump.Record{Trailer: &tr})
}

// TestImportChunks: a dump larger than an import chunk imports whole:
// exported again it gives the same records (the header aside), and the
// counts are those of the dump.
func TestImportChunks(t *testing.T) {
	ctx := context.Background()
	recs := foreignDump(30_000)
	s, _ := importInto(t, &clock{t: t0}, recs)
	out := exportAll(t, s)
	out[0] = recs[0]
	sameRecords(t, recs, out)
	tr := recs[len(recs)-1].Trailer
	if n, err := s.CountPending(ctx); err != nil || n != tr.Pending {
		t.Errorf("CountPending = %d, %v; want %d", n, err, tr.Pending)
	}
	var sum int64
	for i := range 10 {
		n, err := s.PendingCount(ctx, fmt.Sprintf("u%d", i))
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	if sum != tr.Pending {
		t.Errorf("pending counts add up to %d, want %d", sum, tr.Pending)
	}
	if r, err := s.LookupCIDs(ctx, []plugins.CIDKey{{From: "u0", CID: "c0"}, {From: "u8", CID: "c29998"}}); err != nil ||
		r[0].Message.ID != recs[11].Message.ID || r[1].Message.ID != recs[len(recs)-3].Message.ID {
		t.Errorf("LookupCIDs of the first and last cids = %+v, %v", r, err)
	}
}

// TestImportFailsAfterChunks: an import that breaks off after it
// committed chunks returns the error and leaves a store that refuses
// writes (it is to be thrown away) but still closes.
func TestImportFailsAfterChunks(t *testing.T) {
	recs := foreignDump(30_000)
	broken := errors.New("connection reset")
	i := 0
	next := func() (*storagedump.Record, error) {
		if i == 25_000 {
			return nil, broken
		}
		i++
		return recs[i-1], nil
	}
	s := openAt(t, filepath.Join(t.TempDir(), "partial.pebble"), &clock{t: t0})
	if err := s.Import(context.Background(), next); !errors.Is(err, broken) {
		t.Fatalf("Import = %v, want the error of next", err)
	}
	if err := s.CreateUser(context.Background(), "x", "h"); err == nil {
		t.Error("CreateUser after a failed import succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}
