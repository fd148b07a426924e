package pgstore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// TestDump runs the dump round trip (export, import, compare) on Stores
// in this process, and across stores: SQLite to PostgreSQL and
// PostgreSQL to Pebble, what `qqd storage migrate` does.
func TestDump(t *testing.T) {
	t.Parallel()
	pgtesting.Server(t, server) // skips without PostgreSQL
	open := func(t *testing.T) storagetest.DumpStore { return openTestStore(t, pgtesting.NewDB(t, server)) }
	storagetest.Dump(t, open)
	t.Run("across", func(t *testing.T) { storagetest.DumpAcross(t, open, open) })
	t.Run("sqlite to postgres", func(t *testing.T) { storagetest.DumpAcross(t, openSQLite, open) })
	t.Run("postgres to pebble", func(t *testing.T) { storagetest.DumpAcross(t, open, openPebble) })
}

func openSQLite(t *testing.T) storagetest.DumpStore {
	s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{
		Path: filepath.Join(t.TempDir(), "qq.db"), Synchronous: "off", DedupWindow: 24 * time.Hour,
	})
	if err != nil {
		t.Fatalf("sqlitestore.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func openPebble(t *testing.T) storagetest.DumpStore {
	s, err := pebblestore.Open(context.Background(), pebblestore.Options{
		Path: filepath.Join(t.TempDir(), "qq.pebble"), DedupWindow: 24 * time.Hour,
		CacheSize: 8 << 20, MemTableSize: 4 << 20, NoSync: true,
	})
	if err != nil {
		t.Fatalf("pebblestore.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
