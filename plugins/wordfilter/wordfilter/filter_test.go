package wordfilter

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qqchat/qq/plugins"
)

// mustNew builds a filter from a config given as a Go value or raw JSON.
func mustNew(t testing.TB, env plugins.Env, cfg any) *Filter {
	t.Helper()
	raw, ok := cfg.(string)
	if !ok {
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		raw = string(b)
	}
	f, err := newFilter(env, []byte(raw))
	if err != nil {
		t.Fatalf("New(%s): %v", raw, err)
	}
	return f
}

func maskList(words ...string) List { return List{Name: "m", Words: words} }

func TestCheck(t *testing.T) {
	allow := plugins.Verdict{Action: plugins.Allow}
	rewrite := func(b string) plugins.Verdict { return plugins.Verdict{Action: plugins.Rewrite, Body: b} }
	reject := func(r string) plugins.Verdict { return plugins.Verdict{Action: plugins.Reject, Reason: r} }

	basic := []List{maskList("darn", "heck off", "ärger", "c++", "笨蛋", "バカ", "바보", "qq群", "οδος", "kelvin", "420")}
	overlap := []List{maskList("ab cd", "cd ef", "heck", "heck off", "笨蛋", "蛋糕", "aa", "aaa")}
	prec := []List{
		maskList("darn"),
		{Name: "r1", Words: []string{"spam"}, Action: ActionReject, Reason: "no spam"},
		{Name: "r2", Words: []string{"scam", "darn"}, Action: ActionReject},
	}
	stars := []List{maskList("***", "a*b")}

	tests := []struct {
		name  string
		lists []List
		body  string
		want  plugins.Verdict
	}{
		{"no match", basic, "hello world", allow},
		{"empty body", basic, "", allow},
		{"exact", basic, "darn", rewrite("****")},
		{"upper", basic, "DARN it", rewrite("**** it")},
		{"title", basic, "Oh Darn.", rewrite("Oh ****.")},
		{"every occurrence", basic, "darn, darn; DaRn", rewrite("****, ****; ****")},
		{"non-ASCII fold", basic, "So ein ÄRGER!", rewrite("So ein *****!")},
		{"greek final sigma", basic, "ΟΔΟΣ and οδος and οδοσ", rewrite("**** and **** and ****")},
		{"kelvin sign folds to k", basic, "\u212Aelvin", rewrite("******")},
		{"suffix is not a word", basic, "darned", allow},
		{"prefix is not a word", basic, "undarn", allow},
		{"underscore joins words", basic, "darn_it", allow},
		{"digit joins words", basic, "darn2 2darn", allow},
		{"combining mark joins words", basic, "darn\u0301", allow},
		{"non-ASCII letter joins words", basic, "darné", allow},
		{"punctuation is a boundary", basic, "(darn)-darn/darn", rewrite("(****)-****/****")},
		{"digits entry", basic, "420 4200", rewrite("*** 4200")},
		{"phrase", basic, "heck off", rewrite("**** ***")},
		{"phrase whitespace run kept", basic, "heck  \t off now", rewrite("****  \t *** now")},
		{"phrase across newline and nbsp", basic, "HECK\n\u00a0OFF", rewrite("****\n\u00a0***")},
		{"phrase needs the space", basic, "heckoff", allow},
		{"phrase whole words", basic, "heck offer", allow},
		{"punctuation ends need no boundary", basic, "I like c++!", rewrite("I like ***!")},
		{"CJK substring", basic, "你这个笨蛋！", rewrite("你这个**！")},
		{"CJK run", basic, "笨蛋笨蛋", rewrite("****")},
		{"katakana", basic, "このバカ野郎", rewrite("この**野郎")},
		{"hangul", basic, "너바보야", rewrite("너**야")},
		{"latin next to CJK", basic, "你darn吗", rewrite("你****吗")},
		{"mixed entry, CJK end", basic, "加qq群123", rewrite("加***123")},
		{"mixed entry, latin end", basic, "xqq群", allow},
		{"overlapping phrases", overlap, "ab cd ef", rewrite("** ** **")},
		{"nested", overlap, "heck off", rewrite("**** ***")},
		{"CJK overlap", overlap, "笨蛋糕", rewrite("***")},
		{"self overlap", overlap, "aaaa aaa aa", rewrite("aaaa *** **")},
		{"mask list only", prec, "darn", reject("message contains a blocked word")},
		{"reject wins over mask", prec, "darn spam", reject("no spam")},
		{"first rejecting list in config order", prec, "scam spam", reject("no spam")},
		{"default reason", prec, "a scam", reject(DefaultReason)},
		{"identical rewrite is allow", stars, "x *** y", allow},
		{"identical rewrite is allow, whole body", stars, "***", allow},
		{"masking a*b", stars, "a*b", rewrite("***")},
		{"invalid UTF-8 untouched on allow", basic, "ok\xff\xfe", allow},
		{"invalid UTF-8 replaced on rewrite", basic, "\xffdarn\xc3", rewrite("\uFFFD****\uFFFD")},
		{"invalid byte is a boundary", basic, "darn\xffdarn", rewrite("****\uFFFD****")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mustNew(t, plugins.Env{}, Config{Lists: tc.lists})
			got := f.Check(tc.body)
			if got != tc.want {
				t.Errorf("Check(%q) = %+v, want %+v", tc.body, got, tc.want)
			}
			if got.Action == plugins.Rewrite && utf8.RuneCountInString(got.Body) != utf8.RuneCountInString(tc.body) {
				t.Errorf("rewrite changed the rune count")
			}
		})
	}
}

