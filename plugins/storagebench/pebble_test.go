package storagebench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Candidate C's keys. Names end in a 0 byte (they never hold one), so that
// one user's or conversation's keys are a prefix of their own.
//
//	m<seq>                  message (from, to, body, status, ts)
//	h<conv>\0<seq>          history of a conversation (empty value)
//	i<user>\0<seq>          inbox of a recipient (empty value)
//	d<day><from>\0<cid>     de-dup key, day = unix ms / 86,400,000, → seq
//	c<user>                 ack cursor: every inbox entry up to seq is acked,
//	                        and how many o keys the user has
//	o<user>\0<seq>          an ack the cursor has not reached (out of order)
//
// seq is one global uint64 per message, big endian: m keys append. A
// user's inbox entries stay after the cursor passes them (the cursor says
// what is pending); de-dup keys of a past day go with one range deletion.
func mKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'m'}, seq) }

func nameKey(kind byte, name string, seq uint64) []byte {
	k := make([]byte, 0, 2+len(name)+8)
	k = append(append(append(k, kind), name...), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// namePrefixEnd is the upper bound of every nameKey(kind, name, ·).
func namePrefixEnd(kind byte, name string) []byte {
	return append(append([]byte{kind}, name...), 1)
}

func dKey(day int64, from, cid string) []byte {
	k := binary.BigEndian.AppendUint32([]byte{'d'}, uint32(day))
	return append(append(append(k, from...), 0), cid...)
}

func cKey(user string) []byte { return append([]byte{'c'}, user...) }

// cursorValue encodes an ack cursor and the user's count of o keys.
func cursorValue(seq uint64, ooo uint64) []byte {
	return binary.AppendUvarint(binary.BigEndian.AppendUint64(nil, seq), ooo)
}

func parseCursor(v []byte) (seq, ooo uint64, err error) {
	if len(v) < 9 {
		return 0, 0, fmt.Errorf("cursor value of %d bytes", len(v))
	}
	ooo, n := binary.Uvarint(v[8:])
	if n <= 0 {
		return 0, 0, errors.New("cursor value: bad count")
	}
	return binary.BigEndian.Uint64(v), ooo, nil
}

// encodeMessage is an m key's value.
func encodeMessage(m message, status string, ts int64) []byte {
	v := make([]byte, 0, 16+len(m.from)+len(m.to)+len(m.body)+len(status))
	for _, s := range []string{m.from, m.to, m.body, status} {
		v = binary.AppendUvarint(v, uint64(len(s)))
		v = append(v, s...)
	}
	return binary.AppendVarint(v, ts)
}

// decodeMessage reads what encodeMessage wrote, as a read would.
func decodeMessage(v []byte) (m message, status string, ts int64, err error) {
	var f [4]string
	for i := range f {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return m, "", 0, errors.New("message value: truncated")
		}
		f[i], v = string(v[k:k+int(n)]), v[k+int(n):]
	}
	ts, k := binary.Varint(v)
	if k <= 0 {
		return m, "", 0, errors.New("message value: bad timestamp")
	}
	return message{from: f[0], to: f[1], body: f[2]}, f[3], ts, nil
}

// pebbleStore is candidate C.
type pebbleStore struct {
	db  *pebble.DB
	seq uint64
}

// quietLogger drops Pebble's informational lines.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(f string, args ...any) { progress("pebble: "+f, args...) }
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf("pebble: "+f, args...)) }

// pebbleOptions are the issue's: the newest format, a 64 MiB memtable,
// bloom filters (10 bits a key) on every level, and a block cache of
// 384 MiB; the rest is Pebble's defaults. Pebble charges its memtables
// (the mutable one and any being flushed) to the block cache, so 128 MiB
// of it go to two memtables and about 256 MiB hold blocks. (A first run
// with a 128 MiB cache left no room for blocks at all: every read went
// to the file and the snappy decoder.)
func pebbleOptions() *pebble.Options {
	const memtable = 64 << 20
	cache := pebble.NewCache(2*memtable + 256<<20)
	o := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       memtable,
		Cache:              cache,
		Logger:             quietLogger{},
	}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

