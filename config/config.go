package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"time"

	"github.com/qqchat/qq/plugins"
)

// Config is the complete configuration of qqd. Obtain one from [Load] (or
// [Default]); a Config is plain data and safe to copy.
type Config struct {
	// Listen is the TCP address the server listens on, host:port.
	Listen string `koanf:"listen"`
	// DataDir holds the server's persistent data.
	DataDir string `koanf:"data_dir"`
	// Registration is "open" (anyone may create an account) or "closed".
	Registration Registration `koanf:"registration"`
	// DirectMessages says who may send a user direct messages: anyone
	// (the default; QQP/1 clients rely on it) or only friends.
	DirectMessages DirectMessages `koanf:"direct_messages"`
	// ShutdownTimeout bounds how long shutdown waits for in-flight work and
	// flushes.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// ReconnectSpread spreads the reconnections after a shutdown: each
	// client's kicked shutdown push carries a retry_after_ms drawn
	// uniformly from 1 ms to it (0: no hint), so that 10,000 clients do
	// not log in in the same second when qqd comes back.
	ReconnectSpread time.Duration `koanf:"reconnect_spread"`

	Log      Log      `koanf:"log"`
	Limits   Limits   `koanf:"limits"`
	Accounts Accounts `koanf:"accounts"`
	Storage  Storage  `koanf:"storage"`
	// Filters are the message filters, run in this order. A layer that
	// sets filters replaces the whole list.
	Filters []Filter `koanf:"filters"`
	Plugins Plugins  `koanf:"plugins"`
	Metrics Metrics  `koanf:"metrics"`
	TLS     TLS      `koanf:"tls"`
	// Web configures the web client and its WebSocket gateway.
	Web   Web   `koanf:"web"`
	Admin Admin `koanf:"admin"`
	// Presence configures the presence extension.
	Presence Presence `koanf:"presence"`
	// Groups bounds the groups extension.
	Groups Groups `koanf:"groups"`
	// Tokens configures resume tokens (the resume extension).
	Tokens Tokens `koanf:"tokens"`
	// Cluster runs this qqd as one node of several that share a storage
	// (postgres) and talk over NATS (see docs/cluster.md).
	Cluster Cluster `koanf:"cluster"`
}

// Cluster configures cluster mode: nodes that share one storage (the
// postgres plugin) and reach each other's sessions over NATS core.
type Cluster struct {
	// Enabled turns cluster mode on; it needs a shared storage (qqd -t
	// refuses another) and at least one NATS URL.
	Enabled bool `koanf:"enabled"`
	// Node names this node, unique in the cluster ([a-z0-9_-], 1-64
	// bytes). Empty: the host name.
	Node string `koanf:"node"`
	// NATS is how the node reaches the bus.
	NATS NATS `koanf:"nats"`
	// FenceAfter is how long the node tolerates losing NATS or the
	// storage before it fences itself: it stops accepting logins, reports
	// not ready on /readyz and sends its clients kicked shutdown, so they
	// reconnect to a healthy node.
	FenceAfter time.Duration `koanf:"fence_after"`
	// SweepInterval is how often the node checks, for its online users,
	// that no stored message was missed on the bus.
	SweepInterval time.Duration `koanf:"sweep_interval"`
	// RequestTimeout bounds a cluster-wide question (users, kick,
	// broadcast): nodes that have not answered by then are left out.
	RequestTimeout time.Duration `koanf:"request_timeout"`
}

// NATS is how a cluster node connects to NATS. The client never stops
// reconnecting.
type NATS struct {
	// URLs are the NATS servers (nats://host:port or tls://host:port).
	URLs []string `koanf:"urls"`
	// CredsFile is a NATS .creds file (JWT and NKey seed); or User and
	// Password, or Token.
	CredsFile string `koanf:"creds_file"`
	User      string `koanf:"user"`
	Password  string `koanf:"password"`
	Token     string `koanf:"token"`
	// CAFile verifies the servers' certificates; CertFile and KeyFile are
	// a client certificate (mutual TLS). Any of them turns TLS on.
	CAFile   string `koanf:"ca_file"`
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// PingInterval and MaxPingsOut: a server that has not answered
	// MaxPingsOut pings sent PingInterval apart is dead, and the client
	// reconnects to another.
	PingInterval time.Duration `koanf:"ping_interval"`
	MaxPingsOut  int           `koanf:"max_pings_out"`
	// ReconnectWait is the pause between reconnect attempts.
	ReconnectWait time.Duration `koanf:"reconnect_wait"`
}

