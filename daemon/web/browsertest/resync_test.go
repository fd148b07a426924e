package browsertest

import (
	"context"
	"fmt"
	"github.com/chromedp/cdproto/cdp"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/qqchat/qq/daemon/protocol"
)

// TestOfflineCatchUp: messages sent while the user was away are fetched
// at login, shown once, counted unread, and acked once rendered.
func TestOfflineCatchUp(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	a.click("#logout-button")
	a.waitJS(`!document.getElementById('login').hidden`, "the login form")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for i := 1; i <= 3; i++ {
		r, err := bob.Send(ctx, "alice", fmt.Sprintf("while you were out %d", i))
		if err != nil || r.Status != "queued" {
			t.Fatalf("send %d: %+v, %v", i, r, err)
		}
	}
	a.login("alice", password)
	a.waitLoggedIn()
	a.waitJS(`document.title === '(3) qq'`, "three unread in the title")
	a.openConv("u:bob")
	for i := 1; i <= 3; i++ {
		a.waitShown(fmt.Sprintf("while you were out %d", i))
	}
	if got := a.shown(); len(got) != 3 {
		t.Errorf("shown %d messages, want 3: %+v", len(got), got)
	}
	// Rendered, hence acked: nothing is pending for alice any more.
	for {
		other := e.tcpUser("alice", false)
		msgs, _, err := other.Offline(ctx, 10)
		other.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("still pending after the page showed them: %+v", msgs)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestIMECompositionDoesNotSend: Enter while an input method composes
// never sends, in Chromium's event order and in Safari's (compositionend
// before the Enter keydown); the Enter after it does.
func TestIMECompositionDoesNotSend(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	a.chatWith("bob")
	a.do(chromedp.Focus(chromedp.ID("composer-text")))
	a.do(chromedp.Evaluate[chromedp.Void](`window.imeEvents = []; for (const t of ['compositionstart', 'compositionend', 'keydown']) document.getElementById('composer-text').addEventListener(t, e => imeEvents.push(t + (e.isComposing ? '/composing' : '')))`))
	box := func() string { return eval[string](a, `document.getElementById('composer-text').value`) }
	noneSent := func(when string) {
		t.Helper()
		if n := eval[int](a, `document.querySelectorAll('#messages li.msg').length`); n != 0 {
			t.Fatalf("%s: %d messages sent, want none (events: %s)", when, n, eval[string](a, `imeEvents.join(' ')`))
		}
	}

	// Chromium's order: the IME composes, the Enter keydown comes while it
	// does (isComposing), then the composition is committed.
	// (The IME consumes the key: no text reaches the box.)
	call(a, input.ImeSetComposition, input.ImeSetCompositionParams{Text: "nihao", SelectionStart: 5, SelectionEnd: 5})
	call(a, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeRawKeyDown, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13})
	call(a, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13})
	call(a, input.InsertText, input.InsertTextParams{Text: "你好"})
	noneSent("Enter during a composition")
	if got := box(); got != "你好" {
		t.Errorf("after the composition the box holds %q, want 你好 (events: %s)", got, eval[string](a, `imeEvents.join(' ')`))
	}
	if got := eval[string](a, `imeEvents.join(' ')`); got != "compositionstart keydown/composing compositionend" {
		t.Errorf("events = %q, want a composition around a composing keydown", got)
	}

	// Safari's order: compositionend first, then the Enter keydown that
	// committed, with isComposing false.
	a.do(chromedp.Evaluate[chromedp.Void](`(ta => {
		ta.dispatchEvent(new CompositionEvent('compositionstart', {data: ''}));
		ta.value += '世界';
		ta.dispatchEvent(new CompositionEvent('compositionend', {data: '世界'}));
		ta.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', bubbles: true, cancelable: true}));
	})(document.getElementById('composer-text'))`))
	noneSent("Enter right after compositionend")

	// An Enter keydown with keyCode 229: the IME handles it.
	call(a, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeRawKeyDown, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 229, NativeVirtualKeyCode: 229})
	noneSent("an Enter keydown with keyCode 229")
	if got := box(); got != "你好世界" {
		t.Errorf("the box holds %q, want 你好世界", got)
	}

	// The composition is over: the next Enter sends.
	a.key("End", 35, 0)
	a.key("Enter", 13, 0)
	a.waitShown("你好世界")
	select {
	case m := <-bob.Messages():
		if m.Body != "你好世界" {
			t.Errorf("bob got %q", m.Body)
		}
	case <-ctx.Done():
		t.Fatal("bob got nothing")
	}
}

