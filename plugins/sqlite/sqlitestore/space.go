package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
)

// ErrLowSpace is returned (wrapped, inside a *plugins.WriteError with
// MaybeWritten false) by a Write that carries messages, and by CreateUser,
// while the database's filesystem has less free space than the store's
// reserve (see the package documentation, "Disk space").
var ErrLowSpace = errors.New("too little free space on the database's filesystem")

const (
	// pageSize is SQLite's page size for a new database, which the store
	// never changes: the unit of wal_autocheckpoint.
	pageSize = 4096
	// checkpointShare: the WAL is checkpointed once it holds this
	// fraction (1/checkpointShare) of the filesystem's size, at most
	// walAutocheckpointPages and at least minCheckpointPages.
	checkpointShare = 32
	// minCheckpointPages is the smallest checkpoint size (1 MiB).
	minCheckpointPages = 256
	// reserveMargin is added to the reserve for one large batch.
	reserveMargin = 1 << 20
	// reclaimEvery bounds how often a write that found the filesystem
	// full runs a truncating checkpoint.
	reclaimEvery = time.Second
	// reclaimBusyMS bounds how long that checkpoint waits for readers.
	reclaimBusyMS = 100
	// sqliteFull is SQLite's primary result code SQLITE_FULL.
	sqliteFull = 13
)

// spaceBudget is how the store sizes its WAL and its free-space reserve
// for the filesystem it is on.
type spaceBudget struct {
	// checkpointPages is PRAGMA wal_autocheckpoint.
	checkpointPages int64
	// walLimit is PRAGMA journal_size_limit: what the WAL file is
	// truncated to after a checkpoint.
	walLimit int64
	// reserve is the free space below which writes that add data are
	// refused (ErrLowSpace); 0 when the filesystem's size is unknown.
	reserve int64
}

// budgetFor returns the budget for a filesystem of fsSize bytes (0:
// unknown). The WAL never holds more than about checkpointPages pages
// (plus one transaction, and more only while a long read holds a
// checkpoint back), and a checkpoint grows the database file by at most
// what the WAL holds; so 2 × the checkpoint size, plus a margin, is the
// space that lets the WAL restart, acks commit and checkpoints finish
// when everything else is taken.
func budgetFor(fsSize int64) spaceBudget {
	if fsSize <= 0 {
		return spaceBudget{checkpointPages: walAutocheckpointPages, walLimit: journalSizeLimit}
	}
	pages := min(max(fsSize/checkpointShare/pageSize, minCheckpointPages), walAutocheckpointPages)
	return spaceBudget{
		checkpointPages: pages,
		walLimit:        pages * pageSize,
		reserve:         2*pages*pageSize + reserveMargin,
	}
}

// roomForData returns an error wrapping ErrLowSpace when the filesystem
// has less free space than the reserve. A filesystem whose free space
// cannot be read counts as roomy. The caller holds s.wmu.
//
// It does not checkpoint: the reserve already counts the WAL's space,
// and giving it back only to take it again at the next messages would
// copy the WAL once a second for as long as space is low.
func (s *Store) roomForData() error {
	if s.budget.reserve == 0 {
		return nil
	}
	_, avail, err := diskSpace(s.dir)
	if err != nil || avail >= s.budget.reserve {
		if s.lowSpace {
			s.lowSpace = false
			s.log.Info("sqlitestore: free space is back; storing new messages again", "free_bytes", avail, "reserve_bytes", s.budget.reserve)
		}
		return nil
	}
	if !s.lowSpace {
		s.lowSpace = true
		s.log.Warn("sqlitestore: free space below the reserve; refusing new messages and accounts until it returns",
			"free_bytes", avail, "reserve_bytes", s.budget.reserve, "dir", s.dir)
	}
	return fmt.Errorf("%w: %d bytes free in %s, %d kept in reserve", ErrLowSpace, avail, s.dir, s.budget.reserve)
}

// reclaimWAL runs a truncating checkpoint, at most once per reclaimEvery,
// waiting at most reclaimBusyMS for readers: it copies the WAL into the
// database and gives the WAL's space back to the filesystem. A write that
// met a full disk calls it. It reports whether it ran and succeeded. The
// caller holds s.wmu, outside a transaction.
func (s *Store) reclaimWAL(ctx context.Context) bool {
	now := time.Now()
	if now.Sub(s.lastReclaim) < reclaimEvery {
		return false
	}
	s.lastReclaim = now
	if _, err := s.writer.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", reclaimBusyMS)); err != nil {
		s.log.Warn("sqlitestore: reclaim WAL space", "err", err)
		return false
	}
	defer func() {
		if _, err := s.writer.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeoutMS)); err != nil {
			s.log.Warn("sqlitestore: restore busy timeout", "err", err)
		}
	}()
	var busy, logPages, done int64
	err := s.writer.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done)
	if err != nil || busy != 0 {
		s.log.Warn("sqlitestore: reclaim WAL space: checkpoint incomplete", "err", err, "busy", busy, "wal_pages", logPages, "copied", done)
		return false
	}
	return true
}

// isFull reports whether err is SQLite's SQLITE_FULL (the disk is full).
func isFull(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqliteFull
}

// rollbackAfterFailedCommit ends a transaction that a failed COMMIT left
// open (SQLite may keep it open after SQLITE_FULL or SQLITE_BUSY) and
// reports whether there was one: then nothing of it was stored. The
// caller holds s.wmu.
func (s *Store) rollbackAfterFailedCommit() bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	// Fails with "no transaction is active" when the transaction ended.
	if _, err := s.writer.ExecContext(ctx, "ROLLBACK"); err != nil {
		return false
	}
	s.log.Warn("sqlitestore: a failed commit left its transaction open; rolled it back")
	return true
}
