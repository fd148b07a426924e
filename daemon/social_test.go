package daemon_test

import (
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

// quickOffline makes friends see a closed user offline after 100 ms.
func quickOffline(c *config.Config) { c.Presence.OfflineDebounce = 100 * time.Millisecond }

// befriend makes a and b friends through the protocol, consuming the
// pushes it causes on the two connections.
func befriend(t *testing.T, a, b *daemontest.Conn, an, bn string) {
	t.Helper()
	a.Send(`{"type":"friend_request","id":"fr","to":"` + bn + `","note":"hi"}`)
	a.Expect(`{"type":"ok","id":"fr","status":"pending"}`)
	b.Expect(`{"type":"friend_request","from":"` + an + `","note":"hi"}`)
	b.Send(`{"type":"friend_accept","id":"fa","user":"` + an + `"}`)
	b.Expect(`{"type":"ok","id":"fa"}`)
	b.Expect(`{"type":"friend_added","user":"` + an + `"}`)
	b.Expect(`{"type":"presence","user":"` + an + `","state":"online"}`)
	a.Expect(`{"type":"friend_added","user":"` + bn + `"}`)
	a.Expect(`{"type":"presence","user":"` + bn + `","state":"online"}`)
}

// TestHelloFeatures: with the default sqlite storage, hello lists every
// extension.
func TestHelloFeatures(t *testing.T) {
	s := daemontest.Start(t)
	c := daemontest.DialRaw(t, s.Addr)
	c.Expect(`{"type":"hello","proto":1,"features":["friends","presence","typing","groups","resume"]}`)
}

// TestFriendsFlow walks a friendship from request to removal, as two
// users would, and the listing at each step.
func TestFriendsFlow(t *testing.T) {
	s := daemontest.Start(t, quickOffline)
	alice, bob := s.User(t, "alice"), s.User(t, "bob")

	alice.Send(`{"type":"friend_request","id":1,"to":"bob","note":"it's alice"}`)
	alice.Expect(`{"type":"ok","id":1,"status":"pending"}`)
	push := bob.Expect(`{"type":"friend_request","from":"alice","note":"it's alice"}`)
	if push.TS <= 0 {
		t.Errorf("friend_request push without ts: %+v", push)
	}
	bob.Send(`{"type":"friends","id":2}`)
	line := bob.ReadLine()
	if err := daemontest.Match(line, `{"type":"ok","id":2,"friends":[],"outgoing":[]}`); err != nil ||
		!strings.Contains(line, `"incoming":[{"from":"alice","note":"it's alice","ts":`) {
		t.Fatalf("bob's listing: %s (%v)", line, err)
	}
	alice.Send(`{"type":"friends","id":3}`)
	if line := alice.ReadLine(); !strings.Contains(line, `"outgoing":[{"to":"bob","note":"it's alice","ts":`) {
		t.Fatalf("alice's listing: %s", line)
	}

	bob.Send(`{"type":"friend_accept","id":4,"user":"alice"}`)
	bob.Expect(`{"type":"ok","id":4}`)
	bob.Expect(`{"type":"friend_added","user":"alice"}`)
	bob.Expect(`{"type":"presence","user":"alice","state":"online"}`)
	alice.Expect(`{"type":"friend_added","user":"bob"}`)
	alice.Expect(`{"type":"presence","user":"bob","state":"online"}`)
	bob.Send(`{"type":"friends","id":5}`)
	if line := bob.ReadLine(); !strings.Contains(line, `"friends":[{"user":"alice","since":`) ||
		!strings.Contains(line, `"presence":"online"`) || !strings.Contains(line, `"incoming":[]`) {
		t.Fatalf("bob's listing after accept: %s", line)
	}
	bob.Send(`{"type":"friend_accept","id":6,"user":"alice"}`)
	bob.Expect(`{"type":"error","id":6,"code":"no_request"}`)

	// A second request between friends says so.
	alice.Send(`{"type":"friend_request","id":7,"to":"bob"}`)
	alice.Expect(`{"type":"ok","id":7,"status":"friends"}`)

	alice.Send(`{"type":"friend_remove","id":8,"user":"bob"}`)
	alice.Expect(`{"type":"ok","id":8}`)
	bob.Expect(`{"type":"friend_removed","user":"alice"}`)
	alice.Send(`{"type":"friend_remove","id":9,"user":"bob"}`)
	alice.Expect(`{"type":"error","id":9,"code":"not_friends"}`)

	// Decline and cancel.
	alice.Send(`{"type":"friend_request","id":10,"to":"bob"}`)
	alice.Expect(`{"type":"ok","id":10,"status":"pending"}`)
	bob.Expect(`{"type":"friend_request","from":"alice"}`)
	bob.Send(`{"type":"friend_decline","id":11,"user":"alice"}`)
	bob.Expect(`{"type":"ok","id":11}`)
	alice.Expect(`{"type":"friend_declined","user":"bob"}`)
	alice.Send(`{"type":"friend_request","id":12,"to":"bob"}`)
	alice.Expect(`{"type":"ok","id":12,"status":"pending"}`)
	bob.Expect(`{"type":"friend_request","from":"alice"}`)
	alice.Send(`{"type":"friend_cancel","id":13,"to":"bob"}`)
	alice.Expect(`{"type":"ok","id":13}`)
	bob.Expect(`{"type":"friend_cancelled","user":"alice"}`)
	alice.Send(`{"type":"friend_cancel","id":14,"to":"bob"}`)
	alice.Expect(`{"type":"error","id":14,"code":"no_request"}`)

	// Crossing requests make friends at once.
	bob.Send(`{"type":"friend_request","id":15,"to":"alice"}`)
	bob.Expect(`{"type":"ok","id":15,"status":"pending"}`)
	alice.Expect(`{"type":"friend_request","from":"bob"}`)
	alice.Send(`{"type":"friend_request","id":16,"to":"bob"}`)
	alice.Expect(`{"type":"ok","id":16,"status":"friends"}`)
	alice.Expect(`{"type":"friend_added","user":"bob"}`)
	bob.Expect(`{"type":"friend_added","user":"alice"}`)
}

// TestFriendRequestToOfflineUser: a request waits for an offline user,
// like a message, and survives a restart of the server.
func TestFriendRequestToOfflineUser(t *testing.T) {
	s := daemontest.Start(t)
	s.User(t, "dave").C.Close()
	alice := s.User(t, "alice")
	alice.Send(`{"type":"friend_request","id":1,"to":"dave","note":"remember me?"}`)
	alice.Expect(`{"type":"ok","id":1,"status":"pending"}`)
	// A new qqd on the same data directory.
	s.Shutdown()
	s = daemontest.StartWith(t, s.Config, nil)
	dave := s.Dial(t)
	dave.Login("dave", "password1")
	dave.Send(`{"type":"friends","id":2}`)
	if line := dave.ReadLine(); !strings.Contains(line, `"incoming":[{"from":"alice","note":"remember me?"`) {
		t.Fatalf("dave's listing after a restart: %s", line)
	}
}

// TestPresenceOnlyToFriends: presence changes reach friends, on real
// transitions only, and never anyone else; invisible users look offline
// and are not listed.
func TestPresenceOnlyToFriends(t *testing.T) {
	s := daemontest.Start(t, quickOffline)
	alice, bob, carol := s.User(t, "alice"), s.User(t, "bob"), s.User(t, "carol")
	befriend(t, alice, bob, "alice", "bob")

	alice.Send(`{"type":"presence","id":1,"state":"away","text":"lunch"}`)
	alice.Expect(`{"type":"ok","id":1}`)
	bob.Expect(`{"type":"presence","user":"alice","state":"away","text":"lunch"}`)
	alice.Send(`{"type":"presence","id":2,"state":"away"}`) // text kept: no change
	alice.Expect(`{"type":"ok","id":2}`)
	alice.Send(`{"type":"presence","id":3,"state":"busy","text":""}`)
	alice.Expect(`{"type":"ok","id":3}`)
	if f := bob.Expect(`{"type":"presence","user":"alice","state":"busy"}`); f.Text != "" {
		t.Errorf("cleared text still pushed: %+v", f)
	}

	// A second connection of alice is no transition.
	alice2 := s.Dial(t)
	alice2.Login("alice", "password1")
	alice2.C.Close()

	alice.Send(`{"type":"presence","id":4,"state":"invisible"}`)
	alice.Expect(`{"type":"ok","id":4}`)
	bob.Expect(`{"type":"presence","user":"alice","state":"offline"}`)
	carol.Send(`{"type":"users","id":5}`)
	carol.Expect(`{"type":"ok","id":5,"users":["bob","carol"]}`)
	bob.Send(`{"type":"friends","id":6}`)
	if line := bob.ReadLine(); !strings.Contains(line, `{"user":"alice","since":`) || !strings.Contains(line, `"presence":"offline"`) {
		t.Fatalf("bob sees invisible alice as: %s", line)
	}
	alice.Send(`{"type":"presence","id":7,"state":"online"}`)
	alice.Expect(`{"type":"ok","id":7}`)
	bob.Expect(`{"type":"presence","user":"alice","state":"online"}`)

	// The last connection gone: offline after the debounce.
	alice.C.Close()
	bob.Expect(`{"type":"presence","user":"alice","state":"offline"}`)
	// carol, no friend of anyone, heard nothing at all.
	carol.ExpectSilence(300 * time.Millisecond)
	carol.Send(`{"type":"ping","id":8}`)
	carol.Expect(`{"type":"ok","id":8}`)
}

// TestBlock: a blocked user's sends, friend requests and typing reach
// nothing, and nothing is stored.
func TestBlock(t *testing.T) {
	s := daemontest.Start(t)
	alice, bob := s.User(t, "alice"), s.User(t, "bob")
	befriend(t, alice, bob, "alice", "bob")
	bob.Send(`{"type":"block","id":1,"user":"alice"}`)
	bob.Expect(`{"type":"ok","id":1}`)
	alice.Expect(`{"type":"friend_removed","user":"bob"}`)

	alice.Send(`{"type":"send","id":2,"to":"bob","body":"hello?"}`)
	alice.Expect(`{"type":"error","id":2,"code":"blocked"}`)
	alice.Send(`{"type":"friend_request","id":3,"to":"bob"}`)
	alice.Expect(`{"type":"error","id":3,"code":"blocked"}`)
	alice.Send(`{"type":"typing","id":4,"to":"bob","state":"start"}`)
	alice.Expect(`{"type":"ok","id":4}`) // typing never reveals a block
	bob.ExpectSilence(200 * time.Millisecond)
	bob.Send(`{"type":"offline","id":5}`)
	bob.Expect(`{"type":"ok","id":5,"messages":[]}`)
	bob.Send(`{"type":"history","id":6,"with":"alice"}`)
	bob.Expect(`{"type":"ok","id":6,"messages":[]}`)
	bob.Send(`{"type":"blocks","id":7}`)
	bob.Expect(`{"type":"ok","id":7,"users":["alice"]}`)
	// bob asking a user he blocks: unblock first.
	bob.Send(`{"type":"friend_request","id":8,"to":"alice"}`)
	bob.Expect(`{"type":"error","id":8,"code":"blocked"}`)

	bob.Send(`{"type":"unblock","id":9,"user":"alice"}`)
	bob.Expect(`{"type":"ok","id":9}`)
	alice.Send(`{"type":"send","id":10,"to":"bob","body":"hello again"}`)
	alice.Expect(`{"type":"ok","id":10,"status":"sent"}`)
	bob.Expect(`{"type":"msg","from":"alice","body":"hello again"}`)
}

// TestTyping: start and stop reach the online recipient, an unanswered
// start expires, and typing is never stored.
func TestTyping(t *testing.T) {
	s := daemontest.Start(t)
	alice, bob := s.User(t, "alice"), s.User(t, "bob")
	alice.Send(`{"type":"typing","id":1,"to":"bob","state":"start"}`)
	alice.Expect(`{"type":"ok","id":1}`)
	bob.Expect(`{"type":"typing","from":"alice","state":"start"}`)
	alice.Send(`{"type":"typing","id":2,"to":"bob","state":"start"}`) // extends, no new push
	alice.Expect(`{"type":"ok","id":2}`)
	alice.Send(`{"type":"typing","id":3,"to":"bob","state":"stop"}`)
	alice.Expect(`{"type":"ok","id":3}`)
	bob.Expect(`{"type":"typing","from":"alice","state":"stop"}`)

	start := time.Now()
	alice.Send(`{"type":"typing","id":4,"to":"bob","state":"start"}`)
	alice.Expect(`{"type":"ok","id":4}`)
	bob.Expect(`{"type":"typing","from":"alice","state":"start"}`)
	bob.Expect(`{"type":"typing","from":"alice","state":"stop"}`) // expired
	if d := time.Since(start); d < 5*time.Second {
		t.Errorf("typing expired after %v, want about 6s", d)
	}
	bob.Send(`{"type":"offline","id":5}`)
	bob.Expect(`{"type":"ok","id":5,"messages":[]}`)
}

// TestFriendsOnlyDirectMessages: with direct_messages: friends, a send
// to a non-friend is refused with nothing stored.
func TestFriendsOnlyDirectMessages(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.DirectMessages = config.DirectMessagesFriends })
	alice, bob := s.User(t, "alice"), s.User(t, "bob")
	alice.Send(`{"type":"send","id":1,"to":"bob","body":"hi stranger"}`)
	alice.Expect(`{"type":"error","id":1,"code":"not_friends"}`)
	befriend(t, alice, bob, "alice", "bob")
	alice.Send(`{"type":"send","id":2,"to":"bob","body":"hi friend"}`)
	alice.Expect(`{"type":"ok","id":2,"status":"sent"}`)
	bob.Expect(`{"type":"msg","from":"alice","body":"hi friend"}`)
	bob.Send(`{"type":"history","id":3,"with":"alice"}`)
	if line := bob.ReadLine(); strings.Contains(line, "stranger") || !strings.Contains(line, "hi friend") {
		t.Fatalf("history: %s", line)
	}
}

