package config

import (
	"path/filepath"
	"time"
)

// Config is the complete configuration of qqd. Obtain one from [Load] (or
// [Default]); a Config is plain data and safe to copy.
type Config struct {
	// Listen is the TCP address the server listens on, host:port.
	Listen string `koanf:"listen"`
	// DataDir holds the server's persistent data.
	DataDir string `koanf:"data_dir"`
	// Registration is "open" (anyone may create an account) or "closed".
	Registration string `koanf:"registration"`
	// ShutdownTimeout bounds how long shutdown waits for in-flight work and
	// flushes.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`

	Log      Log      `koanf:"log"`
	Limits   Limits   `koanf:"limits"`
	Accounts Accounts `koanf:"accounts"`
	Storage  Storage  `koanf:"storage"`
}

// Log configures logging.
type Log struct {
	Level  string `koanf:"level"`  // debug | info | warn | error
	Format string `koanf:"format"` // text | json
}

// Limits bounds the resources a single connection may use.
type Limits struct {
	// MaxFrameBytes is the largest protocol frame accepted or sent.
	MaxFrameBytes int `koanf:"max_frame_bytes"`
	// MaxBodyBytes is the largest message body; at most MaxFrameBytes-1024.
	MaxBodyBytes int `koanf:"max_body_bytes"`
	// OutboundQueueBytes is how many unsent bytes a connection may queue
	// before it is kicked as a slow consumer; at least 2*MaxFrameBytes.
	OutboundQueueBytes int `koanf:"outbound_queue_bytes"`
	// WriteTimeout bounds one write to a connection.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// IdleTimeout: a logged-in connection silent this long is kicked "idle".
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	// LoginTimeout: a connection must log in within this.
	LoginTimeout time.Duration `koanf:"login_timeout"`
	// MaxInflight is the number of pipelined send/ack requests per
	// connection that may await storage.
	MaxInflight int `koanf:"max_inflight"`
	// OfflinePageMax is the most messages in one offline page (>= 100).
	OfflinePageMax int `koanf:"offline_page_max"`
	// HistoryPageMax is the most messages in one history page (>= 50).
	HistoryPageMax int `koanf:"history_page_max"`
	// MaxAckIDs is the most ids in one ack request.
	MaxAckIDs int `koanf:"max_ack_ids"`
}

// Accounts configures account handling.
type Accounts struct {
	// MinPasswordBytes is the shortest password accepted at registration.
	MinPasswordBytes int `koanf:"min_password_bytes"`
	// HashConcurrency bounds concurrent Argon2id computations (each takes
	// 19 MiB); 0 means the number of CPUs.
	HashConcurrency int `koanf:"hash_concurrency"`
}

// Storage configures the message store.
type Storage struct {
	// Timeout is the deadline of one storage call.
	Timeout time.Duration `koanf:"timeout"`
	// BatchMax is the most messages+acks written in one storage write
	// (group commit).
	BatchMax int    `koanf:"batch_max"`
	SQLite   SQLite `koanf:"sqlite"`
}

// SQLite configures the SQLite store.
type SQLite struct {
	// Path of the database file; "" means <data_dir>/qq.db, see
	// [Config.SQLitePath].
	Path string `koanf:"path"`
	// Synchronous is the SQLite synchronous pragma: full | normal | off.
	Synchronous string `koanf:"synchronous"`
	// DedupWindow is how long client message ids (cids) are remembered for
	// de-duplication; 0 remembers them forever.
	DedupWindow time.Duration `koanf:"dedup_window"`
}

// Default returns a new Config holding the built-in defaults. It is the
// single source of truth for default values; the first layer of [Load].
func Default() *Config {
	return &Config{
		Listen:          "127.0.0.1:5190",
		DataDir:         "./qqd-data",
		Registration:    "open",
		ShutdownTimeout: 10 * time.Second,
		Log: Log{
			Level:  "info",
			Format: "text",
		},
		Limits: Limits{
			MaxFrameBytes:      65536,
			MaxBodyBytes:       16384,
			OutboundQueueBytes: 1 << 20,
			WriteTimeout:       10 * time.Second,
			IdleTimeout:        5 * time.Minute,
			LoginTimeout:       30 * time.Second,
			MaxInflight:        64,
			OfflinePageMax:     1000,
			HistoryPageMax:     500,
			MaxAckIDs:          1000,
		},
		Accounts: Accounts{
			MinPasswordBytes: 8,
			HashConcurrency:  0,
		},
		Storage: Storage{
			Timeout:  5 * time.Second,
			BatchMax: 256,
			SQLite: SQLite{
				Path:        "",
				Synchronous: "full",
				DedupWindow: 24 * time.Hour,
			},
		},
	}
}

// SQLitePath returns the SQLite database file: Storage.SQLite.Path if set,
// otherwise qq.db inside DataDir.
func (c *Config) SQLitePath() string {
	if c.Storage.SQLite.Path != "" {
		return c.Storage.SQLite.Path
	}
	return filepath.Join(c.DataDir, "qq.db")
}
