package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/limit"
)

// WSPath is the path of the WebSocket gateway.
const WSPath = "/ws"

// Deps are what a Listener needs besides its configuration.
type Deps struct {
	// TLS serves HTTPS and WSS with it when the configuration's TLS is
	// on (required then); its NextProtos are replaced by http/1.1.
	TLS *tls.Config
	// Files is the app to serve; nil means the embedded one (App).
	Files  fs.FS
	Logger *slog.Logger // nil: discard
	// Registry gets the listener's metrics (see metrics.go); nil: they
	// are kept but not registered.
	Registry prometheus.Registerer
}

// Listener serves the web app and the WebSocket gateway on one TCP
// listener, and is a net.Listener whose Accept returns each upgraded
// WebSocket (see the package documentation). Create it with Listen or
// NewListener; its HTTP server runs until Close.
type Listener struct {
	cfg     config.Web
	log     *slog.Logger
	m       *metrics
	files   map[string]*file
	origins []string       // web.allowed_origins, lower-cased
	trusted []netip.Prefix // web.trusted_proxies
	tcp     net.Listener
	srv     *http.Server
	scheme  string // "http" or "https"

	// pending counts the HTTP connections that carry no session (yet).
	pending limit.Conns
	// conns hands upgraded connections to Accept; unbuffered, so the
	// handlers waiting on it are the accept queue.
	conns chan *conn
	// done is closed by Close, or when the HTTP server fails (err says
	// which).
	done      chan struct{}
	closeOnce sync.Once
	err       error
	// tasks are the HTTP server, the WebSocket handlers, and the close
	// frames being sent: what Wait waits for.
	tasks *tracker
	// bufs are the connections' write buffers between bursts (see
	// conn.Write), so that an idle connection holds none.
	bufs sync.Pool
}

var _ net.Listener = (*Listener)(nil)

// Listen listens on cfg.Listen and serves it (see NewListener).
func Listen(cfg config.Web, deps Deps) (*Listener, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("web: listen: %w", err)
	}
	l, err := NewListener(ln, cfg, deps)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return l, nil
}

// NewListener serves the web app and /ws on ln (a TCP listener; with
// cfg.TLS, TLS is added here) until Close. cfg.Listen is not used.
func NewListener(ln net.Listener, cfg config.Web, deps Deps) (*Listener, error) {
	if cfg.TLS && deps.TLS == nil {
		return nil, errors.New("web: tls is on but no TLS configuration was given")
	}
	fsys := deps.Files
	if fsys == nil {
		fsys = App()
	}
	files, err := loadFiles(fsys)
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		cfg:    cfg,
		log:    log.With("listener", "web"),
		m:      newMetrics(),
		files:  files,
		tcp:    ln,
		scheme: "http",
		conns:  make(chan *conn),
		done:   make(chan struct{}),
		tasks:  newTracker(),
	}
	for _, o := range cfg.AllowedOrigins {
		l.origins = append(l.origins, strings.ToLower(o))
	}
	l.trusted = cfg.Trusted()
	if err := l.m.register(deps.Registry); err != nil {
		return nil, fmt.Errorf("web: register metrics: %w", err)
	}
	var serveLn net.Listener = &countingListener{Listener: ln, l: l}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
		// HTTP/1.1 only: the WebSocket handshake is an HTTP/1.1 upgrade.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	if cfg.TLS {
		tc := deps.TLS.Clone()
		tc.NextProtos = []string{"http/1.1"}
		serveLn = tls.NewListener(serveLn, tc)
		l.scheme = "https"
	}
	l.tasks.add()
	go func() {
		defer l.tasks.done()
		if err := l.srv.Serve(serveLn); !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("web listener failed", "err", err)
			l.shut(fmt.Errorf("web: serve: %w", err))
		}
	}()
	return l, nil
}

// Limits of the HTTP server that have no configuration key.
const (
	// idleTimeout closes a keep-alive connection idle this long.
	idleTimeout = 60 * time.Second
	// maxHeaderBytes bounds a request's headers (no cookies are used).
	maxHeaderBytes = 32 << 10
)

