package storagetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/storagedump"
)

// DumpStore is a storage that exports and imports dumps (package
// storagedump): what Dump and DumpAcross test. It must have
// plugins.Social, plugins.Groups and plugins.Tokens too (found with
// SocialOf, GroupsOf, TokensOf): a dump carries all of them.
type DumpStore interface {
	plugins.Storage
	storagedump.Exporter
	storagedump.Importer
}

// Dump checks the export and import of one kind of store. open returns a
// new, empty store each time, and arranges its cleanup (as for Run).
//
// It fills a store through the public API with every kind of state a
// dump carries (live and deleted users, pending and acked messages with
// and without cids, both statuses, friends, friend requests and blocks,
// groups of every policy and history, dissolved ones, past members,
// kicked, left, muted, promoted and renamed, mentions named and of all,
// join requests, cursors at various places, tokens), writes it as a dump
// (Encoder), loads that into a second, empty store (Decoder, Load), and
// requires: the second store's dump equals the first record for record
// (Header aside); both stores answer every read of the public API alike
// (History pages and their before cursors, Pending, counts, friend lists,
// relations, groups, members, logs, user groups with Unread and Mentions,
// join requests, LookupCIDs, tokens); and the imported store goes on
// correctly (a retry of an old cid, direct or group, is a Duplicate with
// the first message; a deleted user's name stays taken; new messages get
// new ids and timestamps no earlier than the imported ones and come last
// in History; new groups get new ids; acks and group acks move the
// counters as on the original; tokens work). It also checks that Import
// refuses a store that is not empty and that Load refuses a truncated
// dump before the importer sees a Trailer.
func Dump(t *testing.T, open func(t *testing.T) DumpStore) {
	t.Run("round trip through a file", func(t *testing.T) {
		src := open(t)
		sc := populateDump(t, src)
		buf := exportDump(t, src)
		dst := open(t)
		if err := storagedump.Load(dumpCtx(t), storagedump.NewDecoder(buf), dst); err != nil {
			t.Fatalf("Load: %v", err)
		}
		checkImported(t, src, dst, sc)
	})
	t.Run("refuses a store that is not empty", func(t *testing.T) {
		src := open(t)
		populateDump(t, src)
		dst := open(t)
		if err := dst.CreateUser(dumpCtx(t), "someone", "h"); err != nil {
			t.Fatal(err)
		}
		if err := storagedump.Copy(dumpCtx(t), src, dst); err == nil {
			t.Fatal("Copy into a store with a user: no error")
		}
		if n, err := dst.CountUsers(dumpCtx(t)); err != nil || n != 1 {
			t.Errorf("CountUsers after the refused import = %d, %v; want 1", n, err)
		}
	})
	t.Run("truncated dump", func(t *testing.T) {
		src := open(t)
		populateDump(t, src)
		buf := exportDump(t, src)
		lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
		lines = lines[:len(lines)-1] // the empty rest after the last newline
		for _, cut := range []int{1, 2, len(lines) / 2} {
			short := bytes.Join(lines[:len(lines)-cut], nil)
			dst := open(t)
			err := storagedump.Load(dumpCtx(t), storagedump.NewDecoder(bytes.NewReader(short)), dst)
			if err == nil {
				t.Errorf("Load of the dump without its last %d lines: no error", cut)
			}
		}
	})
}

// DumpAcross checks a migration between two kinds of store (or one kind,
// as Dump does but without a file): it fills a store opened with openSrc
// as Dump does, copies it with storagedump.Copy into a store opened with
// openDst, and makes the checks of Dump, the equality of the dumps taken
// in a canonical order (the order of records the format leaves free:
// friends, blocks, members, cursors and tokens, sorted by key). Call it
// with every ordered pair of stores:
//
//	storagetest.DumpAcross(t, openSQLite, openPebble)
//	storagetest.DumpAcross(t, openPebble, openSQLite)
func DumpAcross(t *testing.T, openSrc, openDst func(t *testing.T) DumpStore) {
	src := openSrc(t)
	sc := populateDump(t, src)
	dst := openDst(t)
	if err := storagedump.Copy(dumpCtx(t), src, dst); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	checkImported(t, src, dst, sc)
}

