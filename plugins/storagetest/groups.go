package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
)

// groupsTester adds the Groups of the storage under test to a tester.
type groupsTester struct {
	*tester
	g plugins.Groups
	// ts is the clock of the operations: each op takes the next ms.
	ts int64
}

// newGroupsTester opens a storage with users, skipping the test when the
// storage has no Groups.
func newGroupsTester(t *testing.T, open func(*testing.T) plugins.Storage, users ...string) *groupsTester {
	t.Helper()
	h := newTester(t, open, users...)
	g, ok := plugins.GroupsOf(h.st)
	if !ok {
		t.Skip("the storage has no plugins.Groups")
	}
	return &groupsTester{tester: h, g: g, ts: ts0}
}

// tick returns the next operation timestamp.
func (h *groupsTester) tick() int64 {
	h.ts++
	return h.ts
}

// create makes a group that must be created.
func (h *groupsTester) create(owner, name string, policy plugins.GroupPolicy, history plugins.GroupHistory) plugins.GroupInfo {
	h.t.Helper()
	info, err := h.g.CreateGroup(h.ctx(), owner, name, policy, history, h.tick(), plugins.GroupLimits{})
	if err != nil {
		h.t.Fatalf("CreateGroup(%q, %q): %v", owner, name, err)
	}
	return info
}

// op applies op (with the next timestamp), which must succeed.
func (h *groupsTester) op(op plugins.GroupOp) plugins.GroupOpResult {
	h.t.Helper()
	if op.TS == 0 {
		op.TS = h.tick()
	}
	r, err := h.g.GroupOp(h.ctx(), op)
	if err != nil {
		h.t.Fatalf("GroupOp(%+v): %v", op, err)
	}
	return r
}

// entryOp applies op, which must append an entry, and returns it.
func (h *groupsTester) entryOp(op plugins.GroupOp) plugins.GroupEntry {
	h.t.Helper()
	r := h.op(op)
	if r.Entry == nil || r.Requested {
		h.t.Fatalf("GroupOp(%+v) = %+v, want an entry", op, r)
	}
	return *r.Entry
}

// opErr applies op, which must fail with want.
func (h *groupsTester) opErr(op plugins.GroupOp, want error) {
	h.t.Helper()
	if op.TS == 0 {
		op.TS = h.tick()
	}
	r, err := h.g.GroupOp(h.ctx(), op)
	if !errors.Is(err, want) {
		h.t.Errorf("GroupOp(%+v) = %+v, %v; want %v", op, r, err, want)
	}
}

// join makes users join the open or approval group id (approved by
// approver when it is an approval group).
func (h *groupsTester) join(id int64, approver string, users ...string) {
	h.t.Helper()
	for _, u := range users {
		r := h.op(plugins.GroupOp{Kind: plugins.OpJoin, Group: id, Actor: u})
		if r.Requested {
			h.entryOp(plugins.GroupOp{Kind: plugins.OpApprove, Group: id, Actor: approver, Target: u})
		}
	}
}

func (h *groupsTester) info(id int64) plugins.GroupInfo {
	h.t.Helper()
	info, err := h.g.Group(h.ctx(), id)
	if err != nil {
		h.t.Fatalf("Group(%d): %v", id, err)
	}
	return info
}

// gm is a group message.
func gm(group int64, from, body, cid string, mentions ...string) plugins.NewGroupMessage {
	return plugins.NewGroupMessage{Group: group, From: from, Body: body, CID: cid, Mentions: mentions}
}

// sendGroup writes group messages in one batch and returns their results.
func (h *groupsTester) sendGroup(msgs ...plugins.NewGroupMessage) []plugins.AppendResult {
	h.t.Helper()
	return h.write(&plugins.WriteBatch{GroupMessages: msgs})
}

// sendGroupOK writes group messages in one batch; each must be stored.
func (h *groupsTester) sendGroupOK(msgs ...plugins.NewGroupMessage) []plugins.GroupEntry {
	h.t.Helper()
	out := make([]plugins.GroupEntry, len(msgs))
	for i, r := range h.sendGroup(msgs...) {
		if r.Err != nil || r.Duplicate || r.Group == nil {
			h.t.Fatalf("Write: group message %d (%+v) not stored: %+v", i, msgs[i], r)
		}
		out[i] = *r.Group
	}
	return out
}

// ackGroup moves user's cursor of group id to seq.
func (h *groupsTester) ackGroup(user string, id, seq int64) {
	h.t.Helper()
	h.write(&plugins.WriteBatch{GroupAcks: []plugins.GroupAck{{User: user, Group: id, Seq: seq}}})
}

// log returns one page of Log.
func (h *groupsTester) log(id int64, user string, after, before int64, limit int) ([]plugins.GroupEntry, bool) {
	h.t.Helper()
	es, more, err := h.g.Log(h.ctx(), id, user, after, before, limit)
	if err != nil {
		h.t.Fatalf("Log(%d, %q, after %d, before %d, %d): %v", id, user, after, before, limit, err)
	}
	return es, more
}

// logAll returns every entry of group id user may see.
func (h *groupsTester) logAll(id int64, user string) []plugins.GroupEntry {
	h.t.Helper()
	es, more := h.log(id, user, 0, 0, 100000)
	if more {
		h.t.Fatalf("Log(%d, %q) has more than 100000 entries", id, user)
	}
	return es
}

