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
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
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
	defer func() { set.Close() }()

	d, err := daemon.New(cfg, daemon.Deps{Storage: set.Storage(), Filters: set.Filters(), Logger: log, Version: daemon.Version()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("qqd starting", "version", daemon.Version(), "listen", ln.Addr().String(), "data_dir", cfg.DataDir)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.Serve(ln) }()
	for running := true; running; {
		select {
		case <-ctx.Done():
			log.Info("signal received; shutting down")
			running = false
		case err := <-serveErr:
			return err
		case <-hup:
			set, cfg = reload(ctx, log, load, set, d, cfg)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	set.Close()
	log.Info("qqd stopped")
	return nil
}

// reload re-reads the configuration and swaps in the plugins that
// changed. An invalid configuration is logged, every problem of it, and
// the running one stays. Settings other than the plugins' need a restart;
// reload says which changed.
func reload(ctx context.Context, log *slog.Logger, load func() (*config.Config, error), set *pluginset.Set, d *daemon.Server, running *config.Config) (*pluginset.Set, *config.Config) {
	log.Info("reloading configuration")
	cfg, err := load()
	if err != nil {
		log.Error("reload refused: invalid configuration; keeping the running one", "err", err)
		return set, running
	}
	if keys := config.RestartKeys(running, cfg); len(keys) > 0 {
		log.Warn("reload: these settings changed but apply only after a restart", "keys", keys)
	}
	next, err := set.SwapInto(ctx, d, cfg)
	if err != nil {
		log.Error("reload failed: keeping the running plugins", "err", err)
		return next, running
	}
	return next, cfg
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