// Tokens configures resume tokens: a login with remember gets a token with
// which the client logs in again (resume) without its password. They work
// only with a storage that keeps tokens (sqlite and pebble do).
type Tokens struct {
	// Enabled offers the resume extension (with a storage that keeps
	// tokens). Turning it off refuses resume and issues no tokens; the
	// stored ones stay, and work again when it is turned back on.
	Enabled bool `koanf:"enabled"`
	// Idle ends a token not used for this long.
	Idle time.Duration `koanf:"idle"`
	// Lifetime ends a token this long after it was issued, however much
	// it is used.
	Lifetime time.Duration `koanf:"lifetime"`
	// PerUser bounds the tokens one user holds: a new one beyond it
	// replaces the least recently used.
	PerUser int `koanf:"per_user"`
}

// Groups bounds groups. Past a bound the request is refused with a
// documented error; nothing is dropped.
type Groups struct {
	// MaxMembers bounds the members of one group (at most 3000).
	MaxMembers int `koanf:"max_members"`
	// MaxOwned and MaxJoined bound the groups one user owns and belongs
	// to.
	MaxOwned  int `koanf:"max_owned"`
	MaxJoined int `koanf:"max_joined"`
	// CreatedPerDay bounds the groups one user creates in a day (a token
	// bucket, per qqd process).
	CreatedPerDay int `koanf:"created_per_day"`
	// MaxMentions bounds the @mentions of one message.
	MaxMentions int `koanf:"max_mentions"`
}

// Presence configures how presence changes are told to friends.
type Presence struct {
	// OfflineDebounce is how long after a user's last connection closed
	// friends are told the user went offline (a reconnect within it is no
	// change).
	OfflineDebounce time.Duration `koanf:"offline_debounce"`
}

// TLS configures the second, TLS client listener.
type TLS struct {
	// Listen is its host:port; "" turns it off.
	Listen string `koanf:"listen"`
	// CertFile and KeyFile are PEM files, re-read on reload.
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
}

// Web configures the HTTP listener that serves the web client (the page
// and its files) and the WebSocket gateway at /ws, over which each
// WebSocket is a QQP/1 session like a TCP one (see docs/web.md).
type Web struct {
	// Listen is its host:port; "" turns it off.
	Listen string `koanf:"listen"`
	// TLS serves HTTPS and WSS with tls.cert_file and tls.key_file
	// (re-read on reload, like the TLS client listener's).
	TLS bool `koanf:"tls"`
	// AllowedOrigins are the origins, besides the page's own, whose pages
	// may open a WebSocket: "https://chat.example.com", or a host pattern
	// without a scheme ("*.example.com", path.Match syntax). The page's
	// own origin (its host equal to the request's Host) is always
	// allowed; another Origin is refused with 403.
	AllowedOrigins []string `koanf:"allowed_origins"`
	// TrustedProxies are the reverse proxies (CIDR, or single addresses)
	// whose X-Forwarded-For qqd believes: a WebSocket session that comes
	// through one of them is counted, limited and shown as the client
	// address the proxies recorded (the rightmost entry not itself a
	// trusted proxy). Empty (the default): the header is ignored and a
	// session's address is its TCP peer's.
	TrustedProxies []string `koanf:"trusted_proxies"`
	// MaxHTTPConnections bounds the HTTP connections not (yet) carrying a
	// WebSocket session (page loads, upgrades in progress), in total and
	// MaxHTTPConnectionsPerIP from one address (IPv6: one /64); past
	// them a connection is closed at accept. Sessions count against
	// limits.max_connections and limits.max_connections_per_ip like TCP
	// ones.
	MaxHTTPConnections      int `koanf:"max_http_connections"`
	MaxHTTPConnectionsPerIP int `koanf:"max_http_connections_per_ip"`
	// HandshakeTimeout bounds reading a request's headers (and the TLS
	// handshake before them), and how long an upgraded connection waits
	// for the daemon to take it.
	HandshakeTimeout time.Duration `koanf:"handshake_timeout"`
}