func TestFilterBatch(t *testing.T) {
	f := mustNew(t, plugins.Env{}, Config{Lists: []List{
		maskList("darn"),
		{Words: []string{"buy followers"}, Action: ActionReject, Reason: "no shops"},
	}})
	msgs := []plugins.FilterMessage{
		{From: "a", To: "b", Body: "darn"},
		{From: "a", To: "b", Body: "hi"},
		{From: "a", To: "b", Body: "Buy   Followers now"},
	}
	got, err := f.Filter(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.Verdict{
		{Action: plugins.Rewrite, Body: "****"},
		{Action: plugins.Allow},
		{Action: plugins.Reject, Reason: "no shops"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d verdicts, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("verdict %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Filter(ctx, msgs); !errors.Is(err, context.Canceled) {
		t.Errorf("Filter with a cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		config string
		want   []string // substrings, each in its own joined error
	}{
		{"empty object", `{}`, []string{"lists: at least one list is required"}},
		{"null", `null`, []string{"lists: at least one list is required"}},
		{"syntax", `{"lists": [`, []string{"config: unexpected EOF"}},
		{"trailing data", `{"lists":[{"words":["a"]}]} {}`, []string{"unexpected data after the configuration object"}},
		{"wrong type", `{"lists":[{"words":"darn"}]}`, []string{"config: json: cannot unmarshal string", "lists[0]: no entries"}},
		{"keys are case-sensitive", `{"Lists":[{"words":["a"]}]}`, []string{"Lists: unknown key"}},
		{"everything at once", `{
			"lists": [
				{"name": "a", "acton": "mask", "words": ["ok"]},
				{"name": "b", "words": []},
				{"name": "c", "words": ["x", "  "], "action": "ban"},
				{"name": "d", "file": "missing.txt"},
				{"name": "e", "words": ["y"], "reason": "why"},
				{"name": "f", "words": ["z"], "action": "reject", "reason": "two\nlines"}
			],
			"extra": 1
		}`, []string{
			`extra: unknown key`,
			`lists[0].acton: unknown key`,
			`lists[1]: no entries`,
			`lists[2].action: unknown action "ban"`,
			`lists[2].words[1]: empty entry`,
			`lists[3].file: open ` + filepath.Join(dir, "missing.txt") + `: no such file`,
			`lists[4].reason: only used with action "reject"`,
			`lists[5].reason: must be one line`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(plugins.Env{DataDir: dir}, []byte(tc.config))
			if err == nil {
				t.Fatal("New succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "wordfilter: ") {
				t.Errorf("error %q does not start with the plugin name", msg)
			}
			lines := strings.Split(msg, "\n")
			if len(lines) != len(tc.want) {
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

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("lists/words.txt", "\uFEFF# profanity\n\n  darn  \r\nheck   OFF\n   # indented comment\nc#\n")
	abs := write("abs.txt", "blast\n")
	write("bad.txt", "ok\nbad\xff\n")
	write("comments.txt", "# nothing\n\n")

	env := plugins.Env{DataDir: dir}
	f := mustNew(t, env, Config{Lists: []List{
		{File: "lists/words.txt", Words: []string{"inline"}},
		{File: abs, Action: ActionReject},
	}})
	for body, want := range map[string]plugins.Verdict{
		"darn it":           {Action: plugins.Rewrite, Body: "**** it"},
		"heck off":          {Action: plugins.Rewrite, Body: "**** ***"},
		"c# rocks":          {Action: plugins.Rewrite, Body: "** rocks"},
		"inline":            {Action: plugins.Rewrite, Body: "******"},
		"# profanity":       {Action: plugins.Allow},
		"indented comment":  {Action: plugins.Allow},
		"blast":             {Action: plugins.Reject, Reason: DefaultReason},
		"darn blast darn":   {Action: plugins.Reject, Reason: DefaultReason},
		"nothing to see \n": {Action: plugins.Allow},
	} {
		if got := f.Check(body); got != want {
			t.Errorf("Check(%q) = %+v, want %+v", body, got, want)
		}
	}

	_, err := New(env, []byte(`{"lists":[{"file":"bad.txt"},{"file":"comments.txt"},{"file":"nope/x.txt"}]}`))
	if err == nil {
		t.Fatal("New succeeded")
	}
	for _, w := range []string{
		"lists[0].file: " + filepath.Join(dir, "bad.txt") + ":2: not valid UTF-8",
		"lists[1]: no entries in words or file comments.txt",
		"lists[2].file: open " + filepath.Join(dir, "nope/x.txt"),
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}

// naiveCheck is a reference implementation of Check: it compares every
// entry at every position.
func naiveCheck(f *Filter, body string) plugins.Verdict {
	toks := tokenize(body, nil)
	cover := make([]bool, len(toks))
	reject := -1
	for li, l := range f.lists {
		for _, e := range l.entries {
			rs := []rune(e)
			for s := 0; s+len(rs) <= len(toks); s++ {
				ok := true
				for k, r := range rs {
					if toks[s+k].r != r {
						ok = false
						break
					}
				}
				end := s + len(rs)
				if !ok || isWord(rs[0]) && s > 0 && isWord(toks[s-1].r) ||
					isWord(rs[len(rs)-1]) && end < len(toks) && isWord(toks[end].r) {
					continue
				}
				if l.reject {
					if reject < 0 || li < reject {
						reject = li
					}
					continue
				}
				for k := s; k < end; k++ {
					cover[k] = true
				}
			}
		}
	}
	if reject >= 0 {
		return plugins.Verdict{Action: plugins.Reject, Reason: f.lists[reject].reason}
	}
	if !slices.Contains(cover, true) {
		return plugins.Verdict{Action: plugins.Allow}
	}
	var b strings.Builder
	for i, t := range toks {
		end := len(body)
		if i+1 < len(toks) {
			end = toks[i+1].off
		}
		switch {
		case t.r == invalidRune:
			b.WriteRune(utf8.RuneError)
		case cover[i] && t.r != space:
			b.WriteByte('*')
		default:
			b.WriteString(body[t.off:end])
		}
	}
	if b.String() == body {
		return plugins.Verdict{Action: plugins.Allow}
	}
	return plugins.Verdict{Action: plugins.Rewrite, Body: b.String()}
}

// TestMatchesReference compares the automaton with naiveCheck on many
// pseudo-random bodies over a small alphabet, where matches overlap a lot.
func TestMatchesReference(t *testing.T) {
	f := mustNew(t, plugins.Env{}, Config{Lists: []List{
		maskList("ab", "abab", "b a", "ba", "a", "笨", "笨蛋", "a笨", "_b", "b!", "Ä"),
		{Words: []string{"bab a"}, Action: ActionReject},
		{Words: []string{"蛋ab", "ab"}, Action: ActionReject, Reason: "second"},
	}})
	alphabet := []string{"a", "A", "b", "B", " ", "  ", "\n", "笨", "蛋", "_", "!", "ä", "\xff", "1"}
	seed := uint64(1)
	for range 20000 {
		var b strings.Builder
		seed = seed*6364136223846793005 + 1442695040888963407
		n := int(seed>>58) % 12
		for range n {
			seed = seed*6364136223846793005 + 1442695040888963407
			b.WriteString(alphabet[int(seed>>33)%len(alphabet)])
		}
		body := b.String()
		if got, want := f.Check(body), naiveCheck(f, body); got != want {
			t.Fatalf("Check(%q) = %+v, reference %+v", body, got, want)
		}
	}
}
