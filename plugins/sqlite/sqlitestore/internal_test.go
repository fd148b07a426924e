package sqlitestore

import (
	"context"
	"github.com/qqchat/qq/plugins/msgid"
	"path/filepath"
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
		{res[0].Message.ID, firstGroupEntry{}, true},        // the commit took effect
		{msgid.New(1), firstGroupEntry{}, false},            // it did not
		{"", firstGroupEntry{}, true},                       // nothing to look for
		{"", stored, true},                                  // a group message: the commit took effect
		{"", firstGroupEntry{g.ID, 3, msgid.New(1)}, false}, // it did not
		{"", firstGroupEntry{g.ID, 2, msgid.New(1)}, false}, // another entry has that seq
	} {
		if got := s.commitMaybeWritten(tt.firstID, tt.firstGroup); got != tt.want {
			t.Errorf("commitMaybeWritten(%q, %+v) = %v, want %v", tt.firstID, tt.firstGroup, got, tt.want)
		}
	}
	// When the lookup itself fails, the outcome is unknown.
	if err := s.writer.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.commitMaybeWritten(msgid.New(1), firstGroupEntry{}) {
		t.Error("commitMaybeWritten with a failing lookup = false, want true")
	}
	if !s.commitMaybeWritten("", firstGroupEntry{g.ID, 3, msgid.New(1)}) {
		t.Error("commitMaybeWritten of a group message with a failing lookup = false, want true")
	}
}
