package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/password"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// Helpers of the internal benchmarks (bench_*_internal_test.go). They build
// the minimum of real objects: a Server from New on a real SQLite store
// (daemontest cannot be imported here: it imports this package), and
// logged-in sessions whose connection is a benchConn, so that what is
// measured is the daemon's CPU and locking, not the kernel's.

// benchPasswords keeps New's dummy hash cheap (daemontest.FastPasswords).
var benchPasswords = password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// newBenchServer returns a Server on a SQLite store in b.TempDir(), with
// the abuse limits lifted as daemontest.Unlimited does and the outbound
// queue raised to 64 MiB, so that a writer goroutine the scheduler runs
// late does not get a session kicked slow_consumer mid-benchmark. opts
// change the configuration further. Both are closed when b ends.
func newBenchServer(b *testing.B, opts ...func(*config.Config)) *Server {
	b.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	// The sqlite store, opened below in process (not the default pebble).
	cfg.Storage.Plugin = "sqlite"
	cfg.Storage.Config = config.StorageDefaults("sqlite")
	l := &cfg.Limits
	l.MaxConnections = 1 << 20
	l.MaxConnectionsPerIP = 1 << 20
	l.SendRate = 1e9
	l.SendBurst = 1 << 30
	l.AuthPerIPPerMinute = 1 << 30
	l.AuthPerAccountPerMinute = 1 << 30
	l.MaxPendingPerUser = 1 << 30
	l.OutboundQueueBytes = 64 << 20
	for _, o := range opts {
		o(cfg)
	}

	conf, err := json.Marshal(cfg.Storage.Config)
	if err != nil {
		b.Fatal(err)
	}
	sopts, err := sqlitestore.ParseConfig(plugins.Env{DataDir: cfg.DataDir}, conf)
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), sopts)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, Deps{Storage: st, Version: "0.0.0-bench", PasswordParams: &benchPasswords})
	if err != nil {
		st.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Errorf("shutdown: %v", err)
		}
		st.Close()
	})
	return srv
}

// benchLogin returns a session of srv logged in as user, as a successful
// login leaves it (minus the storage calls): in the router, holding the
// user's send bucket. Its connection is a benchConn.
func benchLogin(srv *Server, user string) *session {
	return benchLoginOn(srv, user, &benchConn{})
}

// benchLoginOn is benchLogin on conn.
func benchLoginOn(srv *Server, user string, conn net.Conn) *session {
	s := newSession(srv, conn)
	s.user = user
	s.loggedIn.Store(true)
	srv.router.Join(s)
	s.holdSendBucket()
	return s
}

// benchConn is the server side of a connection whose client reads
// everything at once: a Write succeeds at once and only counts its bytes.
// Nothing reads from it (the benchmarks call handle directly).
type benchConn struct{ written atomic.Int64 }

var benchAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (c *benchConn) Read([]byte) (int, error) { return 0, io.EOF }
func (c *benchConn) Write(p []byte) (int, error) {
	c.written.Add(int64(len(p)))
	return len(p), nil
}
func (c *benchConn) Close() error                     { return nil }
func (c *benchConn) LocalAddr() net.Addr              { return benchAddr }
func (c *benchConn) RemoteAddr() net.Addr             { return benchAddr }
func (c *benchConn) SetDeadline(time.Time) error      { return nil }
func (c *benchConn) SetReadDeadline(time.Time) error  { return nil }
func (c *benchConn) SetWriteDeadline(time.Time) error { return nil }

// benchTCP returns a function that makes loopback TCP connections and
// returns their server side, a *net.TCPConn as Serve would hand to a
// session; a goroutine reads and discards everything on the client side.
// All of them are closed when b ends; the benchmark must have let its
// writers finish by then (srv.writers.Wait).
func benchTCP(b *testing.B) func() net.Conn {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var conns []net.Conn
	b.Cleanup(func() {
		ln.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			c.Close()
			b.Fatal(err)
		}
		conns = append(conns, c, sc)
		go io.Copy(io.Discard, c)
		return sc
	}
}

// benchWritten returns the bytes written to s's connection so far, or -1
// when it is not a benchConn.
func benchWritten(s *session) int64 {
	if c, ok := s.conn.(*benchConn); ok {
		return c.written.Load()
	}
	return -1
}

// benchPerUnit reports ns/<unit> and allocs/<unit> for a benchmark whose op
// handles perOp units (messages, frames), from the elapsed time and the
// mallocs since before (read with runtime.ReadMemStats before the loop).
func benchPerUnit(b *testing.B, before *runtime.MemStats, ops, perOp int, unit string) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	n := float64(ops) * float64(perOp)
	if n == 0 {
		return
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/"+unit)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/"+unit)
}
