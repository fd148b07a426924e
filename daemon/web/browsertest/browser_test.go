package browsertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/protocol"
)

func TestRegisterAndLogin(t *testing.T) {
	e := newEnv(t)
	p := e.open("alice")
	p.register("alice")
	if got := eval[string](p, `document.getElementById('me').textContent`); got != "alice" {
		t.Errorf("shown user = %q, want alice", got)
	}
	// The password is nowhere in the browser's storage.
	stored := eval[string](p, `JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])`)
	if strings.Contains(stored, password) {
		t.Errorf("web storage holds the password: %s", stored)
	}
	if !strings.Contains(stored, "qqt1.") {
		t.Errorf("sessionStorage holds no resume token: %s", stored)
	}
	p.click("#logout-button")
	p.waitJS(`!document.getElementById('login').hidden`, "the login form after logout")
	if stored := eval[string](p, `JSON.stringify(Object.entries(sessionStorage))`); strings.Contains(stored, "qqt1.") {
		t.Errorf("the token outlived the logout: %s", stored)
	}
	p.login("alice", "wrong-password")
	p.waitJS(`document.getElementById('login-error').textContent.includes('wrong user name or password')`, "the login error")
	p.login("alice", password)
	p.waitLoggedIn()
	// Registering a taken name says so.
	q := e.open("mallory")
	q.fill("login-user", "alice")
	q.fill("login-password", password)
	q.click("#register-button")
	q.waitJS(`document.getElementById('login-error').textContent.includes('taken')`, "the user_exists error")
}

// TestChatBetweenBrowsers: a friend request, presence, typing and messages
// between two people in two browsers.
func TestChatBetweenBrowsers(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Presence.OfflineDebounce = 100 * time.Millisecond })
	a := e.open("alice")
	a.register("alice")
	b := e.open("bob")
	b.register("bob")

	a.click("#tab-requests")
	a.fill("friend-user", "bob")
	a.fill("friend-note", "it's alice")
	a.click("#friend-form button[type=submit]")
	a.waitJS(`document.querySelector('#friend-form .form-result').textContent.includes('Request sent to bob')`, "the request confirmation")
	a.waitJS(`document.getElementById('outgoing-list').textContent.includes('bob')`, "bob among the requests sent")

	b.waitJS(`document.getElementById('requests-badge').textContent === '1'`, "the requests badge")
	b.click("#tab-requests")
	b.waitJS(`document.getElementById('incoming-list').textContent.includes("it's alice")`, "alice's request with its note")
	b.click(`#incoming-list button[aria-label^="Accept alice"]`)

	a.click("#tab-friends")
	a.waitJS(`document.querySelector('button.row[data-conv="u:bob"][data-presence="online"]')`, "bob online among alice's friends")
	b.click("#tab-friends")
	b.waitJS(`document.querySelector('button.row[data-conv="u:alice"][data-presence="online"]')`, "alice online among bob's friends")

	b.openConv("u:alice")
	a.openConv("u:bob")
	// Typing: alice types, bob sees it; sending ends it.
	a.do(chromedp.Focus(chromedp.ID("composer-text")))
	call(a, inputInsertText, inputText("hello"))
	b.waitJS(`document.getElementById('typing').textContent === 'alice is typing…'`, "alice typing")
	call(a, inputInsertText, inputText(" bob"))
	a.key("Enter", 13, 0)
	a.waitShown("hello bob")
	b.waitShown("hello bob")
	b.waitJS(`document.getElementById('typing').textContent === ''`, "the typing line cleared")

	// Shift+Enter is a new line; Enter sends both lines as one message.
	b.do(chromedp.Focus(chromedp.ID("composer-text")))
	call(b, inputInsertText, inputText("line one"))
	b.key("Enter", 13, shiftModifier)
	if v := eval[string](b, `document.getElementById('composer-text').value`); v != "line one\n" {
		t.Errorf("after Shift+Enter the box holds %q, want %q", v, "line one\n")
	}
	call(b, inputInsertText, inputText("line two"))
	b.key("Enter", 13, 0)
	a.waitShown("line one\nline two")

	// Presence: bob goes away, alice sees it in the list and the header.
	b.do(chromedp.Evaluate[chromedp.Void](`(s => { s.value = 'away'; s.dispatchEvent(new Event('change')); })(document.getElementById('presence'))`))
	a.waitJS(`document.querySelector('button.row[data-conv="u:bob"][data-presence="away"]') && document.getElementById('conv-sub').textContent === 'away'`, "bob away")

	// bob leaves: alice sees him offline.
	b.click("#logout-button")
	a.waitJS(`document.querySelector('button.row[data-conv="u:bob"][data-presence="offline"]')`, "bob offline")

	for _, m := range a.shown() {
		if m.HTML != 0 {
			t.Errorf("message %q has markup", m.Body)
		}
	}
	if got := a.shown(); len(got) != 2 {
		t.Errorf("alice's conversation shows %d messages, want 2: %+v", len(got), got)
	}
}

