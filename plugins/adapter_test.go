package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// inProcess connects a host-side client to a plugin server over a real
// gRPC connection inside the test process, and returns the dispensed
// client of kind (not yet configured).
func inProcess(t testing.TB, kind plugins.Kind, sf plugins.StorageFactory, ff plugins.FilterFactory) any {
	t.Helper()
	client, server := goplugin.TestPluginGRPCConn(t, false, plugins.ServedPluginSet(sf, ff))
	t.Cleanup(func() {
		_ = client.Close() // asks the server to stop
		select {
		case <-server.DoneCh:
		case <-time.After(5 * time.Second):
			t.Error("plugin server did not stop")
		}
	})
	raw, err := client.Dispense(string(kind))
	if err != nil {
		t.Fatalf("dispense %s: %v", kind, err)
	}
	return raw
}

func inProcessStorage(t testing.TB, sf plugins.StorageFactory, env plugins.Env, config []byte) plugins.Storage {
	t.Helper()
	raw := inProcess(t, plugins.KindStorage, sf, nil)
	if err := plugins.Configure(context.Background(), raw, config, env); err != nil {
		t.Fatalf("configure: %v", err)
	}
	st := raw.(plugins.Storage)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func inProcessFilter(t testing.TB, config []byte) plugins.Filter {
	t.Helper()
	raw := inProcess(t, plugins.KindFilter, nil, newTestFilter)
	if err := plugins.Configure(context.Background(), raw, config, plugins.Env{}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return raw.(plugins.Filter)
}

func TestStorageRoundTrip(t *testing.T) {
	ctx := context.Background()
	env, cfg := sqliteConfig(t, "full")
	st := inProcessStorage(t, newTestStorage, env, cfg)

	// Accounts.
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, "$hash$"+u); err != nil {
			t.Fatalf("create user %s: %v", u, err)
		}
	}
	err := st.CreateUser(ctx, "alice", "x")
	if !errors.Is(err, plugins.ErrUserExists) || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("create user alice again: %v, want ErrUserExists naming alice", err)
	}
	if h, err := st.PasswordHash(ctx, "bob"); err != nil || h != "$hash$bob" {
		t.Fatalf("password hash bob = %q, %v", h, err)
	}
	if _, err := st.PasswordHash(ctx, "nobody"); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Fatalf("password hash nobody: %v, want ErrUnknownUser", err)
	}

	// A batch: a stored message, one to an unknown user, a cid retry
	// inside the batch, and a sent one.
	sent := msg("bob", "alice", "hello alice", "b1")
	sent.Status = protocol.StatusSent
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		msg("alice", "bob", "hi bob", "c1"),
		msg("alice", "nobody", "lost", "c2"),
		msg("alice", "bob", "hi bob (retry)", "c1"),
		sent,
	}})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if len(res) != 4 {
		t.Fatalf("write: %d results, want 4", len(res))
	}
	first := res[0]
	if first.Err != nil || first.Duplicate || first.Message.ID == "" || first.Message.TS == 0 ||
		first.Message.From != "alice" || first.Message.To != "bob" || first.Message.Body != "hi bob" || first.Status != protocol.StatusQueued {
		t.Errorf("result 0 = %+v", first)
	}
	if !errors.Is(res[1].Err, plugins.ErrUnknownUser) || !strings.Contains(res[1].Err.Error(), "nobody") {
		t.Errorf("result 1 err = %v, want ErrUnknownUser naming nobody", res[1].Err)
	}
	if !res[2].Duplicate || res[2].Message != first.Message || res[2].Status != protocol.StatusQueued {
		t.Errorf("result 2 = %+v, want a duplicate of %+v", res[2], first)
	}
	if res[3].Err != nil || res[3].Status != protocol.StatusSent || res[3].Message.TS < first.Message.TS {
		t.Errorf("result 3 = %+v", res[3])
	}

	// A retry in a later batch.
	res, err = st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "again", "c1")}})
	if err != nil || len(res) != 1 || !res[0].Duplicate || res[0].Message != first.Message {
		t.Fatalf("retry write = %+v, %v", res, err)
	}

	// LookupCIDs.
	look, err := st.LookupCIDs(ctx, []plugins.CIDKey{{From: "alice", CID: "c1"}, {From: "alice", CID: "none"}, {From: "bob", CID: "b1"}})
	if err != nil || len(look) != 3 {
		t.Fatalf("lookup cids = %+v, %v", look, err)
	}
	if !look[0].Duplicate || look[0].Message != first.Message || look[0].Status != protocol.StatusQueued {
		t.Errorf("lookup c1 = %+v", look[0])
	}
	if look[1] != (plugins.AppendResult{}) {
		t.Errorf("lookup none = %+v, want zero", look[1])
	}
	if !look[2].Duplicate || look[2].Status != protocol.StatusSent {
		t.Errorf("lookup b1 = %+v", look[2])
	}
	if look, err := st.LookupCIDs(ctx, nil); err != nil || len(look) != 0 {
		t.Errorf("lookup no keys = %+v, %v", look, err)
	}

	// Pending, then an ack.
	if n, err := st.PendingCount(ctx, "bob"); err != nil || n != 1 {
		t.Fatalf("pending count bob = %d, %v; want 1", n, err)
	}
	pend, more, err := st.Pending(ctx, "bob", 10)
	if err != nil || more || len(pend) != 1 || pend[0] != first.Message {
		t.Fatalf("pending bob = %+v, %v, %v", pend, more, err)
	}
	if _, err := st.Write(ctx, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{first.Message.ID, "not-an-id"}}}}); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if n, err := st.PendingCount(ctx, "bob"); err != nil || n != 0 {
		t.Fatalf("pending count bob after ack = %d, %v; want 0", n, err)
	}

	// History, paging with a cursor.
	hist, more, err := st.History(ctx, "alice", "bob", "", 1)
	if err != nil || !more || len(hist) != 1 || hist[0].Body != "hello alice" {
		t.Fatalf("history newest page = %+v, more %v, %v", hist, more, err)
	}
	hist, more, err = st.History(ctx, "alice", "bob", hist[0].ID, 10)
	if err != nil || more || len(hist) != 1 || hist[0] != first.Message {
		t.Fatalf("history older page = %+v, more %v, %v", hist, more, err)
	}
	if _, _, err := st.History(ctx, "alice", "bob", "bogus", 10); !errors.Is(err, plugins.ErrBadCursor) {
		t.Errorf("history bad cursor: %v, want ErrBadCursor", err)
	}
	if _, _, err := st.History(ctx, "alice", "nobody", "", 10); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Errorf("history with nobody: %v, want ErrUnknownUser", err)
	}
}

