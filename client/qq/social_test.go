package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// libUser registers name (unless it exists) and returns a logged-in
// library client that receives Events.
func libUser(t *testing.T, addr, name string) *client.Client {
	t.Helper()
	ctx := t.Context()
	c, err := client.Dial(ctx, addr, client.Options{Events: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Register(ctx, name, pw); err != nil && !isCode(err, protocol.CodeUserExists) {
		t.Fatalf("register %s: %v", name, err)
	}
	if _, err := c.Login(ctx, name, pw); err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return c
}

// isCode reports whether err is an error reply with code.
func isCode(err error, code protocol.Code) bool { return errors.Is(err, &protocol.Error{Code: code}) }

// wantEvents checks that c's next events are want, in order, with TS and
// Since (set from the server's clock) ignored.
func wantEvents(t *testing.T, c *client.Client, want ...client.Event) {
	t.Helper()
	for i, w := range want {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed: %v", c.Err())
			}
			e.TS, e.Since = 0, 0
			if e != w {
				t.Fatalf("event %d = %+v, want %+v", i, e, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %d within 10s, want %+v", i, w)
		}
	}
}

// chatRun is a qq chat run in-process, its input a pipe.
type chatRun struct {
	t    *testing.T
	in   *io.PipeWriter
	out  daemontest.SyncBuffer
	done chan error
	pos  int // waitFor looks after this offset of the output
}

func startChat(t *testing.T, addr, user string) *chatRun {
	t.Helper()
	inR, inW := io.Pipe()
	r := &chatRun{t: t, in: inW, done: make(chan error, 1)}
	a := testApp(map[string]string{"QQ_ADDR": addr, "QQ_USER": user, "QQ_PASSWORD": pw}, inR, &r.out, &r.out)
	go func() { r.done <- a.run(t.Context(), []string{"chat"}) }()
	t.Cleanup(func() { inW.Close() })
	return r
}

// waitFor waits until every one of wants appears in the output after what
// the previous waitFor matched, in any order, and moves past them all.
func (r *chatRun) waitFor(wants ...string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := r.out.String()
		end, missing := r.pos, ""
		for _, w := range wants {
			i := strings.Index(out[r.pos:], w)
			if i < 0 {
				missing = w
				break
			}
			end = max(end, r.pos+i+len(w))
		}
		if missing == "" {
			r.pos = end
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("output after offset %d does not contain %q:\n%s", r.pos, missing, out[r.pos:])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *chatRun) typeLine(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.in, line+"\n"); err != nil {
		r.t.Fatal(err)
	}
}

func (r *chatRun) quit() {
	r.t.Helper()
	r.typeLine("/quit")
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Fatalf("chat: %v\n%s", err, r.out.String())
		}
	case <-time.After(10 * time.Second):
		r.t.Fatalf("chat did not end after /quit:\n%s", r.out.String())
	}
}

