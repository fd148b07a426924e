package browsertest

import (
	"context"
	"fmt"
	"testing"
)

// fakeNotifications stands in for the Notification API and the page's
// visibility: headless Chromium has no notification service and keeps
// every tab visible. It records what the app does with them.
const fakeNotifications = `
window.notes = [];
window.asked = 0;
window.shown = 'visible';
class FakeNotification {
	constructor(title, opts) { notes.push({title, body: opts.body, tag: opts.tag}); }
	close() {}
}
FakeNotification.permission = 'default';
FakeNotification.requestPermission = () => { asked++; FakeNotification.permission = 'granted'; return Promise.resolve('granted'); };
window.Notification = FakeNotification;
Object.defineProperty(document, 'visibilityState', {get: () => window.shown});
Object.defineProperty(document, 'hidden', {get: () => window.shown !== 'visible'});
window.setShown = v => { window.shown = v; document.dispatchEvent(new Event('visibilitychange')); };
`

// TestNotifications: permission is asked only when the user clicks for
// it; a message that comes while the page is hidden is notified and
// counted unread even in the open conversation, and read once the page is
// shown again.
func TestNotifications(t *testing.T) {
	e := newEnv(t)
	a := e.openWith("alice", fakeNotifications)
	a.register("alice")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if n := eval[int](a, `asked`); n != 0 {
		t.Errorf("the page asked for notifications %d times by itself", n)
	}
	a.click("#notify-button")
	a.waitJS(`asked === 1 && document.getElementById('notify-button').hidden`, "the permission asked on the click")

	a.chatWith("bob")
	a.do(evalVoid(`setShown('hidden')`))
	r, err := bob.Send(ctx, "alice", "are you there?")
	if err != nil {
		t.Fatal(err)
	}
	a.waitJS(fmt.Sprintf(`notes.length === 1 && notes[0].title === 'bob' && notes[0].body === 'are you there?' && notes[0].tag === %q`, r.MsgID), "the notification")
	a.waitJS(`document.title === '(1) qq'`, "one unread while hidden")
	a.do(evalVoid(`setShown('visible')`))
	a.waitJS(`document.title === 'qq'`, "read once shown")
	// Shown: no notification.
	if _, err := bob.Send(ctx, "alice", "ok, later"); err != nil {
		t.Fatal(err)
	}
	a.waitShown("ok, later")
	if n := eval[int](a, `notes.length`); n != 1 {
		t.Errorf("%d notifications, want 1", n)
	}
}

// TestKeyboardOnly: register, switch lists, create a group and write in
// it with the keyboard alone; every control has a name for screen readers.
func TestKeyboardOnly(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.waitJS(`document.activeElement.id === 'login-user'`, "the focus in the user name")
	a.typeText("alice")
	a.key("Tab", 9, 0)
	a.typeText(password)
	a.tabTo("register-button", 3)
	a.key("Enter", 13, 0)
	a.waitLoggedIn()

	a.tabTo("tab-friends", 20)
	a.key("ArrowRight", 39, 0)
	a.waitJS(`document.activeElement.id === 'tab-groups' && document.getElementById('tab-groups').getAttribute('aria-selected') === 'true' && !document.getElementById('panel-groups').hidden`, "the Groups tab, by arrow key")
	a.tabTo("group-name", 5)
	a.typeText("keys")
	a.key("Enter", 13, 0)
	a.waitJS(`document.activeElement.id === 'composer-text' && document.getElementById('conv-title').textContent === 'keys'`, "the new group open, the focus in the message box")
	a.typeText("typed, not clicked")
	a.key("Enter", 13, 0)
	a.waitShown("typed, not clicked")

	// A friend request, accepted from the keyboard; the focus stays on
	// the friend's row while the list changes under it.
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := bob.RequestFriend(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	a.waitJS(`document.getElementById('requests-badge').textContent === '1'`, "the request")
	a.tabTo("tab-groups", 30)
	a.key("ArrowRight", 39, 0)
	a.tabTo("friend-user", 5)
	for i := 0; i < 6 && eval[string](a, `document.activeElement.getAttribute('aria-label') || ''`) != "Accept bob's friend request"; i++ {
		a.key("Tab", 9, 0)
	}
	a.key("Enter", 13, 0)
	a.waitJS(`document.getElementById('requests-badge').hidden`, "the request accepted")
	a.tabTo("tab-requests", 30)
	a.key("Home", 36, 0)
	a.waitJS(`document.activeElement.id === 'tab-friends'`, "the Friends tab, by Home")
	a.key("Tab", 9, 0)
	a.waitJS(`document.activeElement.dataset.conv === 'u:bob'`, "the focus on bob's row")
	if err := bob.SetPresence(ctx, "busy", "in a meeting"); err != nil {
		t.Fatal(err)
	}
	a.waitJS(`document.querySelector('button.row[data-conv="u:bob"][data-presence="busy"]')`, "bob busy")
	if got := eval[string](a, `document.activeElement.dataset.conv || document.activeElement.outerHTML.slice(0, 60)`); got != "u:bob" {
		t.Errorf("after the list changed the focus is on %q, want bob's row", got)
	}
	a.key("Enter", 13, 0)
	a.waitJS(`document.activeElement.id === 'composer-text' && document.getElementById('conv-title').textContent === 'bob'`, "bob's conversation")

	// Every button, field and list row has an accessible name.
	unnamed := eval[[]string](a, `[...document.querySelectorAll('button, input, select, textarea, [role=tab], [role=log]')]
		.filter(e => e.offsetParent !== null || e.getAttribute('role') === 'log')
		.filter(e => !(e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || (e.labels && e.labels.length) || e.textContent.trim()))
		.map(e => e.outerHTML.slice(0, 80))`)
	if len(unnamed) > 0 {
		t.Errorf("controls without a name: %q", unnamed)
	}
}
