// Package daemontest runs a real qqd protocol core in-process for tests: a
// TCP listener on 127.0.0.1:0, a SQLite database (the sqlite storage
// plugin's store, chosen explicitly) in the test's temporary directory, and raw-protocol connections with Send/Expect helpers in the
// style of NATS' test package. Everything it starts is stopped by
// t.Cleanup.
package daemontest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/password"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// Timeout bounds every wait of this package.
const Timeout = 10 * time.Second

// FastPasswords are Argon2id parameters cheap enough for tests that
// register many users. Production uses password.OWASP.
var FastPasswords = password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Server is a running in-process qqd.
type Server struct {
	Addr   string
	Daemon *daemon.Server
	Config *config.Config
	Store  plugins.Storage
	t      testing.TB
	done   chan error
	once   sync.Once
}

// Start runs a qqd with the default configuration, changed by
// [Unlimited] and then by opts, on 127.0.0.1:0 with its data in
// t.TempDir(): like FastPasswords, it keeps tests that all come from
// 127.0.0.1 clear of the abuse limits; a test of a limit sets it in opts.
// Set QQ_TEST_LOG=1 to see its log.
func Start(t testing.TB, opts ...func(*config.Config)) *Server {
	t.Helper()
	return StartWith(t, Config(t, opts...), nil)
}

// Config returns the configuration Start runs with: the defaults on
// 127.0.0.1:0 with data in t.TempDir(), on the sqlite storage with its
// default settings, changed by Unlimited and then by opts.
func Config(t testing.TB, opts ...func(*config.Config)) *config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	SQLite(cfg)
	Unlimited(cfg)
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

// SQLite makes cfg run on the sqlite storage plugin with its default
// settings, not on the default pebble: this package opens the store
// itself, in process ([OpenStore], [StartDeps]), and its users read and
// wrap the *sqlitestore.Store it returns. The protocol core under test is
// the same on either store; qqd's own tests (daemon/qqd) run the default.
// [Config] calls it; a test that builds its configuration from
// config.Default() and lets this package open the store calls it too.
func SQLite(cfg *config.Config) {
	cfg.Storage.Plugin = "sqlite"
	cfg.Storage.Command = nil
	cfg.Storage.Config = config.StorageDefaults("sqlite")
}

// OpenStore opens the SQLite store that cfg names, as StartDeps does when
// it is given no storage, and closes it when the test ends. Tests that
// wrap the real store (to inject faults) start from it.
func OpenStore(t testing.TB, cfg *config.Config) *sqlitestore.Store {
	t.Helper()
	st := openStore(t, cfg, nil)
	t.Cleanup(func() { st.Close() })
	return st
}

func openStore(t testing.TB, cfg *config.Config, log *slog.Logger) *sqlitestore.Store {
	t.Helper()
	if cfg.Storage.Plugin != "sqlite" || len(cfg.Storage.Command) > 0 {
		t.Fatalf("daemontest: opens the sqlite store, and the configuration names storage %q: call daemontest.SQLite(cfg)", cfg.Storage.Label())
	}
	conf, err := json.Marshal(cfg.Storage.Config)
	if err != nil {
		t.Fatalf("daemontest: storage config: %v", err)
	}
	opts, err := sqlitestore.ParseConfig(plugins.Env{DataDir: cfg.DataDir}, conf)
	if err != nil {
		t.Fatalf("daemontest: storage config: %v", err)
	}
	opts.Logger = log
	st, err := sqlitestore.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("daemontest: open storage: %v", err)
	}
	return st
}

// StartWith runs a qqd with cfg as it is, on storage st (nil: open the
// SQLite database that cfg names). The caller's storage is not closed.
func StartWith(t testing.TB, cfg *config.Config, st plugins.Storage) *Server {
	t.Helper()
	return StartWithPlugins(t, cfg, st, nil)
}

// StartWithPlugins is StartWith with a filter chain.
func StartWithPlugins(t testing.TB, cfg *config.Config, st plugins.Storage, filters []plugins.FilterLink) *Server {
	t.Helper()
	return StartDeps(t, cfg, daemon.Deps{Storage: st, Filters: filters})
}

