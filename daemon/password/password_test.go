package password_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/qqchat/qq/daemon/password"
)

func TestHashVerify(t *testing.T) {
	h, err := password.Hash(password.OWASP, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("Hash = %q, want OWASP parameters in PHC form", h)
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{"correct horse", true},
		{"correct horsE", false},
		{"", false},
		{"correct horse ", false},
	} {
		got, err := password.Verify(h, tc.pw)
		if err != nil || got != tc.want {
			t.Errorf("Verify(h, %q) = %v, %v; want %v, nil", tc.pw, got, err, tc.want)
		}
	}
	h2, _ := password.Hash(password.OWASP, "correct horse")
	if h2 == h {
		t.Error("two hashes of one password are equal: salt not random")
	}
}

func TestVerifyMalformed(t *testing.T) {
	for _, enc := range []string{
		"", "plain", "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=8,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5",
	} {
		if _, err := password.Verify(enc, "x"); !errors.Is(err, password.ErrMalformed) {
			t.Errorf("Verify(%q) error = %v, want ErrMalformed", enc, err)
		}
	}
}

func BenchmarkHashOWASP(b *testing.B) {
	for b.Loop() {
		if _, err := password.Hash(password.OWASP, "benchmark password"); err != nil {
			b.Fatal(err)
		}
	}
}
