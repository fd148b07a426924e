package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/qqchat/qq/plugins"
)

// Errors of Backup.
var (
	// ErrBackupDir means the backup directory was refused: not an
	// absolute path.
	ErrBackupDir = errors.New("invalid backup directory")
	// ErrBackupExists means the backup directory exists.
	ErrBackupExists = errors.New("backup directory exists")
	// ErrBackupBusy means another backup is running.
	ErrBackupBusy = errors.New("a backup is already running")
	// ErrBackupUnsupported means the storage in service cannot make
	// backups (see plugins.BackupOf).
	ErrBackupUnsupported = plugins.ErrBackupUnsupported
)

// BackupTimeout is how long a backup may take before it is given up
// (and what it wrote removed).
const BackupTimeout = 10 * time.Minute

// BackupResult describes a backup that was written.
type BackupResult struct {
	Dir      string
	Duration time.Duration
	// Bytes and Files are the size of the copy: its regular files, some
	// of which may be hard links to the store's own (immutable) files.
	Bytes int64
	Files int
}

// backupResult is the result label of qqd_storage_backups_total.
type backupResult uint8

const (
	backupOK backupResult = iota
	backupError
)

var backupResultNames = []string{"ok", "error"}

// Backup has the storage in service write a consistent copy of everything
// it keeps into dir (absolute, not existing; see plugins.Backup) while the
// server keeps serving: every message acknowledged before Backup was
// called is in the copy. One backup runs at a time (ErrBackupBusy for
// another meanwhile), for at most BackupTimeout. Each backup the storage
// attempted is logged and counted (qqd_storage_backups_total); refusals
// (ErrBackupDir, ErrBackupExists, ErrBackupBusy, ErrBackupUnsupported)
// are only returned.
func (s *Server) Backup(ctx context.Context, dir string) (BackupResult, error) {
	if !filepath.IsAbs(dir) {
		return BackupResult{}, fmt.Errorf("%w: %q is not an absolute path", ErrBackupDir, dir)
	}
	dir = filepath.Clean(dir)
	if !s.backupBusy.CompareAndSwap(false, true) {
		return BackupResult{}, ErrBackupBusy
	}
	defer s.backupBusy.Store(false)
	b, ok := plugins.BackupOf(s.plugs.Load().rawStorage)
	if !ok {
		return BackupResult{}, ErrBackupUnsupported
	}
	if _, err := os.Lstat(dir); err == nil {
		return BackupResult{}, fmt.Errorf("%w: %s", ErrBackupExists, dir)
	}

	ctx, cancel := context.WithTimeout(ctx, BackupTimeout)
	defer cancel()
	start := time.Now()
	s.log.Info("storage backup started", "dir", dir)
	err := b.Backup(ctx, dir)
	took := time.Since(start)
	if errors.Is(err, plugins.ErrBackupUnsupported) {
		// The plugin was replaced by one without backups meanwhile.
		return BackupResult{}, ErrBackupUnsupported
	}
	if err != nil {
		s.m.backups[backupError].Inc()
		s.log.Error("storage backup failed", "dir", dir, "duration", took, "err", err)
		return BackupResult{}, fmt.Errorf("daemon: backup to %s: %w", dir, err)
	}
	res := BackupResult{Dir: dir, Duration: took}
	res.Bytes, res.Files, err = dirSize(dir)
	if err != nil {
		// The copy is there; only its size is unknown.
		s.log.Warn("storage backup: cannot size the copy", "dir", dir, "err", err)
	}
	s.m.backups[backupOK].Inc()
	s.m.backupLastSuccess.SetToCurrentTime()
	s.log.Info("storage backup done", "dir", dir, "duration", took, "bytes", res.Bytes, "files", res.Files)
	return res, nil
}

// dirSize returns the total size and number of the regular files under
// dir.
func dirSize(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		bytes += fi.Size()
		files++
		return nil
	})
	return bytes, files, err
}
