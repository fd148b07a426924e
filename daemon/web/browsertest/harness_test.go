// Package browsertest drives the web client (daemon/web/app) in a real
// headless Chromium against a real qqd: the daemon of daemontest and the
// WebSocket gateway of package web, over loopback. One browser serves the
// whole test binary; each test opens its own tabs, each user in a browser
// context of its own (separate storage, as two browsers would have), and
// the tests run one after the other.
//
// The tests skip, with a message saying so, when no Chromium is found
// ($QQ_CHROMIUM, then chromium, chromium-browser, google-chrome on $PATH);
// with QQ_REQUIRE_CHROMIUM=1 (as .ci/run sets) they fail instead.
// QQ_WEB_SCREENSHOTS=DIR writes the screenshots of TestScreenshots there
// (make screenshots: docs/img).
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
)

const (
	// launchTimeout bounds the browser's start: cold starts of 10-20 s
	// happen on a loaded 2-core machine.
	launchTimeout = 90 * time.Second
	// testTimeout bounds one test's use of the browser.
	testTimeout = 120 * time.Second
	// waitTimeout bounds one wait for the page to show something.
	waitTimeout = 20 * time.Second
	password    = "secret-password"
)

// browser is the one Chromium of the test binary, started by the first
// test that needs it and stopped by TestMain.
type browser struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
	skip   string
}

var theBrowser browser

func TestMain(m *testing.M) {
	code := m.Run()
	if theBrowser.cancel != nil {
		theBrowser.cancel()
	}
	os.Exit(code)
}

func chromiumPath() string {
	if p := os.Getenv("QQ_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func (b *browser) start() {
	path := chromiumPath()
	if path == "" {
		b.skip = "no Chromium found ($QQ_CHROMIUM, chromium, chromium-browser, google-chrome): apt-get install chromium"
		return
	}
	dir, err := os.MkdirTemp("", "qq-chromium-")
	if err != nil {
		b.err = err
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1100, 760),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("disable-gpu", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses root with its sandbox
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err = <-done:
	case <-time.After(launchTimeout):
		err = fmt.Errorf("chromium did not start within %v", launchTimeout)
	}
	b.ctx = ctx
	b.cancel = func() {
		cancel()
		acancel()
		os.RemoveAll(dir)
	}
	if err != nil {
		b.err = fmt.Errorf("start %s: %w", path, err)
	}
}

// needBrowser returns the browser's context, skipping the test when there
// is no Chromium (failing instead under QQ_REQUIRE_CHROMIUM=1).
func needBrowser(t *testing.T) context.Context {
	t.Helper()
	theBrowser.once.Do(theBrowser.start)
	if theBrowser.skip != "" {
		if os.Getenv("QQ_REQUIRE_CHROMIUM") != "" {
			t.Fatalf("QQ_REQUIRE_CHROMIUM is set and %s", theBrowser.skip)
		}
		t.Skip(theBrowser.skip)
	}
	if theBrowser.err != nil {
		t.Fatal(theBrowser.err)
	}
	return theBrowser.ctx
}

// env is one test's server: a qqd (daemontest) with the web gateway.
type env struct {
	t    *testing.T
	srv  *daemontest.Server
	base string
	// drop closes every WebSocket session from the server's side, and
	// says how many there were.
	drop func() int
	// pause(true) makes every new WebSocket close at once (the server is
	// unreachable), pause(false) lets them through again.
	pause func(bool)
	// stall makes every WebSocket session silent without closing it, in
	// both directions, as a network that went away does; says how many.
	stall func() int
	cut   *sendCutter
	bctx  context.Context
}

// sendCutter closes a connection right after the client's nth send
// frame reached the daemon: the message may be stored while its ok is
// lost, the hardest case for a client's retry.
type sendCutter struct {
	mu    sync.Mutex
	left  []int
	fired chan struct{}
}

// arm makes the cutter close a connection after each of counts more
// send frames (counted across connections); fired is closed after the
// last cut.
func (c *sendCutter) arm(counts ...int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left = counts
	c.fired = make(chan struct{})
	return c.fired
}

// passed counts frame if it is a send and reports whether its connection
// must be closed now.
func (c *sendCutter) passed(frame []byte) bool {
	if !bytes.Contains(frame, []byte(`"type":"send"`)) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.left) == 0 {
		return false
	}
	if c.left[0]--; c.left[0] > 0 {
		return false
	}
	if c.left = c.left[1:]; len(c.left) == 0 {
		close(c.fired)
	}
	return true
}

func newEnv(t *testing.T, opts ...func(*config.Config)) *env {
	t.Helper()
	bctx := needBrowser(t)
	srv := daemontest.Start(t, opts...)
	cut := &sendCutter{}
	base, drop, pause, stall := startGateway(t, srv, cut)
	return &env{t: t, srv: srv, base: base, drop: drop, pause: pause, stall: stall, cut: cut, bctx: bctx}
}

