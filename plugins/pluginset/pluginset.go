// Package pluginset starts the plugins that qq.yaml names — one storage
// plugin and the filter chain — and keeps them running: each built-in or
// third-party plugin runs as a supervised subprocess (qqd re-executes
// itself as "qqd plugin <name>" for built-ins), or, with
// plugins.in_process, inside qqd. On reload, Set.Reload starts only what
// changed: an unchanged storage, and every filter whose name, plugin,
// command and config are unchanged, keep their processes (and the state
// in them, such as antispam's flood counters).
//
// The package knows the daemon only through Swapper, declared here where
// it is consumed; which plugins are built in is the caller's (qqd's
// composition root) to say, in Options.Builtins.
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
	"slices"
	"sort"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/plugins"
)

// Builtins are the plugins compiled into qqd.
type Builtins struct {
	Storages map[string]plugins.StorageFactory
	Filters  map[string]plugins.FilterFactory
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

	filters []*filterProc   // in chain order
	specs   []config.Filter // filters[i] serves specs[i]

	// Set by Reload when the storage is the previous set's.
	sharedStorage bool
}

// filterProc is one started filter: its plugin (a supervised process, or
// in process) and the settings it was started with (never changed: a set
// that keeps it may serve it under another on_failure and timeout). A
// reload that finds a filter of the same name and spec keeps its
// filterProc.
type filterProc struct {
	spec      config.Filter
	inProcess bool
	filter    plugins.Filter
	sup       *plugins.Supervisor // nil in process
}

// link is the filter's place in the chain under spec's failure policy
// and timeout (which change without a restart).
func (f *filterProc) link(spec config.Filter) plugins.FilterLink {
	return plugins.FilterLink{Name: spec.Label(), Filter: f.filter, OnFailure: spec.OnFailure, Timeout: spec.Timeout}
}

func (f *filterProc) close() {
	if f.sup != nil {
		f.sup.Close()
	} else if c, ok := f.filter.(interface{ Close() error }); ok {
		c.Close()
	}
}

// sameProcess reports whether a filter started as a can serve as b: the
// same name, plugin, command and config, run the same way. on_failure and
// timeout are the host's and do not need a new process.
func sameProcess(a *filterProc, b config.Filter, inProcess bool) bool {
	return a.inProcess == inProcess && a.spec.Label() == b.Label() && a.spec.Plugin == b.Plugin &&
		slices.Equal(a.spec.Command, b.Command) && reflect.DeepEqual(a.spec.Config, b.Config)
}

