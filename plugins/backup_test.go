package plugins_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// checkBackup backs st up to a new directory (with a missing parent) and
// checks that the copy, opened with sqlitestore, holds alice's message to
// bob and takes writes; then that a second backup to the same directory
// and one to a relative directory fail.
func checkBackup(t *testing.T, st plugins.Storage) {
	t.Helper()
	ctx := context.Background()
	b, ok := plugins.BackupOf(st)
	if !ok {
		t.Fatal("BackupOf = false")
	}
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "before the backup", "c1")}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Write = %+v, %v", res, err)
	}
	dir := filepath.Join(t.TempDir(), "backups", "one")
	if err := b.Backup(ctx, dir); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	for _, p := range []string{dir, filepath.Dir(dir)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a directory of mode 0700", p, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "qq.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the copy qq.db: %v, %v; want mode 0600", fi, err)
	}
	cp, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: filepath.Join(dir, "qq.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	msgs, _, err := cp.Pending(ctx, "bob", 10)
	if err != nil || len(msgs) != 1 || msgs[0].Body != "before the backup" || msgs[0].ID != res[0].Message.ID {
		t.Errorf("Pending(bob) in the copy = %+v, %v; want the message", msgs, err)
	}
	if res, err := cp.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("bob", "alice", "in the copy", "c2")}}); err != nil || res[0].Err != nil {
		t.Errorf("Write to the copy = %+v, %v", res, err)
	}

	if err := b.Backup(ctx, dir); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Backup to an existing directory = %v, want an error saying it exists", err)
	}
	if err := b.Backup(ctx, "relative/dir"); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("Backup to a relative directory = %v, want an error", err)
	}
	if _, err := os.Stat("relative"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the relative backup left %q behind: %v", "relative", err)
	}
}

// TestBackupInProcess: a sqlitestore in this process has Backup.
func TestBackupInProcess(t *testing.T) {
	s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{Path: filepath.Join(t.TempDir(), "qq.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkBackup(t, s)
}

// TestBackupVersions: a storage plugin of this package (version 5) makes
// backups over gRPC; one built before Backup (versions up to 3) starts
// and works without it, and so does this package's plugin under a host
// that knows versions 1 to 3 only.
func TestBackupVersions(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		serve       string
		wantVersion int
	}{
		{"storage", 5},
		{"storage-v4", 4},
		{"storage-v3", 3},
		{"storage-v1", 1},
	} {
		t.Run(tt.serve, func(t *testing.T) {
			p := startStorageServing(t, tt.serve, tt.wantVersion)
			if tt.wantVersion >= 4 {
				checkBackup(t, p.Storage())
				return
			}
			if _, ok := plugins.BackupOf(p.Storage()); ok {
				t.Errorf("BackupOf = true at version %d", tt.wantVersion)
			}
		})
	}

	t.Run("under a version 3 host", func(t *testing.T) {
		st := storageUnderHost(t, 3)
		if _, ok := plugins.BackupOf(st); ok {
			t.Error("BackupOf = true at version 3")
		}
		if _, ok := plugins.TokensOf(st); !ok {
			t.Error("TokensOf = false at version 3")
		}
		if err := st.CreateUser(ctx, "alice", "h"); err != nil {
			t.Error(err)
		}
	})
}

// TestSuperviseBackupAcrossRestarts: BackupOf on a supervised storage
// follows the process in service; a Backup obtained earlier fails with
// ErrBackupUnsupported while an older plugin binary runs, and works again
// after the next restart with a new one.
func TestSuperviseBackupAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	env, cfg := sqliteConfig(t, "normal")
	s := supervise(t, plugins.KindStorage, cfg, env)
	st := s.Storage()
	b, ok := plugins.BackupOf(st)
	if !ok {
		t.Fatal("BackupOf = false for a version 4 plugin")
	}
	restart := func(serve string) {
		t.Helper()
		t.Setenv(envServe, serve)
		before := s.Status()
		syscall.Kill(before.Pid, syscall.SIGKILL)
		if !eventually(10*time.Second, func() bool { st := s.Status(); return st.Up && st.Pid != before.Pid }) {
			t.Fatalf("not restarted: %+v", s.Status())
		}
	}
	restart("storage-v3")
	if _, ok := plugins.BackupOf(st); ok {
		t.Error("BackupOf = true after a restart with a version 3 plugin")
	}
	dir := filepath.Join(t.TempDir(), "b")
	if err := b.Backup(ctx, dir); !errors.Is(err, plugins.ErrBackupUnsupported) || !strings.Contains(err.Error(), "protocol version 3") {
		t.Errorf("Backup on a version 3 process = %v, want ErrBackupUnsupported naming version 3", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused backup made %s: %v", dir, err)
	}
	restart("storage")
	if _, ok := plugins.BackupOf(st); !ok {
		t.Error("BackupOf = false after a restart with a version 4 plugin")
	}
	if err := b.Backup(ctx, dir); err != nil {
		t.Errorf("Backup after the restart: %v", err)
	}
	if st := s.Status(); st.Restarts != 2 {
		t.Errorf("restarts = %d, want 2 (a backup is not a failure)", st.Restarts)
	}
}
