package antispam

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/qqchat/qq/plugins"
)

func mustNew(t *testing.T, config string) *Filter {
	t.Helper()
	f, err := newFilter([]byte(config))
	if err != nil {
		t.Fatalf("New(%s): %v", config, err)
	}
	return f
}

// step is one message and the verdict expected for it; want is "" for
// Allow, else the rejection reason.
type step struct {
	from, to, body string
	ts             int64
	want           string
}

// run sends every step as its own batch and checks the verdicts.
func run(t *testing.T, f *Filter, steps []step) {
	t.Helper()
	for i, s := range steps {
		got, err := f.Filter(context.Background(), []plugins.FilterMessage{{From: s.from, To: s.to, Body: s.body, TS: s.ts}})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		want := plugins.Verdict{Action: plugins.Allow}
		if s.want != "" {
			want = plugins.Verdict{Action: plugins.Reject, Reason: s.want}
		}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("step %d (%s→%s %q at %d): got %+v, want %+v", i, s.from, s.to, s.body, s.ts, got, want)
		}
	}
}

const (
	onlyFlood  = `"repeat":{"enabled":false},"links":{"enabled":false}`
	onlyRepeat = `"flood":{"enabled":false},"links":{"enabled":false}`
	onlyLinks  = `"flood":{"enabled":false},"repeat":{"enabled":false}`
)

// numbered returns n distinct link-free bodies.
func numbered(i int) string { return fmt.Sprintf("message number %d", i) }

func TestFlood(t *testing.T) {
	f := mustNew(t, `{"flood":{"max_messages":3,"window":"1s"},`+onlyFlood+`}`)
	run(t, f, []step{
		{"a", "b", "1", 0, ""},
		{"a", "b", "2", 1, ""},
		{"a", "b", "3", 2, ""}, // exactly at the limit
		{"a", "b", "4", 3, ReasonFlood},
		{"b", "a", "1", 3, ""}, // other senders are independent
		{"a", "c", "5", 999, ReasonFlood},
		// The message at 0 stops counting at exactly 0+1s. The rejected
		// ones at 3 and 999 never counted.
		{"a", "b", "6", 1000, ""},
		{"a", "b", "7", 1000, ReasonFlood},
		{"a", "b", "8", 1001, ""}, // the one at 1 expired
		{"a", "b", "9", 1001, ReasonFlood},
	})
}

func TestFloodDefaults(t *testing.T) {
	f := mustNew(t, `{}`)
	var steps []step
	for i := range DefaultFloodMaxMessages {
		steps = append(steps, step{"a", fmt.Sprint("to", i), numbered(i), int64(i), ""})
	}
	steps = append(steps,
		step{"a", "x", "one more", 100, ReasonFlood},
		step{"a", "x", "one more", DefaultFloodWindow.Milliseconds() - 1, ReasonFlood},
		step{"a", "x", "one more", DefaultFloodWindow.Milliseconds(), ""},
	)
	run(t, f, steps)
}

func TestRepeat(t *testing.T) {
	f := mustNew(t, `{"repeat":{"max_same_body":2,"max_recipients":3,"window":"1s"},`+onlyRepeat+`}`)
	run(t, f, []step{
		{"a", "b", "Hello  World", 0, ""},
		{"a", "b", "hello world", 1, ""}, // same after folding and collapsing
		{"a", "b", " HELLO\t\nWORLD ", 2, ReasonRepeat},
		{"a", "b", "hello world!", 3, ""}, // a different body
		{"a", "b", "Straße ÄRGER", 3, ""},
		{"a", "b", "STRAßE ärger", 3, ""},
		{"a", "b", "straße Ärger", 3, ReasonRepeat},
		{"x", "b", "hello world", 4, ""}, // another sender
		// Broadcast: b, c, d are 3 recipients; e is one too many.
		{"a", "c", "hello world", 10, ""},
		{"a", "d", "hello world", 11, ""},
		{"a", "e", "hello world", 12, ReasonRecipients},
		{"a", "c", "HELLO WORLD", 13, ""}, // c is no new recipient
		{"a", "c", "hello world", 14, ReasonRepeat},
		{"a", "e", "other", 15, ""},
		// At 1000 the message to b at 0 expired, the one at 1 did not.
		{"a", "b", "hello world", 1000, ""},
		{"a", "b", "hello world", 1000, ReasonRepeat},
		// At 1011, b (1, 1000) and c (10, 13) count, d (11) expired.
		{"a", "e", "hello world", 1011, ""},
		{"a", "f", "hello world", 1011, ReasonRecipients},
	})
}

