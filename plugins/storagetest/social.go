package storagetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// socialTester adds the Social of the storage under test to a tester.
type socialTester struct {
	*tester
	soc plugins.Social
}

// newSocialTester opens a storage with users, skipping the test when the
// storage has no Social.
func newSocialTester(t *testing.T, open func(*testing.T) plugins.Storage, users ...string) *socialTester {
	t.Helper()
	h := newTester(t, open, users...)
	return &socialTester{tester: h, soc: h.social()}
}

// request makes a friend request that must succeed and reports whether
// they became friends.
func (h *socialTester) request(from, to, note string, ts int64) bool {
	h.t.Helper()
	became, err := h.soc.RequestFriend(h.ctx(), from, to, note, ts)
	if err != nil {
		h.t.Fatalf("RequestFriend(%q, %q): %v", from, to, err)
	}
	return became
}

func (h *socialTester) answer(user, from string, accept bool, ts int64) {
	h.t.Helper()
	if err := h.soc.AnswerFriendRequest(h.ctx(), user, from, accept, ts); err != nil {
		h.t.Fatalf("AnswerFriendRequest(%q, %q, %v): %v", user, from, accept, err)
	}
}

// befriend makes a and b friends since ts.
func (h *socialTester) befriend(a, b string, ts int64) {
	h.t.Helper()
	if h.request(a, b, "", ts) {
		h.t.Fatalf("RequestFriend(%q, %q) made friends at once", a, b)
	}
	h.answer(b, a, true, ts)
}

func (h *socialTester) block(user, target string, ts int64) {
	h.t.Helper()
	if err := h.soc.Block(h.ctx(), user, target, ts); err != nil {
		h.t.Fatalf("Block(%q, %q): %v", user, target, err)
	}
}

func (h *socialTester) unblock(user, target string) {
	h.t.Helper()
	if err := h.soc.Unblock(h.ctx(), user, target); err != nil {
		h.t.Fatalf("Unblock(%q, %q): %v", user, target, err)
	}
}

func (h *socialTester) friends(user string) plugins.FriendList {
	h.t.Helper()
	l, err := h.soc.Friends(h.ctx(), user)
	if err != nil {
		h.t.Fatalf("Friends(%q): %v", user, err)
	}
	return l
}

func (h *socialTester) blocks(user string) []string {
	h.t.Helper()
	b, err := h.soc.Blocks(h.ctx(), user)
	if err != nil {
		h.t.Fatalf("Blocks(%q): %v", user, err)
	}
	return b
}

func (h *socialTester) relation(a, b string) plugins.Relation {
	h.t.Helper()
	r, err := h.soc.Relation(h.ctx(), a, b)
	if err != nil {
		h.t.Fatalf("Relation(%q, %q): %v", a, b, err)
	}
	return r
}

// checkFriends compares a FriendList with want, treating nil and empty
// lists alike.
func (h *socialTester) checkFriends(user string, want plugins.FriendList) {
	h.t.Helper()
	got := h.friends(user)
	if !slices.Equal(got.Friends, want.Friends) || !slices.Equal(got.Incoming, want.Incoming) || !slices.Equal(got.Outgoing, want.Outgoing) {
		h.t.Errorf("Friends(%q) = %+v\nwant %+v", user, got, want)
	}
}

// checkRelation checks Relation(a, b) and its mirror Relation(b, a).
func (h *socialTester) checkRelation(a, b string, want plugins.Relation) {
	h.t.Helper()
	if got := h.relation(a, b); got != want {
		h.t.Errorf("Relation(%q, %q) = %+v, want %+v", a, b, got, want)
	}
	mirror := plugins.Relation{Friends: want.Friends, Blocks: want.BlockedBy, BlockedBy: want.Blocks, RequestOut: want.RequestIn, RequestIn: want.RequestOut}
	if got := h.relation(b, a); got != mirror {
		h.t.Errorf("Relation(%q, %q) = %+v, want %+v", b, a, got, mirror)
	}
}