// dumpCtx bounds one call of the dump tests.
// exportDump exports src into a buffer, as `qqd storage export` writes
// a file.
func exportDump(t *testing.T, src DumpStore) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	enc := storagedump.NewEncoder(&buf)
	if err := src.Export(dumpCtx(t), enc.Encode); err != nil {
		t.Fatalf("Export: %v", err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func dumpCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dumpScenario is what populateDump made, for the checks.
type dumpScenario struct {
	users  []string // every name, deleted ones too
	cids   []plugins.CIDKey
	tokens []string
	// dmCID is a direct message's key; groupCID a group message's, in
	// group groupCIDGroup.
	dmCID, groupCID plugins.CIDKey
	groupCIDGroup   int64
	// acks to apply on both stores after the import: a pending message of
	// pendingUser, and a group ack that passes mentions.
	pendingUser string
	groupAck    plugins.GroupAck
}

// populateDump fills st through the public API with every kind of state.
func populateDump(t *testing.T, st DumpStore) *dumpScenario {
	t.Helper()
	h := &tester{t: t, st: st}
	soc, ok := plugins.SocialOf(st)
	if !ok {
		t.Fatal("the store has no plugins.Social")
	}
	tk, ok := plugins.TokensOf(st)
	if !ok {
		t.Fatal("the store has no plugins.Tokens")
	}
	g, ok := plugins.GroupsOf(st)
	if !ok {
		t.Fatal("the store has no plugins.Groups")
	}
	// Group entries carry the host's clock, the time of acceptance, from
	// which a store's de-duplication window counts when it imports them:
	// the scenario's group messages are an hour old, so that their cids
	// are within the window of any store under test, as they are in
	// qqd.
	gh := &groupsTester{tester: h, g: g, ts: time.Now().Add(-time.Hour).UnixMilli()}
	sh := &socialTester{tester: h, soc: soc}

	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "zoë"}
	for _, u := range users {
		if err := st.CreateUser(h.ctx(), u, "$argon2id$v=19$m=65536,t=1,p=4$"+u); err != nil {
			t.Fatalf("CreateUser(%q): %v", u, err)
		}
	}
	sc := &dumpScenario{users: users, pendingUser: "bob"}

	// Direct messages: with and without cids, both statuses, to oneself,
	// some acked, unicode and empty-looking bodies.
	sent := func(m plugins.NewMessage) plugins.NewMessage { m.Status = protocol.StatusSent; return m }
	dm := h.sendOK(
		nm("alice", "bob", "hi bob", "a1"),
		nm("alice", "bob", "second", ""),
		sent(nm("bob", "alice", "hi alice", "b1")),
		nm("alice", "alice", "note to self", "a2"),
		nm("carol", "alice", "çà et là 🎉", "c1"),
		nm("hank", "erin", "from hank", "h1"),
		nm("erin", "hank", "to hank", ""),
	)
	h.ack("bob", dm[0].ID)
	h.ack("alice", dm[3].ID)
	more := h.sendOK(
		nm("alice", "bob", "third", "a3"),
		sent(nm("dave", "carol", " ", "d1")),
		nm("bob", "alice", "line\nbreak \"quoted\" \\ back", ""),
		nm("alice", "bob", "fourth", ""),
		nm("zoë", "alice", "from zoë", "z1"),
	)
	h.ack("carol", more[1].ID)
	sc.dmCID = plugins.CIDKey{From: "alice", CID: "a1"}
	sc.cids = append(sc.cids,
		plugins.CIDKey{From: "alice", CID: "a1"}, plugins.CIDKey{From: "bob", CID: "b1"},
		plugins.CIDKey{From: "alice", CID: "a3"}, plugins.CIDKey{From: "hank", CID: "h1"},
		plugins.CIDKey{From: "zoë", CID: "z1"}, plugins.CIDKey{From: "nobody", CID: "x"})

	// Friends, requests (two to alice in the same millisecond, in an
	// order the names do not give) and blocks.
	sh.befriend("alice", "bob", ts0+1)
	sh.befriend("carol", "alice", ts0+2)
	sh.befriend("hank", "dave", ts0+3)
	sh.request("frank", "alice", "it's frank", ts0+10)
	sh.request("erin", "alice", "", ts0+10)
	sh.request("carol", "dave", "hello", ts0+11)
	sh.request("zoë", "hank", "", ts0+12)
	sh.block("dave", "frank", ts0+20)
	sh.block("frank", "erin", ts0+21)
	sh.block("hank", "gina", ts0+22)

	// Groups. 1: open, joined history, every kind of entry.
	g1 := gh.create("alice", "open one", plugins.PolicyOpen, plugins.HistoryJoined).ID
	gh.join(g1, "", "bob", "carol", "dave", "hank", "zoë")
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: g1, Actor: "alice", Target: "bob", Role: plugins.RoleAdmin})
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpRename, Group: g1, Actor: "bob", Name: "renamed"})
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: g1, Actor: "bob", Target: "carol", Until: ts0 + 1e9})
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpMuteAll, Group: g1, Actor: "alice", On: true})
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpMuteAll, Group: g1, Actor: "alice", On: false})
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpSettings, Group: g1, Actor: "alice", Policy: plugins.PolicyOpen, History: plugins.HistoryShared})
	es := gh.sendGroupOK(
		plugins.NewGroupMessage{Group: g1, From: "alice", Body: "hello @bob @dave", CID: "ga1", Mentions: []string{"bob", "dave"}, TS: gh.tick()},
		plugins.NewGroupMessage{Group: g1, From: "bob", Body: "@all read this", CID: "gb1", Mentions: []string{"all"}, TS: gh.tick()},
		plugins.NewGroupMessage{Group: g1, From: "dave", Body: "@zoë @dave @zoë @nobody", Mentions: []string{"zoë", "dave", "zoë", "nobody"}, TS: gh.tick()},
		plugins.NewGroupMessage{Group: g1, From: "zoë", Body: "plain", TS: gh.tick()},
	)
	gh.ackGroup("dave", g1, es[0].Seq) // passes the mention of dave
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpKick, Group: g1, Actor: "alice", Target: "carol"})
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpLeave, Group: g1, Actor: "zoë"})
	gh.join(g1, "", "zoë") // back, with a new cursor
	gh.sendGroupOK(plugins.NewGroupMessage{Group: g1, From: "alice", Body: "@zoë welcome back @hank", Mentions: []string{"zoë", "hank"}, TS: gh.tick()})
	sc.groupCID, sc.groupCIDGroup = plugins.CIDKey{From: "alice", CID: "ga1"}, g1
	sc.cids = append(sc.cids, plugins.CIDKey{From: "alice", CID: "ga1"}, plugins.CIDKey{From: "bob", CID: "gb1"})
	sc.groupAck = plugins.GroupAck{User: "bob", Group: g1, Seq: es[2].Seq}

	// 2: approval, with pending join requests (one approved, one
	// rejected, two left pending in the order they came).
	g2 := gh.create("bob", "approval", plugins.PolicyApproval, plugins.HistoryJoined).ID
	for _, u := range []string{"carol", "alice", "frank", "erin"} {
		if r := gh.op(plugins.GroupOp{Kind: plugins.OpJoin, Group: g2, Actor: u}); !r.Requested {
			t.Fatalf("join of approval group by %s: %+v", u, r)
		}
	}
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpApprove, Group: g2, Actor: "bob", Target: "carol"})
	gh.op(plugins.GroupOp{Kind: plugins.OpReject, Group: g2, Actor: "bob", Target: "erin"})
	gh.sendGroupOK(plugins.NewGroupMessage{Group: g2, From: "carol", Body: "thanks @bob", Mentions: []string{"bob"}, TS: gh.tick()})

	// 3: invite only, dissolved.
	g3 := gh.create("carol", "invite", plugins.PolicyInvite, plugins.HistoryShared).ID
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpInvite, Group: g3, Actor: "carol", Target: "dave"})
	gh.sendGroupOK(plugins.NewGroupMessage{Group: g3, From: "dave", Body: "bye", CID: "gd3", TS: gh.tick()})
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpDissolve, Group: g3, Actor: "carol"})
	sc.cids = append(sc.cids, plugins.CIDKey{From: "dave", CID: "gd3"})

	// 4: ownership transferred.
	g4 := gh.create("dave", "transfer", plugins.PolicyOpen, plugins.HistoryShared).ID
	gh.join(g4, "", "alice", "erin")
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpTransfer, Group: g4, Actor: "dave", Target: "alice"})

	// 5: owned by hank, whose account is deleted below; 6: hank alone,
	// dissolved by the deletion.
	g5 := gh.create("hank", "hank's", plugins.PolicyOpen, plugins.HistoryJoined).ID
	gh.join(g5, "", "erin", "frank")
	gh.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: g5, Actor: "hank", Target: "frank", Role: plugins.RoleAdmin})
	gh.sendGroupOK(plugins.NewGroupMessage{Group: g5, From: "hank", Body: "@erin", Mentions: []string{"erin"}, TS: gh.tick()})
	gh.create("hank", "alone", plugins.PolicyInvite, plugins.HistoryJoined)

	// Tokens.
	for i, tok := range []plugins.Token{tok(1, "alice", 0, 5), tok(2, "alice", 1, 1), tok(3, "bob", 2, 9), tok(4, "hank", 3, 3)} {
		if err := tk.AddToken(h.ctx(), tok, 5); err != nil {
			t.Fatalf("AddToken %d: %v", i, err)
		}
		sc.tokens = append(sc.tokens, tok.ID)
	}
	if err := tk.TouchTokens(h.ctx(), []plugins.TokenUse{{ID: tokenID(2), TS: ts0 + 100}}); err != nil {
		t.Fatalf("TouchTokens: %v", err)
	}

	// Deleted accounts: gina had nothing, hank had everything.
	h.deleteUser("gina")
	h.deleteUser("hank")
	return sc
}

