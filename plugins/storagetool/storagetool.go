// Package storagetool is what `qqd storage` does: export a store to a
// dump, import a dump into a new store, migrate one store into another
// (SQLite, Pebble, PostgreSQL, either way) without a file in between, and
// inspect a store or a dump. It works on the built-in storages only,
// opened in this process (sqlitestore, pebblestore, pgstore), and offline:
// the store must not be open in a running qqd (Pebble refuses a second
// opener; SQLite and PostgreSQL would allow one, so run the tools on a
// stopped daemon or on a copy).
//
// Every import goes into a store the tool creates (the target must not
// exist) and removes again on any failure; it is checked by
// storagedump.Load or storagedump.Copy (order, counts, the trailer), and
// a migration is verified at the end by reading the new store back and
// comparing its counts with the source's. A PostgreSQL store is a
// database, which the tool does not create: the target database must
// exist and be empty (it gets the schema), and "removing" it on failure
// empties it again.
package storagetool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/postgres/pgstore"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagedump"
)

// ErrNotBuiltin: the store is not one of the built-in storages.
var ErrNotBuiltin = errors.New("export/import supports the built-in storages sqlite, pebble and postgres")

// Store names a store: a built-in storage plugin and its configuration,
// as qq.yaml gives them.
type Store struct {
	// Plugin is "sqlite", "pebble" or "postgres".
	Plugin string
	// Config is the plugin's configuration (JSON), as under storage.config
	// in qq.yaml.
	Config []byte
	// DataDir is the directory relative paths in Config are taken from.
	DataDir string
}

// At is the store of plugin at path (a SQLite file, a Pebble directory),
// or, for postgres, the database of the DSN path.
func At(plugin, path string) (Store, error) {
	if path == "" {
		return Store{}, errors.New("no path")
	}
	if plugin == "postgres" {
		conf, err := json.Marshal(map[string]string{"dsn": path})
		if err != nil {
			return Store{}, err
		}
		wd, err := os.Getwd()
		if err != nil {
			return Store{}, err
		}
		s := Store{Plugin: plugin, Config: conf, DataDir: wd}
		if _, err := s.options(); err != nil {
			return Store{}, err
		}
		return s, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Store{}, err
	}
	conf, err := json.Marshal(map[string]string{"path": abs})
	if err != nil {
		return Store{}, err
	}
	s := Store{Plugin: plugin, Config: conf, DataDir: filepath.Dir(abs)}
	if _, err := s.options(); err != nil {
		return Store{}, err
	}
	return s, nil
}

// FromConfig is the store a qqd with cfg uses.
func FromConfig(cfg *config.Config) (Store, error) {
	if len(cfg.Storage.Command) > 0 {
		return Store{}, fmt.Errorf("storage %q is a plugin command: %w", cfg.Storage.Label(), ErrNotBuiltin)
	}
	conf, err := json.Marshal(cfg.Storage.Config)
	if err != nil {
		return Store{}, fmt.Errorf("storage config: %w", err)
	}
	if string(conf) == "null" {
		conf = []byte("{}")
	}
	s := Store{Plugin: cfg.Storage.Plugin, Config: conf, DataDir: cfg.DataDir}
	if _, err := s.options(); err != nil {
		return Store{}, err
	}
	return s, nil
}

// options are the Options of s's plugin: sqlitestore.Options,
// pebblestore.Options or pgstore.Options. The de-duplication window is 0 (keep every cid):
// the tools never prune, so that an export changes nothing in its source.
func (s Store) options() (any, error) {
	env := plugins.Env{DataDir: s.DataDir}
	switch s.Plugin {
	case "sqlite":
		o, err := sqlitestore.ParseConfig(env, s.Config)
		if err != nil {
			return nil, err
		}
		o.DedupWindow = 0
		return o, nil
	case "pebble":
		o, err := pebblestore.ParseConfig(env, s.Config)
		if err != nil {
			return nil, err
		}
		o.DedupWindow = 0
		return o, nil
	case "postgres":
		o, err := pgstore.ParseConfig(env, s.Config)
		if err != nil {
			return nil, err
		}
		o.DedupWindow = 0
		return o, nil
	}
	return nil, fmt.Errorf("storage %q: %w", s.Plugin, ErrNotBuiltin)
}

// Path is the database's path: the SQLite file or the Pebble directory;
// for postgres, where the DSN connects (user@host:port/database, no
// password).
func (s Store) Path() string {
	switch o, _ := s.options(); o := o.(type) {
	case sqlitestore.Options:
		return o.Path
	case pebblestore.Options:
		return o.Path
	case pgstore.Options:
		return o.Location()
	}
	return ""
}

