package plugins

import (
	"context"
	"time"
)

// Stats is the part of a Storage that reports statistics of its own state
// (protocol version 5), which qqd exports on its /metrics at each scrape.
// The set of statistics is closed (StorageStats), so that a plugin cannot
// make qqd create metrics without bound: today a connection pool's, which
// pgstore reports. Find it with StatsOf, not with a type assertion.
type Stats interface {
	// Stats returns the statistics as they are now. It must be cheap (no
	// query to a database: qqd calls it at each scrape, with a deadline of
	// a second) and safe for concurrent use with every other method of the
	// Storage.
	Stats(ctx context.Context) (StorageStats, error)
}

// StorageStats are the statistics a Storage reports. A field left at its
// zero value (nil) is one the storage does not have; qqd then exports
// none of its metrics.
type StorageStats struct {
	// Pool is the storage's connection pool (qqd's
	// qqd_storage_pool_* metrics).
	Pool *PoolStats
}

// PoolStats are a connection pool's gauges (as they are now) and counters
// (since the pool was opened: they start again from 0 with a new plugin
// process, as any Prometheus counter may). Its connections are
// IdleConns + AcquiredConns + ConstructingConns, at most MaxConns.
type PoolStats struct {
	// MaxConns is the most connections the pool opens.
	MaxConns int64
	// IdleConns are open and idle, AcquiredConns in use,
	// ConstructingConns being opened.
	IdleConns, AcquiredConns, ConstructingConns int64
	// Acquires counts the connections acquired from the pool;
	// EmptyAcquires those of them that had to wait for one (none was
	// idle); CanceledAcquires the acquisitions given up because their
	// context was done.
	Acquires, EmptyAcquires, CanceledAcquires int64
	// AcquireWait is the total time spent acquiring connections.
	AcquireWait time.Duration
}

// StatsOf returns s's Stats, if it has one: for a storage in a plugin
// process, when the process negotiated protocol version 5 and the plugin
// said so at Configure (its storage implements Stats); for a storage in
// this process, when it implements Stats, or else when it is a wrapper
// with a method StatsSide() (Stats, bool) that reports it (a method
// Stats() would clash with Stats' own, as for BackupSide).
func StatsOf(s Storage) (Stats, bool) {
	if w, ok := s.(interface{ StatsSide() (Stats, bool) }); ok {
		return w.StatsSide()
	}
	st, ok := s.(Stats)
	return st, ok
}