func runSocial(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("request and accept", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob")
		if h.request("alice", "bob", "hi, it's alice", ts0) {
			t.Fatal("RequestFriend made friends at once")
		}
		req := plugins.FriendRequest{From: "alice", To: "bob", Note: "hi, it's alice", TS: ts0}
		h.checkFriends("alice", plugins.FriendList{Outgoing: []plugins.FriendRequest{req}})
		h.checkFriends("bob", plugins.FriendList{Incoming: []plugins.FriendRequest{req}})
		h.checkRelation("alice", "bob", plugins.Relation{RequestOut: true})

		// Only the one asked can answer.
		if err := h.soc.AnswerFriendRequest(h.ctx(), "alice", "bob", true, ts0+1); !errors.Is(err, plugins.ErrNoRequest) {
			t.Errorf("AnswerFriendRequest by the asker = %v, want ErrNoRequest", err)
		}
		h.answer("bob", "alice", true, ts0+5)
		h.checkFriends("alice", plugins.FriendList{Friends: []plugins.Friend{{User: "bob", Since: ts0 + 5}}})
		h.checkFriends("bob", plugins.FriendList{Friends: []plugins.Friend{{User: "alice", Since: ts0 + 5}}})
		h.checkRelation("alice", "bob", plugins.Relation{Friends: true})
		if err := h.soc.AnswerFriendRequest(h.ctx(), "bob", "alice", true, ts0+6); !errors.Is(err, plugins.ErrNoRequest) {
			t.Errorf("AnswerFriendRequest again = %v, want ErrNoRequest", err)
		}
	})

	t.Run("request and decline", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob")
		h.request("alice", "bob", "", ts0)
		h.answer("bob", "alice", false, ts0+1)
		h.checkFriends("alice", plugins.FriendList{})
		h.checkFriends("bob", plugins.FriendList{})
		h.checkRelation("alice", "bob", plugins.Relation{})
		if err := h.soc.AnswerFriendRequest(h.ctx(), "bob", "alice", false, ts0+2); !errors.Is(err, plugins.ErrNoRequest) {
			t.Errorf("AnswerFriendRequest again = %v, want ErrNoRequest", err)
		}
		// Asking again after a decline is allowed.
		if h.request("alice", "bob", "please", ts0+3) {
			t.Error("a new request after a decline made friends")
		}
		h.checkRelation("alice", "bob", plugins.Relation{RequestOut: true})
	})

	t.Run("cancel", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob")
		if err := h.soc.CancelFriendRequest(h.ctx(), "alice", "bob"); !errors.Is(err, plugins.ErrNoRequest) {
			t.Errorf("CancelFriendRequest with no request = %v, want ErrNoRequest", err)
		}
		h.request("alice", "bob", "", ts0)
		if err := h.soc.CancelFriendRequest(h.ctx(), "bob", "alice"); !errors.Is(err, plugins.ErrNoRequest) {
			t.Errorf("CancelFriendRequest of the other direction = %v, want ErrNoRequest", err)
		}
		if err := h.soc.CancelFriendRequest(h.ctx(), "alice", "bob"); err != nil {
			t.Fatalf("CancelFriendRequest = %v", err)
		}
		h.checkFriends("bob", plugins.FriendList{})
		h.checkRelation("alice", "bob", plugins.Relation{})
		if err := h.soc.AnswerFriendRequest(h.ctx(), "bob", "alice", true, ts0+1); !errors.Is(err, plugins.ErrNoRequest) {
			t.Errorf("AnswerFriendRequest of a cancelled request = %v, want ErrNoRequest", err)
		}
	})

	t.Run("crossing requests", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob")
		h.request("alice", "bob", "", ts0)
		if !h.request("bob", "alice", "you too", ts0+7) {
			t.Fatal("the answering request did not make friends")
		}
		h.checkFriends("alice", plugins.FriendList{Friends: []plugins.Friend{{User: "bob", Since: ts0 + 7}}})
		h.checkFriends("bob", plugins.FriendList{Friends: []plugins.Friend{{User: "alice", Since: ts0 + 7}}})
		h.checkRelation("alice", "bob", plugins.Relation{Friends: true})
		// Asking a friend again changes nothing.
		for _, from := range []string{"alice", "bob"} {
			to := map[string]string{"alice": "bob", "bob": "alice"}[from]
			if !h.request(from, to, "again", ts0+9) {
				t.Errorf("RequestFriend(%q, %q) between friends = false, want true", from, to)
			}
		}
		h.checkFriends("alice", plugins.FriendList{Friends: []plugins.Friend{{User: "bob", Since: ts0 + 7}}})
		h.checkRelation("alice", "bob", plugins.Relation{Friends: true})
	})

	t.Run("repeated request", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol")
		h.request("alice", "bob", "first", ts0)
		h.request("carol", "bob", "from carol", ts0+1)
		h.request("alice", "bob", "second", ts0+2)
		h.checkFriends("bob", plugins.FriendList{Incoming: []plugins.FriendRequest{
			{From: "carol", To: "bob", Note: "from carol", TS: ts0 + 1},
			{From: "alice", To: "bob", Note: "second", TS: ts0 + 2},
		}})
		h.checkFriends("alice", plugins.FriendList{Outgoing: []plugins.FriendRequest{{From: "alice", To: "bob", Note: "second", TS: ts0 + 2}}})
	})

	t.Run("lists are sorted", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol", "dave", "erin", "frank", "Zed", "zoë")
		// Friends by name (byte-wise), made in another order.
		for i, f := range []string{"zoë", "carol", "Zed", "bob"} {
			h.befriend(f, "alice", ts0+int64(i))
		}
		// Requests oldest first, made in another order of names.
		h.request("frank", "alice", "f", ts0+20)
		h.request("dave", "alice", "d", ts0+30)
		h.request("alice", "erin", "e", ts0+25)
		h.checkFriends("alice", plugins.FriendList{
			Friends: []plugins.Friend{{User: "Zed", Since: ts0 + 2}, {User: "bob", Since: ts0 + 3}, {User: "carol", Since: ts0 + 1}, {User: "zoë", Since: ts0}},
			Incoming: []plugins.FriendRequest{
				{From: "frank", To: "alice", Note: "f", TS: ts0 + 20},
				{From: "dave", To: "alice", Note: "d", TS: ts0 + 30},
			},
			Outgoing: []plugins.FriendRequest{{From: "alice", To: "erin", Note: "e", TS: ts0 + 25}},
		})
		h.checkFriends("ghost", plugins.FriendList{})
	})

	t.Run("remove friend", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol")
		h.befriend("alice", "bob", ts0)
		h.befriend("alice", "carol", ts0+1)
		if err := h.soc.RemoveFriend(h.ctx(), "bob", "alice"); err != nil {
			t.Fatalf("RemoveFriend = %v", err)
		}
		h.checkRelation("alice", "bob", plugins.Relation{})
		h.checkFriends("alice", plugins.FriendList{Friends: []plugins.Friend{{User: "carol", Since: ts0 + 1}}})
		h.checkFriends("bob", plugins.FriendList{})
		for _, pair := range [][2]string{{"alice", "bob"}, {"bob", "alice"}, {"bob", "carol"}, {"alice", "ghost"}} {
			if err := h.soc.RemoveFriend(h.ctx(), pair[0], pair[1]); !errors.Is(err, plugins.ErrNotFriends) {
				t.Errorf("RemoveFriend(%q, %q) = %v, want ErrNotFriends", pair[0], pair[1], err)
			}
		}
	})

	t.Run("unknown users", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol")
		h.deleteUser("carol")
		for _, to := range []string{"ghost", "Bob", "carol"} {
			if _, err := h.soc.RequestFriend(h.ctx(), "alice", to, "", ts0); !errors.Is(err, plugins.ErrUnknownUser) {
				t.Errorf("RequestFriend(alice, %q) = %v, want ErrUnknownUser", to, err)
			}
			if err := h.soc.Block(h.ctx(), "alice", to, ts0); !errors.Is(err, plugins.ErrUnknownUser) {
				t.Errorf("Block(alice, %q) = %v, want ErrUnknownUser", to, err)
			}
			h.checkRelation("alice", to, plugins.Relation{})
		}
		h.checkFriends("alice", plugins.FriendList{})
		if b := h.blocks("alice"); len(b) != 0 {
			t.Errorf("Blocks(alice) = %v, want none", b)
		}
	})

	t.Run("block", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol", "dave", "eve")
		h.befriend("alice", "bob", ts0)
		h.request("alice", "carol", "", ts0+1)
		h.request("dave", "alice", "", ts0+2)

		h.block("alice", "bob", ts0+10)   // ends a friendship
		h.block("alice", "carol", ts0+11) // ends an outgoing request
		h.block("alice", "dave", ts0+12)  // ends an incoming request
		h.block("alice", "bob", ts0+13)   // again: no change
		h.checkRelation("alice", "bob", plugins.Relation{Blocks: true})
		h.checkRelation("alice", "carol", plugins.Relation{Blocks: true})
		h.checkRelation("alice", "dave", plugins.Relation{Blocks: true})
		h.checkFriends("alice", plugins.FriendList{})
		h.checkFriends("bob", plugins.FriendList{})
		h.checkFriends("carol", plugins.FriendList{})
		h.checkFriends("dave", plugins.FriendList{})
		if got := h.blocks("alice"); !slices.Equal(got, []string{"bob", "carol", "dave"}) {
			t.Errorf("Blocks(alice) = %v, want [bob carol dave]", got)
		}
		if got := h.blocks("bob"); len(got) != 0 {
			t.Errorf("Blocks(bob) = %v, want none", got)
		}

		// No requests either way while blocked.
		for _, pair := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
			if _, err := h.soc.RequestFriend(h.ctx(), pair[0], pair[1], "", ts0+20); !errors.Is(err, plugins.ErrBlocked) {
				t.Errorf("RequestFriend(%q, %q) = %v, want ErrBlocked", pair[0], pair[1], err)
			}
		}
		// Both ways.
		h.block("bob", "alice", ts0+21)
		h.checkRelation("alice", "bob", plugins.Relation{Blocks: true, BlockedBy: true})
		h.unblock("alice", "bob")
		h.checkRelation("alice", "bob", plugins.Relation{BlockedBy: true})
		if _, err := h.soc.RequestFriend(h.ctx(), "alice", "bob", "", ts0+22); !errors.Is(err, plugins.ErrBlocked) {
			t.Errorf("RequestFriend(alice, bob) while bob blocks alice = %v, want ErrBlocked", err)
		}
		h.unblock("bob", "alice")
		h.unblock("bob", "alice") // again: no error
		h.unblock("eve", "ghost") // none: no error
		// Unblocking restores nothing.
		h.checkRelation("alice", "bob", plugins.Relation{})
		if got := h.blocks("alice"); !slices.Equal(got, []string{"carol", "dave"}) {
			t.Errorf("Blocks(alice) = %v, want [carol dave]", got)
		}
		if h.request("bob", "alice", "again?", ts0+30) {
			t.Error("a request after unblocking made friends")
		}
	})

	t.Run("blocks are sorted", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol", "Zed", "zoë")
		for i, u := range []string{"zoë", "carol", "Zed", "bob"} {
			h.block("alice", u, ts0+int64(i))
		}
		if got := h.blocks("alice"); !slices.Equal(got, []string{"Zed", "bob", "carol", "zoë"}) {
			t.Errorf("Blocks(alice) = %v, want [Zed bob carol zoë]", got)
		}
		if got := h.blocks("ghost"); len(got) != 0 {
			t.Errorf("Blocks(ghost) = %v, want none", got)
		}
	})

	t.Run("delete user", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol", "dave", "eve", "frank")
		h.befriend("alice", "bob", ts0)
		h.request("alice", "carol", "", ts0+1)
		h.request("dave", "alice", "", ts0+2)
		h.block("alice", "eve", ts0+3)
		h.block("frank", "alice", ts0+4)
		h.befriend("bob", "carol", ts0+5)

		h.deleteUser("alice")
		for _, u := range []string{"bob", "carol", "dave", "eve", "frank"} {
			h.checkRelation(u, "alice", plugins.Relation{})
		}
		h.checkFriends("bob", plugins.FriendList{Friends: []plugins.Friend{{User: "carol", Since: ts0 + 5}}})
		h.checkFriends("carol", plugins.FriendList{Friends: []plugins.Friend{{User: "bob", Since: ts0 + 5}}})
		h.checkFriends("dave", plugins.FriendList{})
		if got := h.blocks("frank"); len(got) != 0 {
			t.Errorf("Blocks(frank) = %v, want none (alice was deleted)", got)
		}
		h.checkFriends("alice", plugins.FriendList{})
		if got := h.blocks("alice"); len(got) != 0 {
			t.Errorf("Blocks(alice) = %v, want none", got)
		}
	})
}

