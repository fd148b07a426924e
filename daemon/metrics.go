package daemon

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/daemon/monitor"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// This file holds every Prometheus collector of package daemon. They are
// created by New and registered on Deps.Registry; nothing here touches the
// default registry. Label values come from closed sets only: results,
// close reasons, plugin instance names from the configuration, and method
// names. Never user names or remote addresses.

// Label values are typed enums that index arrays of counters (see
// labeled): a typo does not compile, and no value outside the closed set
// can reach a label.

// loginResult is the result label of qqd_logins_total.
type loginResult uint8

const (
	loginOK loginResult = iota
	loginAuthFailed
	loginAlreadyLoggedIn
	loginInvalid
	loginError
	loginRateLimited
)

var loginResultNames = []string{"ok", "auth_failed", "already_logged_in", "invalid", "error", "rate_limited"}

// regResult is the result label of qqd_registrations_total.
type regResult uint8

const (
	regOK regResult = iota
	regExists
	regClosed
	regInvalid
	regError
	regRateLimited
)

var regResultNames = []string{"ok", "exists", "closed", "invalid", "error", "rate_limited"}

// msgResult is the result label of qqd_messages_total.
type msgResult uint8

const (
	msgSent msgResult = iota
	msgQueued
	msgDuplicate
	msgRejected
	msgFilterFailed
	msgUnknownUser
	msgInvalid
	msgFailed
	msgRateLimited
	msgRecipientFull
	msgBlocked
	msgNotFriends
)

var msgResultNames = []string{"sent", "queued", "duplicate", "rejected", "filter_failed", "unknown_user", "invalid",
	"failed", "rate_limited", "recipient_full", "blocked", "not_friends"}

// friendResult is the result label of qqd_friend_requests_total.
type friendResult uint8

const (
	friendPending friendResult = iota
	friendFriends
	friendRefused
	friendInvalid
	friendRateLimited
)

var friendResultNames = []string{"pending", "friends", "refused", "invalid", "rate_limited"}

// gmsgResult is the result label of qqd_group_messages_total.
type gmsgResult uint8

const (
	gmsgStored gmsgResult = iota
	gmsgDuplicate
	gmsgRefused
	gmsgInvalid
	gmsgRateLimited
	gmsgFailed
)

var gmsgResultNames = []string{"stored", "duplicate", "refused", "invalid", "rate_limited", "failed"}

// limitReason is the reason label of qqd_limit_refusals_total: the limit,
// named after its configuration key.
type limitReason uint8

const (
	limitConns limitReason = iota
	limitConnsPerIP
	limitSendRate
	limitAuthIP
	limitAuthAccount
	limitPending
	limitFriendRequests
	limitTyping
	limitGroupsCreated
	limitGroupMembers
	limitGroupsPerUser
	limitGroupMentions
	limitRegisterIP
)

var limitReasonNames = []string{"max_connections", "max_connections_per_ip", "send_rate", "auth_per_ip_per_minute",
	"auth_per_account_per_minute", "max_pending_per_user", "friend_requests_per_day", "typing", "groups_created_per_day",
	"groups_max_members", "groups_max_owned_or_joined", "groups_max_mentions", "register_per_ip_per_minute"}

func (r limitReason) String() string { return limitReasonNames[r] }

// Methods of qqd_plugin_call_* for the storage (plugin="storage").
const (
	mCreateUser = iota
	mPasswordHash
	mSetPasswordHash
	mDeleteUser
	mCountUsers
	mCountPending
	mWrite
	mLookupCIDs
	mPendingCount
	mPending
	mHistory
	mRequestFriend
	mAnswerFriendRequest
	mCancelFriendRequest
	mRemoveFriend
	mFriends
	mBlock
	mUnblock
	mBlocks
	mRelation
	mCreateGroup
	mGroup
	mUserGroups
	mMembers
	mGroupOp
	mJoinRequests
	mLog
	mAddToken
	mToken
	mTouchTokens
	mUserTokens
	mRevokeTokens
	mPurgeTokens
	mStats
	numStorageMethods
)

var storageMethodNames = [numStorageMethods]string{
	mCreateUser:      "CreateUser",
	mPasswordHash:    "PasswordHash",
	mSetPasswordHash: "SetPasswordHash",
	mDeleteUser:      "DeleteUser",
	mCountUsers:      "CountUsers",
	mCountPending:    "CountPending",
	mWrite:           "Write",
	mLookupCIDs:      "LookupCIDs",
	mPendingCount:    "PendingCount",
	mPending:         "Pending",
	mHistory:         "History",

	mRequestFriend:       "RequestFriend",
	mAnswerFriendRequest: "AnswerFriendRequest",
	mCancelFriendRequest: "CancelFriendRequest",
	mRemoveFriend:        "RemoveFriend",
	mFriends:             "Friends",
	mBlock:               "Block",
	mUnblock:             "Unblock",
	mBlocks:              "Blocks",
	mRelation:            "Relation",

	mCreateGroup:  "CreateGroup",
	mGroup:        "Group",
	mUserGroups:   "UserGroups",
	mMembers:      "Members",
	mGroupOp:      "GroupOp",
	mJoinRequests: "JoinRequests",
	mLog:          "Log",

	mAddToken:     "AddToken",
	mToken:        "Token",
	mTouchTokens:  "TouchTokens",
	mUserTokens:   "UserTokens",
	mRevokeTokens: "RevokeTokens",
	mPurgeTokens:  "PurgeTokens",
	mStats:        "Stats",
}

