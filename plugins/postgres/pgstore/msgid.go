package pgstore

import (
	"crypto/rand"
	"encoding/binary"
)

// crockford is the lowercase Crockford base32 alphabet (no i, l, o, u).
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// msgIDLen is the length of a msg_id.
const msgIDLen = 26

// newMsgID returns a ULID-style id: 10 characters of the 48-bit
// millisecond timestamp ms, then 16 characters of 80 random bits.
func newMsgID(ms int64) string {
	var r [10]byte
	_, _ = rand.Read(r[:]) // never fails; it crashes the program instead
	var out [msgIDLen]byte
	t := uint64(max(ms, 0)) & (1<<48 - 1)
	for i := 9; i >= 0; i-- {
		out[i] = crockford[t&31]
		t >>= 5
	}
	hi := uint64(binary.BigEndian.Uint16(r[:2])) // top 16 of the 80 bits
	lo := binary.BigEndian.Uint64(r[2:])         // low 64 bits
	for i := msgIDLen - 1; i >= 10; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
