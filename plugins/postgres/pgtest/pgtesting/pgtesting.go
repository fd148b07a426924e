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
