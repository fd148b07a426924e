package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/groups"
	"github.com/qqchat/qq/daemon/limit"
	"github.com/qqchat/qq/daemon/password"
	"github.com/qqchat/qq/daemon/presence"
	"github.com/qqchat/qq/daemon/route"
	"github.com/qqchat/qq/plugins"
)

// Deps are what a Server needs from outside. Storage is required; the
// caller owns it and the filters, and closes them after Shutdown returns.
type Deps struct {
	Storage plugins.Storage
	// Filters is the filter chain, in order; may be empty.
	Filters []plugins.FilterLink
	Logger  *slog.Logger // nil: discard
	// Version is reported in the hello frame (semver, no leading v).
	Version string
	// PasswordParams overrides the Argon2id cost (nil: password.OWASP).
	// Only tests lower it.
	PasswordParams *password.Params
	// Registry gets the server's metrics (see metrics.go); nil: they are
	// kept but not registered.
	Registry prometheus.Registerer
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("daemon: server closed")

// Server is a running qqd protocol core. Create it with New, feed it
// listeners with Serve, stop it with Shutdown.
type Server struct {
	// outBufs holds sessions' output buffers between bursts, so that an
	// idle connection keeps none and a busy one does not allocate one per
	// burst (*[]byte; at most maxPooledOut bytes of capacity).
	outBufs sync.Pool
	cfg     *config.Config
	plugs   atomic.Pointer[plugSet]
	swapMu  sync.Mutex
	log     *slog.Logger
	version string
	pwp     password.Params
	// dummyHash is verified against when a login names an unknown user,
	// so that it costs as much as a wrong password.
	dummyHash string
	hashSem   chan struct{}
	// registerSem bounds the registrations hashing at once to half of
	// hashSem (see registerHash).
	registerSem chan struct{}

	router route.Router[*session]
	// cluster is set in cluster mode (see clustered.go).
	cluster *clustered
	pipe    *pipeline
	// The friends, presence and typing extensions: see social.go.
	presence    *presence.Registry
	typing      *presence.Typing
	friendLimit *limit.Keyed[string]
	typingLimit *limit.Keyed[string]
	// The groups extension: see group.go.
	groupCache       *groups.Cache
	groupCreateLimit *limit.Keyed[string]
	// Resume tokens: see tokens.go.
	tokenUses tokenKeeper

	// The abuse limits: see limits.go and pending.go.
	conns       limit.Conns
	sendLimits  *limit.Sends
	authIP      *limit.Keyed[netip.Addr] // failed logins per IP
	authAccount *limit.Keyed[string]     // failed logins per account
	registerIP  *limit.Keyed[netip.Addr] // registrations per IP
	authExempt  []netip.Prefix           // limits.exempt_networks
	pendingCap  *limit.Pending
	// lastLimitWarn is when the log last said that a connection limit
	// refused connections (unix ns): it says so at most every 10 s.
	lastLimitWarn atomic.Int64

	nextID       atomic.Uint64
	shuttingDown atomic.Bool
	// cidPrefix and cidSeq make the cids of sends that came without one
	// (see newServerCID).
	cidPrefix string
	cidSeq    atomic.Uint64
	counters
	memRelease
	m *metrics
	// backupBusy is set while a backup runs (see Backup).
	backupBusy atomic.Bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}

	readers sync.WaitGroup // one per session reader goroutine
	writers sync.WaitGroup // one per running writer goroutine
}

