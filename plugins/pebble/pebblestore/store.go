package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/qqchat/qq/plugins"
)

// ErrClosed is returned (wrapped) by every method called after Close.
var ErrClosed = errors.New("store is closed")

const (
	// DefaultCacheSize is the block cache when Options.CacheSize is 0.
	DefaultCacheSize = 128 << 20
	// DefaultMemTableSize is the memtable when Options.MemTableSize is 0.
	DefaultMemTableSize = 64 << 20
	// bloomBitsPerKey is the bloom filter of every level: about 1% false
	// positives, so that a de-duplication miss reads no data block.
	bloomBitsPerKey = 10
	// pruneInterval is how often the background pruner runs.
	pruneInterval = time.Hour
	// recentSize is how many recent direct messages Store.recent
	// remembers.
	recentSize = 1 << 16
	// openMargin is the free space, beyond the size of the WAL files,
	// below which Open opens the database read-only.
	openMargin = 8 << 20
	// maxAcked bounds a user's out-of-order ack set: a batch of acks
	// that would leave more moves the cursor to the newest of them and
	// holds back the entries it passes that are still pending (p keys).
	maxAcked = 64
	// maxKnownUsers bounds Store.known (names known to be live).
	maxKnownUsers = 1 << 20
	// ctxCheckEvery is how many messages or acks a write handles between
	// checks of its context.
	ctxCheckEvery = 64
	// maxInflightWait bounds how long a read waits for a commit whose
	// write was given up (see acquire): far more than an fsync takes.
	maxInflightWait = time.Second
)

// Options configures Open.
type Options struct {
	// Path is the database directory. It is created (mode 0700) if
	// missing.
	Path string
	// NoSync commits without waiting for the WAL's fsync: a Write that
	// returned survives a crash of the process only once Pebble's WAL
	// writer has written it out, and not a power loss. The default (false)
	// fsyncs every commit of a write that must be durable.
	NoSync bool
	// DedupWindow is how long (sender, cid) keys are remembered at least;
	// zero keeps them forever.
	DedupWindow time.Duration
	// CacheSize is Pebble's block cache for data blocks, in bytes
	// (DefaultCacheSize when 0); the cache gets room for two memtables on
	// top, which Pebble charges to it.
	CacheSize int64
	// MemTableSize is Pebble's memtable in bytes (DefaultMemTableSize when
	// 0).
	MemTableSize uint64
	// Now is the clock that timestamps messages; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages, Pebble's too; nil discards
	// them.
	Logger *slog.Logger
}

