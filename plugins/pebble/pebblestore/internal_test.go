package pebblestore

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

func TestMsgID(t *testing.T) {
	for _, seq := range []uint64{1, 2, 31, 32, 1 << 40, math.MaxUint64 - 1, math.MaxUint64} {
		id := msgID(seq)
		if len(id) != msgIDLen {
			t.Errorf("msgID(%d) = %q, want %d characters", seq, id, msgIDLen)
		}
		if got, ok := parseMsgID(id); !ok || got != seq {
			t.Errorf("parseMsgID(msgID(%d) = %q) = %d, %v", seq, id, got, ok)
		}
	}
	if got := msgID(1); got != "0000000000001" {
		t.Errorf("msgID(1) = %q, want 0000000000001", got)
	}
	for _, id := range []string{
		"", "0000000000000", // seq 0 is never assigned
		"000000000001", "00000000000001", // lengths
		"000000000000I", "000000000000l", "000000000000u", "000000000000A", // not lowercase Crockford
		"g000000000000",              // more than 64 bits
		"01jq8e2r3v4w5x6y7z8a9b0c1d", // a ULID (sqlitestore's form)
	} {
		if seq, ok := parseMsgID(id); ok {
			t.Errorf("parseMsgID(%q) = %d, true; want false", id, seq)
		}
	}
}

// TestKeysArePrefixFree: the key of one user's (or conversation's)
// entries never has another's as a prefix, whatever bytes names hold.
func TestKeysArePrefixFree(t *testing.T) {
	names := []string{"", "a", "ab", "a\x00", "\x01a", "b", string(bytes.Repeat([]byte{'x'}, 200))}
	for _, a := range names {
		for _, b := range names {
			if a == b {
				continue
			}
			if pa, pb := lpPrefix(pInbox, a), lpPrefix(pInbox, b); bytes.HasPrefix(pb, pa) {
				t.Errorf("inbox prefix of %q is a prefix of %q's", a, b)
			}
			for _, c := range names {
				if ca, cb := convPrefix(a, b), convPrefix(a, c); b != c && bytes.HasPrefix(cb, ca) {
					t.Errorf("conversation (%q, %q) is a prefix of (%q, %q)", a, b, a, c)
				}
			}
			if !bytes.Equal(convPrefix(a, b), convPrefix(b, a)) {
				t.Errorf("conversation (%q, %q) depends on the order", a, b)
			}
		}
	}
}

func TestBuckets(t *testing.T) {
	const day = dayMS
	s := &Store{window: 0, legacyBuckets: []uint32{7}}
	if got := s.buckets(100 * day); len(got) != 2 || got[0] != foreverBucket || got[1] != 7 {
		t.Errorf("window 0: buckets = %v, want [forever 7]", got)
	}
	s = &Store{window: 36 * 60 * 60 * 1000 * 1e6} // 36h
	if got := s.buckets(100*day + day/4); len(got) != 3 || got[0] != 100 || got[2] != 98 {
		t.Errorf("window 36h at day 100.25: buckets = %v, want [100 99 98]", got)
	}
	if got := s.buckets(day / 2); len(got) != 1 || got[0] != 0 {
		t.Errorf("window 36h at day 0.5: buckets = %v, want [0]", got)
	}
}

// TestOldRecords: account and group records written before they kept
// their creation (and deletion) time decode with zeros, and the new ones
// round-trip.
func TestOldRecords(t *testing.T) {
	old := appendString([]byte{1}, "") // deleted flag, empty hash: the old form
	u, err := decodeUser(old)
	if err != nil || !u.Deleted || u.Hash != "" || u.Created != 0 || u.DeletedAt != 0 {
		t.Errorf("decodeUser(old form) = %+v, %v", u, err)
	}
	want := userRecord{Hash: "h", Created: 1_764_158_400_000, DeletedAt: 1_764_158_500_000, Deleted: true}
	if got, err := decodeUser(want.append(nil)); err != nil || got != want {
		t.Errorf("decodeUser(%+v) = %+v, %v", want, got, err)
	}
	g := &groupRecord{id: 3, name: "g", owner: "o", policy: "open", history: "joined", members: 2, lastSeq: 9, lastTS: 5, created: 4}
	v := g.append(nil)
	if got, err := decodeGroup(3, v); err != nil || *got != *g {
		t.Errorf("decodeGroup = %+v, %v; want %+v", got, err, g)
	}
	n := binary.PutVarint(make([]byte, binary.MaxVarintLen64), g.created)
	g.created = 0
	if got, err := decodeGroup(3, v[:len(v)-n]); err != nil || *got != *g {
		t.Errorf("decodeGroup(old form) = %+v, %v; want %+v", got, err, g)
	}
}
