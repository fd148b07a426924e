package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key prefixes: the first byte of every key names its kind. The layout is
// described in the package documentation ("Key layout"); these bytes are
// persisted and must never change meaning.
const (
	pMeta     = 'S' // S: the last seq and ts assigned (seqMeta)
	pUser     = 'u' // u<name>: userRecord
	pMsg      = 'm' // m<seq>: msgRecord
	pAlias    = 'x' // x<id>: seq of a message whose id is foreign
	pHistory  = 'h' // h<conv><seq>: empty
	pInbox    = 'i' // i<lp user><seq>: empty
	pCursor   = 'c' // c<user>: seq, the cumulative ack cursor
	pAcked    = 'a' // a<lp user><seq>: empty, acked above the cursor
	pHeld     = 'p' // p<lp user><seq>: msgRecord (or empty), pending at or below the cursor
	pDedup    = 'd' // d<bucket><lp from><cid>: dedupRef
	pFriend   = 'f' // f<lp a><b>: since (ms), both directions
	pRequest  = 'r' // r<lp from><to>: requestRecord
	pRequestR = 'R' // R<lp to><from>: empty, the incoming index of r
	pBlock    = 'b' // b<lp blocker><blocked>: ts (ms)
	pBlockR   = 'B' // B<lp blocked><blocker>: empty, the reverse index of b
	pToken    = 't' // t<id>: tokenRecord
	pTokenU   = 'T' // T<lp user><id>: empty, a user's tokens
)

// metaKey is the key of the last seq and ts.
var metaKey = []byte{pMeta}

// appendLP appends s with its length as a uvarint in front: a
// length-prefixed name never is a prefix of another, whatever bytes the
// names hold, so a key can carry a name followed by more.
func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendSeq appends seq big-endian, so that keys sort by seq.
func appendSeq(b []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(b, seq) }

// key returns prefix followed by the parts: each part but the last
// length-prefixed, the last as is.
func key(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + binary.MaxVarintLen64
	}
	b := make([]byte, 1, n)
	b[0] = prefix
	for i, p := range parts {
		if i == len(parts)-1 {
			b = append(b, p...)
		} else {
			b = appendLP(b, p)
		}
	}
	return b
}

// lpPrefix is prefix followed by the length-prefixed name.
func lpPrefix(prefix byte, name string) []byte {
	b := make([]byte, 1, 1+binary.MaxVarintLen64+len(name)+8)
	b[0] = prefix
	return appendLP(b, name)
}

// seqKey is lpPrefix(prefix, name) followed by seq.
func seqKey(prefix byte, name string, seq uint64) []byte {
	return appendSeq(lpPrefix(prefix, name), seq)
}

func msgKey(seq uint64) []byte   { return appendSeq([]byte{pMsg}, seq) }
func userKey(name string) []byte { return key(pUser, name) }

// convPrefix is h followed by the conversation of a and b (either order):
// the two names sorted, each length-prefixed.
func convPrefix(a, b string) []byte {
	if b < a {
		a, b = b, a
	}
	k := make([]byte, 1, 1+2*binary.MaxVarintLen64+len(a)+len(b)+8)
	k[0] = pHistory
	return appendLP(appendLP(k, a), b)
}

