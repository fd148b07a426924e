package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// problem is one invalid value: the dotted key and what is wrong with it.
type problem struct {
	key string
	msg string
}

// Validate checks every value and returns all problems at once (joined
// with errors.Join), each naming its key, e.g.
//
//	config: limits.max_body_bytes: must be at least 4096 (got 100)
//
// It returns nil if the configuration is valid.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range c.problems() {
		errs = append(errs, fmt.Errorf("config: %s: %s", p.key, p.msg))
	}
	return errors.Join(errs...)
}

// problems lists every invalid value, in declaration order.
func (c *Config) problems() []problem {
	var v validator

	v.hostPort("listen", c.Listen)
	if c.DataDir == "" {
		v.add("data_dir", "must not be empty")
	}
	v.checkEnum("registration", c.Registration, "open, closed")
	v.checkEnum("direct_messages", c.DirectMessages, "anyone, friends")
	v.positive("presence.offline_debounce", c.Presence.OfflineDebounce)
	v.between("groups.max_members", c.Groups.MaxMembers, 2, 3000)
	v.atLeast("groups.max_owned", c.Groups.MaxOwned, 1)
	v.atLeast("groups.max_joined", c.Groups.MaxJoined, 1)
	v.atLeast("groups.created_per_day", c.Groups.CreatedPerDay, 1)
	v.between("groups.max_mentions", c.Groups.MaxMentions, 0, 100)
	v.positive("shutdown_timeout", c.ShutdownTimeout)
	if cl := c.Cluster; cl.Enabled {
		if cl.Node != "" && !validNodeName(cl.Node) {
			v.add("cluster.node", "must be 1-64 bytes of a-z, 0-9, _ and -")
		}
		if len(cl.NATS.URLs) == 0 {
			v.add("cluster.nats.urls", "must name at least one NATS server in cluster mode")
		}
		if (cl.NATS.CertFile == "") != (cl.NATS.KeyFile == "") {
			v.add("cluster.nats.cert_file", "cert_file and key_file go together")
		}
		v.atLeastDuration("cluster.fence_after", cl.FenceAfter, time.Second)
		v.atLeastDuration("cluster.sweep_interval", cl.SweepInterval, 100*time.Millisecond)
		v.atLeastDuration("cluster.request_timeout", cl.RequestTimeout, 10*time.Millisecond)
		v.atLeastDuration("cluster.nats.ping_interval", cl.NATS.PingInterval, 100*time.Millisecond)
		v.atLeast("cluster.nats.max_pings_out", cl.NATS.MaxPingsOut, 1)
		v.atLeastDuration("cluster.nats.reconnect_wait", cl.NATS.ReconnectWait, 10*time.Millisecond)
		if !sharedStorage(c.Storage) {
			v.add("cluster.enabled", "cluster mode needs a storage that all nodes share (storage.plugin: postgres); "+storageName(c.Storage)+" keeps its data on this machine")
		}
	}

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.checkEnum("log.format", c.Log.Format, "text, json")

	l := c.Limits
	v.between("limits.max_frame_bytes", l.MaxFrameBytes, 1024, 16<<20)
	v.atLeast("limits.max_body_bytes", l.MaxBodyBytes, 4096)
	if maxBody := l.MaxFrameBytes - 1024; l.MaxBodyBytes >= 4096 && l.MaxBodyBytes > maxBody {
		v.add("limits.max_body_bytes", fmt.Sprintf(
			"must be at most limits.max_frame_bytes - 1024 = %d (got %d)", maxBody, l.MaxBodyBytes))
	}
	if minQueue := 2 * l.MaxFrameBytes; l.OutboundQueueBytes < minQueue {
		v.add("limits.outbound_queue_bytes", fmt.Sprintf(
			"must be at least 2 * limits.max_frame_bytes = %d (got %d)", minQueue, l.OutboundQueueBytes))
	}
	v.positive("limits.write_timeout", l.WriteTimeout)
	v.positive("limits.idle_timeout", l.IdleTimeout)
	v.positive("limits.login_timeout", l.LoginTimeout)
	v.between("limits.max_inflight", l.MaxInflight, 1, 4096)
	v.atLeast("limits.offline_page_max", l.OfflinePageMax, 100)
	v.atLeast("limits.history_page_max", l.HistoryPageMax, 50)
	v.atLeast("limits.max_ack_ids", l.MaxAckIDs, 1)
	v.atLeast("limits.max_connections", l.MaxConnections, 1)
	v.atLeast("limits.max_connections_per_ip", l.MaxConnectionsPerIP, 1)
	if l.SendRate <= 0 {
		v.add("limits.send_rate", fmt.Sprintf("must be greater than 0 (got %v)", l.SendRate))
	}
	v.atLeast("limits.send_burst", l.SendBurst, 1)
	v.atLeast("limits.auth_per_ip_per_minute", l.AuthPerIPPerMinute, 1)
	v.atLeast("limits.auth_per_account_per_minute", l.AuthPerAccountPerMinute, 1)
	v.atLeast("limits.register_per_ip_per_minute", l.RegisterPerIPPerMinute, 1)
	if c.ReconnectSpread < 0 {
		v.add("reconnect_spread", fmt.Sprintf("must not be negative (got %v)", c.ReconnectSpread))
	}
	for _, n := range l.ExemptNetworks {
		if _, err := parseNetwork(n); err != nil {
			v.add("limits.exempt_networks", fmt.Sprintf("%q is neither a network in CIDR notation nor an address", n))
		}
	}
	v.atLeast("limits.max_pending_per_user", l.MaxPendingPerUser, 1)
	v.atLeast("limits.friend_requests_per_day", l.FriendRequestsPerDay, 1)
	v.atLeast("limits.typing_burst", l.TypingBurst, 1)
	if l.TypingRate <= 0 {
		v.add("limits.typing_rate", fmt.Sprintf("must be greater than 0 (got %g)", l.TypingRate))
	}
	if c.TLS.Listen != "" {
		v.hostPort("tls.listen", c.TLS.Listen)
		if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
			v.add("tls", "tls.listen needs tls.cert_file and tls.key_file")
		}
	}

	if c.Web.Listen != "" {
		v.hostPort("web.listen", c.Web.Listen)
		if c.Web.TLS && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
			v.add("web.tls", "needs tls.cert_file and tls.key_file")
		}
	}
	for _, n := range c.Web.TrustedProxies {
		if _, err := parseNetwork(n); err != nil {
			v.add("web.trusted_proxies", fmt.Sprintf("%q is neither a network in CIDR notation nor an address", n))
		}
	}
	for _, o := range c.Web.AllowedOrigins {
		if msg := checkOrigin(o); msg != "" {
			v.add("web.allowed_origins", fmt.Sprintf("%q %s", o, msg))
		}
	}
	v.atLeast("web.max_http_connections", c.Web.MaxHTTPConnections, 1)
	v.atLeast("web.max_http_connections_per_ip", c.Web.MaxHTTPConnectionsPerIP, 1)
	v.positive("web.handshake_timeout", c.Web.HandshakeTimeout)

	v.atLeastDuration("tokens.idle", c.Tokens.Idle, time.Minute)
	v.atLeastDuration("tokens.lifetime", c.Tokens.Lifetime, time.Minute)
	v.between("tokens.per_user", c.Tokens.PerUser, 1, 1000)

	v.between("accounts.min_password_bytes", c.Accounts.MinPasswordBytes, 1, 1024)
	v.atLeast("accounts.hash_concurrency", c.Accounts.HashConcurrency, 0)

	s := c.Storage
	v.plugin("storage", s.Plugin, s.Command)
	v.positive("storage.timeout", s.Timeout)
	v.between("storage.batch_max", s.BatchMax, 1, 10000)
	v.jsonObject("storage.config", s.Config)

	first := make(map[string]int) // filter name -> index of its first use
	for i, f := range c.Filters {
		key := fmt.Sprintf("filters[%d]", i)
		pluginOK := v.plugin(key, f.Plugin, f.Command)
		switch j, dup := first[f.Name]; {
		case f.Name == "" && !pluginOK:
			// Load defaults the name from the plugin or command.
		case f.Name == "":
			v.add(key+".name", "must not be empty")
		case !filterName.MatchString(f.Name):
			v.add(key+".name", fmt.Sprintf("must match %s (got %q)", filterName, f.Name))
		case dup:
			v.add(key+".name", fmt.Sprintf(
				"must be unique: %q is also the name of filters[%d] (set name on one of them)", f.Name, j))
		default:
			first[f.Name] = i
		}
		v.checkEnum(key+".on_failure", f.OnFailure, "reject, allow")
		v.positive(key+".timeout", f.Timeout)
		v.jsonObject(key+".config", f.Config)
	}

	p := c.Plugins
	if c.Metrics.Listen != "" {
		v.hostPort("metrics.listen", c.Metrics.Listen)
	}
	v.positive("plugins.start_timeout", p.StartTimeout)
	v.positive("plugins.restart_backoff_min", p.RestartBackoffMin)
	if p.RestartBackoffMax < p.RestartBackoffMin {
		v.add("plugins.restart_backoff_max", fmt.Sprintf(
			"must be at least plugins.restart_backoff_min = %s (got %s)", p.RestartBackoffMin, p.RestartBackoffMax))
	}

	return v.problems
}

