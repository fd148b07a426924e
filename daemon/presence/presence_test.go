package presence_test

import (
	"slices"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/presence"
)

func online(text string) presence.Presence {
	return presence.Presence{State: presence.Online, Text: text}
}

func TestTransitionsOnlyToFriends(t *testing.T) {
	notified := make(chan presence.Update, 10)
	r := presence.New(20*time.Millisecond, func(u presence.Update) { notified <- u })

	if ups := r.Join("bob", []string{"alice"}, nil); len(ups) != 1 || len(ups[0].To) != 0 {
		t.Fatalf("bob's first connection: %+v; want one update to nobody (alice is offline)", ups)
	}
	ups := r.Join("alice", []string{"bob"}, nil)
	if len(ups) != 1 || ups[0].User != "alice" || ups[0].P != online("") || !slices.Equal(ups[0].To, []string{"bob"}) {
		t.Fatalf("alice up: %+v; want online to bob", ups)
	}
	r.Join("carol", nil, nil) // not a friend of anyone
	if ups := r.Join("alice", nil, nil); len(ups) != 0 {
		t.Errorf("alice's second connection pushed %+v; want nothing", ups)
	}
	if ups := r.Set("alice", presence.Presence{State: presence.Away, Text: "lunch"}); len(ups) != 1 ||
		ups[0].P.State != presence.Away || !slices.Equal(ups[0].To, []string{"bob"}) {
		t.Errorf("away: %+v", ups)
	}
	if ups := r.Set("alice", presence.Presence{State: presence.Away, Text: "lunch"}); len(ups) != 0 {
		t.Errorf("the same presence again pushed %+v", ups)
	}
	ups = r.Set("alice", presence.Presence{State: presence.Invisible})
	if len(ups) != 1 || ups[0].P != (presence.Presence{State: presence.Offline}) || !r.Invisible("alice") {
		t.Errorf("invisible: %+v; want offline to bob", ups)
	}
	if got := r.Shown("alice"); got.State != presence.Offline {
		t.Errorf("Shown(invisible alice) = %v", got)
	}
	r.Set("alice", online(""))

	// A reconnect within the debounce does not flap.
	r.Leave("alice")
	r.Leave("alice")
	r.Join("alice", nil, nil)
	select {
	case u := <-notified:
		t.Fatalf("reconnect within the debounce notified %+v", u)
	case <-time.After(60 * time.Millisecond):
	}
	r.Leave("alice")
	select {
	case u := <-notified:
		if u.User != "alice" || u.P.State != presence.Offline || !slices.Equal(u.To, []string{"bob"}) {
			t.Errorf("offline: %+v", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no offline after the debounce")
	}
	if r.Len() != 2 {
		t.Errorf("%d users held, want 2 (bob, carol)", r.Len())
	}
}

func TestFriendshipChanges(t *testing.T) {
	r := presence.New(time.Hour, func(presence.Update) {})
	r.Join("alice", nil, nil)
	r.Join("bob", nil, nil)
	ups := r.Befriend("alice", "bob")
	if len(ups) != 2 {
		t.Fatalf("Befriend: %+v; want each told of the other", ups)
	}
	if ups := r.Set("bob", presence.Presence{State: presence.Busy}); len(ups) != 1 || !slices.Equal(ups[0].To, []string{"alice"}) {
		t.Errorf("busy after befriending: %+v", ups)
	}
	r.Block("alice", "bob")
	if !r.Blocks("alice", "bob") || r.Blocks("bob", "alice") {
		t.Error("Blocks after alice blocked bob")
	}
	if ups := r.Set("bob", online("")); len(ups) != 1 || len(ups[0].To) != 0 {
		t.Errorf("after the block ended the friendship, bob's change went to %+v", ups)
	}
	r.Unblock("alice", "bob")
	if r.Blocks("alice", "bob") {
		t.Error("still blocked after Unblock")
	}
}

func TestTypingExpires(t *testing.T) {
	stops := make(chan [2]string, 4)
	ty := presence.NewTyping(30*time.Millisecond, func(from, to string) { stops <- [2]string{from, to} })
	if !ty.Start("alice", "bob") || ty.Start("alice", "bob") {
		t.Fatal("the first start begins typing, the second only extends it")
	}
	if !ty.Stop("alice", "bob") || ty.Stop("alice", "bob") {
		t.Fatal("Stop after Start reports it was typing, once")
	}
	ty.Start("alice", "bob")
	select {
	case s := <-stops:
		if s != [2]string{"alice", "bob"} {
			t.Errorf("expired %v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("typing did not expire")
	}
	if ty.Len() != 0 {
		t.Errorf("%d pairs typing after expiry", ty.Len())
	}
}

func TestParseState(t *testing.T) {
	for _, s := range []string{"online", "away", "busy", "invisible"} {
		if st, ok := presence.ParseState(s); !ok || st.String() != s {
			t.Errorf("ParseState(%q) = %v, %v", s, st, ok)
		}
	}
	for _, s := range []string{"offline", "", "Online"} {
		if _, ok := presence.ParseState(s); ok {
			t.Errorf("ParseState(%q) accepted", s)
		}
	}
}
