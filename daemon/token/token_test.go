package token

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	a, b := New(), New()
	if a.ID == b.ID || a.String() == b.String() {
		t.Fatalf("two tokens alike: %s %s", a, b)
	}
	s := a.String()
	if len(s) != Len {
		t.Fatalf("len %d, want %d", len(s), Len)
	}
	p, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	if p.ID != a.ID || !p.Check(a.Hash()) {
		t.Fatalf("parsed %+v does not match", p)
	}
	if p.Check(b.Hash()) || p.Check(nil) || p.Check(a.Hash()[:31]) {
		t.Fatal("Check accepted a foreign or short hash")
	}
	if !ValidID(a.ID) {
		t.Fatalf("ValidID(%q) = false", a.ID)
	}
}

func TestParseRejects(t *testing.T) {
	good := New().String()
	for name, s := range map[string]string{
		"empty":      "",
		"password":   "hunter2hunter2",
		"prefix":     "qqt2" + good[4:],
		"short":      good[:len(good)-1],
		"long":       good + "A",
		"upper id":   Prefix + strings.ToUpper(good[5:21]) + good[21:],
		"no dot":     good[:21] + "x" + good[22:],
		"bad base64": good[:len(good)-1] + "!",
		"padding":    good[:len(good)-1] + "=",
		// The last character with bits set beyond the 32 bytes: strict
		// decoding refuses it, so one secret has one spelling.
		"non-canonical": good[:len(good)-1] + string(flipLowBits(good[len(good)-1])),
	} {
		if _, err := Parse(s); err == nil {
			t.Errorf("%s: Parse(%q) accepted", name, s)
		}
	}
}

// flipLowBits returns a base64url character whose low two bits (unused by
// the 32nd byte) differ from c's.
func flipLowBits(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"", "0123456789abcdeg", "0123456789ABCDEF", "0123456789abcde"} {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(New().String())
	f.Add("qqt1.0123456789abcdef.")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			return
		}
		if tok.String() != s {
			t.Fatalf("Parse(%q) then String = %q", s, tok.String())
		}
	})
}
