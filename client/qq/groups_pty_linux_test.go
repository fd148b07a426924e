package main

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// TestChatTerminalGroup: in a group conversation on a real terminal, the
// prompt names the group, a pushed group entry is printed above the line
// being typed (erased first, redrawn after), and the line then goes to
// the group with its mentions.
func TestChatTerminalGroup(t *testing.T) {
	s := daemontest.Start(t)
	ctx := t.Context()
	bob := libUser(t, s.Addr, "bob")
	setup := libUser(t, s.Addr, "alice")
	g, err := setup.CreateGroup(ctx, "crew", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.GroupJoin(ctx, g); err != nil {
		t.Fatal(err)
	}
	setup.Close()

	p := startPTYChat(t, s.Addr, "alice")
	p.waitFor("#" + g + " crew: 2 unread")
	p.waitFor("type /help for help")
	p.keys("/g " + g + "\r")
	p.waitFor("[#" + g + " crew] alice created the group crew")
	p.waitFor("[#" + g + " crew] bob joined")
	p.waitFor("to #" + g + " crew> ")

	p.keys("hel")
	p.waitFor("to #" + g + " crew> hel")
	if _, err := bob.GroupSend(ctx, g, "hi all"); err != nil {
		t.Fatal(err)
	}
	before := p.waitFor("[#" + g + " crew] bob: hi all")
	if !regexp.MustCompile(`\x1b\[2K\r\[\d\d:\d\d\] $`).MatchString(before) {
		t.Fatalf("the entry was not printed on an erased line: %q", before[max(0, len(before)-40):])
	}
	p.waitFor("to #" + g + " crew> hel")
	p.keys("lo @bob\r")
	p.waitFor("[#" + g + " crew] alice: hello @bob")
	// bob was told alice types in the group (her typing while she wrote
	// "hel"), then gets her message; typing stops may come in between.
	typing := false
	for {
		var e client.Event
		select {
		case e = <-bob.Events():
		case <-time.After(daemontest.Timeout):
			t.Fatal("no group entry within 10s")
		}
		if e.Type == protocol.TypeTyping {
			if e.User != "alice" || e.Group != g {
				t.Fatalf("typing event %+v, want alice's in %s", e, g)
			}
			typing = typing || e.State == "start"
			continue
		}
		if e.Type != protocol.TypeGroupEntry || e.Entry.From != "alice" || e.Entry.Body != "hello @bob" || !slices.Equal(e.Entry.Mentions, []string{"bob"}) {
			t.Fatalf("bob got %+v (entry %+v)", e, e.Entry)
		}
		break
	}
	if !typing {
		t.Error("bob was not told that alice typed in the group")
	}
	p.keys("/quit\r")
	p.waitFor("bye")
}