// New returns a Server for cfg. It starts the storage write pipeline; call
// Shutdown to stop it.
func New(cfg *config.Config, deps Deps) (*Server, error) {
	if deps.Storage == nil {
		return nil, errors.New("daemon: new: no storage")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("daemon: new: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pwp := password.OWASP
	if deps.PasswordParams != nil {
		pwp = *deps.PasswordParams
	}
	dummy, err := password.Hash(pwp, "qqd dummy password")
	if err != nil {
		return nil, fmt.Errorf("daemon: new: %w", err)
	}
	conc := cfg.Accounts.HashConcurrency
	if conc <= 0 {
		conc = runtime.GOMAXPROCS(0)
	}
	s := &Server{
		cfg:         cfg,
		log:         log,
		version:     deps.Version,
		pwp:         pwp,
		dummyHash:   dummy,
		hashSem:     make(chan struct{}, conc),
		registerSem: make(chan struct{}, max(1, conc/2)),
		router:      route.NewLocal[*session](),
		listeners:   make(map[net.Listener]struct{}),
		sessions:    make(map[*session]struct{}),

		sendLimits:       limit.NewSends(cfg.Limits.SendRate, cfg.Limits.SendBurst),
		authIP:           limit.NewKeyed[netip.Addr](cfg.Limits.AuthPerIPPerMinute, limit.MaxTrackedKeys),
		authAccount:      limit.NewKeyed[string](cfg.Limits.AuthPerAccountPerMinute, limit.MaxTrackedKeys),
		registerIP:       limit.NewKeyed[netip.Addr](cfg.Limits.RegisterPerIPPerMinute, limit.MaxTrackedKeys),
		authExempt:       cfg.Limits.Exempt(),
		pendingCap:       limit.NewPending(cfg.Limits.MaxPendingPerUser),
		friendLimit:      limit.NewKeyedPer[string](cfg.Limits.FriendRequestsPerDay, 24*time.Hour, limit.MaxTrackedKeys),
		groupCache:       groups.NewCache(),
		groupCreateLimit: limit.NewKeyedPer[string](cfg.Groups.CreatedPerDay, 24*time.Hour, limit.MaxTrackedKeys),
		typingLimit: limit.NewKeyedPer[string](cfg.Limits.TypingBurst,
			time.Duration(float64(cfg.Limits.TypingBurst)/cfg.Limits.TypingRate*float64(time.Second)), limit.MaxTrackedKeys),
	}
	if s.version == "" {
		s.version = "0.0.0-dev"
	}
	s.started = time.Now()
	var prefix [16]byte
	rand.Read(prefix[:])
	s.cidPrefix = "qqd:" + hex.EncodeToString(prefix[:]) + ":"
	s.m = newMetrics(s)
	if err := s.m.register(deps.Registry); err != nil {
		return nil, fmt.Errorf("daemon: new: register metrics: %w", err)
	}
	s.plugs.Store(s.newPlugSet(deps.Storage, deps.Filters))
	if cfg.DirectMessages == config.DirectMessagesFriends && s.plugs.Load().social == nil {
		return nil, errors.New("daemon: new: direct_messages: friends needs a storage that keeps friendships (storage plugin protocol 2)")
	}
	s.presence = presence.New(cfg.Presence.OfflineDebounce, s.pushPresence)
	s.typing = presence.NewTyping(typingExpire, func(from, to string) { s.pushTyping(from, to, false) })
	if cfg.Cluster.Enabled {
		if err := s.startCluster(deps); err != nil {
			return nil, fmt.Errorf("daemon: new: %w", err)
		}
	}
	s.pipe = newPipeline(s)
	s.attachCluster()
	s.startTokenKeeper()
	return s, nil
}

// newServerCID returns a cid for a send that came without one: "qqd:",
// 128 random bits drawn when the server started, and a counter. No client
// will send one by chance, and no two sends of any run share one; drawing
// the random bits once keeps a syscall off every send.
func (s *Server) newServerCID() string {
	return s.cidPrefix + strconv.FormatUint(s.cidSeq.Add(1), 36)
}

// Serve accepts connections on ln until Shutdown, and then returns
// ErrServerClosed. It may be called for several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shuttingDown.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.log.Info("listening", "addr", ln.Addr().String())

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.shuttingDown.Load() {
				return ErrServerClosed
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or similar: back off, keep
				// serving the connections we have.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; backing off", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			s.mu.Lock()
			delete(s.listeners, ln)
			s.mu.Unlock()
			return fmt.Errorf("daemon: accept: %w", err)
		}
		backoff = 0
		s.accepted.Add(1)
		s.startSession(conn)
	}
}

func (s *Server) startSession(conn net.Conn) {
	ip, hasIP := limit.IPKey(conn.RemoteAddr())
	s.mu.Lock()
	if s.shuttingDown.Load() {
		s.mu.Unlock()
		conn.Close()
		s.m.connClosed[CloseShutdown].Inc()
		return
	}
	lim := &s.cfg.Limits
	if over := s.conns.Open(ip, hasIP, lim.MaxConnections, lim.MaxConnectionsPerIP); over != limit.ConnOK {
		s.writers.Add(1)
		s.mu.Unlock()
		go s.refuseConn(conn, ip, over)
		return
	}
	sess := newSession(s, conn)
	sess.ip, sess.hasIP = ip, hasIP
	sess.authExempt = s.exempt(conn.RemoteAddr())
	s.m.connOpen.Inc()
	s.sessions[sess] = struct{}{}
	s.readers.Add(1)
	s.mu.Unlock()
	go sess.serve()
}