func TestLinkDetection(t *testing.T) {
	for body, want := range map[string]bool{
		"see http://x":                true,
		"HTTPS://EXAMPLE.ORG/a":       true,
		"go to www.example":           true,
		"example.com":                 true,
		"visit Example.COM now":       true,
		"example.com/xyz":             true,
		"shop.example.store":          true,
		"some.host:8080":              true,
		"t.me/channel":                true,
		"bit.ly":                      true,
		"(discord.gg/abc)":            true,
		"mail me at someone@mail.ru":  true,
		"a-b.net, ok":                 true,
		"visit example.com: now":      true,
		"--spam.com--":                true,
		"x:http://a":                  true,
		"plain text":                  false,
		"xhttp://a":                   false,
		"http:/a":                     false,
		"_example.com":                false,
		"example.com_x":               false,
		"example.c/":                  false,
		"host.name:x":                 false,
		".com":                        false,
		"a.":                          false,
		"e.g. this":                   false,
		"i.e.":                        false,
		"3.14 and 1.5.2":              false,
		"file.txt":                    false,
		"end of sentence.Next one":    false,
		"www":                         false,
		"https":                       false,
		"com":                         false,
		"hello.world":                 false,
		"\xffexample\xfe.com\xff":     false,
		"version v1.2.3.beta is here": false,
	} {
		if got := hasLink(body); got != want {
			t.Errorf("hasLink(%q) = %v, want %v", body, got, want)
		}
	}
}

func TestLinks(t *testing.T) {
	f := mustNew(t, `{"links":{"max_links":2,"window":"1s"},`+onlyLinks+`}`)
	run(t, f, []step{
		{"a", "b", "see example.com", 0, ""},
		{"a", "b", "no link here", 1, ""},
		{"a", "b", "https://x.y/z", 2, ""},
		{"a", "b", "www.spam.test", 3, ReasonLinks},
		{"a", "b", "still fine without links", 4, ""},
		{"b", "a", "http://other.sender", 5, ""},
		{"a", "b", "www.spam.test", 999, ReasonLinks},
		{"a", "b", "www.spam.test", 1000, ""}, // the one at 0 expired
		{"a", "b", "www.spam.test", 1001, ReasonLinks},
	})
}

func TestRuleOrder(t *testing.T) {
	f := mustNew(t, `{"flood":{"max_messages":2,"window":"1m"},"repeat":{"max_same_body":1},"links":{"max_links":1}}`)
	run(t, f, []step{
		{"a", "b", "http://spam.test", 0, ""},
		{"a", "b", "http://spam.test", 1, ReasonRepeat}, // repeat before links
		{"a", "b", "http://other.test", 2, ReasonLinks},
		{"a", "b", "fine", 3, ""},
		{"a", "b", "http://spam.test", 4, ReasonFlood}, // flood first
	})
}

func TestDisabled(t *testing.T) {
	f := mustNew(t, `{"flood":{"enabled":false,"max_messages":1},"repeat":{"enabled":false},"links":{"enabled":true,"max_links":1}}`)
	var steps []step
	for i := range 50 {
		steps = append(steps, step{"a", "b", "same body", int64(i), ""})
	}
	steps = append(steps, step{"a", "b", "a.com", 50, ""}, step{"a", "b", "b.com", 51, ReasonLinks})
	run(t, f, steps)

	off := mustNew(t, `{"flood":{"enabled":false},"repeat":{"enabled":false},"links":{"enabled":false}}`)
	steps = steps[:0]
	for i := range 50 {
		steps = append(steps, step{fmt.Sprint(i), "b", "http://x.com", 0, ""})
	}
	run(t, off, steps)
	if n := off.tracked(); n != 0 {
		t.Errorf("all rules off: %d senders tracked, want 0", n)
	}
}

