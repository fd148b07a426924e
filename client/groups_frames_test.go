package client_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// TestGroupRequestFrames checks the frame each group method writes and
// what it makes of the reply, with the replies written as
// docs/protocol.md shows them.
func TestGroupRequestFrames(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	tests := []struct {
		call  func() (any, error)
		want  string // the request, with id "N" standing for its id
		reply string
		got   any
	}{
		{func() (any, error) { return c.CreateGroup(ctx, "crew", "", "") },
			`{"type":"group_create","id":"1","name":"crew"}`, `{"type":"ok","id":"1","group":"12","seq":1}`, "12"},
		{func() (any, error) { return c.CreateGroup(ctx, "crew", client.PolicyApproval, client.HistoryShared) },
			`{"type":"group_create","id":"2","name":"crew","policy":"approval","history":"shared"}`, `{"type":"ok","id":"2","group":"13","seq":1}`, "13"},
		{func() (any, error) { return c.GroupSend(ctx, "12", "hi @bob", "bob") },
			`{"type":"group_send","id":"3","group":"12","body":"hi @bob","mentions":["bob"]}`,
			`{"type":"ok","id":"3","group":"12","seq":5,"ts":1700000000000,"msg_id":"m5"}`,
			client.GroupSendResult{Group: "12", Seq: 5, TS: 1700000000000, MsgID: "m5"}},
		{func() (any, error) { return c.GroupSendCID(ctx, "12", "darn", "c1") },
			`{"type":"group_send","id":"4","group":"12","body":"darn","cid":"c1"}`,
			`{"type":"ok","id":"4","group":"12","seq":6,"ts":1700000000001,"msg_id":"m6","body":"d**n"}`,
			client.GroupSendResult{Group: "12", Seq: 6, TS: 1700000000001, MsgID: "m6", Body: "d**n"}},
		{func() (any, error) { return nil, c.GroupAck(ctx, "12", 6) },
			`{"type":"group_ack","id":"5","group":"12","seq":6}`, `{"type":"ok","id":"5"}`, nil},
		{func() (any, error) { es, more, err := c.GroupSync(ctx, "12", 4, 0); return []any{es, more}, err },
			`{"type":"group_sync","id":"6","group":"12","after":4}`,
			`{"type":"ok","id":"6","entries":[{"group":"12","seq":5,"kind":"msg","ts":7,"msg_id":"m5","from":"alice","body":"hi @bob","mentions":["bob"]},{"group":"12","seq":6,"kind":"joined","ts":8,"actor":"alice","target":"carol"}],"more":true}`,
			[]any{[]protocol.GroupEntry{
				{Group: "12", Seq: 5, Kind: "msg", TS: 7, MsgID: "m5", From: "alice", Body: "hi @bob", Mentions: []string{"bob"}},
				{Group: "12", Seq: 6, Kind: "joined", TS: 8, Actor: "alice", Target: "carol"}}, true}},
		{func() (any, error) { es, more, err := c.GroupSync(ctx, "12", 0, 50); return []any{es, more}, err },
			`{"type":"group_sync","id":"7","group":"12","after":0,"limit":50}`, `{"type":"ok","id":"7","entries":[],"more":false}`,
			[]any{[]protocol.GroupEntry{}, false}},
		{func() (any, error) { es, more, err := c.GroupHistory(ctx, "12", 0, 0); return []any{es, more}, err },
			`{"type":"group_history","id":"8","group":"12"}`,
			`{"type":"ok","id":"8","entries":[{"group":"12","seq":1,"kind":"created","ts":1,"actor":"alice","name":"crew"}],"more":false}`,
			[]any{[]protocol.GroupEntry{{Group: "12", Seq: 1, Kind: "created", TS: 1, Actor: "alice", Name: "crew"}}, false}},
		{func() (any, error) { es, more, err := c.GroupHistory(ctx, "12", 9, 2); return []any{es, more}, err },
			`{"type":"group_history","id":"9","group":"12","before":9,"limit":2}`, `{"type":"ok","id":"9","entries":[],"more":true}`,
			[]any{[]protocol.GroupEntry{}, true}},
		{func() (any, error) { return c.Groups(ctx) },
			`{"type":"groups","id":"10"}`,
			`{"type":"ok","id":"10","groups":[{"group":"12","name":"crew","role":"owner","members":3,"last_seq":6,"read_seq":4,"unread":2,"mentions":1}]}`,
			[]protocol.GroupListing{{Group: "12", Name: "crew", Role: "owner", Members: 3, LastSeq: 6, ReadSeq: 4, Unread: 2, Mentions: 1}}},
		{func() (any, error) { return c.Groups(ctx) },
			`{"type":"groups","id":"11"}`, `{"type":"ok","id":"11","groups":[]}`, []protocol.GroupListing{}},
		{func() (any, error) { return c.GroupInfo(ctx, "12") },
			`{"type":"group_info","id":"12","group":"12"}`,
			`{"type":"ok","id":"12","group":"12","name":"crew","owner":"alice","policy":"open","history":"joined","mute_all":true,"members":3,"last_seq":6}`,
			&client.GroupInfo{Group: "12", Name: "crew", Owner: "alice", Policy: "open", History: "joined", MuteAll: true, Members: 3, LastSeq: 6}},
		{func() (any, error) { ms, more, err := c.GroupMembers(ctx, "12", "", 0); return []any{ms, more}, err },
			`{"type":"group_members","id":"13","group":"12"}`,
			`{"type":"ok","id":"13","members":[{"user":"alice","role":"owner"},{"user":"bob","role":"member","muted_until":1700000060000}],"more":true}`,
			[]any{[]protocol.GroupMember{{User: "alice", Role: "owner"}, {User: "bob", Role: "member", MutedUntil: 1700000060000}}, true}},
		{func() (any, error) { ms, more, err := c.GroupMembers(ctx, "12", "bob", 2); return []any{ms, more}, err },
			`{"type":"group_members","id":"14","group":"12","after":"bob","limit":2}`, `{"type":"ok","id":"14","members":[],"more":false}`,
			[]any{[]protocol.GroupMember{}, false}},
		{func() (any, error) { return c.GroupRequests(ctx, "13") },
			`{"type":"group_requests","id":"15","group":"13"}`, `{"type":"ok","id":"15","requests":[{"user":"dave","ts":9}]}`,
			[]protocol.GroupRequest{{User: "dave", TS: 9}}},
		{func() (any, error) { j, seq, err := c.GroupJoin(ctx, "12"); return []any{j, seq}, err },
			`{"type":"group_join","id":"16","group":"12"}`, `{"type":"ok","id":"16","status":"joined","seq":7}`, []any{true, int64(7)}},
		{func() (any, error) { j, seq, err := c.GroupJoin(ctx, "13"); return []any{j, seq}, err },
			`{"type":"group_join","id":"17","group":"13"}`, `{"type":"ok","id":"17","status":"requested"}`, []any{false, int64(0)}},
		{func() (any, error) { return c.GroupInvite(ctx, "12", "erin") },
			`{"type":"group_invite","id":"18","group":"12","user":"erin"}`, `{"type":"ok","id":"18","seq":8}`, int64(8)},
		{func() (any, error) { return c.GroupApprove(ctx, "13", "dave") },
			`{"type":"group_approve","id":"19","group":"13","user":"dave"}`, `{"type":"ok","id":"19","seq":2}`, int64(2)},
		{func() (any, error) { return nil, c.GroupReject(ctx, "13", "zed") },
			`{"type":"group_reject","id":"20","group":"13","user":"zed"}`, `{"type":"ok","id":"20"}`, nil},
		{func() (any, error) { return c.GroupLeave(ctx, "12") },
			`{"type":"group_leave","id":"21","group":"12"}`, `{"type":"ok","id":"21","seq":9}`, int64(9)},
		{func() (any, error) { return c.GroupKick(ctx, "12", "bob") },
			`{"type":"group_kick","id":"22","group":"12","user":"bob"}`, `{"type":"ok","id":"22","seq":10}`, int64(10)},
		{func() (any, error) { return c.GroupRole(ctx, "12", "carol", client.RoleAdmin) },
			`{"type":"group_role","id":"23","group":"12","user":"carol","role":"admin"}`, `{"type":"ok","id":"23","seq":11}`, int64(11)},
		{func() (any, error) { return c.GroupTransfer(ctx, "12", "carol") },
			`{"type":"group_transfer","id":"24","group":"12","user":"carol"}`, `{"type":"ok","id":"24","seq":12}`, int64(12)},
		{func() (any, error) { return c.GroupRename(ctx, "12", "the crew") },
			`{"type":"group_rename","id":"25","group":"12","name":"the crew"}`, `{"type":"ok","id":"25","seq":13}`, int64(13)},
		{func() (any, error) { return c.GroupMute(ctx, "12", "bob", 1500*time.Millisecond) },
			`{"type":"group_mute","id":"26","group":"12","user":"bob","seconds":2}`, `{"type":"ok","id":"26","seq":14}`, int64(14)},
		{func() (any, error) { return c.GroupMute(ctx, "12", "bob", 0) },
			`{"type":"group_mute","id":"27","group":"12","user":"bob","seconds":0}`, `{"type":"ok","id":"27","seq":15}`, int64(15)},
		{func() (any, error) { return c.GroupMuteAll(ctx, "12", false) },
			`{"type":"group_mute_all","id":"28","group":"12","on":false}`, `{"type":"ok","id":"28","seq":16}`, int64(16)},
		{func() (any, error) { return c.GroupSettings(ctx, "12", "", client.HistoryShared) },
			`{"type":"group_settings","id":"29","group":"12","history":"shared"}`, `{"type":"ok","id":"29","seq":17}`, int64(17)},
		{func() (any, error) { return c.GroupDissolve(ctx, "12") },
			`{"type":"group_dissolve","id":"30","group":"12"}`, `{"type":"ok","id":"30","seq":18}`, int64(18)},
	}
	for _, tc := range tests {
		type res struct {
			v   any
			err error
		}
		done := make(chan res, 1)
		go func() { v, err := tc.call(); done <- res{v, err} }()
		if got := f.read(t); got != tc.want+"\n" {
			t.Fatalf("request %s, want %s", got, tc.want)
		}
		f.write(t, tc.reply)
		r := <-done
		if r.err != nil {
			t.Fatalf("%s: %v", tc.want, r.err)
		}
		if !reflect.DeepEqual(r.v, tc.got) {
			t.Errorf("%s answered %s = %#v, want %#v", tc.want, tc.reply, r.v, tc.got)
		}
	}

	// An error reply is a *protocol.Error, as for every request.
	done := make(chan error, 1)
	go func() { _, err := c.GroupKick(ctx, "12", "alice"); done <- err }()
	f.read(t)
	f.write(t, `{"type":"error","id":"31","code":"not_allowed","message":"your role in this group does not allow that"}`)
	wantCode(t, <-done, protocol.CodeNotAllowed)
}

