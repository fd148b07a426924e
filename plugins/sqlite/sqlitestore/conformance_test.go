package sqlitestore_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// servePluginArg, as the only argument of the test binary, makes it serve
// the sqlite storage plugin (see TestMain): the conformance suite runs
// against it out of process, as qqd runs "qqd plugin sqlite".
const servePluginArg = "qq-test-serve-sqlite-plugin"

// TestConformance runs the storage conformance suite on a Store in this
// process.
func TestConformance(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) plugins.Storage { return openTestStore(t, "normal") })
}

// TestConformancePlugin runs the conformance suite on the sqlite plugin in
// a plugin process of its own per subtest, supervised as qqd supervises
// its storage: every call crosses gRPC, and Social is found through the
// supervisor (the process negotiated protocol version 2).
func TestConformancePlugin(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) plugins.Storage {
		sup, err := plugins.Supervise(context.Background(), plugins.Spec{
			Name: "sqlite", Kind: plugins.KindStorage, Command: []string{os.Args[0], servePluginArg},
			Config: []byte(`{"path":"qq.db","synchronous":"normal"}`),
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
	open := func(t *testing.T) storagetest.DumpStore { return openTestStore(t, "off") }
	storagetest.Dump(t, open)
	t.Run("across", func(t *testing.T) { storagetest.DumpAcross(t, open, open) })
}

// openTestStore opens a Store in a temporary directory with the given
// synchronous setting, closed when t ends.
func openTestStore(t *testing.T, synchronous string) *sqlitestore.Store {
	s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{
		Path: filepath.Join(t.TempDir(), "qq.db"), Synchronous: synchronous, DedupWindow: 24 * time.Hour,
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
