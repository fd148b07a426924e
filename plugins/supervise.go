package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// exitPoll is how often a Supervisor checks that its process still runs.
const exitPoll = 250 * time.Millisecond

// ErrPluginDown is returned by a supervised plugin's calls while its
// process is not running (crashed, hung and killed, or restarting).
var ErrPluginDown = errors.New("plugin is down")

// SuperviseOptions tunes a Supervisor.
type SuperviseOptions struct {
	// BackoffMin and BackoffMax bound the wait before a restart; it
	// doubles after each failed start and resets once a process has run
	// for a minute. Defaults 200ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// HangLimit is how many calls in a row may hit their deadline before
	// the process is taken for hung, killed and restarted. Default 2.
	HangLimit int
	// OnRestart, if set, is called after each restart attempt with its
	// outcome (for metrics).
	OnRestart func(name string, err error)
}

// Supervisor keeps one plugin process running: it starts it, and when the
// process dies or hangs it kills it and starts a new one with backoff.
// (go-plugin does not restart plugins: each start is a new client.) Calls
// made while no process runs fail at once with ErrPluginDown; the host
// applies its policy (storage: unavailable; filters: on_failure).
type Supervisor struct {
	spec Spec
	opts SuperviseOptions
	log  *slog.Logger

	mu      sync.Mutex
	proc    *Process // nil while down
	social  bool     // proc, or the last process while down, has Social
	groups  bool     // and Groups
	tokens  bool     // and Tokens
	backup  bool     // and Backup
	stats   bool     // and Stats
	since   time.Time
	lastErr error
	closed  bool
	wake    chan struct{} // restart requested

	restarts atomic.Uint64
	hangs    atomic.Int64 // consecutive deadline failures
	loopDone chan struct{}
	stop     context.CancelFunc
}

// Supervise starts the plugin described by spec and supervises it. The
// first start happens before Supervise returns and its failure is returned
// (a plugin that cannot start with its configuration is an operator error,
// not something to retry).
func Supervise(ctx context.Context, spec Spec, opts SuperviseOptions) (*Supervisor, error) {
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 200 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(30*time.Second, opts.BackoffMin)
	}
	if opts.HangLimit <= 0 {
		opts.HangLimit = 2
	}
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	loopCtx, stop := context.WithCancel(context.Background())
	s := &Supervisor{
		spec: spec, opts: opts, log: log.With("plugin", spec.Name),
		proc: p, social: has(p, SocialOf), groups: has(p, GroupsOf), tokens: has(p, TokensOf), backup: has(p, BackupOf), stats: has(p, StatsOf), since: time.Now(),
		wake: make(chan struct{}, 1), loopDone: make(chan struct{}), stop: stop,
	}
	go s.loop(loopCtx)
	return s, nil
}

// Name is the plugin instance's name.
func (s *Supervisor) Name() string { return s.spec.Name }

// Status describes the supervised process.
type Status struct {
	Name     string
	Kind     Kind
	Up       bool
	Pid      int
	Since    time.Time // start of the current process, or of the outage
	Restarts uint64
	LastErr  string
}

// Status reports the current state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Name: s.spec.Name, Kind: s.spec.Kind, Up: s.proc != nil, Since: s.since, Restarts: s.restarts.Load()}
	if s.proc != nil {
		st.Pid = s.proc.Pid()
	}
	if s.lastErr != nil {
		st.LastErr = s.lastErr.Error()
	}
	return st
}

// Close stops supervising and kills the process. Calls after Close fail
// with ErrPluginDown.
func (s *Supervisor) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	s.stop()
	<-s.loopDone
	if p != nil {
		p.Kill()
	}
}

// current returns the running process, or nil.
func (s *Supervisor) current() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && s.proc.Exited() {
		s.downLocked(s.proc, errors.New("process exited"))
	}
	return s.proc
}