func openPebble(dir string) (candidate, error) {
	o := pebbleOptions()
	defer o.Cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(dir, o)
	if err != nil {
		return nil, err
	}
	c := &pebbleStore{db: db}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{'m'}, UpperBound: []byte{'n'}})
	if err != nil {
		db.Close()
		return nil, err
	}
	if it.Last() {
		c.seq = binary.BigEndian.Uint64(it.Key()[1:])
	}
	if err := it.Close(); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

// get returns a copy of key's value, or nil if it is not stored.
func (c *pebbleStore) get(key []byte) ([]byte, error) {
	v, closer, err := c.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

func (c *pebbleStore) write(msgs []message, acks []ack, sync bool) ([]result, error) {
	b := c.db.NewBatch()
	defer b.Close()
	seq := c.seq
	ts := time.Now().UnixMilli()
	day := ts / (24 * 3600 * 1000)
	status := "queued"
	out := make([]result, len(msgs))
	batchKeys := make(map[string]uint64) // this batch's de-dup keys
	for i, m := range msgs {
		dk := dKey(day, m.from, m.cid)
		old, found := batchKeys[string(dk)]
		for _, k := range [][]byte{dk, dKey(day-1, m.from, m.cid)} {
			if found {
				break
			}
			v, err := c.get(k)
			if err != nil {
				return nil, fmt.Errorf("de-dup lookup: %w", err)
			}
			if v != nil {
				old, found = binary.BigEndian.Uint64(v), true
			}
		}
		if found {
			// Answer with the stored message, as a retry gets it.
			v, err := c.get(mKey(old))
			if err != nil || v == nil {
				return nil, fmt.Errorf("stored message %d: %v", old, err)
			}
			if _, _, _, err := decodeMessage(v); err != nil {
				return nil, err
			}
			out[i] = result{id: strconv.FormatUint(old, 10), seq: old, duplicate: true}
			continue
		}
		seq++
		for _, kv := range [][2][]byte{
			{mKey(seq), encodeMessage(m, status, ts)},
			{nameKey('h', convKey(m.from, m.to), seq), nil},
			{nameKey('i', m.to, seq), nil},
			{dk, binary.BigEndian.AppendUint64(nil, seq)},
		} {
			if err := b.Set(kv[0], kv[1], nil); err != nil {
				return nil, err
			}
		}
		batchKeys[string(dk)] = seq
		out[i] = result{id: strconv.FormatUint(seq, 10), seq: seq}
	}
	if len(acks) > 0 {
		// One iterator over the inbox for the batch's acks (the acked
		// messages are committed: acks come a batch after).
		it, err := c.db.NewIter(nil)
		if err != nil {
			return nil, err
		}
		for _, ua := range acksByUser(acks) {
			if err := c.ack(b, it, ua.user, ua.seqs); err != nil {
				it.Close()
				return nil, fmt.Errorf("ack %s: %w", ua.user, err)
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		return nil, err
	}
	c.seq = seq
	return out, nil
}

// ack applies user's acks of seqs (sorted) into b: the cursor moves over
// the inbox entries that follow it while they are acked (now or before,
// out of order); the acks it does not reach get o keys.
func (c *pebbleStore) ack(b *pebble.Batch, it *pebble.Iterator, user string, seqs []uint64) error {
	var cursor, ooo uint64
	if v, err := c.get(cKey(user)); err != nil {
		return err
	} else if v != nil {
		if cursor, ooo, err = parseCursor(v); err != nil {
			return err
		}
	}
	acked := make(map[uint64]bool, len(seqs)+int(ooo))
	for _, s := range seqs {
		if s > cursor {
			acked[s] = true
		}
	}
	if ooo > 0 {
		it.SetBounds(nameKey('o', user, 0), namePrefixEnd('o', user))
		for ok := it.First(); ok; ok = it.Next() {
			acked[binary.BigEndian.Uint64(it.Key()[len(it.Key())-8:])] = true
		}
		if err := it.Error(); err != nil {
			return err
		}
	}
	if len(acked) == 0 {
		return nil
	}
	next := cursor
	it.SetBounds(nameKey('i', user, cursor+1), namePrefixEnd('i', user))
	for ok := it.First(); ok; ok = it.Next() {
		s := binary.BigEndian.Uint64(it.Key()[len(it.Key())-8:])
		if !acked[s] {
			break
		}
		next = s
	}
	if err := it.Error(); err != nil {
		return err
	}
	var left uint64
	for s := range acked {
		if s > next {
			left++
			if err := b.Set(nameKey('o', user, s), nil, nil); err != nil {
				return err
			}
		}
	}
	if ooo > 0 {
		if err := b.DeleteRange(nameKey('o', user, 0), nameKey('o', user, next+1), nil); err != nil {
			return err
		}
	}
	if next != cursor || left != ooo {
		return b.Set(cKey(user), cursorValue(next, left), nil)
	}
	return nil
}

func (c *pebbleStore) history(a, b string, limit int) ([]string, error) {
	conv := convKey(a, b)
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: nameKey('h', conv, 0), UpperBound: namePrefixEnd('h', conv)})
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for ok := it.Last(); ok && len(seqs) < limit; ok = it.Prev() {
		seqs = append(seqs, binary.BigEndian.Uint64(it.Key()[len(it.Key())-8:]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	slices.Reverse(seqs)
	return c.messages(seqs)
}

func (c *pebbleStore) pending(user string, limit int) ([]string, error) {
	var cursor, ooo uint64
	if v, err := c.get(cKey(user)); err != nil {
		return nil, err
	} else if v != nil {
		if cursor, ooo, err = parseCursor(v); err != nil {
			return nil, err
		}
	}
	acked := make(map[uint64]bool, ooo)
	if ooo > 0 {
		it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: nameKey('o', user, 0), UpperBound: namePrefixEnd('o', user)})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			acked[binary.BigEndian.Uint64(it.Key()[len(it.Key())-8:])] = true
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, err
		}
	}
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: nameKey('i', user, cursor+1), UpperBound: namePrefixEnd('i', user)})
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for ok := it.First(); ok && len(seqs) < limit; ok = it.Next() {
		if s := binary.BigEndian.Uint64(it.Key()[len(it.Key())-8:]); !acked[s] {
			seqs = append(seqs, s)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	return c.messages(seqs)
}

// messages reads the messages of seqs (ascending) with one iterator,
// and returns their ids.
func (c *pebbleStore) messages(seqs []uint64) (_ []string, err error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: mKey(seqs[0]), UpperBound: mKey(seqs[len(seqs)-1] + 1)})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	ids := make([]string, len(seqs))
	for i, s := range seqs {
		k := mKey(s)
		if !it.SeekGE(k) || !bytes.Equal(it.Key(), k) {
			return nil, fmt.Errorf("message %d: not found: %w", s, it.Error())
		}
		if _, _, _, err := decodeMessage(it.Value()); err != nil {
			return nil, err
		}
		ids[i] = strconv.FormatUint(s, 10)
	}
	return ids, nil
}

// settle flushes the memtable and waits until no flush or compaction has
// been running for two looks in a row, 200 ms apart.
func (c *pebbleStore) settle() error {
	if err := c.db.Flush(); err != nil {
		return err
	}
	idle := 0
	for idle < 2 {
		time.Sleep(200 * time.Millisecond)
		m := c.db.Metrics()
		if m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return nil
}

func (c *pebbleStore) close() error { return c.db.Close() }

// String is the LSM's shape, for the benchmark's log.
func (c *pebbleStore) String() string { return c.db.Metrics().String() }