// seqs lists the seqs of entries.
func seqs(es []plugins.GroupEntry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// span is the seqs from..to.
func span(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// userGroup returns user's listing of group id, and whether it is there.
func (h *groupsTester) userGroup(user string, id int64) (plugins.UserGroup, bool) {
	h.t.Helper()
	gs, err := h.g.UserGroups(h.ctx(), user)
	if err != nil {
		h.t.Fatalf("UserGroups(%q): %v", user, err)
	}
	for _, g := range gs {
		if g.ID == id {
			return g, true
		}
	}
	return plugins.UserGroup{}, false
}

// cursor checks user's ReadSeq, Unread and Mentions of group id.
func (h *groupsTester) cursor(user string, id, readSeq, unread, mentions int64) {
	h.t.Helper()
	g, ok := h.userGroup(user, id)
	if !ok {
		h.t.Errorf("UserGroups(%q) does not list group %d", user, id)
		return
	}
	if g.ReadSeq != readSeq || g.Unread != unread || g.Mentions != mentions {
		h.t.Errorf("UserGroups(%q), group %d: read_seq %d, unread %d, mentions %d; want %d, %d, %d",
			user, id, g.ReadSeq, g.Unread, g.Mentions, readSeq, unread, mentions)
	}
}

// members lists every member of group id.
func (h *groupsTester) members(id int64) []plugins.Member {
	h.t.Helper()
	ms, more, err := h.g.Members(h.ctx(), id, "", 100000)
	if err != nil || more {
		h.t.Fatalf("Members(%d) = %d members, more %v, %v", id, len(ms), more, err)
	}
	return ms
}

// member returns user's Member of group id, and whether they are one.
func (h *groupsTester) member(id int64, user string) (plugins.Member, bool) {
	h.t.Helper()
	for _, m := range h.members(id) {
		if m.User == user {
			return m, true
		}
	}
	return plugins.Member{}, false
}

// checkEntry compares an entry with want, whose TS and MsgID are not
// compared when zero.
func checkEntry(t *testing.T, what string, got, want plugins.GroupEntry) {
	t.Helper()
	if want.TS == 0 {
		want.TS = got.TS
	}
	if want.MsgID == "" {
		want.MsgID = got.MsgID
	}
	if len(got.Mentions) == 0 && len(want.Mentions) == 0 {
		got.Mentions, want.Mentions = nil, nil // nil and empty alike
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
}

// checkLog checks that the entries have the seqs want, in order, with
// timestamps that never decrease.
func checkLog(t *testing.T, what string, es []plugins.GroupEntry, want []int64) {
	t.Helper()
	if got := seqs(es); !slices.Equal(got, want) {
		t.Errorf("%s: seqs %v, want %v", what, got, want)
	}
	for i := 1; i < len(es); i++ {
		if es[i].TS < es[i-1].TS {
			t.Errorf("%s: ts decreases from %d (seq %d) to %d (seq %d)", what, es[i-1].TS, es[i-1].Seq, es[i].TS, es[i].Seq)
		}
	}
}

func runGroups(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("create", func(t *testing.T) { runGroupCreate(t, open) })
	t.Run("joining", func(t *testing.T) { runGroupJoining(t, open) })
	t.Run("rights", func(t *testing.T) { runGroupRights(t, open) })
	t.Run("limits", func(t *testing.T) { runGroupLimits(t, open) })
	t.Run("messages", func(t *testing.T) { runGroupMessages(t, open) })
	t.Run("seq and order", func(t *testing.T) { runGroupOrder(t, open) })
	t.Run("visibility", func(t *testing.T) { runGroupVisibility(t, open) })
	t.Run("paging", func(t *testing.T) { runGroupPaging(t, open) })
	t.Run("cursors", func(t *testing.T) { runGroupCursors(t, open) })
	t.Run("cid", func(t *testing.T) { runGroupCID(t, open) })
	t.Run("batch", func(t *testing.T) { runGroupBatch(t, open) })
	t.Run("deleted accounts", func(t *testing.T) { runGroupDeletedAccounts(t, open) })
}

func runGroupCreate(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newGroupsTester(t, open, "alice", "bob", "carol")
	info := h.create("alice", "Tea 🍵 club", plugins.PolicyOpen, plugins.HistoryShared)
	want := plugins.GroupInfo{ID: info.ID, Name: "Tea 🍵 club", Owner: "alice", Policy: plugins.PolicyOpen,
		History: plugins.HistoryShared, Members: 1, LastSeq: 1}
	if info != want || info.ID == 0 {
		t.Errorf("CreateGroup = %+v, want %+v with an id", info, want)
	}
	if got := h.info(info.ID); got != want {
		t.Errorf("Group(%d) = %+v, want %+v", info.ID, got, want)
	}
	es := h.logAll(info.ID, "alice")
	if len(es) != 1 {
		t.Fatalf("Log = %+v, want the created entry", es)
	}
	checkEntry(t, "created entry", es[0], plugins.GroupEntry{Group: info.ID, Seq: 1, Kind: plugins.EntryCreated, TS: h.ts, Actor: "alice", Name: "Tea 🍵 club"})
	if ms := h.members(info.ID); !slices.Equal(ms, []plugins.Member{{User: "alice", Role: plugins.RoleOwner, JoinSeq: 1}}) {
		t.Errorf("Members = %+v, want alice, the owner", ms)
	}
	ug, ok := h.userGroup("alice", info.ID)
	wantUG := plugins.UserGroup{GroupInfo: want, Role: plugins.RoleOwner, JoinSeq: 1, ReadSeq: 0, Unread: 1}
	if !ok || ug != wantUG {
		t.Errorf("UserGroups(alice) lists %+v (%v), want %+v", ug, ok, wantUG)
	}

	// Defaults, and another id.
	other, err := h.g.CreateGroup(h.ctx(), "bob", "defaults", "", "", h.tick(), plugins.GroupLimits{})
	if err != nil || other.ID == info.ID || other.Policy != plugins.PolicyApproval || other.History != plugins.HistoryJoined {
		t.Errorf("CreateGroup with no policy and history = %+v, %v; want a new id, approval, joined", other, err)
	}
	if gs, err := h.g.UserGroups(h.ctx(), "bob"); err != nil || len(gs) != 1 || gs[0].ID != other.ID {
		t.Errorf("UserGroups(bob) = %+v, %v; want only %d", gs, err, other.ID)
	}
	if gs, err := h.g.UserGroups(h.ctx(), "carol"); err != nil || len(gs) != 0 {
		t.Errorf("UserGroups(carol) = %+v, %v; want none", gs, err)
	}
	if gs, err := h.g.UserGroups(h.ctx(), "ghost"); err != nil || len(gs) != 0 {
		t.Errorf("UserGroups(ghost) = %+v, %v; want none", gs, err)
	}

	// Refusals.
	h.deleteUser("carol")
	for _, owner := range []string{"ghost", "carol"} {
		if info, err := h.g.CreateGroup(h.ctx(), owner, "x", "", "", h.tick(), plugins.GroupLimits{}); !errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("CreateGroup by %q = %+v, %v; want ErrUnknownUser", owner, info, err)
		}
	}
	for _, id := range []int64{other.ID + 1000, 0, -1} {
		if info, err := h.g.Group(h.ctx(), id); !errors.Is(err, plugins.ErrNoGroup) {
			t.Errorf("Group(%d) = %+v, %v; want ErrNoGroup", id, info, err)
		}
		if _, _, err := h.g.Members(h.ctx(), id, "", 10); !errors.Is(err, plugins.ErrNoGroup) {
			t.Errorf("Members(%d) = %v, want ErrNoGroup", id, err)
		}
		if _, err := h.g.JoinRequests(h.ctx(), id); !errors.Is(err, plugins.ErrNoGroup) {
			t.Errorf("JoinRequests(%d) = %v, want ErrNoGroup", id, err)
		}
		if _, _, err := h.g.Log(h.ctx(), id, "alice", 0, 0, 10); !errors.Is(err, plugins.ErrNoGroup) {
			t.Errorf("Log(%d) = %v, want ErrNoGroup", id, err)
		}
		h.opErr(plugins.GroupOp{Kind: plugins.OpJoin, Group: id, Actor: "bob"}, plugins.ErrNoGroup)
	}
}

func runGroupJoining(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("open", func(t *testing.T) {
		h := newGroupsTester(t, open, "alice", "bob", "carol")
		g := h.create("alice", "open", plugins.PolicyOpen, plugins.HistoryJoined)
		e := h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "bob"})
		checkEntry(t, "join", e, plugins.GroupEntry{Group: g.ID, Seq: 2, Kind: plugins.EntryJoined, TS: h.ts, Actor: "bob", Target: "bob"})
		h.opErr(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "bob"}, plugins.ErrAlreadyMember)
		h.opErr(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "alice"}, plugins.ErrAlreadyMember)
		h.opErr(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "ghost"}, plugins.ErrUnknownUser)
		if m, ok := h.member(g.ID, "bob"); !ok || m != (plugins.Member{User: "bob", Role: plugins.RoleMember, JoinSeq: 2}) {
			t.Errorf("Member bob = %+v, %v", m, ok)
		}
		if info := h.info(g.ID); info.Members != 2 || info.LastSeq != 2 {
			t.Errorf("Group = %+v, want 2 members, last seq 2", info)
		}
		if rs, err := h.g.JoinRequests(h.ctx(), g.ID); err != nil || len(rs) != 0 {
			t.Errorf("JoinRequests = %+v, %v; want none", rs, err)
		}
	})

	t.Run("approval", func(t *testing.T) {
		h := newGroupsTester(t, open, "alice", "bob", "carol", "dave", "erin")
		g := h.create("alice", "approval", plugins.PolicyApproval, plugins.HistoryJoined)
		for _, u := range []string{"bob", "carol", "dave"} {
			if r := h.op(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: u}); !r.Requested || r.Entry != nil {
				t.Fatalf("join of %s = %+v, want Requested and no entry", u, r)
			}
		}
		bobTS := ts0 + 2
		// A repeated request keeps the first.
		if r := h.op(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "bob"}); !r.Requested {
			t.Errorf("repeated join = %+v, want Requested", r)
		}
		want := []plugins.JoinRequest{{User: "bob", TS: bobTS}, {User: "carol", TS: bobTS + 1}, {User: "dave", TS: bobTS + 2}}
		if rs, err := h.g.JoinRequests(h.ctx(), g.ID); err != nil || !slices.Equal(rs, want) {
			t.Errorf("JoinRequests = %+v, %v; want %+v", rs, err, want)
		}
		if info := h.info(g.ID); info.LastSeq != 1 || info.Members != 1 {
			t.Errorf("Group after requests = %+v, want no new entries or members", info)
		}
		// Only admins answer.
		h.opErr(plugins.GroupOp{Kind: plugins.OpApprove, Group: g.ID, Actor: "erin", Target: "bob"}, plugins.ErrNotMember)
		e := h.entryOp(plugins.GroupOp{Kind: plugins.OpApprove, Group: g.ID, Actor: "alice", Target: "bob"})
		checkEntry(t, "approve", e, plugins.GroupEntry{Group: g.ID, Seq: 2, Kind: plugins.EntryJoined, TS: h.ts, Actor: "alice", Target: "bob"})
		h.opErr(plugins.GroupOp{Kind: plugins.OpApprove, Group: g.ID, Actor: "bob", Target: "carol"}, plugins.ErrNotAllowed)
		h.opErr(plugins.GroupOp{Kind: plugins.OpReject, Group: g.ID, Actor: "bob", Target: "carol"}, plugins.ErrNotAllowed)
		if r := h.op(plugins.GroupOp{Kind: plugins.OpReject, Group: g.ID, Actor: "alice", Target: "carol"}); r.Entry != nil || r.Requested {
			t.Errorf("reject = %+v, want no entry", r)
		}
		for _, kind := range []plugins.GroupOpKind{plugins.OpApprove, plugins.OpReject} {
			for _, u := range []string{"bob", "carol", "erin", "ghost"} {
				h.opErr(plugins.GroupOp{Kind: kind, Group: g.ID, Actor: "alice", Target: u}, plugins.ErrNoRequest)
			}
		}
		// An invitation adds dave and drops his request.
		e = h.entryOp(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "alice", Target: "dave"})
		checkEntry(t, "invite", e, plugins.GroupEntry{Group: g.ID, Seq: 3, Kind: plugins.EntryJoined, TS: h.ts, Actor: "alice", Target: "dave"})
		if rs, err := h.g.JoinRequests(h.ctx(), g.ID); err != nil || len(rs) != 0 {
			t.Errorf("JoinRequests after the answers = %+v, %v; want none", rs, err)
		}
		if info := h.info(g.ID); info.LastSeq != 3 || info.Members != 3 {
			t.Errorf("Group = %+v, want 3 members, last seq 3", info)
		}
		// A request made before the group opened up is dropped by an
		// open join.
		h.op(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "erin"})
		h.entryOp(plugins.GroupOp{Kind: plugins.OpSettings, Group: g.ID, Actor: "alice", Policy: plugins.PolicyOpen})
		h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "erin"})
		if rs, err := h.g.JoinRequests(h.ctx(), g.ID); err != nil || len(rs) != 0 {
			t.Errorf("JoinRequests after erin joined = %+v, %v; want none", rs, err)
		}
	})

	t.Run("invite", func(t *testing.T) {
		h := newGroupsTester(t, open, "alice", "bob", "carol")
		g := h.create("alice", "invite", plugins.PolicyInvite, plugins.HistoryJoined)
		h.opErr(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "bob"}, plugins.ErrNotAllowed)
		h.opErr(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "bob", Target: "carol"}, plugins.ErrNotMember)
		h.opErr(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "alice", Target: "ghost"}, plugins.ErrUnknownUser)
		h.opErr(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "alice", Target: "alice"}, plugins.ErrAlreadyMember)
		h.entryOp(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "alice", Target: "bob"})
		h.opErr(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "alice", Target: "bob"}, plugins.ErrAlreadyMember)
		// A plain member may not invite.
		h.opErr(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "bob", Target: "carol"}, plugins.ErrNotAllowed)
		h.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: g.ID, Actor: "alice", Target: "bob", Role: plugins.RoleAdmin})
		h.entryOp(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "bob", Target: "carol"})
		if got := h.members(g.ID); len(got) != 3 {
			t.Errorf("Members = %+v, want 3", got)
		}
	})

	t.Run("members paging", func(t *testing.T) {
		users := []string{"owner"}
		for i := range 12 {
			users = append(users, fmt.Sprintf("m%02d", i))
		}
		h := newGroupsTester(t, open, users...)
		g := h.create("owner", "big", plugins.PolicyOpen, plugins.HistoryJoined)
		h.join(g.ID, "owner", users[1:]...)
		h.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: g.ID, Actor: "owner", Target: "m03", Role: plugins.RoleAdmin})
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: g.ID, Actor: "owner", Target: "m04", Until: ts0 + 1e9})
		h.entryOp(plugins.GroupOp{Kind: plugins.OpLeave, Group: g.ID, Actor: "m05"})
		var all []plugins.Member
		after := ""
		for page := 0; ; page++ {
			ms, more, err := h.g.Members(h.ctx(), g.ID, after, 5)
			if err != nil || len(ms) > 5 || page > 5 {
				t.Fatalf("Members page %d = %+v, %v", page, ms, err)
			}
			all = append(all, ms...)
			if !more {
				break
			}
			after = ms[len(ms)-1].User
		}
		var names []string
		for _, m := range all {
			names = append(names, m.User)
			switch m.User {
			case "owner":
				if m.Role != plugins.RoleOwner || m.JoinSeq != 1 {
					t.Errorf("member %+v, want the owner since 1", m)
				}
			case "m03":
				if m.Role != plugins.RoleAdmin {
					t.Errorf("member %+v, want an admin", m)
				}
			case "m04":
				if m.Role != plugins.RoleMember || m.MutedUntil != ts0+1e9 {
					t.Errorf("member %+v, want muted", m)
				}
			default:
				if m.Role != plugins.RoleMember || m.MutedUntil != 0 {
					t.Errorf("member %+v, want a plain member", m)
				}
			}
		}
		want := slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == "m05" })
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("Members by name = %v, want %v", names, want)
		}
		if ms, more, err := h.g.Members(h.ctx(), g.ID, "m10", 5); err != nil || more || len(ms) != 2 || ms[0].User != "m11" || ms[1].User != "owner" {
			t.Errorf("Members after m10 = %+v, %v, %v; want m11, owner", ms, more, err)
		}
		if info := h.info(g.ID); info.Members != 12 {
			t.Errorf("Group.Members = %d, want 12", info.Members)
		}
	})
}

