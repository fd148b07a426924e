package client_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// nextEntry returns c's next event, which must be a group_entry of group
// g with seq and kind.
func nextEntry(t *testing.T, c *client.Client, g string, seq int64, kind string) *protocol.GroupEntry {
	t.Helper()
	e := nextEvent(t, c)
	if e.Type != protocol.TypeGroupEntry || e.Entry == nil || e.Group != g || e.Entry.Group != g || e.Entry.Seq != seq || e.Entry.Kind != kind {
		t.Fatalf("event %+v (entry %+v), want group_entry %s/%d %s", e, e.Entry, g, seq, kind)
	}
	if e.Entry.TS <= 0 {
		t.Fatalf("entry without ts: %+v", e.Entry)
	}
	return e.Entry
}

// listing returns user c's listing of group g.
func listing(t *testing.T, c *client.Client, g string) protocol.GroupListing {
	t.Helper()
	gl, err := c.Groups(testCtx(t))
	if err != nil {
		t.Fatalf("Groups: %v", err)
	}
	i := slices.IndexFunc(gl, func(l protocol.GroupListing) bool { return l.Group == g })
	if i < 0 {
		t.Fatalf("group %s not in the listing %+v", g, gl)
	}
	return gl[i]
}

// TestGroupChat: create, join, send with mentions and a cid, the pushes
// each member gets, the unread counts, catching up and acking, history,
// info and members.
func TestGroupChat(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob := social(t, s, "alice"), social(t, s, "bob")
	if !alice.Has(protocol.FeatureGroups) {
		t.Fatalf("Has(groups) = false; hello %+v", alice.Hello())
	}

	g, err := alice.CreateGroup(ctx, "crew", "", "")
	if err != nil || g == "" {
		t.Fatalf("CreateGroup = %q, %v", g, err)
	}
	joined, seq, err := bob.GroupJoin(ctx, g)
	if err != nil || !joined || seq != 2 {
		t.Fatalf("GroupJoin = %v, %d, %v; want joined at 2", joined, seq, err)
	}
	if e := nextEntry(t, alice, g, 2, "joined"); e.Target != "bob" || e.Actor != "bob" {
		t.Fatalf("alice's joined entry %+v", e)
	}

	r, err := bob.GroupSendCID(ctx, g, "hi @alice", "c1", "alice")
	if err != nil || r.Group != g || r.Seq != 3 || r.MsgID == "" || r.TS <= 0 || r.Body != "" {
		t.Fatalf("GroupSendCID = %+v, %v", r, err)
	}
	if again, err := bob.GroupSendCID(ctx, g, "hi @alice", "c1", "alice"); err != nil || again != r {
		t.Fatalf("GroupSendCID retry = %+v, %v; want %+v", again, err, r)
	}
	e := nextEntry(t, alice, g, 3, "msg")
	if e.From != "bob" || e.Body != "hi @alice" || e.MsgID != r.MsgID || !slices.Equal(e.Mentions, []string{"alice"}) {
		t.Fatalf("alice's msg entry %+v", e)
	}

	// alice has read nothing yet: her cursor is before her created entry.
	l := listing(t, alice, g)
	if l.Name != "crew" || l.Role != client.RoleOwner || l.Members != 2 || l.LastSeq != 3 || l.ReadSeq != 0 || l.Unread != 3 || l.Mentions != 1 {
		t.Fatalf("alice's listing %+v", l)
	}
	// bob's send moved his cursor to his message.
	if l := listing(t, bob, g); l.ReadSeq != 3 || l.Unread != 0 || l.Role != client.RoleMember {
		t.Fatalf("bob's listing %+v", l)
	}
	es, more, err := alice.GroupSync(ctx, g, l.ReadSeq, 2)
	if err != nil || !more || len(es) != 2 || es[0].Kind != "created" || es[0].Name != "crew" || es[0].Actor != "alice" || es[1].Seq != 2 {
		t.Fatalf("GroupSync(0, 2) = %+v, %v, %v", es, more, err)
	}
	es, more, err = alice.GroupSync(ctx, g, 2, 0)
	if err != nil || more || len(es) != 1 || es[0].MsgID != r.MsgID {
		t.Fatalf("GroupSync(2) = %+v, %v, %v", es, more, err)
	}
	if err := alice.GroupAck(ctx, g, 3); err != nil {
		t.Fatalf("GroupAck: %v", err)
	}
	if err := alice.GroupAck(ctx, g, 1); err != nil { // never back
		t.Fatalf("GroupAck back: %v", err)
	}
	if l := listing(t, alice, g); l.ReadSeq != 3 || l.Unread != 0 || l.Mentions != 0 {
		t.Fatalf("alice's listing after the ack %+v", l)
	}

	es, more, err = bob.GroupHistory(ctx, g, 0, 0)
	if err != nil || more || len(es) != 2 || es[0].Seq != 2 || es[1].Seq != 3 {
		t.Fatalf("bob's GroupHistory = %+v, %v, %v; want his join on", es, more, err)
	}
	es, more, err = alice.GroupHistory(ctx, g, 3, 1)
	if err != nil || !more || len(es) != 1 || es[0].Seq != 2 {
		t.Fatalf("GroupHistory(before 3, 1) = %+v, %v, %v", es, more, err)
	}

	gi, err := bob.GroupInfo(ctx, g)
	if err != nil || *gi != (client.GroupInfo{Group: g, Name: "crew", Owner: "alice", Policy: client.PolicyOpen,
		History: client.HistoryJoined, Members: 2, LastSeq: 3}) {
		t.Fatalf("GroupInfo = %+v, %v", gi, err)
	}
	ms, more, err := bob.GroupMembers(ctx, g, "", 1)
	if err != nil || !more || len(ms) != 1 || ms[0] != (protocol.GroupMember{User: "alice", Role: "owner"}) {
		t.Fatalf("GroupMembers(1) = %+v, %v, %v", ms, more, err)
	}
	ms, more, err = bob.GroupMembers(ctx, g, "alice", 0)
	if err != nil || more || len(ms) != 1 || ms[0] != (protocol.GroupMember{User: "bob", Role: "member"}) {
		t.Fatalf("GroupMembers(after alice) = %+v, %v, %v", ms, more, err)
	}

	// Errors.
	_, err = alice.CreateGroup(ctx, "", "", "")
	wantCode(t, err, protocol.CodeBadRequest)
	_, err = alice.CreateGroup(ctx, "x", "secret", "")
	wantCode(t, err, protocol.CodeBadRequest)
	_, err = bob.GroupSend(ctx, g, "everyone!", client.MentionAll)
	wantCode(t, err, protocol.CodeNotAllowed)
	_, err = bob.GroupSend(ctx, "999999", "hello?")
	wantCode(t, err, protocol.CodeNoGroup)
	_, _, err = bob.GroupJoin(ctx, g)
	wantCode(t, err, protocol.CodeAlreadyMember)
	_, err = bob.GroupInfo(ctx, "999999")
	wantCode(t, err, protocol.CodeNoGroup)

	// Typing in the group reaches the other member as an event with Group.
	if err := bob.GroupTyping(ctx, g, true); err != nil {
		t.Fatalf("GroupTyping start: %v", err)
	}
	if err := bob.GroupTyping(ctx, g, false); err != nil {
		t.Fatalf("GroupTyping stop: %v", err)
	}
	for _, state := range []string{"start", "stop"} {
		if e := nextEvent(t, alice); e != (client.Event{Type: protocol.TypeTyping, User: "bob", Group: g, State: state}) {
			t.Fatalf("event %+v, want bob's typing %s in %s", e, state, g)
		}
	}
	wantCode(t, bob.GroupTyping(ctx, "999999", true), protocol.CodeNoGroup)
}

