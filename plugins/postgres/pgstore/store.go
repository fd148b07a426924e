package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/qqchat/qq/plugins"
)

// ErrClosed is returned (wrapped) by every method called after Close.
var ErrClosed = errors.New("pgstore: store is closed")

// maxAttempts bounds how many times a transaction that failed with a
// serialization failure (40001) or a deadlock (40P01) is run.
const maxAttempts = 8

// Options configure Open.
type Options struct {
	// PoolConfig is the parsed pool configuration (ParseConfig builds
	// it from the plugin configuration). Required.
	PoolConfig *pgxpool.Config
	// DedupWindow is how long (sender, cid) keys are remembered at least;
	// zero keeps them forever.
	DedupWindow time.Duration
	// Now is the clock that timestamps messages; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// Store is a [plugins.Storage] on a PostgreSQL database. Create it with
// Open. Several Stores (in several processes, on several machines) may
// share one database.
type Store struct {
	pool   *pgxpool.Pool
	now    func() time.Time
	log    *slog.Logger
	window time.Duration

	closed     atomic.Bool
	closeOnce  sync.Once
	stopPruner context.CancelFunc
	prunerDone chan struct{}
}

var (
	_ plugins.Storage = (*Store)(nil)
	_ plugins.Social  = (*Store)(nil)
	_ plugins.Groups  = (*Store)(nil)
	_ plugins.Tokens  = (*Store)(nil)
)

// pruneInterval is how often the pruner forgets old de-duplication keys.
const pruneInterval = 10 * time.Minute

// Open connects to the database, brings its schema up to date (under an
// advisory lock, so that concurrent openers apply each migration once)
// and returns the store.
func Open(ctx context.Context, opts Options) (_ *Store, err error) {
	if opts.PoolConfig == nil {
		return nil, errors.New("pgstore: open: no pool configuration")
	}
	s := &Store{now: opts.Now, log: opts.Logger, window: opts.DedupWindow}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, opts.PoolConfig)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	defer func() {
		if err != nil {
			s.pool.Close()
		}
	}()
	if err := migrate(ctx, s.pool, migrations()); err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	if s.window > 0 {
		pctx, cancel := context.WithCancel(context.Background())
		s.stopPruner = cancel
		s.prunerDone = make(chan struct{})
		go s.pruneLoop(pctx)
	}
	return s, nil
}

// Close stops the pruner and closes the pool, waiting for the
// connections in use to be released. Calling it again does nothing; every
// other method fails after Close.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.stopPruner != nil {
			s.stopPruner()
			<-s.prunerDone
		}
		s.pool.Close()
	})
	return nil
}

// PoolStats are the connection pool's gauges and counters.
type PoolStats struct {
	MaxConns, TotalConns, IdleConns, AcquiredConns, ConstructingConns int32
	AcquireCount, EmptyAcquireCount, CanceledAcquireCount             int64
	AcquireDuration                                                   time.Duration
}

// PoolStats returns the pool's statistics.
func (s *Store) PoolStats() PoolStats {
	st := s.pool.Stat()
	return PoolStats{
		MaxConns: st.MaxConns(), TotalConns: st.TotalConns(), IdleConns: st.IdleConns(),
		AcquiredConns: st.AcquiredConns(), ConstructingConns: st.ConstructingConns(),
		AcquireCount: st.AcquireCount(), EmptyAcquireCount: st.EmptyAcquireCount(),
		CanceledAcquireCount: st.CanceledAcquireCount(), AcquireDuration: st.AcquireDuration(),
	}
}

var _ plugins.Stats = (*Store)(nil)

// Stats implements plugins.Stats: the connection pool's statistics, which
// qqd exports as qqd_storage_pool_*. It asks nothing of the database.
func (s *Store) Stats(context.Context) (plugins.StorageStats, error) {
	if s.closed.Load() {
		return plugins.StorageStats{}, fmt.Errorf("pgstore: stats: %w", ErrClosed)
	}
	st := s.PoolStats()
	return plugins.StorageStats{Pool: &plugins.PoolStats{
		MaxConns: int64(st.MaxConns), IdleConns: int64(st.IdleConns), AcquiredConns: int64(st.AcquiredConns),
		ConstructingConns: int64(st.ConstructingConns), Acquires: st.AcquireCount, EmptyAcquires: st.EmptyAcquireCount,
		CanceledAcquires: st.CanceledAcquireCount, AcquireWait: st.AcquireDuration,
	}}, nil
}

