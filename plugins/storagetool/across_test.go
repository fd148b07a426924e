package storagetool_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// TestDumpAcrossStores migrates every kind of state from sqlite to pebble
// and back (storagetest.DumpAcross): the two built-in stores must carry
// each other's data with nothing lost, ids included.
func TestDumpAcrossStores(t *testing.T) {
	openSQLite := func(t *testing.T) storagetest.DumpStore {
		s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{
			Path: filepath.Join(t.TempDir(), "qq.db"), Synchronous: "off", DedupWindow: 24 * time.Hour,
		})
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	openPebble := func(t *testing.T) storagetest.DumpStore {
		s, err := pebblestore.Open(context.Background(), pebblestore.Options{
			Path: filepath.Join(t.TempDir(), "qq.pebble"), DedupWindow: 24 * time.Hour,
			CacheSize: 8 << 20, MemTableSize: 4 << 20, NoSync: true,
		})
		if err != nil {
			t.Fatalf("open pebble: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Run("sqlite to pebble", func(t *testing.T) { storagetest.DumpAcross(t, openSQLite, openPebble) })
	t.Run("pebble to sqlite", func(t *testing.T) { storagetest.DumpAcross(t, openPebble, openSQLite) })
}