// Store is a [plugins.Storage] on a Pebble database. Create it with Open.
type Store struct {
	db     *pebble.DB
	now    func() time.Time
	log    *slog.Logger
	window time.Duration
	// syncOpt is the write option of commits that must be durable.
	syncOpt *pebble.WriteOptions
	// legacyBuckets are de-duplication buckets found at Open that the
	// current window setting does not write (the forever bucket with a
	// window, day buckets without one): lookups consult them too, so that
	// changing dedup_window forgets no key early. Set by Open only.
	legacyBuckets []uint32

	// dir is the database directory; reserve is the free space below
	// which writes that add data are refused (0: none; see roomForData).
	dir     string
	reserve int64

	// wmu serialises every write: one batch commits at a time, in the
	// order seqs were assigned. It guards the fields below it.
	wmu     sync.Mutex
	lastSeq uint64 // the largest seq assigned (durable or not)
	lastTS  atomic.Int64
	// known caches names known to be live users; DeleteUser removes the
	// name. At most maxKnownUsers names; cleared when full.
	known map[string]struct{}
	// blockers holds every user who blocks someone (perhaps a few who no
	// longer do: Unblock leaves them until the next Open), so that a
	// message to anyone else is stored without the block lookup.
	blockers map[string]struct{}
	// cursors caches ack cursors (the c keys) by user, as committed. At
	// most maxKnownUsers; cleared when full.
	cursors map[string]uint64
	// acked holds the out-of-order acks (the a keys), by user: small, as
	// acks mostly come in order and move the cursor instead.
	acked map[string]map[uint64]struct{}
	// held counts the held-back entries (the p keys) by user: pending
	// messages at or below the cursor.
	held map[string]int64
	// recent holds the recipient of direct messages committed since Open,
	// the one of seq at recent[seq%recentSize] (an entry whose seq
	// differs says nothing of seq): an ack of a message delivered lately
	// needs no read to know whose inbox holds it (see settleRecent).
	recent []recentMsg
	// staged collects the writes of a Write without groups.
	staged stagedWrites
	// cids filters the de-duplication lookups of writes.
	cids *cidFilters
	// reqSeq orders friend requests and join requests made in the same
	// millisecond.
	reqSeq uint64
	// lastGroup is the largest group id assigned.
	lastGroup int64
	// beforePublish, when set (by tests), runs after a commit returned
	// and before it is published.
	beforePublish func()
	// lowSpace: the last roomForData found less free space than the
	// reserve.
	lowSpace bool
	// readOnly: the disk was full at Open, so the database was opened
	// read-only; every write is refused with ErrLowSpace.
	readOnly bool
	// broken is set when a commit failed and the in-memory state could
	// not be rebuilt from the database: every later write fails with it.
	broken error

	// inflight is the commit under way, if any.
	inflight atomic.Pointer[inflight]

	// vmu guards the read view and the counts, which change together
	// when a commit is published.
	vmu     sync.RWMutex
	view    *view
	users   int64            // live accounts
	pending map[string]int64 // pending messages per user (only > 0)
	total   int64            // pending messages over all users

	// cmu is held for reading by every read and for writing by Close, so
	// that Close waits for the reads in progress.
	cmu        sync.RWMutex
	closed     atomic.Bool
	closeOnce  sync.Once
	closeErr   error
	stopPruner context.CancelFunc
	prunerDone chan struct{}
}

var _ plugins.Storage = (*Store)(nil)

// recentMsg is a direct message committed: its seq and recipient.
type recentMsg struct {
	seq uint64
	to  string
}

// view is a Pebble snapshot taken after a commit returned: what readers
// see. refs counts the readers using it plus one while it is the
// current view; the last release closes the snapshot.
type view struct {
	snap *pebble.Snapshot
	refs atomic.Int64
}

func (v *view) release() {
	if v.refs.Add(-1) == 0 {
		_ = v.snap.Close()
	}
}

// Open opens (creating if needed) the database at opts.Path, rebuilds the
// in-memory counts, forgets de-duplication keys older than the window and
// starts the hourly pruner, which Close stops.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", opts.Path, err)
	}
	return s, nil
}