// retryable reports whether err is a serialization failure or a
// deadlock: the transaction rolled back and may be run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// backoff sleeps before attempt (1, 2, ...) of a retried transaction.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(attempt*attempt) * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// txError is the failure of a transaction: where it happened.
type txError struct {
	commit bool // COMMIT was sent: the outcome may be unknown
	err    error
}

func (e *txError) Error() string { return e.err.Error() }
func (e *txError) Unwrap() error { return e.err }

// inTx runs fn in a READ COMMITTED transaction and commits it, running
// it again (at most maxAttempts times) after a serialization failure or a
// deadlock. fn must start afresh on each call. A failure is a *txError.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if err == nil {
			return nil
		}
		if !retryable(err) || attempt >= maxAttempts || ctx.Err() != nil {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return &txError{err: err}
		}
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return &txError{err: fmt.Errorf("begin: %w", err)}
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return &txError{err: err}
	}
	if err := tx.Commit(ctx); err != nil {
		return &txError{commit: commitMaybeDone(err), err: fmt.Errorf("commit: %w", err)}
	}
	return nil
}

// commitMaybeDone reports whether a failed COMMIT may have committed: not
// when the server answered with an error (the transaction rolled back) or
// the command was never sent; otherwise (the connection broke, the
// context ended while waiting for the answer) it may have.
func commitMaybeDone(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false
	}
	return !pgconn.SafeToRetry(err)
}

// writeTx runs fn in a transaction (see inTx); what names the operation
// in errors. The social, group and token operations use it.
func (s *Store) writeTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	if s.closed.Load() {
		return fmt.Errorf("pgstore: %s: %w", what, ErrClosed)
	}
	if err := s.inTx(ctx, fn); err != nil {
		return fmt.Errorf("pgstore: %s: %w", what, err)
	}
	return nil
}

