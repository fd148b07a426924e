package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
)

// waitFile waits (bounded) until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	if !eventually(10*time.Second, func() bool { _, err := os.Stat(path); return err == nil }) {
		t.Fatalf("%s never appeared", path)
	}
}

// TestCallStreamVersions: a plugin of this package negotiates version 4
// (3 or later) and gets its hot calls on a call stream; one built before (versions 1
// and 2 only) gets unary calls. Either way the calls answer the same,
// fail the same way at their deadline and on cancellation (which reaches
// the plugin), and overlapping Writes are applied in the order they
// were started.
func TestCallStreamVersions(t *testing.T) {
	errTexts := map[string][]string{} // by kind: the errors each version gave
	for _, tt := range []struct {
		serve       string
		kind        plugins.Kind
		wantVersion int
	}{
		{"filter", plugins.KindFilter, 5},
		{"filter-v2", plugins.KindFilter, 2},
		{"storage", plugins.KindStorage, 5},
		{"storage-v2", plugins.KindStorage, 2},
	} {
		t.Run(tt.serve, func(t *testing.T) {
			var env plugins.Env
			var cfg []byte
			if tt.kind == plugins.KindStorage {
				env, cfg = sqliteConfig(t, "normal")
			}
			t.Setenv(envServe, tt.serve)
			p, err := plugins.Start(context.Background(), plugins.Spec{
				Name: "calls", Kind: tt.kind, Command: []string{os.Args[0]}, Config: cfg, Env: env,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Kill)
			if v := p.ProtocolVersion(); v != tt.wantVersion {
				t.Fatalf("ProtocolVersion = %d, want %d", v, tt.wantVersion)
			}
			var texts []string
			if tt.kind == plugins.KindFilter {
				if got, want := plugins.UsesCallStream(p.Filter()), tt.wantVersion >= 3; got != want {
					t.Errorf("UsesCallStream = %v, want %v", got, want)
				}
				texts = checkFilterCalls(t, p.Filter())
			} else {
				if got, want := plugins.UsesCallStream(p.Storage()), tt.wantVersion >= 3; got != want {
					t.Errorf("UsesCallStream = %v, want %v", got, want)
				}
				texts = checkStorageCalls(t, p.Storage())
			}
			errTexts[string(tt.kind)] = append(errTexts[string(tt.kind)], fmt.Sprint(texts))
		})
	}
	for kind, texts := range errTexts {
		if len(texts) == 2 && texts[0] != texts[1] {
			t.Errorf("%s errors over a call stream %s, over unary calls %s", kind, texts[0], texts[1])
		}
	}
}

// checkFilterCalls runs the filter checks of TestCallStreamVersions and
// returns the texts of the errors.
func checkFilterCalls(t *testing.T, f plugins.Filter) []string {
	ctx := context.Background()
	vs, err := f.Filter(ctx, []plugins.FilterMessage{{From: "a", To: "b", Body: "hi"}, {Body: "bad"}, {Body: "OK"}})
	if err != nil || len(vs) != 3 || vs[0] != (plugins.Verdict{Action: plugins.Rewrite, Body: "HI"}) || vs[1].Action != plugins.Reject || vs[2].Action != plugins.Allow {
		t.Fatalf("Filter = %+v, %v", vs, err)
	}
	// Calls in flight together are told apart.
	errs := make(chan error, 8)
	for i := range cap(errs) {
		go func() {
			body := fmt.Sprintf("msg %d", i)
			vs, err := f.Filter(ctx, []plugins.FilterMessage{{Body: body}})
			if err == nil && (len(vs) != 1 || vs[0].Body != fmt.Sprintf("MSG %d", i)) {
				err = fmt.Errorf("Filter(%q) = %+v", body, vs)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	var texts []string
	// The plugin's own error, a deadline, a context already done.
	if _, err := f.Filter(ctx, []plugins.FilterMessage{{Body: "error"}}); err == nil {
		t.Error("Filter(error) succeeded")
	} else {
		texts = append(texts, err.Error())
	}
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	// (Its text is not compared: over a unary call, the plugin may reset
	// the call at the deadline a moment before the host's timer fires,
	// and the text is then gRPC's.)
	if _, err := f.Filter(dctx, []plugins.FilterMessage{{Body: "slow"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Filter(slow) = %v, want DeadlineExceeded", err)
	}
	if _, err := f.Filter(dctx, []plugins.FilterMessage{{Body: "hi"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Filter after the deadline = %v, want DeadlineExceeded", err)
	} else {
		texts = append(texts, err.Error())
	}
	// Cancellation ends the call and reaches the plugin.
	dir := t.TempDir()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := f.Filter(cctx, []plugins.FilterMessage{{Body: "wait " + dir}})
		done <- err
	}()
	waitFile(t, filepath.Join(dir, "started"))
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Filter = %v, want Canceled", err)
	} else {
		texts = append(texts, err.Error())
	}
	waitFile(t, filepath.Join(dir, "ended"))
	if b, _ := os.ReadFile(filepath.Join(dir, "ended")); string(b) != context.Canceled.Error() {
		t.Errorf("the plugin's call ended with %q, want %q", b, context.Canceled)
	}
	// And the filter still works.
	if vs, err := f.Filter(ctx, []plugins.FilterMessage{{Body: "after"}}); err != nil || vs[0].Body != "AFTER" {
		t.Errorf("Filter after the errors = %+v, %v", vs, err)
	}
	return texts
}

// checkStorageCalls runs the storage checks of TestCallStreamVersions
// and returns the texts of the errors.
func checkStorageCalls(t *testing.T, st plugins.Storage) []string {
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	keys := []plugins.CIDKey{{From: "alice", CID: "c1"}}
	if res, err := st.LookupCIDs(ctx, keys); err != nil || len(res) != 1 || res[0].Duplicate {
		t.Fatalf("LookupCIDs before = %+v, %v", res, err)
	}
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "first", "c1"), msg("alice", "nobody", "x", "")}})
	if err != nil || len(res) != 2 || res[0].Err != nil || !errors.Is(res[1].Err, plugins.ErrUnknownUser) {
		t.Fatalf("Write = %+v, %v", res, err)
	}
	if got, err := st.LookupCIDs(ctx, keys); err != nil || len(got) != 1 || !got[0].Duplicate || got[0].Message.ID != res[0].Message.ID {
		t.Fatalf("LookupCIDs after = %+v, %v", got, err)
	}
	// Overlapping Writes are applied in the order they were started.
	o, ok := st.(plugins.WriteOverlapper)
	if !ok {
		t.Fatal("the storage of a plugin process is not a WriteOverlapper")
	}
	const n = 40
	waits := make([]func() ([]plugins.AppendResult, error), n)
	for i := range waits {
		waits[i] = o.StartWrite(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("bob", "alice", fmt.Sprint(i), "")}})
	}
	for i, wait := range waits {
		if res, err := wait(); err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("overlapping Write %d = %+v, %v", i, res, err)
		}
	}
	hist, _, err := st.History(ctx, "alice", "bob", "", n)
	if err != nil || len(hist) != n {
		t.Fatalf("History = %d messages, %v", len(hist), err)
	}
	for i, m := range hist {
		if m.Body != fmt.Sprint(i) {
			t.Fatalf("History[%d] = %q: the overlapping Writes were applied out of order", i, m.Body)
		}
	}
	var texts []string
	// A Write that fails as a whole, one that hits its deadline, one
	// whose context is done before it is sent.
	checkWriteErr := func(what string, ctx context.Context, body string, maybe bool, target error) {
		t.Helper()
		_, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", body, "")}})
		var we *plugins.WriteError
		if !errors.As(err, &we) || we.MaybeWritten != maybe || (target != nil && !errors.Is(err, target)) {
			t.Errorf("%s: Write = %v, want a WriteError with MaybeWritten %v (%v)", what, err, maybe, target)
			return
		}
		if what != "hanging" { // see checkFilterCalls
			texts = append(texts, err.Error())
		}
	}
	checkWriteErr("failing", ctx, "fail maybe", true, nil)
	checkWriteErr("failing", ctx, "fail nothing", false, context.DeadlineExceeded)
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	checkWriteErr("hanging", dctx, "hang", true, context.DeadlineExceeded)
	<-dctx.Done()
	checkWriteErr("late", dctx, "x", false, context.DeadlineExceeded)
	if _, err := st.LookupCIDs(dctx, keys); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LookupCIDs after the deadline = %v", err)
	} else {
		texts = append(texts, err.Error())
	}
	// Writes go on in order after those.
	if res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "last", "")}}); err != nil || res[0].Err != nil {
		t.Errorf("Write after the errors = %+v, %v", res, err)
	}
	return texts
}

