package daemon_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// faultyStore is the real SQLite store with failures switched on demand:
// fail makes every call fail before touching the database; hang makes
// Write, CountPending and CountUsers block until their context ends.
type faultyStore struct {
	plugins.Storage
	fail, hang atomic.Bool
}

var errInjected = errors.New("injected failure")

func (f *faultyStore) Write(ctx context.Context, b *plugins.WriteBatch) ([]plugins.AppendResult, error) {
	if f.hang.Load() {
		<-ctx.Done()
		return nil, &plugins.WriteError{MaybeWritten: false, Err: ctx.Err()}
	}
	if f.fail.Load() {
		return nil, &plugins.WriteError{Err: errInjected}
	}
	return f.Storage.Write(ctx, b)
}

func (f *faultyStore) CountPending(ctx context.Context) (int64, error) {
	if err := f.countFault(ctx); err != nil {
		return 0, err
	}
	return f.Storage.CountPending(ctx)
}

func (f *faultyStore) CountUsers(ctx context.Context) (int64, error) {
	if err := f.countFault(ctx); err != nil {
		return 0, err
	}
	return f.Storage.CountUsers(ctx)
}

// countFault is the injected failure of a count call, if any.
func (f *faultyStore) countFault(ctx context.Context) error {
	if f.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.fail.Load() {
		return errInjected
	}
	return nil
}

func (f *faultyStore) PendingCount(ctx context.Context, user string) (int64, error) {
	if f.fail.Load() {
		return 0, errInjected
	}
	return f.Storage.PendingCount(ctx, user)
}

func (f *faultyStore) History(ctx context.Context, user, with, before string, limit int) ([]protocol.Message, bool, error) {
	if f.fail.Load() {
		return nil, false, errInjected
	}
	return f.Storage.History(ctx, user, with, before, limit)
}

func startFaulty(t *testing.T) (*daemontest.Server, *faultyStore) {
	cfg := daemontest.Config(t)
	cfg.Storage.Timeout = 300 * time.Millisecond
	real := daemontest.OpenStore(t, cfg)
	fs := &faultyStore{Storage: real}
	return daemontest.StartWith(t, cfg, fs), fs
}

// TestStorageFailure: while storage fails, sends get unavailable and
// nothing is stored or delivered; other requests still work; service
// resumes when storage does.
func TestStorageFailure(t *testing.T) {
	for _, mode := range []string{"fail", "hang"} {
		t.Run(mode, func(t *testing.T) {
			s, fs := startFaulty(t)
			alice := s.User(t, "alice")
			bob := s.User(t, "bob")
			if mode == "fail" {
				fs.fail.Store(true)
			} else {
				fs.hang.Store(true)
			}
			alice.Send(`{"type":"send","id":1,"to":"bob","body":"lost?"}`)
			alice.Expect(`{"type":"error","id":1,"code":"unavailable"}`)
			alice.Send(`{"type":"ack","id":2,"msg_ids":["x"]}`)
			alice.Expect(`{"type":"error","id":2,"code":"unavailable"}`)
			if mode == "fail" {
				alice.Send(`{"type":"history","id":3,"with":"bob"}`)
				alice.Expect(`{"type":"error","id":3,"code":"unavailable"}`)
			}
			alice.Send(`{"type":"ping","id":4}`)
			alice.Expect(`{"type":"ok","id":4}`)
			if mode == "fail" {
				// A login that cannot count pending messages fails and
				// leaves the connection logged out.
				c := s.Dial(t)
				c.Send(`{"type":"login","id":"l","user":"bob","password":"password1"}`)
				c.Expect(`{"type":"error","id":"l","code":"unavailable"}`)
				c.Send(`{"type":"users","id":"u"}`)
				c.Expect(`{"type":"error","id":"u","code":"not_logged_in"}`)
			}
			bob.ExpectSilence(100 * time.Millisecond)

			fs.fail.Store(false)
			fs.hang.Store(false)
			alice.Send(`{"type":"send","id":5,"to":"bob","body":"after"}`)
			alice.Expect(`{"type":"ok","id":5,"status":"sent"}`)
			bob.Expect(`{"type":"msg","body":"after"}`)
			n, err := fs.Storage.PendingCount(t.Context(), "bob")
			if err != nil || n != 1 {
				t.Fatalf("bob pending = %d, %v; want 1 (the failed send must not be stored)", n, err)
			}
		})
	}
}