// checkOrigin says what is wrong with an entry of web.allowed_origins, or
// "" if nothing is: it is an origin ("https://chat.example.com", scheme
// http or https, no path) or a host pattern ("*.example.com"), either in
// path.Match syntax, and it does not allow every origin.
func checkOrigin(o string) string {
	host := o
	if scheme, rest, ok := strings.Cut(o, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return "must be an origin with scheme http or https, or a host pattern without a scheme"
		}
		host = rest
	}
	switch {
	case host == "":
		return "has no host"
	case strings.ContainsAny(host, "/?#@ "):
		return "must be an origin (scheme://host[:port]) without path, query or user, as browsers send it"
	case strings.Trim(host, "*") == "":
		return "would allow every origin, which disables the cross-site WebSocket check"
	}
	if _, err := path.Match(o, ""); err != nil {
		return "is not a valid pattern: " + err.Error()
	}
	return ""
}

// filterName is the syntax of filter instance names.
var filterName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

type validator struct {
	problems []problem
}

func (v *validator) add(key, msg string) {
	v.problems = append(v.problems, problem{key: key, msg: msg})
}

func (v *validator) atLeast(key string, got, lo int) {
	if got < lo {
		v.add(key, fmt.Sprintf("must be at least %d (got %d)", lo, got))
	}
}