func TestStorageAccountsRoundTrip(t *testing.T) {
	ctx := context.Background()
	env, cfg := sqliteConfig(t, "off")
	st := inProcessStorage(t, newTestStorage, env, cfg)

	if n, err := st.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("count users of a new store = %d, %v; want 0", n, err)
	}
	if n, err := st.CountPending(ctx); err != nil || n != 0 {
		t.Fatalf("count pending of a new store = %d, %v; want 0", n, err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, "$hash$"+u); err != nil {
			t.Fatalf("create user %s: %v", u, err)
		}
	}
	if n, err := st.CountUsers(ctx); err != nil || n != 2 {
		t.Fatalf("count users = %d, %v; want 2", n, err)
	}
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		msg("alice", "bob", "one", ""), msg("alice", "bob", "two", ""), msg("bob", "alice", "back", ""),
	}})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if n, err := st.CountPending(ctx); err != nil || n != 3 {
		t.Fatalf("count pending = %d, %v; want 3", n, err)
	}
	if _, err := st.Write(ctx, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "alice", MsgIDs: []string{res[2].Message.ID}}}}); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if n, err := st.CountPending(ctx); err != nil || n != 2 {
		t.Fatalf("count pending after ack = %d, %v; want 2", n, err)
	}

	for _, tc := range []struct {
		name     string
		call     func() error
		wantErr  error
		wantText string // in the error
	}{
		{"set password hash", func() error { return st.SetPasswordHash(ctx, "bob", "$new$") }, nil, ""},
		{"set password hash of nobody", func() error { return st.SetPasswordHash(ctx, "nobody", "x") }, plugins.ErrUnknownUser, "nobody"},
		{"delete bob", func() error {
			n, err := st.DeleteUser(ctx, "bob")
			if err == nil && n != 2 {
				return fmt.Errorf("dropped %d pending, want 2", n)
			}
			return err
		}, nil, ""},
		{"delete bob again", func() error { _, err := st.DeleteUser(ctx, "bob"); return err }, plugins.ErrUnknownUser, "bob"},
		{"delete nobody", func() error { _, err := st.DeleteUser(ctx, "nobody"); return err }, plugins.ErrUnknownUser, "nobody"},
		{"set password hash of deleted", func() error { return st.SetPasswordHash(ctx, "bob", "x") }, plugins.ErrUnknownUser, "bob"},
		{"password hash of deleted", func() error { _, err := st.PasswordHash(ctx, "bob"); return err }, plugins.ErrUnknownUser, "bob"},
		{"re-create deleted", func() error { return st.CreateUser(ctx, "bob", "x") }, plugins.ErrUserExists, "bob"},
	} {
		err := tc.call()
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		} else if err != nil && !strings.Contains(err.Error(), tc.wantText) {
			t.Errorf("%s: %v, want it to name %q", tc.name, err, tc.wantText)
		}
	}
	if n, err := st.CountUsers(ctx); err != nil || n != 1 {
		t.Errorf("count users after delete = %d, %v; want 1", n, err)
	}
	if n, err := st.CountPending(ctx); err != nil || n != 0 {
		t.Errorf("count pending after delete = %d, %v; want 0 (bob's two dropped)", n, err)
	}
	if n, err := st.PendingCount(ctx, "bob"); err != nil || n != 0 {
		t.Errorf("pending count of deleted = %d, %v; want 0", n, err)
	}
	hist, _, err := st.History(ctx, "alice", "bob", "", 10)
	if err != nil || len(hist) != 3 || hist[2] != res[2].Message {
		t.Errorf("history with deleted = %+v, %v; want the 3 messages", hist, err)
	}
	w, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "late", "")}})
	if err != nil || len(w) != 1 || !errors.Is(w[0].Err, plugins.ErrUnknownUser) {
		t.Errorf("write to deleted = %+v, %v; want ErrUnknownUser", w, err)
	}
}

