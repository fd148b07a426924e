package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qqchat/qq/plugins"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrClosed is returned (wrapped) by every method called after Close.
var ErrClosed = errors.New("store is closed")

const (
	// busyTimeoutMS bounds how long a connection waits for a lock held by
	// another connection (another Store or process on the same file).
	busyTimeoutMS = 5000
	// readConns is the size of the read pool.
	readConns = 4
	// journalSizeLimit caps the WAL file kept after a checkpoint where
	// the filesystem's size is unknown; see budgetFor.
	journalSizeLimit = 128 << 20
	// pruneInterval is how often the background pruner runs.
	pruneInterval = time.Hour
	// pruneBatch is how many cids one prune transaction forgets, so that
	// pruning a large backlog does not hold the write lock for long.
	pruneBatch = 5000
	// probeTimeout bounds the lookup that settles the outcome of a failed
	// COMMIT.
	probeTimeout = 5 * time.Second
	// writerCacheKiB is the page cache of the writer connection. SQLite's
	// default (2 MiB) is far smaller than the index pages a batch of
	// messages between random users touches: the writer then re-reads
	// pages with a syscall each and spills dirty pages into the WAL in the
	// middle of a transaction, which measured more than a third of the
	// CPU of a write (BenchmarkWriteMixed).
	writerCacheKiB = 64 << 10
	// walAutocheckpointPages is how many WAL pages trigger a checkpoint
	// (SQLite's default is 1,000, 4 MiB) on a filesystem of 4 GiB or more,
	// or of unknown size. A checkpoint copies each page once however often
	// it changed since the last one, so a larger WAL copies the hot index
	// pages less often. On a smaller filesystem the WAL is checkpointed at
	// 1/32 of its size (budgetFor): a WAL that can outgrow the free space
	// is never checkpointed, and then no write, not even an ack, fits.
	walAutocheckpointPages = 32000
	// readerCacheKiB is the page cache of each read connection.
	readerCacheKiB = 16 << 10
	// maxKnownUsers bounds Store.users (about 100 bytes a name).
	maxKnownUsers = 1 << 20
)

