package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// createGroup makes owner create a group and returns its id.
func createGroup(t *testing.T, owner *daemontest.Conn, fields string) string {
	t.Helper()
	owner.Send(`{"type":"group_create","id":"gc","name":"crew"` + fields + `}`)
	f := owner.Expect(`{"type":"ok","id":"gc","seq":1}`)
	if f.Group == "" {
		t.Fatalf("group_create: no group id: %+v", f)
	}
	return f.Group
}

// join makes c join the open group g and returns the seq of its joined
// entry.
func join(t *testing.T, c *daemontest.Conn, g string) int64 {
	t.Helper()
	c.Send(`{"type":"group_join","id":"gj","group":"` + g + `"}`)
	f := c.Expect(`{"type":"ok","id":"gj","status":"joined"}`)
	return f.Seq
}

// expectEntry reads the next frame, a group_entry of group g with seq
// and kind.
func expectEntry(t *testing.T, c *daemontest.Conn, g string, seq int64, kind string) *protocol.ServerFrame {
	t.Helper()
	return c.Expect(fmt.Sprintf(`{"type":"group_entry","group":%q,"seq":%d,"kind":%q}`, g, seq, kind))
}

// TestGroupChat: a group of three chats; entries reach every member but
// the sending connection, in order, with contiguous seqs; the listing
// counts unread entries and mentions; sending advances the sender's
// cursor; an ack moves it, never back.
func TestGroupChat(t *testing.T) {
	s := daemontest.Start(t)
	alice, bob, carol := s.User(t, "alice"), s.User(t, "bob"), s.User(t, "carol")
	g := createGroup(t, alice, "")
	if seq := join(t, bob, g); seq != 2 {
		t.Fatalf("bob joined at %d, want 2", seq)
	}
	expectEntry(t, alice, g, 2, "joined")
	join(t, carol, g)
	expectEntry(t, alice, g, 3, "joined")
	expectEntry(t, bob, g, 3, "joined")

	alice.Send(`{"type":"group_send","id":1,"group":"` + g + `","body":"hello crew","mentions":["bob"]}`)
	ok := alice.Expect(`{"type":"ok","id":1,"group":"` + g + `","seq":4}`)
	if ok.TS <= 0 || ok.MsgID == "" {
		t.Errorf("ok to group_send: %+v", ok)
	}
	for _, c := range []*daemontest.Conn{bob, carol} {
		f := expectEntry(t, c, g, 4, "msg")
		if f.From != "alice" || f.Body != "hello crew" || f.MsgID != ok.MsgID || f.TS != ok.TS {
			t.Errorf("pushed entry %+v", f)
		}
	}
	alice.ExpectSilence(100 * time.Millisecond) // not to the sending connection

	bob.Send(`{"type":"groups","id":2}`)
	f := bob.Expect(`{"type":"ok","id":2}`)
	// A new member's cursor starts just before their joined entry (2):
	// unread are their join, carol's and the message.
	if len(f.Groups) != 1 || f.Groups[0].Group != g || f.Groups[0].ReadSeq != 1 || f.Groups[0].Unread != 3 ||
		f.Groups[0].Mentions != 1 || f.Groups[0].LastSeq != 4 || f.Groups[0].Role != "member" || f.Groups[0].Members != 3 {
		t.Fatalf("bob's groups: %+v", f.Groups)
	}
	alice.Send(`{"type":"groups","id":3}`)
	if f := alice.Expect(`{"type":"ok","id":3}`); len(f.Groups) != 1 || f.Groups[0].Unread != 0 || f.Groups[0].Role != "owner" {
		t.Fatalf("alice's groups (her send advanced her cursor): %+v", f.Groups)
	}
	bob.Send(`{"type":"group_ack","id":4,"group":"` + g + `","seq":4}`)
	bob.Expect(`{"type":"ok","id":4}`)
	bob.Send(`{"type":"group_ack","id":5,"group":"` + g + `","seq":2}`) // never back
	bob.Expect(`{"type":"ok","id":5}`)
	bob.Send(`{"type":"groups","id":6}`)
	if f := bob.Expect(`{"type":"ok","id":6}`); f.Groups[0].ReadSeq != 4 || f.Groups[0].Unread != 0 || f.Groups[0].Mentions != 0 {
		t.Fatalf("bob's groups after acking: %+v", f.Groups)
	}

	// History visibility "joined": carol sees from her join (seq 3) on.
	carol.Send(`{"type":"group_history","id":7,"group":"` + g + `"}`)
	f = carol.Expect(`{"type":"ok","id":7,"more":false}`)
	if len(f.Entries) != 2 || f.Entries[0].Seq != 3 || f.Entries[1].Seq != 4 || f.Entries[1].Body != "hello crew" {
		t.Fatalf("carol's history: %+v", f.Entries)
	}
	alice.Send(`{"type":"group_sync","id":8,"group":"` + g + `","after":0}`)
	if f := alice.Expect(`{"type":"ok","id":8,"more":false}`); len(f.Entries) != 4 || f.Entries[0].Kind != "created" {
		t.Fatalf("alice's log: %+v", f.Entries)
	}
}

