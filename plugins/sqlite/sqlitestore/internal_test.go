package sqlitestore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

func TestCommitMaybeWritten(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "qq.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateUser(ctx, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		{From: "alice", To: "alice", Body: "x", Status: protocol.StatusQueued},
	}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateGroup(ctx, "alice", "g", plugins.PolicyOpen, plugins.HistoryJoined, 1, plugins.GroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	gres, err := s.Write(ctx, &plugins.WriteBatch{GroupMessages: []plugins.NewGroupMessage{{Group: g.ID, From: "alice", Body: "x"}}})
	if err != nil || gres[0].Group == nil {
		t.Fatal(gres, err)
	}
	stored := firstGroupEntry{g.ID, gres[0].Group.Seq, gres[0].Group.MsgID}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, tt := range []struct {
		firstID    string
		firstGroup firstGroupEntry
		want       bool
	}{
		{res[0].Message.ID, firstGroupEntry{}, true},       // the commit took effect
		{newMsgID(1), firstGroupEntry{}, false},            // it did not
		{"", firstGroupEntry{}, true},                      // nothing to look for
		{"", stored, true},                                 // a group message: the commit took effect
		{"", firstGroupEntry{g.ID, 3, newMsgID(1)}, false}, // it did not
		{"", firstGroupEntry{g.ID, 2, newMsgID(1)}, false}, // another entry has that seq
	} {
		if got := s.commitMaybeWritten(tt.firstID, tt.firstGroup); got != tt.want {
			t.Errorf("commitMaybeWritten(%q, %+v) = %v, want %v", tt.firstID, tt.firstGroup, got, tt.want)
		}
	}
	// When the lookup itself fails, the outcome is unknown.
	if err := s.writer.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.commitMaybeWritten(newMsgID(1), firstGroupEntry{}) {
		t.Error("commitMaybeWritten with a failing lookup = false, want true")
	}
	if !s.commitMaybeWritten("", firstGroupEntry{g.ID, 3, newMsgID(1)}) {
		t.Error("commitMaybeWritten of a group message with a failing lookup = false, want true")
	}
}

func TestNewMsgID(t *testing.T) {
	tests := []struct {
		ms     int64
		prefix string
	}{
		{0, "0000000000"},
		{-5, "0000000000"},
		{1, "0000000001"},
		{32, "0000000010"},
		{1<<48 - 1, "7zzzzzzzzz"},
		{1_764_158_400_000, "01kb00hsg0"},
	}
	for _, tt := range tests {
		id := newMsgID(tt.ms)
		if len(id) != msgIDLen || !strings.HasPrefix(id, tt.prefix) {
			t.Errorf("newMsgID(%d) = %q, want prefix %q", tt.ms, id, tt.prefix)
		}
		for _, c := range id {
			if !strings.ContainsRune(crockford, c) {
				t.Errorf("newMsgID(%d) = %q has %q", tt.ms, id, c)
			}
		}
	}
	// The 80 random bits reach every one of the 16 random characters.
	var seen [16]map[byte]bool
	for i := range seen {
		seen[i] = map[byte]bool{}
	}
	for range 2000 {
		id := newMsgID(0)
		for i := range 16 {
			seen[i][id[10+i]] = true
		}
	}
	for i, m := range seen {
		if len(m) != 32 {
			t.Errorf("random character %d takes %d values in 2000 ids, want 32", i, len(m))
		}
	}
}
