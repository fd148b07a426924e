// Package token makes and checks qqd's resume tokens (the QQP/1 extension
// "resume", see docs/protocol.md). It uses the standard library only.
//
// A token is "qqt1.<id>.<secret>": the prefix names the format, id is 8
// random bytes as 16 lowercase hex digits (public: the storage's key, shown
// to operators), and secret is 32 random bytes in unpadded base64url (43
// characters). The storage keeps the id and SHA-256 of the secret, never
// the secret; Check compares hashes in constant time, so that a lookup by
// id followed by Check leaks nothing through timing about the secret.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// Prefix starts every token of this format.
const Prefix = "qqt1."

const (
	idBytes     = 8
	secretBytes = 32
	idLen       = 2 * idBytes
	secretLen   = 43 // base64.RawURLEncoding.EncodedLen(secretBytes)
	// Len is the length of a token string.
	Len = len(Prefix) + idLen + 1 + secretLen
)

// ErrMalformed is returned by Parse for a string that is not a token of
// this format.
var ErrMalformed = errors.New("malformed token")

// Token is a parsed token.
type Token struct {
	// ID is the public part.
	ID string
	// secret is the raw secret.
	secret [secretBytes]byte
}

// New draws a token from crypto/rand.
func New() Token {
	var b [idBytes]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	t := Token{ID: hex.EncodeToString(b[:])}
	rand.Read(t.secret[:])
	return t
}

// String is the token as handed to the client.
func (t Token) String() string {
	return Prefix + t.ID + "." + base64.RawURLEncoding.EncodeToString(t.secret[:])
}

// Hash is what the storage keeps: SHA-256 of the secret.
func (t Token) Hash() []byte {
	h := sha256.Sum256(t.secret[:])
	return h[:]
}

// Check reports, in time independent of the contents, whether hash is t's
// Hash.
func (t Token) Check(hash []byte) bool {
	return subtle.ConstantTimeCompare(t.Hash(), hash) == 1
}

// Parse reads a token string. It checks the shape only (prefix, lengths,
// alphabets); whether the token exists is the storage's to say.
func Parse(s string) (Token, error) {
	if len(s) != Len || !strings.HasPrefix(s, Prefix) {
		return Token{}, ErrMalformed
	}
	rest := s[len(Prefix):]
	id, secret := rest[:idLen], rest[idLen:]
	if secret[0] != '.' {
		return Token{}, ErrMalformed
	}
	secret = secret[1:]
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return Token{}, ErrMalformed
		}
	}
	t := Token{ID: id}
	n, err := base64.RawURLEncoding.Strict().Decode(t.secret[:], []byte(secret))
	if err != nil || n != secretBytes {
		return Token{}, ErrMalformed
	}
	return t, nil
}

// ValidID reports whether id has the form of a token id (for operator
// input: qqadmin revoke).
func ValidID(id string) bool {
	if len(id) != idLen {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}