// Accept returns the next WebSocket connection, as a net.Conn. After
// Close it returns net.ErrClosed (or why the HTTP server failed).
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops the listener without blocking: the TCP listener and every
// HTTP connection that carries no session are closed, and upgraded
// connections not yet accepted are closed with 1001 (going away).
// Connections already accepted are the daemon's: Close leaves them
// alone. Later calls do nothing.
func (l *Listener) Close() error {
	l.shut(net.ErrClosed)
	return nil
}

func (l *Listener) shut(err error) {
	l.closeOnce.Do(func() {
		l.err = err
		close(l.done)
		// Shutdown before Close: a connection in the middle of its
		// upgrade (its 101 already written, not yet hijacked, so still
		// the HTTP server's) finishes it and gets its 1001 close frame
		// instead of being cut; other requests in progress get
		// shutdownGrace to finish.
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if l.srv.Shutdown(ctx) != nil {
			l.srv.Close()
		}
	})
}

// shutdownGrace bounds how long Close lets HTTP requests in progress
// finish.
const shutdownGrace = time.Second

// Wait waits, after Close, until the HTTP server and the WebSocket
// handlers have returned and every close frame started by a connection's
// Close was sent (each takes at most about a second), or ctx ends.
func (l *Listener) Wait(ctx context.Context) error {
	return l.tasks.wait(ctx)
}

// Addr is the TCP address listened on.
func (l *Listener) Addr() net.Addr { return l.tcp.Addr() }

