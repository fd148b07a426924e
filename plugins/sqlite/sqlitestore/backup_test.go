package sqlitestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// TestBackup: an online backup among writers holds everything acked
// before it, in a private file that sqlitestore opens.
func TestBackup(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "chat.db"), nil)
	storagetest.RunBackup(t, s, func(t *testing.T, dir string) plugins.Storage {
		path := filepath.Join(dir, "chat.db") // the store's own file name
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("the copy has mode %v, want 0600", fi.Mode().Perm())
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 {
			t.Errorf("the backup directory holds %v, %v; want the database file only", entries, err)
		}
		return openAt(t, path, nil)
	})
}

// TestBackupClosed: a closed store makes no backup, and no directory.
func TestBackupClosed(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "qq.db"), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "b")
	if err := s.Backup(context.Background(), dir); !errors.Is(err, sqlitestore.ErrClosed) {
		t.Errorf("Backup after Close = %v, want ErrClosed", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Backup after Close made %s: %v", dir, err)
	}
}

// TestBackupCancelled: a backup whose context is done fails and leaves no
// directory.
func TestBackupCancelled(t *testing.T) {
	s, _, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := filepath.Join(t.TempDir(), "b")
	if err := s.Backup(ctx, dir); err == nil {
		t.Fatal("Backup with a cancelled context succeeded")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed backup left %s: %v", dir, err)
	}
}