// Metrics configures the Prometheus listener.
type Metrics struct {
	// Listen is the host:port of the HTTP listener serving /metrics,
	// /healthz and /readyz; "" turns it off.
	Listen string `koanf:"listen"`
	// Pprof also serves Go's profiler under /debug/pprof/ on the same
	// listener (CPU and heap profiles of qqd; see docs/performance.md).
	// Off by default: a profile exposes internals and costs CPU while it
	// runs.
	Pprof bool `koanf:"pprof"`
}

// Admin configures the admin socket.
type Admin struct {
	// Socket is the path of the admin unix socket; "" means
	// <data_dir>/admin.sock. Under systemd: /run/qqd/admin.sock.
	Socket string `koanf:"socket"`
	// Group is the group whose members may use the admin socket (besides
	// root and qqd's own user); "" means none. The socket is made mode
	// 0660 with this group.
	Group string `koanf:"group"`
	// ReadOnlyGroup is a group whose members may use the read-only calls
	// (users, stats, plugins) only; "" means none.
	ReadOnlyGroup string `koanf:"read_only_group"`
}

// AdminSocket returns the admin socket path: Admin.Socket, or admin.sock
// in DataDir.
func (c *Config) AdminSocket() string {
	if c.Admin.Socket != "" {
		return c.Admin.Socket
	}
	return filepath.Join(c.DataDir, "admin.sock")
}

// Log configures logging.
type Log struct {
	Level  string    `koanf:"level"`  // debug | info | warn | error
	Format LogFormat `koanf:"format"` // text | json
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
	// MaxConnections bounds open client connections in total; a
	// connection past it is closed right after accept.
	MaxConnections int `koanf:"max_connections"`
	// MaxConnectionsPerIP bounds open connections from one remote IP
	// address (IPv6: one /64).
	MaxConnectionsPerIP int `koanf:"max_connections_per_ip"`
	// SendRate is each user's steady send rate (messages per second, all
	// connections together); SendBurst how many may be sent at once above
	// it (a token bucket). Past it: rate_limited with retry_after_ms.
	SendRate  float64 `koanf:"send_rate"`
	SendBurst int     `koanf:"send_burst"`
	// AuthPerIPPerMinute bounds the failed logins from one remote IP
	// address (IPv6: one /64), AuthPerAccountPerMinute those on one
	// account: each attempt takes a token before the password is checked,
	// and a login that succeeds gives it back, so users behind one NAT
	// address reconnect freely while a guesser is throttled.
	// RegisterPerIPPerMinute bounds registrations from one address (every
	// attempt with a valid name). Past them: rate_limited with
	// retry_after_ms, whatever the credentials.
	AuthPerIPPerMinute      int `koanf:"auth_per_ip_per_minute"`
	AuthPerAccountPerMinute int `koanf:"auth_per_account_per_minute"`
	RegisterPerIPPerMinute  int `koanf:"register_per_ip_per_minute"`
	// ExemptNetworks are networks (CIDR, or single addresses) whose
	// clients the per-IP login and registration limits do not count;
	// the per-account limit still applies. Loopback by default.
	ExemptNetworks []string `koanf:"exempt_networks"`
	// MaxPendingPerUser bounds the messages waiting for one recipient; a
	// send past it is refused (the sender gets an error), nothing is
	// dropped.
	MaxPendingPerUser int `koanf:"max_pending_per_user"`
	// FriendRequestsPerDay bounds the friend requests one user may send
	// in a day (a token bucket refilled over the day; counted per server
	// process). Past it: rate_limited with retry_after_ms.
	FriendRequestsPerDay int `koanf:"friend_requests_per_day"`
	// TypingRate and TypingBurst bound each user's typing requests (per
	// second, and at once). Past them: rate_limited.
	TypingRate  float64 `koanf:"typing_rate"`
	TypingBurst int     `koanf:"typing_burst"`
}

// Accounts configures account handling.
type Accounts struct {
	// MinPasswordBytes is the shortest password accepted at registration.
	MinPasswordBytes int `koanf:"min_password_bytes"`
	// HashConcurrency bounds concurrent Argon2id computations (each takes
	// 19 MiB); 0 means the number of CPUs. Registrations use at most half
	// of them (at least one), so that logins always find one.
	HashConcurrency int `koanf:"hash_concurrency"`
}

