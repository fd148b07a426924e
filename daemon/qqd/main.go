// Command qqd is the qq chat daemon. With no flags it runs on embedded
// defaults: it listens on 127.0.0.1:5190, serves the web client on
// http://127.0.0.1:5280/, keeps its data in ./qqd-data, and runs its
// built-in plugins (pebble storage, antispam and wordfilter filters) as
// subprocesses of itself. It refuses to start, by default, on a data
// directory holding the SQLite database (qq.db) of an earlier release whose
// default storage was sqlite; choose storage.plugin, or migrate (see
// docs/operations.md).
//
//	qqd [-config qq.yaml] [-listen addr] [-web-listen addr] [-data-dir dir] [-t] [-version]
//	qqd plugin <name>     (serve a built-in plugin; qqd runs this itself)
//	qqd storage export|import|migrate|inspect ...  (offline storage tools; see storage.go)
//
// SIGHUP reloads qq.yaml: changed plugins are started, swapped in and the
// old ones stopped, without dropping a connection. SIGINT and SIGTERM shut
// down gracefully.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/qqchat/qq/admin/adminserver"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/monitor"
	"github.com/qqchat/qq/daemon/sdnotify"
	"github.com/qqchat/qq/daemon/web"
	"github.com/qqchat/qq/plugins/pluginset"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "qqd:", err)
		}
		os.Exit(1)
	}
}

// run is qqd: load the configuration, start every part, serve until a
// signal, stop.
func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "plugin" {
		if len(args) != 2 {
			return errors.New("usage: qqd plugin <name>")
		}
		return builtins().Serve(args[1])
	}
	if len(args) > 0 && args[0] == "storage" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return runStorage(ctx, args[1:], os.Stdin, stdout, stderr)
	}
	fl, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if fl.version {
		fmt.Fprintln(stdout, "qqd", daemon.Version())
		return nil
	}
	cfg, err := fl.load()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if fl.check {
		return checkConfig(ctx, cfg, stdout)
	}
	// SIGHUP is caught from here on: start logs "qqd starting", after
	// which a reload may come at once (its default action would end
	// qqd).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	q, err := start(ctx, cfg, fl.load, stderr)
	if err != nil {
		return err
	}
	return q.serve(ctx, hup)
}