// failed is told the outcome of a call on p; it decides whether p is dead
// or hung and must be replaced.
func (s *Supervisor) failed(ctx context.Context, p *Process, err error) {
	if err == nil {
		s.hangs.Store(0)
		return
	}
	switch {
	case p.Exited():
		s.down(p, fmt.Errorf("process exited: %w", err))
	case timedOut(ctx):
		if s.hangs.Add(1) >= int64(s.opts.HangLimit) {
			s.down(p, fmt.Errorf("%d calls in a row hit their deadline: taken for hung", s.opts.HangLimit))
		}
	}
}

// timedOut reports whether a call that failed with ctx ran into its
// deadline. The plugin side may notice the deadline (from the gRPC
// timeout header) and cancel the stream a moment before the local timer
// fires, so "nearly expired" counts too.
func timedOut(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) < 50*time.Millisecond
}

func (s *Supervisor) down(p *Process, why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.downLocked(p, why)
}

// downLocked takes p out of service (if it still is), kills it in the
// background and wakes the restart loop.
func (s *Supervisor) downLocked(p *Process, why error) {
	if s.proc != p || p == nil {
		return
	}
	s.proc = nil
	s.since = time.Now()
	s.lastErr = why
	s.hangs.Store(0)
	s.log.Error("plugin down; restarting", "err", why)
	go p.Kill()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Supervisor) loop(ctx context.Context) {
	defer close(s.loopDone)
	backoff := s.opts.BackoffMin
	// A process that dies between calls is noticed within a tick, not at
	// the next call.
	tick := time.NewTicker(exitPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
			if s.current() != nil {
				continue
			}
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			// current took it down (and queued a wake-up): restart now.
			select {
			case <-s.wake:
			default:
			}
		}
		for {
			s.mu.Lock()
			upFor := time.Since(s.since)
			s.mu.Unlock()
			if upFor > time.Minute {
				backoff = s.opts.BackoffMin
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			p, err := Start(ctx, s.spec)
			s.restarts.Add(1)
			if s.opts.OnRestart != nil {
				s.opts.OnRestart(s.spec.Name, err)
			}
			if err != nil {
				s.mu.Lock()
				s.lastErr = err
				s.mu.Unlock()
				backoff = min(2*backoff, s.opts.BackoffMax)
				s.log.Error("plugin restart failed", "err", err, "next_try_in", backoff)
				continue
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				p.Kill()
				return
			}
			s.proc, s.since = p, time.Now()
			s.social, s.groups, s.tokens, s.backup, s.stats = has(p, SocialOf), has(p, GroupsOf), has(p, TokensOf), has(p, BackupOf), has(p, StatsOf)
			s.mu.Unlock()
			s.log.Info("plugin restarted", "pid", p.Pid(), "restarts", s.restarts.Load())
			backoff = min(2*backoff, s.opts.BackoffMax)
			break
		}
	}
}

// Filter returns a Filter that calls the current process.
func (s *Supervisor) Filter() Filter { return supervisedFilter{s} }

// Storage returns a Storage that calls the current process. Its Close
// closes the Supervisor.
//
// SocialOf on it reports whether the current process has Social (it
// negotiated protocol version 2, and its storage has Social), or, while
// the plugin is down, whether the last one had; the answer can change when
// the process is restarted (the version is negotiated per start). The
// Social it returns calls whatever process is current: while none runs
// its calls fail with ErrPluginDown, and if the current process has no
// Social (a restart brought up an older plugin binary) with an error that
// wraps ErrPluginDown too. GroupsOf and TokensOf on it work the same way;
// BackupOf too, except that a Backup obtained earlier fails with
// ErrBackupUnsupported when the current process cannot make backups.
// StatsOf works as SocialOf does.
func (s *Supervisor) Storage() Storage { return supervisedStorage{s} }

// has reports whether p's storage has the part that of finds (SocialOf,
// GroupsOf, TokensOf, BackupOf, StatsOf).
func has[T any](p *Process, of func(Storage) (T, bool)) bool {
	st := p.Storage()
	if st == nil {
		return false
	}
	_, ok := of(st)
	return ok
}

type supervisedFilter struct{ s *Supervisor }