// TestSocialBadInput: every new request with bad fields gets bad_request
// (or its documented code), and the connection stays usable.
func TestSocialBadInput(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.Limits.FriendRequestsPerDay = 2 })
	c := s.User(t, "alice")
	s.User(t, "bob")
	s.User(t, "carol")
	for _, tc := range []struct{ send, want string }{
		{`{"type":"friend_request","id":1}`, `{"type":"error","id":1,"code":"bad_request"}`},
		{`{"type":"friend_request","id":2,"to":"alice"}`, `{"type":"error","id":2,"code":"bad_request"}`},
		{`{"type":"friend_request","id":3,"to":"Not A Name"}`, `{"type":"error","id":3,"code":"bad_request"}`},
		{`{"type":"friend_request","id":4,"to":"bob","note":"` + strings.Repeat("n", 201) + `"}`, `{"type":"error","id":4,"code":"bad_request"}`},
		{`{"type":"friend_request","id":5,"to":"bob","note":"two\nlines"}`, `{"type":"error","id":5,"code":"bad_request"}`},
		{`{"type":"friend_request","id":6,"to":"bob","note":7}`, `{"type":"error","id":6,"code":"bad_request"}`},
		{`{"type":"friend_request","id":7,"to":"nobody"}`, `{"type":"error","id":7,"code":"unknown_user"}`},
		{`{"type":"friend_accept","id":8}`, `{"type":"error","id":8,"code":"bad_request"}`},
		{`{"type":"friend_decline","id":9,"user":"bob"}`, `{"type":"error","id":9,"code":"no_request"}`},
		{`{"type":"friend_cancel","id":10,"to":["bob"]}`, `{"type":"error","id":10,"code":"bad_request"}`},
		{`{"type":"friend_remove","id":11,"user":"carol"}`, `{"type":"error","id":11,"code":"not_friends"}`},
		{`{"type":"block","id":12,"user":"alice"}`, `{"type":"error","id":12,"code":"bad_request"}`},
		{`{"type":"block","id":13,"user":"nobody"}`, `{"type":"error","id":13,"code":"unknown_user"}`},
		{`{"type":"unblock","id":14,"user":"carol"}`, `{"type":"ok","id":14}`},
		{`{"type":"presence","id":15}`, `{"type":"error","id":15,"code":"bad_request"}`},
		{`{"type":"presence","id":16,"state":"offline"}`, `{"type":"error","id":16,"code":"bad_request"}`},
		{`{"type":"presence","id":17,"state":"away","text":"` + strings.Repeat("t", 101) + `"}`, `{"type":"error","id":17,"code":"bad_request"}`},
		{`{"type":"typing","id":18,"to":"bob"}`, `{"type":"error","id":18,"code":"bad_request"}`},
		{`{"type":"typing","id":19,"to":"bob","state":"maybe"}`, `{"type":"error","id":19,"code":"bad_request"}`},
		{`{"type":"typing","id":20,"to":"alice","state":"start"}`, `{"type":"error","id":20,"code":"bad_request"}`},
		// friend_requests_per_day: 2 (a refused request is refunded).
		{`{"type":"friend_request","id":21,"to":"bob"}`, `{"type":"ok","id":21,"status":"pending"}`},
		{`{"type":"friend_request","id":22,"to":"carol"}`, `{"type":"ok","id":22,"status":"pending"}`},
		{`{"type":"friend_request","id":23,"to":"carol"}`, `{"type":"error","id":23,"code":"rate_limited"}`},
		{`{"type":"ping","id":24}`, `{"type":"ok","id":24}`},
	} {
		c.Send(tc.send)
		c.Expect(tc.want)
	}
	anon := s.Dial(t)
	for _, typ := range []string{"friend_request", "friend_accept", "friend_decline", "friend_cancel", "friend_remove",
		"friends", "block", "unblock", "blocks", "presence", "typing"} {
		anon.Send(`{"type":"` + typ + `","id":"x"}`)
		anon.Expect(`{"type":"error","id":"x","code":"not_logged_in"}`)
	}
}

