package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/plugins/storagedump"
	"github.com/qqchat/qq/plugins/storagetool"
)

// storageUsage is the help of "qqd storage".
const storageUsage = `usage:
  qqd storage export  [-config qq.yaml | -plugin sqlite|pebble -path P | -plugin postgres -dsn URL] [-o file]
  qqd storage import  (-config qq.yaml | -plugin sqlite|pebble -path P | -plugin postgres -dsn URL) [-i file]
  qqd storage migrate -from-plugin sqlite -from P -to-plugin pebble -to P2
  qqd storage inspect [-config qq.yaml | -plugin sqlite|pebble -path P | -plugin postgres -dsn URL | -i dump] [-json]

Offline tools for the built-in storages: run them on a stopped qqd or on a
copy of its data. export writes a dump (JSON lines) to stdout or -o;
import loads one (stdin or -i) into a new store, which must not exist and
is removed again if anything fails; migrate streams one store into a new
one and verifies it; inspect prints what a store or a dump holds. Without
-config or -plugin, the store is the one of qqd's defaults. A postgres
store is a database named by its DSN (postgres://user@host:5432/db?...),
which migrate takes as -from or -to: a new one is an existing, empty
database (CREATE DATABASE it first), emptied again if anything fails.
See docs/operations.md, "Export, inspect and migrate storage".`

// runStorage is "qqd storage ...": flag parsing only; the work is
// package storagetool's.
func runStorage(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, storageUsage)
		return errors.New("storage: a command is needed: export, import, migrate or inspect")
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("qqd storage "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, storageUsage)
		fmt.Fprintln(stderr, "\nflags of", cmd+":")
		fs.PrintDefaults()
	}
	var store storeFlags
	switch cmd {
	case "export", "import", "inspect":
		store.add(fs)
	case "migrate":
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stderr, storageUsage)
		return flag.ErrHelp
	default:
		fmt.Fprintln(stderr, storageUsage)
		return fmt.Errorf("storage: unknown command %q", cmd)
	}
	var (
		out, in                        string
		asJSON                         bool
		fromPlugin, from, toPlugin, to string
	)
	switch cmd {
	case "export":
		fs.StringVar(&out, "o", "", "write the dump to `file` (created; default stdout)")
	case "import":
		fs.StringVar(&in, "i", "", "read the dump from `file` (default stdin)")
	case "inspect":
		fs.StringVar(&in, "i", "", "inspect the dump `file` instead of a store")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "migrate":
		fs.StringVar(&fromPlugin, "from-plugin", "sqlite", "storage `plugin` of the source: sqlite, pebble or postgres")
		fs.StringVar(&from, "from", "", "`path` of the source store (the DSN for postgres)")
		fs.StringVar(&toPlugin, "to-plugin", "pebble", "storage `plugin` of the new store: sqlite, pebble or postgres")
		fs.StringVar(&to, "to", "", "`path` of the new store, which must not exist (the DSN of an empty database for postgres)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("storage %s: unexpected argument %q", cmd, fs.Arg(0))
	}
	start := time.Now()
	var (
		sum *storagedump.Summary
		err error
	)
	switch cmd {
	case "export":
		src, err := store.store(cmd)
		if err != nil {
			return err
		}
		w := stdout
		if out != "" {
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("storage export: %w", err)
			}
			sum, err = storagetool.Export(ctx, src, f)
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("storage export: %w", cerr)
			}
			if err != nil {
				_ = os.Remove(out)
				return err
			}
		} else if sum, err = storagetool.Export(ctx, src, w); err != nil {
			return err
		}
		report(stderr, "exported", sum, time.Since(start))
		return nil
	case "import":
		dst, err := store.store(cmd)
		if err != nil {
			return err
		}
		r := stdin
		if in != "" {
			f, err := os.Open(in)
			if err != nil {
				return fmt.Errorf("storage import: %w", err)
			}
			defer f.Close()
			r = f
		}
		if sum, err = storagetool.Import(ctx, r, dst); err != nil {
			return err
		}
		report(stdout, "imported into "+dst.String()+":", sum, time.Since(start))
		return nil
	case "migrate":
		if from == "" || to == "" {
			return errors.New("storage migrate: -from and -to are needed")
		}
		src, err := storagetool.At(fromPlugin, from)
		if err != nil {
			return fmt.Errorf("storage migrate: -from: %w", err)
		}
		dst, err := storagetool.At(toPlugin, to)
		if err != nil {
			return fmt.Errorf("storage migrate: -to: %w", err)
		}
		if sum, err = storagetool.Migrate(ctx, src, dst); err != nil {
			return err
		}
		report(stdout, "migrated "+src.String()+" to "+dst.String()+" and verified it:", sum, time.Since(start))
		return nil
	}
	// inspect
	if in != "" {
		if store.set() {
			return errors.New("storage inspect: -i or a store, not both")
		}
		f, oerr := os.Open(in)
		if oerr != nil {
			return fmt.Errorf("storage inspect: %w", oerr)
		}
		defer f.Close()
		sum, err = storagetool.InspectDump(ctx, f)
	} else {
		src, serr := store.store(cmd)
		if serr != nil {
			return serr
		}
		sum, err = storagetool.Inspect(ctx, src)
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	return sum.WriteText(stdout)
}