// Options configures Open.
type Options struct {
	// Path is the database file. Its directory is created (mode 0700) if
	// missing, and a new file is created with mode 0600.
	Path string
	// Synchronous is the SQLite synchronous level: "full" (the default
	// when empty), "normal" or "off".
	Synchronous string
	// DedupWindow is how long (sender, cid) keys are remembered at least;
	// zero keeps them forever.
	DedupWindow time.Duration
	// Now is the clock that timestamps messages; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// Store is a [plugins.Storage] on a SQLite database. Create it with Open.
type Store struct {
	writer *sql.DB // one connection: every write goes through it
	reader *sql.DB // read-only (query_only) pool

	now       func() time.Time
	log       *slog.Logger
	window    time.Duration
	syncLevel string // PRAGMA synchronous of the writer: FULL, NORMAL or OFF
	// syncLowered: an ack-only Write set the writer to NORMAL and has not
	// restored syncLevel yet (restoreSync). Guarded by wmu.
	syncLowered bool

	// path is the database file (absolute).
	path string
	// dir is the database's directory; budget sizes the WAL and the
	// free-space reserve for its filesystem (see roomForData).
	dir    string
	budget spaceBudget
	// lowSpace: the last roomForData found less free space than the
	// reserve. lastReclaim is when reclaimWAL last ran. Guarded by wmu.
	lowSpace    bool
	lastReclaim time.Time

	// Statements prepared on the writer, used inside transactions.
	stLookupCID  *sql.Stmt
	stUserExists *sql.Stmt
	stInsert     *sql.Stmt
	stInsertChk  *sql.Stmt
	stAck        *sql.Stmt
	stPrune      *sql.Stmt
	stCreateUser *sql.Stmt
	stSetHash    *sql.Stmt
	stDeleteUser *sql.Stmt
	stDropPend   *sql.Stmt
	// Friendships, requests and blocks, on the writer.
	stWriteRel     *sql.Stmt
	stRelationW    *sql.Stmt
	stPutRequest   *sql.Stmt
	stDelRequest   *sql.Stmt
	stDelRequests  *sql.Stmt
	stAddFriends   *sql.Stmt
	stDelFriends   *sql.Stmt
	stBlock        *sql.Stmt
	stUnblock      *sql.Stmt
	stDropFriends  *sql.Stmt
	stDropRequests *sql.Stmt
	stDropBlocks   *sql.Stmt
	// Groups, on the writer.
	stGroupW            *sql.Stmt
	stCreateGroup       *sql.Stmt
	stPutGroup          *sql.Stmt
	stGroupSeq          *sql.Stmt
	stOwnedGroups       *sql.Stmt
	stJoinedGroups      *sql.Stmt
	stMemberW           *sql.Stmt
	stSender            *sql.Stmt
	stAddMember         *sql.Stmt
	stRemoveMember      *sql.Stmt
	stSetRole           *sql.Stmt
	stSetMuted          *sql.Stmt
	stMembersW          *sql.Stmt
	stSuccessor         *sql.Stmt
	stDissolveMembers   *sql.Stmt
	stUserMemberships   *sql.Stmt
	stAppendEntry       *sql.Stmt
	stGroupInsert       *sql.Stmt
	stGroupLookupCID    *sql.Stmt
	stGroupPrune        *sql.Stmt
	stAddCursor         *sql.Stmt
	stSenderCursor      *sql.Stmt
	stAckGroup          *sql.Stmt
	stPassMentions      *sql.Stmt
	stRecountMentions   *sql.Stmt
	stMention           *sql.Stmt
	stCountMention      *sql.Stmt
	stDropCursor        *sql.Stmt
	stDropMentions      *sql.Stmt
	stDropUserCursors   *sql.Stmt
	stDropUserMentions  *sql.Stmt
	stPutJoinRequest    *sql.Stmt
	stDelJoinRequest    *sql.Stmt
	stDropGroupRequests *sql.Stmt
	stDropUserRequests  *sql.Stmt
	// Resume tokens, on the writer.
	stAddToken       *sql.Stmt
	stTrimTokens     *sql.Stmt
	stTouchToken     *sql.Stmt
	stDropUserTokens *sql.Stmt
	stRevokeTokens   *sql.Stmt
	stPurgeTokens    *sql.Stmt
	// Statements prepared on the reader pool.
	stPasswordHash *sql.Stmt
	stKnownUser    *sql.Stmt
	stCountUsers   *sql.Stmt
	stCountPend    *sql.Stmt
	stPendingCount *sql.Stmt
	stPending      *sql.Stmt
	stLookupCIDs   *sql.Stmt
	stCursor       *sql.Stmt
	stHistory      *sql.Stmt
	stRelation     *sql.Stmt
	stBlocks       *sql.Stmt
	stFriends      *sql.Stmt
	// Groups, on the reader pool.
	stGroupR          *sql.Stmt
	stMemberR         *sql.Stmt
	stMembersR        *sql.Stmt
	stUserGroups      *sql.Stmt
	stGroupRequests   *sql.Stmt
	stLogAfter        *sql.Stmt
	stLogBefore       *sql.Stmt
	stGroupLookupCIDs *sql.Stmt
	// Resume tokens, on the reader pool.
	stToken      *sql.Stmt
	stUserTokens *sql.Stmt
	// stmts is every statement above that was prepared, for closeDB.
	stmts []*sql.Stmt

	wmu    sync.Mutex // serialises writes; guards lastTS and users
	lastTS int64      // largest timestamp assigned so far
	// users caches names known to exist (registered, not deleted), so
	// that a batch does not look every sender and recipient up.
	// DeleteUser removes the name, and syncCaches empties it when another
	// connection wrote the file. At most maxKnownUsers names; it is
	// cleared when full.
	users map[string]struct{}
	// blockers holds every user who blocks someone (and perhaps a few who
	// no longer do: Unblock leaves them until the next load), so that a
	// message to anyone else is inserted without the block probe. Block
	// adds to it before its commit. With more than maxKnownUsers names it
	// is dropped and allBlock set: every message is checked.
	blockers map[string]struct{}
	allBlock bool
	// dataVersion is the writer's PRAGMA data_version when the caches
	// were last known to be right: it changes when another connection
	// (another Store or process on the file) commits, and then users is
	// cleared and blockers loaded again (syncCaches).
	dataVersion int64

	closed     atomic.Bool
	closeOnce  sync.Once
	closeErr   error
	stopPruner context.CancelFunc
	prunerDone chan struct{}
}

var (
	_ plugins.Storage = (*Store)(nil)
	_ plugins.Social  = (*Store)(nil)
	_ plugins.Groups  = (*Store)(nil)
	_ plugins.Tokens  = (*Store)(nil)
)

// Open opens (creating if needed) the database at opts.Path, applies
// pending schema migrations, forgets cids older than the de-duplication
// window and starts the hourly pruner, which Close stops.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", opts.Path, err)
	}
	return s, nil
}