// v1Storage is a real storage whose Social side is hidden, as a storage
// plugin of protocol version 1 is to the daemon.
type v1Storage struct{ plugins.Storage }

func (v1Storage) Social() (plugins.Social, bool) { return nil, false }

// TestWithoutSocialStorage: with a storage that keeps no friendships the
// extensions are off: no features in hello, their requests answer
// unknown_type, QQP/1 works as before; and direct_messages: friends is
// refused at start, since nothing could check it.
func TestWithoutSocialStorage(t *testing.T) {
	cfg := daemontest.Config(t)
	st := daemontest.OpenStore(t, cfg)
	s := daemontest.StartWith(t, cfg, v1Storage{st})
	raw := daemontest.DialRaw(t, s.Addr)
	if f := raw.Expect(`{"type":"hello","proto":1}`); len(f.Features) != 0 {
		t.Errorf("hello lists features %v with a storage that has none", f.Features)
	}
	alice := s.User(t, "alice")
	s.User(t, "bob")
	for _, typ := range []string{"friend_request", "friends", "block", "presence", "typing"} {
		alice.Send(`{"type":"` + typ + `","id":"x","to":"bob","user":"bob","state":"away"}`)
		alice.Expect(`{"type":"error","id":"x","code":"unknown_type"}`)
	}
	alice.Send(`{"type":"send","id":1,"to":"bob","body":"still QQP/1"}`)
	alice.Expect(`{"type":"ok","id":1,"status":"sent"}`)

	cfg2 := daemontest.Config(t, func(c *config.Config) { c.DirectMessages = config.DirectMessagesFriends })
	if _, err := daemon.New(cfg2, daemon.Deps{Storage: v1Storage{daemontest.OpenStore(t, cfg2)}}); err == nil ||
		!strings.Contains(err.Error(), "direct_messages: friends") {
		t.Errorf("New with direct_messages: friends and no friendships in storage = %v, want a refusal", err)
	}
}
