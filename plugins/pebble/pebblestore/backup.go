package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"

	"github.com/qqchat/qq/plugins"
)

var _ plugins.Backup = (*Store)(nil)

// Backup implements [plugins.Backup] with Pebble's checkpoint: the
// database directory as of the call (its sstables hard-linked when dir is
// on the same filesystem, copied otherwise; the MANIFEST, OPTIONS and WAL
// copied), with the WAL flushed and synced first, so that every Write
// that returned before Backup was called is in it, with Options.NoSync
// too. The store keeps nothing outside Pebble's directory (its free-space
// reserve is a threshold, not a file), so the checkpoint is the whole
// store. dir must be absolute and must not exist; missing parents are
// created with mode 0700. The checkpoint is made in a private directory
// beside dir (".pebble-backup-*", mode 0700) and renamed to dir once it
// is complete and synced, so dir never holds a partial copy and is never
// readable by others; hard-linked files keep the mode of the store's own.
// Writes go on during the checkpoint. The checkpoint itself cannot be
// interrupted: when ctx ends during it, Backup fails once it is done and
// removes it.
func (s *Store) Backup(ctx context.Context, dir string) error {
	if err := s.backup(ctx, dir); err != nil {
		return fmt.Errorf("pebblestore: backup to %s: %w", dir, err)
	}
	return nil
}

func (s *Store) backup(ctx context.Context, dir string) error {
	// Close waits for a backup under way (it takes cmu for writing).
	s.cmu.RLock()
	defer s.cmu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if !filepath.IsAbs(dir) {
		return errors.New("the directory is not an absolute path")
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		return &fs.PathError{Op: "backup", Path: dir, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(parent, ".pebble-backup-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	tmp := filepath.Join(stage, "db")
	if err := s.db.Checkpoint(tmp, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := ctx.Err(); err != nil {
		// The caller gave up meanwhile: it reports a failure, so no copy
		// may appear afterwards.
		return err
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		// rename(2) would replace an empty directory made meanwhile.
		return &fs.PathError{Op: "backup", Path: dir, Err: fs.ErrExist}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	if err := syncDir(parent); err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	return nil
}

// syncDir fsyncs the directory at path.
func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