// rightsGroup makes a group of owner o, admins a1 and a2, members m1, m2
// and m3, and the outsider x.
func rightsGroup(t *testing.T, open func(*testing.T) plugins.Storage) (*groupsTester, int64) {
	h := newGroupsTester(t, open, "o", "a1", "a2", "m1", "m2", "m3", "x")
	g := h.create("o", "rights", plugins.PolicyOpen, plugins.HistoryJoined)
	h.join(g.ID, "o", "a1", "a2", "m1", "m2", "m3")
	for _, a := range []string{"a1", "a2"} {
		h.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: g.ID, Actor: "o", Target: a, Role: plugins.RoleAdmin})
	}
	return h, g.ID
}

func runGroupRights(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("refused", func(t *testing.T) {
		h, id := rightsGroup(t, open)
		before := h.info(id)
		type op = plugins.GroupOp
		tests := []struct {
			name string
			op   op
			want error
		}{
			{"outsider invites", op{Kind: plugins.OpInvite, Actor: "x", Target: "m1"}, plugins.ErrNotMember},
			{"member invites", op{Kind: plugins.OpInvite, Actor: "m1", Target: "x"}, plugins.ErrNotAllowed},
			{"outsider leaves", op{Kind: plugins.OpLeave, Actor: "x"}, plugins.ErrNotMember},
			{"owner leaves", op{Kind: plugins.OpLeave, Actor: "o"}, plugins.ErrNotAllowed},
			{"member kicks", op{Kind: plugins.OpKick, Actor: "m1", Target: "m2"}, plugins.ErrNotAllowed},
			{"admin kicks admin", op{Kind: plugins.OpKick, Actor: "a1", Target: "a2"}, plugins.ErrNotAllowed},
			{"admin kicks owner", op{Kind: plugins.OpKick, Actor: "a1", Target: "o"}, plugins.ErrNotAllowed},
			{"owner kicks self", op{Kind: plugins.OpKick, Actor: "o", Target: "o"}, plugins.ErrNotAllowed},
			{"admin kicks self", op{Kind: plugins.OpKick, Actor: "a1", Target: "a1"}, plugins.ErrNotAllowed},
			{"kick of an outsider", op{Kind: plugins.OpKick, Actor: "o", Target: "x"}, plugins.ErrNotMember},
			{"admin sets a role", op{Kind: plugins.OpRole, Actor: "a1", Target: "m1", Role: plugins.RoleAdmin}, plugins.ErrNotAllowed},
			{"role owner", op{Kind: plugins.OpRole, Actor: "o", Target: "m1", Role: plugins.RoleOwner}, plugins.ErrNotAllowed},
			{"role of the owner", op{Kind: plugins.OpRole, Actor: "o", Target: "o", Role: plugins.RoleMember}, plugins.ErrNotAllowed},
			{"role of an outsider", op{Kind: plugins.OpRole, Actor: "o", Target: "x", Role: plugins.RoleAdmin}, plugins.ErrNotMember},
			{"admin transfers", op{Kind: plugins.OpTransfer, Actor: "a1", Target: "m1"}, plugins.ErrNotAllowed},
			{"transfer to self", op{Kind: plugins.OpTransfer, Actor: "o", Target: "o"}, plugins.ErrNotAllowed},
			{"transfer to an outsider", op{Kind: plugins.OpTransfer, Actor: "o", Target: "x"}, plugins.ErrNotMember},
			{"member renames", op{Kind: plugins.OpRename, Actor: "m1", Name: "mine"}, plugins.ErrNotAllowed},
			{"member mutes", op{Kind: plugins.OpMute, Actor: "m1", Target: "m2", Until: ts0 + 1e9}, plugins.ErrNotAllowed},
			{"admin mutes admin", op{Kind: plugins.OpMute, Actor: "a1", Target: "a2", Until: ts0 + 1e9}, plugins.ErrNotAllowed},
			{"admin mutes owner", op{Kind: plugins.OpMute, Actor: "a1", Target: "o", Until: ts0 + 1e9}, plugins.ErrNotAllowed},
			{"mute of an outsider", op{Kind: plugins.OpMute, Actor: "o", Target: "x", Until: ts0 + 1e9}, plugins.ErrNotMember},
			{"member mutes all", op{Kind: plugins.OpMuteAll, Actor: "m1", On: true}, plugins.ErrNotAllowed},
			{"admin changes settings", op{Kind: plugins.OpSettings, Actor: "a1", Policy: plugins.PolicyInvite}, plugins.ErrNotAllowed},
			{"admin dissolves", op{Kind: plugins.OpDissolve, Actor: "a1"}, plugins.ErrNotAllowed},
			{"member dissolves", op{Kind: plugins.OpDissolve, Actor: "m1"}, plugins.ErrNotAllowed},
			{"outsider dissolves", op{Kind: plugins.OpDissolve, Actor: "x"}, plugins.ErrNotMember},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.op.Group = id
				h.t = t
				h.opErr(tt.op, tt.want)
			})
		}
		h.t = t
		if after := h.info(id); after != before {
			t.Errorf("Group after refused operations = %+v, want %+v (no entry appended)", after, before)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		h, id := rightsGroup(t, open)
		next := h.info(id).LastSeq + 1
		type op = plugins.GroupOp
		type e = plugins.GroupEntry
		tests := []struct {
			name  string
			op    op
			want  e
			check func(t *testing.T)
		}{
			{"admin kicks member", op{Kind: plugins.OpKick, Actor: "a1", Target: "m3"},
				e{Kind: plugins.EntryKicked, Actor: "a1", Target: "m3"},
				func(t *testing.T) {
					if _, ok := h.member(id, "m3"); ok {
						t.Error("m3 is still a member")
					}
				}},
			{"owner makes an admin", op{Kind: plugins.OpRole, Actor: "o", Target: "m1", Role: plugins.RoleAdmin},
				e{Kind: plugins.EntryRole, Actor: "o", Target: "m1", Role: plugins.RoleAdmin},
				func(t *testing.T) {
					if m, _ := h.member(id, "m1"); m.Role != plugins.RoleAdmin {
						t.Errorf("m1 = %+v, want an admin", m)
					}
				}},
			{"a role again", op{Kind: plugins.OpRole, Actor: "o", Target: "m1", Role: plugins.RoleAdmin},
				e{Kind: plugins.EntryRole, Actor: "o", Target: "m1", Role: plugins.RoleAdmin}, nil},
			{"owner demotes", op{Kind: plugins.OpRole, Actor: "o", Target: "m1", Role: plugins.RoleMember},
				e{Kind: plugins.EntryRole, Actor: "o", Target: "m1", Role: plugins.RoleMember}, nil},
			{"owner kicks admin", op{Kind: plugins.OpKick, Actor: "o", Target: "a2"},
				e{Kind: plugins.EntryKicked, Actor: "o", Target: "a2"}, nil},
			{"admin renames", op{Kind: plugins.OpRename, Actor: "a1", Name: "new name"},
				e{Kind: plugins.EntryRenamed, Actor: "a1", Name: "new name"},
				func(t *testing.T) {
					if got := h.info(id).Name; got != "new name" {
						t.Errorf("name %q, want new name", got)
					}
				}},
			{"admin mutes member", op{Kind: plugins.OpMute, Actor: "a1", Target: "m2", Until: ts0 + 5e9},
				e{Kind: plugins.EntryMuted, Actor: "a1", Target: "m2", Until: ts0 + 5e9},
				func(t *testing.T) {
					if m, _ := h.member(id, "m2"); m.MutedUntil != ts0+5e9 {
						t.Errorf("m2 = %+v, want muted", m)
					}
				}},
			{"admin unmutes", op{Kind: plugins.OpMute, Actor: "a1", Target: "m2"},
				e{Kind: plugins.EntryMuted, Actor: "a1", Target: "m2"},
				func(t *testing.T) {
					if m, _ := h.member(id, "m2"); m.MutedUntil != 0 {
						t.Errorf("m2 = %+v, want not muted", m)
					}
				}},
			{"owner mutes admin", op{Kind: plugins.OpMute, Actor: "o", Target: "a1", Until: ts0 + 5e9},
				e{Kind: plugins.EntryMuted, Actor: "o", Target: "a1", Until: ts0 + 5e9}, nil},
			{"admin mutes all", op{Kind: plugins.OpMuteAll, Actor: "a1", On: true},
				e{Kind: plugins.EntryMuteAll, Actor: "a1", On: true},
				func(t *testing.T) {
					if !h.info(id).MuteAll {
						t.Error("MuteAll not set")
					}
				}},
			{"owner unmutes all", op{Kind: plugins.OpMuteAll, Actor: "o", On: false},
				e{Kind: plugins.EntryMuteAll, Actor: "o", On: false}, nil},
			{"owner changes settings", op{Kind: plugins.OpSettings, Actor: "o", Policy: plugins.PolicyInvite, History: plugins.HistoryShared},
				e{Kind: plugins.EntrySettings, Actor: "o", Policy: plugins.PolicyInvite, History: plugins.HistoryShared},
				func(t *testing.T) {
					if info := h.info(id); info.Policy != plugins.PolicyInvite || info.History != plugins.HistoryShared {
						t.Errorf("Group = %+v, want invite, shared", info)
					}
				}},
			{"settings keep what is not given", op{Kind: plugins.OpSettings, Actor: "o", History: plugins.HistoryJoined},
				e{Kind: plugins.EntrySettings, Actor: "o", Policy: plugins.PolicyInvite, History: plugins.HistoryJoined}, nil},
			{"member leaves", op{Kind: plugins.OpLeave, Actor: "m1"},
				e{Kind: plugins.EntryLeft, Target: "m1"},
				func(t *testing.T) {
					h.opErr(plugins.GroupOp{Kind: plugins.OpLeave, Group: id, Actor: "m1"}, plugins.ErrNotMember)
				}},
			{"owner transfers", op{Kind: plugins.OpTransfer, Actor: "o", Target: "m2"},
				e{Kind: plugins.EntryOwner, Actor: "o", Target: "m2"},
				func(t *testing.T) {
					if info := h.info(id); info.Owner != "m2" {
						t.Errorf("owner %q, want m2", info.Owner)
					}
					if m, _ := h.member(id, "o"); m.Role != plugins.RoleAdmin {
						t.Errorf("old owner = %+v, want an admin", m)
					}
					if m, _ := h.member(id, "m2"); m.Role != plugins.RoleOwner {
						t.Errorf("new owner = %+v, want the owner", m)
					}
					// The old owner is an admin now, and may leave.
					h.opErr(plugins.GroupOp{Kind: plugins.OpDissolve, Group: id, Actor: "o"}, plugins.ErrNotAllowed)
				}},
			{"new owner dissolves", op{Kind: plugins.OpDissolve, Actor: "m2"},
				e{Kind: plugins.EntryDissolved, Actor: "m2"},
				func(t *testing.T) {
					info := h.info(id)
					if !info.Dissolved || info.Members != 0 {
						t.Errorf("Group = %+v, want dissolved without members", info)
					}
					if ms := h.members(id); len(ms) != 0 {
						t.Errorf("Members = %+v, want none", ms)
					}
					for _, u := range []string{"m2", "o", "a1"} {
						if _, ok := h.userGroup(u, id); ok {
							t.Errorf("UserGroups(%s) lists the dissolved group", u)
						}
					}
					for _, k := range []plugins.GroupOpKind{plugins.OpLeave, plugins.OpRename, plugins.OpDissolve} {
						h.opErr(plugins.GroupOp{Kind: k, Group: id, Actor: "m2"}, plugins.ErrNoGroup)
					}
					h.opErr(plugins.GroupOp{Kind: plugins.OpJoin, Group: id, Actor: "x"}, plugins.ErrNoGroup)
					if r := h.sendGroup(gm(id, "m2", "anyone?", ""))[0]; !errors.Is(r.Err, plugins.ErrNoGroup) {
						t.Errorf("message to the dissolved group = %+v, want ErrNoGroup", r)
					}
				}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h.t = t
				tt.op.Group = id
				tt.op.TS = h.tick()
				got := h.entryOp(tt.op)
				tt.want.Group, tt.want.Seq, tt.want.TS = id, next, tt.op.TS
				checkEntry(t, string(tt.op.Kind), got, tt.want)
				next++
				if info := h.info(id); info.LastSeq != got.Seq {
					t.Errorf("Group.LastSeq = %d, want %d", info.LastSeq, got.Seq)
				}
				if tt.check != nil {
					tt.check(t)
				}
			})
		}
		h.t = t
		checkLog(t, "log of the old owner", h.logAll(id, "o"), span(1, next-1))
	})
}

