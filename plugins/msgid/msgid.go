// Package msgid makes the message ids of the SQL storages (sqlite and
// postgres): 26 characters of lowercase Crockford base32, ULID-style, 10
// for the message's unix-millisecond timestamp and 16 for 80 random bits.
// Ids made by either store stay valid in the other after a migration.
package msgid

import (
	"crypto/rand"
	"encoding/binary"
)

// Alphabet is the lowercase Crockford base32 alphabet (no i, l, o, u).
const Alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// Len is the length of an id.
const Len = 26

// New returns a ULID-style id: 10 characters of the 48-bit
// millisecond timestamp ms, then 16 characters of 80 random bits.
func New(ms int64) string {
	var r [10]byte
	_, _ = rand.Read(r[:]) // never fails; it crashes the program instead
	var out [Len]byte
	t := uint64(max(ms, 0)) & (1<<48 - 1)
	for i := 9; i >= 0; i-- {
		out[i] = Alphabet[t&31]
		t >>= 5
	}
	hi := uint64(binary.BigEndian.Uint16(r[:2])) // top 16 of the 80 bits
	lo := binary.BigEndian.Uint64(r[2:])         // low 64 bits
	for i := Len - 1; i >= 10; i-- {
		out[i] = Alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