func TestStorageWriteErrors(t *testing.T) {
	ctx := context.Background()
	env, cfg := sqliteConfig(t, "off")
	st := inProcessStorage(t, newTestStorage, env, cfg)

	for _, tc := range []struct {
		body      string
		maybe     bool
		text      string
		isTimeout bool
	}{
		{"fail maybe", true, "faultstorage: commit outcome unknown", false},
		{"fail nothing", false, "faultstorage: rolled back: context deadline exceeded", true},
		{"fail plain", true, "faultstorage: not a WriteError", false},
	} {
		_, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("a", "b", tc.body, "")}})
		var we *plugins.WriteError
		if !errors.As(err, &we) {
			t.Errorf("%s: error %v (%T), want *WriteError", tc.body, err, err)
			continue
		}
		if we.MaybeWritten != tc.maybe || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v (maybe written %v), want maybe written %v and %q", tc.body, err, we.MaybeWritten, tc.maybe, tc.text)
		}
		if errors.Is(err, context.DeadlineExceeded) != tc.isTimeout {
			t.Errorf("%s: errors.Is(DeadlineExceeded) = %v", tc.body, !tc.isTimeout)
		}
	}

	// A context done before the call: nothing was sent.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := st.Write(cctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("a", "b", "x", "")}})
	var we *plugins.WriteError
	if !errors.As(err, &we) || we.MaybeWritten || !errors.Is(err, context.Canceled) {
		t.Errorf("write with done ctx: %v, want WriteError not written, Canceled", err)
	}

	// A deadline that expires while the plugin works: outcome unknown.
	dctx, dcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer dcancel()
	_, err = st.Write(dctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("a", "b", "hang", "")}})
	if !errors.As(err, &we) || !we.MaybeWritten || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("write past deadline: %v, want WriteError maybe written, DeadlineExceeded", err)
	}

	// After Close, calls fail.
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := st.CreateUser(ctx, "carol", "h"); err == nil {
		t.Error("create user after close succeeded")
	}
}

func TestStorageNotConfigured(t *testing.T) {
	ctx := context.Background()
	st := inProcess(t, plugins.KindStorage, newTestStorage, nil).(plugins.Storage)
	if err := st.CreateUser(ctx, "a", "h"); !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("create user before configure: %v, want not configured", err)
	}
	_, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("a", "b", "x", "")}})
	var we *plugins.WriteError
	if !errors.As(err, &we) || we.MaybeWritten || !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("write before configure: %v, want WriteError not written", err)
	}
	if _, _, err := st.History(ctx, "a", "b", "", 1); !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("history before configure: %v, want not configured", err)
	}
	if err := st.SetPasswordHash(ctx, "a", "h"); !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("set password hash before configure: %v, want not configured", err)
	}
	if _, err := st.DeleteUser(ctx, "a"); !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("delete user before configure: %v, want not configured", err)
	}
	if _, err := st.CountUsers(ctx); !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("count users before configure: %v, want not configured", err)
	}
	if _, err := st.CountPending(ctx); !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("count pending before configure: %v, want not configured", err)
	}

	// A refused configuration: the factory's text, and still unconfigured.
	env := plugins.Env{DataDir: t.TempDir()}
	err = plugins.Configure(ctx, st, []byte(`{"synchronous":"sometimes","path":""}`), env)
	if !errors.Is(err, plugins.ErrConfig) ||
		!strings.Contains(err.Error(), `sqlite config: path: must not be empty`) ||
		!strings.Contains(err.Error(), `sqlite config: synchronous: must be full, normal or off (got "sometimes")`) {
		t.Errorf("bad configure: %v", err)
	}
	if _, err := st.PendingCount(ctx, "a"); !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("pending count after failed configure: %v, want not configured", err)
	}
	if err := plugins.Configure(ctx, st, nil, env); err != nil { // empty config: "{}"
		t.Fatalf("configure: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := plugins.Configure(ctx, st, nil, env); err == nil || !strings.Contains(err.Error(), "already configured") {
		t.Errorf("second configure: %v, want already configured", err)
	}
	if _, err := st.PendingCount(ctx, "a"); err != nil {
		t.Errorf("pending count: %v", err)
	}
}

func TestFilterRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := inProcessFilter(t, nil)
	in := []plugins.FilterMessage{
		{From: "alice", To: "bob", Body: "hello", TS: 1},
		{From: "alice", To: "bob", Body: "a bad word", TS: 2},
		{From: "alice", To: "bob", Body: "LOUD", TS: 3},
		{From: "alice", Group: 42, Body: "where", TS: 4},
		{From: "alice", To: "bob", Body: "where", TS: 5},
	}
	got, err := f.Filter(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.Verdict{
		{Action: plugins.Rewrite, Body: "HELLO"},
		{Action: plugins.Reject, Reason: "bad word from alice"},
		{Action: plugins.Allow},
		{Action: plugins.Rewrite, Body: `to "" in group 42`},
		{Action: plugins.Rewrite, Body: `to "bob" in group 0`},
	}
	if len(got) != len(want) {
		t.Fatalf("verdicts %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("verdict %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got, err := f.Filter(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("empty batch: %+v, %v", got, err)
	}

	// A filter error fails the batch with its text.
	if _, err := f.Filter(ctx, []plugins.FilterMessage{{Body: "error"}}); err == nil || !strings.Contains(err.Error(), "testfilter: refusing the batch") {
		t.Errorf("error batch: %v", err)
	}
	// A panic fails the batch, and the plugin keeps serving.
	if _, err := f.Filter(ctx, []plugins.FilterMessage{{Body: "panic"}}); err == nil || !strings.Contains(err.Error(), "test filter panics") {
		t.Errorf("panic batch: %v", err)
	}
	// The deadline is honoured and comes back as DeadlineExceeded.
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := f.Filter(dctx, []plugins.FilterMessage{{Body: "slow"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow batch: %v, want DeadlineExceeded", err)
	}
	if got, err := f.Filter(ctx, in[2:]); err != nil || got[0].Action != plugins.Allow {
		t.Errorf("after failures: %+v, %v", got, err)
	}
}

// badFilter answers with the wrong number of verdicts, or a bad action.
type badFilter struct{ action plugins.Action }

func (b badFilter) Filter(_ context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	if b.action != 0 {
		return []plugins.Verdict{{Action: b.action}}, nil
	}
	return nil, nil
}

func TestFilterContractViolations(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		f    badFilter
		want string
	}{
		{badFilter{}, "0 verdicts for 1 messages"},
		{badFilter{action: 9}, "unknown action 9"},
	} {
		raw := inProcess(t, plugins.KindFilter, nil, func(plugins.Env, []byte) (plugins.Filter, error) { return tc.f, nil })
		if err := plugins.Configure(ctx, raw, nil, plugins.Env{}); err != nil {
			t.Fatal(err)
		}
		_, err := raw.(plugins.Filter).Filter(ctx, []plugins.FilterMessage{{Body: "x"}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.f, err, tc.want)
		}
	}
}

func TestFilterConfigure(t *testing.T) {
	ctx := context.Background()
	raw := inProcess(t, plugins.KindFilter, nil, newTestFilter)
	f := raw.(plugins.Filter)
	if _, err := f.Filter(ctx, []plugins.FilterMessage{{Body: "x"}}); !errors.Is(err, plugins.ErrNotConfigured) {
		t.Errorf("filter before configure: %v, want not configured", err)
	}
	err := plugins.Configure(ctx, raw, []byte(`{"fail":"testfilter: words: must not be empty; limit: must be positive"}`), plugins.Env{})
	if err == nil || !strings.Contains(err.Error(), "testfilter: words: must not be empty; limit: must be positive") {
		t.Errorf("configure: %v, want the factory's text", err)
	}
	if err := plugins.Configure(ctx, raw, []byte(`{}`), plugins.Env{}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	if _, err := f.Filter(ctx, []plugins.FilterMessage{{Body: "x"}}); err != nil {
		t.Errorf("filter: %v", err)
	}
}