func runGroupLimits(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newGroupsTester(t, open, "alice", "bob", "carol", "dave")
	owned := plugins.GroupLimits{MaxOwned: 2}
	var ids []int64
	for i := range 2 {
		info, err := h.g.CreateGroup(h.ctx(), "alice", fmt.Sprint("g", i), plugins.PolicyOpen, plugins.HistoryJoined, h.tick(), owned)
		if err != nil {
			t.Fatalf("CreateGroup %d: %v", i, err)
		}
		ids = append(ids, info.ID)
	}
	if _, err := h.g.CreateGroup(h.ctx(), "alice", "g2", plugins.PolicyOpen, plugins.HistoryJoined, h.tick(), owned); !errors.Is(err, plugins.ErrGroupLimit) {
		t.Errorf("CreateGroup past MaxOwned = %v, want ErrGroupLimit", err)
	}
	// Zero is no limit; a dissolved group is no longer owned.
	if _, err := h.g.CreateGroup(h.ctx(), "alice", "g2", plugins.PolicyOpen, plugins.HistoryJoined, h.tick(), plugins.GroupLimits{}); err != nil {
		t.Errorf("CreateGroup with no limit = %v", err)
	}
	h.entryOp(plugins.GroupOp{Kind: plugins.OpDissolve, Group: ids[1], Actor: "alice"})
	ids = ids[:1]
	if _, err := h.g.CreateGroup(h.ctx(), "alice", "g3", plugins.PolicyOpen, plugins.HistoryJoined, h.tick(), plugins.GroupLimits{MaxOwned: 3}); err != nil {
		t.Errorf("CreateGroup after a dissolution = %v, want created", err)
	}
	// MaxJoined counts the groups one belongs to (owned ones too).
	if _, err := h.g.CreateGroup(h.ctx(), "alice", "g4", plugins.PolicyOpen, plugins.HistoryJoined, h.tick(), plugins.GroupLimits{MaxJoined: 3}); !errors.Is(err, plugins.ErrGroupLimit) {
		t.Errorf("CreateGroup past MaxJoined = %v, want ErrGroupLimit", err)
	}
	g := h.create("bob", "small", plugins.PolicyOpen, plugins.HistoryJoined)
	joined := plugins.GroupLimits{MaxJoined: 3}
	h.opErr(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "alice", Limits: joined}, plugins.ErrGroupLimit)
	h.opErr(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "bob", Target: "alice", Limits: joined}, plugins.ErrGroupLimit)

	// MaxMembers: join, invite and approval stop at it.
	full := plugins.GroupLimits{MaxMembers: 2}
	h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "carol", Limits: full})
	h.opErr(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "dave", Limits: full}, plugins.ErrGroupFull)
	h.opErr(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "bob", Target: "dave", Limits: full}, plugins.ErrGroupFull)
	h.entryOp(plugins.GroupOp{Kind: plugins.OpSettings, Group: g.ID, Actor: "bob", Policy: plugins.PolicyApproval})
	h.op(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "dave"}) // a request
	h.opErr(plugins.GroupOp{Kind: plugins.OpApprove, Group: g.ID, Actor: "bob", Target: "dave", Limits: full}, plugins.ErrGroupFull)
	if rs, err := h.g.JoinRequests(h.ctx(), g.ID); err != nil || len(rs) != 1 {
		t.Errorf("JoinRequests after a refused approval = %+v, %v; want dave's, still pending", rs, err)
	}
	h.entryOp(plugins.GroupOp{Kind: plugins.OpApprove, Group: g.ID, Actor: "bob", Target: "dave", Limits: plugins.GroupLimits{MaxMembers: 3}})
	if info := h.info(g.ID); info.Members != 3 {
		t.Errorf("Group.Members = %d, want 3", info.Members)
	}

	// MaxOwned of the new owner stops a transfer.
	h.entryOp(plugins.GroupOp{Kind: plugins.OpTransfer, Group: g.ID, Actor: "bob", Target: "carol"}) // no limit
	h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: ids[0], Actor: "carol"})
	h.opErr(plugins.GroupOp{Kind: plugins.OpTransfer, Group: ids[0], Actor: "alice", Target: "carol", Limits: plugins.GroupLimits{MaxOwned: 1}}, plugins.ErrGroupLimit)

	// MaxMentions stops a message.
	res := h.write(&plugins.WriteBatch{
		GroupMessages: []plugins.NewGroupMessage{gm(g.ID, "dave", "hi all three", "", "bob", "carol", "alice"), gm(g.ID, "dave", "hi two", "", "bob", "carol")},
		GroupLimits:   plugins.GroupLimits{MaxMentions: 2},
	})
	if !errors.Is(res[0].Err, plugins.ErrNotAllowed) || res[0].Group != nil || res[1].Err != nil || res[1].Group == nil {
		t.Errorf("messages with 3 and 2 mentions, at most 2 = %+v, want ErrNotAllowed, then stored", res)
	}
}

