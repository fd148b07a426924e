package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/qqchat/qq/plugins"
)

// Config is the plugin configuration of the postgres storage plugin: the
// "config" section under storage in qq.yaml. Every key is documented in
// plugins/postgres/README.md.
type Config struct {
	// DSN is the PostgreSQL connection string, as a URL
	// (postgres://user:password@host:port/db?sslmode=...) or in
	// keyword=value form. Required.
	DSN string `json:"dsn"`
	// MaxConns and MinConns size the connection pool (0: pgx's
	// defaults, or those the DSN sets with pool_max_conns and
	// pool_min_conns).
	MaxConns int32 `json:"max_conns"`
	MinConns int32 `json:"min_conns"`
	// MaxConnLifetime closes a connection after this long ("1h").
	MaxConnLifetime durationText `json:"max_conn_lifetime"`
	// ConnectTimeout bounds the establishment of a connection ("10s").
	ConnectTimeout durationText `json:"connect_timeout"`
	// StatementTimeout is PostgreSQL's statement_timeout of every
	// session of the pool ("30s"; "0s": none).
	StatementTimeout durationText `json:"statement_timeout"`
	// SSLMode, SSLRootCert, SSLCert and SSLKey are the TLS settings of
	// libpq's sslmode, sslrootcert, sslcert and sslkey: they override the
	// DSN's. Relative paths are taken relative to the data directory.
	SSLMode     string `json:"sslmode"`
	SSLRootCert string `json:"sslrootcert"`
	SSLCert     string `json:"sslcert"`
	SSLKey      string `json:"sslkey"`
	// DedupWindow is how long (sender, cid) keys are remembered, as a Go
	// duration ("24h"); 0 remembers them forever.
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
		return fmt.Errorf("want a duration such as \"30s\", got %s", b)
	}
	*d = durationText(s)
	return nil
}

// New is the plugins.StorageFactory of the postgres plugin: it validates
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
	c := Config{MaxConnLifetime: "1h", ConnectTimeout: "10s", StatementTimeout: "30s", DedupWindow: "24h"}
	errs, ok := plugins.DecodeConfig(config, &c)
	if !ok {
		return Options{}, fmt.Errorf("postgres config: %w", errors.Join(errs...))
	}
	for i, e := range errs {
		errs[i] = fmt.Errorf("postgres config: %w", e)
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("postgres config: "+format, args...)) }
	dur := func(key string, d durationText) time.Duration {
		v, err := time.ParseDuration(string(d))
		if err != nil || v < 0 {
			bad("%s: must be a duration >= 0 such as \"30s\" (got %q)", key, d)
		}
		return v
	}
	lifetime := dur("max_conn_lifetime", c.MaxConnLifetime)
	connect := dur("connect_timeout", c.ConnectTimeout)
	statement := dur("statement_timeout", c.StatementTimeout)
	window := dur("dedup_window", c.DedupWindow)
	if c.MaxConns < 0 || c.MinConns < 0 || (c.MaxConns > 0 && c.MinConns > c.MaxConns) {
		bad("max_conns and min_conns: must be >= 0, min_conns <= max_conns (got %d, %d)", c.MaxConns, c.MinConns)
	}
	switch c.SSLMode {
	case "", "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		bad("sslmode: must be disable, allow, prefer, require, verify-ca or verify-full (got %q)", c.SSLMode)
	}
	if c.DSN == "" {
		bad("dsn: required (postgres://user@host:5432/db)")
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	abs := func(p string) string {
		if p == "" || strings.HasPrefix(p, "/") {
			return p
		}
		return env.DataDir + "/" + p
	}
	dsn := withParams(c.DSN, [][2]string{
		{"sslmode", c.SSLMode}, {"sslrootcert", abs(c.SSLRootCert)}, {"sslcert", abs(c.SSLCert)}, {"sslkey", abs(c.SSLKey)},
	})
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's error quotes the DSN with the password redacted.
		return Options{}, fmt.Errorf("postgres config: dsn and TLS keys: %w", err)
	}
	if c.MaxConns > 0 {
		pc.MaxConns = c.MaxConns
	}
	if c.MinConns > 0 {
		pc.MinConns = c.MinConns
	}
	pc.MaxConnLifetime = lifetime
	if lifetime == 0 {
		pc.MaxConnLifetime = 100 * 365 * 24 * time.Hour
	}
	if connect > 0 {
		pc.ConnConfig.ConnectTimeout = connect
	}
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(statement.Milliseconds(), 10)
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "qqd"
	}
	return Options{PoolConfig: pc, DedupWindow: window}, nil
}

// withParams sets the non-empty params in dsn, a URL or a keyword=value
// string.
func withParams(dsn string, params [][2]string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn // ParseConfig reports it
		}
		q := u.Query()
		for _, p := range params {
			if p[1] != "" {
				q.Set(p[0], p[1])
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for _, p := range params {
		if p[1] != "" {
			dsn += " " + p[0] + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(p[1]) + "'"
		}
	}
	return dsn
}
