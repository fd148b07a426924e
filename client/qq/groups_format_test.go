package main

import (
	"slices"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

func TestMentionsIn(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"hi all", nil},
		{"@bob hi", []string{"bob"}},
		{"@bob, @carol: and @bob again", []string{"bob", "carol"}},
		{"@All hands (@dave)", []string{"all", "dave"}},
		{"mail me at bob@example.org", nil},
		{"@ @- @Bad!name @x.y", []string{"x.y"}},
	}
	for _, tt := range tests {
		if got := mentionsIn(tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("mentionsIn(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestParseGroupID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"12", "12", true}, {"#12", "12", true}, {"#", "", false}, {"", "", false},
		{"12a", "", false}, {"-1", "", false}, {"#1234567890123456789", "1234567890123456789", true},
		{"12345678901234567890", "", false},
	} {
		if got, ok := parseGroupID(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("parseGroupID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFormatEntry(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := now.Add(-time.Hour).UnixMilli()
	later := now.Add(30 * time.Minute).UnixMilli()
	tests := []struct {
		e    protocol.GroupEntry
		want string
	}{
		{protocol.GroupEntry{Kind: "msg", From: "alice", Body: "hi\nthere\x1b[2J"}, "alice: hi\n    there\\x1b[2J"},
		{protocol.GroupEntry{Kind: "created", Actor: "alice", Name: "crew"}, "alice created the group crew"},
		{protocol.GroupEntry{Kind: "joined", Actor: "bob", Target: "bob"}, "bob joined"},
		{protocol.GroupEntry{Kind: "joined", Actor: "alice", Target: "bob"}, "bob joined (added by alice)"},
		{protocol.GroupEntry{Kind: "left", Target: "bob"}, "bob left"},
		{protocol.GroupEntry{Kind: "kicked", Actor: "alice", Target: "bob"}, "alice removed bob"},
		{protocol.GroupEntry{Kind: "role", Actor: "alice", Target: "bob", Role: "admin"}, "alice made bob an admin"},
		{protocol.GroupEntry{Kind: "role", Actor: "alice", Target: "bob", Role: "member"}, "alice made bob a plain member"},
		{protocol.GroupEntry{Kind: "owner", Actor: "alice", Target: "bob"}, "alice made bob the owner"},
		{protocol.GroupEntry{Kind: "renamed", Actor: "alice", Name: "the crew"}, "alice renamed the group to the crew"},
		{protocol.GroupEntry{Kind: "muted", Actor: "alice", Target: "bob", Until: later}, "alice muted bob until 12:30"},
		{protocol.GroupEntry{Kind: "muted", Actor: "alice", Target: "bob"}, "alice unmuted bob"},
		{protocol.GroupEntry{Kind: "mute_all", Actor: "alice", On: true}, "alice muted everyone but the admins"},
		{protocol.GroupEntry{Kind: "mute_all", Actor: "alice"}, "alice lifted the mute on everyone"},
		{protocol.GroupEntry{Kind: "settings", Actor: "alice", Policy: "invite", History: "shared"}, "alice set the join policy to invite and the history to shared"},
		{protocol.GroupEntry{Kind: "dissolved", Actor: "alice"}, "alice dissolved the group"},
		{protocol.GroupEntry{Kind: "teleported"}, "(teleported)"},
	}
	for _, tt := range tests {
		tt.e.TS = ts
		want := "[11:00] [#12 crew] " + tt.want + "\n"
		if got := formatEntry(&tt.e, groupLabel("12", "crew"), now, time.UTC); got != want {
			t.Errorf("formatEntry(%+v) = %q, want %q", tt.e, got, want)
		}
	}
	if got := groupLabel("12", ""); got != "#12" {
		t.Errorf("groupLabel without a name = %q", got)
	}
}

func TestFormatGroupList(t *testing.T) {
	gl := []protocol.GroupListing{
		{Group: "12", Name: "crew", Role: "owner", Members: 3, LastSeq: 9, ReadSeq: 6, Unread: 3, Mentions: 1},
		{Group: "15", Name: "book club", Role: "member", Members: 1, LastSeq: 4, ReadSeq: 4},
	}
	want := "your groups:\n" +
		"  #12 crew (owner, 3 members): 3 unread, 1 mentioning you\n" +
		"  #15 book club (member, 1 member): nothing unread\n"
	if got := formatGroupList(gl, false); got != want {
		t.Errorf("formatGroupList = %q, want %q", got, want)
	}
	if got := formatGroupList(nil, true); got != "you are in no group: create one with /group new <name>, or join one with /group join <id>\n" {
		t.Errorf("formatGroupList(none) = %q", got)
	}
	if got := joinRequestLine("13", "club", "dave"); got != "[#13 club] dave asks to join (/group approve 13 dave or /group reject 13 dave)" {
		t.Errorf("joinRequestLine = %q", got)
	}
}
