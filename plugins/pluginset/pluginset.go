// Package pluginset starts the plugins that qq.yaml names — one storage
// plugin and the filter chain — and keeps them running: each built-in or
// third-party plugin runs as a supervised subprocess (qqd re-executes
// itself as "qqd plugin <name>" for built-ins), or, with
// plugins.in_process, inside qqd. On reload, Set.Reload starts only what
// changed, so an unchanged storage keeps its process.
package pluginset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/antispam/antispam"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/wordfilter/wordfilter"
)

// Builtins are the plugins compiled into qqd.
type Builtins struct {
	Storages map[string]plugins.StorageFactory
	Filters  map[string]plugins.FilterFactory
}

// DefaultBuiltins returns qqd's built-in plugins: storage "sqlite",
// filters "wordfilter" and "antispam".
func DefaultBuiltins() Builtins {
	return Builtins{
		Storages: map[string]plugins.StorageFactory{"sqlite": sqlitestore.New},
		Filters:  map[string]plugins.FilterFactory{"wordfilter": wordfilter.New, "antispam": antispam.New},
	}
}

// Serve runs the built-in plugin name as a plugin process: it is what
// "qqd plugin <name>" does. It returns an error only for an unknown name.
func (b Builtins) Serve(name string) error {
	if f, ok := b.Storages[name]; ok {
		plugins.ServeStorage(f)
		return nil
	}
	if f, ok := b.Filters[name]; ok {
		plugins.ServeFilter(f)
		return nil
	}
	return fmt.Errorf("no built-in plugin %q (have %s)", name, b.names())
}

