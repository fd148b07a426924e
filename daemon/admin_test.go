package daemon_test

import (
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
)

func TestAdminDataMethods(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	bob1 := s.User(t, "bob")
	bob2 := s.Dial(t)
	bob2.Login("bob", "password1")
	anon := s.Dial(t)

	alice.Send(`{"type":"send","id":1,"to":"bob","body":"hi"}`)
	alice.Expect(`{"type":"ok","id":1}`)
	bob1.Expect(`{"type":"msg"}`)
	bob2.Expect(`{"type":"msg"}`)

	ss := s.Daemon.Sessions()
	if len(ss) != 3 || ss[0].User != "alice" || ss[1].User != "bob" || ss[2].User != "bob" {
		t.Fatalf("Sessions = %+v", ss)
	}
	if ss[0].MsgsIn != 1 || ss[1].MsgsOut != 1 || ss[0].Remote == "" || ss[0].Since.IsZero() || ss[0].Transport != "tcp" {
		t.Fatalf("session counters = %+v", ss)
	}
	st := s.Daemon.Stats()
	if st.Connections != 4 || st.LoggedIn != 3 || st.UsersOnline != 2 || st.MessagesAccepted != 1 || st.MessagesPushed != 2 || st.Accepted < 4 {
		t.Fatalf("Stats = %+v", st)
	}

	if n := s.Daemon.Broadcast("maintenance at 5"); n != 3 {
		t.Fatalf("Broadcast reached %d sessions, want 3", n)
	}
	alice.Expect(`{"type":"notice","message":"maintenance at 5"}`)
	bob1.Expect(`{"type":"notice","message":"maintenance at 5"}`)
	bob2.Expect(`{"type":"notice","message":"maintenance at 5"}`)
	anon.ExpectSilence(50 * time.Millisecond)

	if n := s.Daemon.Kick("bob", "spamming"); n != 2 {
		t.Fatalf("Kick = %d, want 2", n)
	}
	for _, c := range []*daemontest.Conn{bob1, bob2} {
		c.Expect(`{"type":"kicked","reason":"admin","message":"spamming"}`)
		c.ExpectClosed()
	}
	if n := s.Daemon.Kick("bob", ""); n != 0 {
		t.Fatalf("second Kick = %d", n)
	}
	alice.Send(`{"type":"users","id":2}`)
	alice.Expect(`{"type":"ok","id":2,"users":["alice"]}`)
	// The kicked user's messages stay pending.
	if n, err := s.Store.PendingCount(t.Context(), "bob"); err != nil || n != 1 {
		t.Fatalf("bob pending = %d, %v", n, err)
	}
}