// Storage configures the message store, a plugin: a built-in one named by
// Plugin, or a third-party executable given by Command.
type Storage struct {
	// Plugin is the name of a built-in storage plugin: "pebble" (the
	// default) or "sqlite" (the default of earlier releases).
	// When Command is set, Plugin is only a label for logs; [Load] then
	// defaults it to the base name of Command[0] unless a layer sets it.
	Plugin string `koanf:"plugin"`
	// Command is the argv of a third-party plugin executable (an absolute
	// path is recommended). If set, it is run instead of a built-in plugin.
	// Empty means none.
	Command []string `koanf:"command"`
	// Timeout is the deadline of one storage call.
	Timeout time.Duration `koanf:"timeout"`
	// BatchMax is the most messages+acks written in one storage write
	// (group commit).
	BatchMax int `koanf:"batch_max"`
	// Config is the plugin's own configuration, opaque to qqd: it is passed
	// to the plugin as a JSON object and the plugin validates it. Its maps
	// are map[string]any, so it is JSON-encodable.
	//
	// The default holds the built-in pebble plugin's settings with its
	// defaults ([StorageDefaults]). They apply only while Plugin is the
	// default and Command is empty: when a layer selects the other
	// built-in, sqlite, [Load] passes it sqlite's defaults under the keys
	// set by the file, the environment and the overrides; a command
	// plugin gets only the keys set.
	Config map[string]any `koanf:"config"`

	// chosen records that a layer above the defaults set Plugin, rather
	// than taking the default: [Config.CheckStorageUpgrade] guards only a
	// defaulted plugin. Set by [Load]; false in [Default].
	chosen bool
}

// Label returns the name of the storage plugin used in logs: Plugin, or
// the base name of Command[0] if Plugin is empty.
func (s Storage) Label() string {
	return pluginLabel(s.Plugin, s.Command)
}

// Filter is one message filter plugin instance. Filters run in the order
// of [Config].Filters.
type Filter struct {
	// Plugin is the name of a built-in filter plugin (e.g. "wordfilter",
	// "antispam"), or a label for Command. If empty and Command is set,
	// [Load] defaults it to the base name of Command[0].
	Plugin string `koanf:"plugin"`
	// Command is the argv of a third-party plugin executable, as for
	// [Storage].Command.
	Command []string `koanf:"command"`
	// Name is the instance name in logs and metrics; unique across filters
	// and matching ^[a-z0-9][a-z0-9_-]*$. [Load] defaults it to Plugin
	// (or the base name of Command[0]).
	Name string `koanf:"name"`
	// OnFailure says what happens to a message when the filter fails
	// (error, timeout, crash): "reject" (fail closed; [Load]'s default) or
	// "allow".
	OnFailure plugins.FailurePolicy `koanf:"on_failure"`
	// Timeout is the deadline of one filter call; [Load] turns 0 into the
	// default 2s.
	Timeout time.Duration `koanf:"timeout"`
	// Config is the plugin's own configuration, opaque to qqd, as for
	// [Storage].Config.
	Config map[string]any `koanf:"config"`
}

// Label returns the name of the filter instance used in logs: Name, or
// else Plugin, or else the base name of Command[0].
func (f Filter) Label() string {
	if f.Name != "" {
		return f.Name
	}
	return pluginLabel(f.Plugin, f.Command)
}

// Plugins configures how qqd runs its plugins.
type Plugins struct {
	// StartTimeout bounds starting a plugin: process start, handshake and
	// configuration.
	StartTimeout time.Duration `koanf:"start_timeout"`
	// RestartBackoffMin and RestartBackoffMax bound the delay before a
	// crashed plugin is restarted; the delay grows from the minimum to the
	// maximum.
	RestartBackoffMin time.Duration `koanf:"restart_backoff_min"`
	RestartBackoffMax time.Duration `koanf:"restart_backoff_max"`
	// InProcess runs built-in plugins inside qqd instead of as
	// subprocesses (for debugging and benchmarks). Command plugins always
	// run as subprocesses.
	InProcess bool `koanf:"in_process"`
}