// TestGroupOfflineCatchUp: a member offline for 1,000 messages catches
// up from the cursor, in order, with nothing missing, in pages.
func TestGroupOfflineCatchUp(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	dave := s.User(t, "dave")
	g := createGroup(t, alice, "")
	join(t, dave, g)
	expectEntry(t, alice, g, 2, "joined")
	dave.Send(`{"type":"group_ack","id":"a","group":"` + g + `","seq":2}`)
	dave.Expect(`{"type":"ok","id":"a"}`)
	dave.C.Close()
	const n = 1000
	for i := range n {
		alice.Send(fmt.Sprintf(`{"type":"group_send","id":%d,"group":%q,"body":"m%d","cid":"c%d"}`, i, g, i, i))
	}
	for i := range n {
		alice.Expect(fmt.Sprintf(`{"type":"ok","id":%d,"seq":%d}`, i, 3+i))
	}
	dave = s.Dial(t)
	dave.Login("dave", "password1")
	dave.Send(`{"type":"groups","id":"g"}`)
	f := dave.Expect(`{"type":"ok","id":"g"}`)
	if f.Groups[0].Unread != n || f.Groups[0].ReadSeq != 2 {
		t.Fatalf("dave's listing: %+v", f.Groups)
	}
	after, got := f.Groups[0].ReadSeq, 0
	for page := 0; ; page++ {
		dave.Send(fmt.Sprintf(`{"type":"group_sync","id":"s%d","group":%q,"after":%d,"limit":300}`, page, g, after))
		f := dave.Expect(fmt.Sprintf(`{"type":"ok","id":"s%d"}`, page))
		for _, e := range f.Entries {
			if e.Seq != after+1 || e.Body != "m"+strconv.Itoa(got) {
				t.Fatalf("entry %+v after seq %d, want seq %d body m%d", e, after, after+1, got)
			}
			after, got = e.Seq, got+1
		}
		if !f.More {
			break
		}
	}
	if got != n {
		t.Fatalf("caught up %d messages, want %d", got, n)
	}
}

