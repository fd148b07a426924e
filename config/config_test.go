package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qqchat/qq/config"
)

// writeFile writes content to a temporary qq.yaml and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qq.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultIsValid(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	cfg, err := config.Load(config.Options{})
	if err != nil {
		t.Fatalf("Load(zero Options) error: %v", err)
	}
	if !reflect.DeepEqual(cfg, config.Default()) {
		t.Errorf("Load(zero Options) = %+v, want Default() %+v", cfg, config.Default())
	}
}

func TestExampleFileEqualsDefault(t *testing.T) {
	cfg, err := config.Load(config.Options{File: "../qq.yaml"})
	if err != nil {
		t.Fatalf("loading ../qq.yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("../qq.yaml does not validate: %v", err)
	}
	if want := config.Default(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("../qq.yaml differs from Default():\n got  %+v\n want %+v", cfg, want)
	}

	// Every key must be documented: the keys in the file are exactly the
	// koanf keys of Config.
	data, err := os.ReadFile("../qq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	got := flattenKeys("", doc)
	want := structKeys("", reflect.TypeFor[config.Config]())
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("../qq.yaml keys:\n %v\nConfig keys:\n %v", got, want)
	}
}

func flattenKeys(prefix string, m map[string]any) []string {
	var keys []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			keys = append(keys, flattenKeys(prefix+k+".", sub)...)
			continue
		}
		keys = append(keys, prefix+k)
	}
	return keys
}

func structKeys(prefix string, t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		name := prefix + f.Tag.Get("koanf")
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, structKeys(name+".", f.Type)...)
			continue
		}
		keys = append(keys, name)
	}
	return keys
}