func (f supervisedFilter) Filter(ctx context.Context, msgs []FilterMessage) ([]Verdict, error) {
	p := f.s.current()
	if p == nil {
		return nil, fmt.Errorf("filter %s: %w", f.s.spec.Name, ErrPluginDown)
	}
	v, err := p.Filter().Filter(ctx, msgs)
	f.s.failed(ctx, p, err)
	return v, err
}

type supervisedStorage struct{ s *Supervisor }

// do runs fn on the current process, or fails with ErrPluginDown when
// there is none.
func (st supervisedStorage) do(ctx context.Context, fn func(Storage) error) error {
	p := st.s.current()
	if p == nil {
		return fmt.Errorf("storage %s: %w", st.s.spec.Name, ErrPluginDown)
	}
	err := fn(p.Storage())
	st.s.failed(ctx, p, failure(err))
	return err
}

// failure is err unless it is one of the contract's answers (a sentinel),
// which are the plugin working, not failing.
func failure(err error) error {
	for _, answer := range []error{
		ErrUserExists, ErrUnknownUser, ErrBadCursor, ErrBlocked, ErrNotFriends, ErrNoRequest,
		ErrNoGroup, ErrNotMember, ErrNotAllowed, ErrMuted, ErrGroupFull, ErrAlreadyMember, ErrGroupLimit,
		ErrNoToken, ErrTokenExists,
	} {
		if errors.Is(err, answer) {
			return nil
		}
	}
	return err
}

func (st supervisedStorage) CreateUser(ctx context.Context, user, hash string) error {
	return st.do(ctx, func(s Storage) error { return s.CreateUser(ctx, user, hash) })
}

func (st supervisedStorage) PasswordHash(ctx context.Context, user string) (h string, err error) {
	err = st.do(ctx, func(s Storage) error { h, err = s.PasswordHash(ctx, user); return err })
	return h, err
}

func (st supervisedStorage) SetPasswordHash(ctx context.Context, user, hash string) error {
	return st.do(ctx, func(s Storage) error { return s.SetPasswordHash(ctx, user, hash) })
}

func (st supervisedStorage) DeleteUser(ctx context.Context, user string) (n int64, err error) {
	err = st.do(ctx, func(s Storage) error { n, err = s.DeleteUser(ctx, user); return err })
	return n, err
}

func (st supervisedStorage) CountUsers(ctx context.Context) (n int64, err error) {
	err = st.do(ctx, func(s Storage) error { n, err = s.CountUsers(ctx); return err })
	return n, err
}

func (st supervisedStorage) CountPending(ctx context.Context) (n int64, err error) {
	err = st.do(ctx, func(s Storage) error { n, err = s.CountPending(ctx); return err })
	return n, err
}

func (st supervisedStorage) Write(ctx context.Context, b *WriteBatch) (res []AppendResult, err error) {
	err = st.do(ctx, func(s Storage) error { res, err = s.Write(ctx, b); return err })
	var we *WriteError
	if err != nil && !errors.As(err, &we) {
		// Down before the call was made, nothing was written; any other
		// failure leaves the outcome unknown.
		err = &WriteError{MaybeWritten: !errors.Is(err, ErrPluginDown), Err: err}
	}
	return res, err
}

// WriteOverlap implements WriteOverlapper: plugin processes order
// overlapping Writes.
func (st supervisedStorage) WriteOverlap() int { return writeOverlap }

// StartWrite implements WriteOverlapper on the current process.
func (st supervisedStorage) StartWrite(ctx context.Context, b *WriteBatch) func() ([]AppendResult, error) {
	p := st.s.current()
	if p == nil {
		return failedWrite(&WriteError{MaybeWritten: false, Err: fmt.Errorf("storage %s: %w", st.s.spec.Name, ErrPluginDown)})
	}
	o, ok := p.Storage().(WriteOverlapper)
	if !ok {
		res, err := st.Write(ctx, b)
		return func() ([]AppendResult, error) { return res, err }
	}
	wait := o.StartWrite(ctx, b)
	return func() ([]AppendResult, error) {
		res, err := wait()
		st.s.failed(ctx, p, err)
		return res, err
	}
}