// TestGroupKickMidStream: a member kicked at entry N sees N and never
// N+1, while messages flow.
func TestGroupKickMidStream(t *testing.T) {
	s := daemontest.Start(t)
	alice, bob := s.User(t, "alice"), s.User(t, "bob")
	g := createGroup(t, alice, "")
	join(t, bob, g)
	expectEntry(t, alice, g, 2, "joined")
	sender := s.Dial(t)
	sender.Login("alice", "password1")
	const n = 200
	for i := range n {
		sender.Send(fmt.Sprintf(`{"type":"group_send","id":%d,"group":%q,"body":"m%d"}`, i, g, i))
		if i == n/2 {
			alice.Send(`{"type":"group_kick","id":"k","group":"` + g + `","user":"bob"}`)
		}
	}
	var kickSeq int64
	for {
		f := alice.Read()
		if f.Type == protocol.TypeOK && string(f.ID) == `"k"` {
			kickSeq = f.Seq
			break
		}
	}
	// The sender, another connection of alice, also gets the kick.
	for i := 0; i < n; {
		if f := sender.Read(); f.Type == protocol.TypeOK {
			if string(f.ID) != strconv.Itoa(i) {
				t.Fatalf("sender: ok %s, want %d", f.ID, i)
			}
			i++
		}
	}
	// bob's view: contiguous entries up to and including his kick, then
	// nothing.
	last := int64(2)
	for {
		line, err := bob.TryRead()
		if err != nil {
			break
		}
		var e protocol.ServerFrame
		json.Unmarshal([]byte(line), &e)
		if e.Seq != last+1 {
			t.Fatalf("bob got seq %d after %d: %s", e.Seq, last, line)
		}
		last = e.Seq
		if e.Kind == "kicked" {
			break
		}
	}
	if last != kickSeq {
		t.Fatalf("bob's last entry is %d, his kick is %d", last, kickSeq)
	}
	bob.ExpectSilence(300 * time.Millisecond)
	bob.Send(`{"type":"group_send","id":"x","group":"` + g + `","body":"still here?"}`)
	bob.Expect(`{"type":"error","id":"x","code":"not_member"}`)
	bob.Send(`{"type":"group_sync","id":"y","group":"` + g + `","after":0}`)
	f := bob.Expect(`{"type":"ok","id":"y"}`)
	if n := len(f.Entries); n == 0 || f.Entries[n-1].Seq != kickSeq {
		t.Fatalf("bob's sync after the kick ends at %v, want his kick %d", f.Entries, kickSeq)
	}
}

// TestGroupSendRetry: a group send retried with the same cid gets the
// same answer, and is stored and pushed once; whether the retry is looked
// up before the filters or, marked "first", de-duplicated by the
// storage's Write. A cid names one message: reused in another group or
// for a direct message, it is refused.
func TestGroupSendRetry(t *testing.T) {
	for _, first := range []string{"", `,"first":true`} {
		t.Run("first="+strconv.FormatBool(first != ""), func(t *testing.T) {
			s := daemontest.Start(t)
			alice, bob := s.User(t, "alice"), s.User(t, "bob")
			g := createGroup(t, alice, "")
			join(t, bob, g)
			expectEntry(t, alice, g, 2, "joined")
			alice.Send(`{"type":"group_send","id":1,"group":"` + g + `","body":"once","cid":"k1"` + first + `}`)
			orig := alice.Expect(`{"type":"ok","id":1,"seq":3}`)
			expectEntry(t, bob, g, 3, "msg")
			alice.Send(`{"type":"group_send","id":2,"group":"` + g + `","body":"once","cid":"k1"` + first + `}`)
			again := alice.Expect(`{"type":"ok","id":2,"seq":3}`)
			if again.MsgID != orig.MsgID || again.TS != orig.TS {
				t.Errorf("retry answered %+v, first %+v", again, orig)
			}
			bob.ExpectSilence(200 * time.Millisecond)
			alice.Send(`{"type":"send","id":3,"to":"bob","body":"cid of a group message","cid":"k1"` + first + `}`)
			alice.Expect(`{"type":"error","id":3,"code":"bad_request"}`)
			g2 := createGroup(t, alice, "")
			alice.Send(`{"type":"group_send","id":4,"group":"` + g2 + `","body":"cid of another group's message","cid":"k1"` + first + `}`)
			alice.Expect(`{"type":"error","id":4,"code":"bad_request"}`)
		})
	}
}