// storeFlags name a store: -config, or -plugin and -path (-dsn for
// postgres).
type storeFlags struct {
	config, plugin, path, dsn string
}

func (s *storeFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&s.config, "config", "", "the store of the qqd configured by YAML `file`")
	fs.StringVar(&s.plugin, "plugin", "", "storage `plugin`: sqlite or pebble (with -path), postgres (with -dsn)")
	fs.StringVar(&s.path, "path", "", "`path` of the store: the SQLite file or the Pebble directory")
	fs.StringVar(&s.dsn, "dsn", "", "PostgreSQL connection `URL` of a postgres store: postgres://user@host:5432/db?sslmode=...")
}

func (s *storeFlags) set() bool {
	return s.config != "" || s.plugin != "" || s.path != "" || s.dsn != ""
}

// store is the store the flags name: the configured one (qqd's defaults
// without -config), or -plugin at -path (-dsn).
func (s *storeFlags) store(cmd string) (storagetool.Store, error) {
	if s.plugin != "" || s.path != "" || s.dsn != "" {
		if s.config != "" {
			return storagetool.Store{}, fmt.Errorf("storage %s: -config or -plugin and -path (-dsn), not both", cmd)
		}
		where, what := s.path, "-path"
		if s.plugin == "postgres" {
			where, what = s.dsn, "-dsn"
			if s.path != "" {
				return storagetool.Store{}, fmt.Errorf("storage %s: a postgres store is named by -dsn, not -path", cmd)
			}
		} else if s.dsn != "" {
			return storagetool.Store{}, fmt.Errorf("storage %s: -dsn goes with -plugin postgres", cmd)
		}
		if s.plugin == "" || where == "" {
			return storagetool.Store{}, fmt.Errorf("storage %s: -plugin and %s go together", cmd, what)
		}
		st, err := storagetool.At(s.plugin, where)
		if err != nil {
			return storagetool.Store{}, fmt.Errorf("storage %s: %w", cmd, err)
		}
		return st, nil
	}
	cfg, err := config.Load(config.Options{File: s.config, Env: os.Environ()})
	if err != nil {
		return storagetool.Store{}, err
	}
	st, err := storagetool.FromConfig(cfg)
	if err != nil {
		return storagetool.Store{}, fmt.Errorf("storage %s: %w", cmd, err)
	}
	return st, nil
}

// report prints what an export, import or migration moved, and how fast.
func report(w io.Writer, what string, sum *storagedump.Summary, took time.Duration) {
	c := sum.Counts
	rate := ""
	if s := took.Seconds(); s > 0 && c.Messages > 0 {
		rate = fmt.Sprintf(", %.0f messages/s", float64(c.Messages)/s)
	}
	fmt.Fprintf(w, "%s %d users (%d deleted), %d messages (%d pending), %d friends, %d friend requests, %d blocks, "+
		"%d groups, %d members, %d entries, %d join requests, %d cursors, %d tokens in %v%s\n",
		what, c.Users, sum.DeletedUsers, c.Messages, c.Pending, c.Friends, c.FriendRequests, c.Blocks,
		c.Groups, c.GroupMembers, c.GroupEntries, c.JoinRequests, c.GroupCursors, c.Tokens, took.Round(time.Millisecond), rate)
}