// storagePluginLabel is the plugin label of storage calls.
const storagePluginLabel = "storage"

// metrics are a Server's collectors.
type metrics struct {
	all []prometheus.Collector

	connOpen      prometheus.Gauge
	connClosed    [numCloseReasons]prometheus.Counter
	slowConsumers prometheus.Counter
	logins        monitor.Counters[loginResult]
	registrations monitor.Counters[regResult]
	messages      monitor.Counters[msgResult]
	limited       monitor.Counters[limitReason]
	// The friends, presence and typing extensions.
	friendRequests monitor.Counters[friendResult]
	presencePushes prometheus.Counter
	typingPushes   prometheus.Counter
	// The groups extension.
	groupMessages monitor.Counters[gmsgResult]
	groupFanout   prometheus.Histogram
	groupsCreated prometheus.Counter
	groupOps      prometheus.Counter
	sendDuration  prometheus.Histogram
	receivedBytes prometheus.Counter
	// passwordHashes counts Argon2id computations.
	passwordHashes prometheus.Counter
	// The resume extension.
	resumes       monitor.Counters[loginResult]
	tokensIssued  prometheus.Counter
	tokensRevoked monitor.Counters[revokeCause]
	sentBytes     prometheus.Counter
	storageBatch  prometheus.Histogram
	pluginCalls   *prometheus.HistogramVec
	pluginErrors  *prometheus.CounterVec

	// Backups (qqadmin backup).
	backups           monitor.Counters[backupResult]
	backupLastSuccess prometheus.Gauge
}

