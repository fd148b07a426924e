package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/postgres/pgstore"
	"github.com/qqchat/qq/plugins/postgres/pgtest"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
	"github.com/qqchat/qq/plugins/storagetest"
)

// servePluginArg, as the only argument of the test binary, makes it serve
// the postgres storage plugin (see TestMain): the conformance suite runs
// against it out of process, as qqd runs "qqd plugin postgres".
const servePluginArg = "qq-test-serve-postgres-plugin"

// server is the package's PostgreSQL server, owned by TestMain.
var server *pgtest.Server

func TestMain(m *testing.M) {
	// The test binary doubles as the postgres storage plugin.
	if len(os.Args) == 2 && os.Args[1] == servePluginArg {
		plugins.ServeStorage(pgstore.New)
		return
	}
	// Plugin children built with -race would sleep 1s on exit to report
	// races.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	code := pgtesting.Main(m, &server)
	if code == 0 {
		// Every Store closed its pool, every plugin process is gone.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestConformance runs the storage conformance suite on a Store in this
// process, on a fresh database per subtest.
func TestConformance(t *testing.T) {
	t.Parallel()
	pgtesting.Server(t, server) // skips without PostgreSQL
	storagetest.Run(t, func(t *testing.T) plugins.Storage { return openTestStore(t, pgtesting.NewDB(t, server)) })
}

// TestConformancePlugin runs the conformance suite on the postgres plugin
// in a plugin process of its own per subtest, supervised as qqd
// supervises its storage: every call crosses gRPC.
func TestConformancePlugin(t *testing.T) {
	t.Parallel()
	pgtesting.Server(t, server)
	storagetest.Run(t, func(t *testing.T) plugins.Storage {
		cfg, err := json.Marshal(map[string]any{"dsn": pgtesting.NewDB(t, server), "max_conns": 4})
		if err != nil {
			t.Fatal(err)
		}
		sup, err := plugins.Supervise(context.Background(), plugins.Spec{
			Name: "postgres", Kind: plugins.KindStorage, Command: []string{os.Args[0], servePluginArg},
			Config: cfg, Env: plugins.Env{DataDir: t.TempDir()},
			Logger: slog.New(slog.DiscardHandler),
		}, plugins.SuperviseOptions{})
		if err != nil {
			t.Fatalf("Supervise: %v", err)
		}
		t.Cleanup(sup.Close)
		t.Cleanup(func() { // before Close
			if st := sup.Status(); st.Restarts != 0 {
				t.Errorf("the plugin process was restarted: %+v", st)
			}
		})
		return sup.Storage()
	})
}

// openTestStore opens a Store on dsn, closed when t ends.
func openTestStore(t testing.TB, dsn string) *pgstore.Store {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"dsn": dsn, "max_conns": 8})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := pgstore.ParseConfig(plugins.Env{DataDir: t.TempDir()}, cfg)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	opts.DedupWindow = 24 * time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgstore.Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