// TestGroupPushEvents: group_entry and group_join_request pushes are
// Events with the group and the entry; they do not disturb replies.
func TestGroupPushEvents(t *testing.T) {
	c, f, err := startFake(t, qqdHello, client.Options{Events: true})
	if err != nil {
		t.Fatal(err)
	}
	pinged := make(chan error, 1)
	go func() { pinged <- c.Ping(testCtx(t)) }()
	f.read(t)
	f.write(t,
		`{"type":"group_entry","group":"12","seq":5,"kind":"msg","ts":7,"msg_id":"m5","from":"alice","body":"hi @bob","mentions":["bob"]}`,
		`{"type":"group_join_request","group":"13","user":"dave"}`,
		`{"type":"ok","id":"1"}`,
		`{"type":"group_entry","group":"12","seq":6,"kind":"mute_all","ts":8,"actor":"alice","on":true}`,
		`{"type":"group_entry","group":"12","seq":7,"kind":"muted","ts":9,"actor":"alice","target":"bob","until":60009}`,
	)
	if err := <-pinged; err != nil {
		t.Fatal(err)
	}
	want := []client.Event{
		{Type: protocol.TypeGroupEntry, Group: "12", TS: 7, User: "", Entry: &protocol.GroupEntry{
			Group: "12", Seq: 5, Kind: "msg", TS: 7, MsgID: "m5", From: "alice", Body: "hi @bob", Mentions: []string{"bob"}}},
		{Type: protocol.TypeGroupJoinRequest, Group: "13", User: "dave"},
		{Type: protocol.TypeGroupEntry, Group: "12", TS: 8, Entry: &protocol.GroupEntry{Group: "12", Seq: 6, Kind: "mute_all", TS: 8, Actor: "alice", On: true}},
		{Type: protocol.TypeGroupEntry, Group: "12", TS: 9, Entry: &protocol.GroupEntry{Group: "12", Seq: 7, Kind: "muted", TS: 9, Actor: "alice", Target: "bob", Until: 60009}},
	}
	for i, w := range want {
		select {
		case e := <-c.Events():
			if !reflect.DeepEqual(e, w) {
				t.Fatalf("event %d = %+v (entry %+v), want %+v (entry %+v)", i, e, e.Entry, w, w.Entry)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %d", i)
		}
	}
}
