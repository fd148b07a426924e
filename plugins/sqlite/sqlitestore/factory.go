package sqlitestore

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

// Config is the plugin configuration of the sqlite storage plugin: the
// "config" section under storage in qq.yaml.
type Config struct {
	// Path of the database file. Relative paths are taken relative to the
	// daemon's data directory. Default "qq.db".
	Path string `json:"path"`
	// Synchronous is "full" (default: fsync on every commit), "normal" or
	// "off".
	Synchronous string `json:"synchronous"`
	// DedupWindow is how long (sender, cid) keys are remembered, as a Go
	// duration ("24h", the default); 0 or "0s" remembers them forever.
	DedupWindow durationText `json:"dedup_window"`
}

// durationText is a duration as Go syntax text; the number 0 is accepted
// too (YAML turns a bare 0 into a number).
type durationText string

func (d *durationText) UnmarshalJSON(b []byte) error {
	if string(b) == "0" {
		*d = "0s"
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("dedup_window: want a duration such as \"24h\", got %s", b)
	}
	*d = durationText(s)
	return nil
}

// New is the plugins.StorageFactory of the sqlite plugin: it validates
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
	c := Config{Path: "qq.db", Synchronous: "full", DedupWindow: "24h"}
	errs, ok := plugins.DecodeConfig(config, &c)
	if !ok {
		return Options{}, fmt.Errorf("sqlite config: %w", errors.Join(errs...))
	}
	for i, e := range errs {
		errs[i] = fmt.Errorf("sqlite config: %w", e)
	}
	if c.Path == "" {
		errs = append(errs, errors.New("sqlite config: path: must not be empty"))
	}
	switch c.Synchronous {
	case "full", "normal", "off":
	default:
		errs = append(errs, fmt.Errorf("sqlite config: synchronous: must be full, normal or off (got %q)", c.Synchronous))
	}
	window, err := time.ParseDuration(string(c.DedupWindow))
	if err != nil || window < 0 {
		errs = append(errs, fmt.Errorf("sqlite config: dedup_window: must be a duration >= 0 such as \"24h\" (got %q)", c.DedupWindow))
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	path := c.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.DataDir, path)
	}
	return Options{Path: path, Synchronous: c.Synchronous, DedupWindow: window}, nil
}