// StartDeps runs a qqd with cfg as it is and deps (for example a
// Registry). A nil deps.Storage opens the SQLite database that cfg names;
// Logger, Version and PasswordParams default as in Start.
func StartDeps(t testing.TB, cfg *config.Config, deps daemon.Deps) *Server {
	t.Helper()
	st := deps.Storage
	var log *slog.Logger
	if os.Getenv("QQ_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ownStore := st == nil
	if ownStore {
		st = openStore(t, cfg, log)
	}
	deps.Storage = st
	if deps.Logger == nil {
		deps.Logger = log
	}
	if deps.Version == "" {
		deps.Version = "0.0.0-test"
	}
	if deps.PasswordParams == nil {
		deps.PasswordParams = &FastPasswords
	}
	d, err := daemon.New(cfg, deps)
	if err != nil {
		t.Fatalf("daemontest: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatalf("daemontest: listen: %v", err)
	}
	s := &Server{Addr: ln.Addr().String(), Daemon: d, Config: cfg, Store: st, t: t, done: make(chan error, 1)}
	go func() { s.done <- d.Serve(ln) }()
	t.Cleanup(func() {
		s.Shutdown()
		if ownStore {
			st.Close()
		}
	})
	return s
}

// Shutdown stops the server and waits for Serve to return. Calls after
// the first do nothing.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := s.Daemon.Shutdown(ctx); err != nil {
			s.t.Errorf("daemontest: shutdown: %v", err)
		}
		if err := <-s.done; !errors.Is(err, daemon.ErrServerClosed) {
			s.t.Errorf("daemontest: serve: %v", err)
		}
	})
}

// Conn is a raw QQP/1 connection.
type Conn struct {
	t     testing.TB
	C     net.Conn
	fr    *protocol.FrameReader
	Hello *protocol.ServerFrame
}

// Dial connects to the server and reads the hello frame.
func (s *Server) Dial(t testing.TB) *Conn {
	t.Helper()
	c := DialRaw(t, s.Addr)
	c.Hello = c.Expect(`{"type":"hello","server":"qqd","proto":1}`)
	return c
}

// DialFrom is Dial from the local IP address local: another address of
// the loopback range (e.g. "127.0.0.2") looks like another client to the
// per-IP limits.
func (s *Server) DialFrom(t testing.TB, local string) *Conn {
	t.Helper()
	c := DialRawFrom(t, s.Addr, local)
	c.Hello = c.Expect(`{"type":"hello","server":"qqd","proto":1}`)
	return c
}

// DialRaw connects to addr without reading anything.
func DialRaw(t testing.TB, addr string) *Conn {
	t.Helper()
	return DialRawFrom(t, addr, "")
}

// DialRawFrom is DialRaw from the local IP address local ("": any).
func DialRawFrom(t testing.TB, addr, local string) *Conn {
	t.Helper()
	d := net.Dialer{Timeout: Timeout}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("daemontest: dial: %v", err)
	}
	return NewConn(t, nc)
}

// NewConn wraps nc, a connection to a qqd speaking QQP/1 (a WebSocket
// from web.Dial, say), without reading anything. It is closed when the
// test ends.
func NewConn(t testing.TB, nc net.Conn) *Conn {
	t.Cleanup(func() { nc.Close() })
	return &Conn{t: t, C: nc, fr: protocol.NewFrameReader(nc, 1<<22)}
}

// Send writes line, adding a "\n" unless it ends with one.
func (c *Conn) Send(line string) {
	c.t.Helper()
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	c.SendRaw([]byte(line))
}

// SendRaw writes b as it is.
func (c *Conn) SendRaw(b []byte) {
	c.t.Helper()
	c.C.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.C.Write(b); err != nil {
		c.t.Fatalf("daemontest: write: %v", err)
	}
}

// ReadLine returns the next frame as text.
func (c *Conn) ReadLine() string {
	c.t.Helper()
	line, err := c.readLine(Timeout)
	if err != nil {
		c.t.Fatalf("daemontest: read: %v", err)
	}
	return line
}

func (c *Conn) readLine(d time.Duration) (string, error) {
	c.C.SetReadDeadline(time.Now().Add(d))
	b, err := c.fr.ReadFrame()
	return string(b), err
}

// TryRead returns the next frame as text, or the read error.
func (c *Conn) TryRead() (string, error) { return c.readLine(Timeout) }

// Read returns the next frame decoded.
func (c *Conn) Read() *protocol.ServerFrame {
	c.t.Helper()
	line := c.ReadLine()
	var f protocol.ServerFrame
	if err := json.Unmarshal([]byte(line), &f); err != nil {
		c.t.Fatalf("daemontest: frame %q: %v", line, err)
	}
	return &f
}

// Expect reads the next frame and checks that every field of want (a JSON
// object) has the same value in it; other fields are not compared.
func (c *Conn) Expect(want string) *protocol.ServerFrame {
	c.t.Helper()
	line := c.ReadLine()
	if err := Match(line, want); err != nil {
		c.t.Fatalf("daemontest: %v", err)
	}
	var f protocol.ServerFrame
	json.Unmarshal([]byte(line), &f)
	return &f
}

