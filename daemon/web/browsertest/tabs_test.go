package browsertest

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
)

// TestTabsOfOneUser: a second tab of the same browser logs in from the
// first, both count the same unread messages, a read in one clears the
// other's title, a message sent in one shows in the other, and a logout
// in one logs both out.
func TestTabsOfOneUser(t *testing.T) {
	e := newEnv(t)
	a1 := e.open("alice tab 1")
	a1.register("alice")
	a2 := e.tab(a1, "alice tab 2")
	a2.waitLoggedIn()
	if !eval[bool](a2, `document.getElementById('login').hidden`) {
		t.Error("the second tab asked for the password")
	}
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := bob.Send(ctx, "alice", "hello both tabs"); err != nil {
		t.Fatal(err)
	}
	a1.waitJS(`document.title === '(1) qq'`, "one unread in tab 1")
	a2.waitJS(`document.title === '(1) qq'`, "one unread in tab 2")

	call(a1, page.BringToFront, cdp.Empty{})
	a1.openConv("u:bob")
	a1.waitShown("hello both tabs")
	a1.waitJS(`document.title === 'qq'`, "tab 1 read it")
	a2.waitJS(`document.title === 'qq'`, "tab 2 knows it was read")

	a1.send("sent from tab 1")
	a1.waitShown("sent from tab 1")
	a2.waitJS(`[...document.querySelectorAll('ol[aria-label="Messages with bob"] li.msg .body')].some(b => b.textContent === 'sent from tab 1')`, "tab 1's message in tab 2")

	a1.click("#logout-button")
	a1.waitJS(`!document.getElementById('login').hidden`, "tab 1 logged out")
	a2.waitJS(`!document.getElementById('login').hidden && document.getElementById('login-error').textContent.includes('another tab')`, "tab 2 logged out too")
}

// TestKickedAndRevoked: an operator's kick --revoke ends the page's
// session with the operator's reason; a revoked token brings the login
// form back at the next reconnect.
func TestKickedAndRevoked(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")

	// qqadmin revoke alice: the session goes on, the next login by token fails.
	if n, err := e.srv.Daemon.RevokeTokens("alice", nil); err != nil || n != 1 {
		t.Fatalf("revoke: %d, %v", n, err)
	}
	e.drop()
	a.waitJS(`!document.getElementById('login').hidden`, "the login form after the token was refused")
	if msg := eval[string](a, `document.getElementById('login-error').textContent`); !strings.Contains(msg, "log in again") {
		t.Errorf("login message = %q", msg)
	}

	// qqadmin kick --revoke alice
	a.login("alice", password)
	a.waitLoggedIn()
	if _, err := e.srv.Daemon.RevokeTokens("alice", nil); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Daemon.Kick("alice", "please take a break"); n != 1 {
		t.Fatalf("kicked %d sessions, want 1", n)
	}
	a.waitJS(`!document.getElementById('login').hidden && document.getElementById('login-error').textContent.includes('please take a break')`, "the operator's reason")
	if s := eval[string](a, `JSON.stringify(Object.entries(sessionStorage))`); strings.Contains(s, "qqt1.") {
		t.Errorf("the kicked page kept its token: %s", s)
	}
}
