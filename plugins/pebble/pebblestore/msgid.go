package pebblestore

// crockford is the lowercase Crockford base32 alphabet (no i, l, o, u).
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// msgIDLen is the length of a msg_id made from a seq: 13 characters of 5
// bits hold 65 bits, so the first character holds the top 4 bits of the
// seq (0 to f).
const msgIDLen = 13

// crockfordValue maps a byte to its value in crockford, or 0xff.
var crockfordValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(crockford) {
		t[crockford[i]] = byte(i)
	}
	return t
}()

// msgID returns the id of the message with seq: seq in 13 characters of
// lowercase Crockford base32, most significant first, zero-padded.
func msgID(seq uint64) string {
	var out [msgIDLen]byte
	for i := msgIDLen - 1; i >= 0; i-- {
		out[i] = crockford[seq&31]
		seq >>= 5
	}
	return string(out[:])
}

// parseMsgID returns the seq of an id msgID made, and false for any other
// string (a foreign id, or nothing this store made: only the exact form
// msgID returns parses).
func parseMsgID(id string) (uint64, bool) {
	if len(id) != msgIDLen {
		return 0, false
	}
	var seq uint64
	for i := range msgIDLen {
		v := crockfordValue[id[i]]
		if v == 0xff || (i == 0 && v > 15) {
			return 0, false
		}
		seq = seq<<5 | uint64(v)
	}
	return seq, seq != 0
}
