package sqlitestore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// TestGroupMessageRows: storing a group message changes the same number
// of rows whatever the group's size: its log row, the sender's cursor,
// the group's last seq, and a row and a counter per mentioned member;
// never a row per member.
func TestGroupMessageRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t, func(o *sqlitestore.Options) { o.Synchronous = "off" })
	name := func(u int) string { return fmt.Sprintf("u%d", u) }
	for u := range 500 {
		if err := s.CreateUser(ctx, name(u), "h"); err != nil {
			t.Fatal(err)
		}
	}
	group := func(members int) int64 {
		g, err := s.CreateGroup(ctx, name(0), fmt.Sprint(members), plugins.PolicyInvite, plugins.HistoryJoined, 1, plugins.GroupLimits{})
		if err != nil {
			t.Fatal(err)
		}
		for u := 1; u < members; u++ {
			if _, err := s.GroupOp(ctx, plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: name(0), Target: name(u), TS: 2}); err != nil {
				t.Fatal(err)
			}
		}
		return g.ID
	}
	changes := func(msgs ...plugins.NewGroupMessage) int64 {
		t.Helper()
		before, err := sqlitestore.WriterChanges(s)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range write(t, s, &plugins.WriteBatch{GroupMessages: msgs}) {
			if r.Err != nil || r.Group == nil {
				t.Fatalf("message %d: %+v", i, r)
			}
		}
		after, err := sqlitestore.WriterChanges(s)
		if err != nil {
			t.Fatal(err)
		}
		return after - before
	}
	small, large := group(3), group(500)
	for _, tt := range []struct {
		name     string
		mentions []string
		want     int64
	}{
		{"no mention", nil, 3},                // log row, sender's cursor, group
		{"one mention", []string{name(2)}, 5}, // and the mention's row and counter
		{"two mentions", []string{name(1), name(2)}, 7},
		{"all", []string{"all"}, 3}, // counted when read
		{"all and a name", []string{"all", name(2)}, 3},
		{"not a member", []string{"u499", "nobody"}, 3}, // u499 is not in the small group
	} {
		for _, id := range []int64{small, large} {
			m := plugins.NewGroupMessage{Group: id, From: name(0), Body: "x", Mentions: tt.mentions}
			got := changes(m)
			if id == large && tt.name == "not a member" {
				tt.want += 2 // u499 is a member of the large one
			}
			if got != tt.want {
				t.Errorf("%s, group %d: %d rows changed, want %d", tt.name, id, got, tt.want)
			}
		}
	}
	// A batch writes the group's row once (the senders were never mentioned).
	if got := changes(plugins.NewGroupMessage{Group: large, From: name(3), Body: "a"}, plugins.NewGroupMessage{Group: large, From: name(4), Body: "b"}); got != 5 {
		t.Errorf("two messages in a batch: %d rows changed, want 5", got)
	}
}

// TestGroupTimestamps: entries never go back in time along a group's
// log, whatever the clock does, across a reopen too: a message (the
// store's clock) after an operation stamped later by the host, and a
// message after the clock went back, get the last entry's time.
func TestGroupTimestamps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, clk, path := newStore(t)
	g, err := s.CreateGroup(ctx, "alice", "g", plugins.PolicyOpen, plugins.HistoryJoined, t0.UnixMilli(), plugins.GroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(s *sqlitestore.Store) plugins.GroupEntry {
		t.Helper()
		r := write(t, s, &plugins.WriteBatch{GroupMessages: []plugins.NewGroupMessage{{Group: g.ID, From: "alice", Body: "x"}}})[0]
		if r.Group == nil {
			t.Fatalf("message: %+v", r)
		}
		return *r.Group
	}
	if e := msg(s); e.TS != t0.UnixMilli() {
		t.Errorf("message at %d, want the clock's %d", e.TS, t0.UnixMilli())
	}
	late := t0.UnixMilli() + 60_000
	if _, err := s.GroupOp(ctx, plugins.GroupOp{Kind: plugins.OpRename, Group: g.ID, Actor: "alice", Name: "h", TS: late}); err != nil {
		t.Fatal(err)
	}
	if e := msg(s); e.TS != late {
		t.Errorf("message after an entry at %d: at %d", late, e.TS)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Add(-time.Hour)
	s2 := openAt(t, path, clk)
	if e := msg(s2); e.TS != late {
		t.Errorf("message after a reopen with the clock an hour back: at %d, want %d", e.TS, late)
	}
	es, _, err := s2.Log(ctx, g.ID, "alice", 0, 0, 10)
	if err != nil || len(es) != 5 {
		t.Fatalf("Log = %+v, %v", es, err)
	}
	for i := 1; i < len(es); i++ {
		if es[i].TS < es[i-1].TS || es[i].Seq != es[i-1].Seq+1 {
			t.Errorf("entry %+v after %+v", es[i], es[i-1])
		}
	}
}
