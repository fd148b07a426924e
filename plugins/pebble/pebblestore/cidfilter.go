package pebblestore

import (
	"hash/maphash"
	"math/bits"

	"github.com/cockroachdb/pebble/v2"
)

const (
	// cidFilterBitsPerKey sizes a bucket's filter: with cidFilterProbes
	// probes, about 1% false "maybe" when the filter holds as many keys as
	// it was sized for.
	cidFilterBitsPerKey = 10
	cidFilterProbes     = 7
	// minCIDFilterBits is the size of a new bucket's filter (16 KiB).
	minCIDFilterBits = 1 << 17
	// maxCIDFilterBytes bounds the memory of all the filters together.
	// A filter that may not grow keeps its size and answers "maybe" more
	// often (it stays exact); a bucket found at Open with more keys than
	// the budget allows has no filter, and every lookup in it probes.
	maxCIDFilterBytes = 32 << 20
)

// cidFilters tells, per de-duplication bucket, that a (from, cid) key is
// certainly absent, so that the common lookup (a new cid) costs no
// Pebble Get. It is exact in that direction: every key of a filtered
// bucket that the database may hold is in its filter (keys are added
// before the batch that writes them commits, filters are built at Open
// from the database, and a bucket's filter is dropped only once the
// range deletion of its keys committed). A "maybe" (a key added by a
// batch that did not commit, a false positive) only costs the Get.
//
// A bucket missing from the map holds no key; a bucket mapped to nil
// is unfiltered (every lookup probes). It is guarded by s.wmu.
type cidFilters struct {
	seed     maphash.Seed
	byBucket map[uint32]*cidBloom
	bytes    int // memory of all the filters
}

// cidBloom is a Bloom filter of the keys of one bucket.
type cidBloom struct {
	bits []uint64 // a power of two of bits
	n    int      // keys added
}

func newCIDFilters() *cidFilters {
	return &cidFilters{seed: maphash.MakeSeed(), byBucket: make(map[uint32]*cidBloom)}
}

// cidSuffix appends the part of a dedupKey after the bucket: the
// length-prefixed from and the cid.
func cidSuffix(b []byte, from, cid string) []byte { return append(appendLP(b, from), cid...) }

// mayContain reports whether bucket may hold the key with suffix (see
// cidSuffix).
func (f *cidFilters) mayContain(bucket uint32, suffix []byte) bool {
	bl, ok := f.byBucket[bucket]
	if !ok {
		return false
	}
	if bl == nil {
		return true
	}
	return bl.mayContain(maphash.Bytes(f.seed, suffix))
}

// add records that bucket may hold the key with suffix from now on.
func (f *cidFilters) add(bucket uint32, suffix []byte) {
	bl, ok := f.byBucket[bucket]
	if !ok {
		if f.bytes+minCIDFilterBits/8 > maxCIDFilterBytes {
			f.byBucket[bucket] = nil // unfiltered: no room
			return
		}
		bl = &cidBloom{bits: make([]uint64, minCIDFilterBits/64)}
		f.bytes += minCIDFilterBits / 8
		f.byBucket[bucket] = bl
	}
	if bl != nil {
		bl.add(maphash.Bytes(f.seed, suffix))
	}
}

// drop forgets the filters of the buckets below cut, whose keys a
// committed range deletion removed.
func (f *cidFilters) drop(cut uint32) {
	for b, bl := range f.byBucket {
		if b < cut {
			if bl != nil {
				f.bytes -= len(bl.bits) * 8
			}
			delete(f.byBucket, b)
		}
	}
}

// grow rebuilds, twice as large, every filter holding more keys than it
// was sized for, while the budget allows, from the keys r holds. The
// caller holds s.wmu, with no batch under way: every key added so far is
// committed (or was never written).
func (f *cidFilters) grow(r pebble.Reader) error {
	for b, bl := range f.byBucket {
		if bl == nil || bl.n*cidFilterBitsPerKey <= len(bl.bits)*64 {
			continue
		}
		size := len(bl.bits) * 8
		if f.bytes+size > maxCIDFilterBytes {
			continue // stays, answering "maybe" more often
		}
		nb, err := f.build(r, b, 2*size*8)
		if err != nil {
			return err
		}
		if nb == nil {
			continue
		}
		f.bytes += len(nb.bits)*8 - size
		f.byBucket[b] = nb
	}
	return nil
}

// load builds the filter of every bucket in buckets from the keys r
// holds, each sized for twice its keys, within the budget: a bucket with
// too many keys is left unfiltered.
func (f *cidFilters) load(r pebble.Reader, buckets []uint32) error {
	for _, b := range buckets {
		n := 0
		if err := scan(r, bucketKey(b), func([]byte, []byte) error { n++; return nil }); err != nil {
			return err
		}
		nbits := max(minCIDFilterBits, 1<<bits.Len(uint(2*n*cidFilterBitsPerKey)))
		if f.bytes+nbits/8 > maxCIDFilterBytes {
			f.byBucket[b] = nil
			continue
		}
		bl, err := f.build(r, b, nbits)
		if err != nil {
			return err
		}
		f.byBucket[b] = bl
		if bl != nil {
			f.bytes += len(bl.bits) * 8
		}
	}
	return nil
}

// build returns a filter of nbits holding every key of bucket in r.
func (f *cidFilters) build(r pebble.Reader, bucket uint32, nbits int) (*cidBloom, error) {
	bl := &cidBloom{bits: make([]uint64, nbits/64)}
	err := scan(r, bucketKey(bucket), func(k, _ []byte) error {
		bl.add(maphash.Bytes(f.seed, k[dedupHeaderLen:]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return bl, nil
}

func (bl *cidBloom) add(h uint64) {
	mask := uint64(len(bl.bits)*64 - 1)
	h1, h2 := h, h>>32|1
	for i := range uint64(cidFilterProbes) {
		p := (h1 + i*h2) & mask
		bl.bits[p/64] |= 1 << (p % 64)
	}
	bl.n++
}

func (bl *cidBloom) mayContain(h uint64) bool {
	mask := uint64(len(bl.bits)*64 - 1)
	h1, h2 := h, h>>32|1
	for i := range uint64(cidFilterProbes) {
		p := (h1 + i*h2) & mask
		if bl.bits[p/64]&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}