// TestGroupRoles walks roles, policies, mutes and dissolution.
func TestGroupRoles(t *testing.T) {
	s := daemontest.Start(t)
	alice, bob, carol := s.User(t, "alice"), s.User(t, "bob"), s.User(t, "carol")
	g := createGroup(t, alice, `,"policy":"approval","history":"shared"`)
	bob.Send(`{"type":"group_join","id":1,"group":"` + g + `"}`)
	bob.Expect(`{"type":"ok","id":1,"status":"requested"}`)
	alice.Expect(`{"type":"group_join_request","group":"` + g + `","user":"bob"}`)
	alice.Send(`{"type":"group_requests","id":2,"group":"` + g + `"}`)
	if f := alice.Expect(`{"type":"ok","id":2}`); len(f.Requests) != 1 || f.Requests[0].User != "bob" {
		t.Fatalf("requests: %+v", f.Requests)
	}
	carol.Send(`{"type":"group_approve","id":3,"group":"` + g + `","user":"bob"}`)
	carol.Expect(`{"type":"error","id":3,"code":"not_member"}`)
	alice.Send(`{"type":"group_approve","id":4,"group":"` + g + `","user":"bob"}`)
	alice.Expect(`{"type":"ok","id":4,"seq":2}`)
	expectEntry(t, bob, g, 2, "joined")
	// Shared history: bob reads the creation.
	bob.Send(`{"type":"group_history","id":5,"group":"` + g + `"}`)
	if f := bob.Expect(`{"type":"ok","id":5}`); len(f.Entries) != 2 || f.Entries[0].Kind != "created" {
		t.Fatalf("shared history: %+v", f.Entries)
	}
	bob.Send(`{"type":"group_invite","id":6,"group":"` + g + `","user":"carol"}`)
	bob.Expect(`{"type":"error","id":6,"code":"not_allowed"}`)
	alice.Send(`{"type":"group_role","id":7,"group":"` + g + `","user":"bob","role":"admin"}`)
	alice.Expect(`{"type":"ok","id":7,"seq":3}`)
	expectEntry(t, bob, g, 3, "role")
	bob.Send(`{"type":"group_invite","id":8,"group":"` + g + `","user":"carol"}`)
	bob.Expect(`{"type":"ok","id":8,"seq":4}`)
	for _, c := range []*daemontest.Conn{alice, carol} {
		expectEntry(t, c, g, 4, "joined")
	}
	bob.Send(`{"type":"group_mute","id":9,"group":"` + g + `","user":"carol","seconds":600}`)
	bob.Expect(`{"type":"ok","id":9,"seq":5}`)
	for _, c := range []*daemontest.Conn{alice, carol} {
		expectEntry(t, c, g, 5, "muted")
	}
	carol.Send(`{"type":"group_send","id":10,"group":"` + g + `","body":"let me speak"}`)
	carol.Expect(`{"type":"error","id":10,"code":"muted"}`)
	carol.Send(`{"type":"group_send","id":11,"group":"` + g + `","body":"@all","mentions":["all"]}`)
	carol.Expect(`{"type":"error","id":11,"code":"muted"}`)
	bob.Send(`{"type":"group_mute","id":12,"group":"` + g + `","user":"carol","seconds":0}`)
	bob.Expect(`{"type":"ok","id":12,"seq":6}`)
	for _, c := range []*daemontest.Conn{alice, carol} {
		expectEntry(t, c, g, 6, "muted")
	}
	carol.Send(`{"type":"group_send","id":13,"group":"` + g + `","body":"hi all","mentions":["all"]}`)
	carol.Expect(`{"type":"error","id":13,"code":"not_allowed"}`) // @all is for admins
	alice.Send(`{"type":"group_mute_all","id":14,"group":"` + g + `","on":true}`)
	alice.Expect(`{"type":"ok","id":14,"seq":7}`)
	for _, c := range []*daemontest.Conn{bob, carol} {
		expectEntry(t, c, g, 7, "mute_all")
	}
	carol.Send(`{"type":"group_send","id":15,"group":"` + g + `","body":"quiet?"}`)
	carol.Expect(`{"type":"error","id":15,"code":"muted"}`)
	bob.Send(`{"type":"group_send","id":16,"group":"` + g + `","body":"admins may","mentions":["all"]}`)
	bob.Expect(`{"type":"ok","id":16,"seq":8}`)
	expectEntry(t, alice, g, 8, "msg")
	expectEntry(t, carol, g, 8, "msg")
	alice.Send(`{"type":"group_rename","id":17,"group":"` + g + `","name":"the crew"}`)
	alice.Expect(`{"type":"ok","id":17,"seq":9}`)
	for _, c := range []*daemontest.Conn{bob, carol} {
		expectEntry(t, c, g, 9, "renamed")
	}
	alice.Send(`{"type":"group_leave","id":18,"group":"` + g + `"}`)
	alice.Expect(`{"type":"error","id":18,"code":"not_allowed"}`) // the owner transfers first
	alice.Send(`{"type":"group_transfer","id":19,"group":"` + g + `","user":"carol"}`)
	alice.Expect(`{"type":"ok","id":19,"seq":10}`)
	for _, c := range []*daemontest.Conn{bob, carol} {
		expectEntry(t, c, g, 10, "owner")
	}
	alice.Send(`{"type":"group_dissolve","id":20,"group":"` + g + `"}`)
	alice.Expect(`{"type":"error","id":20,"code":"not_allowed"}`)
	carol.Send(`{"type":"group_dissolve","id":21,"group":"` + g + `"}`)
	carol.Expect(`{"type":"ok","id":21,"seq":11}`)
	for _, c := range []*daemontest.Conn{alice, bob} {
		expectEntry(t, c, g, 11, "dissolved")
	}
	bob.Send(`{"type":"group_send","id":22,"group":"` + g + `","body":"anyone?"}`)
	bob.Expect(`{"type":"error","id":22,"code":"no_group"}`)
	bob.Send(`{"type":"groups","id":23}`)
	if f := bob.Expect(`{"type":"ok","id":23}`); len(f.Groups) != 0 {
		t.Errorf("a dissolved group is listed: %+v", f.Groups)
	}
}