// latencyBuckets span 100µs to 5s.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func newMetrics(s *Server) *metrics {
	m := &metrics{}
	add := func(c prometheus.Collector) { m.all = append(m.all, c) }

	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "qqd_build_info",
		Help: "Always 1; the labels give qqd's version and the Go version it was built with.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(s.version, runtime.Version()).Set(1)
	add(buildInfo)

	m.connOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "qqd_connections_open",
		Help: "Client connections accepted and not yet closed.",
	})
	add(m.connOpen)
	add(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "qqd_connections_accepted_total",
		Help: "Client connections accepted.",
	}, func() float64 { return float64(s.accepted.Load()) }))
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qqd_connections_closed_total",
		Help: "Client connections closed, by reason.",
	}, []string{"reason"})
	for _, r := range CloseReasons() {
		m.connClosed[r] = closed.WithLabelValues(r.String())
	}
	add(closed)
	m.slowConsumers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_slow_consumer_disconnects_total",
		Help: "Connections closed because they did not read their output (reasons slow_consumer and write_timeout).",
	})
	add(m.slowConsumers)
	add(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "qqd_users_online",
		Help: "Distinct users with at least one logged-in connection.",
	}, func() float64 { return float64(s.router.Count()) }))

	vec := resultVec("qqd_logins_total", "Login requests, by result.")
	m.logins = monitor.NewCounters[loginResult](vec, loginResultNames)
	add(vec)
	vec = resultVec("qqd_registrations_total", "Register requests, by result.")
	m.registrations = monitor.NewCounters[regResult](vec, regResultNames)
	add(vec)
	vec = resultVec("qqd_messages_total",
		"Send requests answered, by result: sent or queued (stored), duplicate (a cid retry), rejected (by a filter), "+
			"filter_failed (a fail-closed filter failed), unknown_user, invalid (refused before the pipeline), failed (storage), "+
			"rate_limited (the sender's send rate), recipient_full (the recipient's max_pending_per_user), blocked (the recipient blocks the sender), not_friends (direct_messages: friends).")
	m.messages = monitor.NewCounters[msgResult](vec, msgResultNames)
	add(vec)
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qqd_limit_refusals_total",
		Help: "Connections and requests refused by a limit, by the limit (reason): max_connections, max_connections_per_ip, " +
			"send_rate, auth_per_ip_per_minute, auth_per_account_per_minute, max_pending_per_user, friend_requests_per_day, typing, groups_created_per_day, groups_max_members, groups_max_owned_or_joined, groups_max_mentions, register_per_ip_per_minute.",
	}, []string{"reason"})
	m.limited = monitor.NewCounters[limitReason](limited, limitReasonNames)
	add(limited)
	vec = resultVec("qqd_friend_requests_total",
		"Friend requests answered, by result: pending (stored and pushed), friends (the target had asked too, or they were friends), "+
			"refused (unknown user, blocked, storage), invalid, rate_limited (limits.friend_requests_per_day).")
	m.friendRequests = monitor.NewCounters[friendResult](vec, friendResultNames)
	add(vec)
	m.presencePushes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_presence_pushes_total",
		Help: "Presence pushes queued on connections (one per friend's connection told of a change).",
	})
	add(m.presencePushes)
	m.typingPushes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_typing_pushes_total",
		Help: "Typing pushes (start and stop) queued on connections.",
	})
	add(m.typingPushes)
	vec = resultVec("qqd_group_messages_total",
		"Group sends answered, by result: stored, duplicate (a cid retry), refused (not a member, muted, no such group, "+
			"a filter, not allowed), invalid, rate_limited (the sender's send rate), failed (storage).")
	m.groupMessages = monitor.NewCounters[gmsgResult](vec, gmsgResultNames)
	add(vec)
	m.groupFanout = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "qqd_group_fanout_sessions",
		Help:    "Connections one group log entry was pushed to.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8),
	})
	add(m.groupFanout)
	m.groupsCreated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_groups_created_total",
		Help: "Groups created.",
	})
	add(m.groupsCreated)
	m.groupOps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_group_operations_total",
		Help: "Group membership and settings operations answered (join, invite, kick, mute, dissolve, ...).",
	})
	add(m.groupOps)

	m.sendDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "qqd_send_duration_seconds",
		Help:    "Time from reading a send request to queuing its answer, for sends that entered the storage pipeline.",
		Buckets: latencyBuckets,
	})
	add(m.sendDuration)
	m.passwordHashes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_password_hashes_total",
		Help: "Argon2id computations: a registration's or an operator's new password hashed, a login's password verified (an unknown user's too, against a dummy hash).",
	})
	add(m.passwordHashes)
	vec = resultVec("qqd_resumes_total", "Resume requests (logins with a resume token), by result.")
	m.resumes = monitor.NewCounters[loginResult](vec, loginResultNames)
	add(vec)
	m.tokensIssued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_tokens_issued_total",
		Help: "Resume tokens issued (logins with remember).",
	})
	add(m.tokensIssued)
	revoked := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qqd_tokens_revoked_total",
		Help: "Resume tokens revoked by qqd, by reason: logout, admin (qqadmin), expired (found expired, or purged), unused (issued to a login that then failed). " +
			"Tokens dropped by the storage itself (password change, account deletion, tokens.per_user) are not counted.",
	}, []string{"reason"})
	m.tokensRevoked = monitor.NewCounters[revokeCause](revoked, revokeCauseNames)
	add(revoked)
	vec = resultVec("qqd_storage_backups_total", "Storage backups (qqadmin backup) that the storage attempted, by result: ok, or error (see qqd's log). Refused requests (busy, directory exists, not supported) are not counted.")
	m.backups = monitor.NewCounters[backupResult](vec, backupResultNames)
	add(vec)
	m.backupLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "qqd_storage_backup_last_success_timestamp_seconds",
		Help: "When the last successful storage backup finished (unix seconds); 0 when none has since qqd started.",
	})
	add(m.backupLastSuccess)
	m.receivedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_received_bytes_total",
		Help: "Bytes read from client sockets.",
	})
	add(m.receivedBytes)
	m.sentBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_sent_bytes_total",
		Help: "Bytes written to client sockets.",
	})
	add(m.sentBytes)
	add(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "qqd_pushes_total",
		Help: "Message pushes queued to logged-in connections.",
	}, func() float64 { return float64(s.msgsPushed.Load()) }))
	m.storageBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "qqd_storage_batch_messages",
		Help:    "Messages plus acks per storage Write.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12), // 1 .. 2048
	})
	add(m.storageBatch)
	m.pluginCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "qqd_plugin_call_duration_seconds",
		Help:    "Duration of calls to plugins, by plugin (filter name, or storage) and method.",
		Buckets: latencyBuckets,
	}, []string{"plugin", "method"})
	add(m.pluginCalls)
	m.pluginErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qqd_plugin_call_errors_total",
		Help: "Plugin calls that failed (not counting answers such as unknown user), by plugin and method.",
	}, []string{"plugin", "method"})
	add(m.pluginErrors)
	add(newStorageCollector(s))
	return m
}

func resultVec(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"result"})
}

