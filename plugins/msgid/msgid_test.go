package msgid

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		ms     int64
		prefix string
	}{
		{0, "0000000000"},
		{-5, "0000000000"},
		{1, "0000000001"},
		{32, "0000000010"},
		{1<<48 - 1, "7zzzzzzzzz"},
		{1_764_158_400_000, "01kb00hsg0"},
	}
	for _, tt := range tests {
		id := New(tt.ms)
		if len(id) != Len || !strings.HasPrefix(id, tt.prefix) {
			t.Errorf("New(%d) = %q, want prefix %q", tt.ms, id, tt.prefix)
		}
		for _, c := range id {
			if !strings.ContainsRune(Alphabet, c) {
				t.Errorf("New(%d) = %q has %q", tt.ms, id, c)
			}
		}
	}
	// The 80 random bits reach every one of the 16 random characters.
	var seen [16]map[byte]bool
	for i := range seen {
		seen[i] = map[byte]bool{}
	}
	for range 2000 {
		id := New(0)
		for i := range 16 {
			seen[i][id[10+i]] = true
		}
	}
	for i, m := range seen {
		if len(m) != 32 {
			t.Errorf("random character %d takes %d values in 2000 ids, want 32", i, len(m))
		}
	}
}
