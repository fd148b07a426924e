package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// withoutBackup is a storage that cannot make backups.
type withoutBackup struct{ plugins.Storage }

// TestBackup: Server.Backup on a real SQLite store writes the copy,
// counts it by result and sets the time of the last success; refusals
// are errors of their own and are not counted.
func TestBackup(t *testing.T) {
	cfg := daemontest.Config(t)
	st := daemontest.OpenStore(t, cfg)
	reg := prometheus.NewRegistry()
	srv := daemontest.StartDeps(t, cfg, daemon.Deps{Storage: st, Registry: reg})
	srv.User(t, "alice")
	ctx := context.Background()
	counted := func(result string) float64 {
		return daemontest.MetricValue(t, reg, "qqd_storage_backups_total", "result", result)
	}

	dir := filepath.Join(t.TempDir(), "b1")
	start := time.Now()
	res, err := srv.Daemon.Backup(ctx, dir)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if res.Dir != dir || res.Files != 1 || res.Bytes <= 0 || res.Duration <= 0 {
		t.Errorf("Backup = %+v; want dir, one file, a size and a duration", res)
	}
	if fi, err := os.Stat(filepath.Join(dir, "qq.db")); err != nil || fi.Size() != res.Bytes {
		t.Errorf("the copy: %v, %v; want %d bytes", fi, err, res.Bytes)
	}
	cp, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: filepath.Join(dir, "qq.db")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.PasswordHash(ctx, "alice"); err != nil {
		t.Errorf("alice in the copy: %v", err)
	}
	cp.Close()
	if ok, failed := counted("ok"), counted("error"); ok != 1 || failed != 0 {
		t.Errorf("backups ok %v, error %v; want 1, 0", ok, failed)
	}
	last := daemontest.MetricValue(t, reg, "qqd_storage_backup_last_success_timestamp_seconds")
	if last < float64(start.Unix()) || last > float64(time.Now().Unix()+1) {
		t.Errorf("last success at %v, want between %v and now", last, start.Unix())
	}

	// Refusals.
	if _, err := srv.Daemon.Backup(ctx, dir); !errors.Is(err, daemon.ErrBackupExists) {
		t.Errorf("Backup to an existing dir = %v, want ErrBackupExists", err)
	}
	if _, err := srv.Daemon.Backup(ctx, "b2"); !errors.Is(err, daemon.ErrBackupDir) {
		t.Errorf("Backup to a relative dir = %v, want ErrBackupDir", err)
	}
	// A failure: the parent is a file.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Daemon.Backup(ctx, filepath.Join(file, "b3")); err == nil || errors.Is(err, daemon.ErrBackupExists) {
		t.Errorf("Backup under a file = %v, want a failure", err)
	}
	if ok, failed := counted("ok"), counted("error"); ok != 1 || failed != 1 {
		t.Errorf("backups ok %v, error %v; want 1, 1", ok, failed)
	}
	if got := daemontest.MetricValue(t, reg, "qqd_storage_backup_last_success_timestamp_seconds"); got != last {
		t.Errorf("last success moved to %v by a failure", got)
	}
}

// TestBackupUnsupported: a storage without plugins.Backup is refused
// with ErrBackupUnsupported, whose text the operator sees.
func TestBackupUnsupported(t *testing.T) {
	cfg := daemontest.Config(t)
	st := daemontest.OpenStore(t, cfg)
	srv := daemontest.StartDeps(t, cfg, daemon.Deps{Storage: withoutBackup{st}})
	dir := filepath.Join(t.TempDir(), "b")
	_, err := srv.Daemon.Backup(context.Background(), dir)
	if !errors.Is(err, daemon.ErrBackupUnsupported) || err.Error() != "backup not supported by this storage plugin" {
		t.Errorf("Backup = %v, want ErrBackupUnsupported", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused backup made %s: %v", dir, err)
	}
}
