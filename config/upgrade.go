package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// StorageUpgradeError is the error of [Config.CheckStorageUpgrade]: the
// data directory holds the SQLite database of a qqd whose default storage
// was sqlite, and the configuration would start the now default pebble
// plugin on an empty store beside it.
type StorageUpgradeError struct {
	// DataDir is the data directory, SQLite the database found in it and
	// Pebble the directory the pebble plugin would create, all absolute
	// where they could be made so.
	DataDir, SQLite, Pebble string
}

func (e *StorageUpgradeError) Error() string {
	return fmt.Sprintf("data_dir %s holds a SQLite database (%s) from an earlier qqd whose default storage was sqlite; "+
		"the default is now pebble, and qqd does not start an empty pebble store beside it. Either:\n"+
		"  - keep using it: set `storage: {plugin: sqlite}` in qq.yaml, or\n"+
		"  - migrate it to pebble (with qqd stopped): qqd storage migrate -from-plugin sqlite -from %s -to-plugin pebble -to %s",
		e.DataDir, e.SQLite, shellWord(e.SQLite), shellWord(e.Pebble))
}

// CheckStorageUpgrade returns a *[StorageUpgradeError] when c runs the
// pebble plugin only because it is the default (no layer set
// storage.plugin, and storage.command is empty), <data_dir>/qq.db exists
// (the sqlite plugin's database, which earlier releases used by default)
// and the pebble plugin's directory (storage.config.path) does not: qqd
// would otherwise start on an empty store and leave every account and
// message of the site behind. Once the directory exists (a migration made
// it, or pebble ran before), or sqlite or pebble is chosen explicitly, it
// returns nil. It reads the file system but changes nothing; an error
// other than "does not exist" from it is returned too.
//
// qqd checks at start, for -t and on every reload; Load does not, so that
// tools that read the configuration to work on such a data directory can.
func (c *Config) CheckStorageUpgrade() error {
	s := c.Storage
	if s.chosen || len(s.Command) > 0 || s.Plugin != "pebble" {
		return nil
	}
	dir := c.DataDir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	inDir := func(path string) string {
		if filepath.IsAbs(path) {
			return path
		}
		return filepath.Join(dir, path)
	}
	sqlite := inDir(StorageDefaults("sqlite")["path"].(string))
	pebble, _ := s.Config["path"].(string)
	if pebble == "" {
		pebble = StorageDefaults("pebble")["path"].(string)
	}
	pebble = inDir(pebble)
	switch found, err := exists(sqlite); {
	case err != nil:
		return fmt.Errorf("check data_dir for a sqlite database: %w", err)
	case !found:
		return nil
	}
	switch found, err := exists(pebble); {
	case err != nil:
		return fmt.Errorf("check data_dir for a pebble store: %w", err)
	case found:
		return nil
	}
	return &StorageUpgradeError{DataDir: dir, SQLite: sqlite, Pebble: pebble}
}

// exists reports whether path names a file (of any type).
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// shellWord returns s as one word of a POSIX shell command line: as it is
// when that is safe, else single-quoted.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