func runGroupMessages(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newGroupsTester(t, open, "alice", "bob", "carol", "dave", "erin")
	g := h.create("alice", "chat", plugins.PolicyOpen, plugins.HistoryJoined)
	h.join(g.ID, "alice", "bob", "carol", "dave")
	h.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: g.ID, Actor: "alice", Target: "bob", Role: plugins.RoleAdmin})
	other := h.create("erin", "other", plugins.PolicyOpen, plugins.HistoryJoined)
	dissolved := h.create("erin", "gone", plugins.PolicyOpen, plugins.HistoryJoined)
	h.entryOp(plugins.GroupOp{Kind: plugins.OpDissolve, Group: dissolved.ID, Actor: "erin"})
	last := h.info(g.ID).LastSeq

	// Direct messages' results come first, then the group messages', in
	// order.
	res := h.write(&plugins.WriteBatch{
		Messages: []plugins.NewMessage{nm("alice", "bob", "direct", "")},
		GroupMessages: []plugins.NewGroupMessage{
			gm(g.ID, "carol", "hello 👋", "c1", "bob", "nobody"),
			gm(g.ID, "erin", "not a member", ""),
			gm(other.ID, "erin", "to the other group", ""),
			gm(g.ID+1000, "alice", "no such group", ""),
			gm(dissolved.ID, "erin", "dissolved", ""),
			gm(g.ID, "bob", "admins mention all", "", "all"),
			gm(g.ID, "carol", "members may not", "", "all"),
		},
	})
	if r := res[0]; r.Err != nil || r.Message.ID == "" || r.Group != nil {
		t.Errorf("direct result = %+v, want stored", r)
	}
	wantErrs := []error{nil, plugins.ErrNotMember, nil, plugins.ErrNoGroup, plugins.ErrNoGroup, nil, plugins.ErrNotAllowed}
	for i, want := range wantErrs {
		r := res[1+i]
		if want == nil && (r.Err != nil || r.Group == nil || r.Duplicate) || want != nil && (!errors.Is(r.Err, want) || r.Group != nil) {
			t.Errorf("group result %d = %+v, want error %v", i, r, want)
		}
		if r.Message.ID != "" {
			t.Errorf("group result %d carries a direct message: %+v", i, r)
		}
	}
	e := *res[1].Group
	if e.MsgID == "" || e.TS == 0 {
		t.Errorf("entry %+v has no msg id or ts", e)
	}
	checkEntry(t, "message", e, plugins.GroupEntry{Group: g.ID, Seq: last + 1, Kind: plugins.EntryMsg, From: "carol", Body: "hello 👋", Mentions: []string{"bob", "nobody"}, CID: "c1"})
	if res[6].Group.Seq != last+2 || res[3].Group.Seq != 2 {
		t.Errorf("seqs %d and %d, want %d and 2", res[6].Group.Seq, res[3].Group.Seq, last+2)
	}
	es, _ := h.log(g.ID, "dave", last, 0, 10)
	if len(es) != 2 {
		t.Fatalf("Log after %d = %+v, want the 2 messages", last, es)
	}
	checkEntry(t, "logged message", es[0], e)
	checkEntry(t, "logged message to all", es[1], *res[6].Group)
	if es[0].MsgID == es[1].MsgID {
		t.Errorf("two messages with msg id %q", es[0].MsgID)
	}

	t.Run("muted", func(t *testing.T) {
		h.t = t
		defer func() { h.t = t }()
		// Every entry of this group has a time of the test's choosing.
		mg := h.create("alice", "muting", plugins.PolicyOpen, plugins.HistoryJoined)
		h.join(mg.ID, "alice", "bob", "carol")
		h.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: mg.ID, Actor: "alice", Target: "bob", Role: plugins.RoleAdmin})
		at := func(from string, ts int64) plugins.NewGroupMessage {
			m := gm(mg.ID, from, "x", "")
			m.TS = ts
			return m
		}
		until := h.ts + 1000
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: mg.ID, Actor: "alice", Target: "carol", Until: until})
		// Muted until that time: a message of that time passes.
		res := h.sendGroup(at("carol", until-1), at("carol", until), at("bob", until))
		if !errors.Is(res[0].Err, plugins.ErrMuted) || res[1].Err != nil || res[2].Err != nil {
			t.Errorf("messages of carol muted until %d = %+v, want ErrMuted, then stored (and bob's)", until, res)
		}
		// The entry's time is never earlier than the log's last, which
		// is what the mute is compared with.
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: mg.ID, Actor: "alice", Target: "carol", Until: until + 10})
		if r := h.sendGroup(at("carol", until+10))[0]; r.Err != nil {
			t.Errorf("message at the end of the mute = %+v, want stored", r)
		}
		if r := h.sendGroup(at("carol", until))[0]; r.Err != nil || r.Group.TS != until+10 {
			t.Errorf("message with an earlier time = %+v, want stored at %d", r, until+10)
		}
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMuteAll, Group: mg.ID, Actor: "bob", On: true})
		res = h.sendGroup(gm(mg.ID, "carol", "member", ""), gm(mg.ID, "bob", "admin", ""), gm(mg.ID, "alice", "owner", ""))
		if !errors.Is(res[0].Err, plugins.ErrMuted) || res[1].Err != nil || res[2].Err != nil {
			t.Errorf("messages with mute_all = %+v, want ErrMuted for the member only", res)
		}
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMuteAll, Group: mg.ID, Actor: "bob", On: false})
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: mg.ID, Actor: "alice", Target: "bob", Until: 1 << 50})
		if r := h.sendGroup(gm(mg.ID, "bob", "x", ""))[0]; !errors.Is(r.Err, plugins.ErrMuted) {
			t.Errorf("message of a muted admin = %+v, want ErrMuted", r)
		}
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: mg.ID, Actor: "alice", Target: "bob"})
		h.sendGroupOK(gm(mg.ID, "bob", "unmuted", ""))
		checkLog(t, "log", h.logAll(mg.ID, "alice"), span(1, h.info(mg.ID).LastSeq))
	})

	// Whoever leaves can no longer send.
	h.entryOp(plugins.GroupOp{Kind: plugins.OpLeave, Group: g.ID, Actor: "carol"})
	if r := h.sendGroup(gm(g.ID, "carol", "gone", ""))[0]; !errors.Is(r.Err, plugins.ErrNotMember) {
		t.Errorf("message after leaving = %+v, want ErrNotMember", r)
	}
}

func runGroupOrder(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newGroupsTester(t, open, "alice", "bob", "carol")
	g1 := h.create("alice", "one", plugins.PolicyOpen, plugins.HistoryJoined)
	g2 := h.create("bob", "two", plugins.PolicyOpen, plugins.HistoryJoined)
	h.join(g1.ID, "alice", "bob", "carol")
	h.join(g2.ID, "bob", "alice")
	// Batches interleave the groups, with refused messages, duplicates
	// and operations between them; each log stays contiguous.
	for i := range 6 {
		var msgs []plugins.NewGroupMessage
		for j := range 5 {
			msgs = append(msgs,
				gm(g1.ID, "alice", fmt.Sprintf("%d/%d", i, j), fmt.Sprintf("a%d-%d", i, j)),
				gm(g2.ID, "bob", fmt.Sprintf("%d/%d", i, j), ""),
				gm(g2.ID, "carol", "not a member", ""),
				gm(g1.ID, "alice", "retry", fmt.Sprintf("a%d-%d", i, j)))
		}
		res := h.sendGroup(msgs...)
		for j, r := range res {
			switch j % 4 {
			case 2:
				if !errors.Is(r.Err, plugins.ErrNotMember) {
					t.Fatalf("batch %d result %d = %+v, want ErrNotMember", i, j, r)
				}
			case 3:
				if !r.Duplicate || r.Group == nil || r.Group.Seq != res[j-3].Group.Seq {
					t.Fatalf("batch %d result %d = %+v, want a duplicate of %+v", i, j, r, res[j-3].Group)
				}
			}
		}
		if i%2 == 0 {
			h.entryOp(plugins.GroupOp{Kind: plugins.OpRename, Group: g1.ID, Actor: "alice", Name: fmt.Sprint("one ", i)})
		}
	}
	// An operation with an earlier time still comes after, no earlier.
	h.entryOp(plugins.GroupOp{Kind: plugins.OpRename, Group: g1.ID, Actor: "alice", Name: "late", TS: ts0 - 1000})
	// So does a message with an earlier time.
	early := gm(g2.ID, "bob", "early", "")
	early.TS = ts0 - 2000
	h.sendGroupOK(early)
	for _, g := range []plugins.GroupInfo{g1, g2} {
		info := h.info(g.ID)
		es := h.logAll(g.ID, g.Owner)
		checkLog(t, "log of "+g.Name, es, span(1, info.LastSeq))
		for _, e := range es {
			if e.Group != g.ID {
				t.Errorf("entry %+v of group %d", e, g.ID)
			}
		}
	}
	if n := h.info(g1.ID).LastSeq; n != 3+30+3+1 {
		t.Errorf("group one has %d entries, want %d", n, 3+30+3+1)
	}
	if n := h.info(g2.ID).LastSeq; n != 2+30+1 {
		t.Errorf("group two has %d entries, want %d", n, 2+30+1)
	}
}

