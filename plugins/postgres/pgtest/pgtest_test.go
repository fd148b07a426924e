package pgtest_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/plugins/postgres/pgtest"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
)

// TestServer starts a server, creates a database, restarts the server on
// the same port with the data kept, and closes it: nothing is left.
func TestServer(t *testing.T) {
	if _, err := pgtest.Binaries(); errors.Is(err, pgtest.ErrNoBinaries) {
		pgtesting.Server(t, nil) // skips, or fails when required
	}
	srv, err := pgtest.Start("")
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = srv.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := srv.CreateDatabase(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)")
	port := srv.Port
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if srv.Port != port {
		t.Errorf("port after restart = %d, want %d", srv.Port, port)
	}
	exec("SELECT 1/x FROM kept")
	dir := srv.Dir()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v; want it removed", dir, err)
	}
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Error("connected after Close")
	}
}
