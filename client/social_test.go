package client_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// quickOffline makes friends see a closed user offline after 50 ms
// instead of presence.offline_debounce's 3 s.
func quickOffline(c *config.Config) { c.Presence.OfflineDebounce = 50 * time.Millisecond }

// social registers name (unless it exists) and returns a logged-in client
// that receives Events.
func social(t *testing.T, s *daemontest.Server, name string) *client.Client {
	t.Helper()
	ctx := testCtx(t)
	c, err := client.Dial(ctx, s.Addr, client.Options{Events: true})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Register(ctx, name, pw); err != nil && !errors.Is(err, &protocol.Error{Code: protocol.CodeUserExists}) {
		t.Fatalf("Register %s: %v", name, err)
	}
	if _, err := c.Login(ctx, name, pw); err != nil {
		t.Fatalf("Login %s: %v", name, err)
	}
	return c
}

// nextEvent returns c's next event. Its TS and Since, which the server
// sets from its clock, must be set when the push carries them, and are
// zeroed for comparison.
func nextEvent(t *testing.T, c *client.Client) client.Event {
	t.Helper()
	select {
	case e, ok := <-c.Events():
		if !ok {
			t.Fatalf("Events closed: %v", c.Err())
		}
		switch e.Type {
		case protocol.TypeFriendRequest:
			if e.TS <= 0 {
				t.Fatalf("friend_request event without TS: %+v", e)
			}
		case protocol.TypeFriendAdded:
			if e.Since <= 0 {
				t.Fatalf("friend_added event without Since: %+v", e)
			}
		}
		e.TS, e.Since = 0, 0
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	panic("unreachable")
}

// expectEvents checks that c's next events are want, in order.
func expectEvents(t *testing.T, c *client.Client, want ...client.Event) {
	t.Helper()
	for i, w := range want {
		if got := nextEvent(t, c); got != w {
			t.Fatalf("event %d = %+v, want %+v", i, got, w)
		}
	}
}

func TestHasFeatures(t *testing.T) {
	s := daemontest.Start(t)
	c := dial(t, s.Addr)
	for _, f := range []string{protocol.FeatureFriends, protocol.FeaturePresence, protocol.FeatureTyping} {
		if !c.Has(f) {
			t.Errorf("Has(%q) = false; hello %+v", f, c.Hello())
		}
	}
	if c.Has("teleport") {
		t.Error(`Has("teleport") = true`)
	}
}

// TestFriendRequestAccept walks a request from the note to the
// friendship, with the pushes on both sides in the order the server sends
// them and the listings at each step.
func TestFriendRequestAccept(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob := social(t, s, "alice"), social(t, s, "bob")

	friends, err := alice.RequestFriend(ctx, "bob", "it's alice")
	if err != nil || friends {
		t.Fatalf("RequestFriend = %v, %v; want a pending request", friends, err)
	}
	expectEvents(t, bob, client.Event{Type: protocol.TypeFriendRequest, User: "alice", Note: "it's alice"})

	fl, err := bob.Friends(ctx)
	if err != nil {
		t.Fatalf("Friends: %v", err)
	}
	if len(fl.Friends) != 0 || len(fl.Outgoing) != 0 || len(fl.Incoming) != 1 ||
		fl.Incoming[0].From != "alice" || fl.Incoming[0].Note != "it's alice" || fl.Incoming[0].TS <= 0 {
		t.Fatalf("bob's Friends = %+v", fl)
	}
	if fl.Friends == nil || fl.Outgoing == nil {
		t.Fatalf("empty lists must not be nil: %+v", fl)
	}
	fl, err = alice.Friends(ctx)
	if err != nil || len(fl.Outgoing) != 1 || fl.Outgoing[0].To != "bob" || len(fl.Incoming) != 0 {
		t.Fatalf("alice's Friends = %+v, %v", fl, err)
	}

	if err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatalf("AcceptFriend: %v", err)
	}
	expectEvents(t, bob,
		client.Event{Type: protocol.TypeFriendAdded, User: "alice"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"})
	expectEvents(t, alice,
		client.Event{Type: protocol.TypeFriendAdded, User: "bob"},
		client.Event{Type: protocol.TypePresence, User: "bob", State: "online"})
	wantCode(t, bob.AcceptFriend(ctx, "alice"), protocol.CodeNoRequest)

	// A request between friends says so and pushes nothing: the next event
	// bob sees is the presence change after it.
	if friends, err := alice.RequestFriend(ctx, "bob", ""); err != nil || !friends {
		t.Fatalf("RequestFriend between friends = %v, %v", friends, err)
	}
	if err := alice.SetPresence(ctx, "away", "at lunch"); err != nil {
		t.Fatalf("SetPresence: %v", err)
	}
	expectEvents(t, bob, client.Event{Type: protocol.TypePresence, User: "alice", State: "away", Text: "at lunch"})
	fl, err = bob.Friends(ctx)
	want := []protocol.FriendEntry{{User: "alice", Presence: "away", Text: "at lunch"}}
	if err == nil && len(fl.Friends) == 1 {
		if fl.Friends[0].Since <= 0 {
			t.Fatalf("friend without since: %+v", fl.Friends[0])
		}
		fl.Friends[0].Since = 0
	}
	if err != nil || !slices.Equal(fl.Friends, want) || len(fl.Incoming) != 0 || len(fl.Outgoing) != 0 {
		t.Fatalf("bob's Friends after accept = %+v, %v; want friends %+v", fl, err, want)
	}
}

// TestFriendRequestAnswers covers the other ends of a request: crossing
// requests, decline, cancel, remove, and the errors of each.
func TestFriendRequestAnswers(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob, carol := social(t, s, "alice"), social(t, s, "bob"), social(t, s, "carol")

	// Crossing requests make friends at once.
	if friends, err := carol.RequestFriend(ctx, "bob", ""); err != nil || friends {
		t.Fatalf("RequestFriend = %v, %v", friends, err)
	}
	expectEvents(t, bob, client.Event{Type: protocol.TypeFriendRequest, User: "carol"})
	if friends, err := bob.RequestFriend(ctx, "carol", "you too"); err != nil || !friends {
		t.Fatalf("crossing RequestFriend = %v, %v; want friends", friends, err)
	}
	expectEvents(t, carol,
		client.Event{Type: protocol.TypeFriendAdded, User: "bob"},
		client.Event{Type: protocol.TypePresence, User: "bob", State: "online"})
	expectEvents(t, bob,
		client.Event{Type: protocol.TypeFriendAdded, User: "carol"},
		client.Event{Type: protocol.TypePresence, User: "carol", State: "online"})

	// Decline.
	if _, err := carol.RequestFriend(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, alice, client.Event{Type: protocol.TypeFriendRequest, User: "carol", Note: "hi"})
	if err := alice.DeclineFriend(ctx, "carol"); err != nil {
		t.Fatalf("DeclineFriend: %v", err)
	}
	expectEvents(t, carol, client.Event{Type: protocol.TypeFriendDeclined, User: "alice"})
	wantCode(t, alice.DeclineFriend(ctx, "carol"), protocol.CodeNoRequest)

	// Cancel.
	if _, err := carol.RequestFriend(ctx, "alice", "again"); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, alice, client.Event{Type: protocol.TypeFriendRequest, User: "carol", Note: "again"})
	if err := carol.CancelFriendRequest(ctx, "alice"); err != nil {
		t.Fatalf("CancelFriendRequest: %v", err)
	}
	expectEvents(t, alice, client.Event{Type: protocol.TypeFriendCancelled, User: "carol"})
	wantCode(t, carol.CancelFriendRequest(ctx, "alice"), protocol.CodeNoRequest)
	if fl, err := alice.Friends(ctx); err != nil || len(fl.Incoming) != 0 {
		t.Fatalf("alice's Friends after the cancel = %+v, %v", fl, err)
	}

	// Remove.
	if err := bob.RemoveFriend(ctx, "carol"); err != nil {
		t.Fatalf("RemoveFriend: %v", err)
	}
	expectEvents(t, carol, client.Event{Type: protocol.TypeFriendRemoved, User: "bob"})
	wantCode(t, bob.RemoveFriend(ctx, "carol"), protocol.CodeNotFriends)

	// Errors.
	_, err := alice.RequestFriend(ctx, "nobody", "")
	wantCode(t, err, protocol.CodeUnknownUser)
	_, err = alice.RequestFriend(ctx, "alice", "")
	wantCode(t, err, protocol.CodeBadRequest)
	_, err = alice.RequestFriend(ctx, "bob", strings.Repeat("n", 201))
	wantCode(t, err, protocol.CodeBadRequest)
	wantCode(t, alice.AcceptFriend(ctx, "nobody"), protocol.CodeNoRequest)
}

// TestBlocks: a block ends the friendship, refuses messages and requests,
// swallows typing; Unblock lifts it.
func TestBlocks(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob := social(t, s, "alice"), social(t, s, "bob")
	if _, err := alice.RequestFriend(ctx, "bob", ""); err != nil {
		t.Fatal(err)
	}
	if err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, alice,
		client.Event{Type: protocol.TypeFriendAdded, User: "bob"},
		client.Event{Type: protocol.TypePresence, User: "bob", State: "online"})
	expectEvents(t, bob,
		client.Event{Type: protocol.TypeFriendRequest, User: "alice"},
		client.Event{Type: protocol.TypeFriendAdded, User: "alice"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"})

	if err := bob.Block(ctx, "alice"); err != nil {
		t.Fatalf("Block: %v", err)
	}
	if err := bob.Block(ctx, "alice"); err != nil {
		t.Fatalf("Block again: %v", err)
	}
	expectEvents(t, alice, client.Event{Type: protocol.TypeFriendRemoved, User: "bob"})
	if users, err := bob.Blocks(ctx); err != nil || !slices.Equal(users, []string{"alice"}) {
		t.Fatalf("Blocks = %v, %v", users, err)
	}
	if fl, err := bob.Friends(ctx); err != nil || len(fl.Friends) != 0 {
		t.Fatalf("Friends after the block = %+v, %v", fl, err)
	}
	_, err := alice.Send(ctx, "bob", "hello?")
	wantCode(t, err, protocol.CodeBlocked)
	_, err = alice.RequestFriend(ctx, "bob", "")
	wantCode(t, err, protocol.CodeBlocked)
	_, err = bob.RequestFriend(ctx, "alice", "")
	wantCode(t, err, protocol.CodeBlocked)
	// Typing is accepted and not pushed: a blocked user cannot tell.
	if err := alice.Typing(ctx, "bob", true); err != nil {
		t.Fatalf("Typing to a user who blocks: %v", err)
	}
	wantCode(t, bob.Block(ctx, "nobody"), protocol.CodeUnknownUser)
	wantCode(t, bob.Block(ctx, "bob"), protocol.CodeBadRequest)

	if err := bob.Unblock(ctx, "alice"); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	if err := bob.Unblock(ctx, "alice"); err != nil {
		t.Fatalf("Unblock again: %v", err)
	}
	if users, err := bob.Blocks(ctx); err != nil || users == nil || len(users) != 0 {
		t.Fatalf("Blocks after Unblock = %#v, %v", users, err)
	}
	// The next event bob sees is the stop after this start: the start to
	// him while he blocked alice was not pushed.
	if err := alice.Typing(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	if err := alice.Typing(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "unblocked"); err != nil {
		t.Fatalf("Send after Unblock: %v", err)
	}
	if m := recv(t, bob); m.Body != "unblocked" {
		t.Fatalf("bob got %+v", m)
	}
	expectEvents(t, bob, client.Event{Type: protocol.TypeTyping, User: "alice", State: "start"})
}

// TestPresenceAndTyping: presence changes reach friends (and only them),
// invisible looks offline, the last connection gone is offline; typing
// arrives as start and stop.
func TestPresenceAndTyping(t *testing.T) {
	s := daemontest.Start(t, quickOffline)
	ctx := testCtx(t)
	alice, bob, carol := social(t, s, "alice"), social(t, s, "bob"), social(t, s, "carol")
	if _, err := alice.RequestFriend(ctx, "bob", ""); err != nil {
		t.Fatal(err)
	}
	if err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, bob,
		client.Event{Type: protocol.TypeFriendRequest, User: "alice"},
		client.Event{Type: protocol.TypeFriendAdded, User: "alice"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"})

	for _, p := range []struct{ state, text string }{{"busy", "in a meeting"}, {"busy", ""}, {"invisible", "hidden"}, {"online", ""}} {
		if err := alice.SetPresence(ctx, p.state, p.text); err != nil {
			t.Fatalf("SetPresence(%q, %q): %v", p.state, p.text, err)
		}
	}
	wantCode(t, alice.SetPresence(ctx, "asleep", ""), protocol.CodeBadRequest)
	wantCode(t, alice.SetPresence(ctx, "away", strings.Repeat("t", 101)), protocol.CodeBadRequest)
	expectEvents(t, bob,
		client.Event{Type: protocol.TypePresence, User: "alice", State: "busy", Text: "in a meeting"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "busy"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "offline"},
		client.Event{Type: protocol.TypePresence, User: "alice", State: "online"})

	if err := alice.Typing(ctx, "bob", true); err != nil {
		t.Fatalf("Typing start: %v", err)
	}
	if err := alice.Typing(ctx, "bob", false); err != nil {
		t.Fatalf("Typing stop: %v", err)
	}
	expectEvents(t, bob,
		client.Event{Type: protocol.TypeTyping, User: "alice", State: "start"},
		client.Event{Type: protocol.TypeTyping, User: "alice", State: "stop"})
	wantCode(t, alice.Typing(ctx, "alice", true), protocol.CodeBadRequest)

	// The last connection gone: offline, once the debounce has passed.
	alice.Close()
	expectEvents(t, bob, client.Event{Type: protocol.TypePresence, User: "alice", State: "offline"})

	// carol, no friend of alice's, saw none of it: her first event is the
	// request bob makes now.
	if _, err := bob.RequestFriend(ctx, "carol", ""); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, carol, client.Event{Type: protocol.TypeFriendRequest, User: "bob"})
}

// TestEventsOff: without Options.Events the pushes other than messages
// are dropped (and do not hold up the messages behind them) and Events is
// closed.
func TestEventsOff(t *testing.T) {
	s := daemontest.Start(t)
	ctx := testCtx(t)
	alice, bob := user(t, s, "alice"), social(t, s, "bob")
	if _, ok := <-alice.Events(); ok {
		t.Fatal("Events delivered an event without Options.Events")
	}
	if _, err := bob.RequestFriend(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "alice", "after the request"); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, alice); m.Body != "after the request" {
		t.Fatalf("alice got %+v", m)
	}
	if err := alice.AcceptFriend(ctx, "bob"); err != nil {
		t.Fatalf("AcceptFriend without Events: %v", err)
	}
}

// TestEventFrames: how each push maps to an Event, against a fake server;
// events queued before the end are still delivered, then Events closes.
func TestEventFrames(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{Events: true})
	if err != nil {
		t.Fatal(err)
	}
	f.write(t,
		`{"type":"friend_request","from":"alice","note":"hi","ts":5}`,
		`{"type":"msg","msg_id":"1","from":"a","to":"b","body":"one","ts":1}`,
		`{"type":"friend_added","user":"bob","since":6}`,
		`{"type":"friend_removed","user":"bob"}`,
		`{"type":"friend_declined","user":"carol"}`,
		`{"type":"friend_cancelled","user":"dave"}`,
		`{"type":"presence","user":"bob","state":"away","text":"lunch"}`,
		`{"type":"typing","from":"alice","state":"start"}`,
		`{"type":"notice","message":"restart at 22:00"}`,
		`{"type":"future_push","user":"x","flavour":"new"}`,
	)
	f.conn.Close()
	<-c.Done()
	var got []client.Event
	for e := range c.Events() {
		got = append(got, e)
	}
	want := []client.Event{
		{Type: protocol.TypeFriendRequest, User: "alice", Note: "hi", TS: 5},
		{Type: protocol.TypeFriendAdded, User: "bob", Since: 6},
		{Type: protocol.TypeFriendRemoved, User: "bob"},
		{Type: protocol.TypeFriendDeclined, User: "carol"},
		{Type: protocol.TypeFriendCancelled, User: "dave"},
		{Type: protocol.TypePresence, User: "bob", State: "away", Text: "lunch"},
		{Type: protocol.TypeTyping, User: "alice", State: "start"},
		{Type: protocol.TypeNotice, Text: "restart at 22:00"},
		{Type: "future_push", User: "x"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n got %+v\nwant %+v", got, want)
	}
	if m, ok := <-c.Messages(); !ok || m.Body != "one" {
		t.Fatalf("message among the events: %+v, %v", m, ok)
	}
}

// TestSocialRequestFrames: the wire form of each request.
func TestSocialRequestFrames(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for _, tc := range []struct {
		call  func() error
		want  string
		reply string
	}{
		{func() error { _, err := c.RequestFriend(ctx, "bob", ""); return err }, `{"type":"friend_request","id":"1","to":"bob"}`, `{"type":"ok","id":"1","status":"pending"}`},
		{func() error { _, err := c.RequestFriend(ctx, "bob", "hi \"b\""); return err }, `{"type":"friend_request","id":"2","to":"bob","note":"hi \"b\""}`, `{"type":"ok","id":"2","status":"friends"}`},
		{func() error { return c.AcceptFriend(ctx, "a") }, `{"type":"friend_accept","id":"3","user":"a"}`, `{"type":"ok","id":"3"}`},
		{func() error { return c.DeclineFriend(ctx, "a") }, `{"type":"friend_decline","id":"4","user":"a"}`, `{"type":"ok","id":"4"}`},
		{func() error { return c.CancelFriendRequest(ctx, "a") }, `{"type":"friend_cancel","id":"5","to":"a"}`, `{"type":"ok","id":"5"}`},
		{func() error { return c.RemoveFriend(ctx, "a") }, `{"type":"friend_remove","id":"6","user":"a"}`, `{"type":"ok","id":"6"}`},
		{func() error { return c.Block(ctx, "a") }, `{"type":"block","id":"7","user":"a"}`, `{"type":"ok","id":"7"}`},
		{func() error { return c.Unblock(ctx, "a") }, `{"type":"unblock","id":"8","user":"a"}`, `{"type":"ok","id":"8"}`},
		{func() error { _, err := c.Blocks(ctx); return err }, `{"type":"blocks","id":"9"}`, `{"type":"ok","id":"9","users":[]}`},
		{func() error { _, err := c.Friends(ctx); return err }, `{"type":"friends","id":"10"}`, `{"type":"ok","id":"10"}`},
		{func() error { return c.SetPresence(ctx, "away", "") }, `{"type":"presence","id":"11","state":"away","text":""}`, `{"type":"ok","id":"11"}`},
		{func() error { return c.Typing(ctx, "a", true) }, `{"type":"typing","id":"12","to":"a","state":"start"}`, `{"type":"ok","id":"12"}`},
		{func() error { return c.Typing(ctx, "a", false) }, `{"type":"typing","id":"13","to":"a","state":"stop"}`, `{"type":"ok","id":"13"}`},
	} {
		done := make(chan error, 1)
		go func() { done <- tc.call() }()
		if got := f.read(t); got != tc.want+"\n" {
			t.Fatalf("request %s, want %s", got, tc.want)
		}
		f.write(t, tc.reply)
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", tc.want, err)
		}
	}
	// A listing whose lists the server left out still has empty ones.
	done := make(chan *client.FriendList, 1)
	go func() { fl, _ := c.Friends(ctx); done <- fl }()
	f.read(t)
	f.write(t, `{"type":"ok","id":"14"}`)
	if fl := <-done; fl == nil || fl.Friends == nil || fl.Incoming == nil || fl.Outgoing == nil {
		t.Fatalf("Friends of an empty reply = %+v", fl)
	}
}