// tcpUser registers user (if register) and logs in over TCP with the Go
// client, with its events on.
func (e *env) tcpUser(user string, register bool) *client.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, e.srv.Addr, client.Options{Events: true})
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	if register {
		if err := c.Register(ctx, user, password); err != nil {
			e.t.Fatalf("register %s: %v", user, err)
		}
	}
	if _, err := c.Login(ctx, user, password); err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// appPage is one browser tab showing the app.
type appPage struct {
	t      *testing.T
	name   string
	ctx    context.Context
	bctx   context.Context // the tab's browser context, for more tabs
	cancel context.CancelFunc
	mu     sync.Mutex
	errs   []string
}

// open opens the app in a new browser context (fresh storage: another
// person's browser) and waits until it is loaded.
func (e *env) open(name string) *appPage {
	e.t.Helper()
	return e.openWith(name, "")
}

// openWith is open with a script that runs in the page before the app's
// (a test's stand-in for a browser API).
func (e *env) openWith(name, script string) *appPage {
	e.t.Helper()
	ctx, cancel := chromedp.NewContext(e.bctx, chromedp.WithNewBrowserContext())
	if script != "" {
		if err := chromedp.Do(ctx); err != nil {
			cancel()
			e.t.Fatalf("%s: open a tab: %v", name, err)
		}
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
			cancel()
			e.t.Fatalf("%s: add a script: %v", name, err)
		}
	}
	return e.start(name, ctx, cancel, ctx)
}

// tab opens the app in another tab of p's browser context (the same
// person's browser: storage and BroadcastChannel shared).
func (e *env) tab(p *appPage, name string) *appPage {
	e.t.Helper()
	ctx, cancel := chromedp.NewContext(p.bctx)
	return e.start(name, ctx, cancel, p.bctx)
}

func (e *env) start(name string, ctx context.Context, cancel context.CancelFunc, bctx context.Context) *appPage {
	t := e.t
	t.Helper()
	p := &appPage{t: t, name: name, bctx: bctx}
	// The tab is created by the first action; a timeout context around
	// later actions only, never the first (it would close the tab).
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	tctx, tcancel := context.WithTimeout(ctx, testTimeout)
	p.ctx = tctx
	p.cancel = func() {
		tcancel()
		cancel()
	}
	t.Cleanup(func() {
		p.mu.Lock()
		errs := p.errs
		p.mu.Unlock()
		for _, m := range errs {
			t.Errorf("%s: page error: %s", name, m)
		}
		p.cancel()
	})
	messages := chromedp.Console(tctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			text := m.String()
			if m.IsException() || strings.Contains(text, "Content Security Policy") || strings.Contains(text, "Content-Security-Policy") {
				p.mu.Lock()
				p.errs = append(p.errs, text)
				p.mu.Unlock()
			}
			if os.Getenv("QQ_TEST_LOG") != "" {
				t.Logf("%s console: %s", name, text)
			}
		}
	}()
	p.do(chromedp.Navigate(e.base + "/"))
	p.waitJS(`!document.body.classList.contains('booting')`, "the app to start")
	return p
}

func (p *appPage) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// eval evaluates a JavaScript expression in the page into out's type.
func eval[T any](p *appPage, js string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, js, err)
	}
	return v
}

// waitJS waits until the expression is truthy, failing after waitTimeout
// with what.
func (p *appPage) waitJS(js, what string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		snap := eval[string](p, `document.body.innerText.slice(0, 2000)`)
		p.t.Fatalf("%s: waiting for %s (%s): %v\npage text:\n%s", p.name, what, js, err, snap)
	}
}

// call sends one DevTools protocol command to the tab.
func call[P, R any](p *appPage, cmd cdp.Command[P, R], params P) R {
	p.t.Helper()
	r, err := chromedp.Call(p.ctx, cmd, params)
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, cmd.Method, err)
	}
	return r
}

// key presses and releases one key, as a keyboard does: keyDown (with
// the key's text, for Enter "\r") and keyUp.
func (p *appPage) key(key string, code int64, modifiers int64) {
	p.t.Helper()
	text := ""
	if key == "Enter" {
		text = "\r"
	}
	call(p, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: key, Code: key, Text: text, UnmodifiedText: text, WindowsVirtualKeyCode: code, NativeVirtualKeyCode: code, Modifiers: modifiers})
	call(p, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: key, Code: key, WindowsVirtualKeyCode: code, NativeVirtualKeyCode: code, Modifiers: modifiers})
}

// fill types text into the element with that id (focus, insertText).
func (p *appPage) fill(id, text string) {
	p.t.Helper()
	eval[chromedp.Void](p, fmt.Sprintf(`(e => { e.focus(); e.value = ''; })(document.getElementById(%q))`, id))
	call(p, input.InsertText, input.InsertTextParams{Text: text})
}

