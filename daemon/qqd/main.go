// Command qqd is the qq chat daemon. With no flags it runs on embedded
// defaults: it listens on 127.0.0.1:5190, keeps its data in ./qqd-data,
// and runs its built-in plugins (sqlite storage, antispam and wordfilter
// filters) as subprocesses of itself.
//
//	qqd [-config qq.yaml] [-listen addr] [-data-dir dir] [-t] [-version]
//	qqd plugin <name>     (serve a built-in plugin; qqd runs this itself)
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

func run(args []string, stdout, stderr io.Writer) error {
	builtins := pluginset.DefaultBuiltins()
	if len(args) > 0 && args[0] == "plugin" {
		if len(args) != 2 {
			return errors.New("usage: qqd plugin <name>")
		}
		return builtins.Serve(args[1])
	}
	fs := flag.NewFlagSet("qqd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration `file` (default: embedded defaults only)")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	fs.BoolVar(check, "t", false, "short for -check-config")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.String("listen", "", "TCP `address` to listen on (overrides listen)")
	fs.String("data-dir", "", "data `directory` (overrides data_dir)")
	fs.String("log-level", "", "debug, info, warn or error (overrides log.level)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "qqd", daemon.Version())
		return nil
	}
	overrides := map[string]any{}
	flagKeys := map[string]string{"listen": "listen", "data-dir": "data_dir", "log-level": "log.level"}
	fs.Visit(func(f *flag.Flag) {
		if key, ok := flagKeys[f.Name]; ok {
			overrides[key] = f.Value.String()
		}
	})
	load := func() (*config.Config, error) {
		return config.Load(config.Options{File: *configPath, Env: os.Environ(), Overrides: overrides})
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintln(stdout, "configuration ok")
		return nil
	}
	log := newLogger(cfg.Log, stderr)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	self, err := pluginset.Self()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	set, err := pluginset.Start(ctx, cfg, pluginset.Options{Builtins: builtins, Self: self, Logger: log})
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	reg := prometheus.NewRegistry()
	d, err := daemon.New(cfg, daemon.Deps{Storage: set.Storage(), Filters: set.Filters(), Logger: log, Version: daemon.Version(), Registry: reg})
	if err != nil {
		set.Close()
		return err
	}
	live := pluginset.NewLive(d, set, cfg, load, log)
	defer live.Close()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		daemon.PluginCollector(live.Statuses),
	)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listen: %w", err)
		}
		ready := func() error { return errors.Join(d.Ready(), live.StorageUp()) }
		hs := &http.Server{Handler: monitor.Handler(reg, ready, monitor.WithPprof(cfg.Metrics.Pprof)), ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(mln)
		defer hs.Close()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	var certs *daemon.CertReloader
	var tln net.Listener
	if cfg.TLS.Listen != "" {
		if certs, err = daemon.NewCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			ln.Close()
			return err
		}
		raw, err := net.Listen("tcp", cfg.TLS.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls listen: %w", err)
		}
		tln = tls.NewListener(raw, certs.TLSConfig())
	}
	notify := sdnotify.New(os.Getenv)
	reload := func(ctx context.Context) ([]string, error) {
		notify.Reloading()
		defer notify.Ready()
		if certs != nil {
			if err := certs.Reload(); err != nil {
				log.Error("reload: keeping the old TLS certificate", "err", err)
			}
		}
		return live.Reload(ctx)
	}
	adm, err := adminserver.Listen(adminserver.Options{
		Path: cfg.AdminSocket(), Group: cfg.Admin.Group, ReadOnlyGroup: cfg.Admin.ReadOnlyGroup,
		Logger: log, Registry: reg,
	}, adminBackend{d: d, statuses: live.Statuses, reload: reload})
	if err != nil {
		ln.Close()
		return err
	}
	defer adm.Close()
	go adm.Serve()
	startAttrs := []any{"version", daemon.Version(), "listen", ln.Addr().String(), "data_dir", cfg.DataDir, "admin_socket", adm.Path()}
	if tln != nil {
		startAttrs = append(startAttrs, "tls_listen", tln.Addr().String())
	}
	log.Info("qqd starting", startAttrs...)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	serveErr := make(chan error, 2)
	go func() { serveErr <- d.Serve(ln) }()
	if tln != nil {
		go func() { serveErr <- d.Serve(tln) }()
	}
	notify.Ready()
	wdCtx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go notify.RunWatchdog(wdCtx, func() bool { return d.Ready() == nil })
	for running := true; running; {
		select {
		case <-ctx.Done():
			log.Info("signal received; shutting down")
			running = false
		case err := <-serveErr:
			return err
		case <-hup:
			reload(ctx)
		}
	}
	notify.Stopping()
	stopWatchdog()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	live.Close()
	log.Info("qqd stopped")
	return nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