func TestLayering(t *testing.T) {
	file := writeFile(t, `
listen: "0.0.0.0:7000"
data_dir: /from/file
log:
  level: debug
limits:
  max_inflight: 10
  idle_timeout: 1m
`)
	tests := []struct {
		name  string
		opts  config.Options
		check func(t *testing.T, c *config.Config)
	}{
		{
			name: "file overrides defaults",
			opts: config.Options{File: file},
			check: func(t *testing.T, c *config.Config) {
				want := config.Default()
				want.Listen = "0.0.0.0:7000"
				want.DataDir = "/from/file"
				want.Log.Level = "debug"
				want.Limits.MaxInflight = 10
				want.Limits.IdleTimeout = time.Minute
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "env overrides file",
			opts: config.Options{File: file, Env: []string{
				"QQD_LISTEN=127.0.0.1:8000",
				"QQD_LOG__LEVEL=warn",
				"PATH=/usr/bin",       // not ours
				"QQ_LISTEN=x",         // wrong prefix
				"qqd_listen=bad:port", // prefix is case-sensitive
			}},
			check: func(t *testing.T, c *config.Config) {
				if c.Listen != "127.0.0.1:8000" {
					t.Errorf("Listen = %q, want env value", c.Listen)
				}
				if c.Log.Level != "warn" {
					t.Errorf("Log.Level = %q, want env value", c.Log.Level)
				}
				if c.DataDir != "/from/file" || c.Limits.MaxInflight != 10 {
					t.Errorf("file values lost: DataDir=%q MaxInflight=%d", c.DataDir, c.Limits.MaxInflight)
				}
			},
		},
		{
			name: "overrides override env",
			opts: config.Options{
				File:      file,
				Env:       []string{"QQD_LISTEN=127.0.0.1:8000", "QQD_DATA_DIR=/from/env"},
				Overrides: map[string]any{"listen": "127.0.0.1:0", "limits.max_inflight": 20},
			},
			check: func(t *testing.T, c *config.Config) {
				if c.Listen != "127.0.0.1:0" {
					t.Errorf("Listen = %q, want override", c.Listen)
				}
				if c.Limits.MaxInflight != 20 {
					t.Errorf("MaxInflight = %d, want override", c.Limits.MaxInflight)
				}
				if c.DataDir != "/from/env" {
					t.Errorf("DataDir = %q, want env value", c.DataDir)
				}
				if c.Limits.IdleTimeout != time.Minute {
					t.Errorf("IdleTimeout = %v, want file value", c.Limits.IdleTimeout)
				}
			},
		},
		{
			name: "nested env keys",
			opts: config.Options{Env: []string{
				"QQD_LIMITS__MAX_FRAME_BYTES=131072",
				"QQD_STORAGE__SQLITE__SYNCHRONOUS=normal",
				"QQD_ACCOUNTS__HASH_CONCURRENCY=2",
			}},
			check: func(t *testing.T, c *config.Config) {
				if c.Limits.MaxFrameBytes != 131072 {
					t.Errorf("MaxFrameBytes = %d", c.Limits.MaxFrameBytes)
				}
				if c.Storage.SQLite.Synchronous != "normal" {
					t.Errorf("Synchronous = %q", c.Storage.SQLite.Synchronous)
				}
				if c.Accounts.HashConcurrency != 2 {
					t.Errorf("HashConcurrency = %d", c.Accounts.HashConcurrency)
				}
			},
		},
		{
			name: "durations from env strings",
			opts: config.Options{Env: []string{
				"QQD_LIMITS__IDLE_TIMEOUT=90s",
				"QQD_SHUTDOWN_TIMEOUT=1m30s",
				"QQD_STORAGE__SQLITE__DEDUP_WINDOW=0",
			}},
			check: func(t *testing.T, c *config.Config) {
				if c.Limits.IdleTimeout != 90*time.Second {
					t.Errorf("IdleTimeout = %v, want 90s", c.Limits.IdleTimeout)
				}
				if c.ShutdownTimeout != 90*time.Second {
					t.Errorf("ShutdownTimeout = %v, want 1m30s", c.ShutdownTimeout)
				}
				if c.Storage.SQLite.DedupWindow != 0 {
					t.Errorf("DedupWindow = %v, want 0", c.Storage.SQLite.DedupWindow)
				}
			},
		},
		{
			name: "typed and string overrides",
			opts: config.Options{Overrides: map[string]any{
				"shutdown_timeout":     2 * time.Second,
				"limits.write_timeout": "3s",
				"storage.batch_max":    "100",
				"storage.sqlite.path":  "/db/qq.db",
			}},
			check: func(t *testing.T, c *config.Config) {
				if c.ShutdownTimeout != 2*time.Second || c.Limits.WriteTimeout != 3*time.Second {
					t.Errorf("ShutdownTimeout=%v WriteTimeout=%v", c.ShutdownTimeout, c.Limits.WriteTimeout)
				}
				if c.Storage.BatchMax != 100 || c.Storage.SQLite.Path != "/db/qq.db" {
					t.Errorf("BatchMax=%d Path=%q", c.Storage.BatchMax, c.Storage.SQLite.Path)
				}
			},
		},
		{
			name: "null value keeps lower layer",
			opts: config.Options{File: writeFile(t, "listen:\nlog:\n")},
			check: func(t *testing.T, c *config.Config) {
				if !reflect.DeepEqual(c, config.Default()) {
					t.Errorf("got %+v, want Default()", c)
				}
			},
		},
		{
			name: "empty file",
			opts: config.Options{File: writeFile(t, "# nothing\n")},
			check: func(t *testing.T, c *config.Config) {
				if !reflect.DeepEqual(c, config.Default()) {
					t.Errorf("got %+v, want Default()", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadDoesNotModifyInputs(t *testing.T) {
	overrides := map[string]any{"limits.max_inflight": 5}
	env := []string{"QQD_LISTEN=127.0.0.1:1"}
	if _, err := config.Load(config.Options{Env: env, Overrides: overrides}); err != nil {
		t.Fatal(err)
	}
	if len(overrides) != 1 || overrides["limits.max_inflight"] != 5 || env[0] != "QQD_LISTEN=127.0.0.1:1" {
		t.Errorf("inputs modified: %v %v", overrides, env)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		opts config.Options
		want []string // substrings that must all appear in the error
	}{
		{
			name: "missing file",
			opts: config.Options{File: filepath.Join(t.TempDir(), "nope.yaml")},
			want: []string{"config: ", "nope.yaml: no such file or directory"},
		},
		{
			name: "malformed yaml",
			opts: config.Options{File: writeFile(t, "listen: [\n")},
			want: []string{"qq.yaml: yaml:"},
		},
		{
			name: "unknown key in file",
			opts: config.Options{File: writeFile(t, "listen: \"127.0.0.1:1\"\nlistne: x\n")},
			want: []string{`qq.yaml: unknown key "listne"`},
		},
		{
			name: "two unknown keys in file",
			opts: config.Options{File: writeFile(t, "limits:\n  max_frame: 1\n  idle: 5m\nbogus: true\n")},
			want: []string{`unknown key "limits.max_frame"`, `unknown key "limits.idle"`, `unknown key "bogus"`},
		},
		{
			name: "unknown key in env",
			opts: config.Options{Env: []string{"QQD_LIMITS__MAX_FRAMES=1", "QQD_LISTEN_ADDR=x"}},
			want: []string{
				`config: env QQD_LIMITS__MAX_FRAMES: unknown key "limits.max_frames"`,
				`config: env QQD_LISTEN_ADDR: unknown key "listen_addr"`,
			},
		},
		{
			name: "unknown key in overrides",
			opts: config.Options{Overrides: map[string]any{"storage.sqlite.pth": "/x"}},
			want: []string{`config: overrides: unknown key "storage.sqlite.pth"`},
		},
		{
			name: "wrong type names key",
			opts: config.Options{File: writeFile(t, "limits:\n  max_frame_bytes: abc\n")},
			want: []string{`qq.yaml: limits.max_frame_bytes: invalid value "abc": expected an integer`},
		},
		{
			name: "wrong type from env names variable and key",
			opts: config.Options{Env: []string{"QQD_STORAGE__BATCH_MAX=lots"}},
			want: []string{`config: env QQD_STORAGE__BATCH_MAX: storage.batch_max: invalid value "lots"`},
		},
		{
			name: "bad duration",
			opts: config.Options{Env: []string{"QQD_LIMITS__IDLE_TIMEOUT=5 minutes"}},
			want: []string{`limits.idle_timeout: invalid duration "5 minutes"`},
		},
		{
			name: "duration without unit",
			opts: config.Options{File: writeFile(t, "shutdown_timeout: 10\n")},
			want: []string{`shutdown_timeout: invalid duration 10: missing unit`},
		},
		{
			name: "fractional integer",
			opts: config.Options{File: writeFile(t, "limits:\n  max_inflight: 1.5\n")},
			want: []string{`limits.max_inflight: invalid value 1.5: expected an integer`},
		},
		{
			name: "integer out of range",
			opts: config.Options{File: writeFile(t, "storage:\n  batch_max: 99999999999999999999999\n")},
			want: []string{`storage.batch_max: invalid value 1e+23: out of range for an integer`},
		},
		{
			name: "duration string without unit",
			opts: config.Options{Env: []string{"QQD_SHUTDOWN_TIMEOUT=10"}},
			want: []string{`config: env QQD_SHUTDOWN_TIMEOUT: shutdown_timeout: invalid duration "10": missing unit`},
		},
		{
			name: "section given a scalar",
			opts: config.Options{File: writeFile(t, "log: loud\n")},
			want: []string{`qq.yaml: log: expected a mapping of keys, got "loud"`},
		},
		{
			name: "leaf given a mapping",
			opts: config.Options{File: writeFile(t, "listen:\n  host: x\n")},
			want: []string{`qq.yaml: listen: expected a string, got a mapping`},
		},
		{
			name: "several invalid values all reported",
			opts: config.Options{
				File: writeFile(t, "registration: maybe\nlimits:\n  max_body_bytes: 100\n"),
				Env:  []string{"QQD_LOG__FORMAT=xml", "QQD_NOPE=1"},
				Overrides: map[string]any{
					"listen":            "localhost",
					"storage.batch_max": 0,
				},
			},
			want: []string{
				`config: overrides: listen: must be host:port (got "localhost")`,
				`qq.yaml: registration: must be one of open, closed (got "maybe")`,
				`config: env QQD_LOG__FORMAT: log.format: must be one of text, json (got "xml")`,
				`qq.yaml: limits.max_body_bytes: must be at least 4096 (got 100)`,
				`config: overrides: storage.batch_max: must be between 1 and 10000 (got 0)`,
				`config: env QQD_NOPE: unknown key "nope"`,
			},
		},
		{
			name: "decode and validation errors together",
			opts: config.Options{Env: []string{
				"QQD_LIMITS__MAX_FRAME_BYTES=big",
				"QQD_LIMITS__MAX_INFLIGHT=0",
			}},
			want: []string{
				`limits.max_frame_bytes: invalid value "big"`,
				`limits.max_inflight: must be between 1 and 4096 (got 0)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.opts)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want error", c)
			}
			if c != nil {
				t.Errorf("Load returned a config along with error %v", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			for _, line := range strings.Split(msg, "\n") {
				if !strings.HasPrefix(line, "config: ") {
					t.Errorf("error line lacks \"config: \" prefix: %q", line)
				}
			}
		})
	}
}

func TestMissingFileIsNotExist(t *testing.T) {
	_, err := config.Load(config.Options{File: filepath.Join(t.TempDir(), "nope.yaml")})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want errors.Is(err, fs.ErrNotExist)", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *config.Config)
		want   []string // empty: valid
	}{
		{name: "defaults", modify: func(*config.Config) {}},
		{name: "listen port 0", modify: func(c *config.Config) { c.Listen = "127.0.0.1:0" }},
		{name: "listen all interfaces", modify: func(c *config.Config) { c.Listen = ":5190" }},
		{name: "listen ipv6", modify: func(c *config.Config) { c.Listen = "[::1]:5190" }},
		{name: "listen no port", modify: func(c *config.Config) { c.Listen = "127.0.0.1" },
			want: []string{`config: listen: must be host:port (got "127.0.0.1")`}},
		{name: "listen bad port", modify: func(c *config.Config) { c.Listen = "127.0.0.1:99999" },
			want: []string{`listen: must be host:port with a numeric port 0-65535`}},
		{name: "empty data dir", modify: func(c *config.Config) { c.DataDir = "" },
			want: []string{"config: data_dir: must not be empty"}},
		{name: "body too big for frame", modify: func(c *config.Config) { c.Limits.MaxBodyBytes = 65000 },
			want: []string{"config: limits.max_body_bytes: must be at most limits.max_frame_bytes - 1024 = 64512 (got 65000)"}},
		{name: "queue smaller than two frames", modify: func(c *config.Config) { c.Limits.OutboundQueueBytes = 100000 },
			want: []string{"config: limits.outbound_queue_bytes: must be at least 2 * limits.max_frame_bytes = 131072 (got 100000)"}},
		{name: "frame bounds", modify: func(c *config.Config) { c.Limits.MaxFrameBytes = 1 << 25; c.Limits.OutboundQueueBytes = 1 << 27 },
			want: []string{"config: limits.max_frame_bytes: must be between 1024 and 16777216 (got 33554432)"}},
		{name: "contract minimums", modify: func(c *config.Config) {
			c.Limits.OfflinePageMax = 99
			c.Limits.HistoryPageMax = 49
			c.Limits.MaxAckIDs = 0
		}, want: []string{
			"config: limits.offline_page_max: must be at least 100 (got 99)",
			"config: limits.history_page_max: must be at least 50 (got 49)",
			"config: limits.max_ack_ids: must be at least 1 (got 0)",
		}},
		{name: "durations", modify: func(c *config.Config) {
			c.ShutdownTimeout = 0
			c.Limits.WriteTimeout = 0
			c.Limits.IdleTimeout = -time.Second
			c.Limits.LoginTimeout = 0
			c.Storage.Timeout = 0
			c.Storage.SQLite.DedupWindow = -time.Hour
		}, want: []string{
			"config: shutdown_timeout: must be greater than 0 (got 0s)",
			"config: limits.write_timeout: must be greater than 0 (got 0s)",
			"config: limits.idle_timeout: must be greater than 0 (got -1s)",
			"config: limits.login_timeout: must be greater than 0 (got 0s)",
			"config: storage.timeout: must be greater than 0 (got 0s)",
			"config: storage.sqlite.dedup_window: must not be negative (got -1h0m0s)",
		}},
		{name: "enums", modify: func(c *config.Config) {
			c.Registration = "Open"
			c.Log.Level = "trace"
			c.Log.Format = "logfmt"
			c.Storage.SQLite.Synchronous = "extra"
		}, want: []string{
			`config: registration: must be one of open, closed (got "Open")`,
			`config: log.level: must be one of debug, info, warn, error (got "trace")`,
			`config: log.format: must be one of text, json (got "logfmt")`,
			`config: storage.sqlite.synchronous: must be one of full, normal, off (got "extra")`,
		}},
		{name: "accounts and storage ranges", modify: func(c *config.Config) {
			c.Accounts.MinPasswordBytes = 0
			c.Accounts.HashConcurrency = -1
			c.Storage.BatchMax = 10001
			c.Limits.MaxInflight = 4097
		}, want: []string{
			"config: accounts.min_password_bytes: must be between 1 and 1024 (got 0)",
			"config: accounts.hash_concurrency: must be at least 0 (got -1)",
			"config: storage.batch_max: must be between 1 and 10000 (got 10001)",
			"config: limits.max_inflight: must be between 1 and 4096 (got 4097)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.modify(c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestSQLitePath(t *testing.T) {
	tests := []struct {
		dataDir, path, want string
	}{
		{"./qqd-data", "", filepath.Join("qqd-data", "qq.db")},
		{"/var/lib/qqd", "", "/var/lib/qqd/qq.db"},
		{"/var/lib/qqd", "/fast/qq.sqlite", "/fast/qq.sqlite"},
		{"/var/lib/qqd", "rel.db", "rel.db"},
	}
	for _, tt := range tests {
		c := config.Default()
		c.DataDir = tt.dataDir
		c.Storage.SQLite.Path = tt.path
		if got := c.SQLitePath(); got != tt.want {
			t.Errorf("SQLitePath(data_dir=%q, path=%q) = %q, want %q", tt.dataDir, tt.path, got, tt.want)
		}
	}
	// Derived from the loaded data_dir.
	c, err := config.Load(config.Options{Overrides: map[string]any{"data_dir": "/x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SQLitePath(); got != "/x/qq.db" {
		t.Errorf("SQLitePath() = %q, want /x/qq.db", got)
	}
}