func runGroupVisibility(t *testing.T, open func(*testing.T) plugins.Storage) {
	for _, history := range []plugins.GroupHistory{plugins.HistoryJoined, plugins.HistoryShared} {
		t.Run(string(history), func(t *testing.T) {
			h := newGroupsTester(t, open, "owner", "early", "late", "kicked", "outsider")
			g := h.create("owner", "vis", plugins.PolicyOpen, history)
			id := g.ID
			h.join(id, "owner", "early")
			h.sendGroupOK(gm(id, "owner", "one", ""), gm(id, "early", "two", ""))
			h.join(id, "owner", "late", "kicked")
			lateJoin, kickedJoin := int64(5), int64(6)
			h.sendGroupOK(gm(id, "late", "three", ""))
			kick := h.entryOp(plugins.GroupOp{Kind: plugins.OpKick, Group: id, Actor: "owner", Target: "kicked"})
			h.sendGroupOK(gm(id, "owner", "after the kick", ""))
			last := h.info(id).LastSeq
			from := func(join int64) int64 {
				if history == plugins.HistoryShared {
					return 1
				}
				return join
			}
			checkLog(t, "owner", h.logAll(id, "owner"), span(1, last))
			checkLog(t, "early", h.logAll(id, "early"), span(from(2), last))
			checkLog(t, "late", h.logAll(id, "late"), span(from(lateJoin), last))
			checkLog(t, "kicked", h.logAll(id, "kicked"), span(from(kickedJoin), kick.Seq))
			if es, more := h.log(id, "kicked", kick.Seq, 0, 10); len(es) != 0 || more {
				t.Errorf("Log(kicked) after the kick = %+v, %v; want nothing", es, more)
			}
			if es, more := h.log(id, "kicked", 0, last+1, 10); more || len(es) == 0 || es[len(es)-1].Seq != kick.Seq {
				t.Errorf("Log(kicked) back from the end = %v, %v; want up to the kick", seqs(es), more)
			}
			for _, u := range []string{"outsider", "ghost"} {
				if es, _, err := h.g.Log(h.ctx(), id, u, 0, 0, 10); !errors.Is(err, plugins.ErrNotMember) {
					t.Errorf("Log(%s) = %v, %v; want ErrNotMember", u, seqs(es), err)
				}
			}

			// Joining again shows the log from the new joined entry (or
			// all of it).
			h.sendGroupOK(gm(id, "owner", "while away", ""))
			rejoin := h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: id, Actor: "kicked"})
			h.sendGroupOK(gm(id, "kicked", "back", ""))
			last = h.info(id).LastSeq
			checkLog(t, "kicked, joined again", h.logAll(id, "kicked"), span(from(rejoin.Seq), last))

			// A dissolved group's log stays readable up to the end, by
			// those who were members.
			h.entryOp(plugins.GroupOp{Kind: plugins.OpLeave, Group: id, Actor: "early"})
			left := h.info(id).LastSeq
			end := h.entryOp(plugins.GroupOp{Kind: plugins.OpDissolve, Group: id, Actor: "owner"})
			checkLog(t, "owner after the end", h.logAll(id, "owner"), span(1, end.Seq))
			checkLog(t, "late after the end", h.logAll(id, "late"), span(from(lateJoin), end.Seq))
			checkLog(t, "early after the end", h.logAll(id, "early"), span(from(2), left))
		})
	}

	t.Run("history shared later", func(t *testing.T) {
		h := newGroupsTester(t, open, "owner", "newcomer")
		g := h.create("owner", "vis", plugins.PolicyOpen, plugins.HistoryJoined)
		h.sendGroupOK(gm(g.ID, "owner", "before", ""))
		join := h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "newcomer"})
		checkLog(t, "joined history", h.logAll(g.ID, "newcomer"), []int64{join.Seq})
		set := h.entryOp(plugins.GroupOp{Kind: plugins.OpSettings, Group: g.ID, Actor: "owner", History: plugins.HistoryShared})
		checkLog(t, "shared history", h.logAll(g.ID, "newcomer"), span(1, set.Seq))
	})
}

func runGroupPaging(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newGroupsTester(t, open, "owner", "member")
	g := h.create("owner", "pages", plugins.PolicyOpen, plugins.HistoryJoined)
	var msgs []plugins.NewGroupMessage
	for i := range 11 {
		msgs = append(msgs, gm(g.ID, "owner", fmt.Sprint(i), ""))
	}
	h.sendGroupOK(msgs...) // seqs 2..12
	join := h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: "member"})
	msgs = msgs[:0]
	for i := range 12 {
		msgs = append(msgs, gm(g.ID, "member", fmt.Sprint(i), ""))
	}
	h.sendGroupOK(msgs...) // 14..25
	last := h.info(g.ID).LastSeq
	if join.Seq != 13 || last != 25 {
		t.Fatalf("join at %d, last %d; want 13 and 25", join.Seq, last)
	}
	tests := []struct {
		user          string
		after, before int64
		limit         int
		want          []int64
		more          bool
	}{
		{"owner", 0, 0, 10, span(1, 10), true},
		{"owner", 10, 0, 10, span(11, 20), true},
		{"owner", 20, 0, 10, span(21, 25), false},
		{"owner", 15, 0, 10, span(16, 25), false},
		{"owner", 24, 0, 1, []int64{25}, false},
		{"owner", 25, 0, 10, nil, false},
		{"owner", 40, 0, 10, nil, false},
		{"owner", 0, 26, 10, span(16, 25), true},
		{"owner", 0, 100, 10, span(16, 25), true},
		{"owner", 0, 16, 10, span(6, 15), true},
		{"owner", 0, 6, 10, span(1, 5), false},
		{"owner", 0, 11, 10, span(1, 10), false},
		{"owner", 0, 1, 10, nil, false},
		{"owner", 7, 16, 3, span(13, 15), true}, // before wins over after
		{"member", 0, 0, 5, span(13, 17), true},
		{"member", 5, 0, 5, span(13, 17), true},
		{"member", 17, 0, 10, span(18, 25), false},
		{"member", 0, 26, 10, span(16, 25), true},
		{"member", 0, 16, 10, span(13, 15), false},
		{"member", 0, 13, 10, nil, false},
	}
	for _, tt := range tests {
		es, more := h.log(g.ID, tt.user, tt.after, tt.before, tt.limit)
		if !slices.Equal(seqs(es), tt.want) || more != tt.more {
			t.Errorf("Log(%s, after %d, before %d, limit %d) = %v, more %v; want %v, more %v",
				tt.user, tt.after, tt.before, tt.limit, seqs(es), more, tt.want, tt.more)
		}
	}
	// Paging through the whole log one way and the other gives it all,
	// once, in order.
	for _, user := range []string{"owner", "member"} {
		var fwd, back []plugins.GroupEntry
		for after := int64(0); ; {
			es, more := h.log(g.ID, user, after, 0, 4)
			fwd = append(fwd, es...)
			if !more {
				break
			}
			after = es[len(es)-1].Seq
		}
		for before := last + 1; ; {
			es, more := h.log(g.ID, user, 0, before, 4)
			back = append(slices.Clone(es), back...)
			if !more {
				break
			}
			before = es[0].Seq
		}
		want := span(1, last)
		if user == "member" {
			want = span(join.Seq, last)
		}
		checkLog(t, user+" forward", fwd, want)
		checkLog(t, user+" back", back, want)
	}
}

func runGroupCursors(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newGroupsTester(t, open, "owner", "admin", "bob", "carol", "outsider")
	g := h.create("owner", "cursors", plugins.PolicyOpen, plugins.HistoryShared)
	id := g.ID
	h.cursor("owner", id, 0, 1, 0)
	h.join(id, "owner", "admin", "bob")
	h.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: id, Actor: "owner", Target: "admin", Role: plugins.RoleAdmin}) // 4
	// The joined entry is a member's first unread (shared history does
	// not make older entries unread).
	h.cursor("bob", id, 2, 2, 0)

	// Sending reads everything up to one's own message.
	h.sendGroupOK(gm(id, "owner", "hello", "")) // 5
	h.cursor("owner", id, 5, 0, 0)
	h.cursor("bob", id, 2, 3, 0)

	// Named mentions count for members, once per message, not for the
	// sender; "all" counts for everyone but the sender.
	h.sendGroupOK(
		gm(id, "admin", "bob!", "", "bob"),                // 6: bob
		gm(id, "owner", "bob bob", "", "bob", "bob"),      // 7: bob, once
		gm(id, "admin", "me", "", "admin"),                // 8: no one
		gm(id, "owner", "not members", "", "outsider"),    // 9: no one
		gm(id, "admin", "everyone", "", "all", "bob"),     // 10: all, bob once
		gm(id, "bob", "me and owner", "", "bob", "owner"), // 11: owner
	)
	h.cursor("bob", id, 11, 0, 0) // his own message read all before it
	h.cursor("owner", id, 9, 2, 2)
	h.cursor("admin", id, 10, 1, 0)
	if _, ok := h.userGroup("outsider", id); ok {
		t.Error("UserGroups(outsider) lists the group")
	}
	h.sendGroupOK(gm(id, "admin", "bob again", "", "bob"), gm(id, "admin", "and again", "", "bob")) // 12, 13
	h.cursor("bob", id, 11, 2, 2)

	// Acks move the cursor forward only, and no further than the end;
	// the mentions passed are no longer counted.
	h.ackGroup("bob", id, 12)
	h.cursor("bob", id, 12, 1, 1)
	h.ackGroup("bob", id, 3)
	h.cursor("bob", id, 12, 1, 1)
	h.ackGroup("bob", id, 1000)
	h.cursor("bob", id, 13, 0, 0)
	h.ackGroup("owner", id, 10) // passes the mention to all, not the one at 11
	h.cursor("owner", id, 10, 3, 1)
	h.write(&plugins.WriteBatch{GroupAcks: []plugins.GroupAck{
		{User: "owner", Group: id, Seq: 11}, {User: "owner", Group: id, Seq: 10}, // in order: the second is back
		{User: "outsider", Group: id, Seq: 5}, {User: "ghost", Group: id, Seq: 5}, {User: "bob", Group: id + 1000, Seq: 5},
	}})
	h.cursor("owner", id, 11, 2, 0)

	// A message and an ack in one batch: the ack sees the message.
	res := h.write(&plugins.WriteBatch{
		GroupMessages: []plugins.NewGroupMessage{gm(id, "admin", "carol?", "", "bob")},
		GroupAcks:     []plugins.GroupAck{{User: "bob", Group: id, Seq: 14}},
	})
	if res[0].Group == nil || res[0].Group.Seq != 14 {
		t.Fatalf("message = %+v, want seq 14", res[0])
	}
	h.cursor("bob", id, 14, 0, 0)

	// A member who leaves loses the cursor; joining again starts anew.
	h.entryOp(plugins.GroupOp{Kind: plugins.OpLeave, Group: id, Actor: "bob"})          // 15
	h.sendGroupOK(gm(id, "admin", "bob is gone", "", "bob"))                            // 16
	h.ackGroup("bob", id, 16)                                                           // no effect
	rejoin := h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: id, Actor: "bob"}) // 17
	h.entryOp(plugins.GroupOp{Kind: plugins.OpJoin, Group: id, Actor: "carol"})         // 18
	h.cursor("bob", id, rejoin.Seq-1, 2, 0)
	h.cursor("carol", id, 17, 1, 0)
	if ug, _ := h.userGroup("bob", id); ug.JoinSeq != rejoin.Seq || ug.Role != plugins.RoleMember || ug.LastSeq != 18 || ug.Members != 4 {
		t.Errorf("UserGroups(bob) = %+v, want joined at %d, last seq 18, 4 members", ug, rejoin.Seq)
	}
}

