package pebblestore_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
)

func TestParseConfig(t *testing.T) {
	env := plugins.Env{DataDir: "/var/lib/qqd"}
	for _, tc := range []struct {
		config  string
		want    pebblestore.Options
		wantErr []string
	}{
		{``, pebblestore.Options{Path: "/var/lib/qqd/qq.pebble", DedupWindow: 24 * time.Hour, CacheSize: 128 << 20, MemTableSize: 64 << 20}, nil},
		{`{}`, pebblestore.Options{Path: "/var/lib/qqd/qq.pebble", DedupWindow: 24 * time.Hour, CacheSize: 128 << 20, MemTableSize: 64 << 20}, nil},
		{`{"path":"x/y","sync":false,"dedup_window":"0","cache_mb":16,"memtable_mb":8}`,
			pebblestore.Options{Path: "/var/lib/qqd/x/y", NoSync: true, CacheSize: 16 << 20, MemTableSize: 8 << 20}, nil},
		{`{"path":"/abs","sync":true,"dedup_window":0}`, pebblestore.Options{Path: "/abs", CacheSize: 128 << 20, MemTableSize: 64 << 20}, nil},
		{`{"dedup_window":5}`, pebblestore.Options{}, []string{"dedup_window"}},
		// An unknown key is reported alone: the defaults of the others stay.
		{`{"pth":"x"}`, pebblestore.Options{}, []string{"pth"}},
		{`{"path":"","sync":"yes","dedup_window":"soon","cache_mb":0,"memtable_mb":4096}`, pebblestore.Options{},
			[]string{"path", "sync", "dedup_window", "cache_mb", "memtable_mb"}},
		{`[1]`, pebblestore.Options{}, []string{"pebble config"}},
	} {
		opts, err := pebblestore.ParseConfig(env, []byte(tc.config))
		if len(tc.wantErr) == 0 {
			if err != nil || opts.Path != tc.want.Path || opts.NoSync != tc.want.NoSync || opts.DedupWindow != tc.want.DedupWindow ||
				opts.CacheSize != tc.want.CacheSize || opts.MemTableSize != tc.want.MemTableSize {
				t.Errorf("ParseConfig(%s) = %+v, %v; want %+v", tc.config, opts, err, tc.want)
			}
			continue
		}
		for _, w := range tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("ParseConfig(%s) error = %v, want it to name %q", tc.config, err, w)
			}
		}
		if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.wantErr) && tc.wantErr[0] != "pebble config" {
			t.Errorf("ParseConfig(%s) error = %v, want %d problems", tc.config, err, len(tc.wantErr))
		}
	}
}

func TestNewFactory(t *testing.T) {
	dir := t.TempDir()
	st, err := pebblestore.New(plugins.Env{DataDir: dir}, []byte(`{"dedup_window":"1h","cache_mb":8,"memtable_mb":4}`))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.CreateUser(ctx, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	if m, err := filepath.Glob(filepath.Join(dir, "qq.pebble", "OPTIONS-*")); err != nil || len(m) == 0 {
		t.Fatalf("no database at the default path: %v %v", m, err)
	}
}