// exists reports whether there is a store at s: a file or directory at
// its path, or, for postgres, a database that holds data (one that does
// not exist at all is an error).
func (s Store) exists(ctx context.Context) (bool, error) {
	opts, err := s.options()
	if err != nil {
		return false, err
	}
	if o, ok := opts.(pgstore.Options); ok {
		st, err := pgstore.Open(ctx, o)
		if err != nil {
			return false, err
		}
		defer st.Close()
		empty, err := st.Empty(ctx)
		return !empty, err
	}
	switch _, err := os.Lstat(s.Path()); {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// String describes s for messages: "sqlite /var/lib/qqd/qq.db".
func (s Store) String() string { return s.Plugin + " " + s.Path() }

// open opens s: an existing store, or (create) a new one, which must not
// exist yet.
func (s Store) open(ctx context.Context, create bool) (dumpStore, error) {
	opts, err := s.options()
	if err != nil {
		return nil, err
	}
	if o, ok := opts.(pgstore.Options); ok {
		// exists (into) checked that a new one is empty.
		return pgstore.Open(ctx, o)
	}
	path := s.Path()
	switch _, err := os.Lstat(path); {
	case create && err == nil:
		return nil, fmt.Errorf("%s exists: the target must be a new store", s)
	case create && !errors.Is(err, os.ErrNotExist):
		return nil, err
	case !create && errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist", s)
	case !create && err != nil:
		return nil, err
	}
	switch o := opts.(type) {
	case sqlitestore.Options:
		st, err := sqlitestore.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		return st, nil
	case pebblestore.Options:
		st, err := pebblestore.Open(ctx, o)
		if err != nil {
			if strings.Contains(err.Error(), "lock") {
				return nil, fmt.Errorf("%s is locked: is a qqd running on it? stop it first, or work on a copy: %w", s, err)
			}
			return nil, err
		}
		return st, nil
	}
	panic("unreachable")
}

// remove deletes the store s the tool created: the SQLite file with its
// -wal and -shm files, or the Pebble directory; a PostgreSQL database,
// which was empty, is emptied again.
func (s Store) remove() error {
	if opts, _ := s.options(); opts != nil {
		if o, ok := opts.(pgstore.Options); ok {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st, err := pgstore.Open(ctx, o)
			if err != nil {
				return err
			}
			defer st.Close()
			return st.Truncate(ctx)
		}
	}
	path := s.Path()
	if s.Plugin == "pebble" {
		return os.RemoveAll(path)
	}
	var errs []error
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dumpStore is what the built-in stores are: a Storage that exports and
// imports dumps.
type dumpStore interface {
	plugins.Storage
	storagedump.Exporter
	storagedump.Importer
}

// Export writes everything src keeps to w as a dump, checked on the way
// (order, counts) as an import would check it, and returns its Summary.
func Export(ctx context.Context, src Store, w io.Writer) (_ *storagedump.Summary, err error) {
	st, err := src.open(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer closeStore(st, &err)
	exp := st
	enc := storagedump.NewEncoder(w)
	var sum storagedump.Summary
	if err := storagedump.Copy(ctx, exp, &encoding{enc: enc, sum: &sum}); err != nil {
		return nil, fmt.Errorf("export %s: %w", src, err)
	}
	if err := enc.Flush(); err != nil {
		return nil, fmt.Errorf("export %s: %w", src, err)
	}
	return &sum, nil
}

// encoding is an Importer that writes the records it is given.
type encoding struct {
	enc *storagedump.Encoder
	sum *storagedump.Summary
}

func (e *encoding) Import(ctx context.Context, next func() (*storagedump.Record, error)) error {
	for {
		r, err := next()
		if err != nil {
			return err
		}
		if err := e.enc.Encode(r); err != nil {
			return err
		}
		e.sum.Add(r)
		if r.Trailer != nil {
			return nil
		}
	}
}

// counting passes an import through to imp, adding each record to sum.
type counting struct {
	imp storagedump.Importer
	sum *storagedump.Summary
}

func (c *counting) Import(ctx context.Context, next func() (*storagedump.Record, error)) error {
	return c.imp.Import(ctx, func() (*storagedump.Record, error) {
		r, err := next()
		if err == nil {
			c.sum.Add(r)
		}
		return r, err
	})
}

// Import creates the store dst (which must not exist) and loads the dump r
// reads into it; on any failure it removes dst again. It returns the
// dump's Summary, after checking the new store's counts against it.
func Import(ctx context.Context, r io.Reader, dst Store) (*storagedump.Summary, error) {
	var sum storagedump.Summary
	load := func(imp storagedump.Importer) error {
		return storagedump.Load(ctx, storagedump.NewDecoder(r), &counting{imp: imp, sum: &sum})
	}
	if err := into(ctx, dst, load, &sum); err != nil {
		return nil, fmt.Errorf("import into %s: %w", dst, err)
	}
	return &sum, nil
}

// Migrate copies src into dst, a new store (it must not exist), with no
// file in between, and verifies dst by reading it back: its counts must
// be the source's. On any failure it removes dst. It returns the source's
// Summary.
func Migrate(ctx context.Context, src, dst Store) (_ *storagedump.Summary, err error) {
	if src.Plugin == dst.Plugin && src.Path() == dst.Path() {
		return nil, fmt.Errorf("migrate: %s is both source and target", src)
	}
	st, err := src.open(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("migrate: source: %w", err)
	}
	defer closeStore(st, &err)
	exp := st
	var sum storagedump.Summary
	copyInto := func(imp storagedump.Importer) error {
		return storagedump.Copy(ctx, exp, &counting{imp: imp, sum: &sum})
	}
	if err := into(ctx, dst, copyInto, &sum); err != nil {
		return nil, fmt.Errorf("migrate %s to %s: %w", src, dst, err)
	}
	return &sum, nil
}

// into creates dst, fills it with fill, closes it, then opens it again
// and compares what it holds with want (which fill filled). On any
// failure it removes dst.
func into(ctx context.Context, dst Store, fill func(storagedump.Importer) error, want *storagedump.Summary) (err error) {
	// The directory the store goes in, if the store creates it, goes
	// again with it.
	parent := filepath.Dir(dst.Path())
	_, perr := os.Stat(parent)
	newParent := errors.Is(perr, os.ErrNotExist) && dst.Plugin != "postgres"
	switch exists, err := dst.exists(ctx); {
	case err != nil:
		return err
	case exists && dst.Plugin == "postgres":
		return fmt.Errorf("%s holds data: the target must be an empty database", dst)
	case exists:
		return fmt.Errorf("%s exists: the target must be a new store", dst)
	}
	// From here on, whatever is at dst.Path() is the tool's.
	st, err := dst.open(ctx, true)
	if err != nil {
		_ = dst.remove()
		if newParent {
			_ = os.Remove(parent) // only if empty
		}
		return err
	}
	defer func() {
		if errors.Is(err, pgstore.ErrNotEmpty) {
			// Someone wrote to the database since exists: not the
			// tool's to empty.
			if st != nil {
				_ = st.Close()
			}
			return
		}
		if err != nil {
			if st != nil {
				_ = st.Close()
			}
			rerr := dst.remove()
			if newParent {
				_ = os.Remove(parent)
			}
			if rerr != nil {
				err = fmt.Errorf("removing the new store failed too (%v): %w", rerr, err)
			} else {
				err = fmt.Errorf("the new store was removed: %w", err)
			}
		}
	}()
	imp := st
	if err := fill(imp); err != nil {
		return err
	}
	err = st.Close()
	st = nil
	if err != nil {
		return err
	}
	return verify(ctx, dst, want)
}

// verify opens dst afresh and checks that it holds what want counts:
// CountUsers and CountPending, and every count of its own export.
func verify(ctx context.Context, dst Store, want *storagedump.Summary) (err error) {
	st, err := dst.open(ctx, false)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer closeStore(st, &err)
	users, err := st.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if live := want.Counts.Users - want.DeletedUsers; users != live {
		return fmt.Errorf("verify: the new store counts %d users, the source %d", users, live)
	}
	pending, err := st.CountPending(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if pending != want.Counts.Pending {
		return fmt.Errorf("verify: the new store counts %d pending messages, the source %d", pending, want.Counts.Pending)
	}
	exp := st
	got, err := storagedump.Inspect(ctx, exp)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	g, w := *got, *want
	g.Source, g.Created, w.Source, w.Created = "", 0, "", 0
	if g != w {
		return fmt.Errorf("verify: the new store holds\n%+v\nbut the source\n%+v", g, w)
	}
	return nil
}

// Inspect reads src whole, checked as an export is, and returns its
// Summary.
func Inspect(ctx context.Context, src Store) (_ *storagedump.Summary, err error) {
	st, err := src.open(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	defer closeStore(st, &err)
	exp := st
	sum, err := storagedump.Inspect(ctx, exp)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", src, err)
	}
	return sum, nil
}

// InspectDump reads the dump r reads, checked as an import checks it, and
// returns its Summary.
func InspectDump(ctx context.Context, r io.Reader) (*storagedump.Summary, error) {
	sum, err := storagedump.InspectDump(ctx, storagedump.NewDecoder(r))
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	return sum, nil
}

// closeStore closes st, keeping the first error in *err.
func closeStore(st plugins.Storage, err *error) {
	if cerr := st.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close: %w", cerr)
	}
}