func (st supervisedStorage) LookupCIDs(ctx context.Context, keys []CIDKey) (res []AppendResult, err error) {
	err = st.do(ctx, func(s Storage) error { res, err = s.LookupCIDs(ctx, keys); return err })
	return res, err
}

func (st supervisedStorage) PendingCount(ctx context.Context, user string) (n int64, err error) {
	err = st.do(ctx, func(s Storage) error { n, err = s.PendingCount(ctx, user); return err })
	return n, err
}

func (st supervisedStorage) Pending(ctx context.Context, user string, limit int) (m []protocol.Message, more bool, err error) {
	err = st.do(ctx, func(s Storage) error { m, more, err = s.Pending(ctx, user, limit); return err })
	return m, more, err
}

func (st supervisedStorage) History(ctx context.Context, user, with, before string, limit int) (m []protocol.Message, more bool, err error) {
	err = st.do(ctx, func(s Storage) error { m, more, err = s.History(ctx, user, with, before, limit); return err })
	return m, more, err
}

func (st supervisedStorage) Close() error {
	st.s.Close()
	return nil
}

// Social implements the interface SocialOf asks; see Supervisor.Storage.
func (st supervisedStorage) Social() (Social, bool) {
	st.s.mu.Lock()
	ok := st.s.social
	st.s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return supervisedSocial(st), true
}

// supervisedSocial is the Social of the current process.
type supervisedSocial struct{ s *Supervisor }

var _ Social = supervisedSocial{}

// do runs fn on the current process's Social, or fails with (an error
// wrapping) ErrPluginDown when there is none.
func (ss supervisedSocial) do(ctx context.Context, fn func(Social) error) error {
	p := ss.s.current()
	if p == nil {
		return fmt.Errorf("storage %s: %w", ss.s.spec.Name, ErrPluginDown)
	}
	soc, ok := SocialOf(p.Storage())
	if !ok {
		return fmt.Errorf("storage %s: the running plugin process (protocol version %d) does not keep friendships: %w",
			ss.s.spec.Name, p.ProtocolVersion(), ErrPluginDown)
	}
	err := fn(soc)
	ss.s.failed(ctx, p, failure(err))
	return err
}

func (ss supervisedSocial) RequestFriend(ctx context.Context, from, to, note string, ts int64) (became bool, err error) {
	err = ss.do(ctx, func(s Social) error { became, err = s.RequestFriend(ctx, from, to, note, ts); return err })
	return became, err
}

func (ss supervisedSocial) AnswerFriendRequest(ctx context.Context, user, from string, accept bool, ts int64) error {
	return ss.do(ctx, func(s Social) error { return s.AnswerFriendRequest(ctx, user, from, accept, ts) })
}

func (ss supervisedSocial) CancelFriendRequest(ctx context.Context, from, to string) error {
	return ss.do(ctx, func(s Social) error { return s.CancelFriendRequest(ctx, from, to) })
}

func (ss supervisedSocial) RemoveFriend(ctx context.Context, user, friend string) error {
	return ss.do(ctx, func(s Social) error { return s.RemoveFriend(ctx, user, friend) })
}

func (ss supervisedSocial) Friends(ctx context.Context, user string) (l FriendList, err error) {
	err = ss.do(ctx, func(s Social) error { l, err = s.Friends(ctx, user); return err })
	return l, err
}

func (ss supervisedSocial) Block(ctx context.Context, user, target string, ts int64) error {
	return ss.do(ctx, func(s Social) error { return s.Block(ctx, user, target, ts) })
}

func (ss supervisedSocial) Unblock(ctx context.Context, user, target string) error {
	return ss.do(ctx, func(s Social) error { return s.Unblock(ctx, user, target) })
}

func (ss supervisedSocial) Blocks(ctx context.Context, user string) (users []string, err error) {
	err = ss.do(ctx, func(s Social) error { users, err = s.Blocks(ctx, user); return err })
	return users, err
}

func (ss supervisedSocial) Relation(ctx context.Context, a, b string) (r Relation, err error) {
	err = ss.do(ctx, func(s Social) error { r, err = s.Relation(ctx, a, b); return err })
	return r, err
}

