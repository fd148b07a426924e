package daemon

import (
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// TestGroupEntryKey: the group and seq of every group_entry push that
// appendEntry writes, and none of other frames.
func TestGroupEntryKey(t *testing.T) {
	for _, e := range []plugins.GroupEntry{
		{Group: 1, Seq: 1, Kind: plugins.EntryJoined, TS: 1, Actor: "a", Target: "a"},
		{Group: 123456789, Seq: 9007199254740993, Kind: plugins.EntryMsg, TS: 2, MsgID: "m", From: "a", Body: `"seq":7`},
	} {
		frame := appendEntry(protocol.StartFrame(nil, protocol.TypeGroupEntry), &e).End()
		group, seq, ok := groupEntryKey(frame)
		if !ok || group != groupIDString(e.Group) || seq != e.Seq {
			t.Errorf("groupEntryKey(%s) = %q, %d, %v; want %q, %d", frame, group, seq, ok, groupIDString(e.Group), e.Seq)
		}
	}
	m := protocol.Message{ID: "m", From: "a", To: "b", Body: "x", TS: 1, Seq: 3}
	for _, frame := range [][]byte{
		protocol.AppendPush(nil, &m),
		[]byte(`{"type":"group_entry","group":"1"}` + "\n"),
		[]byte(`{"type":"group_entry","group":"","seq":1}` + "\n"),
		[]byte(`{"type":"group_entry","group":"1","seq":0}` + "\n"),
		[]byte(`{"type":"typing","group":"1","seq":2}` + "\n"),
	} {
		if group, seq, ok := groupEntryKey(frame); ok {
			t.Errorf("groupEntryKey(%s) = %q, %d, true; want not ok", frame, group, seq)
		}
	}
}
