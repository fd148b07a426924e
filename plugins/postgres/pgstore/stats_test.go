package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/postgres/pgstore"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
)

// checkPoolStats checks st's Stats after some use: the pool's size is
// maxConns, it has acquired connections, and its connections are within
// the limit.
func checkPoolStats(t *testing.T, st plugins.Storage, maxConns int64) {
	t.Helper()
	if _, err := st.CountUsers(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	s, ok := plugins.StatsOf(st)
	if !ok {
		t.Fatal("StatsOf = false")
	}
	r, err := s.Stats(testCtx(t))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	p := r.Pool
	if p == nil {
		t.Fatal("Stats().Pool = nil")
	}
	if n := p.IdleConns + p.AcquiredConns + p.ConstructingConns; p.MaxConns != maxConns || n < 1 || n > maxConns ||
		p.Acquires < 1 || p.EmptyAcquires > p.Acquires || p.CanceledAcquires < 0 || p.AcquireWait < 0 {
		t.Errorf("Stats().Pool = %+v, want max %d, some connections and acquires", *p, maxConns)
	}
}

// TestStats: a Store reports its pool's statistics in this process and
// through a plugin process (protocol version 5), and fails to once
// closed.
func TestStats(t *testing.T) {
	t.Parallel()
	pgtesting.Server(t, server)
	t.Run("in process", func(t *testing.T) {
		s := openTestStore(t, pgtesting.NewDB(t, server))
		checkPoolStats(t, s, 8)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stats(testCtx(t)); !errors.Is(err, pgstore.ErrClosed) {
			t.Errorf("Stats after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("plugin process", func(t *testing.T) {
		cfg, err := json.Marshal(map[string]any{"dsn": pgtesting.NewDB(t, server), "max_conns": 4})
		if err != nil {
			t.Fatal(err)
		}
		p, err := plugins.Start(context.Background(), plugins.Spec{
			Name: "postgres", Kind: plugins.KindStorage, Command: []string{os.Args[0], servePluginArg},
			Config: cfg, Env: plugins.Env{DataDir: t.TempDir()}, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		t.Cleanup(p.Kill)
		if v := p.ProtocolVersion(); v != plugins.ProtocolVersion {
			t.Errorf("ProtocolVersion = %d, want %d", v, plugins.ProtocolVersion)
		}
		checkPoolStats(t, p.Storage(), 4)
	})
}