// register registers every collector on reg (nil: none).
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range m.all {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// connClosedAs counts a session's close.
func (m *metrics) connClosedAs(reason CloseReason) {
	m.connOpen.Dec()
	if reason < numCloseReasons && m.connClosed[reason] != nil {
		m.connClosed[reason].Inc()
	}
	if reason == CloseSlowConsumer || reason == CloseWriteTimeout {
		m.slowConsumers.Inc()
	}
}

// sendAnswered counts the answer to r, if r is a send, and observes its
// latency.
func (m *metrics) sendAnswered(r *writeReq, result msgResult) {
	if r.kind == reqGroupSend && result != msgSent && result != msgQueued && result != msgDuplicate {
		if result == msgFailed {
			m.groupMessages[gmsgFailed].Inc()
		} else {
			m.groupMessages[gmsgRefused].Inc()
		}
	}
	if r.kind != reqSend {
		return
	}
	m.messages[result].Inc()
	m.sendDuration.Observe(time.Since(r.start).Seconds())
}

// refuseResult is the qqd_messages_total result of a refused send.
func refuseResult(e *protocol.Error) msgResult {
	switch {
	case e == errFilterDown:
		return msgFilterFailed
	case e == errRecipientFull:
		return msgRecipientFull
	case e.Code == protocol.CodeRejected:
		return msgRejected
	}
	return msgFailed
}

// countingReader counts the bytes read from a client socket.
type countingReader struct {
	r io.Reader
	c prometheus.Counter
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if n > 0 {
		cr.c.Add(float64(n))
	}
	return n, err
}

// plugSet returns the plugin set for storage and filters, with every
// plugin call instrumented.
func (m *metrics) plugSet(storage plugins.Storage, filters []plugins.FilterLink) *plugSet {
	ps := &plugSet{rawStorage: storage, rawFilters: filters, storage: m.instrumentStorage(storage)}
	ps.filters = make([]plugins.FilterLink, len(filters))
	for i, f := range filters {
		f.Filter = &instrumentedFilter{f: f.Filter, call: m.call(f.Name, "Filter")}
		ps.filters[i] = f
	}
	return ps
}

// pluginCall is the series of one plugin method.
type pluginCall struct {
	dur  prometheus.Observer
	errs prometheus.Counter
}

func (m *metrics) call(plugin, method string) pluginCall {
	return pluginCall{dur: m.pluginCalls.WithLabelValues(plugin, method), errs: m.pluginErrors.WithLabelValues(plugin, method)}
}

// done records a call that started at start and returned err. Sentinel
// answers (unknown user, name taken, bad cursor) are the plugin working.
func (c pluginCall) done(start time.Time, err error) {
	c.dur.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, plugins.ErrUnknownUser) && !errors.Is(err, plugins.ErrUserExists) &&
		!errors.Is(err, plugins.ErrBadCursor) && !errors.Is(err, plugins.ErrBlocked) &&
		!errors.Is(err, plugins.ErrNoRequest) && !errors.Is(err, plugins.ErrNotFriends) && !contractGroupErr(err) &&
		!errors.Is(err, plugins.ErrNoToken) && !errors.Is(err, plugins.ErrTokenExists) {
		c.errs.Inc()
	}
}

type instrumentedFilter struct {
	f    plugins.Filter
	call pluginCall
}

func (f *instrumentedFilter) Filter(ctx context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	start := time.Now()
	v, err := f.f.Filter(ctx, msgs)
	f.call.done(start, err)
	return v, err
}

func (m *metrics) instrumentStorage(st plugins.Storage) plugins.Storage {
	is := &instrumentedStorage{st: st}
	for i, name := range storageMethodNames {
		is.calls[i] = m.call(storagePluginLabel, name)
	}
	if o, ok := st.(plugins.WriteOverlapper); ok {
		return &instrumentedOverlapper{instrumentedStorage: is, o: o}
	}
	return is
}

// instrumentedStorage times every call to a Storage. It implements every
// method of plugins.Storage itself (no embedding), so that a method added
// to the interface fails to compile here rather than going untimed.
type instrumentedStorage struct {
	st    plugins.Storage
	calls [numStorageMethods]pluginCall
}

var (
	_ plugins.Storage         = (*instrumentedStorage)(nil)
	_ plugins.WriteOverlapper = (*instrumentedOverlapper)(nil)
	_ plugins.Filter          = (*instrumentedFilter)(nil)
)

func (s *instrumentedStorage) CreateUser(ctx context.Context, user, passwordHash string) error {
	start := time.Now()
	err := s.st.CreateUser(ctx, user, passwordHash)
	s.calls[mCreateUser].done(start, err)
	return err
}

func (s *instrumentedStorage) PasswordHash(ctx context.Context, user string) (string, error) {
	start := time.Now()
	h, err := s.st.PasswordHash(ctx, user)
	s.calls[mPasswordHash].done(start, err)
	return h, err
}

func (s *instrumentedStorage) SetPasswordHash(ctx context.Context, user, passwordHash string) error {
	start := time.Now()
	err := s.st.SetPasswordHash(ctx, user, passwordHash)
	s.calls[mSetPasswordHash].done(start, err)
	return err
}

func (s *instrumentedStorage) DeleteUser(ctx context.Context, user string) (int64, error) {
	start := time.Now()
	n, err := s.st.DeleteUser(ctx, user)
	s.calls[mDeleteUser].done(start, err)
	return n, err
}

func (s *instrumentedStorage) CountUsers(ctx context.Context) (int64, error) {
	start := time.Now()
	n, err := s.st.CountUsers(ctx)
	s.calls[mCountUsers].done(start, err)
	return n, err
}