// checkImported compares dst, just imported from src, with src: the
// dumps, every read, then what both do next.
func checkImported(t *testing.T, src, dst DumpStore, sc *dumpScenario) {
	t.Helper()
	a, b := exportJSON(t, src), exportJSON(t, dst)
	if len(a) != len(b) {
		t.Errorf("the imported store's dump has %d records, the original's %d", len(b), len(a))
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			t.Errorf("dump record %d differs:\n original: %s\n imported: %s", i, a[i], b[i])
		}
	}
	if t.Failed() {
		return
	}
	compareReads(t, src, dst, sc)
	checkGoesOn(t, src, dst, sc)
}

// exportJSON exports st and returns its records as JSON, Header left out,
// in canonical order (see DumpAcross).
func exportJSON(t *testing.T, st DumpStore) []string {
	t.Helper()
	var recs []*storagedump.Record
	err := st.Export(dumpCtx(t), func(r *storagedump.Record) error {
		if r.Header == nil {
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	// Runs of records whose order the format leaves free, sorted by key.
	key := func(r *storagedump.Record) (int, string) {
		switch {
		case r.Friend != nil:
			return 1, r.Friend.Owner + "\x00" + r.Friend.Friend
		case r.Block != nil:
			return 2, r.Block.Blocker + "\x00" + r.Block.Blocked
		case r.FriendRequest != nil:
			return 3, "" // in their order: it is the order of same-ms requests
		case r.GroupMember != nil:
			return 4, r.GroupMember.User
		case r.GroupCursor != nil:
			return 5, r.GroupCursor.User
		case r.Token != nil:
			return 6, r.Token.ID
		}
		return 0, ""
	}
	// run names the free run a record belongs to (0: none): the social
	// section, a group's members, a group's cursors, the tokens.
	run := func(r *storagedump.Record) [2]int64 {
		switch k, _ := key(r); k {
		case 0:
			return [2]int64{}
		case 1, 2, 3:
			return [2]int64{1, 0}
		case 4:
			return [2]int64{4, r.GroupMember.Group}
		case 5:
			return [2]int64{5, r.GroupCursor.Group}
		default:
			return [2]int64{int64(k), 0}
		}
	}
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && run(recs[i]) != [2]int64{} && run(recs[j]) == run(recs[i]) {
			j++
		}
		slices.SortStableFunc(recs[i:j], func(x, y *storagedump.Record) int {
			kx, sx := key(x)
			ky, sy := key(y)
			return cmp.Or(cmp.Compare(kx, ky), cmp.Compare(sx, sy))
		})
		i = j
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(j)
	}
	return out
}

// errClass names err by the sentinel it wraps, for comparing two stores'
// errors.
func errClass(err error) string {
	if err == nil {
		return "nil"
	}
	for _, s := range []error{plugins.ErrUnknownUser, plugins.ErrUserExists, plugins.ErrBadCursor,
		plugins.ErrNoGroup, plugins.ErrNotMember, plugins.ErrNotAllowed, plugins.ErrMuted,
		plugins.ErrNoToken, plugins.ErrBlocked, plugins.ErrNotFriends} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "other: " + err.Error()
}

// same fails t unless both stores answered a read alike.
// Message seqs are left out (see clearSeqs).
func same[T any](t *testing.T, what string, a T, errA error, b T, errB error) {
	t.Helper()
	clearSeqs(reflect.ValueOf(&a))
	clearSeqs(reflect.ValueOf(&b))
	if errClass(errA) != errClass(errB) || (errA == nil && !reflect.DeepEqual(a, b)) {
		t.Errorf("%s:\n original: %+v, %v\n imported: %+v, %v", what, a, errA, b, errB)
	}
}

// compareReads requires both stores to answer every read alike.
func compareReads(t *testing.T, src, dst DumpStore, sc *dumpScenario) {
	t.Helper()
	ctx := dumpCtx(t)
	stores := [2]DumpStore{src, dst}
	{
		a, ea := src.CountUsers(ctx)
		b, eb := dst.CountUsers(ctx)
		same(t, "CountUsers", a, ea, b, eb)
		a, ea = src.CountPending(ctx)
		b, eb = dst.CountPending(ctx)
		same(t, "CountPending", a, ea, b, eb)
	}
	names := append(slices.Clone(sc.users), "nobody")
	for _, u := range names {
		a, ea := src.PasswordHash(ctx, u)
		b, eb := dst.PasswordHash(ctx, u)
		same(t, "PasswordHash("+u+")", a, ea, b, eb)
		n, en := src.PendingCount(ctx, u)
		m, em := dst.PendingCount(ctx, u)
		same(t, "PendingCount("+u+")", n, en, m, em)
		for _, limit := range []int{1, 1000} {
			type page struct {
				Msgs []protocol.Message
				More bool
			}
			var p [2]page
			var e [2]error
			for i, st := range stores {
				p[i].Msgs, p[i].More, e[i] = st.Pending(ctx, u, limit)
			}
			same(t, fmt.Sprintf("Pending(%s, %d)", u, limit), p[0], e[0], p[1], e[1])
		}
		for _, w := range names {
			if u == "nobody" {
				break // History of a user that never was is unspecified
			}
			// Page back two at a time, with each page's first id as the
			// next before cursor.
			before := ""
			for range 20 {
				type page struct {
					Msgs []protocol.Message
					More bool
				}
				var p [2]page
				var e [2]error
				for i, st := range stores {
					p[i].Msgs, p[i].More, e[i] = st.History(ctx, u, w, before, 2)
				}
				same(t, fmt.Sprintf("History(%s, %s, before %q)", u, w, before), p[0], e[0], p[1], e[1])
				if e[0] != nil || !p[0].More || len(p[0].Msgs) == 0 {
					break
				}
				before = p[0].Msgs[0].ID
			}
		}
	}

	soc := [2]plugins.Social{}
	grp := [2]plugins.Groups{}
	tks := [2]plugins.Tokens{}
	for i, st := range stores {
		soc[i], _ = plugins.SocialOf(st)
		grp[i], _ = plugins.GroupsOf(st)
		tks[i], _ = plugins.TokensOf(st)
		if soc[i] == nil || grp[i] == nil || tks[i] == nil {
			t.Fatal("a store without Social, Groups or Tokens")
		}
	}
	for _, u := range names {
		fa, ea := soc[0].Friends(ctx, u)
		fb, eb := soc[1].Friends(ctx, u)
		same(t, "Friends("+u+")", fa, ea, fb, eb)
		ba, ea := soc[0].Blocks(ctx, u)
		bb, eb := soc[1].Blocks(ctx, u)
		same(t, "Blocks("+u+")", ba, ea, bb, eb)
		for _, w := range names {
			ra, ea := soc[0].Relation(ctx, u, w)
			rb, eb := soc[1].Relation(ctx, u, w)
			same(t, "Relation("+u+", "+w+")", ra, ea, rb, eb)
		}
		ga, ea := grp[0].UserGroups(ctx, u)
		gb, eb := grp[1].UserGroups(ctx, u)
		same(t, "UserGroups("+u+")", ga, ea, gb, eb)
		ta, ea := tks[0].UserTokens(ctx, u)
		tb, eb := tks[1].UserTokens(ctx, u)
		same(t, "UserTokens("+u+")", ta, ea, tb, eb)
	}
	for _, id := range sc.tokens {
		ta, ea := tks[0].Token(ctx, id)
		tb, eb := tks[1].Token(ctx, id)
		same(t, "Token("+id+")", ta, ea, tb, eb)
	}
	for id := int64(0); ; id++ {
		ia, ea := grp[0].Group(ctx, id)
		ib, eb := grp[1].Group(ctx, id)
		same(t, fmt.Sprintf("Group(%d)", id), ia, ea, ib, eb)
		if id > 0 && errors.Is(ea, plugins.ErrNoGroup) {
			break
		}
		if id > 1000 {
			t.Fatal("more than 1000 groups")
		}
		type members struct {
			M    []plugins.Member
			More bool
		}
		var ms [2]members
		var e [2]error
		for i := range grp {
			ms[i].M, ms[i].More, e[i] = grp[i].Members(ctx, id, "", 100)
		}
		same(t, fmt.Sprintf("Members(%d)", id), ms[0], e[0], ms[1], e[1])
		ja, ea := grp[0].JoinRequests(ctx, id)
		jb, eb := grp[1].JoinRequests(ctx, id)
		same(t, fmt.Sprintf("JoinRequests(%d)", id), ja, ea, jb, eb)
		for _, u := range names {
			type page struct {
				E    []plugins.GroupEntry
				More bool
			}
			for _, q := range [][3]int64{{0, 0, 1000}, {2, 0, 3}, {0, 1 << 40, 3}, {0, 5, 2}} {
				var p [2]page
				for i := range grp {
					p[i].E, p[i].More, e[i] = grp[i].Log(ctx, id, u, q[0], q[1], int(q[2]))
				}
				same(t, fmt.Sprintf("Log(%d, %s, %v)", id, u, q), p[0], e[0], p[1], e[1])
			}
		}
	}
	la, ea := src.LookupCIDs(ctx, sc.cids)
	lb, eb := dst.LookupCIDs(ctx, sc.cids)
	same(t, "LookupCIDs", la, ea, lb, eb)
	for i, r := range lb {
		if sc.cids[i].From != "nobody" && r.Message.ID == "" && r.Group == nil {
			t.Errorf("LookupCIDs on the imported store: %+v not found", sc.cids[i])
		}
	}
}

// checkGoesOn does the same things on both stores and compares, and
// checks what must hold of the imported store alone.
func checkGoesOn(t *testing.T, src, dst DumpStore, sc *dumpScenario) {
	t.Helper()
	ctx := dumpCtx(t)
	hd := &tester{t: t, st: dst}
	ga, _ := plugins.GroupsOf(src)
	gb, _ := plugins.GroupsOf(dst)

	// Acks move the counters alike on both: a pending message acked, and
	// a group ack that passes mentions.
	for i, st := range []DumpStore{src, dst} {
		h := &tester{t: t, st: st}
		p, _ := h.pending(sc.pendingUser, 1)
		if len(p) == 0 {
			t.Fatalf("store %d: nothing pending for %s", i, sc.pendingUser)
		}
		h.write(&plugins.WriteBatch{Acks: []plugins.Ack{{User: sc.pendingUser, MsgIDs: []string{p[0].ID}}},
			GroupAcks: []plugins.GroupAck{sc.groupAck}})
	}
	ua, ea := ga.UserGroups(ctx, sc.groupAck.User)
	ub, eb := gb.UserGroups(ctx, sc.groupAck.User)
	same(t, "UserGroups("+sc.groupAck.User+") after a group ack", ua, ea, ub, eb)
	pa, ea := src.PendingCount(ctx, sc.pendingUser)
	pb, eb := dst.PendingCount(ctx, sc.pendingUser)
	same(t, "PendingCount("+sc.pendingUser+") after an ack", pa, ea, pb, eb)

	// A retry of an old cid, direct and group: a Duplicate with the
	// first message.
	orig, err := src.LookupCIDs(ctx, []plugins.CIDKey{sc.dmCID, sc.groupCID})
	if err != nil {
		t.Fatalf("LookupCIDs: %v", err)
	}
	res := hd.write(&plugins.WriteBatch{
		Messages:      []plugins.NewMessage{nm(sc.dmCID.From, "carol", "a retry", sc.dmCID.CID)},
		GroupMessages: []plugins.NewGroupMessage{{Group: sc.groupCIDGroup, From: sc.groupCID.From, Body: "a retry", CID: sc.groupCID.CID}},
	})
	for i := range res {
		clearSeqs(reflect.ValueOf(&res[i]))
		clearSeqs(reflect.ValueOf(&orig[i]))
		if !res[i].Duplicate || res[i].Message != orig[i].Message || res[i].Status != orig[i].Status ||
			!reflect.DeepEqual(res[i].Group, orig[i].Group) {
			t.Errorf("retry %d on the imported store = %+v, want a Duplicate of %+v", i, res[i], orig[i])
		}
	}

	// Deleted names stay taken.
	for _, u := range []string{"gina", "hank"} {
		if err := dst.CreateUser(ctx, u, "h"); !errors.Is(err, plugins.ErrUserExists) {
			t.Errorf("CreateUser(%q) on the imported store = %v, want ErrUserExists", u, err)
		}
	}

	// New messages: new ids, timestamps no earlier, last in History.
	imported := make(map[string]bool)
	var lastTS, maxGroup int64
	err = dst.Export(ctx, func(r *storagedump.Record) error {
		switch {
		case r.Message != nil:
			imported[r.Message.ID] = true
			lastTS = max(lastTS, r.Message.TS)
		case r.Group != nil:
			maxGroup = max(maxGroup, r.Group.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	fresh := hd.sendOK(nm("alice", "bob", "after the import", "new-1"), nm("bob", "alice", "me too", ""))
	for _, m := range fresh {
		if imported[m.ID] {
			t.Errorf("new message id %q was an imported message's", m.ID)
		}
		if m.TS < lastTS {
			t.Errorf("new message at %d, before the last imported one (%d)", m.TS, lastTS)
		}
	}
	if hist := hd.history("alice", "bob"); len(hist) < 2 || hist[len(hist)-1] != fresh[1] || hist[len(hist)-2] != fresh[0] {
		t.Errorf("History(alice, bob) on the imported store does not end with the new messages %v: %v", ids(fresh), ids(hist))
	}

	// New groups get new ids; a new group message follows the log.
	ib, err := gb.CreateGroup(ctx, "erin", "new", plugins.PolicyOpen, plugins.HistoryJoined, ts0+1e6, plugins.GroupLimits{})
	if err != nil {
		t.Fatalf("CreateGroup on the imported store: %v", err)
	}
	if ib.ID <= maxGroup || ib.LastSeq != 1 {
		t.Errorf("new group on the imported store: %+v; the largest imported id is %d", ib, maxGroup)
	}
	before, err := gb.Group(ctx, sc.groupCIDGroup)
	if err != nil {
		t.Fatal(err)
	}
	ge := (&groupsTester{tester: hd, g: gb}).sendGroupOK(plugins.NewGroupMessage{Group: sc.groupCIDGroup, From: "alice", Body: "after", CID: "new-g"})
	if ge[0].Seq != before.LastSeq+1 || imported[ge[0].MsgID] {
		t.Errorf("new group entry %+v, want seq %d and a new id", ge[0], before.LastSeq+1)
	}

	// Tokens work: a touch shows, a revoke removes.
	tk, _ := plugins.TokensOf(dst)
	id := sc.tokens[0]
	if err := tk.TouchTokens(ctx, []plugins.TokenUse{{ID: id, TS: ts0 + 1e7}}); err != nil {
		t.Fatalf("TouchTokens: %v", err)
	}
	if tok, err := tk.Token(ctx, id); err != nil || tok.LastUsed != ts0+1e7 {
		t.Errorf("Token(%s) after a touch = %+v, %v", id, tok, err)
	}
	if n, err := tk.RevokeTokens(ctx, "alice", []string{id}); err != nil || n != 1 {
		t.Errorf("RevokeTokens = %d, %v; want 1", n, err)
	}
}

// clearSeqs zeroes, in place, the Seq of every protocol.Message that v (a
// pointer) reaches. A message's seq is derived data: a dump does not
// carry it, a store that numbers messages numbers them anew on import,
// and one that does not leaves it zero; so reads of two stores are
// compared without it. (A store that numbers messages checks its own
// seqs after an import.)
func clearSeqs(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			clearSeqs(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[protocol.Message]() {
			if v.CanSet() {
				v.FieldByName("Seq").SetInt(0)
			}
			return
		}
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				clearSeqs(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			clearSeqs(v.Index(i))
		}
	}
}