// Defaults of the per-entry values that [Load] fills in.
const (
	defaultStoragePlugin = "pebble"
	defaultFilterTimeout = 2 * time.Second
)

// StorageDefaults returns a new map holding the configuration of the
// built-in storage plugin named plugin with its defaults, the keys and
// values that plugin takes when they are left out (valued like YAML gives
// them), or nil if plugin is not a built-in: "pebble" (the default plugin;
// [Default] holds its map), "sqlite" or "postgres". [Load] puts the keys the layers
// set on top of them.
func StorageDefaults(plugin string) map[string]any {
	switch plugin {
	case "pebble":
		// plugins/pebble/pebblestore, ParseConfig.
		return map[string]any{
			"path":         "qq.pebble",
			"sync":         true,
			"dedup_window": "24h",
			"cache_mb":     128,
			"memtable_mb":  64,
		}
	case "sqlite":
		// plugins/sqlite/sqlitestore, ParseConfig.
		return map[string]any{
			"path":         "qq.db",
			"synchronous":  "full",
			"dedup_window": "24h",
		}
	case "postgres":
		// plugins/postgres/pgstore, ParseConfig: a local server, user
		// and database qq, no TLS (set sslmode and the certificates, or
		// put them in the dsn, for a remote server). max_conns and
		// min_conns 0 are pgx's defaults (the larger of 4 and the
		// number of CPUs; none kept open).
		return map[string]any{
			"dsn":               "postgres://qq@127.0.0.1:5432/qq?sslmode=disable",
			"max_conns":         0,
			"min_conns":         0,
			"max_conn_lifetime": "1h",
			"connect_timeout":   "10s",
			"statement_timeout": "30s",
			"dedup_window":      "24h",
		}
	}
	return nil
}

// Default returns a new Config holding the built-in defaults. It is the
// single source of truth for default values; the first layer of [Load].
func Default() *Config {
	return &Config{
		Listen:          "127.0.0.1:5190",
		DataDir:         "./qqd-data",
		Registration:    RegistrationOpen,
		DirectMessages:  DirectMessagesAnyone,
		Presence:        Presence{OfflineDebounce: 3 * time.Second},
		Groups:          Groups{MaxMembers: 500, MaxOwned: 20, MaxJoined: 200, CreatedPerDay: 10, MaxMentions: 20},
		ShutdownTimeout: 10 * time.Second,
		ReconnectSpread: 10 * time.Second,
		Tokens:          Tokens{Enabled: true, Idle: 7 * 24 * time.Hour, Lifetime: 30 * 24 * time.Hour, PerUser: 20},
		Cluster: Cluster{
			FenceAfter:     10 * time.Second,
			SweepInterval:  10 * time.Second,
			RequestTimeout: 2 * time.Second,
			NATS:           NATS{URLs: []string{}, PingInterval: 2 * time.Second, MaxPingsOut: 2, ReconnectWait: 500 * time.Millisecond},
		},
		Log: Log{
			Level:  "info",
			Format: LogText,
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

			MaxConnections:          20000,
			MaxConnectionsPerIP:     16,
			SendRate:                20,
			SendBurst:               100,
			AuthPerIPPerMinute:      30,
			AuthPerAccountPerMinute: 10,
			RegisterPerIPPerMinute:  5,
			ExemptNetworks:          []string{"127.0.0.0/8", "::1/128"},
			MaxPendingPerUser:       10000,
			FriendRequestsPerDay:    50,
			TypingRate:              2,
			TypingBurst:             5,
		},
		Accounts: Accounts{
			MinPasswordBytes: 8,
			HashConcurrency:  0,
		},
		Storage: Storage{
			Plugin:   defaultStoragePlugin,
			Timeout:  5 * time.Second,
			BatchMax: 256,
			// The pebble plugin's own defaults; see the storage.config
			// section of qq.yaml.
			Config: StorageDefaults(defaultStoragePlugin),
		},
		// Values are []any and map[string]any, as decoded from YAML.
		Filters: []Filter{
			{
				Plugin:    "antispam",
				Name:      "antispam",
				OnFailure: plugins.FailClosed,
				Timeout:   defaultFilterTimeout,
				Config:    map[string]any{},
			},
			{
				Plugin:    "wordfilter",
				Name:      "wordfilter",
				OnFailure: plugins.FailClosed,
				Timeout:   defaultFilterTimeout,
				Config: map[string]any{
					"lists": []any{
						map[string]any{
							"name":   "spam-phrases",
							"action": "reject",
							"reason": "message looks like spam",
							"words":  []any{"buy followers", "free bitcoin", "crypto giveaway"},
						},
					},
				},
			},
		},
		Plugins: Plugins{
			StartTimeout:      10 * time.Second,
			RestartBackoffMin: 200 * time.Millisecond,
			RestartBackoffMax: 30 * time.Second,
			InProcess:         false,
		},
		Metrics: Metrics{Listen: "127.0.0.1:9190"},
		TLS:     TLS{Listen: "", CertFile: "", KeyFile: ""},
		Web: Web{
			Listen:                  "127.0.0.1:5280",
			TLS:                     false,
			AllowedOrigins:          []string{},
			TrustedProxies:          []string{},
			MaxHTTPConnections:      1024,
			MaxHTTPConnectionsPerIP: 64,
			HandshakeTimeout:        10 * time.Second,
		},
		Admin: Admin{Socket: "", Group: "", ReadOnlyGroup: ""},
	}
}

