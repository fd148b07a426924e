package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/qqchat/qq/daemon/password"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// fillSynchronous is the SQLite synchronous level of a fill: a bench
// database need not survive a power loss while it is being filled, and
// "off" (no fsync per batch) is what makes 10 million rows take minutes.
// A crash of qqbench itself loses nothing committed (WAL mode).
const fillSynchronous = "off"

// FillResult is what one fill run wrote; it is printed as one JSON line.
type FillResult struct {
	DB           string  `json:"db"`
	Users        int     `json:"users"`
	UsersCreated int     `json:"users_created"`
	Messages     int64   `json:"messages"`      // written by this run
	LeftPending  int64   `json:"left_pending"`  // of them, not marked delivered
	PendingTotal int64   `json:"pending_total"` // in the whole database after the run
	Batches      int     `json:"batches"`
	BodyBytes    int     `json:"body_bytes"`
	Seconds      float64 `json:"seconds"`
	RowsPerSec   float64 `json:"rows_per_s"`
	FileBytes    int64   `json:"file_bytes"` // the database file after the run
	Interrupted  bool    `json:"interrupted,omitempty"`
}

// runFill runs the fill command and prints its result.
func runFill(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	cfg.Progress = stderr
	res, err := Fill(ctx, cfg)
	if err != nil {
		return err
	}
	if !cfg.JSON {
		res.WriteSummary(stdout)
	}
	return res.WriteJSON(stdout)
}

// Fill appends cfg.Messages messages between random pairs of the users
// u0..u(cfg.Users-1) to the SQLite database cfg.DB, through the storage
// plugin's own Write, so that the schema, indexes and ids are those qqd
// writes. Missing users are created with an Argon2id hash of cfg.Password
// (OWASP parameters, as qqd uses). All but cfg.PendingFraction of the
// messages are acked, so the pending queues stay small, as with clients
// that are mostly online. Each batch is one transaction: an interrupted
// fill keeps what it committed, and a second fill adds to the first. The
// database must not be open in qqd (or anything else) meanwhile.
func Fill(ctx context.Context, cfg Config) (*FillResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return fill(ctx, cfg, password.OWASP)
}

