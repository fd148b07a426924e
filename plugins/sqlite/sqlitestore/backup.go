package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qqchat/qq/plugins"
)

var _ plugins.Backup = (*Store)(nil)

// Backup implements [plugins.Backup]: it writes a copy of the database to
// dir/<the database's file name> with VACUUM INTO, which reads one
// consistent snapshot (a read transaction of the WAL) while writers go on
// committing; every Write that returned before Backup was called is in
// it. The copy is compacted (no free pages, no WAL), has mode 0600, and
// is fsynced with its directory before Backup returns. dir must be
// absolute and must not exist; it is created with mode 0700 (missing
// parents too) and removed again if the backup fails.
func (s *Store) Backup(ctx context.Context, dir string) (err error) {
	if err := s.backup(ctx, dir); err != nil {
		return fmt.Errorf("sqlitestore: backup to %s: %w", dir, err)
	}
	return nil
}

func (s *Store) backup(ctx context.Context, dir string) (err error) {
	if s.closed.Load() {
		return ErrClosed
	}
	if !filepath.IsAbs(dir) {
		return errors.New("the directory is not an absolute path")
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err // os.ErrExist when it exists
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	// VACUUM INTO writes into an empty file as it finds it: creating it
	// here gives the copy the database's private mode whatever the umask.
	dst := filepath.Join(dir, filepath.Base(s.path))
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// A connection of its own: the writer's must stay free for Writes,
	// and the readers are query_only.
	db, err := sql.Open("sqlite", dsn(s.path, nil, fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS)))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("vacuum into: %w", err)
	}
	if err := db.Close(); err != nil {
		return err
	}
	// VACUUM INTO does not promise to sync what it wrote.
	for _, p := range []string{dst, dir, filepath.Dir(dir)} {
		if err := syncPath(p); err != nil {
			return err
		}
	}
	return nil
}

// syncPath fsyncs the file or directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