func (s *instrumentedStorage) CountPending(ctx context.Context) (int64, error) {
	start := time.Now()
	n, err := s.st.CountPending(ctx)
	s.calls[mCountPending].done(start, err)
	return n, err
}

func (s *instrumentedStorage) Write(ctx context.Context, b *plugins.WriteBatch) ([]plugins.AppendResult, error) {
	start := time.Now()
	res, err := s.st.Write(ctx, b)
	s.calls[mWrite].done(start, err)
	return res, err
}

func (s *instrumentedStorage) LookupCIDs(ctx context.Context, keys []plugins.CIDKey) ([]plugins.AppendResult, error) {
	start := time.Now()
	res, err := s.st.LookupCIDs(ctx, keys)
	s.calls[mLookupCIDs].done(start, err)
	return res, err
}

func (s *instrumentedStorage) PendingCount(ctx context.Context, user string) (int64, error) {
	start := time.Now()
	n, err := s.st.PendingCount(ctx, user)
	s.calls[mPendingCount].done(start, err)
	return n, err
}

func (s *instrumentedStorage) Pending(ctx context.Context, user string, limit int) ([]protocol.Message, bool, error) {
	start := time.Now()
	msgs, more, err := s.st.Pending(ctx, user, limit)
	s.calls[mPending].done(start, err)
	return msgs, more, err
}

func (s *instrumentedStorage) History(ctx context.Context, user, with, before string, limit int) ([]protocol.Message, bool, error) {
	start := time.Now()
	msgs, more, err := s.st.History(ctx, user, with, before, limit)
	s.calls[mHistory].done(start, err)
	return msgs, more, err
}

// Close closes the underlying storage; it is not timed.
func (s *instrumentedStorage) Close() error { return s.st.Close() }

// instrumentedOverlapper keeps a storage's plugins.WriteOverlapper, so the
// pipeline still overlaps Writes. A Write is timed from StartWrite until
// its wait returns.
type instrumentedOverlapper struct {
	*instrumentedStorage
	o plugins.WriteOverlapper
}

func (s *instrumentedOverlapper) WriteOverlap() int { return s.o.WriteOverlap() }

func (s *instrumentedOverlapper) StartWrite(ctx context.Context, b *plugins.WriteBatch) func() ([]plugins.AppendResult, error) {
	start := time.Now()
	wait := s.o.StartWrite(ctx, b)
	return func() ([]plugins.AppendResult, error) {
		res, err := wait()
		s.calls[mWrite].done(start, err)
		return res, err
	}
}