// seqSuffix reads the seq at the end of k.
func seqSuffix(k []byte) uint64 {
	if len(k) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

// prefixEnd returns the smallest key greater than every key with prefix
// p (p is never all 0xff here: it starts with a letter).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// dayMS is the width of a de-duplication bucket.
const dayMS = 24 * 60 * 60 * 1000

// foreverBucket is the bucket of every key when the window is zero
// (keys kept forever). It sorts after every day, so that pruning, a
// DeleteRange of the days before a cutoff, never reaches it.
const foreverBucket = ^uint32(0)

// dayBucket is the de-duplication bucket of a message stored at ts.
func dayBucket(ts int64) uint32 { return uint32(max(ts, 0) / dayMS) }

// dedupHeaderLen is the length of the d<bucket> that begins a dedupKey.
const dedupHeaderLen = 5

// dedupKey is d<bucket><lp from><cid>.
func dedupKey(bucket uint32, from, cid string) []byte {
	k := make([]byte, dedupHeaderLen, dedupHeaderLen+binary.MaxVarintLen64+len(from)+len(cid))
	k[0] = pDedup
	binary.BigEndian.PutUint32(k[1:], bucket)
	return cidSuffix(k, from, cid)
}

// setBucket makes the dedupKey k name bucket.
func setBucket(k []byte, bucket uint32) { binary.BigEndian.PutUint32(k[1:], bucket) }

// bucketKey is the first key of a bucket: the bound of a DeleteRange.
func bucketKey(bucket uint32) []byte {
	k := make([]byte, 5)
	k[0] = pDedup
	binary.BigEndian.PutUint32(k[1:], bucket)
	return k
}

// ---- values -------------------------------------------------------------

// errCorrupt is wrapped by the errors of values that do not decode.
var errCorrupt = errors.New("corrupt value")

// reader decodes a value written by the append functions below.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.err = errCorrupt
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func appendString(b []byte, s string) []byte { return appendLP(b, s) }

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// msgRecord is the value of m<seq>: a direct message.
type msgRecord struct {
	TS     int64
	ID     string // empty: the id is msgID(seq); else a foreign id (see pAlias)
	From   string
	To     string
	Body   string
	CID    string
	Status string
}

func (m *msgRecord) append(b []byte) []byte {
	b = binary.AppendVarint(b, m.TS)
	b = appendString(b, m.ID)
	b = appendString(b, m.From)
	b = appendString(b, m.To)
	b = appendString(b, m.Body)
	b = appendString(b, m.CID)
	return appendString(b, m.Status)
}

func decodeMsg(v []byte) (msgRecord, error) {
	r := reader{b: v}
	m := msgRecord{TS: r.varint(), ID: r.string(), From: r.string(), To: r.string(), Body: r.string(), CID: r.string(), Status: r.string()}
	if r.err != nil {
		return msgRecord{}, fmt.Errorf("message record: %w", r.err)
	}
	return m, nil
}

// userRecord is the value of u<name>. A deleted account keeps its record
// (its name stays taken) with Deleted set and no hash. Created and
// DeletedAt (unix ms) follow the hash; a record written before they were
// kept ends after the hash, and reads as 0 for both.
type userRecord struct {
	Deleted   bool
	Hash      string
	Created   int64
	DeletedAt int64
}

func (u userRecord) append(b []byte) []byte {
	flag := byte(0)
	if u.Deleted {
		flag = 1
	}
	b = appendString(append(b, flag), u.Hash)
	return binary.AppendVarint(binary.AppendVarint(b, u.Created), u.DeletedAt)
}

func decodeUser(v []byte) (userRecord, error) {
	r := reader{b: v}
	u := userRecord{Deleted: r.byte() == 1, Hash: r.string()}
	if r.err == nil && len(r.b) > 0 {
		u.Created, u.DeletedAt = r.varint(), r.varint()
	}
	if r.err != nil {
		return userRecord{}, fmt.Errorf("user record: %w", r.err)
	}
	return u, nil
}

// seqMeta is the value of metaKey: the last seq and timestamp assigned,
// written by every batch that assigns seqs.
func appendSeqMeta(b []byte, seq uint64, ts int64) []byte {
	return binary.AppendVarint(binary.AppendUvarint(b, seq), ts)
}

func decodeSeqMeta(v []byte) (uint64, int64, error) {
	r := reader{b: v}
	seq, ts := r.uvarint(), r.varint()
	if r.err != nil {
		return 0, 0, fmt.Errorf("seq record: %w", r.err)
	}
	return seq, ts, nil
}

// dedupRef is the value of a de-duplication key: what the key names.
// Kind refDirect: the message m<Seq>.
const refDirect = 'm'

func appendDedupRef(b []byte, seq uint64) []byte { return appendSeq(append(b, refDirect), seq) }

func decodeDedupRef(v []byte) (uint64, error) {
	if len(v) != 9 || v[0] != refDirect {
		return 0, fmt.Errorf("de-duplication record: %w", errCorrupt)
	}
	return binary.BigEndian.Uint64(v[1:]), nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeU64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, errCorrupt
	}
	return binary.BigEndian.Uint64(v), nil
}

func i64(v int64) []byte { return u64(uint64(v)) }

func decodeI64(v []byte) (int64, error) {
	u, err := decodeU64(v)
	return int64(u), err
}
