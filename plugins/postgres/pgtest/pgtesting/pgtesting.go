// Package pgtesting has the test helpers of package pgtest: one
// PostgreSQL server per test package, started by TestMain, and one fresh
// database per test.
//
//	var server *pgtest.Server // owned by TestMain
//
//	func TestMain(m *testing.M) { os.Exit(pgtesting.Main(m, &server)) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtesting.NewDB(t, server)
//		...
//	}
//
// A package whose tests mostly do without PostgreSQL starts it on first
// use instead, with a Lazy owned by TestMain:
//
//	var pg *pgtesting.Lazy // owned by TestMain
//
//	func TestMain(m *testing.M) {
//		pg = pgtesting.NewLazy()
//		code := m.Run()
//		if err := pg.Close(); err != nil && code == 0 { code = 1 }
//		os.Exit(code)
//	}
//
//	func TestY(t *testing.T) { dsn := pgtesting.NewDB(t, pg.Server(t)) }
//
// Without the PostgreSQL binaries the tests that need a database skip,
// naming the package to install, unless QQ_REQUIRE_POSTGRES=1 (CI), which
// makes Main fail instead.
package pgtesting

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins/postgres/pgtest"
)

// Required reports whether QQ_REQUIRE_POSTGRES=1: the tests must not skip
// for want of PostgreSQL.
func Required() bool { return os.Getenv("QQ_REQUIRE_POSTGRES") == "1" }

// Main starts a server into *srv, runs the tests and closes the server,
// returning the exit code for os.Exit. Without binaries, *srv stays nil
// (NewDB skips) or, when Required, Main fails.
func Main(m *testing.M, srv **pgtest.Server) int {
	s, err := pgtest.Start("")
	switch {
	case errors.Is(err, pgtest.ErrNoBinaries) && !Required():
		fmt.Fprintln(os.Stderr, "pgtesting: skipping the PostgreSQL tests:", err)
		return m.Run()
	case err != nil:
		fmt.Fprintln(os.Stderr, "pgtesting: start PostgreSQL:", err)
		return 1
	}
	*srv = s
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtesting: close PostgreSQL:", err)
		if code == 0 {
			code = 1
		}
	}
	*srv = nil
	return code
}

// Server returns srv, or skips t when there is none (no binaries).
func Server(t testing.TB, srv *pgtest.Server) *pgtest.Server {
	t.Helper()
	if srv == nil {
		if Required() {
			t.Fatal("no PostgreSQL server, and QQ_REQUIRE_POSTGRES=1")
		}
		t.Skipf("no PostgreSQL server: install the package %s (or set QQ_PG_BINDIR)", pgtest.Package)
	}
	return srv
}

// NewDB creates a fresh database on srv for t, dropped when t ends, and
// returns its DSN. It skips t when srv is nil (see Server).
func NewDB(t testing.TB, srv *pgtest.Server) string {
	t.Helper()
	srv = Server(t, srv)
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := srv.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("pgtesting: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.DropDatabase(ctx, name); err != nil {
			t.Errorf("pgtesting: %v", err)
		}
	})
	return dsn
}

// Lazy is a server started on first use (Server) and stopped by Close.
// It is safe for concurrent use.
type Lazy struct {
	base string // TMPDIR when NewLazy ran
	once sync.Once
	srv  *pgtest.Server
	err  error
}

// NewLazy returns a Lazy whose server will live under the temporary
// directory of now (a test binary may point TMPDIR at a private
// directory that it removes before Close runs).
func NewLazy() *Lazy { return &Lazy{base: os.TempDir()} }

// Server starts the server on the first call and returns it; it skips t
// (fails it, when Required) without binaries, and fails it when the
// server did not start.
func (l *Lazy) Server(t testing.TB) *pgtest.Server {
	t.Helper()
	l.once.Do(func() {
		dir, err := pgtest.MkdirTemp(l.base)
		if err != nil {
			l.err = err
			return
		}
		l.srv, l.err = pgtest.Start(dir)
		if l.err != nil {
			_ = os.RemoveAll(dir)
		}
	})
	switch {
	case errors.Is(l.err, pgtest.ErrNoBinaries):
		return Server(t, nil)
	case l.err != nil:
		t.Fatalf("pgtesting: start PostgreSQL: %v", l.err)
	}
	return l.srv
}

// Close stops the server, if it was started, and removes its directory.
func (l *Lazy) Close() error {
	l.once.Do(func() {}) // no start after Close
	if l.srv == nil {
		return nil
	}
	err := l.srv.Close()
	if os.Getenv("QQ_PG_KEEP") != "1" {
		err = errors.Join(err, os.RemoveAll(l.srv.Dir()))
	}
	return err
}
