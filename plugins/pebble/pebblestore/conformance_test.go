package pebblestore_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// servePluginArg, as the only argument of the test binary, makes it serve
// the pebble storage plugin (see TestMain): the conformance suite runs
// against it out of process, as qqd runs "qqd plugin pebble".
const servePluginArg = "qq-test-serve-pebble-plugin"

func TestMain(m *testing.M) {
	// The test binary doubles as the pebble storage plugin.
	if len(os.Args) == 2 && os.Args[1] == servePluginArg {
		plugins.ServeStorage(pebblestore.New)
		return
	}
	// Plugin children built with -race would sleep 1s on exit to report
	// races.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	goleak.VerifyTestMain(m)
}

// TestConformance runs the storage conformance suite on a Store in this
// process.
func TestConformance(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) plugins.Storage { return openTestStore(t) })
}

// TestConformancePlugin runs the conformance suite on the pebble plugin
// in a plugin process of its own per subtest, supervised as qqd
// supervises its storage: every call crosses gRPC, and Social and Tokens
// are found through the supervisor.
func TestConformancePlugin(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) plugins.Storage {
		sup, err := plugins.Supervise(context.Background(), plugins.Spec{
			Name: "pebble", Kind: plugins.KindStorage, Command: []string{os.Args[0], servePluginArg},
			Config: []byte(`{"path":"qq.pebble","sync":false,"cache_mb":8,"memtable_mb":4}`),
			Env:    plugins.Env{DataDir: t.TempDir()},
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

// TestDump runs the dump round trip (export, import, compare) on Stores
// in this process, through a file and through storagedump.Copy.
func TestDump(t *testing.T) {
	t.Parallel()
	open := func(t *testing.T) storagetest.DumpStore { return openTestStore(t) }
	storagetest.Dump(t, open)
	t.Run("across", func(t *testing.T) { storagetest.DumpAcross(t, open, open) })
}

// openTestStore opens a Store in a temporary directory, closed when t
// ends. It fsyncs nothing, as sqlitestore's runs with synchronous
// normal: TestCrashRecovery fsyncs.
func openTestStore(t *testing.T) *pebblestore.Store {
	s, err := pebblestore.Open(context.Background(), pebblestore.Options{
		Path: filepath.Join(t.TempDir(), "qq.pebble"), DedupWindow: 24 * time.Hour,
		CacheSize: 8 << 20, MemTableSize: 4 << 20, NoSync: true,
	})
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