func open(ctx context.Context, opts Options) (_ *Store, err error) {
	if opts.Path == "" {
		return nil, errors.New("empty path")
	}
	syncLevel, err := synchronousLevel(opts.Synchronous)
	if err != nil {
		return nil, err
	}
	if opts.DedupWindow < 0 {
		return nil, fmt.Errorf("negative dedup window %v", opts.DedupWindow)
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// Create the file ourselves so that it (and the -wal and -shm files,
	// which SQLite creates with the database's mode) is private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}

	fsSize, _, err := diskSpace(filepath.Dir(path))
	if err != nil {
		fsSize = 0 // unknown: SQLite's sizes, no reserve
	}
	s := &Store{
		path:      path,
		dir:       filepath.Dir(path),
		budget:    budgetFor(fsSize),
		now:       opts.Now,
		log:       opts.Logger,
		window:    opts.DedupWindow,
		syncLevel: syncLevel,
		users:     make(map[string]struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			_ = s.closeDB()
		}
	}()

	s.writer, err = sql.Open("sqlite", dsn(path, []string{"_txlock=immediate"},
		fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
		"foreign_keys(1)",
		"journal_mode(WAL)",
		fmt.Sprintf("journal_size_limit(%d)", s.budget.walLimit),
		"synchronous("+syncLevel+")",
		fmt.Sprintf("cache_size(%d)", -writerCacheKiB),
		fmt.Sprintf("wal_autocheckpoint(%d)", s.budget.checkpointPages),
	))
	if err != nil {
		return nil, err
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)

	var mode string
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, err
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("journal mode is %q, want wal", mode)
	}
	if err := migrate(ctx, s.writer, migrations()); err != nil {
		return nil, err
	}
	// Timestamps do not decrease along seq, so the last row has the
	// largest one; this is one index probe, not a scan.
	err = s.writer.QueryRowContext(ctx, "SELECT ts FROM messages ORDER BY seq DESC LIMIT 1").Scan(&s.lastTS)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read last timestamp: %w", err)
	}

	s.reader, err = sql.Open("sqlite", dsn(path, nil,
		fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
		"query_only(1)",
		fmt.Sprintf("cache_size(%d)", -readerCacheKiB),
	))
	if err != nil {
		return nil, err
	}
	s.reader.SetMaxOpenConns(readConns)
	s.reader.SetMaxIdleConns(readConns)
	s.reader.SetConnMaxLifetime(0)
	s.reader.SetConnMaxIdleTime(0)

	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	if err := s.loadCaches(ctx, s.writer); err != nil {
		return nil, err
	}
	s.log.Info("sqlitestore: disk space budget", "dir", s.dir, "filesystem_bytes", fsSize,
		"wal_checkpoint_bytes", s.budget.checkpointPages*pageSize, "reserve_bytes", s.budget.reserve)

	if s.window > 0 {
		if n, err := s.PruneCIDs(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// Not fatal: the keys are kept longer than the window.
			s.log.Warn("sqlitestore: prune cids at open", "err", err)
		} else if n > 0 {
			s.log.Info("sqlitestore: pruned cids", "count", n)
		}
		pctx, cancel := context.WithCancel(context.Background())
		s.stopPruner = cancel
		s.prunerDone = make(chan struct{})
		go s.pruneLoop(pctx)
	}
	return s, nil
}

// synchronousLevel maps Options.Synchronous to a PRAGMA synchronous value.
func synchronousLevel(v string) (string, error) {
	switch strings.ToLower(v) {
	case "", "full":
		return "FULL", nil
	case "normal":
		return "NORMAL", nil
	case "off":
		return "OFF", nil
	}
	return "", fmt.Errorf("synchronous %q: want full, normal or off", v)
}

