// Package casefold compares text under Unicode simple case folding, the
// equality strings.EqualFold uses, one rune at a time: the filters fold
// message bodies and word lists with it before matching.
package casefold

import (
	"unicode"
	"unicode/utf8"
)

// Rune maps r to the representative of its simple case folding orbit (the
// smallest rune of the orbit, upper case for ASCII letters), so that
// Rune(a) == Rune(b) exactly when a and b are equal under Unicode simple
// case folding.
func Rune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}