// TestGroupMembersPaged: the member listing pages by name.
func TestGroupMembersPaged(t *testing.T) {
	s := daemontest.Start(t)
	owner := s.User(t, "owner")
	g := createGroup(t, owner, "")
	for i := range 24 {
		c := s.User(t, fmt.Sprintf("m%02d", i))
		join(t, c, g)
		owner.Read() // the joined entry
		c.C.Close()
	}
	var names []string
	after := ""
	for page := 0; page < 10; page++ {
		owner.Send(fmt.Sprintf(`{"type":"group_members","id":%d,"group":%q,"after":%q,"limit":10}`, page, g, after))
		f := owner.Expect(fmt.Sprintf(`{"type":"ok","id":%d}`, page))
		for _, m := range f.Members {
			names = append(names, m.User)
			after = m.User
		}
		if !f.More {
			break
		}
	}
	if len(names) != 25 || names[0] != "m00" || names[24] != "owner" {
		t.Fatalf("members: %v", names)
	}
}

// TestGroupLimitsAndBadInput: bounds and malformed requests get their
// documented errors, nothing changes, and the connection stays usable.
func TestGroupLimitsAndBadInput(t *testing.T) {
	s, reg := startLimited(t, func(c *config.Config) {
		c.Groups.MaxMembers = 2
		c.Groups.CreatedPerDay = 2
		c.Groups.MaxMentions = 1
	})
	alice, bob, carol := s.User(t, "alice"), s.User(t, "bob"), s.User(t, "carol")
	g := createGroup(t, alice, "")
	join(t, bob, g)
	alice.Read()
	for _, tc := range []struct {
		c          *daemontest.Conn
		send, want string
	}{
		{carol, `{"type":"group_join","id":1,"group":"` + g + `"}`, `{"type":"error","id":1,"code":"group_full"}`},
		{alice, `{"type":"group_create","id":2,"name":""}`, `{"type":"error","id":2,"code":"bad_request"}`},
		{alice, `{"type":"group_create","id":3,"name":"` + strings.Repeat("n", 65) + `"}`, `{"type":"error","id":3,"code":"bad_request"}`},
		{alice, `{"type":"group_create","id":4,"name":"x","policy":"secret"}`, `{"type":"error","id":4,"code":"bad_request"}`},
		{alice, `{"type":"group_send","id":5,"group":"abc","body":"x"}`, `{"type":"error","id":5,"code":"bad_request"}`},
		{alice, `{"type":"group_send","id":6,"group":"999999","body":"x"}`, `{"type":"error","id":6,"code":"no_group"}`},
		{alice, `{"type":"group_send","id":7,"group":"` + g + `","body":""}`, `{"type":"error","id":7,"code":"bad_request"}`},
		{alice, `{"type":"group_send","id":8,"group":"` + g + `","body":"x","mentions":["bob","carol"]}`, `{"type":"error","id":8,"code":"bad_request"}`},
		{alice, `{"type":"group_send","id":9,"group":"` + g + `","body":"x","mentions":[7]}`, `{"type":"error","id":9,"code":"bad_request"}`},
		{alice, `{"type":"group_ack","id":10,"group":"` + g + `"}`, `{"type":"error","id":10,"code":"bad_request"}`},
		{alice, `{"type":"group_sync","id":11,"group":"` + g + `"}`, `{"type":"error","id":11,"code":"bad_request"}`},
		{carol, `{"type":"group_sync","id":12,"group":"` + g + `","after":0}`, `{"type":"error","id":12,"code":"not_member"}`},
		{alice, `{"type":"group_kick","id":13,"group":"` + g + `"}`, `{"type":"error","id":13,"code":"bad_request"}`},
		{alice, `{"type":"group_role","id":14,"group":"` + g + `","user":"bob","role":"king"}`, `{"type":"error","id":14,"code":"bad_request"}`},
		{alice, `{"type":"group_mute","id":15,"group":"` + g + `","user":"bob","seconds":-1}`, `{"type":"error","id":15,"code":"bad_request"}`},
		{alice, `{"type":"group_mute_all","id":16,"group":"` + g + `","on":"yes"}`, `{"type":"error","id":16,"code":"bad_request"}`},
		{alice, `{"type":"group_settings","id":17,"group":"` + g + `"}`, `{"type":"error","id":17,"code":"bad_request"}`},
		{bob, `{"type":"group_kick","id":18,"group":"` + g + `","user":"alice"}`, `{"type":"error","id":18,"code":"not_allowed"}`},
		{alice, `{"type":"group_create","id":19,"name":"second"}`, `{"type":"ok","id":19}`},
		{alice, `{"type":"group_create","id":20,"name":"third"}`, `{"type":"error","id":20,"code":"rate_limited"}`},
		{alice, `{"type":"ping","id":21}`, `{"type":"ok","id":21}`},
	} {
		tc.c.Send(tc.send)
		tc.c.Expect(tc.want)
	}
	anon := s.Dial(t)
	anon.Send(`{"type":"groups","id":"x"}`)
	anon.Expect(`{"type":"error","id":"x","code":"not_logged_in"}`)
	// Each limit's refusal is counted under its configuration key.
	for reason, want := range map[string]float64{"groups_max_members": 1, "groups_created_per_day": 1, "groups_max_mentions": 1, "groups_max_owned_or_joined": 0} {
		wantMetric(t, reg, want, "qqd_limit_refusals_total", "reason", reason)
	}
}

