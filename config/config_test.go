package config_test

import (
	"encoding/json"
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
	"github.com/qqchat/qq/plugins"
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
	got := flattenKeys("", doc, "storage.config")
	want := structKeys("", reflect.TypeFor[config.Config]())
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("../qq.yaml keys:\n %v\nConfig keys:\n %v", got, want)
	}
}

// flattenKeys returns the dotted keys of m, not descending into the
// opaque keys (plugin configs).
func flattenKeys(prefix string, m map[string]any, opaque ...string) []string {
	var keys []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok && !slices.Contains(opaque, prefix+k) {
			keys = append(keys, flattenKeys(prefix+k+".", sub, opaque...)...)
			continue
		}
		keys = append(keys, prefix+k)
	}
	return keys
}

func structKeys(prefix string, t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue // derived by Load, not a key
		}
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
				"QQD_STORAGE__CONFIG__DEDUP_WINDOW=48h",
				"QQD_ACCOUNTS__HASH_CONCURRENCY=2",
			}},
			check: func(t *testing.T, c *config.Config) {
				if c.Limits.MaxFrameBytes != 131072 {
					t.Errorf("MaxFrameBytes = %d", c.Limits.MaxFrameBytes)
				}
				if c.Storage.Config["dedup_window"] != "48h" {
					t.Errorf("storage.config.dedup_window = %v", c.Storage.Config["dedup_window"])
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
				"QQD_PLUGINS__RESTART_BACKOFF_MIN=0.5s",
			}},
			check: func(t *testing.T, c *config.Config) {
				if c.Limits.IdleTimeout != 90*time.Second {
					t.Errorf("IdleTimeout = %v, want 90s", c.Limits.IdleTimeout)
				}
				if c.ShutdownTimeout != 90*time.Second {
					t.Errorf("ShutdownTimeout = %v, want 1m30s", c.ShutdownTimeout)
				}
				if c.Plugins.RestartBackoffMin != 500*time.Millisecond {
					t.Errorf("RestartBackoffMin = %v, want 500ms", c.Plugins.RestartBackoffMin)
				}
			},
		},
		{
			name: "typed and string overrides",
			opts: config.Options{Overrides: map[string]any{
				"shutdown_timeout":     2 * time.Second,
				"limits.write_timeout": "3s",
				"storage.batch_max":    "100",
				"storage.config.path":  "/db/qq.db",
				"plugins.in_process":   "true",
			}},
			check: func(t *testing.T, c *config.Config) {
				if c.ShutdownTimeout != 2*time.Second || c.Limits.WriteTimeout != 3*time.Second {
					t.Errorf("ShutdownTimeout=%v WriteTimeout=%v", c.ShutdownTimeout, c.Limits.WriteTimeout)
				}
				if c.Storage.BatchMax != 100 || c.Storage.Config["path"] != "/db/qq.db" || !c.Plugins.InProcess {
					t.Errorf("BatchMax=%d path=%v InProcess=%v", c.Storage.BatchMax, c.Storage.Config["path"], c.Plugins.InProcess)
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
			opts: config.Options{Overrides: map[string]any{"storage.plugn": "x"}},
			want: []string{`config: overrides: unknown key "storage.plugn"`},
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
		{name: "cluster on pebble", modify: func(c *config.Config) {
			c.Cluster.Enabled = true
			c.Cluster.NATS.URLs = []string{"nats://127.0.0.1:4222"}
		}, want: []string{"config: cluster.enabled: cluster mode needs a storage that all nodes share (storage.plugin: postgres); storage plugin pebble keeps its data on this machine"}},
		{name: "cluster without nats, bad node", modify: func(c *config.Config) {
			c.Cluster.Enabled = true
			c.Cluster.Node = "Node.A"
			c.Storage.Plugin = "postgres"
			c.Cluster.FenceAfter = 0
		}, want: []string{
			"config: cluster.node: must be 1-64 bytes of a-z, 0-9, _ and -",
			"config: cluster.nats.urls: must name at least one NATS server in cluster mode",
			"config: cluster.fence_after: must be at least 1s (got 0s)",
		}},
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
		{name: "exempt networks", modify: func(c *config.Config) {
			c.Limits.ExemptNetworks = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.0.0.0/33", "office"}
			c.Limits.RegisterPerIPPerMinute = 0
		}, want: []string{
			"config: limits.register_per_ip_per_minute: must be at least 1 (got 0)",
			`config: limits.exempt_networks: "10.0.0.0/33" is neither a network in CIDR notation nor an address`,
			`config: limits.exempt_networks: "office" is neither a network in CIDR notation nor an address`,
		}},
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
			c.Filters[1].Timeout = -time.Second
			c.Plugins.StartTimeout = 0
			c.Plugins.RestartBackoffMin = 0
		}, want: []string{
			"config: shutdown_timeout: must be greater than 0 (got 0s)",
			"config: limits.write_timeout: must be greater than 0 (got 0s)",
			"config: limits.idle_timeout: must be greater than 0 (got -1s)",
			"config: limits.login_timeout: must be greater than 0 (got 0s)",
			"config: storage.timeout: must be greater than 0 (got 0s)",
			"config: filters[1].timeout: must be greater than 0 (got -1s)",
			"config: plugins.start_timeout: must be greater than 0 (got 0s)",
			"config: plugins.restart_backoff_min: must be greater than 0 (got 0s)",
		}},
		{name: "enums", modify: func(c *config.Config) {
			c.Registration = 2
			c.Log.Level = "trace"
			c.Log.Format = 7
			c.Filters[0].OnFailure = 9
		}, want: []string{
			`config: registration: must be one of open, closed (got Registration(2))`,
			`config: log.level: must be one of debug, info, warn, error (got "trace")`,
			`config: log.format: must be one of text, json (got LogFormat(7))`,
			`config: filters[0].on_failure: must be one of reject, allow (got FailurePolicy(9))`,
		}},
		{name: "web off", modify: func(c *config.Config) { c.Web.Listen = "" }},
		{name: "web origins", modify: func(c *config.Config) {
			c.Web.AllowedOrigins = []string{"https://chat.example.com", "http://127.0.0.1:8080", "*.example.com", "https://*.example.org"}
		}},
		{name: "web", modify: func(c *config.Config) {
			c.Web.Listen = "localhost"
			c.Web.TLS = true
			c.Web.AllowedOrigins = []string{"*", "https://*", "ftp://x.example.com", "https://chat.example.com/", "https://", "[x"}
			c.Web.MaxHTTPConnections = 0
			c.Web.MaxHTTPConnectionsPerIP = 0
			c.Web.HandshakeTimeout = 0
		}, want: []string{
			`config: web.listen: must be host:port (got "localhost")`,
			`config: web.tls: needs tls.cert_file and tls.key_file`,
			`config: web.allowed_origins: "*" would allow every origin`,
			`config: web.allowed_origins: "https://*" would allow every origin`,
			`config: web.allowed_origins: "ftp://x.example.com" must be an origin with scheme http or https`,
			`config: web.allowed_origins: "https://chat.example.com/" must be an origin (scheme://host[:port]) without path`,
			`config: web.allowed_origins: "https://" has no host`,
			`config: web.allowed_origins: "[x" is not a valid pattern: syntax error in pattern`,
			"config: web.max_http_connections: must be at least 1 (got 0)",
			"config: web.max_http_connections_per_ip: must be at least 1 (got 0)",
			"config: web.handshake_timeout: must be greater than 0 (got 0s)",
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

func TestDefaultPlugins(t *testing.T) {
	c := config.Default()
	if c.Storage.Plugin != "pebble" || c.Storage.Command != nil || c.Storage.Label() != "pebble" {
		t.Errorf("Storage = %+v, want the pebble plugin", c.Storage)
	}
	wantStorage := map[string]any{"path": "qq.pebble", "sync": true, "dedup_window": "24h", "cache_mb": 128, "memtable_mb": 64}
	if !reflect.DeepEqual(c.Storage.Config, wantStorage) {
		t.Errorf("Storage.Config = %v, want %v", c.Storage.Config, wantStorage)
	}
	var names []string
	for _, f := range c.Filters {
		names = append(names, f.Label())
		if f.OnFailure != plugins.FailClosed || f.Timeout != 2*time.Second || f.Config == nil || f.Command != nil {
			t.Errorf("filter %s = %+v", f.Label(), f)
		}
	}
	if !slices.Equal(names, []string{"antispam", "wordfilter"}) {
		t.Errorf("filters = %v, want [antispam wordfilter]", names)
	}
	if want := (config.Plugins{StartTimeout: 10 * time.Second, RestartBackoffMin: 200 * time.Millisecond,
		RestartBackoffMax: 30 * time.Second}); c.Plugins != want {
		t.Errorf("Plugins = %+v, want %+v", c.Plugins, want)
	}
	// Default returns fresh maps: changing one Config does not change the next.
	c.Storage.Config["path"] = "changed"
	c.Filters[1].Config["lists"].([]any)[0].(map[string]any)["name"] = "changed"
	if d := config.Default(); d.Storage.Config["path"] != "qq.pebble" ||
		d.Filters[1].Config["lists"].([]any)[0].(map[string]any)["name"] != "spam-phrases" {
		t.Error("Default() shares maps between calls")
	}
}

func TestLabel(t *testing.T) {
	tests := []struct {
		label string
		want  string
	}{
		{config.Storage{Plugin: "sqlite"}.Label(), "sqlite"},
		{config.Storage{Plugin: "pg", Command: []string{"/usr/lib/qq/pgstore"}}.Label(), "pg"},
		{config.Storage{Command: []string{"/usr/lib/qq/pgstore", "-v"}}.Label(), "pgstore"},
		{config.Storage{}.Label(), ""},
		{config.Filter{Plugin: "wordfilter"}.Label(), "wordfilter"},
		{config.Filter{Plugin: "wordfilter", Name: "swears"}.Label(), "swears"},
		{config.Filter{Command: []string{"/usr/local/lib/qq/myfilter"}}.Label(), "myfilter"},
		{config.Filter{Command: []string{""}}.Label(), ""},
	}
	for i, tt := range tests {
		if tt.label != tt.want {
			t.Errorf("%d: Label() = %q, want %q", i, tt.label, tt.want)
		}
	}
}

func TestFilters(t *testing.T) {
	tests := []struct {
		name  string
		opts  config.Options
		check func(t *testing.T, c *config.Config)
	}{
		{
			name: "file replaces the default list",
			opts: config.Options{File: writeFile(t, `
filters:
  - plugin: wordfilter
    name: swears
    on_failure: allow
    timeout: 500ms
    config:
      lists:
        - words: [darn]
`)},
			check: func(t *testing.T, c *config.Config) {
				want := []config.Filter{{
					Plugin: "wordfilter", Name: "swears", OnFailure: plugins.FailOpen, Timeout: 500 * time.Millisecond,
					Config: map[string]any{"lists": []any{map[string]any{"words": []any{"darn"}}}},
				}}
				if !reflect.DeepEqual(c.Filters, want) {
					t.Errorf("Filters = %+v\nwant %+v", c.Filters, want)
				}
			},
		},
		{
			name: "empty list runs no filters",
			opts: config.Options{File: writeFile(t, "filters: []\n")},
			check: func(t *testing.T, c *config.Config) {
				if len(c.Filters) != 0 {
					t.Errorf("Filters = %+v, want none", c.Filters)
				}
			},
		},
		{
			name: "null keeps the default list",
			opts: config.Options{File: writeFile(t, "filters:\n")},
			check: func(t *testing.T, c *config.Config) {
				if !reflect.DeepEqual(c.Filters, config.Default().Filters) {
					t.Errorf("Filters = %+v, want defaults", c.Filters)
				}
			},
		},
		{
			name: "entry defaults filled",
			opts: config.Options{File: writeFile(t, `
filters:
  - plugin: antispam
  - command: ["/usr/local/lib/qq/myfilter", "--strict"]
  - command: ["/usr/local/lib/qq/other"]
    plugin: label
    timeout: 0
`)},
			check: func(t *testing.T, c *config.Config) {
				want := []config.Filter{
					{Plugin: "antispam", Name: "antispam", OnFailure: plugins.FailClosed, Timeout: 2 * time.Second,
						Config: map[string]any{}},
					{Plugin: "myfilter", Command: []string{"/usr/local/lib/qq/myfilter", "--strict"}, Name: "myfilter",
						OnFailure: plugins.FailClosed, Timeout: 2 * time.Second, Config: map[string]any{}},
					{Plugin: "label", Command: []string{"/usr/local/lib/qq/other"}, Name: "label",
						OnFailure: plugins.FailClosed, Timeout: 2 * time.Second, Config: map[string]any{}},
				}
				if !reflect.DeepEqual(c.Filters, want) {
					t.Errorf("Filters = %+v\nwant %+v", c.Filters, want)
				}
			},
		},
		{
			name: "overrides replace the list, typed",
			opts: config.Options{
				File: writeFile(t, "filters: [{plugin: antispam}]\n"),
				Overrides: map[string]any{"filters": []config.Filter{
					{Plugin: "wordfilter", Config: map[string]any{"lists": []any{}}},
				}},
			},
			check: func(t *testing.T, c *config.Config) {
				want := []config.Filter{{Plugin: "wordfilter", Name: "wordfilter", OnFailure: plugins.FailClosed,
					Timeout: 2 * time.Second, Config: map[string]any{"lists": []any{}}}}
				if !reflect.DeepEqual(c.Filters, want) {
					t.Errorf("Filters = %+v\nwant %+v", c.Filters, want)
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

func TestStorageConfig(t *testing.T) {
	t.Run("file and env keys merge with the defaults", func(t *testing.T) {
		c, err := config.Load(config.Options{
			File: writeFile(t, "storage:\n  config:\n    cache_mb: 512\n    sync: false\n    tuning:\n      mmap: true\n"),
			Env:  []string{"QQD_STORAGE__CONFIG__DEDUP_WINDOW=1h", "QQD_STORAGE__CONFIG__BUSY_TIMEOUT=5s"},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"path": "qq.pebble", "sync": false, "dedup_window": "1h", "cache_mb": 512, "memtable_mb": 64,
			"tuning": map[string]any{"mmap": true}, "busy_timeout": "5s",
		}
		if !reflect.DeepEqual(c.Storage.Config, want) {
			t.Errorf("Storage.Config = %#v\nwant %#v", c.Storage.Config, want)
		}
		if c.Storage.Plugin != "pebble" {
			t.Errorf("Storage.Plugin = %q", c.Storage.Plugin)
		}
	})
	// Each built-in gets its own defaults, whichever layer selects it, and
	// never the other's: pebble's while it is the default or chosen,
	// sqlite's once a layer chooses sqlite.
	for _, tt := range []struct {
		name string
		opts config.Options
		want map[string]any
	}{
		{"sqlite chosen in the file", config.Options{File: writeFile(t, "storage: {plugin: sqlite}\n")},
			map[string]any{"path": "qq.db", "synchronous": "full", "dedup_window": "24h"}},
		{"sqlite chosen in the environment, a key from the file", config.Options{
			File: writeFile(t, "storage:\n  config: {synchronous: normal}\n"),
			Env:  []string{"QQD_STORAGE__PLUGIN=sqlite"}},
			map[string]any{"path": "qq.db", "synchronous": "normal", "dedup_window": "24h"}},
		{"sqlite chosen in an override, nested keys merge", config.Options{
			File:      writeFile(t, "storage:\n  plugin: sqlite\n  config: {path: /db/chat.db, tuning: {a: 1}}\n"),
			Overrides: map[string]any{"storage.config.tuning.b": "2"}},
			map[string]any{"path": "/db/chat.db", "synchronous": "full", "dedup_window": "24h",
				"tuning": map[string]any{"a": 1, "b": "2"}}},
		{"pebble chosen", config.Options{File: writeFile(t, "storage: {plugin: pebble, config: {path: /fast/qq.pebble}}\n")},
			map[string]any{"path": "/fast/qq.pebble", "sync": true, "dedup_window": "24h", "cache_mb": 128, "memtable_mb": 64}},
		{"postgres chosen", config.Options{File: writeFile(t, "storage: {plugin: postgres, config: {dsn: \"postgres://qq@db:5432/qq\", sslmode: verify-full}}\n")},
			map[string]any{"dsn": "postgres://qq@db:5432/qq", "sslmode": "verify-full", "max_conns": 0, "min_conns": 0,
				"max_conn_lifetime": "1h", "connect_timeout": "10s", "statement_timeout": "30s", "dedup_window": "24h"}},
		{"sqlite chosen, then pebble in the environment", config.Options{
			File: writeFile(t, "storage: {plugin: sqlite}\n"),
			Env:  []string{"QQD_STORAGE__PLUGIN=pebble"}},
			config.StorageDefaults("pebble")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Storage.Config, tt.want) {
				t.Errorf("Storage.Config = %#v\nwant %#v", c.Storage.Config, tt.want)
			}
		})
	}
	t.Run("StorageDefaults returns fresh maps, nil for no built-in", func(t *testing.T) {
		config.StorageDefaults("sqlite")["path"] = "changed"
		if got := config.StorageDefaults("sqlite")["path"]; got != "qq.db" {
			t.Errorf("StorageDefaults(sqlite) path = %v after a change to an earlier map", got)
		}
		if got := config.StorageDefaults("pgstore"); got != nil {
			t.Errorf("StorageDefaults(pgstore) = %v, want nil", got)
		}
	})
	t.Run("another plugin gets only the keys set", func(t *testing.T) {
		c, err := config.Load(config.Options{
			File: writeFile(t, "storage:\n  command: [/usr/lib/qq/pgstore, -v]\n  config:\n    dsn: postgres://x\n"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]any{"dsn": "postgres://x"}; !reflect.DeepEqual(c.Storage.Config, want) {
			t.Errorf("Storage.Config = %v, want %v", c.Storage.Config, want)
		}
		if c.Storage.Plugin != "pgstore" || c.Storage.Label() != "pgstore" {
			t.Errorf("Storage.Plugin = %q, want the command's base name", c.Storage.Plugin)
		}
		c, err = config.Load(config.Options{Env: []string{"QQD_STORAGE__PLUGIN=memory"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Storage.Config) != 0 || c.Storage.Config == nil {
			t.Errorf("Storage.Config = %#v, want an empty map", c.Storage.Config)
		}
		c, err = config.Load(config.Options{File: writeFile(t,
			"storage:\n  plugin: mine\n  command: [/opt/store]\n  config: {a: 1}\n")})
		if err != nil {
			t.Fatal(err)
		}
		if c.Storage.Plugin != "mine" || !reflect.DeepEqual(c.Storage.Config, map[string]any{"a": 1}) {
			t.Errorf("Storage = %+v", c.Storage)
		}
	})
	t.Run("command: [] means no command", func(t *testing.T) {
		c, err := config.Load(config.Options{File: writeFile(t, "storage:\n  command: []\n")})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, config.Default()) {
			t.Errorf("got %+v, want Default()", c.Storage)
		}
	})
}

func TestPluginConfigsEncodeAsJSON(t *testing.T) {
	c, err := config.Load(config.Options{File: writeFile(t, `
storage:
  config:
    nested: {a: {b: [1, {c: d}]}}
    1: numeric key
    true: bool key
filters:
  - plugin: wordfilter
    config:
      lists:
        - {words: [x], 2: y}
      deep: [[{k: v}], {3: z}]
`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]any{c.Storage.Config, c.Filters[0].Config} {
		if _, err := json.Marshal(m); err != nil {
			t.Errorf("json.Marshal(%v): %v", m, err)
		}
	}
	got, err := json.Marshal(c.Filters[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"deep":[[{"k":"v"}],{"3":"z"}],"lists":[{"2":"y","words":["x"]}]}`; string(got) != want {
		t.Errorf("json = %s, want %s", got, want)
	}
	if _, err := json.Marshal(config.Default()); err != nil {
		t.Errorf("json.Marshal(Default()): %v", err)
	}
	// Validate catches what JSON cannot encode.
	d := config.Default()
	d.Storage.Config = map[string]any{"bad": func() {}} // not map[any]any{1: 2}: Go 1.27's encoding/json encodes that
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "config: storage.config: must be encodable as JSON") {
		t.Errorf("Validate() = %v, want a storage.config JSON error", err)
	}
}

func TestPluginErrors(t *testing.T) {
	tests := []struct {
		name string
		opts config.Options
		want []string
	}{
		{
			name: "unknown key in a filter entry",
			opts: config.Options{File: writeFile(t, `
filters:
  - plugin: antispam
  - plugin: wordfilter
    on_falure: allow
    confg: {}
`)},
			want: []string{
				`qq.yaml: unknown key "filters[1].confg"`,
				`qq.yaml: unknown key "filters[1].on_falure"`,
			},
		},
		{
			name: "duplicate names",
			opts: config.Options{File: writeFile(t, `
filters:
  - plugin: wordfilter
  - plugin: antispam
  - plugin: wordfilter
    config: {lists: []}
`)},
			want: []string{`qq.yaml: filters[2].name: must be unique: "wordfilter" is also the name of filters[0]`},
		},
		{
			name: "bad on_failure and timeout",
			opts: config.Options{File: writeFile(t, "filters:\n  - plugin: antispam\n    on_failure: ignore\n    timeout: 5\n")},
			want: []string{
				`qq.yaml: filters[0].on_failure: must be one of reject, allow (got "ignore")`,
				`qq.yaml: filters[0].timeout: invalid duration 5: missing unit`,
			},
		},
		{
			// An enum never takes a number: 1 must not become "allow".
			name: "numeric enums",
			opts: config.Options{File: writeFile(t, "registration: 1\nlog:\n  format: 0\nfilters:\n  - plugin: antispam\n    on_failure: 1\n")},
			want: []string{
				`qq.yaml: filters[0].on_failure: expected a string, got`,
				`qq.yaml: log.format: expected a string, got`,
				`qq.yaml: registration: expected a string, got`,
			},
		},
		{
			name: "entry with neither plugin nor command",
			opts: config.Options{File: writeFile(t, "filters:\n  - name: lonely\n  - command: [\"\", x]\n")},
			want: []string{
				`qq.yaml: filters[0]: one of plugin or command must be set`,
				`qq.yaml: filters[1].command: the program (first element) must not be empty`,
			},
		},
		{
			name: "bad name",
			opts: config.Options{File: writeFile(t, "filters:\n  - command: [/opt/My Filter.sh]\n")},
			want: []string{`qq.yaml: filters[0].name: must match ^[a-z0-9][a-z0-9_-]*$ (got "My Filter.sh")`},
		},
		{
			name: "storage with neither plugin nor command",
			opts: config.Options{Env: []string{"QQD_STORAGE__PLUGIN="}},
			want: []string{`config: env QQD_STORAGE__PLUGIN: storage: one of plugin or command must be set`},
		},
		{
			name: "lists cannot be set from env",
			opts: config.Options{Env: []string{"QQD_FILTERS=wordfilter", "QQD_STORAGE__COMMAND=/bin/store"}},
			want: []string{
				`config: env QQD_FILTERS: filters cannot be set from the environment (it is a list)`,
				`config: env QQD_STORAGE__COMMAND: storage.command cannot be set from the environment`,
			},
		},
		{
			name: "list elements cannot be set from env",
			opts: config.Options{Env: []string{"QQD_FILTERS__0__NAME=x"}},
			want: []string{`config: env QQD_FILTERS__0__NAME: filters cannot be set from the environment`},
		},
		{
			name: "wrong shapes",
			opts: config.Options{File: writeFile(t, "storage:\n  command: /bin/store\n  config: [a]\n")},
			want: []string{
				`qq.yaml: storage.command: expected a list, got "/bin/store"`,
				`qq.yaml: storage.config: expected a mapping of keys, got a list`,
			},
		},
		{
			name: "filters given a mapping",
			opts: config.Options{File: writeFile(t, "filters:\n  plugin: wordfilter\n")},
			want: []string{`qq.yaml: filters: expected a list, got a mapping`},
		},
		{
			name: "filter entry given a scalar",
			opts: config.Options{File: writeFile(t, "filters: [wordfilter]\n")},
			want: []string{`qq.yaml: filters[0]: expected a mapping of keys, got "wordfilter"`},
		},
		{
			name: "filter config given a scalar",
			opts: config.Options{File: writeFile(t, "filters: [{plugin: antispam, config: strict}]\n")},
			want: []string{`qq.yaml: filters[0].config: expected a mapping of keys, got "strict"`},
		},
		{
			name: "plugins values",
			opts: config.Options{Env: []string{"QQD_PLUGINS__RESTART_BACKOFF_MAX=100ms", "QQD_PLUGINS__IN_PROCESS=maybe"}},
			want: []string{
				`config: env QQD_PLUGINS__RESTART_BACKOFF_MAX: plugins.restart_backoff_max: must be at least plugins.restart_backoff_min = 200ms (got 100ms)`,
				`config: env QQD_PLUGINS__IN_PROCESS: plugins.in_process: invalid value "maybe": expected a boolean`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.opts)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want error", c)
			}
			msg := err.Error()
			if n := len(strings.Split(msg, "\n")); n != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", n, len(tt.want), msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestValidateHandBuiltPlugins(t *testing.T) {
	c := config.Default()
	c.Storage = config.Storage{}
	c.Filters = []config.Filter{
		{},
		{Plugin: "wordfilter", Name: "Word Filter", OnFailure: plugins.FailClosed, Timeout: time.Second},
		{Plugin: "antispam", OnFailure: plugins.FailOpen, Timeout: time.Second},
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	want := []string{
		"config: storage: one of plugin or command must be set",
		"config: storage.timeout: must be greater than 0 (got 0s)",
		"config: storage.batch_max: must be between 1 and 10000 (got 0)",
		"config: filters[0]: one of plugin or command must be set",
		"config: filters[0].timeout: must be greater than 0 (got 0s)",
		`config: filters[1].name: must match ^[a-z0-9][a-z0-9_-]*$ (got "Word Filter")`,
		"config: filters[2].name: must not be empty",
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("Validate() =\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}
	c.Filters = nil
	c.Storage = config.Default().Storage
	if err := c.Validate(); err != nil {
		t.Errorf("no filters: Validate() = %v", err)
	}
}

func TestRestartKeys(t *testing.T) {
	a, b := config.Default(), config.Default()
	if got := config.RestartKeys(a, b); len(got) != 0 {
		t.Fatalf("RestartKeys(default, default) = %v", got)
	}
	b.Limits.IdleTimeout = time.Hour
	b.Listen = "127.0.0.1:1"
	b.Storage.BatchMax = 7
	b.Filters = nil                                // applied by reload
	b.Storage.Config = map[string]any{"path": "x"} // applied by reload
	got := strings.Join(config.RestartKeys(a, b), ",")
	if got != "storage.batch_max,listen,limits" {
		t.Fatalf("RestartKeys = %s", got)
	}
}