// TestGroupAdministration: approval and invitations, roles, mutes,
// renames, settings, kicks, leaving, transfer and dissolution, with the
// pushes that tell the members.
func TestGroupAdministration(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob, carol := social(t, s, "alice"), social(t, s, "bob"), social(t, s, "carol")

	g, err := alice.CreateGroup(ctx, "club", client.PolicyApproval, "")
	if err != nil {
		t.Fatal(err)
	}
	// A request, pushed to the owner, listed, approved.
	if joined, _, err := bob.GroupJoin(ctx, g); err != nil || joined {
		t.Fatalf("GroupJoin(approval) = %v, %v; want requested", joined, err)
	}
	expectEvents(t, alice, client.Event{Type: protocol.TypeGroupJoinRequest, Group: g, User: "bob"})
	rs, err := alice.GroupRequests(ctx, g)
	if err != nil || len(rs) != 1 || rs[0].User != "bob" || rs[0].TS <= 0 {
		t.Fatalf("GroupRequests = %+v, %v", rs, err)
	}
	if seq, err := alice.GroupApprove(ctx, g, "bob"); err != nil || seq != 2 {
		t.Fatalf("GroupApprove = %d, %v", seq, err)
	}
	if e := nextEntry(t, bob, g, 2, "joined"); e.Target != "bob" || e.Actor != "alice" {
		t.Fatalf("bob's joined entry %+v", e)
	}
	wantCode(t, alice.GroupReject(ctx, g, "carol"), protocol.CodeNoRequest)
	_, err = bob.GroupRequests(ctx, g)
	wantCode(t, err, protocol.CodeNotAllowed)

	// An invitation adds carol at once.
	if seq, err := alice.GroupInvite(ctx, g, "carol"); err != nil || seq != 3 {
		t.Fatalf("GroupInvite = %d, %v", seq, err)
	}
	nextEntry(t, bob, g, 3, "joined")
	nextEntry(t, carol, g, 3, "joined")
	social(t, s, "dave")
	_, err = carol.GroupInvite(ctx, g, "dave")
	wantCode(t, err, protocol.CodeNotAllowed)

	// Roles and mutes.
	if seq, err := alice.GroupRole(ctx, g, "bob", client.RoleAdmin); err != nil || seq != 4 {
		t.Fatalf("GroupRole = %d, %v", seq, err)
	}
	nextEntry(t, bob, g, 4, "role")
	if e := nextEntry(t, carol, g, 4, "role"); e.Role != "admin" || e.Target != "bob" {
		t.Fatalf("role entry %+v", e)
	}
	if seq, err := bob.GroupMute(ctx, g, "carol", time.Minute); err != nil || seq != 5 {
		t.Fatalf("GroupMute = %d, %v", seq, err)
	}
	nextEntry(t, alice, g, 5, "muted")
	if e := nextEntry(t, carol, g, 5, "muted"); e.Until <= 0 || e.Actor != "bob" {
		t.Fatalf("muted entry %+v", e)
	}
	_, err = carol.GroupSend(ctx, g, "let me speak")
	wantCode(t, err, protocol.CodeMuted)
	ms, _, err := alice.GroupMembers(ctx, g, "", 0)
	if err != nil || len(ms) != 3 || ms[2].User != "carol" || ms[2].MutedUntil <= 0 {
		t.Fatalf("GroupMembers with carol muted = %+v, %v", ms, err)
	}
	if _, err := bob.GroupMute(ctx, g, "carol", 0); err != nil {
		t.Fatalf("GroupMute(0): %v", err)
	}
	nextEntry(t, alice, g, 6, "muted")
	nextEntry(t, carol, g, 6, "muted")
	if _, err := alice.GroupMuteAll(ctx, g, true); err != nil {
		t.Fatalf("GroupMuteAll: %v", err)
	}
	nextEntry(t, bob, g, 7, "mute_all")
	if e := nextEntry(t, carol, g, 7, "mute_all"); !e.On {
		t.Fatalf("mute_all entry %+v", e)
	}
	_, err = carol.GroupSend(ctx, g, "still muted?")
	wantCode(t, err, protocol.CodeMuted)
	if _, err := bob.GroupSend(ctx, g, "admins speak", client.MentionAll); err != nil {
		t.Fatalf("an admin's GroupSend under mute_all: %v", err)
	}
	nextEntry(t, alice, g, 8, "msg")
	nextEntry(t, carol, g, 8, "msg")
	if l := listing(t, carol, g); l.Mentions != 1 {
		t.Fatalf("carol's listing after @all %+v", l)
	}
	if _, err := alice.GroupMuteAll(ctx, g, false); err != nil {
		t.Fatalf("GroupMuteAll off: %v", err)
	}
	nextEntry(t, bob, g, 9, "mute_all")
	nextEntry(t, carol, g, 9, "mute_all")

	// Rename and settings.
	if _, err := bob.GroupRename(ctx, g, "book club"); err != nil {
		t.Fatalf("GroupRename: %v", err)
	}
	nextEntry(t, alice, g, 10, "renamed")
	if e := nextEntry(t, carol, g, 10, "renamed"); e.Name != "book club" {
		t.Fatalf("renamed entry %+v", e)
	}
	_, err = bob.GroupSettings(ctx, g, client.PolicyOpen, "")
	wantCode(t, err, protocol.CodeNotAllowed)
	if _, err := alice.GroupSettings(ctx, g, client.PolicyInvite, client.HistoryShared); err != nil {
		t.Fatalf("GroupSettings: %v", err)
	}
	nextEntry(t, bob, g, 11, "settings")
	if e := nextEntry(t, carol, g, 11, "settings"); e.Policy != "invite" || e.History != "shared" {
		t.Fatalf("settings entry %+v", e)
	}
	gi, err := carol.GroupInfo(ctx, g)
	if err != nil || gi.Name != "book club" || gi.Policy != "invite" || gi.History != "shared" || gi.MuteAll || gi.Members != 3 || gi.LastSeq != 11 {
		t.Fatalf("GroupInfo = %+v, %v", gi, err)
	}

	// A kick: carol sees her removal, and nothing after it.
	if _, err := bob.GroupKick(ctx, g, "carol"); err != nil {
		t.Fatalf("GroupKick: %v", err)
	}
	nextEntry(t, alice, g, 12, "kicked")
	nextEntry(t, carol, g, 12, "kicked")
	_, err = carol.GroupSend(ctx, g, "hey")
	wantCode(t, err, protocol.CodeNotMember)
	if _, _, err := carol.GroupJoin(ctx, g); !errors.Is(err, &protocol.Error{Code: protocol.CodeNotAllowed}) {
		t.Fatalf("GroupJoin of an invite-only group = %v, want not_allowed", err)
	}

	// Transfer, leave, dissolve.
	if _, err := alice.GroupLeave(ctx, g); !errors.Is(err, &protocol.Error{Code: protocol.CodeNotAllowed}) {
		t.Fatalf("the owner's GroupLeave = %v, want not_allowed", err)
	}
	if _, err := alice.GroupTransfer(ctx, g, "bob"); err != nil {
		t.Fatalf("GroupTransfer: %v", err)
	}
	if e := nextEntry(t, bob, g, 13, "owner"); e.Actor != "alice" || e.Target != "bob" {
		t.Fatalf("owner entry %+v", e)
	}
	if _, err := alice.GroupLeave(ctx, g); err != nil {
		t.Fatalf("GroupLeave: %v", err)
	}
	nextEntry(t, bob, g, 14, "left")
	if seq, err := bob.GroupDissolve(ctx, g); err != nil || seq != 15 {
		t.Fatalf("GroupDissolve = %d, %v", seq, err)
	}
	_, err = bob.GroupInfo(ctx, g)
	wantCode(t, err, protocol.CodeNoGroup)
	if gl, err := bob.Groups(ctx); err != nil || len(gl) != 0 {
		t.Fatalf("Groups after the dissolution = %+v, %v", gl, err)
	}
	// The log stays readable by its members, up to the end.
	es, _, err := bob.GroupHistory(ctx, g, 0, 0)
	if err != nil || len(es) == 0 || es[len(es)-1].Kind != "dissolved" {
		t.Fatalf("GroupHistory of the dissolved group = %+v, %v", es, err)
	}
	// No entry was pushed to carol after her removal, nor to alice after
	// she left.
	select {
	case e := <-carol.Events():
		t.Fatalf("carol got %+v after her removal", e)
	case e := <-alice.Events():
		t.Fatalf("alice got %+v after leaving", e)
	case <-time.After(50 * time.Millisecond):
	}
}