// runWriteChecks checks the block and friends-only checks of Write.
func runWriteChecks(t *testing.T, open func(*testing.T) plugins.Storage) {
	friendsOnly := func(from, to, body, cid string) plugins.NewMessage {
		m := nm(from, to, body, cid)
		m.FriendsOnly = true
		return m
	}

	t.Run("recipient blocks sender", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol")
		h.block("bob", "alice", ts0)
		res := h.send(nm("alice", "bob", "blocked", "k1"), nm("carol", "bob", "fine", "k2"), nm("alice", "bob", "no cid", ""))
		for _, i := range []int{0, 2} {
			if r := res[i]; !errors.Is(r.Err, plugins.ErrBlocked) || r.Message.ID != "" || r.Duplicate {
				t.Errorf("result %d = %+v, want ErrBlocked and no message", i, r)
			}
		}
		if r := res[1]; r.Err != nil || r.Message.ID == "" {
			t.Errorf("result 1 = %+v, want stored", r)
		}
		if p, _ := h.pending("bob", 10); !equalMessages(p, []protocol.Message{res[1].Message}) {
			t.Errorf("Pending(bob) = %+v, want only carol's message", p)
		}
		if got := h.history("alice", "bob"); len(got) != 0 {
			t.Errorf("History(alice, bob) = %+v, want none", got)
		}
		if got := h.lookup(plugins.CIDKey{From: "alice", CID: "k1"}); got[0] != (plugins.AppendResult{}) {
			t.Errorf("LookupCIDs of the refused message = %+v, want none", got[0])
		}
		// The sender's side is not checked: alice may write to carol,
		// and bob (who blocks alice) may write to alice.
		h.sendOK(nm("alice", "carol", "hi", ""), nm("bob", "alice", "go away", ""))
		// After the block is lifted, the same cid stores a new message.
		h.unblock("bob", "alice")
		if r := h.send(nm("alice", "bob", "blocked no more", "k1"))[0]; r.Err != nil || r.Duplicate || r.Message.Body != "blocked no more" {
			t.Errorf("send after Unblock = %+v, want stored", r)
		}
	})

	t.Run("friends only", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob", "carol", "dave")
		h.befriend("alice", "bob", ts0)
		h.request("alice", "carol", "", ts0+1) // a request is not a friendship
		res := h.send(
			friendsOnly("alice", "bob", "to a friend", "k1"),
			friendsOnly("bob", "alice", "back", "k2"),
			friendsOnly("alice", "carol", "asked, not friends", "k3"),
			friendsOnly("carol", "alice", "asked by, not friends", "k4"),
			friendsOnly("alice", "dave", "stranger", "k5"),
			nm("alice", "dave", "not friends only", "k6"),
			friendsOnly("alice", "alice", "note to self", "k7"),
		)
		for i, want := range []error{nil, nil, plugins.ErrNotFriends, plugins.ErrNotFriends, plugins.ErrNotFriends, nil, nil} {
			r := res[i]
			if want == nil && (r.Err != nil || r.Message.ID == "") || want != nil && (!errors.Is(r.Err, want) || r.Message.ID != "") {
				t.Errorf("result %d = %+v, want error %v", i, r, want)
			}
		}
		if n := h.pendingCount("carol"); n != 0 {
			t.Errorf("PendingCount(carol) = %d, want 0", n)
		}
		if n := h.pendingCount("dave"); n != 1 {
			t.Errorf("PendingCount(dave) = %d, want 1", n)
		}
		// The cid of a refused message is not taken.
		h.befriend("dave", "alice", ts0+2)
		if r := h.send(friendsOnly("alice", "dave", "friends now", "k5"))[0]; r.Err != nil || r.Duplicate {
			t.Errorf("send once friends = %+v, want stored", r)
		}
	})

	t.Run("blocked before not friends", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob")
		h.block("bob", "alice", ts0)
		if r := h.send(friendsOnly("alice", "bob", "x", ""))[0]; !errors.Is(r.Err, plugins.ErrBlocked) {
			t.Errorf("friends-only message to a user who blocks the sender = %+v, want ErrBlocked", r)
		}
	})

	t.Run("unknown user before blocked", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob")
		h.block("bob", "alice", ts0)
		h.deleteUser("bob")
		if r := h.send(nm("alice", "bob", "x", ""))[0]; !errors.Is(r.Err, plugins.ErrUnknownUser) {
			t.Errorf("message to a deleted user = %+v, want ErrUnknownUser", r)
		}
	})

	t.Run("a retry is a duplicate whatever the relation now", func(t *testing.T) {
		h := newSocialTester(t, open, "alice", "bob")
		h.befriend("alice", "bob", ts0)
		first := h.send(friendsOnly("alice", "bob", "first", "k1"), nm("alice", "bob", "second", "k2"))
		h.block("bob", "alice", ts0+1) // also ends the friendship
		retry := h.send(friendsOnly("alice", "bob", "retry", "k1"), nm("alice", "bob", "retry", "k2"))
		for i := range retry {
			if r := retry[i]; !r.Duplicate || r.Err != nil || r.Message != first[i].Message {
				t.Errorf("retry %d = %+v, want a duplicate of %+v", i, r, first[i].Message)
			}
		}
		if n := h.pendingCount("bob"); n != 2 {
			t.Errorf("PendingCount(bob) = %d, want 2", n)
		}
	})
}