func (b Builtins) names() string {
	var ns []string
	for n := range b.Storages {
		ns = append(ns, n)
	}
	for n := range b.Filters {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return fmt.Sprint(ns)
}

// Options are what a Set needs besides the configuration.
type Options struct {
	Builtins Builtins
	// Self is the qqd executable that serves built-in plugins
	// (os.Executable() in qqd).
	Self   string
	Logger *slog.Logger
}

// Set is the running storage and filter chain.
type Set struct {
	opts Options

	storageSpec config.Storage
	storage     plugins.Storage
	storageSup  *plugins.Supervisor // nil in process

	filterSpecs []config.Filter
	filters     []daemon.Filter
	filterSups  []*plugins.Supervisor

	// Set by Reload when the parts are the previous set's.
	sharedStorage, sharedFilters bool
}

// Start starts the plugins cfg names. On error nothing is left running.
func Start(ctx context.Context, cfg *config.Config, opts Options) (*Set, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Set{opts: opts}
	if err := s.startStorage(ctx, cfg); err != nil {
		return nil, err
	}
	if err := s.startFilters(ctx, cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Storage is the storage in service.
func (s *Set) Storage() plugins.Storage { return s.storage }

// Filters is the filter chain in service, in order.
func (s *Set) Filters() []daemon.Filter { return s.filters }

// Statuses reports every supervised plugin process (none in process).
func (s *Set) Statuses() []plugins.Status {
	var st []plugins.Status
	if s.storageSup != nil {
		st = append(st, s.storageSup.Status())
	}
	for _, f := range s.filterSups {
		st = append(st, f.Status())
	}
	return st
}

// Close stops every plugin of the set.
func (s *Set) Close() {
	s.closeFilters()
	if s.storage != nil {
		s.storage.Close()
		s.storage, s.storageSup = nil, nil
	}
}

func (s *Set) closeFilters() {
	for _, sup := range s.filterSups {
		sup.Close()
	}
	s.filterSups, s.filters = nil, nil
}

// Reload starts a new Set for cfg that reuses this one's storage if its
// configuration did not change, and its filter chain if that did not
// change. The caller swaps the new set into the daemon, then calls
// Retire on the old one, which stops only what the new set does not use.
func (s *Set) Reload(ctx context.Context, cfg *config.Config) (*Set, error) {
	n := &Set{opts: s.opts}
	if sameStorage(s.storageSpec, cfg.Storage) && s.storage != nil {
		n.storageSpec, n.storage, n.storageSup, n.sharedStorage = s.storageSpec, s.storage, s.storageSup, true
	} else if err := n.startStorage(ctx, cfg); err != nil {
		return nil, err
	}
	if reflect.DeepEqual(s.filterSpecs, cfg.Filters) {
		n.filterSpecs, n.filters, n.filterSups, n.sharedFilters = s.filterSpecs, s.filters, s.filterSups, true
	} else if err := n.startFilters(ctx, cfg); err != nil {
		if !n.sharedStorage {
			n.storage.Close()
		}
		return nil, err
	}
	return n, nil
}

// Retire stops the parts of s that next (made by s.Reload) does not use.
func (s *Set) Retire(next *Set) {
	if !next.sharedStorage && s.storage != nil {
		s.storage.Close()
		s.storage, s.storageSup = nil, nil
	}
	if !next.sharedFilters {
		s.closeFilters()
	}
}

// Changed reports which parts next (made by s.Reload) replaced.
func (s *Set) Changed(next *Set) (storage, filters bool) {
	return !next.sharedStorage, !next.sharedFilters
}

func sameStorage(a, b config.Storage) bool {
	return reflect.DeepEqual(a.Plugin, b.Plugin) && reflect.DeepEqual(a.Command, b.Command) && reflect.DeepEqual(a.Config, b.Config)
}

func (s *Set) env(cfg *config.Config) (plugins.Env, error) {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return plugins.Env{}, fmt.Errorf("data dir: %w", err)
	}
	return plugins.Env{DataDir: dir}, nil
}

func (s *Set) startStorage(ctx context.Context, cfg *config.Config) error {
	env, err := s.env(cfg)
	if err != nil {
		return err
	}
	conf, err := json.Marshal(cfg.Storage.Config)
	if err != nil {
		return fmt.Errorf("storage %s: config: %w", cfg.Storage.Label(), err)
	}
	s.storageSpec = cfg.Storage
	if cfg.Plugins.InProcess && len(cfg.Storage.Command) == 0 {
		f, ok := s.opts.Builtins.Storages[cfg.Storage.Plugin]
		if !ok {
			return fmt.Errorf("storage: no built-in storage plugin %q", cfg.Storage.Plugin)
		}
		st, err := f(env, conf)
		if err != nil {
			return fmt.Errorf("storage %s: %w", cfg.Storage.Label(), err)
		}
		s.storage = st
		return nil
	}
	cmd, err := s.command(cfg.Storage.Plugin, cfg.Storage.Command, s.opts.Builtins.Storages != nil && s.opts.Builtins.Storages[cfg.Storage.Plugin] != nil)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	sup, err := plugins.Supervise(ctx, s.spec(cfg, cfg.Storage.Label(), plugins.KindStorage, cmd, conf, env), s.superviseOptions(cfg))
	if err != nil {
		return fmt.Errorf("storage %s: %w", cfg.Storage.Label(), err)
	}
	s.storageSup, s.storage = sup, sup.Storage()
	return nil
}

func (s *Set) startFilters(ctx context.Context, cfg *config.Config) error {
	env, err := s.env(cfg)
	if err != nil {
		return err
	}
	s.filterSpecs = cfg.Filters
	s.filters = []daemon.Filter{}
	for _, fc := range cfg.Filters {
		f, sup, err := s.startFilter(ctx, cfg, fc, env)
		if err != nil {
			s.closeFilters()
			return err
		}
		policy := daemon.FailClosed
		if fc.OnFailure == "allow" {
			policy = daemon.FailOpen
		}
		s.filters = append(s.filters, daemon.Filter{Name: fc.Label(), Filter: f, OnFailure: policy, Timeout: fc.Timeout})
		if sup != nil {
			s.filterSups = append(s.filterSups, sup)
		}
	}
	return nil
}

func (s *Set) startFilter(ctx context.Context, cfg *config.Config, fc config.Filter, env plugins.Env) (plugins.Filter, *plugins.Supervisor, error) {
	conf, err := json.Marshal(fc.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("filter %s: config: %w", fc.Label(), err)
	}
	builtin, isBuiltin := s.opts.Builtins.Filters[fc.Plugin]
	if cfg.Plugins.InProcess && len(fc.Command) == 0 {
		if !isBuiltin {
			return nil, nil, fmt.Errorf("filter %s: no built-in filter plugin %q", fc.Label(), fc.Plugin)
		}
		f, err := builtin(env, conf)
		if err != nil {
			return nil, nil, fmt.Errorf("filter %s: %w", fc.Label(), err)
		}
		return f, nil, nil
	}
	cmd, err := s.command(fc.Plugin, fc.Command, isBuiltin)
	if err != nil {
		return nil, nil, fmt.Errorf("filter %s: %w", fc.Label(), err)
	}
	sup, err := plugins.Supervise(ctx, s.spec(cfg, fc.Label(), plugins.KindFilter, cmd, conf, env), s.superviseOptions(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("filter %s: %w", fc.Label(), err)
	}
	return sup.Filter(), sup, nil
}

// command is the argv that runs a plugin: Command as configured, or qqd
// itself serving a built-in.
func (s *Set) command(plugin string, command []string, builtin bool) ([]string, error) {
	if len(command) > 0 {
		return command, nil
	}
	if !builtin {
		return nil, fmt.Errorf("no built-in plugin %q; name an executable with command", plugin)
	}
	if s.opts.Self == "" {
		return nil, errors.New("cannot run built-in plugins: qqd's own executable is unknown")
	}
	return []string{s.opts.Self, "plugin", plugin}, nil
}

func (s *Set) spec(cfg *config.Config, name string, kind plugins.Kind, cmd []string, conf []byte, env plugins.Env) plugins.Spec {
	return plugins.Spec{
		Name:         name,
		Kind:         kind,
		Command:      cmd,
		Config:       conf,
		Env:          env,
		Logger:       s.opts.Logger,
		StartTimeout: cfg.Plugins.StartTimeout,
	}
}

func (s *Set) superviseOptions(cfg *config.Config) plugins.SuperviseOptions {
	return plugins.SuperviseOptions{BackoffMin: cfg.Plugins.RestartBackoffMin, BackoffMax: cfg.Plugins.RestartBackoffMax}
}

// Self returns the path of the running executable, for Options.Self.
func Self() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	return p, nil
}

// SwapInto brings d to cfg's plugins: it starts what changed (see Reload),
// swaps it into d atomically, waits for calls on the old plugins to
// finish, stops them, and returns the set now in service. On error the
// old set stays in service and is returned.
func (s *Set) SwapInto(ctx context.Context, d *daemon.Server, cfg *config.Config) (*Set, error) {
	next, err := s.Reload(ctx, cfg)
	if err != nil {
		return s, err
	}
	storageChanged, filtersChanged := s.Changed(next)
	if !storageChanged && !filtersChanged {
		return next, nil
	}
	var st plugins.Storage
	if storageChanged {
		st = next.Storage()
	}
	if _, _, err := d.SwapPlugins(ctx, st, next.Filters()); err != nil {
		// The new set is in service; the old one could not drain in
		// time. Stop it anyway: its calls fail and are answered as such.
		s.opts.Logger.Warn("old plugins still busy after the swap; stopping them", "err", err)
	}
	s.Retire(next)
	s.opts.Logger.Info("plugins reloaded", "storage_changed", storageChanged, "filters_changed", filtersChanged)
	return next, nil
}