// Groups implements the interface GroupsOf asks; see Supervisor.Storage.
func (st supervisedStorage) Groups() (Groups, bool) {
	st.s.mu.Lock()
	ok := st.s.groups
	st.s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return supervisedGroups(st), true
}

// supervisedGroups is the Groups of the current process.
type supervisedGroups struct{ s *Supervisor }

var _ Groups = supervisedGroups{}

// do runs fn on the current process's Groups, or fails with (an error
// wrapping) ErrPluginDown when there is none.
func (sg supervisedGroups) do(ctx context.Context, fn func(Groups) error) error {
	p := sg.s.current()
	if p == nil {
		return fmt.Errorf("storage %s: %w", sg.s.spec.Name, ErrPluginDown)
	}
	g, ok := GroupsOf(p.Storage())
	if !ok {
		return fmt.Errorf("storage %s: the running plugin process (protocol version %d) does not keep groups: %w",
			sg.s.spec.Name, p.ProtocolVersion(), ErrPluginDown)
	}
	err := fn(g)
	sg.s.failed(ctx, p, failure(err))
	return err
}

func (sg supervisedGroups) CreateGroup(ctx context.Context, owner, name string, policy GroupPolicy, history GroupHistory, ts int64, limits GroupLimits) (info GroupInfo, err error) {
	err = sg.do(ctx, func(g Groups) error {
		info, err = g.CreateGroup(ctx, owner, name, policy, history, ts, limits)
		return err
	})
	return info, err
}

func (sg supervisedGroups) Group(ctx context.Context, id int64) (info GroupInfo, err error) {
	err = sg.do(ctx, func(g Groups) error { info, err = g.Group(ctx, id); return err })
	return info, err
}

func (sg supervisedGroups) UserGroups(ctx context.Context, user string) (gs []UserGroup, err error) {
	err = sg.do(ctx, func(g Groups) error { gs, err = g.UserGroups(ctx, user); return err })
	return gs, err
}

func (sg supervisedGroups) Members(ctx context.Context, id int64, after string, limit int) (ms []Member, more bool, err error) {
	err = sg.do(ctx, func(g Groups) error { ms, more, err = g.Members(ctx, id, after, limit); return err })
	return ms, more, err
}

func (sg supervisedGroups) GroupOp(ctx context.Context, op GroupOp) (r GroupOpResult, err error) {
	err = sg.do(ctx, func(g Groups) error { r, err = g.GroupOp(ctx, op); return err })
	return r, err
}

func (sg supervisedGroups) JoinRequests(ctx context.Context, id int64) (rs []JoinRequest, err error) {
	err = sg.do(ctx, func(g Groups) error { rs, err = g.JoinRequests(ctx, id); return err })
	return rs, err
}

func (sg supervisedGroups) Log(ctx context.Context, id int64, user string, after, before int64, limit int) (es []GroupEntry, more bool, err error) {
	err = sg.do(ctx, func(g Groups) error { es, more, err = g.Log(ctx, id, user, after, before, limit); return err })
	return es, more, err
}

// Tokens implements the interface TokensOf asks; see Supervisor.Storage.
func (st supervisedStorage) Tokens() (Tokens, bool) {
	st.s.mu.Lock()
	ok := st.s.tokens
	st.s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return supervisedTokens(st), true
}

// supervisedTokens is the Tokens of the current process.
type supervisedTokens struct{ s *Supervisor }

var _ Tokens = supervisedTokens{}

// do runs fn on the current process's Tokens, or fails with (an error
// wrapping) ErrPluginDown when there is none.
func (sk supervisedTokens) do(ctx context.Context, fn func(Tokens) error) error {
	p := sk.s.current()
	if p == nil {
		return fmt.Errorf("storage %s: %w", sk.s.spec.Name, ErrPluginDown)
	}
	tk, ok := TokensOf(p.Storage())
	if !ok {
		return fmt.Errorf("storage %s: the running plugin process (protocol version %d) does not keep resume tokens: %w",
			sk.s.spec.Name, p.ProtocolVersion(), ErrPluginDown)
	}
	err := fn(tk)
	sk.s.failed(ctx, p, failure(err))
	return err
}