// click clicks the element sel once it is visible (within waitTimeout).
func (p *appPage) click(sel string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	for {
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		if err == nil {
			return
		}
		// The app rebuilt the element between finding and clicking it:
		// find it again.
		if !strings.Contains(err.Error(), "Could not find node") && !strings.Contains(err.Error(), "No node with given id") && !strings.Contains(err.Error(), "detached") || ctx.Err() != nil {
			p.t.Fatalf("%s: click %s: %v", p.name, sel, err)
		}
	}
}

// register registers user in the login form and waits for the app.
func (p *appPage) register(user string) {
	p.t.Helper()
	p.waitJS(`!document.getElementById('login').hidden`, "the login form")
	p.fill("login-user", user)
	p.fill("login-password", password)
	p.click("#register-button")
	p.waitLoggedIn()
}

func (p *appPage) login(user, pw string) {
	p.t.Helper()
	p.waitJS(`!document.getElementById('login').hidden`, "the login form")
	p.fill("login-user", user)
	p.fill("login-password", pw)
	p.click("#login-button")
}

func (p *appPage) waitLoggedIn() {
	p.t.Helper()
	p.waitJS(`!document.getElementById('app').hidden && document.getElementById('conn-state').dataset.state === 'up'`, "the app, connected")
}

// openConv opens a conversation from the lists ('u:name', 'g:id').
func (p *appPage) openConv(key string) {
	p.t.Helper()
	tab := "tab-friends"
	if strings.HasPrefix(key, "g:") {
		tab = "tab-groups"
	}
	p.click("#" + tab)
	p.waitJS(fmt.Sprintf(`document.querySelector('button.row[data-conv=%q]')`, key), "the list row of "+key)
	p.click(fmt.Sprintf(`button.row[data-conv=%q]`, key))
	p.waitJS(`!document.getElementById('composer').hidden`, "the conversation")
}

// chatWith opens a direct conversation by name (the "Chat with" form).
func (p *appPage) chatWith(user string) {
	p.t.Helper()
	p.click("#tab-friends")
	p.fill("chat-user", user)
	p.key("Enter", 13, 0)
	p.waitJS(`!document.getElementById('composer').hidden`, "the conversation with "+user)
}

// send types text into the message box and presses Enter.
func (p *appPage) send(text string) {
	p.t.Helper()
	p.do(chromedp.Focus(chromedp.ID("composer-text")))
	call(p, input.InsertText, input.InsertTextParams{Text: text})
	p.key("Enter", 13, 0)
}

// shownMsg is a message as the open conversation shows it.
type shownMsg struct {
	Body  string `json:"body"`
	Mine  bool   `json:"mine"`
	State string `json:"state"`
	ID    string `json:"id"`
	From  string `json:"from"`
	HTML  int    `json:"html"` // elements in the body other than links
}

const shownJS = `[...document.querySelectorAll('#messages ol:not([hidden]) li.msg')].map(li => ({
	body: li.querySelector('.body').textContent,
	mine: li.classList.contains('mine'),
	state: li.dataset.state,
	id: li.dataset.id || '',
	from: li.querySelector('.from').textContent,
	html: li.querySelector('.body').querySelectorAll(':not(a)').length,
}))`

func (p *appPage) shown() []shownMsg {
	p.t.Helper()
	return eval[[]shownMsg](p, shownJS)
}

// waitShown waits until the open conversation shows a message with body
// (and, for the user's own, the state sent).
func (p *appPage) waitShown(body string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf(`(%s).some(m => m.body === %q && (!m.mine || m.state === 'sent'))`, shownJS, body), fmt.Sprintf("message %q", body))
}

// Shorthands for the input commands the tests use.
var inputInsertText = input.InsertText

func inputText(s string) input.InsertTextParams { return input.InsertTextParams{Text: s} }

// shiftModifier is the Shift bit of input.DispatchKeyEventParams.Modifiers.
const shiftModifier = 8

func evalVoid(js string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](js) }

// typeText types text into the focused element.
func (p *appPage) typeText(text string) {
	p.t.Helper()
	call(p, input.InsertText, input.InsertTextParams{Text: text})
}

// tabTo presses Tab until the element with id has the focus, at most max
// times.
func (p *appPage) tabTo(id string, max int) {
	p.t.Helper()
	for i := 0; i < max; i++ {
		if eval[string](p, `document.activeElement ? document.activeElement.id : ''`) == id {
			return
		}
		p.key("Tab", 9, 0)
	}
	if got := eval[string](p, `document.activeElement ? document.activeElement.outerHTML.slice(0, 80) : ''`); got == "" || eval[string](p, `document.activeElement.id`) != id {
		p.t.Fatalf("%s: %d Tabs did not reach #%s (focus on %s)", p.name, max, id, got)
	}
}