// Ready reports whether the server serves clients: nil once Serve runs on
// at least one listener and until Shutdown begins. qqd combines it with
// the storage plugin's state for /readyz.
func (s *Server) Ready() error {
	if s.shuttingDown.Load() {
		return errors.New("shutting down")
	}
	if s.cluster != nil {
		if err := s.cluster.node.Ready(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	n := len(s.listeners)
	s.mu.Unlock()
	if n == 0 {
		return errors.New("not listening")
	}
	return nil
}

// storageScrapeTimeout bounds each storage call made by a scrape.
const storageScrapeTimeout = time.Second

// storageCollector exports counts that the storage in service keeps,
// asking it at each scrape: qqd_pending_messages (CountPending) and
// qqd_accounts (CountUsers), and, when the storage has plugins.Stats (see
// plugins.StatsOf; pgstore does, in qqd or in a plugin process of
// protocol version 5), its connection pool's qqd_storage_pool_* (Stats).
// The calls run in parallel, each bounded by storageScrapeTimeout,
// through the instrumented storage (so they show in qqd_plugin_call_*
// with their method) and holding the plugin set like any other call. A
// call that fails leaves its metrics out of that scrape (no stale or
// made-up value; the rest of the scrape is unaffected) and counts in
// qqd_storage_scrape_errors_total.
//
// The pool's metrics are a fixed set of Descs (plugins.PoolStats is a
// closed set): a plugin cannot make qqd create metric names or label
// values of its own.
type storageCollector struct {
	s      *Server
	gauges []storageGauge
	pool   poolDescs
	errors prometheus.Counter
}

// poolDescs are the metrics of plugins.PoolStats.
type poolDescs struct {
	conns, maxConns, acquires, emptyAcquires, canceledAcquires, acquireWait *prometheus.Desc
}

func newPoolDescs() poolDescs {
	return poolDescs{
		conns: prometheus.NewDesc("qqd_storage_pool_connections",
			"Connections of the storage's connection pool, by state (idle, acquired: in use, constructing: being opened), as the storage reports them at scrape time.",
			[]string{"state"}, nil),
		maxConns: prometheus.NewDesc("qqd_storage_pool_max_connections",
			"The most connections the storage's connection pool opens.", nil, nil),
		acquires: prometheus.NewDesc("qqd_storage_pool_acquires_total",
			"Connections acquired from the storage's connection pool (since the storage was opened: a restarted plugin process starts again from 0).", nil, nil),
		emptyAcquires: prometheus.NewDesc("qqd_storage_pool_empty_acquires_total",
			"Acquisitions from the storage's connection pool that had to wait for a connection (none was idle).", nil, nil),
		canceledAcquires: prometheus.NewDesc("qqd_storage_pool_canceled_acquires_total",
			"Acquisitions from the storage's connection pool given up because their context was done.", nil, nil),
		acquireWait: prometheus.NewDesc("qqd_storage_pool_acquire_wait_seconds_total",
			"Total time spent acquiring connections from the storage's connection pool.", nil, nil),
	}
}

func (d poolDescs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.conns, d.maxConns, d.acquires, d.emptyAcquires, d.canceledAcquires, d.acquireWait} {
		ch <- desc
	}
}

func (d poolDescs) collect(ch chan<- prometheus.Metric, p *plugins.PoolStats) {
	ch <- prometheus.MustNewConstMetric(d.conns, prometheus.GaugeValue, float64(p.IdleConns), "idle")
	ch <- prometheus.MustNewConstMetric(d.conns, prometheus.GaugeValue, float64(p.AcquiredConns), "acquired")
	ch <- prometheus.MustNewConstMetric(d.conns, prometheus.GaugeValue, float64(p.ConstructingConns), "constructing")
	ch <- prometheus.MustNewConstMetric(d.maxConns, prometheus.GaugeValue, float64(p.MaxConns))
	ch <- prometheus.MustNewConstMetric(d.acquires, prometheus.CounterValue, float64(p.Acquires))
	ch <- prometheus.MustNewConstMetric(d.emptyAcquires, prometheus.CounterValue, float64(p.EmptyAcquires))
	ch <- prometheus.MustNewConstMetric(d.canceledAcquires, prometheus.CounterValue, float64(p.CanceledAcquires))
	ch <- prometheus.MustNewConstMetric(d.acquireWait, prometheus.CounterValue, p.AcquireWait.Seconds())
}

type storageGauge struct {
	desc   *prometheus.Desc
	method string
	count  func(context.Context, plugins.Storage) (int64, error)
}

func newStorageCollector(s *Server) *storageCollector {
	return &storageCollector{
		s: s,
		gauges: []storageGauge{
			{
				desc: prometheus.NewDesc("qqd_pending_messages",
					"Messages stored and not yet acknowledged by their recipient, over all users, as the storage counts them at scrape time.",
					nil, nil),
				method: storageMethodNames[mCountPending],
				count:  func(ctx context.Context, st plugins.Storage) (int64, error) { return st.CountPending(ctx) },
			},
			{
				desc: prometheus.NewDesc("qqd_accounts",
					"Accounts that exist (deleted ones excluded), as the storage counts them at scrape time.", nil, nil),
				method: storageMethodNames[mCountUsers],
				count:  func(ctx context.Context, st plugins.Storage) (int64, error) { return st.CountUsers(ctx) },
			},
		},
		pool: newPoolDescs(),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qqd_storage_scrape_errors_total",
			Help: "Storage calls made for a scrape (qqd_pending_messages, qqd_accounts, qqd_storage_pool_*) that failed or timed out; their metrics are then left out of that scrape.",
		}),
	}
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range c.gauges {
		ch <- g.desc
	}
	c.pool.describe(ch)
	c.errors.Describe(ch)
}

func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	defer func() { ch <- c.errors }()
	if c.s.plugs.Load() == nil {
		return // scraped while New is still running: no storage yet
	}
	ps := c.s.acquirePlugs()
	defer ps.release()
	var wg sync.WaitGroup
	for _, g := range c.gauges {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), storageScrapeTimeout)
			defer cancel()
			n, err := g.count(ctx, ps.storage)
			if err != nil {
				c.errors.Inc()
				c.s.log.Warn("storage call for metrics failed", "method", g.method, "err", err)
				return
			}
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n))
		})
	}
	if st, ok := plugins.StatsOf(ps.storage); ok {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), storageScrapeTimeout)
			defer cancel()
			r, err := st.Stats(ctx)
			if err != nil {
				c.errors.Inc()
				c.s.log.Warn("storage call for metrics failed", "method", storageMethodNames[mStats], "err", err)
				return
			}
			if r.Pool != nil {
				c.pool.collect(ch, r.Pool)
			}
		})
	}
	wg.Wait()
}

// PluginCollector exports the state of supervised plugin processes, as
// statuses reports it at each scrape: qqd_plugin_up{plugin} (1 running, 0
// down) and qqd_plugin_restarts_total{plugin}. A plugin running inside qqd
// has no process and no series. statuses must be safe to call from any
// goroutine (qqd passes the Statuses of the plugin set in service).
func PluginCollector(statuses func() []plugins.Status) prometheus.Collector {
	return &pluginCollector{
		statuses: statuses,
		up: prometheus.NewDesc("qqd_plugin_up",
			"Whether the plugin's process is running (1) or down (0).", []string{"plugin"}, nil),
		restarts: prometheus.NewDesc("qqd_plugin_restarts_total",
			"Times the plugin's process was restarted by its supervisor.", []string{"plugin"}, nil),
	}
}