func (v *validator) between(key string, got, lo, hi int) {
	if got < lo || got > hi {
		v.add(key, fmt.Sprintf("must be between %d and %d (got %d)", lo, hi, got))
	}
}

func (v *validator) positive(key string, got time.Duration) {
	if got <= 0 {
		v.add(key, fmt.Sprintf("must be greater than 0 (got %s)", got))
	}
}

func (v *validator) atLeastDuration(key string, got, lo time.Duration) {
	if got < lo {
		v.add(key, fmt.Sprintf("must be at least %v (got %v)", lo, got))
	}
}

func (v *validator) oneOf(key, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.add(key, fmt.Sprintf("must be one of %s (got %q)", strings.Join(allowed, ", "), got))
}

func (v *validator) hostPort(key, got string) {
	_, port, err := net.SplitHostPort(got)
	if err != nil {
		v.add(key, fmt.Sprintf("must be host:port (got %q)", got))
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add(key, fmt.Sprintf("must be host:port with a numeric port 0-65535 (got %q)", got))
	}
}

// plugin checks a plugin entry (storage or a filter, named key): it needs
// a built-in plugin name or a command whose program is not empty. It
// reports whether the entry is valid.
func (v *validator) plugin(key, plugin string, command []string) bool {
	switch {
	case len(command) > 0 && command[0] == "":
		v.add(key+".command", "the program (first element) must not be empty")
	case plugin == "" && len(command) == 0:
		v.add(key, "one of plugin or command must be set")
	default:
		return true
	}
	return false
}

// jsonObject checks that a plugin config can be passed to the plugin as
// JSON.
func (v *validator) jsonObject(key string, m map[string]any) {
	if _, err := json.Marshal(m); err != nil {
		v.add(key, "must be encodable as JSON: "+err.Error())
	}
}

// validNodeName reports whether name is a valid cluster.node: it goes
// into NATS subjects and metrics, so only [a-z0-9_-], 1-64 bytes.
func validNodeName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// sharedStorage reports whether s is a storage that several nodes can
// share: the built-in postgres plugin, or a command (an operator's own
// plugin, which qqd cannot inspect; docs/cluster.md says what it must
// do).
func sharedStorage(s Storage) bool { return len(s.Command) > 0 || s.Plugin == "postgres" }

// storageName names s for an error message.
func storageName(s Storage) string {
	if len(s.Command) > 0 {
		return "storage.command"
	}
	return "storage plugin " + s.Plugin
}