func runGroupCID(t *testing.T, open func(*testing.T) plugins.Storage) {
	setup := func(t *testing.T) (*groupsTester, int64) {
		h := newGroupsTester(t, open, "alice", "bob", "carol")
		g := h.create("alice", "cid", plugins.PolicyOpen, plugins.HistoryJoined)
		h.join(g.ID, "alice", "bob", "carol")
		return h, g.ID
	}
	sameDup := func(t *testing.T, what string, r plugins.AppendResult, first plugins.GroupEntry) {
		t.Helper()
		if !r.Duplicate || r.Err != nil || r.Group == nil || r.Message.ID != "" {
			t.Errorf("%s = %+v, want a duplicate of %+v", what, r, first)
			return
		}
		checkEntry(t, what, *r.Group, first)
		if r.Group.MsgID != first.MsgID || r.Group.TS != first.TS {
			t.Errorf("%s = %+v, want the first entry's msg id and ts (%+v)", what, r.Group, first)
		}
	}

	t.Run("retries", func(t *testing.T) {
		h, id := setup(t)
		res := h.sendGroup(gm(id, "bob", "one", "x", "carol"), gm(id, "bob", "again", "x"))
		first := *res[0].Group
		sameDup(t, "retry in the same batch", res[1], first)
		last := h.info(id).LastSeq
		sameDup(t, "retry in a later batch", h.sendGroup(gm(id, "bob", "other body", "x"))[0], first)
		h.ackGroup("bob", id, last)
		h.ackGroup("carol", id, last)
		sameDup(t, "retry after acks", h.sendGroup(gm(id, "bob", "after ack", "x"))[0], first)
		// Whatever the checks say now.
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: id, Actor: "alice", Target: "bob", Until: 1 << 50})
		sameDup(t, "retry when muted", h.sendGroup(gm(id, "bob", "muted", "x"))[0], first)
		h.entryOp(plugins.GroupOp{Kind: plugins.OpKick, Group: id, Actor: "alice", Target: "bob"})
		sameDup(t, "retry when kicked", h.sendGroup(gm(id, "bob", "kicked", "x"))[0], first)
		if info := h.info(id); info.LastSeq != last+2 {
			t.Errorf("last seq %d, want %d: a retry took a seq", info.LastSeq, last+2)
		}
		if es := h.logAll(id, "alice"); len(slices.DeleteFunc(es, func(e plugins.GroupEntry) bool { return e.Kind != plugins.EntryMsg })) != 1 {
			t.Errorf("the log has %d messages, want 1", len(es))
		}
		h.cursor("carol", id, last, 2, 0) // the mention counted once, then passed
		// LookupCIDs finds it.
		got := h.lookup(plugins.CIDKey{From: "bob", CID: "x"}, plugins.CIDKey{From: "alice", CID: "x"}, plugins.CIDKey{From: "bob", CID: "y"})
		sameDup(t, "LookupCIDs", got[0], first)
		if got[1] != (plugins.AppendResult{}) || got[2] != (plugins.AppendResult{}) {
			t.Errorf("LookupCIDs of other keys = %+v, %+v; want none", got[1], got[2])
		}
	})

	t.Run("refused messages take no cid", func(t *testing.T) {
		h, id := setup(t)
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: id, Actor: "alice", Target: "bob", Until: 1 << 50})
		if r := h.sendGroup(gm(id, "bob", "muted", "k"))[0]; !errors.Is(r.Err, plugins.ErrMuted) {
			t.Fatalf("muted message = %+v", r)
		}
		if got := h.lookup(plugins.CIDKey{From: "bob", CID: "k"})[0]; got != (plugins.AppendResult{}) {
			t.Errorf("LookupCIDs of a refused message = %+v, want none", got)
		}
		h.entryOp(plugins.GroupOp{Kind: plugins.OpMute, Group: id, Actor: "alice", Target: "bob"})
		if r := h.sendGroup(gm(id, "bob", "unmuted", "k"))[0]; r.Err != nil || r.Duplicate || r.Group.Body != "unmuted" {
			t.Errorf("message once unmuted = %+v, want stored", r)
		}
	})

	t.Run("one key space with direct messages", func(t *testing.T) {
		h, id := setup(t)
		direct := h.sendOK(nm("bob", "carol", "direct first", "d"))[0]
		r := h.sendGroup(gm(id, "bob", "group second", "d"))[0]
		if !r.Duplicate || r.Group != nil || r.Message != direct || r.Err != nil {
			t.Errorf("group message with a direct message's cid = %+v, want a duplicate of %+v", r, direct)
		}
		first := h.sendGroupOK(gm(id, "bob", "group first", "g"))[0]
		res := h.send(nm("bob", "carol", "direct second", "g"), nm("bob", "alice", "direct third", "g"))
		sameDup(t, "direct message with a group message's cid", res[0], first)
		sameDup(t, "again", res[1], first)
		if n := h.pendingCount("carol"); n != 1 {
			t.Errorf("PendingCount(carol) = %d, want 1", n)
		}
		// Within one batch, whichever comes first (direct messages are
		// stored before group messages).
		res = h.write(&plugins.WriteBatch{
			Messages:      []plugins.NewMessage{nm("bob", "carol", "direct", "both")},
			GroupMessages: []plugins.NewGroupMessage{gm(id, "bob", "group", "both")},
		})
		if res[0].Err != nil || res[0].Duplicate || !res[1].Duplicate || res[1].Message != res[0].Message {
			t.Errorf("one cid in both parts of a batch = %+v, want the group message a duplicate of the direct one", res)
		}
		// Keys are per sender: another sender's cid is not a duplicate.
		if r := h.sendGroup(gm(id, "carol", "mine", "g"))[0]; r.Duplicate || r.Err != nil {
			t.Errorf("another sender's message with cid g = %+v, want stored", r)
		}
		got := h.lookup(plugins.CIDKey{From: "bob", CID: "d"}, plugins.CIDKey{From: "bob", CID: "g"}, plugins.CIDKey{From: "carol", CID: "g"})
		if !got[0].Duplicate || got[0].Message != direct || got[0].Group != nil {
			t.Errorf("LookupCIDs(bob, d) = %+v, want the direct message", got[0])
		}
		sameDup(t, "LookupCIDs(bob, g)", got[1], first)
		if got[2].Group == nil || got[2].Group.From != "carol" {
			t.Errorf("LookupCIDs(carol, g) = %+v, want carol's group message", got[2])
		}
	})
}

