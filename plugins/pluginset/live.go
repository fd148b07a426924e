package pluginset

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/plugins"
)

// Live is the plugin set in service with the configuration it came from.
// It is safe for concurrent use: metric scrapes and the admin socket read
// it while a reload (SIGHUP or the admin socket) replaces it; reloads run
// one at a time.
type Live struct {
	d    Swapper
	load func() (*config.Config, error)
	log  *slog.Logger

	mu  sync.Mutex
	set *Set
	cfg *config.Config
}

// NewLive returns a Live serving set, which d uses, started from cfg. load
// reads the configuration anew for Reload.
func NewLive(d Swapper, set *Set, cfg *config.Config, load func() (*config.Config, error), log *slog.Logger) *Live {
	return &Live{d: d, set: set, cfg: cfg, load: load, log: log}
}

// Statuses reports the supervised plugin processes.
func (l *Live) Statuses() []plugins.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.set.Statuses()
}

// StorageUp reports an error when the storage plugin process is down.
func (l *Live) StorageUp() error {
	for _, st := range l.Statuses() {
		if st.Kind == plugins.KindStorage && !st.Up {
			return fmt.Errorf("storage plugin %s is down", st.Name)
		}
	}
	return nil
}

// Reload re-reads the configuration and swaps in the plugins that
// changed. An invalid configuration is an error (with every problem) and
// the running one stays; so does a plugin that does not start. Settings
// other than the plugins' apply only after a restart: they are returned
// (and logged) as needsRestart.
//
// Every reload logs exactly one line saying how it ended (docs/operations.md
// lists them): "reload refused: invalid configuration", "reload refused: a
// plugin did not start", or "reload done" with what changed (possibly
// nothing).
func (l *Live) Reload(ctx context.Context) (needsRestart []string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log.Info("reloading configuration")
	cfg, err := l.load()
	if err != nil {
		l.log.Error("reload refused: invalid configuration; keeping the running one", "err", err)
		return nil, err
	}
	needsRestart = config.RestartKeys(l.cfg, cfg)
	next, change, err := l.set.SwapInto(ctx, l.d, cfg)
	l.set = next
	if err != nil {
		l.log.Error("reload refused: a plugin did not start; keeping the running plugins", "err", err)
		return nil, err
	}
	l.cfg = cfg
	attrs := []any{"storage_restarted", change.Storage,
		"filters_started", nonNil(change.FiltersStarted), "filters_kept", nonNil(change.FiltersKept),
		"filters_stopped", nonNil(change.FiltersStopped), "needs_restart", nonNil(needsRestart)}
	if len(needsRestart) > 0 {
		l.log.Warn("reload done; some changed settings apply only after a restart", attrs...)
	} else {
		l.log.Info("reload done", attrs...)
	}
	return needsRestart, nil
}

// nonNil logs an empty list as [] rather than as nothing.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CheckReload says what Reload would do now, without changing anything
// in service: it loads the configuration (an invalid one is an error, as
// for Reload), plans the reload (Set.Plan), and starts and configures the
// storage and each filter the reload would start, against a scratch data
// directory (see Check), then stops them. Its error is the one Reload
// would refuse with.
func (l *Live) CheckReload(ctx context.Context) (change Change, needsRestart []string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg, err := l.load()
	if err != nil {
		return Change{}, nil, err
	}
	change = l.set.Plan(cfg)
	started := make(map[string]bool)
	for _, name := range change.FiltersStarted {
		started[name] = true
	}
	if err := check(ctx, cfg, l.set.opts, func(fc config.Filter) bool { return started[fc.Label()] }, change.Storage); err != nil {
		return change, nil, err
	}
	l.log.Info("reload checked", "storage_restarted", change.Storage, "filters_started", nonNil(change.FiltersStarted),
		"filters_kept", nonNil(change.FiltersKept), "filters_stopped", nonNil(change.FiltersStopped))
	return change, config.RestartKeys(l.cfg, cfg), nil
}

// Close stops the plugins.
func (l *Live) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set.Close()
}
