package wordfilter

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qqchat/qq/plugins"
)

func FuzzWordfilter(f *testing.F) {
	for _, s := range []string{
		"", "darn", "DARN it", "heck   off", "你这个笨蛋！", "笨蛋糕", "ÄRGER", "darned undarn",
		"\xffdarn\xc3", "ab cd ef", "c++ is ok", "qq群", "Σ σ ς", "\u212Aelvin", "a*b ***",
		"heck\u00a0\u2003off", "darn\u0301",
	} {
		f.Add(s)
	}
	wf := mustNew(f, plugins.Env{}, Config{Lists: []List{
		maskList("darn", "heck off", "ärger", "c++", "笨蛋", "蛋糕", "ab cd", "cd ef", "qq群", "σ", "kelvin", "***", "a*b", "a"),
		{Words: []string{"buy followers", "スパム"}, Action: ActionReject, Reason: "r"},
	}})
	f.Fuzz(func(t *testing.T, body string) {
		v := wf.Check(body)
		switch v.Action {
		case plugins.Allow:
			if v.Body != "" || v.Reason != "" {
				t.Fatalf("allow with body or reason: %+v", v)
			}
		case plugins.Reject:
			if v.Reason != "r" {
				t.Fatalf("reject reason %q", v.Reason)
			}
		case plugins.Rewrite:
			out := v.Body
			if !utf8.ValidString(out) {
				t.Fatalf("rewrite %q of %q is not valid UTF-8", out, body)
			}
			if out == body || out == "" {
				t.Fatalf("rewrite %q of %q is unchanged or empty", out, body)
			}
			if utf8.RuneCountInString(out) != utf8.RuneCountInString(body) {
				t.Fatalf("rewrite %q of %q changed the rune count", out, body)
			}
			// Rune by rune: the same, or "*", or U+FFFD for an invalid byte.
			in := []rune(body)
			for i, r := range []rune(out) {
				if r != in[i] && r != '*' {
					t.Fatalf("rewrite %q of %q changed rune %d from %q to %q", out, body, i, in[i], r)
				}
			}
			if !strings.Contains(out, "*") {
				t.Fatalf("rewrite %q of %q masks nothing", out, body)
			}
		default:
			t.Fatalf("unknown action %v", v.Action)
		}
	})
}