func open(ctx context.Context, opts Options) (_ *Store, err error) {
	if opts.Path == "" {
		return nil, errors.New("empty path")
	}
	if opts.DedupWindow < 0 {
		return nil, fmt.Errorf("negative dedup window %v", opts.DedupWindow)
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	fsSize, avail, err := diskSpace(path)
	if err != nil {
		fsSize, avail = 0, -1 // unknown: no reserve
	}
	s := &Store{
		dir:      path,
		now:      opts.Now,
		log:      opts.Logger,
		window:   opts.DedupWindow,
		syncOpt:  pebble.Sync,
		known:    make(map[string]struct{}),
		blockers: make(map[string]struct{}),
		acked:    make(map[string]map[uint64]struct{}),
		held:     make(map[string]int64),
		cursors:  make(map[string]uint64),
		pending:  make(map[string]int64),
		cids:     newCIDFilters(),
		recent:   make([]recentMsg, recentSize),
	}
	if opts.NoSync {
		s.syncOpt = pebble.NoSync
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	cacheSize := opts.CacheSize
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	memTable := opts.MemTableSize
	if memTable == 0 {
		memTable = DefaultMemTableSize
	}
	s.reserve = reserveFor(fsSize, memTable)
	// Pebble charges its memtables (the live one and one being flushed)
	// to the block cache: without room for them, a cache the size of a
	// few memtables holds almost no data blocks (a layout benchmark saw
	// an 8% hit rate and three times the CPU per message).
	cache := pebble.NewCache(cacheSize + 2*int64(memTable))
	defer cache.Unref() // the DB holds its own reference
	po := &pebble.Options{
		Cache:              cache,
		MemTableSize:       memTable,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{s.log},
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	}
	if avail >= 0 && avail < walBytes(path)+openMargin {
		// A (nearly) full disk: opening for writes would replay the WAL
		// into a memtable and flush it (an sstable up to the WAL's size),
		// which Pebble retries for as long as there is no space: Open
		// would hang. Serve reads from what is
		// on disk (the WAL replayed in memory) and refuse writes, as a
		// store that runs short of space while it runs does, instead of
		// serving nothing until space comes back.
		s.log.Error("pebblestore: the disk is full: opening read-only; writes are refused until the store is opened again with space free (restart qqd)", "dir", path, "free_bytes", avail)
		po.ReadOnly = true
		s.readOnly = true
	}
	s.db, err = pebble.Open(path, po)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = s.db.Close()
		}
	}()
	if err := s.load(); err != nil {
		return nil, err
	}
	s.log.Info("pebblestore: disk space reserve", "dir", s.dir, "filesystem_bytes", fsSize, "reserve_bytes", s.reserve)
	buckets, err := s.dedupBuckets()
	if err != nil {
		return nil, fmt.Errorf("load de-duplication buckets: %w", err)
	}
	for _, b := range buckets {
		if (b == foreverBucket) != (s.window == 0) {
			s.legacyBuckets = append(s.legacyBuckets, b)
		}
	}
	s.view = &view{snap: s.db.NewSnapshot()}
	s.view.refs.Store(1)
	defer func() {
		if err != nil {
			s.view.release()
		}
	}()

	if s.readOnly {
		if err := s.cids.load(s.db, buckets); err != nil {
			return nil, fmt.Errorf("load de-duplication filters: %w", err)
		}
		return s, nil // no conversion, pruning or pruner: nothing may be written
	}
	if err := s.holdBackLarge(ctx); err != nil {
		return nil, fmt.Errorf("hold back pending entries: %w", err)
	}
	if s.window > 0 {
		if err := s.PruneCIDs(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// Not fatal: the keys are kept longer than the window.
			s.log.Warn("pebblestore: prune cids at open", "err", err)
		}
	}
	// After the prune, so as not to read the keys it removed.
	if buckets, err = s.dedupBuckets(); err != nil {
		return nil, fmt.Errorf("load de-duplication buckets: %w", err)
	}
	if err := s.cids.load(s.db, buckets); err != nil {
		return nil, fmt.Errorf("load de-duplication filters: %w", err)
	}
	if s.window > 0 {
		pctx, cancel := context.WithCancel(context.Background())
		s.stopPruner = cancel
		s.prunerDone = make(chan struct{})
		go s.pruneLoop(pctx)
	}
	return s, nil
}