// TestCallStreamCrash: when a plugin process dies with calls in flight
// on its call stream, they fail at once (without waiting for a deadline:
// they have none), a Write saying its outcome is unknown; the supervisor
// starts a new process and the next calls work.
func TestCallStreamCrash(t *testing.T) {
	t.Run("filter", func(t *testing.T) {
		s := supervise(t, plugins.KindFilter, nil, plugins.Env{})
		f := s.Filter()
		if v, err := callFilter(f, "hi", 5*time.Second); err != nil || v[0].Body != "HI" {
			t.Fatalf("Filter = %v, %v", v, err)
		}
		first := s.Status()
		const n = 3
		errs := make(chan error, n)
		for range n {
			dir := t.TempDir()
			go func() {
				_, err := f.Filter(context.Background(), []plugins.FilterMessage{{Body: "wait " + dir}})
				errs <- err
			}()
			waitFile(t, filepath.Join(dir, "started"))
		}
		if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for range n {
			select {
			case err := <-errs:
				if err == nil {
					t.Error("a call in flight when the plugin died succeeded")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a call in flight when the plugin died did not fail")
			}
		}
		if !eventually(10*time.Second, func() bool { st := s.Status(); return st.Up && st.Pid != first.Pid }) {
			t.Fatalf("not restarted: %+v", s.Status())
		}
		if v, err := callFilter(f, "again", 5*time.Second); err != nil || v[0].Body != "AGAIN" {
			t.Fatalf("Filter after restart = %v, %v", v, err)
		}
	})
	t.Run("storage", func(t *testing.T) {
		env, conf := sqliteConfig(t, "normal")
		s := supervise(t, plugins.KindStorage, conf, env)
		st := s.Storage()
		ctx := context.Background()
		for _, u := range []string{"alice", "bob"} {
			if err := st.CreateUser(ctx, u, "h"); err != nil {
				t.Fatal(err)
			}
		}
		first := s.Status()
		o := st.(plugins.WriteOverlapper)
		dir := t.TempDir()
		// The first Write hangs in the plugin; the second waits for its
		// turn behind it.
		waits := []func() ([]plugins.AppendResult, error){
			o.StartWrite(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "hang "+dir, "")}}),
			o.StartWrite(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "second", "")}}),
		}
		waitFile(t, filepath.Join(dir, "started"))
		if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, len(waits))
		for _, wait := range waits {
			go func() { _, err := wait(); errs <- err }()
		}
		for range waits {
			select {
			case err := <-errs:
				var we *plugins.WriteError
				if !errors.As(err, &we) || !we.MaybeWritten {
					t.Errorf("Write in flight when the plugin died = %v, want a WriteError with MaybeWritten", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a Write in flight when the plugin died did not fail")
			}
		}
		if !eventually(10*time.Second, func() bool { st := s.Status(); return st.Up && st.Pid != first.Pid }) {
			t.Fatalf("not restarted: %+v", s.Status())
		}
		res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "after", "c9")}})
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("Write after restart = %+v, %v", res, err)
		}
		if got, err := st.LookupCIDs(ctx, []plugins.CIDKey{{From: "alice", CID: "c9"}}); err != nil || !got[0].Duplicate {
			t.Fatalf("LookupCIDs after restart = %+v, %v", got, err)
		}
		if hist, _, err := st.History(ctx, "alice", "bob", "", 10); err != nil || len(hist) != 1 || hist[0].Body != "after" {
			t.Errorf("History after restart = %+v, %v; want only the Write after it", hist, err)
		}
	})
}