// flags are qqd's command line.
type flags struct {
	configPath     string
	check, version bool
	overrides      map[string]any
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	fl := &flags{overrides: map[string]any{}}
	fs := flag.NewFlagSet("qqd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&fl.configPath, "config", "", "YAML configuration `file` (default: embedded defaults only)")
	fs.BoolVar(&fl.check, "check-config", false, "check the configuration, start and configure every plugin it names, and exit")
	fs.BoolVar(&fl.check, "t", false, "short for -check-config")
	fs.BoolVar(&fl.version, "version", false, "print the version and exit")
	fs.String("listen", "", "TCP `address` to listen on (overrides listen)")
	fs.String("web-listen", "", "`address` of the web client, \"\" for none (overrides web.listen)")
	fs.String("data-dir", "", "data `directory` (overrides data_dir)")
	fs.String("log-level", "", "debug, info, warn or error (overrides log.level)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	flagKeys := map[string]string{"listen": "listen", "web-listen": "web.listen", "data-dir": "data_dir", "log-level": "log.level"}
	fs.Visit(func(f *flag.Flag) {
		if key, ok := flagKeys[f.Name]; ok {
			fl.overrides[key] = f.Value.String()
		}
	})
	return fl, nil
}

// load reads the configuration, at start and again on each reload, and
// refuses one that would run pebble by default beside an earlier
// release's SQLite database.
func (fl *flags) load() (*config.Config, error) {
	cfg, err := config.Load(config.Options{File: fl.configPath, Env: os.Environ(), Overrides: fl.overrides})
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckStorageUpgrade(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkConfig is -t: the configuration is valid (load did that), every
// plugin it names starts and takes its configuration, and the TLS
// certificate loads. It says what it did not check.
func checkConfig(ctx context.Context, cfg *config.Config, stdout io.Writer) error {
	self, err := pluginset.Self()
	if err != nil {
		return err
	}
	var errs []error
	if err := pluginset.Check(ctx, cfg, pluginset.Options{Builtins: builtins(), Self: self}); err != nil {
		errs = append(errs, fmt.Errorf("plugins: %w", err))
	}
	if needsCert(cfg) {
		if _, err := daemon.NewCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("configuration check failed:\n%w", err)
	}
	fmt.Fprintf(stdout, "configuration ok: storage %s and %d filter(s) started and took their configuration\n",
		cfg.Storage.Label(), len(cfg.Filters))
	fmt.Fprintln(stdout, "not checked: the storage ran on a scratch data directory (data_dir was not opened), and no address was bound")
	return nil
}

// qqd is a started daemon with everything wired to it.
type qqd struct {
	cfg    *config.Config
	log    *slog.Logger
	d      *daemon.Server
	live   *pluginset.Live
	ln     net.Listener
	tln    net.Listener  // nil without tls.listen
	web    *web.Listener // nil without web.listen
	certs  *daemon.CertReloader
	notify *sdnotify.Notifier
	// cleanup undoes start, last step first.
	cleanup cleanupStack
}

// cleanupStack runs the functions pushed on it in reverse order.
type cleanupStack []func()

func (c *cleanupStack) push(f func()) { *c = append(*c, f) }

func (c *cleanupStack) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// start starts the plugins, the daemon, the listeners, the metrics
// endpoint and the admin socket. On error everything started is stopped.
func start(ctx context.Context, cfg *config.Config, load func() (*config.Config, error), stderr io.Writer) (_ *qqd, err error) {
	q := &qqd{cfg: cfg, log: newLogger(cfg.Log, stderr), notify: sdnotify.New(os.Getenv)}
	defer func() {
		if err != nil {
			q.cleanup.run()
		}
	}()
	log := q.log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	self, err := pluginset.Self()
	if err != nil {
		return nil, err
	}
	set, err := pluginset.Start(ctx, cfg, pluginset.Options{Builtins: builtins(), Self: self, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	q.cleanup.push(set.Close)
	reg := prometheus.NewRegistry()
	q.d, err = daemon.New(cfg, daemon.Deps{Storage: set.Storage(), Filters: set.Filters(), Logger: log, Version: daemon.Version(), Registry: reg})
	if err != nil {
		return nil, err
	}
	q.live = pluginset.NewLive(q.d, set, cfg, load, log)
	// The plugins in service stop after the daemon has drained (pushed
	// first, so run after): every send read before the shutdown is
	// filtered and stored, not answered unavailable.
	q.cleanup.push(q.live.Close)
	q.cleanup.push(func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := q.d.Shutdown(sctx); err != nil {
			log.Warn("shutdown incomplete", "err", err)
		}
		if q.web != nil {
			// The close frames of the WebSocket sessions just kicked.
			q.web.Wait(sctx)
		}
	})
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		daemon.PluginCollector(q.live.Statuses),
	)

	if q.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	q.cleanup.push(func() { q.ln.Close() })
	if cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return nil, fmt.Errorf("metrics listen: %w", err)
		}
		ready := func() error { return errors.Join(q.d.Ready(), q.live.StorageUp()) }
		hs := &http.Server{Handler: monitor.Handler(reg, ready, monitor.WithPprof(cfg.Metrics.Pprof)), ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(mln)
		q.cleanup.push(func() { hs.Close() })
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	if needsCert(cfg) {
		if q.certs, err = daemon.NewCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			return nil, err
		}
	}
	if cfg.TLS.Listen != "" {
		raw, err := net.Listen("tcp", cfg.TLS.Listen)
		if err != nil {
			return nil, fmt.Errorf("tls listen: %w", err)
		}
		q.tln = tls.NewListener(raw, q.certs.TLSConfig())
		q.cleanup.push(func() { q.tln.Close() })
	}
	if cfg.Web.Listen != "" {
		deps := web.Deps{Logger: log, Registry: reg}
		if cfg.Web.TLS {
			deps.TLS = q.certs.TLSConfig()
		}
		if q.web, err = web.Listen(cfg.Web, deps); err != nil {
			return nil, err
		}
		// Stops new upgrades before the daemon's shutdown kicks the
		// WebSocket sessions.
		q.cleanup.push(func() { q.web.Close() })
	}
	adm, err := adminserver.Listen(adminserver.Options{
		Path: cfg.AdminSocket(), Group: cfg.Admin.Group, ReadOnlyGroup: cfg.Admin.ReadOnlyGroup,
		Logger: log, Registry: reg,
	}, adminBackend{d: q.d, statuses: q.live.Statuses, reload: q.reload, checkReload: q.live.CheckReload})
	if err != nil {
		return nil, err
	}
	q.cleanup.push(func() { adm.Close() })
	go adm.Serve()
	startAttrs := []any{"version", daemon.Version(), "listen", q.ln.Addr().String(), "data_dir", cfg.DataDir, "admin_socket", adm.Path()}
	if q.tln != nil {
		startAttrs = append(startAttrs, "tls_listen", q.tln.Addr().String())
	}
	if q.web != nil {
		startAttrs = append(startAttrs, "web_listen", q.web.Addr().String())
	}
	log.Info("qqd starting", startAttrs...)
	if q.web != nil {
		log.Info("web client at " + q.web.URL())
	}
	return q, nil
}

// needsCert reports whether a listener of cfg serves TLS: tls.listen, or
// web.listen with web.tls.
func needsCert(cfg *config.Config) bool {
	return cfg.TLS.Listen != "" || cfg.Web.Listen != "" && cfg.Web.TLS
}

// reload is SIGHUP and the admin socket's reload: the TLS certificate,
// then the plugins.
func (q *qqd) reload(ctx context.Context) ([]string, error) {
	q.notify.Reloading()
	defer q.notify.Ready()
	if q.certs != nil {
		if err := q.certs.Reload(); err != nil {
			q.log.Error("reload: keeping the old TLS certificate", "err", err)
		}
	}
	return q.live.Reload(ctx)
}

// serve serves until ctx ends (SIGINT, SIGTERM) or a listener fails,
// reloading on each signal from hup (SIGHUP), then stops everything.
func (q *qqd) serve(ctx context.Context, hup <-chan os.Signal) error {
	defer q.cleanup.run()
	serveErr := make(chan error, 3)
	go func() { serveErr <- q.d.Serve(q.ln) }()
	if q.tln != nil {
		go func() { serveErr <- q.d.Serve(q.tln) }()
	}
	if q.web != nil {
		go func() { serveErr <- q.d.Serve(q.web) }()
	}
	q.notify.Ready()
	wdCtx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go q.notify.RunWatchdog(wdCtx, func() bool { return q.d.Ready() == nil })
	for {
		select {
		case <-ctx.Done():
			q.log.Info("signal received; shutting down")
			q.notify.Stopping()
			stopWatchdog()
			q.cleanup.run()
			q.log.Info("qqd stopped")
			return nil
		case err := <-serveErr:
			return err
		case <-hup:
			q.reload(ctx)
		}
	}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