type pluginCollector struct {
	statuses     func() []plugins.Status
	up, restarts *prometheus.Desc
}

func (c *pluginCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.restarts
}

func (c *pluginCollector) Collect(ch chan<- prometheus.Metric) {
	seen := make(map[string]bool)
	for _, st := range c.statuses() {
		if seen[st.Name] {
			continue // one series per name; names are unique in a valid config
		}
		seen[st.Name] = true
		up := 0.0
		if st.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, st.Name)
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(st.Restarts), st.Name)
	}
}

// okResult is the qqd_messages_total result of a send answered ok.
func okResult(res *plugins.AppendResult) msgResult {
	switch {
	case res.Duplicate:
		return msgDuplicate
	case res.Status == protocol.StatusSent:
		return msgSent
	}
	return msgQueued
}

// Social returns the storage's Social side, instrumented, if it has one.
func (s *instrumentedStorage) Social() (plugins.Social, bool) {
	so, ok := plugins.SocialOf(s.st)
	if !ok {
		return nil, false
	}
	return &instrumentedSocial{so: so, calls: &s.calls}, true
}

// instrumentedSocial times every call to a Social, like
// instrumentedStorage.
type instrumentedSocial struct {
	so    plugins.Social
	calls *[numStorageMethods]pluginCall
}

var _ plugins.Social = (*instrumentedSocial)(nil)

func (s *instrumentedSocial) RequestFriend(ctx context.Context, from, to, note string, ts int64) (bool, error) {
	start := time.Now()
	ok, err := s.so.RequestFriend(ctx, from, to, note, ts)
	s.calls[mRequestFriend].done(start, err)
	return ok, err
}

func (s *instrumentedSocial) AnswerFriendRequest(ctx context.Context, user, from string, accept bool, ts int64) error {
	start := time.Now()
	err := s.so.AnswerFriendRequest(ctx, user, from, accept, ts)
	s.calls[mAnswerFriendRequest].done(start, err)
	return err
}

func (s *instrumentedSocial) CancelFriendRequest(ctx context.Context, from, to string) error {
	start := time.Now()
	err := s.so.CancelFriendRequest(ctx, from, to)
	s.calls[mCancelFriendRequest].done(start, err)
	return err
}

func (s *instrumentedSocial) RemoveFriend(ctx context.Context, user, friend string) error {
	start := time.Now()
	err := s.so.RemoveFriend(ctx, user, friend)
	s.calls[mRemoveFriend].done(start, err)
	return err
}

func (s *instrumentedSocial) Friends(ctx context.Context, user string) (plugins.FriendList, error) {
	start := time.Now()
	fl, err := s.so.Friends(ctx, user)
	s.calls[mFriends].done(start, err)
	return fl, err
}

func (s *instrumentedSocial) Block(ctx context.Context, user, target string, ts int64) error {
	start := time.Now()
	err := s.so.Block(ctx, user, target, ts)
	s.calls[mBlock].done(start, err)
	return err
}

func (s *instrumentedSocial) Unblock(ctx context.Context, user, target string) error {
	start := time.Now()
	err := s.so.Unblock(ctx, user, target)
	s.calls[mUnblock].done(start, err)
	return err
}

func (s *instrumentedSocial) Blocks(ctx context.Context, user string) ([]string, error) {
	start := time.Now()
	bs, err := s.so.Blocks(ctx, user)
	s.calls[mBlocks].done(start, err)
	return bs, err
}

func (s *instrumentedSocial) Relation(ctx context.Context, a, b string) (plugins.Relation, error) {
	start := time.Now()
	r, err := s.so.Relation(ctx, a, b)
	s.calls[mRelation].done(start, err)
	return r, err
}