// TestChatSocial runs every friends command of the chat and shows each
// push as its line.
func TestChatSocial(t *testing.T) {
	s := daemontest.Start(t)
	ctx := t.Context()
	bob, carol := libUser(t, s.Addr, "bob"), libUser(t, s.Addr, "carol")
	libUser(t, s.Addr, "alice").Close()
	// A request made while alice is away is shown when she logs in.
	if _, err := carol.RequestFriend(ctx, "alice", "from carol"); err != nil {
		t.Fatal(err)
	}

	r := startChat(t, s.Addr, "alice")
	r.waitFor("carol wants to be your friend: from carol (/accept carol or /decline carol)\n")
	r.waitFor("type /help for help\n")

	r.typeLine("/add bob hello  bob")
	r.waitFor("friend request sent to bob\n")
	wantEvents(t, bob, client.Event{Type: protocol.TypeFriendRequest, User: "alice", Note: "hello  bob"})
	if err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("you and bob are now friends\n")
	r.waitFor("bob is online\n")
	if err := bob.SetPresence(ctx, "away", "lunch"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("bob is away: lunch\n")

	r.typeLine("/friends")
	r.waitFor("friends:\n  ◐ bob  away: lunch\n" +
		"asking to be your friend:\n  carol wants to be your friend: from carol (/accept carol or /decline carol)\n")
	r.typeLine("/accept carol")
	r.waitFor("accepted carol's friend request\n", "you and carol are now friends\n")
	r.typeLine("/status busy in a  meeting")
	r.waitFor("you are busy: in a  meeting\n")
	wantEvents(t, bob,
		client.Event{Type: protocol.TypeFriendAdded, User: "alice"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "busy", Text: "in a  meeting"})
	wantEvents(t, carol,
		client.Event{Type: protocol.TypeFriendAdded, User: "alice"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "busy", Text: "in a  meeting"})
	r.typeLine("/friends")
	r.waitFor("friends:\n  ◐ bob    away: lunch\n  ● carol  online\n")
	r.typeLine("/status invisible")
	r.waitFor("you are invisible: your friends see you offline\n")
	r.typeLine("/status online")
	r.waitFor("you are online\n")
	wantEvents(t, carol,
		client.Event{Type: protocol.TypePresence, User: "alice", State: "offline"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"})

	r.typeLine("/remove carol")
	r.waitFor("carol is no longer your friend\n")
	wantEvents(t, carol, client.Event{Type: protocol.TypeFriendRemoved, User: "alice"})

	// Blocks.
	r.typeLine("/block bob")
	r.waitFor("blocked bob: their messages, friend requests and typing no longer reach you\n")
	r.typeLine("/blocks")
	r.waitFor("you block: bob\n")
	if _, err := bob.Send(ctx, "alice", "hello?"); !isCode(err, protocol.CodeBlocked) {
		t.Fatalf("send to a user who blocks: %v", err)
	}
	r.typeLine("/add bob")
	r.waitFor("you block bob: unblock them first (/unblock bob)\n")
	r.typeLine("/unblock bob")
	r.waitFor("unblocked bob\n")
	r.typeLine("/blocks")
	r.waitFor("you block no one\n")

	// Answers to requests, both ways.
	if _, err := carol.RequestFriend(ctx, "alice", "again"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("carol wants to be your friend: again (/accept carol or /decline carol)\n")
	r.typeLine("/decline carol")
	r.waitFor("declined carol's friend request\n")
	r.typeLine("/add carol")
	r.waitFor("friend request sent to carol\n")
	if err := carol.DeclineFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("carol declined your friend request\n")
	r.typeLine("/add carol")
	r.waitFor("friend request sent to carol\n")
	r.typeLine("/cancel carol")
	r.waitFor("withdrew your friend request to carol\n")
	wantEvents(t, carol,
		client.Event{Type: protocol.TypeFriendDeclined, User: "alice"},
		client.Event{Type: protocol.TypeFriendRequest, User: "alice"},
		client.Event{Type: protocol.TypeFriendRequest, User: "alice"},
		client.Event{Type: protocol.TypeFriendCancelled, User: "alice"})
	if _, err := carol.RequestFriend(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	r.waitFor("carol wants to be your friend (/accept carol or /decline carol)\n")
	if err := carol.CancelFriendRequest(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("carol withdrew their friend request\n")
	if err := bob.RemoveFriend(ctx, "alice"); !isCode(err, protocol.CodeNotFriends) {
		t.Fatalf("bob's remove after the block: %v", err)
	}

	// Friends again, and a removal from the other side. Lines piped in
	// send no typing notifications: bob's next event after the messages
	// is the presence change that follows them.
	r.typeLine("/add bob")
	r.waitFor("friend request sent to bob\n")
	if err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("you and bob are now friends\n")
	r.typeLine("/msg bob plain")
	r.typeLine("lines")
	r.typeLine("/status away")
	r.waitFor("you are away\n")
	for _, want := range []string{"plain", "lines"} {
		select {
		case m := <-bob.Messages():
			if m.Body != want {
				t.Fatalf("bob got %+v, want %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("bob did not get %q", want)
		}
	}
	wantEvents(t, bob,
		client.Event{Type: protocol.TypePresence, User: "alice", State: "offline"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"},
		client.Event{Type: protocol.TypeFriendRemoved, User: "alice"},
		client.Event{Type: protocol.TypeFriendRequest, User: "alice"},
		client.Event{Type: protocol.TypeFriendAdded, User: "alice"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "away"})
	if err := bob.RemoveFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("bob is no longer your friend\n")

	// A notice from the operator.
	s.Daemon.Broadcast("restart at 22:00")
	r.waitFor("notice from the server: restart at 22:00\n")

	// Errors, in the server's words.
	r.typeLine("/accept bob")
	r.waitFor("bob: no such friend request\n")
	r.typeLine("/remove bob")
	r.waitFor("bob: not friends\n")
	r.typeLine("/add nobody")
	r.waitFor("nobody: no such user\n")
	r.typeLine("/add alice")
	r.waitFor("invalid request: to must be another user\n")
	r.typeLine("/status away " + strings.Repeat("x", 101))
	r.waitFor("invalid request: text longer than 100 bytes\n")
	for _, c := range []struct{ line, usage string }{
		{"/accept", "usage: /accept <user>\n"},
		{"/block a b", "usage: /block <user>\n"},
		{"/add", "usage: /add <user> [note]\n"},
		{"/status sleepy", "usage: /status online|away|busy|invisible [text]\n"},
		{"/status", "usage: /status online|away|busy|invisible [text]\n"},
	} {
		r.typeLine(c.line)
		r.waitFor(c.usage)
	}
	r.typeLine("/help")
	r.waitFor("/status <state> [text]", "/unblock <user>")
	r.quit()
}

// A server without the friends extension (a storage that lacks it): the
// chat and the one-shot commands say so, and plain chat still works.
func TestWithoutFriends(t *testing.T) {
	cfg := daemontest.Config(t)
	s := daemontest.StartWith(t, cfg, struct{ plugins.Storage }{daemontest.OpenStore(t, cfg)})
	bob := libUser(t, s.Addr, "bob")
	if bob.Has(protocol.FeatureFriends) {
		t.Fatal("the server lists friends without a storage that has them")
	}
	libUser(t, s.Addr, "alice").Close()
	alice := map[string]string{"QQ_USER": "alice"}
	const noFriends = "this server does not support friends (its hello does not list the feature)"
	for _, args := range [][]string{{"friends"}, {"add", "bob"}, {"accept", "bob"}, {"blocks"}} {
		expectErr(t, qq(t, s.Addr, alice, args...), exitRefused, noFriends)
	}
	r := qq(t, s.Addr, alice, "friends", "--json")
	je := decode[jsonError](t, r.stdout)
	if r.code != exitRefused || je.Error.Code != protocol.CodeUnknownType || je.Error.Message != noFriends || je.Error.Exit != exitRefused {
		t.Fatalf("friends --json: exit %d, %+v", r.code, je)
	}

	c := startChat(t, s.Addr, "alice")
	c.waitFor("type /help for help\n")
	c.typeLine("/friends")
	c.waitFor(noFriends + "\n")
	c.typeLine("/block bob")
	c.waitFor(noFriends + "\n")
	c.typeLine("/status away")
	c.waitFor("this server does not support presence (its hello does not list the feature)\n")
	c.typeLine("/msg bob still here")
	c.waitFor("alice → bob: still here\n")
	c.quit()
}

func TestOneShotSocial(t *testing.T) {
	s := daemontest.Start(t)
	alice := map[string]string{"QQ_USER": "alice"}
	bob := map[string]string{"QQ_USER": "bob"}
	carol := map[string]string{"QQ_USER": "carol"}
	bc := libUser(t, s.Addr, "bob")
	libUser(t, s.Addr, "alice").Close()
	libUser(t, s.Addr, "carol").Close()

	expect(t, qq(t, s.Addr, alice, "add", "bob", "hi", "-n", "bob"), exitOK, "friend request sent to bob\n")
	expect(t, qq(t, s.Addr, bob, "friends"), exitOK,
		"no friends yet: ask someone with qq add <user> [note]\n"+
			"asking to be your friend:\n  alice wants to be your friend: hi -n bob (qq accept alice or qq decline alice)\n")
	expect(t, qq(t, s.Addr, alice, "friends"), exitOK,
		"your requests waiting for an answer:\n  bob: hi -n bob (qq cancel bob to withdraw it)\n")
	type listing struct {
		Friends  []protocol.FriendEntry   `json:"friends"`
		Incoming []protocol.FriendRequest `json:"incoming"`
		Outgoing []protocol.FriendRequest `json:"outgoing"`
	}
	r := qq(t, s.Addr, alice, "friends", "--json")
	if !strings.Contains(r.stdout, `"friends":[],"incoming":[],"outgoing":[{"to":"bob","note":"hi -n bob","ts":`) {
		t.Fatalf("friends --json = %s", r.stdout)
	}
	if l := decode[listing](t, r.stdout); len(l.Outgoing) != 1 || l.Outgoing[0].TS <= 0 {
		t.Fatalf("friends --json = %+v", l)
	}

	expect(t, qq(t, s.Addr, bob, "accept", "alice"), exitOK, "accepted alice's friend request\n")
	expectErr(t, qq(t, s.Addr, bob, "accept", "alice"), exitRefused, "alice: no such friend request")
	expect(t, qq(t, s.Addr, alice, "add", "bob"), exitOK, "you and bob are friends\n")
	if err := bc.SetPresence(t.Context(), "away", "lunch"); err != nil {
		t.Fatal(err)
	}
	expect(t, qq(t, s.Addr, alice, "friends"), exitOK, "friends:\n  ◐ bob  away: lunch\n")
	l := decode[listing](t, qq(t, s.Addr, alice, "--json", "friends").stdout)
	if len(l.Friends) != 1 || l.Friends[0].User != "bob" || l.Friends[0].Presence != "away" || l.Friends[0].Text != "lunch" || l.Friends[0].Since <= 0 {
		t.Fatalf("friends --json = %+v", l)
	}

	add := decode[map[string]string](t, qq(t, s.Addr, alice, "add", "--json", "carol").stdout)
	if add["user"] != "carol" || add["status"] != "pending" || len(add) != 2 {
		t.Fatalf("add --json = %v", add)
	}
	expect(t, qq(t, s.Addr, alice, "cancel", "carol"), exitOK, "withdrew your friend request to carol\n")
	r = qq(t, s.Addr, alice, "--json", "cancel", "carol")
	je := decode[jsonError](t, r.stdout)
	if r.code != exitRefused || je.Error.Code != protocol.CodeNoRequest || je.Error.Message != "carol: no such friend request" {
		t.Fatalf("cancel --json of no request: exit %d, %+v", r.code, je)
	}

	expect(t, qq(t, s.Addr, alice, "block", "carol"), exitOK, "blocked carol: their messages, friend requests and typing no longer reach you\n")
	expect(t, qq(t, s.Addr, alice, "blocks"), exitOK, "carol\n")
	expectErr(t, qq(t, s.Addr, alice, "add", "carol"), exitRefused, "you block carol: unblock them first (qq unblock carol)")
	expectErr(t, qq(t, s.Addr, carol, "add", "alice"), exitRefused, "alice: you cannot send this user requests")
	unb := decode[map[string]any](t, qq(t, s.Addr, alice, "unblock", "--json", "carol").stdout)
	if unb["unblocked"] != true || unb["user"] != "carol" {
		t.Fatalf("unblock --json = %v", unb)
	}
	blocks := decode[map[string][]string](t, qq(t, s.Addr, alice, "blocks", "--json").stdout)
	if bl, ok := blocks["users"]; !ok || bl == nil || len(bl) != 0 {
		t.Fatalf("blocks --json = %v", blocks)
	}

	expect(t, qq(t, s.Addr, carol, "add", "alice"), exitOK, "friend request sent to alice\n")
	expect(t, qq(t, s.Addr, alice, "decline", "carol"), exitOK, "declined carol's friend request\n")
	expect(t, qq(t, s.Addr, alice, "remove", "bob"), exitOK, "bob is no longer your friend\n")
	expectErr(t, qq(t, s.Addr, alice, "remove", "bob"), exitRefused, "bob: not friends")
	expectErr(t, qq(t, s.Addr, alice, "add", "nobody"), exitRefused, "nobody: no such user")

	// bob saw it all happen, in order.
	wantEvents(t, bc,
		client.Event{Type: protocol.TypeFriendRequest, User: "alice", Note: "hi -n bob"},
		client.Event{Type: protocol.TypeFriendAdded, User: "alice"})
}

func TestSocialUsage(t *testing.T) {
	expect(t, qq(t, "", nil, "-h"), exitOK, "qq [flags] friends", "add <user> [note...]", "accept|decline <user>", "block|unblock <user>", "blocks")
	for _, args := range [][]string{
		{"friends", "x"},
		{"add"},
		{"accept"},
		{"decline", "a", "b"},
		{"cancel"},
		{"remove"},
		{"block"},
		{"unblock", "a", "b"},
		{"blocks", "x"},
		{"accept", "--bogus", "a"},
	} {
		r := qq(t, "127.0.0.1:1", map[string]string{"QQ_USER": "alice"}, args...)
		if r.code != exitUsage {
			t.Errorf("qq %q: exit %d (%v), want %d", args, r.code, r.err, exitUsage)
		}
	}
}

// TestTypingPrompt: typing pushes show in the prompt until a stop, a
// message from the typist or their going offline.
func TestTypingPrompt(t *testing.T) {
	var prompts []string
	s := newChat(nil, "alice", io.Discard, time.UTC, time.Now)
	s.setPrompt = func(p string) { prompts = append(prompts, p) }
	last := func() string { return prompts[len(prompts)-1] }
	s.setTyping("bob", true)
	if last() != "(bob is typing…) > " {
		t.Fatalf("prompt %q", last())
	}
	s.setPeer("bob")
	s.setTyping("carol", true)
	if last() != "(bob, carol are typing…) to bob> " {
		t.Fatalf("prompt %q", last())
	}
	n := len(prompts)
	s.setTyping("carol", true) // a repeated start changes nothing
	if len(prompts) != n {
		t.Fatalf("prompt set again: %q", prompts[n:])
	}
	s.display([]protocol.Message{{ID: "1", From: "bob", To: "alice", Body: "hi", TS: 1}})
	if last() != "(carol is typing…) to bob> " {
		t.Fatalf("prompt after bob's message %q", last())
	}
	s.setTyping("carol", false)
	if last() != "to bob> " {
		t.Fatalf("prompt after the stop %q", last())
	}
	// Typing in a group names the group.
	ctx := context.Background()
	s.event(ctx, client.Event{Type: protocol.TypeTyping, User: "dora", Group: "7", State: "start"}, nil)
	if last() != "(dora in #7 is typing…) to bob> " {
		t.Fatalf("prompt with typing in a group %q", last())
	}
	// A rename meanwhile shows the new name, and the stop still ends it.
	s.mu.Lock()
	s.groupOf("7").name = "crew"
	s.mu.Unlock()
	s.setTyping("carol", true)
	if last() != "(carol, dora in #7 crew are typing…) to bob> " {
		t.Fatalf("prompt after the rename %q", last())
	}
	s.setTyping("carol", false)
	s.event(ctx, client.Event{Type: protocol.TypeTyping, User: "dora", Group: "7", State: "stop"}, nil)
	if last() != "to bob> " {
		t.Fatalf("prompt after the group typing stopped %q", last())
	}
}

func TestEventLine(t *testing.T) {
	for _, tc := range []struct {
		e    client.Event
		want string
	}{
		{client.Event{Type: protocol.TypeFriendRequest, User: "alice", Note: "hi\x1b[2J"}, `alice wants to be your friend: hi\x1b[2J (/accept alice or /decline alice)`},
		{client.Event{Type: protocol.TypeFriendRequest, User: "alice"}, "alice wants to be your friend (/accept alice or /decline alice)"},
		{client.Event{Type: protocol.TypeFriendAdded, User: "bob"}, "you and bob are now friends"},
		{client.Event{Type: protocol.TypeFriendRemoved, User: "bob"}, "bob is no longer your friend"},
		{client.Event{Type: protocol.TypeFriendDeclined, User: "bob"}, "bob declined your friend request"},
		{client.Event{Type: protocol.TypeFriendCancelled, User: "alice"}, "alice withdrew their friend request"},
		{client.Event{Type: protocol.TypePresence, User: "bob", State: "away", Text: "lunch"}, "bob is away: lunch"},
		{client.Event{Type: protocol.TypePresence, User: "bob", State: "offline"}, "bob is offline"},
		{client.Event{Type: protocol.TypeNotice, Text: "restart\r"}, `notice from the server: restart\r`},
		{client.Event{Type: protocol.TypeTyping, User: "bob", State: "start"}, ""},
		{client.Event{Type: "future_push", User: "bob"}, ""},
	} {
		if got := eventLine(tc.e); got != tc.want {
			t.Errorf("eventLine(%+v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestFormatFriendList(t *testing.T) {
	fl := &client.FriendList{
		Friends: []protocol.FriendEntry{
			{User: "bob", Presence: "online"},
			{User: "carol", Presence: "away", Text: "lunch"},
			{User: "dave", Presence: "busy"},
			{User: "erin", Presence: "offline"},
			{User: "fred", Presence: "asleep"},
		},
		Incoming: []protocol.FriendRequest{{From: "gina", Note: "we met"}, {From: "hank"}},
		Outgoing: []protocol.FriendRequest{{To: "ivy", Note: "hi"}},
	}
	want := "friends:\n" +
		"  ● bob    online\n" +
		"  ◐ carol  away: lunch\n" +
		"  ⊘ dave   busy\n" +
		"  ○ erin   offline\n" +
		"  ? fred   asleep\n" +
		"asking to be your friend:\n" +
		"  gina wants to be your friend: we met (/accept gina or /decline gina)\n" +
		"  hank wants to be your friend (/accept hank or /decline hank)\n" +
		"your requests waiting for an answer:\n" +
		"  ivy: hi (/cancel ivy to withdraw it)\n"
	if got := formatFriendList(fl, "/"); got != want {
		t.Errorf("formatFriendList =\n%s\nwant\n%s", got, want)
	}
	if got := formatFriendList(&client.FriendList{}, "qq "); got != "no friends yet: ask someone with qq add <user> [note]\n" {
		t.Errorf("formatFriendList(empty) = %q", got)
	}
	if !slices.Equal([]string{presenceMark("online"), presenceMark("away"), presenceMark("busy"), presenceMark("offline")}, []string{"●", "◐", "⊘", "○"}) {
		t.Error("presence marks changed")
	}
}

// The friends extension's error codes read as the server words them,
// with the user the request was about; qq's own words only when the
// server sent none.
func TestDescribeSocialErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		name string
		want string
	}{
		{&protocol.Error{Code: protocol.CodeBlocked, Message: "you cannot send this user requests"}, "bob", "bob: you cannot send this user requests"},
		{&protocol.Error{Code: protocol.CodeNotFriends, Message: "not friends"}, "bob", "bob: not friends"},
		{&protocol.Error{Code: protocol.CodeNoRequest, Message: "no such friend request"}, "bob", "bob: no such friend request"},
		{&protocol.Error{Code: protocol.CodeBlocked}, "bob", "bob: blocked"},
		{&protocol.Error{Code: protocol.CodeNotFriends}, "bob", "bob: you are not friends"},
		{&protocol.Error{Code: protocol.CodeNoRequest}, "", "no such friend request"},
	} {
		err := failed(tc.err, tc.name)
		if err.Error() != tc.want || exitCode(err) != exitRefused {
			t.Errorf("failed(%v, %q) = %q exit %d, want %q exit %d", tc.err, tc.name, err, exitCode(err), tc.want, exitRefused)
		}
	}
}