// TestGroupTyping: typing in a group reaches the other members online,
// not those who block the sender, not non-members; it expires like
// typing to a user, and bad requests get their errors.
func TestGroupTyping(t *testing.T) {
	s := daemontest.Start(t)
	alice, bob, carol, dave := s.User(t, "alice"), s.User(t, "bob"), s.User(t, "carol"), s.User(t, "dave")
	g := groupOfThree(t, alice, bob, carol)
	carol.Send(`{"type":"block","id":1,"user":"alice"}`)
	carol.Expect(`{"type":"ok","id":1}`)

	alice.Send(`{"type":"typing","id":1,"group":"` + g + `","state":"start"}`)
	alice.Expect(`{"type":"ok","id":1}`)
	bob.Expect(`{"type":"typing","from":"alice","group":"` + g + `","state":"start"}`)
	alice.Send(`{"type":"typing","id":2,"group":"` + g + `","state":"stop"}`)
	alice.Expect(`{"type":"ok","id":2}`)
	bob.Expect(`{"type":"typing","from":"alice","group":"` + g + `","state":"stop"}`)
	bob.Send(`{"type":"typing","id":3,"group":"` + g + `","state":"start"}`)
	bob.Expect(`{"type":"ok","id":3}`)
	alice.Expect(`{"type":"typing","from":"bob","group":"` + g + `","state":"start"}`)
	carol.Expect(`{"type":"typing","from":"bob","group":"` + g + `","state":"start"}`) // and nothing from alice before it
	start := time.Now()
	alice.Expect(`{"type":"typing","from":"bob","group":"` + g + `","state":"stop"}`) // expired
	carol.Expect(`{"type":"typing","from":"bob","group":"` + g + `","state":"stop"}`)
	if d := time.Since(start); d < 4*time.Second {
		t.Errorf("group typing expired after %v, want about 6s", d)
	}

	for _, tc := range []struct{ send, want string }{
		{`{"type":"typing","id":4,"group":"` + g + `","state":"start"}`, `{"type":"error","id":4,"code":"not_member"}`},
		{`{"type":"typing","id":5,"group":"999999","state":"start"}`, `{"type":"error","id":5,"code":"no_group"}`},
		{`{"type":"typing","id":6,"group":"x","state":"start"}`, `{"type":"error","id":6,"code":"bad_request"}`},
		{`{"type":"typing","id":7,"group":"` + g + `","to":"alice","state":"start"}`, `{"type":"error","id":7,"code":"bad_request"}`},
		{`{"type":"typing","id":8,"group":"` + g + `","state":"maybe"}`, `{"type":"error","id":8,"code":"bad_request"}`},
	} {
		dave.Send(tc.send)
		dave.Expect(tc.want)
	}
	// Typing is never stored: the log holds only the creation and joins.
	bob.Send(`{"type":"group_sync","id":9,"group":"` + g + `","after":0}`)
	if f := bob.Expect(`{"type":"ok","id":9,"more":false}`); len(f.Entries) != 2 {
		t.Errorf("bob's view of the log after typing: %+v, want his join and carol's", f.Entries)
	}
	for _, c := range []*daemontest.Conn{alice, bob, carol} {
		c.Send(`{"type":"ping","id":"p"}`)
		c.Expect(`{"type":"ok","id":"p"}`)
	}
}