func fill(ctx context.Context, cfg Config, pwp password.Params) (_ *FillResult, err error) {
	st, err := openFillStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	res := &FillResult{DB: cfg.DB, Users: cfg.Users, BodyBytes: cfg.BodyBytes}
	if res.UsersCreated, err = ensureUsers(ctx, st, cfg, pwp); err != nil {
		return nil, err
	}

	var done atomic.Int64
	start := time.Now()
	if cfg.Progress != nil {
		stop := make(chan struct{})
		defer close(stop)
		go fillProgress(cfg.Progress, &done, int64(cfg.Messages), start, stop)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	pendingCut := uint64(cfg.PendingFraction * (1 << 53))
	var acks []plugins.Ack // delivered messages of the previous batch
	wctx := context.WithoutCancel(ctx)
	for written := 0; written < cfg.Messages && ctx.Err() == nil; {
		n := min(cfg.Batch, cfg.Messages-written)
		msgs := make([]plugins.NewMessage, n)
		pending := make([]bool, n)
		for k := range msgs {
			from := rng.IntN(cfg.Users)
			to := rng.IntN(cfg.Users - 1)
			if to >= from {
				to++
			}
			pending[k] = rng.Uint64()>>11 < pendingCut
			status := protocol.StatusSent
			if pending[k] {
				status = protocol.StatusQueued
			}
			msgs[k] = plugins.NewMessage{From: userName(from), To: userName(to), Status: status,
				Body: body("fill-"+strconv.Itoa(written+k), cfg.BodyBytes)}
		}
		// The acks of the previous batch ride in this batch's transaction:
		// one commit per batch instead of two. An interrupt is seen between
		// batches, never inside one, so that no batch is left unacked.
		results, err := st.Write(wctx, &plugins.WriteBatch{Messages: msgs, Acks: acks})
		if err != nil {
			return nil, fmt.Errorf("fill: %w", err)
		}
		acks = acks[:0]
		byUser := map[string][]string{}
		for k, r := range results {
			if r.Err != nil {
				return nil, fmt.Errorf("fill: %w", r.Err)
			}
			if pending[k] {
				res.LeftPending++
			} else {
				byUser[msgs[k].To] = append(byUser[msgs[k].To], r.Message.ID)
			}
		}
		for u, ids := range byUser {
			acks = append(acks, plugins.Ack{User: u, MsgIDs: ids})
		}
		written += n
		res.Messages += int64(n)
		res.Batches++
		done.Store(res.Messages)
	}
	if len(acks) > 0 {
		if _, err := st.Write(wctx, &plugins.WriteBatch{Acks: acks}); err != nil {
			return nil, fmt.Errorf("fill: ack the last batch: %w", err)
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.RowsPerSec = float64(res.Messages) / res.Seconds
	}
	res.Interrupted = ctx.Err() != nil
	if res.PendingTotal, err = st.CountPending(wctx); err != nil {
		return nil, err
	}
	if c, ok := st.(interface{ Compact(context.Context) error }); ok {
		// Pebble: pay the compactions of the bulk load now, so that a run
		// on the filled store measures the steady state (as SQLite's
		// Close checkpoints its WAL into the file).
		if err := c.Compact(wctx); err != nil {
			return nil, err
		}
	}
	if err := st.Close(); err != nil { // checkpoints the WAL into the file
		return nil, err
	}
	res.FileBytes = diskBytes(cfg.DB)
	return res, nil
}

// openFillStore opens cfg.DB with the storage cfg.Storage names, the
// plugin's own code, without syncing each commit (a bench database need
// not survive a power cut while it is filled).
func openFillStore(ctx context.Context, cfg Config) (plugins.Storage, error) {
	switch cfg.Storage {
	case "pebble":
		// Pebble locks its directory: a qqd that has it open makes Open
		// fail.
		return pebblestore.Open(ctx, pebblestore.Options{Path: cfg.DB, NoSync: true})
	default:
		if pid, err := dbInUse(cfg.DB); err != nil {
			return nil, err
		} else if pid != 0 {
			return nil, fmt.Errorf("--db %s is open in process %d (qqd's sqlite plugin?): stop qqd before a fill", cfg.DB, pid)
		}
		return sqlitestore.Open(ctx, sqlitestore.Options{Path: cfg.DB, Synchronous: fillSynchronous})
	}
}

// diskBytes is the size of the file at path, or of the files in the
// directory at path (a Pebble store); 0 if unknown.
func diskBytes(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// ensureUsers creates the users u0..u(cfg.Users-1) that do not exist, all
// with one Argon2id hash of cfg.Password (one hash instead of thousands;
// a login costs the same whatever the salt). It fails if an existing
// bench user has another password, since the scenarios could not log in.
func ensureUsers(ctx context.Context, st plugins.Storage, cfg Config, pwp password.Params) (created int, err error) {
	var hash string
	checked := false
	for i := range cfg.Users {
		name := userName(i)
		h, err := st.PasswordHash(ctx, name)
		switch {
		case err == nil:
			if checked {
				continue
			}
			checked = true
			if ok, err := password.Verify(h, cfg.Password); err != nil || !ok {
				return created, fmt.Errorf("fill: user %s exists with a password other than --password (%v)", name, err)
			}
			continue
		case !errors.Is(err, plugins.ErrUnknownUser):
			return created, err
		}
		if hash == "" {
			if hash, err = password.Hash(pwp, cfg.Password); err != nil {
				return created, err
			}
		}
		if err := st.CreateUser(ctx, name, hash); err != nil {
			if errors.Is(err, plugins.ErrUserExists) {
				return created, fmt.Errorf("fill: user %s was deleted; its name cannot be reused", name)
			}
			return created, err
		}
		created++
	}
	return created, nil
}

// fillProgress prints a progress line every 5 s until stop is closed.
func fillProgress(w io.Writer, done *atomic.Int64, total int64, start time.Time, stop <-chan struct{}) {
	every5s(w, start, stop, done.Load, func(now time.Time, n int64, rate float64) string {
		avg := float64(n) / now.Sub(start).Seconds()
		eta := "?"
		if avg > 0 {
			eta = time.Duration(float64(total-n) / avg * float64(time.Second)).Round(time.Second).String()
		}
		return fmt.Sprintf("qqbench fill: t=%4.0fs %d/%d messages, %.0f rows/s now, %.0f rows/s average, eta %s",
			now.Sub(start).Seconds(), n, total, rate, avg, eta)
	})
}

// WriteJSON writes r as one JSON line.
func (r *FillResult) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteSummary writes a human summary of r.
func (r *FillResult) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "qqbench fill %s: %d users (%d created), %d-byte bodies\n", r.DB, r.Users, r.UsersCreated, r.BodyBytes)
	fmt.Fprintf(w, "  wrote %d messages in %d batches in %.1f s (%.0f rows/s), %d of them left pending\n",
		r.Messages, r.Batches, r.Seconds, r.RowsPerSec, r.LeftPending)
	fmt.Fprintf(w, "  database: %s, %d messages pending in all\n", mib(r.FileBytes), r.PendingTotal)
	if r.Interrupted {
		fmt.Fprintf(w, "  interrupted: what was written is committed; run fill again to add more\n")
	}
}

// validateFill checks the flags of fill.
func (c *Config) validateFill() error {
	switch {
	case c.DB == "":
		return errors.New("fill needs --db (the qq.db in qqd's data_dir, qqd stopped)")
	case c.Storage != "sqlite" && c.Storage != "pebble":
		return errors.New("--storage must be sqlite or pebble")
	case c.Users < 2:
		return errors.New("fill needs --users >= 2")
	case c.Messages < 1:
		return errors.New("fill needs --messages >= 1")
	case c.Batch < 1:
		return errors.New("--batch must be >= 1")
	case !(c.PendingFraction >= 0 && c.PendingFraction <= 1):
		return errors.New("--pending-fraction must be in [0, 1]")
	}
	return nil
}
