// Command qqd is the qq chat daemon. With no flags it runs on embedded
// defaults: it listens on 127.0.0.1:5190 and keeps its data in ./qqd-data.
//
//	qqd [-config qq.yaml] [-listen addr] [-data-dir dir] [-t] [-version]
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
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
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
	cfg, err := config.Load(config.Options{File: *configPath, Env: os.Environ(), Overrides: overrides})
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
	store, err := sqlitestore.Open(context.Background(), sqlitestore.Options{
		Path:        cfg.SQLitePath(),
		Synchronous: cfg.Storage.SQLite.Synchronous,
		DedupWindow: cfg.Storage.SQLite.DedupWindow,
		Logger:      log.With("component", "sqlite"),
	})
	if err != nil {
		return err
	}
	defer store.Close()

	d, err := daemon.New(cfg, daemon.Deps{Storage: store, Logger: log, Version: daemon.Version()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("qqd starting", "version", daemon.Version(), "listen", ln.Addr().String(), "data_dir", cfg.DataDir)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.Serve(ln) }()
	select {
	case <-ctx.Done():
		log.Info("signal received; shutting down")
	case err := <-serveErr:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("close storage: %w", err)
	}
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