// reuse returns, for each of cfg's filters, the running filter that can
// serve it unchanged (see sameProcess), or nil.
func reuse(running []*filterProc, cfg *config.Config) []*filterProc {
	out := make([]*filterProc, len(cfg.Filters))
	for i, fc := range cfg.Filters {
		if j := slices.IndexFunc(running, func(f *filterProc) bool { return sameProcess(f, fc, cfg.Plugins.InProcess) }); j >= 0 {
			out[i] = running[j]
		}
	}
	return out
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
	if err := s.startFilters(ctx, cfg, nil); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Storage is the storage in service.
func (s *Set) Storage() plugins.Storage { return s.storage }

// Filters is the filter chain in service, in order.
func (s *Set) Filters() []plugins.FilterLink {
	links := make([]plugins.FilterLink, len(s.filters))
	for i, f := range s.filters {
		links[i] = f.link(s.specs[i])
	}
	return links
}

// Statuses reports every supervised plugin process (none in process).
func (s *Set) Statuses() []plugins.Status {
	var st []plugins.Status
	if s.storageSup != nil {
		st = append(st, s.storageSup.Status())
	}
	for _, f := range s.filters {
		if f.sup != nil {
			st = append(st, f.sup.Status())
		}
	}
	return st
}

// Close stops every plugin of the set.
func (s *Set) Close() {
	for _, f := range s.filters {
		f.close()
	}
	s.filters, s.specs = nil, nil
	if s.storage != nil {
		s.storage.Close()
		s.storage, s.storageSup = nil, nil
	}
}

// Reload starts a new Set for cfg that reuses this one's storage if its
// configuration did not change, and each filter whose name, plugin,
// command and config did not change (see sameProcess). The caller swaps
// the new set into the daemon, then calls Retire on the old one, which
// stops only what the new set does not use. On error nothing new is left
// running and s is untouched.
func (s *Set) Reload(ctx context.Context, cfg *config.Config) (*Set, error) {
	n := &Set{opts: s.opts}
	if sameStorage(s.storageSpec, cfg.Storage) && s.storage != nil {
		n.storageSpec, n.storage, n.storageSup, n.sharedStorage = s.storageSpec, s.storage, s.storageSup, true
	} else if err := n.startStorage(ctx, cfg); err != nil {
		return nil, err
	}
	if err := n.startFilters(ctx, cfg, s.filters); err != nil {
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
	for _, f := range s.filters {
		if !slices.Contains(next.filters, f) {
			f.close()
		}
	}
	s.filters, s.specs = nil, nil
}

// Change says what a reload (s.Reload's next set) changed.
type Change struct {
	// Storage: the storage plugin was replaced.
	Storage bool
	// FiltersStarted, FiltersKept and FiltersStopped name the filters
	// that got a new process, kept theirs, and were stopped.
	FiltersStarted, FiltersKept, FiltersStopped []string
	// Chain: the filter chain the daemon runs differs (a filter added,
	// removed, restarted or reordered, or its on_failure or timeout
	// changed).
	Chain bool
}

// None reports that the reload changed nothing.
func (c Change) None() bool { return !c.Storage && !c.Chain }

// Changed reports what next (made by s.Reload) changed.
func (s *Set) Changed(next *Set) Change {
	c := Change{Storage: !next.sharedStorage}
	for _, f := range next.filters {
		if slices.Contains(s.filters, f) {
			c.FiltersKept = append(c.FiltersKept, f.spec.Label())
		} else {
			c.FiltersStarted = append(c.FiltersStarted, f.spec.Label())
		}
	}
	for _, f := range s.filters {
		if !slices.Contains(next.filters, f) {
			c.FiltersStopped = append(c.FiltersStopped, f.spec.Label())
		}
	}
	c.Chain = !slices.EqualFunc(s.Filters(), next.Filters(), func(a, b plugins.FilterLink) bool { return a == b })
	return c
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

// startFilters starts cfg's filter chain, taking over from running each
// filter that can serve unchanged (see sameProcess). On error it stops
// what it started (not what it took over).
func (s *Set) startFilters(ctx context.Context, cfg *config.Config, running []*filterProc) error {
	env, err := s.env(cfg)
	if err != nil {
		return err
	}
	s.filters, s.specs = []*filterProc{}, cfg.Filters
	reused := reuse(running, cfg)
	for i, fc := range cfg.Filters {
		if kept := reused[i]; kept != nil {
			s.filters = append(s.filters, kept)
			continue
		}
		f, err := s.startFilter(ctx, cfg, fc, env)
		if err != nil {
			for _, started := range s.filters {
				if !slices.Contains(running, started) {
					started.close()
				}
			}
			s.filters, s.specs = nil, nil
			return err
		}
		s.filters = append(s.filters, f)
	}
	return nil
}

func (s *Set) startFilter(ctx context.Context, cfg *config.Config, fc config.Filter, env plugins.Env) (*filterProc, error) {
	conf, err := json.Marshal(fc.Config)
	if err != nil {
		return nil, fmt.Errorf("filter %s: config: %w", fc.Label(), err)
	}
	builtin, isBuiltin := s.opts.Builtins.Filters[fc.Plugin]
	if cfg.Plugins.InProcess && len(fc.Command) == 0 {
		if !isBuiltin {
			return nil, fmt.Errorf("filter %s: no built-in filter plugin %q", fc.Label(), fc.Plugin)
		}
		f, err := builtin(env, conf)
		if err != nil {
			return nil, fmt.Errorf("filter %s: %w", fc.Label(), err)
		}
		return &filterProc{spec: fc, inProcess: true, filter: f}, nil
	}
	cmd, err := s.command(fc.Plugin, fc.Command, isBuiltin)
	if err != nil {
		return nil, fmt.Errorf("filter %s: %w", fc.Label(), err)
	}
	sup, err := plugins.Supervise(ctx, s.spec(cfg, fc.Label(), plugins.KindFilter, cmd, conf, env), s.superviseOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("filter %s: %w", fc.Label(), err)
	}
	return &filterProc{spec: fc, filter: sup.Filter(), sup: sup}, nil
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

// Swapper is the daemon as SwapInto needs it: something that puts a
// storage and a filter chain in service and waits until calls on the
// previous ones have finished (daemon.Server.SwapPlugins). A nil storage
// keeps the current one.
type Swapper interface {
	SwapPlugins(ctx context.Context, storage plugins.Storage, filters []plugins.FilterLink) (oldStorage plugins.Storage, oldFilters []plugins.FilterLink, err error)
}

// SwapInto brings d to cfg's plugins: it starts what changed (see Reload),
// swaps it into d atomically, waits for calls on the old plugins to
// finish, stops what is no longer used, and returns the set now in
// service and what changed. On error the old set stays in service and is
// returned.
func (s *Set) SwapInto(ctx context.Context, d Swapper, cfg *config.Config) (*Set, Change, error) {
	next, err := s.Reload(ctx, cfg)
	if err != nil {
		return s, Change{}, err
	}
	change := s.Changed(next)
	if change.None() {
		s.Retire(next) // stops nothing: next uses all of s
		return next, change, nil
	}
	var st plugins.Storage
	if change.Storage {
		st = next.Storage()
	}
	if _, _, err := d.SwapPlugins(ctx, st, next.Filters()); err != nil {
		// The new set is in service; the old one could not drain in
		// time. Stop it anyway: its calls fail and are answered as such.
		s.opts.Logger.Warn("old plugins still busy after the swap; stopping them", "err", err)
	}
	s.Retire(next)
	return next, change, nil
}