// load reads what the store keeps in memory from the database: the last
// seq and ts, the account count, the out-of-order acks, the pending
// counts, the blockers, the request order and the last group id. Its cost grows with the number of users and of pending
// messages, not with the history. The caller holds s.wmu or has the
// Store to itself.
func (s *Store) load() error {
	r := s.db
	if v, err := get(r, metaKey); err != nil {
		return fmt.Errorf("read last seq: %w", err)
	} else if v != nil {
		seq, ts, err := decodeSeqMeta(v)
		if err != nil {
			return err
		}
		s.lastSeq = seq
		s.lastTS.Store(ts)
	}

	s.users = 0
	var live []string
	if err := scan(r, []byte{pUser}, func(k, v []byte) error {
		u, err := decodeUser(v)
		if err != nil {
			return err
		}
		if !u.Deleted {
			s.users++
			live = append(live, string(k[1:]))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("load users: %w", err)
	}

	clear(s.acked)
	if err := scan(r, []byte{pAcked}, func(k, _ []byte) error {
		user, seq, err := splitUserSeq(k)
		if err != nil {
			return err
		}
		set := s.acked[user]
		if set == nil {
			set = make(map[uint64]struct{})
			s.acked[user] = set
		}
		set[seq] = struct{}{}
		return nil
	}); err != nil {
		return fmt.Errorf("load acks: %w", err)
	}

	// Pending: per live user, the held-back entries, and the inbox
	// entries above the cursor that are not acked. A deleted user has
	// none of the first and a cursor past their inbox.
	clear(s.held)
	if err := scan(r, []byte{pHeld}, func(k, _ []byte) error {
		user, _, err := splitUserSeq(k)
		if err != nil {
			return err
		}
		s.held[user]++
		return nil
	}); err != nil {
		return fmt.Errorf("load held-back entries: %w", err)
	}
	clear(s.pending)
	s.total = 0
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{pInbox}, UpperBound: []byte{pInbox + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for _, user := range live {
		cursor, err := getCursor(r, user)
		if err != nil {
			return fmt.Errorf("load pending: %w", err)
		}
		prefix := lpPrefix(pInbox, user)
		n := s.held[user]
		for ok := it.SeekGE(appendSeq(bytes.Clone(prefix), cursor+1)); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
			if _, acked := s.acked[user][seqSuffix(it.Key())]; !acked {
				n++
			}
		}
		if n > 0 {
			s.pending[user] = n
			s.total += n
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("load pending: %w", err)
	}

	clear(s.blockers)
	if err := scan(r, []byte{pBlock}, func(k, _ []byte) error {
		blocker, _, err := splitLP(k[1:])
		if err != nil {
			return err
		}
		s.blockers[blocker] = struct{}{}
		return nil
	}); err != nil {
		return fmt.Errorf("load blocks: %w", err)
	}

	s.reqSeq = 0
	if err := scan(r, []byte{pRequest}, func(_, v []byte) error {
		req, err := decodeRequest(v)
		if err != nil {
			return err
		}
		s.reqSeq = max(s.reqSeq, req.Seq)
		return nil
	}); err != nil {
		return fmt.Errorf("load friend requests: %w", err)
	}
	if err := scan(r, []byte{pJoinReq}, func(_, v []byte) error {
		if len(v) != 16 {
			return errCorrupt
		}
		s.reqSeq = max(s.reqSeq, seqSuffix(v))
		return nil
	}); err != nil {
		return fmt.Errorf("load join requests: %w", err)
	}
	s.lastGroup = 0
	if err := lastKey(r, []byte{pGroup}, func(k []byte) { s.lastGroup = int64(seqSuffix(k)) }); err != nil {
		return fmt.Errorf("load groups: %w", err)
	}

	clear(s.known)
	clear(s.cursors)
	return nil
}

// walBytes is the size of the WAL files in the database directory dir
// (0 if it cannot be read): what opening it may flush.
func walBytes(dir string) int64 {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var n int64
	for _, l := range logs {
		if fi, err := os.Stat(l); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// holdBackLarge shrinks the out-of-order ack sets that hold more than
// maxAcked acks, as a store written before held-back entries existed
// may have (or one whose last Write failed before it could): the cursor
// of each such user moves to its newest ack, holding back what is still
// pending (see holdBack). A few users per commit, so the batches stay
// small whatever the sets hold.
func (s *Store) holdBackLarge(ctx context.Context) error {
	var users []string
	for u, set := range s.acked {
		if len(set) > maxAcked {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil
	}
	slices.Sort(users)
	start, total := time.Now(), len(users)
	for len(users) > 0 {
		chunk := users[:min(len(users), 16)]
		users = users[len(chunk):]
		if err := s.writing(ctx, "hold back", func(b *pebble.Batch, d *delta) error {
			it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pInbox}, UpperBound: []byte{pInbox + 1}})
			if err != nil {
				return err
			}
			defer it.Close()
			for _, u := range chunk {
				cursor, err := s.cursorOf(u)
				if err != nil {
					return err
				}
				set := s.acked[u]
				above := slices.Sorted(maps.Keys(set))
				if err := holdBack(s.db, it, b, d, u, cursor, set, above); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	s.log.Info("pebblestore: held back the pending entries below large out-of-order ack sets", "users", total, "took", time.Since(start))
	return nil
}

// dedupBuckets lists the de-duplication buckets that hold keys, with one
// seek per bucket.
func (s *Store) dedupBuckets() ([]uint32, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pDedup}, UpperBound: []byte{pDedup + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []uint32
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < 5 {
			return nil, errCorrupt
		}
		b := uint32(k[1])<<24 | uint32(k[2])<<16 | uint32(k[3])<<8 | uint32(k[4])
		out = append(out, b)
		if b == foreverBucket {
			break
		}
		ok = it.SeekGE(bucketKey(b + 1))
	}
	return out, it.Error()
}

// PruneCIDs forgets the de-duplication keys of every bucket older than
// the window, with one range deletion (a message with such a key is
// stored anew). With a zero window it does nothing.
func (s *Store) PruneCIDs(ctx context.Context) error {
	if s.window <= 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("pebblestore: prune cids: %w", ErrClosed)
	}
	cut := dayBucket(s.clock() - s.window.Milliseconds())
	if cut == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(bucketKey(0), bucketKey(cut), nil); err != nil {
		return fmt.Errorf("pebblestore: prune cids: %w", err)
	}
	// Not durable: a prune lost in a crash is done again.
	if _, err := s.commit(ctx, b, pebble.NoSync, nil); err != nil {
		return fmt.Errorf("pebblestore: prune cids: %w", err)
	}
	s.cids.drop(cut)
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
		if err := s.PruneCIDs(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("pebblestore: prune cids", "err", err)
		}
	}
}

// clock is now in unix ms, never less than the last timestamp assigned.
func (s *Store) clock() int64 { return max(s.now().UnixMilli(), s.lastTS.Load()) }

// nextTS returns the timestamp of a new batch: now, but never less than
// the last one assigned. It advances even if the batch then fails, which
// keeps timestamps monotonic if a failed commit did commit. The caller
// holds s.wmu.
func (s *Store) nextTS() int64 {
	ts := s.clock()
	s.lastTS.Store(ts)
	return ts
}

// delta is what a commit changes in the in-memory state, applied when the
// commit returns.
type delta struct {
	users   int64
	pending map[string]int64
	// acks changes the out-of-order ack sets of its users.
	acks map[string]*ackDelta
	// cursors: new ack cursors.
	cursors map[string]uint64
	// held changes the counts of held-back entries by user.
	held map[string]int64
	// known: names to forget (deleted accounts).
	forget []string
	// delivered: the direct messages stored, for Store.recent.
	delivered []recentMsg
}

// ackDelta is what a commit changes in one user's out-of-order ack set:
// clear empties it first, then del leaves it and add joins it.
type ackDelta struct {
	clear    bool
	del, add []uint64
}

// ackDelta returns the change to user's out-of-order ack set, made on
// first use.
func (d *delta) ackDelta(user string) *ackDelta {
	if d.acks == nil {
		d.acks = make(map[string]*ackDelta)
	}
	ad := d.acks[user]
	if ad == nil {
		ad = &ackDelta{}
		d.acks[user] = ad
	}
	return ad
}

func (d *delta) setCursor(user string, c uint64) {
	if d.cursors == nil {
		d.cursors = make(map[string]uint64)
	}
	d.cursors[user] = c
}

func (d *delta) addHeld(user string, n int64) {
	if d.held == nil {
		d.held = make(map[string]int64)
	}
	d.held[user] += n
}

func (d *delta) addPending(user string, n int64) {
	if d.pending == nil {
		d.pending = make(map[string]int64)
	}
	d.pending[user] += n
}

// commit commits b with opts and publishes it: a new read view and the
// counts of d, together. The caller holds s.wmu. It gives up, with
// nothing written (begun false), when ctx has ended: the last check, for
// a commit once begun cannot be called back. When the commit fails, the
// batch may have been applied: the in-memory state is rebuilt from the
// database, and if that fails too the store refuses further writes.
//
// While it runs, s.inflight names it: a read that begins after ctx ended
// (the caller gave up on the outcome) waits for it (see acquire).
func (s *Store) commit(ctx context.Context, b *pebble.Batch, opts *pebble.WriteOptions, d *delta) (begun bool, err error) {
	f := &inflight{ctx: ctx, done: make(chan struct{})}
	s.inflight.Store(f)
	defer func() {
		s.inflight.Store(nil)
		close(f.done)
	}()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := b.Commit(opts); err != nil {
		s.log.Warn("pebblestore: commit failed", "err", err)
		s.recover()
		return true, err
	}
	if s.beforePublish != nil {
		s.beforePublish()
	}
	s.publish(d)
	return true, nil
}

// inflight is a commit under way, and the context of the write it
// commits.
type inflight struct {
	ctx  context.Context
	done chan struct{} // closed once it is published (or failed)
}

// recover rebuilds the in-memory state after a failed commit and
// publishes what the database holds. The caller holds s.wmu.
func (s *Store) recover() {
	lastSeq, lastTS := s.lastSeq, s.lastTS.Load()
	s.vmu.Lock()
	err := s.load()
	s.vmu.Unlock()
	s.lastSeq = max(s.lastSeq, lastSeq)
	if s.lastTS.Load() < lastTS {
		s.lastTS.Store(lastTS)
	}
	if err != nil {
		s.broken = fmt.Errorf("in-memory state lost after a failed commit: %w", err)
		s.log.Error("pebblestore: cannot rebuild the in-memory state; writes refused until restart", "err", err)
		return
	}
	s.publish(nil)
}

// publish makes everything committed so far visible to readers, with
// d's changes of the counts. The caller holds s.wmu.
func (s *Store) publish(d *delta) {
	nv := &view{snap: s.db.NewSnapshot()}
	nv.refs.Store(1)
	s.vmu.Lock()
	old := s.view
	s.view = nv
	if d != nil {
		s.users += d.users
		for u, n := range d.pending {
			if n == 0 {
				continue
			}
			v := s.pending[u] + n
			if v <= 0 {
				delete(s.pending, u)
			} else {
				s.pending[u] = v
			}
			s.total += n
		}
	}
	s.vmu.Unlock()
	if d != nil {
		for u, ad := range d.acks {
			if ad.clear {
				delete(s.acked, u)
			}
			set := s.acked[u]
			for _, seq := range ad.del {
				delete(set, seq)
			}
			if len(ad.add) > 0 && set == nil {
				set = make(map[uint64]struct{}, len(ad.add))
				s.acked[u] = set
			}
			for _, seq := range ad.add {
				set[seq] = struct{}{}
			}
			if len(set) == 0 {
				delete(s.acked, u)
			}
		}
		for u, n := range d.held {
			if v := s.held[u] + n; v <= 0 {
				delete(s.held, u)
			} else {
				s.held[u] = v
			}
		}
		for u, c := range d.cursors {
			if len(s.cursors) >= maxKnownUsers {
				clear(s.cursors)
			}
			s.cursors[u] = c
		}
		for _, u := range d.forget {
			delete(s.known, u)
		}
		for _, m := range d.delivered {
			s.recent[m.seq%recentSize] = m
		}
	}
	old.release()
}

// acquire returns the current read view, which the caller releases, and
// a function to call when the read is done; or ErrClosed.
//
// If a commit is under way whose write's context has ended, acquire
// first waits for it, for at most maxInflightWait. Out of process, qqd gives up on a Write whose
// deadline passed (its outcome unknown) while the plugin may still be
// committing it, then reads (LookupCIDs, to settle the outcome; the
// state for its next calls): those reads then see the commit if it
// lands, instead of a state it is about to change. Other reads never
// wait for a write.
func (s *Store) acquire(what string) (*view, func(), error) {
	if f := s.inflight.Load(); f != nil && f.ctx.Err() != nil {
		// At most maxInflightWait: a commit that takes longer (a stalled
		// disk) must not stall the reads too.
		t := time.NewTimer(maxInflightWait)
		select {
		case <-f.done:
		case <-t.C:
		}
		t.Stop()
	}
	s.cmu.RLock()
	if s.closed.Load() {
		s.cmu.RUnlock()
		return nil, nil, fmt.Errorf("pebblestore: %s: %w", what, ErrClosed)
	}
	s.vmu.RLock()
	v := s.view
	v.refs.Add(1)
	s.vmu.RUnlock()
	return v, func() { v.release(); s.cmu.RUnlock() }, nil
}

// Compact compacts the whole database and returns when it is done. A
// store filled in bulk (qqbench fill) owes Pebble its compactions, which
// it would otherwise pay for in the first minutes of serving; a bench run
// on such a copy measures that debt, not the steady state.
func (s *Store) Compact(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		return fmt.Errorf("pebblestore: compact: %w", err)
	}
	return nil
}

// Close stops the pruner and closes the database. It waits for the write
// and the reads in progress. Calling it again returns the first call's
// result; every other method fails after Close.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.stopPruner != nil {
			s.stopPruner()
			<-s.prunerDone
		}
		s.wmu.Lock()
		defer s.wmu.Unlock()
		s.cmu.Lock()
		defer s.cmu.Unlock()
		s.view.release()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("pebblestore: close: %w", err)
		}
	})
	return s.closeErr
}