// dsn builds a modernc.org/sqlite data source name for the file at the
// absolute path: a file: URI whose _pragma parameters the driver runs on
// every new connection of the pool.
func dsn(path string, params []string, pragmas ...string) string {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows drive letters
	}
	q := make([]string, 0, len(params)+len(pragmas))
	q = append(q, params...)
	for _, pr := range pragmas {
		q = append(q, "_pragma="+url.QueryEscape(pr))
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: strings.Join(q, "&")}
	return u.String()
}

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		db    *sql.DB
		st    **sql.Stmt
		query string
	}{
		{s.writer, &s.stLookupCID, qLookupCID},
		{s.writer, &s.stUserExists, qUserExists},
		{s.writer, &s.stInsert, qInsert},
		{s.writer, &s.stInsertChk, qInsertChecked},
		{s.writer, &s.stAck, qAck},
		{s.writer, &s.stPrune, qPrune},
		{s.writer, &s.stCreateUser, qCreateUser},
		{s.writer, &s.stSetHash, qSetPasswordHash},
		{s.writer, &s.stDeleteUser, qDeleteUser},
		{s.writer, &s.stDropPend, qDropPending},
		{s.writer, &s.stWriteRel, qWriteRelation},
		{s.writer, &s.stRelationW, qRelation},
		{s.writer, &s.stPutRequest, qPutRequest},
		{s.writer, &s.stDelRequest, qDeleteRequest},
		{s.writer, &s.stDelRequests, qDeleteRequests},
		{s.writer, &s.stAddFriends, qAddFriends},
		{s.writer, &s.stDelFriends, qDeleteFriends},
		{s.writer, &s.stBlock, qBlock},
		{s.writer, &s.stUnblock, qUnblock},
		{s.writer, &s.stDropFriends, qDropFriends},
		{s.writer, &s.stDropRequests, qDropRequests},
		{s.writer, &s.stDropBlocks, qDropBlocks},
		{s.writer, &s.stGroupW, qGroup},
		{s.writer, &s.stCreateGroup, qCreateGroup},
		{s.writer, &s.stPutGroup, qPutGroup},
		{s.writer, &s.stGroupSeq, qGroupSeq},
		{s.writer, &s.stOwnedGroups, qOwnedGroups},
		{s.writer, &s.stJoinedGroups, qJoinedGroups},
		{s.writer, &s.stMemberW, qMember},
		{s.writer, &s.stSender, qSender},
		{s.writer, &s.stAddMember, qAddMember},
		{s.writer, &s.stRemoveMember, qRemoveMember},
		{s.writer, &s.stSetRole, qSetRole},
		{s.writer, &s.stSetMuted, qSetMuted},
		{s.writer, &s.stMembersW, qMembers},
		{s.writer, &s.stSuccessor, qSuccessor},
		{s.writer, &s.stDissolveMembers, qDissolveMembers},
		{s.writer, &s.stUserMemberships, qUserMemberships},
		{s.writer, &s.stAppendEntry, qAppendEntry},
		{s.writer, &s.stGroupInsert, qGroupInsert},
		{s.writer, &s.stGroupLookupCID, qGroupLookupCID},
		{s.writer, &s.stGroupPrune, qGroupPrune},
		{s.writer, &s.stAddCursor, qAddCursor},
		{s.writer, &s.stSenderCursor, qSenderCursor},
		{s.writer, &s.stAckGroup, qAckGroup},
		{s.writer, &s.stPassMentions, qPassMentions},
		{s.writer, &s.stRecountMentions, qRecountMentions},
		{s.writer, &s.stMention, qMention},
		{s.writer, &s.stCountMention, qCountMention},
		{s.writer, &s.stDropCursor, qDropCursor},
		{s.writer, &s.stDropMentions, qDropMentions},
		{s.writer, &s.stDropUserCursors, qDropUserCursors},
		{s.writer, &s.stDropUserMentions, qDropUserMentions},
		{s.writer, &s.stPutJoinRequest, qPutJoinRequest},
		{s.writer, &s.stDelJoinRequest, qDeleteJoinRequest},
		{s.writer, &s.stDropGroupRequests, qDropGroupRequests},
		{s.writer, &s.stDropUserRequests, qDropUserRequests},
		{s.writer, &s.stAddToken, qAddToken},
		{s.writer, &s.stTrimTokens, qTrimTokens},
		{s.writer, &s.stTouchToken, qTouchToken},
		{s.writer, &s.stDropUserTokens, qDropUserTokens},
		{s.writer, &s.stRevokeTokens, qRevokeTokens},
		{s.writer, &s.stPurgeTokens, qPurgeTokens},
		{s.reader, &s.stPasswordHash, qPasswordHash},
		{s.reader, &s.stKnownUser, qUserKnown},
		{s.reader, &s.stCountUsers, qCountUsers},
		{s.reader, &s.stCountPend, qCountPending},
		{s.reader, &s.stPendingCount, qPendingCount},
		{s.reader, &s.stPending, qPending},
		{s.reader, &s.stLookupCIDs, qLookupCIDs},
		{s.reader, &s.stCursor, qCursor},
		{s.reader, &s.stHistory, qHistory},
		{s.reader, &s.stRelation, qRelation},
		{s.reader, &s.stBlocks, qBlocks},
		{s.reader, &s.stFriends, qFriends},
		{s.reader, &s.stGroupR, qGroup},
		{s.reader, &s.stMemberR, qMember},
		{s.reader, &s.stMembersR, qMembers},
		{s.reader, &s.stUserGroups, qUserGroups},
		{s.reader, &s.stGroupRequests, qGroupRequests},
		{s.reader, &s.stLogAfter, qLogAfter},
		{s.reader, &s.stLogBefore, qLogBefore},
		{s.reader, &s.stGroupLookupCIDs, qGroupLookupCIDs},
		{s.reader, &s.stToken, qToken},
		{s.reader, &s.stUserTokens, qUserTokens},
	} {
		st, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.st = st
		s.stmts = append(s.stmts, st)
	}
	return nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// loadCaches notes the writer's data_version and loads blockers afresh
