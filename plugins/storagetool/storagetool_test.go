package storagetool_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/plugins/storagetool"
)

func TestStoreNames(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		cfg      func(*config.Config)
		wantPath string
		wantErr  error
	}{
		{"default", func(c *config.Config) {}, filepath.Join(dir, "qq.pebble"), nil},
		{"sqlite default", func(c *config.Config) { c.Storage.Plugin, c.Storage.Config = "sqlite", nil }, filepath.Join(dir, "qq.db"), nil},
		{"sqlite path", func(c *config.Config) {
			c.Storage.Plugin, c.Storage.Config = "sqlite", map[string]any{"path": "chat.db"}
		}, filepath.Join(dir, "chat.db"), nil},
		{"pebble default", func(c *config.Config) { c.Storage.Plugin, c.Storage.Config = "pebble", nil }, filepath.Join(dir, "qq.pebble"), nil},
		{"pebble absolute", func(c *config.Config) {
			c.Storage.Plugin, c.Storage.Config = "pebble", map[string]any{"path": "/srv/qq.pebble"}
		}, "/srv/qq.pebble", nil},
		{"third-party command", func(c *config.Config) { c.Storage.Command = []string{"/usr/bin/mystore"} }, "", storagetool.ErrNotBuiltin},
		{"unknown plugin", func(c *config.Config) { c.Storage.Plugin = "mysql" }, "", storagetool.ErrNotBuiltin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = dir
			tt.cfg(cfg)
			st, err := storagetool.FromConfig(cfg)
			if !errors.Is(err, tt.wantErr) || (err == nil && st.Path() != tt.wantPath) {
				t.Errorf("FromConfig = %v (path %q), %v; want path %q, %v", st, st.Path(), err, tt.wantPath, tt.wantErr)
			}
		})
	}
	if st, err := storagetool.At("pebble", "rel/qq.pebble"); err != nil || !filepath.IsAbs(st.Path()) || st.String() != "pebble "+st.Path() {
		t.Errorf("At(pebble, rel) = %v, %v", st, err)
	}
	if _, err := storagetool.At("mysql", "x"); !errors.Is(err, storagetool.ErrNotBuiltin) {
		t.Errorf("At(mysql) = %v", err)
	}
}
