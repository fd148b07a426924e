package wordfilter

import (
	"fmt"
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins"
)

// BenchmarkCheck measures one 200-byte body against a 5,000-entry list
// (plus a few phrases and CJK entries).
func BenchmarkCheck(b *testing.B) {
	words := make([]string, 0, 5000)
	for i := range 4990 {
		words = append(words, fmt.Sprintf("w%dx%c", i, 'a'+i%26))
	}
	words = append(words, "darn", "heck off", "buy followers now", "笨蛋", "ärger", "bad word", "ugh", "meh", "blah", "zonk")
	f := mustNew(b, plugins.Env{}, Config{Lists: []List{{Words: words}}})
	const (
		clean = "The quick brown fox jumps over the lazy dog while the team reviews the weekly report, " +
			"plans the release, and answers a few questions from customers about pricing and support."
		masked = "Well darn, the build broke again and I told the bot to heck off, but the logs say " +
			"w123xt failed; ärger everywhere, 你这个笨蛋 — anyway the fix is ready for review now."
	)
	cjk := strings.Repeat("你好世界今天天气不错", 6) + "笨蛋" + strings.Repeat("我们", 3)
	for _, bc := range []struct {
		name string
		body string
	}{
		{"clean", fit(clean, 200)},
		{"masked", fit(masked, 200)},
		{"cjk", fit(cjk, 200)},
		{"masked", fit(masked, 32<<10)}, // cost is linear in length
	} {
		b.Run(fmt.Sprintf("%s-%dB", bc.name, len(bc.body)), func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				f.Check(bc.body)
			}
		})
	}
}

// fit repeats s up to n bytes, cutting on a character boundary and
// padding with spaces, so that the result has exactly n bytes.
func fit(s string, n int) string {
	for len(s) < n {
		s += " " + s
	}
	s = strings.ToValidUTF8(s[:n], "")
	return s + strings.Repeat(" ", n-len(s))
}