// Match reports how frame differs from the fields of want.
func Match(frame, want string) error {
	var got, w map[string]any
	if err := json.Unmarshal([]byte(frame), &got); err != nil {
		return fmt.Errorf("frame %s is not a JSON object: %v", frame, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		panic("daemontest: bad want " + want)
	}
	for k, v := range w {
		if gv, ok := got[k]; !ok || !reflect.DeepEqual(gv, v) {
			if len(frame) > 300 {
				frame = frame[:300] + "…"
			}
			return fmt.Errorf("frame %s: field %q = %v, want %v", frame, k, gv, v)
		}
	}
	return nil
}

// ExpectClosed checks that the server closes the connection within Timeout
// without sending another frame.
func (c *Conn) ExpectClosed() {
	c.t.Helper()
	line, err := c.readLine(Timeout)
	if err == nil {
		c.t.Fatalf("daemontest: got %s, want the connection closed", line)
	}
	if !errors.Is(err, io.EOF) && !isReset(err) {
		c.t.Fatalf("daemontest: read: %v, want EOF", err)
	}
}

// ExpectSilence checks that no frame arrives within d.
func (c *Conn) ExpectSilence(d time.Duration) {
	c.t.Helper()
	line, err := c.readLine(d)
	if err == nil {
		c.t.Fatalf("daemontest: got %s, want nothing", line)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("daemontest: read: %v, want a timeout", err)
	}
	// The FrameReader keeps the error: start a fresh one on the conn. Any
	// partial frame read so far is lost, and there was none.
	c.fr = protocol.NewFrameReader(c.C, 1<<22)
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// Register registers user with password pw and expects ok.
func (c *Conn) Register(user, pw string) {
	c.t.Helper()
	c.Send(fmt.Sprintf(`{"type":"register","id":"reg","user":%q,"password":%q}`, user, pw))
	c.Expect(`{"type":"ok","id":"reg"}`)
}

// Login logs in and returns the pending count.
func (c *Conn) Login(user, pw string) int64 {
	c.t.Helper()
	c.Send(fmt.Sprintf(`{"type":"login","id":"login","user":%q,"password":%q}`, user, pw))
	f := c.Expect(`{"type":"ok","id":"login"}`)
	return f.Pending
}

// User registers user (password "password1") on a new connection, logs in
// and returns the connection.
func (s *Server) User(t testing.TB, user string) *Conn {
	t.Helper()
	c := s.Dial(t)
	c.Send(fmt.Sprintf(`{"type":"register","id":"reg","user":%q,"password":"password1"}`, user))
	f := c.Read()
	if f.Type != protocol.TypeOK && f.Code != protocol.CodeUserExists {
		t.Fatalf("daemontest: register %s: %+v", user, f)
	}
	c.Login(user, "password1")
	return c
}

// RunWithPrivateTmp runs m's tests with TMPDIR pointing at a directory of
// their own, removed afterwards, and returns the exit code for os.Exit.
// Plugin processes put their sockets under TMPDIR, and a process a test
// kills on purpose cannot remove its own.
func RunWithPrivateTmp(m *testing.M) int {
	dir, err := os.MkdirTemp("", "qq-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemontest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv("TMPDIR", dir)
	return m.Run()
}

// SyncBuffer is a bytes.Buffer safe for concurrent use, for tests that
// collect a log or a program's output while it runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Restartable is a Server that can be shut down and started again on the
// same address and data, as a restart of qqd looks to its clients.
type Restartable struct {
	*Server
	t   testing.TB
	cfg *config.Config
	st  *sqlitestore.Store
}

// StartRestartable is Start with a store that outlives each Server, so
// that Restart can start a new one on it after Shutdown. Its kicked
// shutdown asks clients to come back within 20 ms (reconnect_spread),
// unless opts say otherwise.
func StartRestartable(t testing.TB, opts ...func(*config.Config)) *Restartable {
	t.Helper()
	opts = append([]func(*config.Config){func(c *config.Config) { c.ReconnectSpread = 20 * time.Millisecond }}, opts...)
	cfg := Config(t, opts...)
	st := OpenStore(t, cfg)
	s := StartWith(t, cfg, st)
	again := *cfg
	again.Listen = s.Addr
	return &Restartable{Server: s, t: t, cfg: &again, st: st}
}

// Restart starts a new server on the address and data of the one that
// was shut down.
func (r *Restartable) Restart() {
	r.t.Helper()
	r.Server = StartWith(r.t, r.cfg, r.st)
}

// FloodStuckReader sends n messages of 8,000 bytes from sender to the
// user "slow", whose connection does not read: enough to fill the
// kernel's socket buffers on both ends, then the server's queue. Every 50
// messages it checks that a message to fast still arrives within 2 s: a
// connection that does not read never delays the others. It returns n.
func FloodStuckReader(t testing.TB, sender, fast *Conn, n int) int {
	t.Helper()
	body := strings.Repeat("z", 8000)
	for i := range n {
		sender.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"slow","body":%q}`, i, body))
		sender.Expect(fmt.Sprintf(`{"type":"ok","id":%d}`, i))
		if i%50 == 0 {
			start := time.Now()
			sender.Send(`{"type":"send","id":"f","to":"fast","body":"quick"}`)
			sender.Expect(`{"type":"ok","id":"f"}`)
			fast.Expect(`{"type":"msg","body":"quick"}`)
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("daemontest: fast delivery took %v while a reader is stuck", d)
			}
		}
	}
	return n
}