// (and empties users), reading through q: the writer pool, or a
// transaction on it. The caller holds s.wmu or has the Store to itself.
func (s *Store) loadCaches(ctx context.Context, q querier) error {
	if err := q.QueryRowContext(ctx, "PRAGMA data_version").Scan(&s.dataVersion); err != nil {
		return fmt.Errorf("read data version: %w", err)
	}
	clear(s.users)
	s.blockers, s.allBlock = make(map[string]struct{}), false
	rows, err := q.QueryContext(ctx, qBlockers)
	if err != nil {
		return fmt.Errorf("load blockers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("load blockers: %w", err)
		}
		s.addBlocker(name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load blockers: %w", err)
	}
	return nil
}

// syncCaches, inside a write transaction (which keeps other writers out
// until it ends), reloads the caches if another connection committed
// since they were loaded. The caller holds s.wmu.
func (s *Store) syncCaches(ctx context.Context, tx *sql.Tx) error {
	var v int64
	if err := tx.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return fmt.Errorf("read data version: %w", err)
	}
	if v == s.dataVersion {
		return nil
	}
	return s.loadCaches(ctx, tx)
}

// addBlocker notes that user blocks someone. The caller holds s.wmu.
func (s *Store) addBlocker(user string) {
	if s.allBlock {
		return
	}
	if len(s.blockers) >= maxKnownUsers {
		s.blockers, s.allBlock = nil, true
		return
	}
	s.blockers[user] = struct{}{}
}

// mayBlock reports whether user may block someone: messages to user are
// then inserted with the block check. The caller holds s.wmu.
func (s *Store) mayBlock(user string) bool {
	if s.allBlock {
		return true
	}
	_, ok := s.blockers[user]
	return ok
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
			s.log.Warn("sqlitestore: prune cids", "err", err)
		case n > 0:
			s.log.Info("sqlitestore: pruned cids", "count", n)
		}
	}
}

// Close stops the pruner and closes the database. It waits for a write in
// progress. Calling it again returns the first call's result; every other
// method fails after Close.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.stopPruner != nil {
			s.stopPruner()
			<-s.prunerDone
		}
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if err := s.closeDB(); err != nil {
			s.closeErr = fmt.Errorf("sqlitestore: close: %w", err)
		}
	})
	return s.closeErr
}

// closeDB closes the statements and both pools, readers first so that the
// writer's connection, closing last, checkpoints the WAL.
func (s *Store) closeDB() error {
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	return errors.Join(errs...)
}