func (sk supervisedTokens) AddToken(ctx context.Context, t Token, keep int) error {
	return sk.do(ctx, func(tk Tokens) error { return tk.AddToken(ctx, t, keep) })
}

func (sk supervisedTokens) Token(ctx context.Context, id string) (t Token, err error) {
	err = sk.do(ctx, func(tk Tokens) error { t, err = tk.Token(ctx, id); return err })
	return t, err
}

func (sk supervisedTokens) TouchTokens(ctx context.Context, uses []TokenUse) error {
	return sk.do(ctx, func(tk Tokens) error { return tk.TouchTokens(ctx, uses) })
}

func (sk supervisedTokens) UserTokens(ctx context.Context, user string) (ts []Token, err error) {
	err = sk.do(ctx, func(tk Tokens) error { ts, err = tk.UserTokens(ctx, user); return err })
	return ts, err
}

func (sk supervisedTokens) RevokeTokens(ctx context.Context, user string, ids []string) (n int64, err error) {
	err = sk.do(ctx, func(tk Tokens) error { n, err = tk.RevokeTokens(ctx, user, ids); return err })
	return n, err
}

func (sk supervisedTokens) PurgeTokens(ctx context.Context, now, idleBefore int64) (n int64, err error) {
	err = sk.do(ctx, func(tk Tokens) error { n, err = tk.PurgeTokens(ctx, now, idleBefore); return err })
	return n, err
}

// BackupSide implements the interface BackupOf asks; see
// Supervisor.Storage.
func (st supervisedStorage) BackupSide() (Backup, bool) {
	st.s.mu.Lock()
	ok := st.s.backup
	st.s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return supervisedBackup(st), true
}

// supervisedBackup is the Backup of the current process.
type supervisedBackup struct{ s *Supervisor }

var _ Backup = supervisedBackup{}

// Backup runs on the current process's Backup; it fails with ErrPluginDown
// when no process runs and with ErrBackupUnsupported when the current one
// cannot make backups. Its failures do not count towards taking the
// plugin for hung (a backup has a deadline of its own, far longer than a
// call's); a process that died during it is noticed, as for any call.
func (sb supervisedBackup) Backup(ctx context.Context, dir string) error {
	p := sb.s.current()
	if p == nil {
		return fmt.Errorf("storage %s: %w", sb.s.spec.Name, ErrPluginDown)
	}
	b, ok := BackupOf(p.Storage())
	if !ok {
		return fmt.Errorf("storage %s (protocol version %d): %w", sb.s.spec.Name, p.ProtocolVersion(), ErrBackupUnsupported)
	}
	err := b.Backup(ctx, dir)
	if err != nil && p.Exited() {
		sb.s.failed(ctx, p, err)
	}
	return err
}

// StatsSide implements the interface StatsOf asks; see Supervisor.Storage.
func (st supervisedStorage) StatsSide() (Stats, bool) {
	st.s.mu.Lock()
	ok := st.s.stats
	st.s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return supervisedStats(st), true
}

// supervisedStats is the Stats of the current process.
type supervisedStats struct{ s *Supervisor }

var _ Stats = supervisedStats{}

// Stats asks the current process; it fails with (an error wrapping)
// ErrPluginDown when there is none or when the current one has no Stats.
// Its failures count towards taking the plugin for hung, as any call's.
func (ss supervisedStats) Stats(ctx context.Context) (StorageStats, error) {
	p := ss.s.current()
	if p == nil {
		return StorageStats{}, fmt.Errorf("storage %s: %w", ss.s.spec.Name, ErrPluginDown)
	}
	sts, ok := StatsOf(p.Storage())
	if !ok {
		return StorageStats{}, fmt.Errorf("storage %s: the running plugin process (protocol version %d) reports no statistics: %w",
			ss.s.spec.Name, p.ProtocolVersion(), ErrPluginDown)
	}
	r, err := sts.Stats(ctx)
	ss.s.failed(ctx, p, failure(err))
	return r, err
}