// URL is the address of the web client: http://host:port/ (https with
// TLS). An unspecified host (0.0.0.0, ::) is shown as 127.0.0.1 or ::1,
// where a browser on this machine reaches it.
func (l *Listener) URL() string {
	host, port, err := net.SplitHostPort(l.tcp.Addr().String())
	if err != nil {
		return l.scheme + "://" + l.tcp.Addr().String() + "/"
	}
	switch host {
	case "0.0.0.0", "":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return (&url.URL{Scheme: l.scheme, Host: net.JoinHostPort(host, port), Path: "/"}).String()
}

// ServeHTTP serves the app's files and the gateway (see the package
// documentation).
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header(), r.Host)
	if r.URL.Path == WSPath {
		l.serveWS(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		l.m.requests[requestBadMethod].Inc()
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	l.serveFile(w, r)
}

// serveWS upgrades a request to /ws and hands the connection to Accept.
func (l *Listener) serveWS(w http.ResponseWriter, r *http.Request) {
	l.tasks.add()
	defer l.tasks.done()
	if !l.originAllowed(r) {
		l.m.upgrades[upgradeBadOrigin].Inc()
		l.log.Debug("websocket refused: origin not allowed", "origin", r.Header.Get("Origin"), "host", r.Host,
			"remote", r.RemoteAddr)
		http.Error(w, "403 forbidden: a page of this origin may not open a WebSocket here (see web.allowed_origins)",
			http.StatusForbidden)
		return
	}
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		OriginPatterns:  l.origins,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		l.m.upgrades[upgradeBadRequest].Inc()
		l.log.Debug("websocket refused: bad handshake", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newConn(ws, hw.conn, hw.br, &l.bufs, l.m.binary, l.tasks)
	c.remote = clientAddr(hw.conn.RemoteAddr(), r.Header.Values("X-Forwarded-For"), l.trusted)
	t := time.NewTimer(l.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case l.conns <- c:
		l.m.upgrades[upgradeOK].Inc()
		// The daemon counts the connection from now on.
		if cc, ok := underlying(hw.conn).(*countedConn); ok {
			cc.release()
		}
	case <-t.C:
		l.m.upgrades[upgradeBusy].Inc()
		l.log.Warn("websocket closed: the server did not take it in time", "remote", r.RemoteAddr,
			"handshake_timeout", l.cfg.HandshakeTimeout)
		c.closeWith(websocket.StatusTryAgainLater)
	case <-l.done:
		l.m.upgrades[upgradeShutdown].Inc()
		c.closeWith(websocket.StatusGoingAway)
	}
}

// originAllowed checks the Origin of an upgrade request as
// websocket.Accept does with the same patterns (which it checks again),
// so that a refusal is counted and answered by us: no Origin (not a
// browser), the page's own origin (host equal to Host), or a match of
// web.allowed_origins against the origin's host, or against
// scheme://host for a pattern with a scheme.
func (l *Listener) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range l.origins {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(p, strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// hijackWriter is the ResponseWriter websocket.Accept gets: its Hijack
// keeps the hijacked connection (for its addresses and deadlines) and
// swaps net/http's 4 KiB read and write buffers for small ones, which the
// WebSocket keeps for its whole life: an idle session holds 640 bytes of
// them instead of 8 KiB. Reads of a frame's payload bypass the read buffer
// when the caller's buffer is larger; the library writes only control
// frames (conn.Write encodes the data frames itself).
type hijackWriter struct {
	http.ResponseWriter
	conn net.Conn
	br   *bufio.Reader
}

// Buffer sizes of an upgraded connection (see hijackWriter). The write
// buffer only ever holds a control frame: one of up to 125 bytes with its
// 2-byte header must fit whole, so that it reaches the connection in one
// write (see conn.Write).
const (
	wsReadBuf  = 512
	wsWriteBuf = 128
)

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = c
	br := bufio.NewReaderSize(c, wsReadBuf)
	h.br = br
	if n := brw.Reader.Buffered(); n > 0 {
		// Keep what the client sent after its request (nothing,
		// normally), buffered, where websocket.Accept looks for it.
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), c), max(wsReadBuf, n))
		br.Peek(n)
		// The library moves these bytes out of br's sight (into a
		// reader in front of the connection): conn.waitReadable, which
		// trusts br.Buffered, must not run.
		h.br = nil
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, wsWriteBuf)), nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// underlying returns the TCP connection under a TLS one.
func underlying(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

// countingListener counts the connections it accepts in pending, and
// closes those past web.max_http_connections(_per_ip) at once.
type countingListener struct {
	net.Listener
	l *Listener
}

func (cl *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := cl.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, hasIP := limit.IPKey(c.RemoteAddr())
		switch cl.l.pending.Open(ip, hasIP, cl.l.cfg.MaxHTTPConnections, cl.l.cfg.MaxHTTPConnectionsPerIP) {
		case limit.ConnOK:
			return &countedConn{Conn: c, pending: &cl.l.pending, ip: ip, hasIP: hasIP}, nil
		case limit.ConnOverTotal:
			cl.l.m.refused[refuseTotal].Inc()
		default:
			cl.l.m.refused[refusePerIP].Inc()
		}
		cl.l.log.Debug("connection refused by a limit", "remote", c.RemoteAddr().String())
		c.Close()
	}
}

// countedConn is a connection counted in Listener.pending until it is
// closed or handed to the daemon (release).
type countedConn struct {
	net.Conn
	pending  *limit.Conns
	ip       netip.Addr
	hasIP    bool
	released atomic.Bool
}

func (c *countedConn) release() {
	if !c.released.Swap(true) {
		c.pending.Close(c.ip, c.hasIP)
	}
}

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// SyscallConn gives the TCP connection's file descriptor (see
// conn.waitReadable).
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("web: not a socket")
}

// CloseWrite lets net/http half-close a TCP connection as it would
// without the wrapper.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// clientAddr is the address a session counts as: its TCP peer's, or, when
// the peer is a trusted proxy (web.trusted_proxies), the rightmost address
// of X-Forwarded-For that is not itself a trusted proxy (entries to the
// left of it were written by the client and prove nothing). An entry that
// does not parse ends the walk at the address before it.
func clientAddr(peer net.Addr, forwarded []string, trusted []netip.Prefix) net.Addr {
	pa, err := netip.ParseAddrPort(peer.String())
	if len(trusted) == 0 || err != nil || !inPrefixes(pa.Addr().Unmap(), trusted) {
		return peer
	}
	var hops []string
	for _, h := range forwarded {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.Unmap(), 0))
		if !inPrefixes(a.Unmap(), trusted) {
			break
		}
	}
	return client
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