// ---- reading helpers ------------------------------------------------------

// get returns a copy of the value of k in r, or nil when there is none.
func get(r pebble.Reader, k []byte) ([]byte, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	return out, closer.Close()
}

// has reports whether k is in r.
func has(r pebble.Reader, k []byte) (bool, error) {
	_, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// scan calls fn for every key with prefix p in r, in order. k and v are
// valid during the call only.
func scan(r pebble.Reader, p []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// lastKey calls fn with the last key with prefix p in r, if any.
func lastKey(r pebble.Reader, p []byte, fn func(k []byte)) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	if it.Last() {
		fn(it.Key())
	}
	return it.Close()
}

// splitLP splits a length-prefixed name off the front of b.
func splitLP(b []byte) (string, []byte, error) {
	r := reader{b: b}
	name := r.bytes()
	if r.err != nil {
		return "", nil, r.err
	}
	return string(name), r.b, nil
}

// splitUserSeq splits a key <prefix><lp user><seq>.
func splitUserSeq(k []byte) (string, uint64, error) {
	user, rest, err := splitLP(k[1:])
	if err != nil || len(rest) != 8 {
		return "", 0, errCorrupt
	}
	return user, seqSuffix(rest), nil
}

// getCursor returns user's ack cursor in r (0 when none).
func getCursor(r pebble.Reader, user string) (uint64, error) {
	v, err := get(r, key(pCursor, user))
	if err != nil || v == nil {
		return 0, err
	}
	return decodeU64(v)
}

// pebbleLogger sends Pebble's log to the store's logger.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.log.Error(msg)
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
