package pebblestore

import (
	"errors"
	"fmt"
)

// ErrLowSpace is returned (wrapped, inside a *plugins.WriteError with
// MaybeWritten false) by a Write that carries messages, and by
// CreateUser and CreateGroup, while the database's filesystem has less
// free space than the store's reserve (see the package documentation,
// "Disk space").
var ErrLowSpace = errors.New("too little free space on the database's filesystem")

const (
	// reserveMemTables is how many memtables' worth of space the reserve
	// keeps: Pebble holds up to two memtables (and their WAL files) while
	// one is flushed, and the flush writes an sstable of up to their
	// size.
	reserveMemTables = 4
	// reserveMargin is added to the reserve for compactions and one large
	// batch.
	reserveMargin = 64 << 20
	// reserveShare caps the reserve at this fraction (1/reserveShare) of
	// the filesystem's size, for small filesystems.
	reserveShare = 4
)

// reserveFor returns the free space below which writes that add data are
// refused, for a filesystem of fsSize bytes (0: unknown, no reserve) and
// a memtable of memTable bytes.
//
// Pebble does not fail a write when the disk is full: a memtable that
// cannot be flushed stalls every later commit until space returns (a
// Write would then hang past its deadline). The reserve keeps the space
// that flushes, compactions and acks need, so that the disk does not get
// there through messages.
func reserveFor(fsSize int64, memTable uint64) int64 {
	if fsSize <= 0 {
		return 0
	}
	return min(reserveMemTables*int64(memTable)+reserveMargin, fsSize/reserveShare)
}

// roomForData returns an error wrapping ErrLowSpace when the filesystem
// has less free space than the reserve. A filesystem whose free space
// cannot be read counts as roomy. The caller holds s.wmu.
func (s *Store) roomForData() error {
	if s.reserve == 0 {
		return nil
	}
	_, avail, err := diskSpace(s.dir)
	if err != nil || avail >= s.reserve {
		if s.lowSpace {
			s.lowSpace = false
			s.log.Info("pebblestore: free space is back; storing new messages again", "free_bytes", avail, "reserve_bytes", s.reserve)
		}
		return nil
	}
	if !s.lowSpace {
		s.lowSpace = true
		s.log.Warn("pebblestore: free space below the reserve; refusing new messages, accounts and groups until it returns",
			"free_bytes", avail, "reserve_bytes", s.reserve, "dir", s.dir)
	}
	return fmt.Errorf("%w: %d bytes free in %s, %d kept in reserve", ErrLowSpace, avail, s.dir, s.reserve)
}