// TestCallStreamStuckSend: a call whose send blocks because the plugin
// stopped reading (here: SIGSTOPped, with a batch larger than the
// flow-control window) still fails at its deadline, as a unary call
// would; once the plugin runs again, the next call works (on a new
// stream).
func TestCallStreamStuckSend(t *testing.T) {
	p, err := startPlugin(t, "stuck", plugins.KindFilter, nil, plugins.Env{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := p.Filter()
	if v, err := callFilter(f, "hi", 5*time.Second); err != nil || v[0].Body != "HI" {
		t.Fatalf("Filter = %v, %v", v, err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(p.Pid(), syscall.SIGCONT)
		}
	}()
	big := make([]plugins.FilterMessage, 64)
	for i := range big {
		big[i] = plugins.FilterMessage{Body: strings.Repeat("x", 256<<10)} // 16 MiB in all
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := f.Filter(ctx, big)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Filter to a stopped plugin = %v, want DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call whose send was stuck did not end at its deadline")
	}
	// The window is full: the next sends block (the big call's cancel,
	// then these), and still the calls end at their deadlines.
	for i := range 3 {
		go func() {
			_, err := callFilter(f, "small", 300*time.Millisecond)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("call %d to a stopped plugin = %v, want DeadlineExceeded", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d to a stopped plugin did not end at its deadline", i)
		}
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	if v, err := callFilter(f, "again", 10*time.Second); err != nil || v[0].Body != "AGAIN" {
		t.Fatalf("Filter after the plugin runs again = %v, %v", v, err)
	}
}