// TestGroupGapFilled: an entry made outside qqd's group lock (the "left"
// of an account an operator removes) is pushed, in seq order, before the
// next entry, and the departed member no longer counts for fan-out.
func TestGroupGapFilled(t *testing.T) {
	s := daemontest.Start(t)
	alice, bob, carol := s.User(t, "alice"), s.User(t, "bob"), s.User(t, "carol")
	g := groupOfThree(t, alice, bob, carol)
	if _, err := s.Daemon.RemoveAccount(context.Background(), "carol"); err != nil {
		t.Fatal(err)
	}
	carol.Expect(`{"type":"kicked"}`)
	alice.Send(`{"type":"group_send","id":1,"group":"` + g + `","body":"where is carol?"}`)
	alice.Expect(`{"type":"ok","id":1,"seq":5}`)
	if f := expectEntry(t, bob, g, 4, "left"); f.Target != "carol" {
		t.Fatalf("entry 4 %+v, want carol's leaving", f)
	}
	expectEntry(t, bob, g, 5, "msg")
	// alice's own connection gets the filled entry too, not her message.
	expectEntry(t, alice, g, 4, "left")
	alice.Send(`{"type":"group_info","id":2,"group":"` + g + `"}`)
	alice.Expect(`{"type":"ok","id":2,"members":2}`)
	alice.ExpectSilence(200 * time.Millisecond)
}

// groupOfThree makes owner create an open group that b and c join, and
// reads the joined entries pushed meanwhile; it returns the group's id.
func groupOfThree(t *testing.T, owner, b, c *daemontest.Conn) string {
	t.Helper()
	g := createGroup(t, owner, "")
	join(t, b, g)
	join(t, c, g)
	expectEntry(t, owner, g, 2, "joined")
	expectEntry(t, owner, g, 3, "joined")
	expectEntry(t, b, g, 3, "joined")
	return g
}
