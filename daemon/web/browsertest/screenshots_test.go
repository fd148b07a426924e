package browsertest

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestSecurityHeaders: the page and its files come with a strict
// Content-Security-Policy (no inline script or style, no eval) and the
// other security headers; every test also fails on a CSP violation the
// page reports.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/", "/js/main.js", "/app.css"} {
		resp, err := http.Get(e.base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", p, csp, want)
			}
		}
		for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*"} {
			if strings.Contains(csp, bad) {
				t.Errorf("GET %s: Content-Security-Policy %q allows %s", p, csp, bad)
			}
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options = %q", p, got)
		}
		if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy = %q", p, got)
		}
	}
	// The app runs under it: a page that breaks the policy reports a
	// violation, which fails the test (see start).
	a := e.open("alice")
	a.register("alice")
	a.chatWith("alice")
	a.send("a note to myself")
	a.waitShown("a note to myself")
}

// TestScreenshots takes the README's pictures of the main screens:
// written to $QQ_WEB_SCREENSHOTS when set (make screenshots: docs/img),
// else to a temporary directory (they are still taken and checked).
func TestScreenshots(t *testing.T) {
	e := newEnv(t)
	dir := os.Getenv("QQ_WEB_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()

	a := e.open("alice")
	a.do(chromedp.EmulateViewport(1100, 700))
	shot(t, a, dir, "web-login.png")
	a.register("alice")

	// Friends: bob (online), carol (away, with a note), dave (offline).
	bob, carol, dave := e.tcpUser("bob", true), e.tcpUser("carol", true), e.tcpUser("dave", true)
	for _, c := range []interface {
		RequestFriend(context.Context, string, string) (bool, error)
	}{bob, carol, dave} {
		if _, err := c.RequestFriend(ctx, "alice", ""); err != nil {
			t.Fatal(err)
		}
	}
	a.click("#tab-requests")
	for _, u := range []string{"bob", "carol", "dave"} {
		a.waitJS(`document.querySelector('#incoming-list button[aria-label^="Accept `+u+`"]')`, u+"'s request")
		// The list re-renders when an earlier accept's listing comes
		// back, and a click can land on the node it replaced: click
		// (again) until the friendship shows.
		a.waitJS(`document.querySelector('button.row[data-conv="u:`+u+`"]') ||
			(document.querySelector('#incoming-list button[aria-label^="Accept `+u+`"]:not([disabled])')?.click(), false)`, u+" accepted")
	}
	if err := carol.SetPresence(ctx, "away", "lunch until 2"); err != nil {
		t.Fatal(err)
	}
	dave.Close()
	// A group with some history, and an unread mention.
	g, err := carol.CreateGroup(ctx, "weekend hike", "open", "shared")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.GroupJoin(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.GroupInvite(ctx, g, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ who, body string }{
		{"carol", "Saturday, 9:00 at the station?"},
		{"bob", "I'm in. Bringing the map."},
		{"carol", "@alice can you book the train? https://example.com/timetable"},
	} {
		c := carol
		if m.who == "bob" {
			c = bob
		}
		var mentions []string
		if strings.Contains(m.body, "@alice") {
			mentions = []string{"alice"}
		}
		if _, err := c.GroupSend(ctx, g, m.body, mentions...); err != nil {
			t.Fatal(err)
		}
	}
	a.click("#tab-friends")
	a.waitJS(`document.querySelector('button.row[data-conv="u:carol"][data-presence="away"]') && document.querySelector('button.row[data-conv="u:dave"][data-presence="offline"]')`, "the friends' presence")

	// A conversation with bob.
	a.openConv("u:bob")
	if _, err := bob.Send(ctx, "alice", "Hi! Did you see the photos from last week?"); err != nil {
		t.Fatal(err)
	}
	a.waitShown("Hi! Did you see the photos from last week?")
	a.send("Not yet, send me the link")
	if _, err := bob.Send(ctx, "alice", "Here: https://example.com/album/42\nThe one at the lake is my favourite."); err != nil {
		t.Fatal(err)
	}
	a.waitShown("Here: https://example.com/album/42\nThe one at the lake is my favourite.")
	a.send("Beautiful!")
	a.waitShown("Beautiful!")
	if err := bob.Typing(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	a.waitJS(`document.getElementById('typing').textContent === 'bob is typing…'`, "bob typing")
	a.waitJS(`document.querySelector('#friends-badge').hidden && document.querySelector('#groups-badge').textContent === '4'`, "the group's unread badge")
	shot(t, a, dir, "web-chat.png")

	// The group, in the dark theme.
	call(a, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
	a.openConv("g:" + g)
	a.waitShown("@alice can you book the train? https://example.com/timetable")
	a.send("Booked: 4 tickets, 8:41 from platform 2.")
	a.waitShown("Booked: 4 tickets, 8:41 from platform 2.")
	shot(t, a, dir, "web-group-dark.png")

	// A phone: the conversation alone, with a back button.
	call(a, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}})
	a.do(chromedp.EmulateViewport(390, 760, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	a.click("#back-button")
	a.openConv("u:bob")
	a.waitJS(`getComputedStyle(document.getElementById('sidebar')).display === 'none' && getComputedStyle(document.getElementById('back-button')).display !== 'none'`, "the phone layout")
	shot(t, a, dir, "web-phone.png")
	a.click("#back-button")
	a.waitJS(`getComputedStyle(document.getElementById('sidebar')).display !== 'none' && getComputedStyle(document.getElementById('conversation')).display === 'none'`, "the lists on a phone")
	shot(t, a, dir, "web-phone-lists.png")
}

// shot saves a screenshot of the page's viewport as dir/name.
func shot(t *testing.T, p *appPage, dir, name string) {
	t.Helper()
	// Let fonts and layout settle, and the caret not blink into the picture.
	p.do(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	b, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// screenshotNames are the pictures TestScreenshots takes.
var screenshotNames = []string{"web-login.png", "web-chat.png", "web-group-dark.png", "web-phone.png", "web-phone-lists.png"}

// TestReadmeScreenshots: the web client's pictures the README shows exist
// under docs/img and are ones TestScreenshots takes (make screenshots
// renews them).
func TestReadmeScreenshots(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`docs/img/(web-[a-z0-9-]+\.png)`).FindAllStringSubmatch(string(readme), -1)
	if len(refs) == 0 {
		t.Fatal("the README shows no screenshot of the web client")
	}
	for _, m := range refs {
		if !slices.Contains(screenshotNames, m[1]) {
			t.Errorf("the README shows %s, which TestScreenshots does not take", m[0])
		}
		if _, err := os.Stat(filepath.Join(root, m[0])); err != nil {
			t.Errorf("the README shows %s: %v (make screenshots)", m[0], err)
		}
	}
}
