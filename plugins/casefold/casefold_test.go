package casefold_test

import (
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins/casefold"
)

// TestRuneMatchesEqualFold: two runes fold alike exactly when
// strings.EqualFold says they are equal.
func TestRuneMatchesEqualFold(t *testing.T) {
	runes := []rune{'a', 'A', 'z', 'Z', '0', '_', 'k', 'K', '\u212a' /* Kelvin */, 's', 'S', 'ſ', 'σ', 'Σ', 'ς', 'é', 'É', 'ß', 'ẞ', '你', 'İ', 'i', 'ı'}
	for _, a := range runes {
		for _, b := range runes {
			want := strings.EqualFold(string(a), string(b))
			if got := casefold.Rune(a) == casefold.Rune(b); got != want {
				t.Errorf("Rune(%q) == Rune(%q) is %v, EqualFold says %v", a, b, got, want)
			}
		}
	}
}