// waitHistory waits until the conversation between c's user and with,
// as stored, holds want bodies, and returns them in order.
func waitHistory(t *testing.T, ctx context.Context, c interface {
	History(context.Context, string, string, int) ([]protocol.Message, bool, error)
}, with string, want int) []string {
	t.Helper()
	for {
		msgs, _, err := c.History(ctx, with, "", 500)
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		if len(msgs) >= want {
			bodies := make([]string, len(msgs))
			for i, m := range msgs {
				bodies[i] = m.Body
			}
			return bodies
		}
		select {
		case <-ctx.Done():
			t.Fatalf("history holds %d messages, want %d", len(msgs), want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkOnce checks that got is want, each message once and in order.
func checkOnce(t *testing.T, who string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: got %d messages %q, want %d %q", who, len(got), got, len(want), want)
	}
}

// TestDroppedSocketDuringBurst: the server drops the WebSocket while the
// user sends a burst; every message is stored and shown exactly once, in
// order, on both sides.
func TestDroppedSocketDuringBurst(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	a.chatWith("bob")
	const n = 30
	// The connection goes down twice while the burst goes out: right
	// after the 8th and the 18th send reached the server (stored, maybe,
	// but unanswered).
	cut := e.cut.arm(8, 10)
	var want []string
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("burst %02d", i)
		want = append(want, body)
		a.send(body)
	}
	select {
	case <-cut:
	case <-ctx.Done():
		t.Fatal("the connection was not cut twice")
	}
	for _, b := range want {
		a.waitShown(b)
	}
	var got []string
	for _, m := range a.shown() {
		got = append(got, m.Body)
	}
	checkOnce(t, "alice's page", got, want)
	checkOnce(t, "the store", waitHistory(t, ctx, bob, "alice", n), want)
	var pushed []string
	for len(pushed) < n {
		select {
		case m := <-bob.Messages():
			pushed = append(pushed, m.Body)
		case <-ctx.Done():
			t.Fatalf("bob got %d of %d messages: %q", len(pushed), n, pushed)
		}
	}
	checkOnce(t, "bob", pushed, want)
	// The outbox is empty once everything is confirmed.
	a.waitJS(`indexedDB.databases().then(() => true)`, "IndexedDB")
	if left := eval[int](a, `new Promise(r => { const o = indexedDB.open('qq'); o.onsuccess = () => { const q = o.result.transaction('outbox').objectStore('outbox').count(); q.onsuccess = () => r(q.result); }; })`); left != 0 {
		t.Errorf("%d messages left in the outbox", left)
	}
}

// TestReloadMidConversation: messages typed while the server is out of
// reach survive a reload (the IndexedDB outbox) and are sent once when it
// is back; the reloaded page resumes its login and its conversation.
func TestReloadMidConversation(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	a.chatWith("bob")
	a.send("before the reload")
	a.waitShown("before the reload")

	e.pause(true)
	e.drop()
	a.waitJS(`document.getElementById('conn-state').dataset.state !== 'up'`, "the page to notice")
	a.send("queued 1")
	a.send("queued 2")
	a.waitJS(`document.querySelectorAll('#messages li.msg[data-state="sending"]').length === 2`, "two messages waiting")
	a.do(chromedp.Reload())
	a.waitJS(`!document.getElementById('app').hidden && document.getElementById('conv-title').textContent === 'bob'`, "the conversation back after the reload")
	a.waitJS(`document.querySelectorAll('#messages li.msg[data-state="sending"]').length === 2`, "the two messages still waiting")
	if !eval[bool](a, `document.getElementById('login').hidden`) {
		t.Error("the reload asked for the password")
	}
	e.pause(false)
	a.waitLoggedIn()
	a.waitShown("queued 1")
	a.waitShown("queued 2")
	a.waitShown("before the reload")
	want := []string{"before the reload", "queued 1", "queued 2"}
	checkOnce(t, "the store", waitHistory(t, ctx, bob, "alice", 3), want)
	var got []string
	for _, m := range a.shown() {
		got = append(got, m.Body)
	}
	checkOnce(t, "alice's page", got, want)
}

// TestFrozenPage: the browser freezes the page (as it does with a
// background tab, or a laptop asleep) while messages arrive and the
// connection dies; once resumed, the page notices, reconnects and shows
// each message once.
func TestFrozenPage(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	a.chatWith("bob")
	a.do(chromedp.Evaluate[chromedp.Void](`window.lifecycle = []; document.addEventListener('freeze', () => lifecycle.push('freeze')); document.addEventListener('resume', () => lifecycle.push('resume'))`))

	call(a, page.SetWebLifecycleState, page.SetWebLifecycleStateParams{State: page.SetWebLifecycleStateStateFrozen})
	if _, err := bob.Send(ctx, "alice", "sent while frozen"); err != nil {
		t.Fatal(err)
	}
	// The network goes away while the page sleeps, as Wi-Fi does with a
	// closed lid: the socket stays open, and nothing goes through.
	if e.stall() == 0 {
		t.Fatal("no WebSocket to stall")
	}
	if _, err := bob.Send(ctx, "alice", "sent after the drop"); err != nil {
		t.Fatal(err)
	}
	call(a, page.SetWebLifecycleState, page.SetWebLifecycleStateParams{State: page.SetWebLifecycleStateStateActive})
	// The page checks its connection at resume (a QQP ping that gets no
	// answer), makes a new one and catches up.
	a.waitShown("sent while frozen")
	a.waitShown("sent after the drop")
	if got := eval[string](a, `lifecycle.join(' ')`); got != "freeze resume" {
		t.Errorf("lifecycle events = %q, want freeze resume", got)
	}
	a.send("back from the freeze")
	checkOnce(t, "the store", waitHistory(t, ctx, bob, "alice", 3), []string{"sent while frozen", "sent after the drop", "back from the freeze"})
	var got []string
	for _, m := range a.shown() {
		got = append(got, m.Body)
	}
	checkOnce(t, "alice's page", got, []string{"sent while frozen", "sent after the drop", "back from the freeze"})
}

// emulateNetworkConditions is DevTools' network emulation (deprecated in
// the protocol, in favour of a per-rule form that this Chromium's
// protocol does not take yet, but what DevTools' Offline switch uses).
var emulateNetworkConditions = cdp.Command[emulateNetworkConditionsParams, cdp.Empty]{Method: "Network.emulateNetworkConditions"}

type emulateNetworkConditionsParams struct {
	Offline            bool    `json:"offline"`
	Latency            float64 `json:"latency"`
	DownloadThroughput float64 `json:"downloadThroughput"`
	UploadThroughput   float64 `json:"uploadThroughput"`
}

// offline emulates the network going away (or coming back) for the tab:
// requests fail and navigator.onLine follows, with its events.
func (p *appPage) offline(off bool) {
	p.t.Helper()
	call(p, network.Enable, network.EnableParams{})
	call(p, emulateNetworkConditions, emulateNetworkConditionsParams{Offline: off, DownloadThroughput: -1, UploadThroughput: -1})
}

// TestOfflineAndBack: the browser goes offline while the user writes and
// messages arrive; back online, the page sends what was written and
// shows what came, each once.
func TestOfflineAndBack(t *testing.T) {
	e := newEnv(t)
	a := e.open("alice")
	a.register("alice")
	bob := e.tcpUser("bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	a.chatWith("bob")
	a.send("online first")
	a.waitShown("online first")

	a.offline(true)
	a.waitJS(`!navigator.onLine`, "navigator.onLine false")
	a.waitJS(`document.getElementById('conn-state').dataset.state !== 'up'`, "the page to see it is offline")
	a.send("written offline")
	a.waitJS(`document.querySelector('#messages li.msg[data-state="sending"]')?.textContent.includes('written offline')`, "the message waiting")
	if _, err := bob.Send(ctx, "alice", "sent while alice is offline"); err != nil {
		t.Fatal(err)
	}
	a.offline(false)
	a.waitShown("written offline")
	a.waitShown("sent while alice is offline")
	// Stored in the order the server got them: bob's first.
	want := []string{"online first", "sent while alice is offline", "written offline"}
	checkOnce(t, "the store", waitHistory(t, ctx, bob, "alice", 3), want)
	var got []string
	for _, m := range a.shown() {
		got = append(got, m.Body)
	}
	checkOnce(t, "alice's page", got, want)
}
