package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/qqchat/qq/plugins"
)

// Config is the plugin configuration of the pebble storage plugin: the
// "config" section under storage in qq.yaml. A key left out takes its
// default (the fields are pointers so that an explicit zero is told from
// a missing key).
type Config struct {
	// Path of the database directory. Relative paths are taken relative
	// to the daemon's data directory. Default "qq.pebble".
	Path *string `json:"path"`
	// Sync fsyncs every Write before it returns (default true); false
	// leaves the WAL to Pebble's background writer: a crash of the
	// machine, or of the process, may lose the last Writes.
	Sync *bool `json:"sync"`
	// DedupWindow is how long (sender, cid) keys are remembered, as a Go
	// duration ("24h", the default); 0 or "0s" remembers them forever.
	DedupWindow *durationText `json:"dedup_window"`
	// CacheMB is Pebble's block cache in MiB (default 128).
	CacheMB *int `json:"cache_mb"`
	// MemTableMB is Pebble's memtable in MiB (default 64).
	MemTableMB *int `json:"memtable_mb"`
}

// durationText is a duration as Go syntax text; the number 0 is accepted
// too (YAML turns a bare 0 into a number). Any other JSON value is kept
// as its text, which ParseConfig then reports as not a duration.
type durationText string

func (d *durationText) UnmarshalJSON(b []byte) error {
	var s string
	switch {
	case string(b) == "0":
		*d = "0s"
	case json.Unmarshal(b, &s) == nil:
		*d = durationText(s)
	default:
		*d = durationText(b)
	}
	return nil
}

// Limits of the sizes in the configuration.
const (
	maxCacheMB    = 1 << 20 // 1 TiB
	maxMemTableMB = 4 << 10 // Pebble refuses memtables of 4 GiB and more
)

// New is the plugins.StorageFactory of the pebble plugin: it validates
// config (JSON, unknown keys are errors, every problem reported) and opens
// the store. The store logs to stderr, as plugins do.
func New(env plugins.Env, config []byte) (plugins.Storage, error) {
	opts, err := ParseConfig(env, config)
	if err != nil {
		return nil, err
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Open(ctx, opts)
}

// ParseConfig turns the plugin configuration into Options.
func ParseConfig(env plugins.Env, config []byte) (Options, error) {
	var c Config
	errs, ok := plugins.DecodeConfig(config, &c)
	if !ok {
		return Options{}, fmt.Errorf("pebble config: %w", errors.Join(errs...))
	}
	for i, e := range errs {
		errs[i] = fmt.Errorf("pebble config: %w", e)
	}
	path := or(c.Path, "qq.pebble")
	if path == "" {
		errs = append(errs, errors.New("pebble config: path: must not be empty"))
	}
	windowText := or(c.DedupWindow, "24h")
	window, err := time.ParseDuration(string(windowText))
	if err != nil || window < 0 {
		errs = append(errs, fmt.Errorf("pebble config: dedup_window: must be a duration >= 0 such as \"24h\" (got %q)", windowText))
	}
	cacheMB := or(c.CacheMB, DefaultCacheSize>>20)
	if cacheMB < 1 || cacheMB > maxCacheMB {
		errs = append(errs, fmt.Errorf("pebble config: cache_mb: must be from 1 to %d (got %d)", maxCacheMB, cacheMB))
	}
	memTableMB := or(c.MemTableMB, DefaultMemTableSize>>20)
	if memTableMB < 1 || memTableMB >= maxMemTableMB {
		errs = append(errs, fmt.Errorf("pebble config: memtable_mb: must be from 1 to %d (got %d)", maxMemTableMB-1, memTableMB))
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.DataDir, path)
	}
	return Options{
		Path:         path,
		NoSync:       !or(c.Sync, true),
		DedupWindow:  window,
		CacheSize:    int64(cacheMB) << 20,
		MemTableSize: uint64(memTableMB) << 20,
	}, nil
}

// or returns *p, or def when p is nil (the key was left out).
func or[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