// TestBatchOrder checks that a batch is processed in order, each accepted
// message counting for the later ones.
func TestBatchOrder(t *testing.T) {
	f := mustNew(t, `{"flood":{"max_messages":2,"window":"1s"},`+onlyFlood+`}`)
	msgs := []plugins.FilterMessage{
		{From: "a", To: "b", Body: "1", TS: 0},
		{From: "b", To: "a", Body: "1", TS: 0},
		{From: "a", To: "b", Body: "2", TS: 0},
		{From: "a", To: "b", Body: "3", TS: 0},
		{From: "b", To: "a", Body: "2", TS: 0},
		{From: "a", To: "b", Body: "4", TS: 1000},
	}
	got, err := f.Filter(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.Action{plugins.Allow, plugins.Allow, plugins.Allow, plugins.Reject, plugins.Allow, plugins.Allow}
	if len(got) != len(want) {
		t.Fatalf("got %d verdicts, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Action != want[i] {
			t.Errorf("message %d: %v, want %v", i, got[i].Action, want[i])
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Filter(ctx, msgs[:1]); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}
	// The cancelled batch did not count: a has 1 message in the window.
	run(t, f, []step{{"a", "b", "5", 1000, ""}, {"a", "b", "6", 1000, ReasonFlood}})
}

func TestMemoryBound(t *testing.T) {
	t.Run("max senders, least recently active first", func(t *testing.T) {
		f := mustNew(t, `{"max_senders_tracked":2,"flood":{"max_messages":1,"window":"1h"},`+onlyFlood+`}`)
		run(t, f, []step{
			{"a", "x", "1", 0, ""},
			{"b", "x", "1", 1, ""},
			{"a", "x", "2", 2, ReasonFlood}, // a is now the most recent
			{"c", "x", "1", 3, ""},          // evicts b
			{"a", "x", "3", 4, ReasonFlood}, // a was kept
			{"b", "x", "2", 5, ""},          // b was forgotten; evicts c
			{"a", "x", "4", 6, ReasonFlood},
			{"c", "x", "2", 7, ""}, // c was forgotten
		})
		if n := f.tracked(); n != 2 {
			t.Errorf("%d senders tracked, want 2", n)
		}
	})
	t.Run("expired senders are dropped", func(t *testing.T) {
		f := mustNew(t, `{"flood":{"window":"1s"},"repeat":{"window":"2s"},"links":{"enabled":false}}`)
		run(t, f, []step{{"a", "x", "1", 0, ""}, {"b", "x", "1", 500, ""}, {"c", "x", "1", 1999, ""}})
		if n := f.tracked(); n != 3 {
			t.Errorf("%d senders tracked, want 3", n)
		}
		run(t, f, []step{{"c", "x", "2", 2000, ""}}) // a's state is 2s old: dropped
		if n := f.tracked(); n != 2 {
			t.Errorf("%d senders tracked, want 2", n)
		}
		run(t, f, []step{{"d", "x", "1", 4000, ""}})
		if n := f.tracked(); n != 1 {
			t.Errorf("%d senders tracked, want 1", n)
		}
	})
	t.Run("bodies per sender", func(t *testing.T) {
		f := mustNew(t, `{"repeat":{"max_same_body":1,"window":"1h"},`+onlyRepeat+`}`)
		var steps []step
		for i := range maxBodiesPerSender + 10 {
			steps = append(steps, step{"a", "b", numbered(i), int64(i), ""})
		}
		// The oldest bodies were forgotten, the latest are still counted.
		steps = append(steps,
			step{"a", "b", numbered(0), 1000, ""},
			step{"a", "b", numbered(maxBodiesPerSender + 9), 1001, ReasonRepeat})
		run(t, f, steps)
		if n := len(f.lru.senders["a"].bodies); n > maxBodiesPerSender {
			t.Errorf("%d bodies tracked, want at most %d", n, maxBodiesPerSender)
		}
	})
	t.Run("rings hold at most the limit", func(t *testing.T) {
		f := mustNew(t, `{"flood":{"max_messages":5,"window":"1ms"},"links":{"max_links":2,"window":"1ms"},"repeat":{"max_same_body":3,"max_recipients":2,"window":"1ms"}}`)
		for i := range 1000 {
			if _, err := f.Filter(context.Background(), []plugins.FilterMessage{{From: "a", To: "b", Body: "http://x.com", TS: int64(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		s := f.lru.senders["a"]
		if len(s.flood.ts) > 5 || len(s.links.ts) > 2 || len(s.bodies) != 1 {
			t.Errorf("flood %d, links %d, bodies %d entries", len(s.flood.ts), len(s.links.ts), len(s.bodies))
		}
		for _, b := range s.bodies {
			for _, r := range b.recips {
				if len(r.ts) > 3 {
					t.Errorf("recipient ring holds %d", len(r.ts))
				}
			}
		}
	})
}

func TestInvalidUTF8(t *testing.T) {
	f := mustNew(t, `{"repeat":{"max_same_body":1},"links":{"max_links":1}}`)
	run(t, f, []step{
		{"\xff", "\xfe", "\xffabc\xc3", 0, ""},
		{"\xff", "\xfe", "\xfeABC\xc3", 1, ReasonRepeat}, // invalid bytes compare as U+FFFD
		{"\xff", "\xfe", "\xc3\xa9\xff www.\xffx", 2, ""},
		{"\xff", "\xfe", "", 3, ""},
		{"\xff", "\xfe", "   ", 4, ReasonRepeat}, // blank bodies are all the same
	})
}

func TestConfig(t *testing.T) {
	f := mustNew(t, `{}`)
	want := limits{
		floodOn: true, floodMax: 20, floodWin: 10000,
		repeatOn: true, sameMax: 3, recipMax: 10, repeatWin: 60000,
		linksOn: true, linksMax: 3, linksWin: 60000,
		maxSenders: 100000, maxWin: 60000,
	}
	if f.lim != want {
		t.Errorf("defaults = %+v, want %+v", f.lim, want)
	}
	f = mustNew(t, `{"flood":{"max_messages":5,"window":"2m"},"repeat":{"enabled":false,"window":"1h"},"links":{"window":"90s"},"max_senders_tracked":7}`)
	if l := f.lim; l.floodMax != 5 || l.floodWin != 120000 || l.repeatOn || l.linksWin != 90000 || l.maxSenders != 7 || l.maxWin != 120000 {
		t.Errorf("limits = %+v", l)
	}
	mustNew(t, ``)
	mustNew(t, `null`)
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   []string
	}{
		{"syntax", `{"flood":`, []string{"config: unexpected EOF"}},
		{"trailing", `{} []`, []string{"unexpected data after the configuration object"}},
		{"everything at once", `{
			"flood": {"max_msgs": 3, "max_messages": 0, "window": "10"},
			"repeat": {"enabled": "yes", "max_same_body": -1, "max_recipients": 10001, "window": "0s"},
			"links": {"enabled": false, "max_links": 0, "window": "-1s", "Enabled": true},
			"max_senders_tracked": 0,
			"bogus": {}
		}`, []string{
			`bogus: unknown key`,
			`flood.max_msgs: unknown key`,
			`links.Enabled: unknown key`,
			`config: json: cannot unmarshal string into Go struct field`,
			`flood.max_messages: 0 out of range 1..10000`,
			`flood.window: time: missing unit in duration "10"`,
			`repeat.max_same_body: -1 out of range 1..10000`,
			`repeat.max_recipients: 10001 out of range 1..10000`,
			`repeat.window: "0s" out of range 1ms..24h`,
			`links.max_links: 0 out of range 1..10000`,
			`links.window: "-1s" out of range 1ms..24h`,
			`max_senders_tracked: 0 out of range 1..10000000`,
		}},
		{"too long a window", `{"links":{"window":"25h"}}`, []string{`links.window: "25h" out of range 1ms..24h`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(plugins.Env{}, []byte(tc.config))
			if err == nil {
				t.Fatal("New succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "antispam: ") {
				t.Errorf("error %q does not start with the plugin name", msg)
			}
			if lines := strings.Split(msg, "\n"); len(lines) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(lines), len(tc.want), msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestConcurrent(t *testing.T) {
	f := mustNew(t, `{"max_senders_tracked":8}`)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				msgs := []plugins.FilterMessage{
					{From: fmt.Sprint("s", (g+i)%12), To: "b", Body: "http://x.com", TS: int64(i)},
					{From: fmt.Sprint("s", i%12), To: fmt.Sprint("r", g), Body: numbered(i % 3), TS: int64(i)},
				}
				if _, err := f.Filter(context.Background(), msgs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := f.tracked(); n > 8 {
		t.Errorf("%d senders tracked, want at most 8", n)
	}
}