// applyDefaults fills the values that default per entry rather than per
// key, after decoding: empty filter names, failure policies and labels,
// zero filter timeouts and nil plugin configs. It also turns empty commands
// into nil and any map[any]any in plugin configs into map[string]any, so
// that they are JSON-encodable.
func (c *Config) applyDefaults() {
	s := &c.Storage
	if len(s.Command) == 0 {
		s.Command = nil
	}
	if s.Plugin == "" {
		s.Plugin = pluginLabel("", s.Command)
	}
	s.Config = normalizeConfig(s.Config)
	for i := range c.Filters {
		f := &c.Filters[i]
		if len(f.Command) == 0 {
			f.Command = nil
		}
		if f.Plugin == "" {
			f.Plugin = pluginLabel("", f.Command)
		}
		if f.Name == "" {
			f.Name = f.Plugin
		}
		if f.Timeout == 0 {
			f.Timeout = defaultFilterTimeout
		}
		f.Config = normalizeConfig(f.Config)
	}
}

// pluginLabel returns plugin, or else the base name of command[0], or "".
func pluginLabel(plugin string, command []string) string {
	if plugin != "" || len(command) == 0 || command[0] == "" {
		return plugin
	}
	return filepath.Base(command[0])
}

// normalizeConfig returns m (a new empty map if nil) with every nested
// map[any]any replaced by a map[string]any.
func normalizeConfig(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return normalize(m).(map[string]any)
}

// normalize replaces, in place where it can, every map[any]any inside v by
// a map[string]any (keys formatted with fmt.Sprint) and returns the result.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	case []map[string]any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

// RestartKeys lists the keys whose values differ between old and new and
// that a running qqd cannot apply on reload: everything but the plugins
// (storage plugin and config, filters, plugins), which reload swaps in.
func RestartKeys(old, new *Config) []string {
	var keys []string
	if old.Storage.Timeout != new.Storage.Timeout {
		keys = append(keys, "storage.timeout")
	}
	if old.Storage.BatchMax != new.Storage.BatchMax {
		keys = append(keys, "storage.batch_max")
	}
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(new).Elem()
	t := ov.Type()
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("koanf")
		switch key {
		case "storage", "filters", "plugins":
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			keys = append(keys, key)
		}
	}
	return keys
}

// Exempt returns ExemptNetworks parsed; an entry that is not a CIDR
// prefix or an address (Validate refuses those) is left out.
func (l *Limits) Exempt() []netip.Prefix { return parseNetworks(l.ExemptNetworks) }

// Trusted returns TrustedProxies parsed (entries that do not parse, which
// Validate refuses, are left out).
func (w *Web) Trusted() []netip.Prefix { return parseNetworks(w.TrustedProxies) }

// parseNetworks parses a list of networks, leaving out what does not
// parse.
func parseNetworks(list []string) []netip.Prefix {
	var ps []netip.Prefix
	for _, n := range list {
		if p, err := parseNetwork(n); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// parseNetwork parses a CIDR prefix ("10.0.0.0/8") or a single address.
func parseNetwork(n string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(n); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(n)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
