package pluginset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/qqchat/qq/config"
)

// Check starts every plugin cfg names, as Start would (the storage and
// each filter, each on its own so that every problem is reported), lets
// each take its configuration, and stops them again. It returns every
// problem found, joined. Nothing is served and no listener is opened.
//
// The plugins run against a scratch data directory, created and removed
// by Check: a storage plugin is started and configured, but the real
// data_dir is not opened (a running qqd holds it, and a check must not
// migrate or create it). What Check cannot see is therefore a problem
// that shows only with the real data: a database that does not open or
// a full disk.
func Check(ctx context.Context, cfg *config.Config, opts Options) error {
	return check(ctx, cfg, opts, func(config.Filter) bool { return true }, true)
}

func check(ctx context.Context, cfg *config.Config, opts Options, filter func(config.Filter) bool, storage bool) error {
	scratch, err := os.MkdirTemp("", "qqd-check-")
	if err != nil {
		return fmt.Errorf("check: scratch data dir: %w", err)
	}
	defer os.RemoveAll(scratch)
	c := *cfg
	c.DataDir = scratch
	var errs []error
	s := &Set{opts: opts}
	if storage {
		if err := s.startStorage(ctx, &c); err != nil {
			errs = append(errs, err)
		} else {
			s.storage.Close()
		}
	}
	env, err := s.env(&c)
	if err != nil {
		return err
	}
	for _, fc := range c.Filters {
		if !filter(fc) {
			continue
		}
		f, err := s.startFilter(ctx, &c, fc, env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.close()
	}
	return errors.Join(errs...)
}

// Plan says what reloading into cfg would do, without doing it: the
// storage and filters that SwapInto would start, keep and stop.
func (s *Set) Plan(cfg *config.Config) Change {
	c := Change{Storage: !(sameStorage(s.storageSpec, cfg.Storage) && s.storage != nil)}
	reused := reuse(s.filters, cfg)
	for i, fc := range cfg.Filters {
		if reused[i] != nil {
			c.FiltersKept = append(c.FiltersKept, fc.Label())
		} else {
			c.FiltersStarted = append(c.FiltersStarted, fc.Label())
		}
	}
	for _, f := range s.filters {
		if !slices.Contains(reused, f) {
			c.FiltersStopped = append(c.FiltersStopped, f.spec.Label())
		}
	}
	c.Chain = c.Storage || len(c.FiltersStarted) > 0 || len(c.FiltersStopped) > 0 ||
		!slices.EqualFunc(s.specs, cfg.Filters, func(a, b config.Filter) bool {
			return a.Label() == b.Label() && a.OnFailure == b.OnFailure && a.Timeout == b.Timeout
		})
	return c
}