// TestChatWithTCPClient: a browser and a Go client over TCP; HTML in a
// message is shown as text, a URL as a safe link; unread counts.
func TestChatWithTCPClient(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	evil := `<b>bold</b> <img src=x onerror="document.title='pwned'"> <script>document.title='pwned'</script> see https://example.com/a?b=1&c=<d>.`
	if _, err := bob.Send(ctx, "alice", evil); err != nil {
		t.Fatal(err)
	}
	a.waitJS(`document.title === '(1) qq'`, "one unread in the title")
	a.waitJS(`document.querySelector('#other-list button.row[data-conv="u:bob"] .badge')?.textContent === '1'`, "bob's unread badge")
	a.openConv("u:bob")
	a.waitShown(evil)
	a.waitJS(`document.title === 'qq'`, "the title without unread")
	got := a.shown()
	if len(got) != 1 || got[0].Body != evil || got[0].HTML != 0 {
		t.Fatalf("shown = %+v, want the text as sent, without markup", got)
	}
	link := eval[map[string]string](a, `(a => ({href: a.href, rel: a.rel, target: a.target, text: a.textContent}))(document.querySelector('#messages ol:not([hidden]) li.msg .body a'))`)
	want := map[string]string{"href": "https://example.com/a?b=1&c=", "rel": "noopener noreferrer", "target": "_blank", "text": "https://example.com/a?b=1&c="}
	if fmt.Sprint(link) != fmt.Sprint(want) {
		t.Errorf("link = %v, want %v", link, want)
	}
	if n := eval[int](a, `document.querySelectorAll('#messages img, #messages script, #messages b').length`); n != 0 {
		t.Errorf("the page has %d elements from the message's markup", n)
	}

	a.send("hi bob, <i>not italic</i>")
	select {
	case m := <-bob.Messages():
		if m.From != "alice" || m.Body != "hi bob, <i>not italic</i>" {
			t.Errorf("bob got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("bob got nothing")
	}
	a.waitShown("hi bob, <i>not italic</i>")
}

// TestGroupChat: a group made in a browser, joined by another browser
// and a TCP client; unread counts and an @mention badge.
func TestGroupChat(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	c := e.open("carol")
	c.register("carol")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	a.click("#tab-groups")
	a.fill("group-name", "crew")
	a.click("#group-create-form button[type=submit]")
	a.waitJS(`document.getElementById('conv-title').textContent === 'crew'`, "the new group open")
	gid := eval[string](a, `document.querySelector('#group-list button.row').dataset.conv.slice(2)`)

	c.click("#tab-groups")
	c.fill("group-id", gid)
	c.click("#group-join-form button[type=submit]")
	c.waitJS(`document.getElementById('conv-title').textContent === 'crew'`, "the group open for carol")
	if _, _, err := bob.GroupJoin(ctx, gid); err != nil {
		t.Fatal(err)
	}
	a.waitJS(`document.getElementById('conv-sub').textContent.includes('3 members')`, "three members")

	// alice looks elsewhere; bob mentions her.
	a.click("#tab-friends")
	a.chatWith("nobody-in-particular")
	if _, err := bob.GroupSend(ctx, gid, "@alice look at this", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.GroupSend(ctx, gid, "and this"); err != nil {
		t.Fatal(err)
	}
	c.waitShown("and this")
	a.click("#tab-groups")
	row := fmt.Sprintf(`button.row[data-conv="g:%s"]`, gid)
	a.waitJS(fmt.Sprintf(`document.querySelector('%s .badge.mention') && [...document.querySelectorAll('%s .badge')].pop().textContent === '2'`, row, row), "the @ badge and 2 unread")
	a.waitJS(`document.title === '(2) qq'`, "two unread in the title")
	a.openConv("g:" + gid)
	a.waitShown("@alice look at this")
	a.waitJS(`document.querySelector('#messages ol:not([hidden]) li.msg.mention')`, "the mention highlighted")
	a.waitJS(fmt.Sprintf(`!document.querySelector('%s .badge') && document.title === 'qq'`, row), "the badges cleared")

	// alice's connection drops while she looks elsewhere; what came
	// meanwhile is caught up and counted once.
	a.chatWith("nobody-in-particular")
	e.pause(true)
	e.drop()
	a.waitJS(`document.getElementById('conn-state').dataset.state !== 'up'`, "alice disconnected")
	for _, body := range []string{"while you were away", "still away?"} {
		if _, err := bob.GroupSend(ctx, gid, body); err != nil {
			t.Fatal(err)
		}
	}
	e.pause(false)
	a.waitLoggedIn()
	a.click("#tab-groups")
	a.waitJS(fmt.Sprintf(`[...document.querySelectorAll('%s .badge')].pop()?.textContent === '2' && !document.querySelector('%s .badge.mention')`, row, row), "2 unread after the reconnect")
	a.waitJS(`document.title === '(2) qq'`, "two unread in the title after the reconnect")
	a.openConv("g:" + gid)
	a.waitShown("still away?")
	if got := len(a.shown()); got != 4 {
		t.Errorf("the group shows %d messages, want 4: %+v", got, a.shown())
	}

	a.send("hello crew @carol")
	c.waitShown("hello crew @carol")
	for {
		select {
		case ev := <-bob.Events():
			if ev.Type == protocol.TypeGroupEntry && ev.Entry != nil && ev.Entry.Body == "hello crew @carol" {
				if ev.Entry.From != "alice" || len(ev.Entry.Mentions) != 1 || ev.Entry.Mentions[0] != "carol" {
					t.Errorf("bob got %+v", ev.Entry)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("bob did not get alice's message")
		}
	}
}

var _ = client.Options{}

// TestHistoryPaging: a long conversation opens on its newest page and
// pages back as the user scrolls up, each message once and in order.
func TestHistoryPaging(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	const n = 120
	var want []string
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("history %03d", i)
		want = append(want, body)
		if _, err := bob.Send(ctx, "alice", body); err != nil {
			t.Fatal(err)
		}
	}
	// Read elsewhere already: nothing pending, only history.
	other := e.tcpUser("alice", false)
	for {
		msgs, more, err := other.Offline(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		if err := other.Ack(ctx, ids...); err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	a.do(chromedp.Reload())
	a.waitLoggedIn()
	a.chatWith("bob")
	a.waitShown("history 119")
	if got := len(a.shown()); got != 50 {
		t.Errorf("the newest page shows %d messages, want 50", got)
	}
	for pages := 0; len(a.shown()) < n; pages++ {
		if pages == 5 {
			t.Fatalf("after 5 scrolls %d messages shown, want %d", len(a.shown()), n)
		}
		before := len(a.shown())
		a.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('messages').scrollTop = 0`))
		a.waitJS(fmt.Sprintf(`document.querySelectorAll('#messages ol:not([hidden]) li.msg').length > %d`, before), "an older page")
	}
	var got []string
	for _, m := range a.shown() {
		got = append(got, m.Body)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("shown %d messages %q, want %d in order", len(got), got, n)
	}
	a.waitJS(`document.getElementById('older-button').hidden`, "no more to load")
}

// TestFailedSendRetry: a refused message shows why, with Retry (the same
// cid: stored once) and Discard (gone for good, reload included).
func TestFailedSendRetry(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	a.chatWith("zoe")
	a.send("hello zoe")
	a.send("never mind")
	a.waitJS(`document.querySelectorAll('#messages ol:not([hidden]) li.msg[data-state="failed"]').length === 2`, "both refused")
	if got := eval[string](a, `document.querySelector('#messages li.msg[data-state="failed"] .state').textContent`); !strings.Contains(got, "Not sent: no such user") {
		t.Errorf("the failed message says %q", got)
	}
	cid := eval[string](a, `document.querySelector('#messages li.msg[data-state="failed"]').dataset.cid`)

	// Discard the second; it stays gone after a reload.
	a.click(`#messages li.msg[data-state="failed"]:last-child button[aria-label="Discard this message"]`)
	a.waitJS(`document.querySelectorAll('#messages li.msg').length === 1`, "one message left")
	a.do(chromedp.Reload())
	a.waitJS(`document.getElementById('conv-title').textContent === 'zoe' && document.querySelectorAll('#messages ol:not([hidden]) li.msg[data-state="failed"]').length === 1`, "the refused message back after the reload, the discarded one not")

	zoe := e.tcpUser("zoe", true)
	a.click(`#messages li.msg[data-state="failed"] button[aria-label="Retry sending this message"]`)
	a.waitShown("hello zoe")
	if got := eval[string](a, `document.querySelector('#messages ol:not([hidden]) li.msg').dataset.cid`); got != cid {
		t.Errorf("the retry's cid is %q, want the first one's %q", got, cid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	checkOnce(t, "the store", waitHistory(t, ctx, zoe, "alice", 1), []string{"hello zoe"})
	// It was stored under that cid: the same send again is the same message.
	again, err := e.tcpUser("alice", false).SendCID(ctx, "zoe", "hello zoe", cid)
	if err != nil {
		t.Fatal(err)
	}
	if id := eval[string](a, `document.querySelector('#messages ol:not([hidden]) li.msg').dataset.id`); again.MsgID != id {
		t.Errorf("a send with the cid %s is message %s, the page shows %s", cid, again.MsgID, id)
	}
	if got := a.shown(); len(got) != 1 {
		t.Errorf("shown %+v, want the one message", got)
	}
}
