package main

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// groupListing returns c's user's listing of group g (the zero listing
// when they are not in it).
func groupListing(t *testing.T, c *client.Client, g string) protocol.GroupListing {
	t.Helper()
	gl, err := c.Groups(t.Context())
	if err != nil {
		t.Fatalf("Groups: %v", err)
	}
	for _, l := range gl {
		if l.Group == g {
			return l
		}
	}
	return protocol.GroupListing{}
}

// waitRead waits until c's user has read group g up to seq, with nothing
// unread: the chat acks after it shows, so the ack may still be on its way.
func waitRead(t *testing.T, c *client.Client, g string, seq int64) {
	t.Helper()
	deadline := time.Now().Add(daemontest.Timeout)
	for {
		l := groupListing(t, c, g)
		if l.ReadSeq == seq && l.Unread == 0 && l.Mentions == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: listing %+v, want read up to %d with nothing unread", g, l, seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nextGroupEntry returns c's next event, which must be a group_entry.
func nextGroupEntry(t *testing.T, c *client.Client) *protocol.GroupEntry {
	t.Helper()
	select {
	case e, ok := <-c.Events():
		if !ok {
			t.Fatalf("Events closed: %v", c.Err())
		}
		if e.Type != protocol.TypeGroupEntry {
			t.Fatalf("event %+v, want a group_entry", e)
		}
		return e.Entry
	case <-time.After(daemontest.Timeout):
		t.Fatal("no group entry within 10s")
	}
	panic("unreachable")
}

// createdID finds the id of the group the chat's output says was created
// with name.
func (r *chatRun) createdID(name string) string {
	r.t.Helper()
	m := regexp.MustCompile(`\[#(\d+) ` + regexp.QuoteMeta(name) + `\] \w+ created the group`).FindStringSubmatch(r.out.String())
	if m == nil {
		r.t.Fatalf("no group %s created in:\n%s", name, r.out.String())
	}
	return m[1]
}

// TestChatGroups runs the chat's group commands: entries pushed and made
// by the user's own commands show as lines and are acked, a group
// conversation sends plain lines with their mentions, and requests to
// join show up for the owner.
func TestChatGroups(t *testing.T) {
	s := daemontest.Start(t)
	ctx := t.Context()
	bob, carol := libUser(t, s.Addr, "bob"), libUser(t, s.Addr, "carol")
	alice := libUser(t, s.Addr, "alice") // a second connection of alice's, to look at her cursors

	c := startChat(t, s.Addr, "alice")
	c.waitFor("type /help for help\n")
	c.typeLine("/groups")
	c.waitFor("you are in no group: create one with /group new <name>, or join one with /group join <id>\n")
	c.typeLine("/group new crew")
	c.waitFor("] alice created the group crew\n")
	g := c.createdID("crew")
	label := "[#" + g + " crew] "
	c.waitFor("talk in it with /g " + g + "; others join with /group join " + g + "\n")

	if _, _, err := bob.GroupJoin(ctx, g); err != nil {
		t.Fatal(err)
	}
	c.waitFor(label + "bob joined\n")
	if _, err := bob.GroupSend(ctx, g, "hi @alice", "alice"); err != nil {
		t.Fatal(err)
	}
	c.waitFor(label + "bob: hi @alice\n")
	waitRead(t, alice, g, 3) // shown, so read: the mention too

	c.typeLine("/g #" + g)
	c.waitFor("nothing unread in #" + g + " crew; plain lines now go to the group (@name mentions name)\n")
	c.typeLine("hey @Bob, welcome")
	c.waitFor(label + "alice: hey @Bob, welcome\n")
	if e := nextGroupEntry(t, bob); e.Kind != "msg" || e.From != "alice" || !slices.Equal(e.Mentions, []string{"bob"}) {
		t.Fatalf("bob got %+v", e)
	}
	if l := groupListing(t, bob, g); l.Unread != 1 || l.Mentions != 1 {
		t.Fatalf("bob's listing %+v, want the mention unread", l)
	}
	c.typeLine("/groups")
	c.waitFor("your groups:\n  #"+g+" crew (owner, 2 members): nothing unread\n", "(/g <id> talks in a group")

	c.typeLine("/group members " + g)
	c.waitFor("members of #" + g + " crew: alice (owner), bob\n")
	c.typeLine("/group admin " + g + " bob")
	c.waitFor(label + "alice made bob an admin\n")
	c.typeLine("/group mute " + g + " bob 5")
	c.waitFor(label + "alice muted bob until ")
	if _, err := bob.GroupSend(ctx, g, "can I speak?"); !isCode(err, protocol.CodeMuted) {
		t.Fatalf("a muted bob's GroupSend = %v, want muted", err)
	}
	c.typeLine("/group unmute " + g + " bob")
	c.waitFor(label + "alice unmuted bob\n")
	c.typeLine("/group rename " + g + " the crew")
	c.waitFor(label + "alice renamed the group to the crew\n")
	label = "[#" + g + " the crew] "
	for _, kind := range []string{"role", "muted", "muted", "renamed"} {
		if e := nextGroupEntry(t, bob); e.Kind != kind || e.Actor != "alice" {
			t.Fatalf("bob got %+v, want alice's %s", e, kind)
		}
	}
	if _, err := bob.GroupSend(ctx, g, "nice name"); err != nil {
		t.Fatal(err)
	}
	c.waitFor(label + "bob: nice name\n")
	c.typeLine("/history #" + g + " 2")
	c.waitFor("(older entries exist)\n", label+"alice renamed the group to the crew\n", label+"bob: nice name\n")

	// A request to join an approval group, answered from the chat.
	c.typeLine("/group new club approval")
	c.waitFor("] alice created the group club\n")
	club := c.createdID("club")
	if joined, _, err := carol.GroupJoin(ctx, club); err != nil || joined {
		t.Fatalf("carol's GroupJoin = %v, %v; want requested", joined, err)
	}
	c.waitFor("[#" + club + " club] carol asks to join (/group approve " + club + " carol or /group reject " + club + " carol)\n")
	c.typeLine("/group approve " + club + " carol")
	c.waitFor("[#" + club + " club] carol joined (added by alice)\n")
	c.typeLine("/group join " + club)
	c.waitFor("#" + club + ": already a member of this group\n")

	c.typeLine("/group kick " + g + " bob")
	c.waitFor(label + "alice removed bob\n")
	c.typeLine("/group dissolve " + club)
	c.waitFor("[#" + club + " club] alice dissolved the group\n")
	c.typeLine("/g " + club)
	c.waitFor("you are not in group #" + club + ": join it with /group join " + club + "\n")
	c.typeLine("/group frobnicate 12")
	c.waitFor("usage: /group new <name> [open|approval|invite]\n")
	c.quit()
	// Everything alice was shown is read.
	gi, err := alice.GroupInfo(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	waitRead(t, alice, g, gi.LastSeq)
}

// TestChatGroupCatchUp: entries written while the user was away are
// counted at login and not marked read by a push that follows them;
// entering the group shows them all, in order, and acks them.
func TestChatGroupCatchUp(t *testing.T) {
	s := daemontest.Start(t)
	ctx := t.Context()
	alice, bob := libUser(t, s.Addr, "alice"), libUser(t, s.Addr, "bob")
	g, err := alice.CreateGroup(ctx, "crew", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.GroupJoin(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := alice.GroupAck(ctx, g, 2); err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{"one", "two @alice"} {
		if _, err := bob.GroupSend(ctx, g, body, mentionsIn(body)...); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}

	c := startChat(t, s.Addr, "alice")
	c.waitFor("#"+g+" crew: 2 unread, 1 mentioning you (/g "+g+")\n", "type /help for help\n")
	if _, err := bob.GroupSend(ctx, g, "three"); err != nil {
		t.Fatal(err)
	}
	label := "[#" + g + " crew] "
	c.waitFor(label + "bob: three\n")
	// The push was shown, but it follows entries alice has not seen: her
	// cursor stays, and entering the group shows all three.
	c.typeLine("/g " + g)
	c.waitFor(label+"bob: one\n", label+"bob: two @alice\n", label+"bob: three\n")
	waitRead(t, alice, g, 5)
	if _, err := bob.GroupSend(ctx, g, "four"); err != nil {
		t.Fatal(err)
	}
	c.waitFor(label + "bob: four\n")
	waitRead(t, alice, g, 6)
	c.typeLine("and five")
	c.waitFor(label + "alice: and five\n")
	if e := nextGroupEntry(t, bob); e.Seq != 7 || e.Body != "and five" {
		t.Fatalf("bob got %+v", e)
	}
	// A direct message while in a group does not change where plain lines
	// go.
	if _, err := bob.Send(ctx, "alice", "psst"); err != nil {
		t.Fatal(err)
	}
	c.waitFor("bob: psst\n")
	c.typeLine("six")
	c.waitFor(label + "alice: six\n")
	c.typeLine("/msg bob back to you")
	c.waitFor("alice → bob: back to you\n")
	c.typeLine("seven")
	c.waitFor("alice → bob: seven\n")
	c.quit()
}

func TestOneShotGroups(t *testing.T) {
	s := daemontest.Start(t)
	ctx := t.Context()
	alice := map[string]string{"QQ_USER": "alice"}
	carol := map[string]string{"QQ_USER": "carol"}
	ac, bc := libUser(t, s.Addr, "alice"), libUser(t, s.Addr, "bob")
	libUser(t, s.Addr, "carol").Close()

	expect(t, qq(t, s.Addr, alice, "groups"), exitOK,
		"you are in no group: create one with /group new <name>, or join one with /group join <id> (in the chat)\n")
	g, err := ac.CreateGroup(ctx, "crew", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bc.GroupJoin(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.GroupSend(ctx, g, "hi @alice", "alice"); err != nil {
		t.Fatal(err)
	}
	r := qq(t, s.Addr, alice, "groups")
	if r.stdout != "your groups:\n  #"+g+" crew (owner, 2 members): 3 unread, 1 mentioning you\n" {
		t.Fatalf("qq groups: %q (%v)", r.stdout, r.err)
	}
	out := decode[struct {
		Groups []protocol.GroupListing `json:"groups"`
	}](t, qq(t, s.Addr, alice, "groups", "--json").stdout)
	if len(out.Groups) != 1 || out.Groups[0] != (protocol.GroupListing{Group: g, Name: "crew", Role: "owner", Members: 2, LastSeq: 3, Unread: 3, Mentions: 1}) {
		t.Fatalf("qq groups --json: %+v", out)
	}

	expect(t, qq(t, s.Addr, alice, "group-send", "#"+g, "hello", "@bob"), exitOK, "sent to #"+g+" (entry 4)\n")
	if e := nextGroupEntry(t, bc); e.Body != "hello @bob" || !slices.Equal(e.Mentions, []string{"bob"}) {
		t.Fatalf("bob got %+v", e)
	}
	type sendOut struct {
		Group string `json:"group"`
		Seq   int64  `json:"seq"`
		TS    int64  `json:"ts"`
		MsgID string `json:"msg_id"`
	}
	s1 := decode[sendOut](t, qq(t, s.Addr, alice, "--json", "group-send", "--cid", "c1", g, "once").stdout)
	s2 := decode[sendOut](t, qq(t, s.Addr, alice, "group-send", "--json", "--cid", "c1", g, "once").stdout)
	if s1.Group != g || s1.Seq != 5 || s1.MsgID == "" || s1 != s2 {
		t.Fatalf("group-send --cid twice: %+v then %+v", s1, s2)
	}
	// Sending moved alice's cursor to her message.
	if l := groupListing(t, ac, g); l.ReadSeq != 5 || l.Unread != 0 {
		t.Fatalf("alice's listing after her sends %+v", l)
	}

	expectErr(t, qq(t, s.Addr, carol, "group-send", g, "hi"), exitRefused, "#"+g+": not a member of this group")
	r = qq(t, s.Addr, carol, "--json", "group-send", g, "hi")
	je := decode[jsonError](t, r.stdout)
	if r.code != exitRefused || je.Error.Code != protocol.CodeNotMember || je.Error.Exit != exitRefused {
		t.Fatalf("group-send --json by a non-member: exit %d, %+v", r.code, je)
	}
	expectErr(t, qq(t, s.Addr, alice, "group-send", "999999", "hi"), exitRefused, "#999999: no such group")
	for _, args := range [][]string{{"group-send"}, {"group-send", g}, {"group-send", "crew", "hi"}, {"groups", "extra"}} {
		if r := qq(t, s.Addr, alice, args...); r.code != exitUsage {
			t.Errorf("qq %q: exit %d (%v), want %d", args, r.code, r.err, exitUsage)
		}
	}
}

// TestWithoutGroups: with a storage that keeps no groups, the group
// commands say so, as the server would refuse them.
func TestWithoutGroups(t *testing.T) {
	cfg := daemontest.Config(t)
	s := daemontest.StartWith(t, cfg, struct{ plugins.Storage }{daemontest.OpenStore(t, cfg)})
	libUser(t, s.Addr, "alice").Close()
	alice := map[string]string{"QQ_USER": "alice"}
	const noGroups = "this server does not support groups (its hello does not list the feature)"
	expectErr(t, qq(t, s.Addr, alice, "groups"), exitRefused, noGroups)
	expectErr(t, qq(t, s.Addr, alice, "group-send", "1", "hi"), exitRefused, noGroups)

	c := startChat(t, s.Addr, "alice")
	c.waitFor("type /help for help\n")
	c.typeLine("/groups")
	c.waitFor(noGroups + "\n")
	c.typeLine("/group new crew")
	c.waitFor(noGroups + "\n")
	c.typeLine("/g 1")
	c.waitFor(noGroups + "\n")
	c.quit()
}