// contractGroupErr reports the Groups contract's answers (the plugin
// working, not failing).
func contractGroupErr(err error) bool {
	for _, e := range []error{plugins.ErrNoGroup, plugins.ErrNotMember, plugins.ErrNotAllowed, plugins.ErrMuted,
		plugins.ErrGroupFull, plugins.ErrAlreadyMember, plugins.ErrGroupLimit} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Groups returns the storage's Groups side, instrumented, if it has one.
func (s *instrumentedStorage) Groups() (plugins.Groups, bool) {
	g, ok := plugins.GroupsOf(s.st)
	if !ok {
		return nil, false
	}
	return &instrumentedGroups{g: g, calls: &s.calls}, true
}

// instrumentedGroups times every call to a Groups, like
// instrumentedStorage.
type instrumentedGroups struct {
	g     plugins.Groups
	calls *[numStorageMethods]pluginCall
}

var _ plugins.Groups = (*instrumentedGroups)(nil)

func (s *instrumentedGroups) CreateGroup(ctx context.Context, owner, name string, policy plugins.GroupPolicy,
	history plugins.GroupHistory, ts int64, limits plugins.GroupLimits) (plugins.GroupInfo, error) {
	start := time.Now()
	gi, err := s.g.CreateGroup(ctx, owner, name, policy, history, ts, limits)
	s.calls[mCreateGroup].done(start, err)
	return gi, err
}

func (s *instrumentedGroups) Group(ctx context.Context, id int64) (plugins.GroupInfo, error) {
	start := time.Now()
	gi, err := s.g.Group(ctx, id)
	s.calls[mGroup].done(start, err)
	return gi, err
}

func (s *instrumentedGroups) UserGroups(ctx context.Context, user string) ([]plugins.UserGroup, error) {
	start := time.Now()
	ug, err := s.g.UserGroups(ctx, user)
	s.calls[mUserGroups].done(start, err)
	return ug, err
}

func (s *instrumentedGroups) Members(ctx context.Context, id int64, after string, limit int) ([]plugins.Member, bool, error) {
	start := time.Now()
	ms, more, err := s.g.Members(ctx, id, after, limit)
	s.calls[mMembers].done(start, err)
	return ms, more, err
}

func (s *instrumentedGroups) GroupOp(ctx context.Context, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	start := time.Now()
	r, err := s.g.GroupOp(ctx, op)
	s.calls[mGroupOp].done(start, err)
	return r, err
}

func (s *instrumentedGroups) JoinRequests(ctx context.Context, id int64) ([]plugins.JoinRequest, error) {
	start := time.Now()
	rs, err := s.g.JoinRequests(ctx, id)
	s.calls[mJoinRequests].done(start, err)
	return rs, err
}

func (s *instrumentedGroups) Log(ctx context.Context, id int64, user string, after, before int64, limit int) ([]plugins.GroupEntry, bool, error) {
	start := time.Now()
	es, more, err := s.g.Log(ctx, id, user, after, before, limit)
	s.calls[mLog].done(start, err)
	return es, more, err
}

// StatsSide returns the storage's Stats side, instrumented, if it has
// one (see plugins.StatsOf).
func (s *instrumentedStorage) StatsSide() (plugins.Stats, bool) {
	st, ok := plugins.StatsOf(s.st)
	if !ok {
		return nil, false
	}
	return &instrumentedStats{st: st, call: s.calls[mStats]}, true
}

// instrumentedStats times the calls to a Stats, like instrumentedStorage.
type instrumentedStats struct {
	st   plugins.Stats
	call pluginCall
}

var _ plugins.Stats = (*instrumentedStats)(nil)

func (s *instrumentedStats) Stats(ctx context.Context) (plugins.StorageStats, error) {
	start := time.Now()
	r, err := s.st.Stats(ctx)
	s.call.done(start, err)
	return r, err
}

// Tokens returns the storage's Tokens side, instrumented, if it has one.
func (s *instrumentedStorage) Tokens() (plugins.Tokens, bool) {
	t, ok := plugins.TokensOf(s.st)
	if !ok {
		return nil, false
	}
	return &instrumentedTokens{t: t, calls: &s.calls}, true
}

// instrumentedTokens times every call to a Tokens, like
// instrumentedStorage.
type instrumentedTokens struct {
	t     plugins.Tokens
	calls *[numStorageMethods]pluginCall
}

var _ plugins.Tokens = (*instrumentedTokens)(nil)

func (s *instrumentedTokens) AddToken(ctx context.Context, t plugins.Token, keep int) error {
	start := time.Now()
	err := s.t.AddToken(ctx, t, keep)
	s.calls[mAddToken].done(start, err)
	return err
}

func (s *instrumentedTokens) Token(ctx context.Context, id string) (plugins.Token, error) {
	start := time.Now()
	t, err := s.t.Token(ctx, id)
	s.calls[mToken].done(start, err)
	return t, err
}

func (s *instrumentedTokens) TouchTokens(ctx context.Context, uses []plugins.TokenUse) error {
	start := time.Now()
	err := s.t.TouchTokens(ctx, uses)
	s.calls[mTouchTokens].done(start, err)
	return err
}

func (s *instrumentedTokens) UserTokens(ctx context.Context, user string) ([]plugins.Token, error) {
	start := time.Now()
	ts, err := s.t.UserTokens(ctx, user)
	s.calls[mUserTokens].done(start, err)
	return ts, err
}

func (s *instrumentedTokens) RevokeTokens(ctx context.Context, user string, ids []string) (int64, error) {
	start := time.Now()
	n, err := s.t.RevokeTokens(ctx, user, ids)
	s.calls[mRevokeTokens].done(start, err)
	return n, err
}

func (s *instrumentedTokens) PurgeTokens(ctx context.Context, now, idleBefore int64) (int64, error) {
	start := time.Now()
	n, err := s.t.PurgeTokens(ctx, now, idleBefore)
	s.calls[mPurgeTokens].done(start, err)
	return n, err
}
