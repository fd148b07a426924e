package pebblestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// TestBackup: an online checkpoint among writers holds everything acked
// before it, with fsync on commit and without (the WAL is flushed first).
func TestBackup(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		name := "sync"
		if noSync {
			name = "nosync"
		}
		t.Run(name, func(t *testing.T) {
			s := openAt(t, filepath.Join(t.TempDir(), "qq.pebble"), nil, func(o *pebblestore.Options) { o.NoSync = noSync })
			storagetest.RunBackup(t, s, func(t *testing.T, dir string) plugins.Storage {
				// No staging directory is left beside the copy.
				entries, err := os.ReadDir(filepath.Dir(dir))
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".pebble-backup-") {
						t.Errorf("staging directory %s left behind", e.Name())
					}
				}
				return openAt(t, dir, nil)
			})
		})
	}
}

// TestBackupClosed: a closed store makes no backup, and no directory.
func TestBackupClosed(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "qq.pebble"), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "b")
	if err := s.Backup(context.Background(), dir); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("Backup after Close = %v, want ErrClosed", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Backup after Close made %s: %v", dir, err)
	}
}