func runGroupBatch(t *testing.T, open func(*testing.T) plugins.Storage) {
	// batch i has 4 direct messages, 4 group messages (cids g<i>-<j>, one
	// mentioning carol) and carol's ack of the group's entry target.
	batch := func(id int64, i int, target int64) *plugins.WriteBatch {
		b := &plugins.WriteBatch{GroupAcks: []plugins.GroupAck{{User: "carol", Group: id, Seq: target}}}
		for j := range 4 {
			b.Messages = append(b.Messages, nm("alice", "bob", fmt.Sprintf("batch %d direct %d", i, j), fmt.Sprintf("d%d-%d", i, j)))
			b.GroupMessages = append(b.GroupMessages, gm(id, "bob", fmt.Sprintf("batch %d group %d", i, j), fmt.Sprintf("g%d-%d", i, j), "carol"))
		}
		return b
	}
	// stored counts the batch's messages LookupCIDs finds, both kinds.
	stored := func(h *groupsTester, b *plugins.WriteBatch) (direct, group int) {
		var keys []plugins.CIDKey
		for _, m := range b.Messages {
			keys = append(keys, plugins.CIDKey{From: m.From, CID: m.CID})
		}
		for _, m := range b.GroupMessages {
			keys = append(keys, plugins.CIDKey{From: m.From, CID: m.CID})
		}
		for _, r := range h.lookup(keys...) {
			switch {
			case r.Duplicate && r.Group != nil:
				group++
			case r.Duplicate:
				direct++
			}
		}
		return direct, group
	}
	setup := func(t *testing.T) (*groupsTester, int64) {
		h := newGroupsTester(t, open, "alice", "bob", "carol")
		g := h.create("alice", "batch", plugins.PolicyOpen, plugins.HistoryJoined)
		h.join(g.ID, "alice", "bob", "carol")
		return h, g.ID
	}

	t.Run("cancelled", func(t *testing.T) {
		h, id := setup(t)
		before := h.info(id)
		carol, _ := h.userGroup("carol", id)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		b := batch(id, 0, before.LastSeq)
		res, err := h.st.Write(ctx, b)
		var we *plugins.WriteError
		if !errors.As(err, &we) || we.MaybeWritten || res != nil {
			t.Fatalf("Write with a cancelled context = %+v, %v; want a *WriteError{MaybeWritten: false}", res, err)
		}
		if d, g := stored(h, b); d+g != 0 {
			t.Errorf("%d direct and %d group messages of the failed batch are stored", d, g)
		}
		if after := h.info(id); after != before {
			t.Errorf("Group after the failed batch = %+v, want %+v", after, before)
		}
		h.cursor("carol", id, carol.ReadSeq, carol.Unread, 0)
		// The cids and seqs were not taken.
		res = h.write(b)
		for i, r := range res[len(b.Messages):] {
			if r.Duplicate || r.Err != nil || r.Group.Seq != before.LastSeq+1+int64(i) {
				t.Errorf("group message %d after the failed batch = %+v, want stored at %d", i, r, before.LastSeq+1+int64(i))
			}
		}
	})

	t.Run("cancelled while running", func(t *testing.T) {
		// As the direct-message batch test: whatever the moment of the
		// cancellation, a batch is stored whole or not at all: its direct
		// and group messages, its mentions and its ack.
		const batches = 24
		h, id := setup(t)
		carol0, _ := h.userGroup("carol", id)
		var outcomes [3]int
		unknown := make([]bool, batches)
		bs := make([]*plugins.WriteBatch, batches)
		delay := time.Microsecond
		whole := func(i int) (ok bool, n int) {
			d, g := stored(h, bs[i])
			return d == g && (d == 0 || d == 4), d
		}
		for i := range batches {
			target := h.info(id).LastSeq
			bs[i] = batch(id, i, target)
			ctx, cancel := context.WithCancel(context.Background())
			delay = delay * 8 / 5
			timer := time.AfterFunc(delay, cancel)
			_, err := h.st.Write(ctx, bs[i])
			timer.Stop()
			cancel()
			ok, n := whole(i)
			var we *plugins.WriteError
			if !ok && errors.As(err, &we) && we.MaybeWritten {
				// Out of process, a cancelled Write may still be
				// committing on the other side, and the lookups
				// behind whole are not one snapshot: wait for the
				// outcome to settle.
				for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
					ok, n = whole(i)
				}
			}
			if !ok {
				t.Fatalf("batch %d (Write: %v): a torn batch", i, err)
			}
			switch {
			case err == nil:
				outcomes[2]++
				if n != 4 {
					t.Fatalf("batch %d: Write succeeded but %d of its messages are stored", i, n)
				}
				if info := h.info(id); info.LastSeq != target+4 {
					t.Fatalf("batch %d: last seq %d, want %d", i, info.LastSeq, target+4)
				}
			case !errors.As(err, &we):
				t.Fatalf("batch %d: Write = %v, want nil or a *WriteError", i, err)
			case !we.MaybeWritten:
				outcomes[0]++
				if n != 0 {
					t.Fatalf("batch %d: Write failed with MaybeWritten false (%v) but %d of its messages are stored", i, err, n)
				}
			default:
				outcomes[1]++
				unknown[i] = true
			}
		}
		for i := range batches {
			if ok, _ := whole(i); unknown[i] && !ok {
				t.Errorf("batch %d: a torn batch", i)
			}
		}
		// However the batches ended, the log is contiguous and carol's
		// cursor and mentions add up: every batch that was stored
		// mentioned her 4 times after the entry it acked; if none was
		// (a slow store: every cancellation came before its commit),
		// her cursor is as the setup left it.
		last := h.info(id).LastSeq
		checkLog(t, "log", h.logAll(id, "alice"), span(1, last))
		ug, _ := h.userGroup("carol", id)
		switch {
		case last == carol0.LastSeq:
			if ug.ReadSeq != carol0.ReadSeq || ug.Unread != carol0.Unread || ug.Mentions != carol0.Mentions {
				t.Errorf("carol: %+v; nothing was stored, want her cursor as before: %+v", ug, carol0)
			}
		case ug.Unread != last-ug.ReadSeq || ug.Mentions != ug.Unread:
			t.Errorf("carol: %+v; want every unread entry a mention of her", ug)
		}
		t.Logf("outcomes: %d nothing stored, %d unknown, %d stored", outcomes[0], outcomes[1], outcomes[2])
	})
}

func runGroupDeletedAccounts(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("member", func(t *testing.T) {
		h := newGroupsTester(t, open, "owner", "bob", "carol")
		g := h.create("owner", "g", plugins.PolicyOpen, plugins.HistoryJoined)
		other := h.create("carol", "approval", plugins.PolicyApproval, plugins.HistoryJoined)
		h.join(g.ID, "owner", "bob", "carol")
		h.op(plugins.GroupOp{Kind: plugins.OpJoin, Group: other.ID, Actor: "bob"}) // a request
		last := h.info(g.ID).LastSeq
		h.deleteUser("bob")
		es, _ := h.log(g.ID, "owner", last, 0, 10)
		if len(es) != 1 {
			t.Fatalf("entries after the deletion = %+v, want one", es)
		}
		checkEntry(t, "entry", es[0], plugins.GroupEntry{Group: g.ID, Seq: last + 1, Kind: plugins.EntryLeft, Target: "bob"})
		if _, ok := h.member(g.ID, "bob"); ok || h.info(g.ID).Members != 2 {
			t.Errorf("bob is still a member: %+v", h.members(g.ID))
		}
		if gs, err := h.g.UserGroups(h.ctx(), "bob"); err != nil || len(gs) != 0 {
			t.Errorf("UserGroups(bob) = %+v, %v; want none", gs, err)
		}
		if rs, err := h.g.JoinRequests(h.ctx(), other.ID); err != nil || len(rs) != 0 {
			t.Errorf("JoinRequests = %+v, %v; want bob's dropped", rs, err)
		}
		h.opErr(plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: "owner", Target: "bob"}, plugins.ErrUnknownUser)
		if r := h.sendGroup(gm(g.ID, "bob", "x", ""))[0]; !errors.Is(r.Err, plugins.ErrNotMember) {
			t.Errorf("message of the deleted bob = %+v, want ErrNotMember", r)
		}
	})

	t.Run("owner", func(t *testing.T) {
		h := newGroupsTester(t, open, "owner", "m1", "a1", "m2", "a2", "solo")
		// Admins before members, and among each the longest-standing.
		withAdmins := h.create("owner", "admins", plugins.PolicyOpen, plugins.HistoryJoined)
		h.join(withAdmins.ID, "owner", "m1", "a2", "a1")
		for _, a := range []string{"a1", "a2"} {
			h.entryOp(plugins.GroupOp{Kind: plugins.OpRole, Group: withAdmins.ID, Actor: "owner", Target: a, Role: plugins.RoleAdmin})
		}
		members := h.create("owner", "members", plugins.PolicyOpen, plugins.HistoryJoined)
		h.join(members.ID, "owner", "m2", "m1")
		alone := h.create("owner", "alone", plugins.PolicyOpen, plugins.HistoryJoined)
		h.op(plugins.GroupOp{Kind: plugins.OpJoin, Group: h.create("solo", "solo's", plugins.PolicyOpen, plugins.HistoryJoined).ID, Actor: "owner"})
		lasts := map[int64]int64{}
		for _, g := range []plugins.GroupInfo{withAdmins, members, alone} {
			lasts[g.ID] = h.info(g.ID).LastSeq
		}
		h.deleteUser("owner")
		for _, tt := range []struct {
			g    plugins.GroupInfo
			next string
		}{{withAdmins, "a2"}, {members, "m2"}} {
			info := h.info(tt.g.ID)
			if info.Owner != tt.next || info.Dissolved {
				t.Errorf("group %s: %+v, want owned by %s", tt.g.Name, info, tt.next)
			}
			es, _ := h.log(tt.g.ID, tt.next, lasts[tt.g.ID], 0, 10)
			if len(es) != 2 {
				t.Fatalf("group %s: entries after the deletion = %+v, want two", tt.g.Name, es)
			}
			checkEntry(t, tt.g.Name+": first", es[0], plugins.GroupEntry{Group: tt.g.ID, Seq: lasts[tt.g.ID] + 1, Kind: plugins.EntryOwner, Actor: "owner", Target: tt.next})
			checkEntry(t, tt.g.Name+": second", es[1], plugins.GroupEntry{Group: tt.g.ID, Seq: lasts[tt.g.ID] + 2, Kind: plugins.EntryLeft, Target: "owner"})
			if m, _ := h.member(tt.g.ID, tt.next); m.Role != plugins.RoleOwner {
				t.Errorf("group %s: %+v, want the owner", tt.g.Name, m)
			}
			if _, ok := h.member(tt.g.ID, "owner"); ok {
				t.Errorf("group %s: the deleted owner is still a member", tt.g.Name)
			}
		}
		info := h.info(alone.ID)
		if !info.Dissolved || info.LastSeq != lasts[alone.ID]+1 {
			t.Errorf("group alone: %+v, want dissolved by one entry", info)
		}
		if gs, err := h.g.UserGroups(h.ctx(), "solo"); err != nil || len(gs) != 1 || gs[0].Members != 1 {
			t.Errorf("UserGroups(solo) = %+v, %v; want solo's group, without the deleted owner", gs, err)
		}
	})
}