// exec runs a statement inside tx and returns how many rows it changed.
func exec(ctx context.Context, tx pgx.Tx, q string, args ...any) (int64, error) {
	tag, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// lockUsers locks the rows of names in name order (a batch that locks in
// any other order can deadlock with another) and returns what it read of
// those that exist. The lock is FOR NO KEY UPDATE: it excludes the other
// transactions of the store, which take the same, but not the KEY SHARE
// locks of the foreign-key checks of rows that name the user (a
// FOR UPDATE would make those wait, out of order, and deadlock).
func lockUsers(ctx context.Context, tx pgx.Tx, names []string) (map[string]*userRow, error) {
	rows, err := tx.Query(ctx, `SELECT name, deleted_ms IS NULL, msg_seq, last_ts FROM users
		WHERE name = ANY($1::text[]) ORDER BY name FOR NO KEY UPDATE`, names)
	if err != nil {
		return nil, fmt.Errorf("lock users: %w", err)
	}
	defer rows.Close()
	out := make(map[string]*userRow, len(names))
	for rows.Next() {
		u := new(userRow)
		var name string
		if err := rows.Scan(&name, &u.live, &u.seq, &u.lastTS); err != nil {
			return nil, fmt.Errorf("lock users: %w", err)
		}
		out[name] = u
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock users: %w", err)
	}
	return out, nil
}

// userRow is what a Write reads (and changes) of a locked user.
type userRow struct {
	live    bool
	seq     int64 // msg_seq
	lastTS  int64
	changed bool
}

// live checks, inside tx, that every name is a live user (registered, not
// deleted), or fails with ErrUnknownUser naming the first that is not.
func live(ctx context.Context, tx pgx.Tx, names ...string) error {
	for _, name := range names {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE name = $1 AND deleted_ms IS NULL)`, name).Scan(&ok); err != nil {
			return fmt.Errorf("look up user: %w", err)
		}
		if !ok {
			return fmt.Errorf("user %q: %w", name, plugins.ErrUnknownUser)
		}
	}
	return nil
}

// pruneLoop runs PruneCIDs every pruneInterval until ctx is done.
func (s *Store) pruneLoop(ctx context.Context) {
	defer close(s.prunerDone)
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.PruneCIDs(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("pgstore: prune cids", "err", err)
		case n > 0:
			s.log.Info("pgstore: pruned cids", "count", n)
		}
	}
}

// pruneBatch is how many keys one prune transaction forgets.
const pruneBatch = 1000

// PruneCIDs forgets the de-duplication keys of messages older than the
// window (a later message with such a key is stored anew) and returns how
// many it forgot, in small transactions. With a zero window it does
// nothing.
func (s *Store) PruneCIDs(ctx context.Context) (int64, error) {
	if s.window <= 0 {
		return 0, nil
	}
	cutoff := s.now().Add(-s.window).UnixMilli()
	var total int64
	for {
		var n int64
		err := s.writeTx(ctx, "prune cids", func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `DELETE FROM cids WHERE (sender, cid) IN (
				SELECT sender, cid FROM cids WHERE ts < $1 ORDER BY ts LIMIT $2 FOR UPDATE SKIP LOCKED)
				RETURNING sender, cid`, cutoff, pruneBatch)
			if err != nil {
				return err
			}
			senders, keys, err := collectPairs(rows)
			if err != nil {
				return err
			}
			n = int64(len(keys))
			for _, q := range []string{
				`UPDATE messages m SET cid = NULL FROM unnest($1::text[], $2::text[]) AS k(sender, cid)
					WHERE m.sender = k.sender AND m.cid = k.cid`,
				`UPDATE group_log l SET cid = NULL FROM unnest($1::text[], $2::text[]) AS k(sender, cid)
					WHERE l.sender = k.sender AND l.cid = k.cid`,
			} {
				if _, err := tx.Exec(ctx, q, senders, keys); err != nil {
					return err
				}
			}
			return nil
		})
		total += n
		if err != nil {
			return total, err
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// collectPairs reads rows of two text columns.
func collectPairs(rows pgx.Rows) (a, b []string, err error) {
	defer rows.Close()
	for rows.Next() {
		var x, y string
		if err := rows.Scan(&x, &y); err != nil {
			return nil, nil, err
		}
		a, b = append(a, x), append(b, y)
	}
	return a, b, rows.Err()
}

// convKey is the conversation key of a and b, in either order: the names
// sorted, in the form "<len(a)>:<a> <b>". The length prefix makes the key
// unambiguous whatever bytes the names hold.
func convKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return strconv.Itoa(len(a)) + ":" + a + " " + b
}

// Location describes where opts connect, without the password:
// "qq@127.0.0.1:5432/qq".
func (o Options) Location() string {
	if o.PoolConfig == nil {
		return ""
	}
	c := o.PoolConfig.ConnConfig
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// qqTables are the store's tables (schema_version aside).
const qqTables = `users, messages, cids, friends, friend_requests, blocks, groups, group_members,
	group_log, group_cursors, group_mentions, group_requests, tokens`

// Empty reports whether the database holds no data (no users, messages,
// groups or tokens): what Import requires.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	if s.closed.Load() {
		return false, fmt.Errorf("pgstore: empty: %w", ErrClosed)
	}
	var empty bool
	if err := s.pool.QueryRow(ctx, qEmpty).Scan(&empty); err != nil {
		return false, fmt.Errorf("pgstore: empty: %w", err)
	}
	return empty, nil
}

const qEmpty = `SELECT NOT EXISTS (SELECT 1 FROM users) AND NOT EXISTS (SELECT 1 FROM messages)
	AND NOT EXISTS (SELECT 1 FROM groups) AND NOT EXISTS (SELECT 1 FROM tokens)`

// Truncate removes everything the store holds; the schema stays. It is
// for tools that filled an empty database and must undo it (qqd storage
// import and migrate, on failure), never for a database in service.
func (s *Store) Truncate(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("pgstore: truncate: %w", ErrClosed)
	}
	if _, err := s.pool.Exec(ctx, `TRUNCATE `+qqTables+` RESTART IDENTITY`); err != nil {
		return fmt.Errorf("pgstore: truncate: %w", err)
	}
	return nil
}
