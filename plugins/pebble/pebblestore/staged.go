package pebblestore

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// batchWriter is what the writes of a Write batch need of a Pebble
// batch: a *pebble.Batch, or a *stagedWrites that applies them later in
// key order.
type batchWriter interface {
	Set(key, value []byte, _ *pebble.WriteOptions) error
	Delete(key []byte, _ *pebble.WriteOptions) error
}

// stagedWrites collects sets and deletes to apply them to a Pebble batch
// sorted by key: the memtable then inserts each key next to the one
// before it, which its skiplist inserter finds from its cached splice
// instead of a search from the top. The order of writes to one key is
// kept. Reused from one Write to the next (guarded by s.wmu).
type stagedWrites struct {
	buf []byte
	ops []stagedOp
}

// stagedOp is a write: key and value are buf[k:v] and buf[v:end].
type stagedOp struct {
	del       bool
	k, v, end int
}

func (w *stagedWrites) reset() {
	w.buf, w.ops = w.buf[:0], w.ops[:0]
}

func (w *stagedWrites) Set(key, value []byte, _ *pebble.WriteOptions) error {
	k := len(w.buf)
	w.buf = append(append(w.buf, key...), value...)
	w.ops = append(w.ops, stagedOp{k: k, v: k + len(key), end: len(w.buf)})
	return nil
}

func (w *stagedWrites) Delete(key []byte, _ *pebble.WriteOptions) error {
	k := len(w.buf)
	w.buf = append(w.buf, key...)
	w.ops = append(w.ops, stagedOp{del: true, k: k, v: len(w.buf), end: len(w.buf)})
	return nil
}

// apply writes the staged writes to b in key order.
func (w *stagedWrites) apply(b *pebble.Batch) error {
	// Stable, by the offsets in buf (which follow the order of the
	// writes) among equal keys; pdqsort with that tiebreak beats
	// SortStableFunc's insertion sort and symmerge on large batches.
	slices.SortFunc(w.ops, func(x, y stagedOp) int {
		return cmp.Or(bytes.Compare(w.buf[x.k:x.v], w.buf[y.k:y.v]), cmp.Compare(x.k, y.k))
	})
	for _, op := range w.ops {
		var err error
		if op.del {
			err = b.Delete(w.buf[op.k:op.v], nil)
		} else {
			err = b.Set(w.buf[op.k:op.v], w.buf[op.v:op.end], nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