// refuseConn closes a connection refused by a connection limit: it gets a
// kicked push with reason too_many_connections instead of hello. The push
// is written within a second; the connection is then half-closed and what
// the client sent meanwhile is read (for at most refuseDrain) before the
// close, so that the push is not lost to a reset.
func (s *Server) refuseConn(conn net.Conn, ip netip.Addr, over limit.ConnVerdict) {
	defer s.writers.Done()
	defer conn.Close()
	which, msg := limitConns, "the server has too many connections; try again later"
	if over == limit.ConnOverPerIP {
		which, msg = limitConnsPerIP, "too many connections from your address; close one and try again"
	}
	s.m.limited[which].Inc()
	s.m.connClosed[CloseTooManyConnections].Inc()
	now := time.Now()
	if last := s.lastLimitWarn.Load(); now.UnixNano()-last >= int64(10*time.Second) && s.lastLimitWarn.CompareAndSwap(last, now.UnixNano()) {
		s.log.Warn("connection refused by a limit (logged at most every 10s)", "limit", which.String(), "remote", conn.RemoteAddr().String(),
			"ip", ip.String())
	} else {
		s.log.Debug("connection refused by a limit", "limit", which.String(), "remote", conn.RemoteAddr().String())
	}
	conn.SetWriteDeadline(now.Add(min(time.Second, s.cfg.Limits.WriteTimeout)))
	if _, err := conn.Write(CloseTooManyConnections.kicked(msg)); err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		conn.SetReadDeadline(time.Now().Add(refuseDrain))
		io.Copy(io.Discard, io.LimitReader(conn, 64<<10))
	}
}

// refuseDrain bounds how long a refused connection is read before it is
// closed.
const refuseDrain = 250 * time.Millisecond

// connClosed gives back a connection's count (see limit.Conns). The session
// calls it once, when its connection is closed.
// exempt reports whether the remote address a is in
// limits.exempt_networks.
func (s *Server) exempt(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	if !ok || len(s.authExempt) == 0 {
		return false
	}
	ip := t.AddrPort().Addr().Unmap()
	for _, p := range s.authExempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (s *Server) connClosed(sess *session) { s.conns.Close(sess.ip, sess.hasIP) }

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// Online returns the names of the users with at least one logged-in
// connection, sorted byte-wise.
func (s *Server) Online() []string { return s.router.Users() }

// Shutdown stops the server: it closes the listeners, stops reading
// requests, lets every request already read finish (sends are stored and
// answered), tells each client kicked "shutdown", flushes and closes every
// connection. When ctx ends first, remaining connections are closed
// without waiting. It does not close the storage.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopMemoryRelease()
	s.mu.Lock()
	if s.shuttingDown.Swap(true) {
		s.mu.Unlock()
		return errors.New("daemon: shutdown: already shut down")
	}
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	s.log.Info("shutting down", "connections", len(sessions))

	// Wake every reader; each finishes the request it is in and returns.
	for _, sess := range sessions {
		sess.conn.SetReadDeadline(time.Unix(1, 0))
	}
	if err := waitCtx(ctx, &s.readers); err != nil {
		for _, sess := range sessions {
			sess.closeNow(CloseShutdown)
		}
		s.readers.Wait()
	}
	// No more requests can enter the pipeline: drain it, so every send
	// read so far is stored and answered.
	s.pipe.stop()
	s.stopTokenKeeper()
	// Each client is told when to come back, spread over
	// reconnect_spread, so that they do not all arrive at once.
	spread := s.cfg.ReconnectSpread.Milliseconds()
	for _, sess := range sessions {
		var retry int64
		if spread > 0 {
			retry = 1 + mrand.Int64N(spread)
		}
		sess.finish(CloseShutdown, CloseShutdown.kickedRetry("server shutting down", retry), false)
	}
	err := waitCtx(ctx, &s.writers)
	if err != nil {
		for _, sess := range sessions {
			sess.closeNow(CloseShutdown)
		}
		s.writers.Wait()
	}
	s.closeCluster()
	return err
}

// waitCtx waits for wg or ctx, whichever comes first.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("daemon: shutdown: %w", ctx.Err())
	}
}
