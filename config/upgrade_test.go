package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qqchat/qq/config"
)

// TestCheckStorageUpgrade: pebble by default beside an earlier release's
// qq.db, with no pebble directory, is refused; everything else runs.
func TestCheckStorageUpgrade(t *testing.T) {
	tests := []struct {
		name  string
		files []string // created in the data dir; a trailing "/" makes a directory
		yaml  string   // the configuration file, "" for none
		env   []string
		bad   bool
	}{
		{name: "empty data dir"},
		{name: "data dir not made yet", files: nil, yaml: "data_dir: DIR/not-yet\n"},
		{name: "qq.db, pebble by default", files: []string{"qq.db"}, bad: true},
		{name: "qq.db with its WAL, pebble by default", files: []string{"qq.db", "qq.db-wal", "qq.db-shm"}, bad: true},
		{name: "qq.db, a pebble setting but no plugin chosen", files: []string{"qq.db"},
			yaml: "storage: {config: {cache_mb: 256}}\n", bad: true},
		{name: "qq.db, plugin left empty as in the shipped qq.yaml", files: []string{"qq.db"},
			yaml: "storage:\n  plugin:\n", bad: true},
		{name: "qq.db, sqlite chosen in the file", files: []string{"qq.db"}, yaml: "storage: {plugin: sqlite}\n"},
		{name: "qq.db, sqlite chosen in the environment", files: []string{"qq.db"}, env: []string{"QQD_STORAGE__PLUGIN=sqlite"}},
		{name: "qq.db, pebble chosen", files: []string{"qq.db"}, yaml: "storage: {plugin: pebble}\n"},
		{name: "qq.db, a command plugin", files: []string{"qq.db"}, yaml: "storage: {command: [/opt/qq/mystore]}\n"},
		{name: "qq.db and qq.pebble (migrated)", files: []string{"qq.db", "qq.pebble/"}},
		{name: "qq.pebble alone", files: []string{"qq.pebble/"}},
		{name: "qq.db, pebble elsewhere and there", files: []string{"qq.db", "fast/chat.pebble/"},
			yaml: "storage: {config: {path: fast/chat.pebble}}\n"},
		{name: "qq.db, pebble elsewhere and not there", files: []string{"qq.db", "qq.pebble/"},
			yaml: "storage: {config: {path: fast/chat.pebble}}\n", bad: true},
		{name: "another sqlite file name", files: []string{"chat.db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(dir, f)
				var err error
				if strings.HasSuffix(f, "/") {
					err = os.MkdirAll(p, 0o700)
				} else if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
					err = os.WriteFile(p, []byte("SQLite format 3\x00"), 0o600)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			opts := config.Options{Env: tt.env, Overrides: map[string]any{"data_dir": dir}}
			if tt.yaml != "" {
				opts.File = writeFile(t, strings.ReplaceAll(tt.yaml, "DIR", dir))
				if strings.Contains(tt.yaml, "data_dir") {
					delete(opts.Overrides, "data_dir")
				}
			}
			c, err := config.Load(opts)
			if err != nil {
				t.Fatal(err)
			}
			err = c.CheckStorageUpgrade()
			var ue *config.StorageUpgradeError
			switch {
			case !tt.bad && err != nil:
				t.Fatalf("CheckStorageUpgrade() = %v, want nil", err)
			case tt.bad && !errors.As(err, &ue):
				t.Fatalf("CheckStorageUpgrade() = %v, want a *StorageUpgradeError", err)
			case tt.bad:
				pebble := filepath.Join(dir, "qq.pebble")
				if strings.Contains(tt.yaml, "fast/") {
					pebble = filepath.Join(dir, "fast/chat.pebble")
				}
				want := config.StorageUpgradeError{DataDir: dir, SQLite: filepath.Join(dir, "qq.db"), Pebble: pebble}
				if *ue != want {
					t.Errorf("CheckStorageUpgrade() = %+v, want %+v", *ue, want)
				}
			}
		})
	}
}

// TestStorageUpgradeErrorText: the message names the database and both
// ways out, the migration as a command line to paste.
func TestStorageUpgradeErrorText(t *testing.T) {
	err := &config.StorageUpgradeError{DataDir: "/var/lib/qqd", SQLite: "/var/lib/qqd/qq.db", Pebble: "/var/lib/qqd/qq.pebble"}
	for _, want := range []string{
		"data_dir /var/lib/qqd holds a SQLite database (/var/lib/qqd/qq.db) from an earlier qqd whose default storage was sqlite",
		"set `storage: {plugin: sqlite}` in qq.yaml",
		"qqd storage migrate -from-plugin sqlite -from /var/lib/qqd/qq.db -to-plugin pebble -to /var/lib/qqd/qq.pebble",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	err = &config.StorageUpgradeError{DataDir: "/srv/my qq", SQLite: "/srv/my qq/qq.db", Pebble: "/srv/it's/qq.pebble"}
	if want := `-from '/srv/my qq/qq.db' -to-plugin pebble -to '/srv/it'\''s/qq.pebble'`; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %q does not end with the quoted paths %q", err, want)
	}
}

// TestCheckStorageUpgradeDefault: Default, which no layer changed, counts
// as pebble by default, and a relative data_dir is reported absolute.
func TestCheckStorageUpgradeDefault(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	c := config.Default()
	c.DataDir = "data"
	if err := c.CheckStorageUpgrade(); err != nil {
		t.Fatalf("no data dir: %v", err)
	}
	if err := os.Mkdir("data", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("data/qq.db", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var ue *config.StorageUpgradeError
	if err := c.CheckStorageUpgrade(); !errors.As(err, &ue) || ue.DataDir != filepath.Join(dir, "data") {
		t.Fatalf("CheckStorageUpgrade() = %v, want a StorageUpgradeError for %s", err, filepath.Join(dir, "data"))
	}
	// A Config changed in code to run sqlite is not pebble: nothing to guard.
	c.Storage.Plugin = "sqlite"
	if err := c.CheckStorageUpgrade(); err != nil {
		t.Errorf("sqlite: %v", err)
	}
}
