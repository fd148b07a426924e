package plugins_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
)

func supervise(t *testing.T, kind plugins.Kind, config []byte, env plugins.Env) *plugins.Supervisor {
	t.Helper()
	t.Setenv(envServe, string(kind))
	s, err := plugins.Supervise(context.Background(), plugins.Spec{
		Name: "sup", Kind: kind, Command: []string{os.Args[0]}, Config: config, Env: env,
		Logger: slog.New(slog.DiscardHandler),
	}, plugins.SuperviseOptions{BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func callFilter(f plugins.Filter, body string, timeout time.Duration) ([]plugins.Verdict, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return f.Filter(ctx, []plugins.FilterMessage{{From: "a", To: "b", Body: body}})
}

// TestSuperviseRestartsKilled: a SIGKILLed plugin is noticed without a
// call, calls fail fast with ErrPluginDown meanwhile, and a new process
// takes over.
func TestSuperviseRestartsKilled(t *testing.T) {
	s := supervise(t, plugins.KindFilter, nil, plugins.Env{})
	f := s.Filter()
	if v, err := callFilter(f, "hi", 5*time.Second); err != nil || v[0].Body != "HI" {
		t.Fatalf("Filter = %v, %v", v, err)
	}
	first := s.Status()
	syscall.Kill(first.Pid, syscall.SIGKILL)
	if !eventually(5*time.Second, func() bool { st := s.Status(); return st.Up && st.Pid != first.Pid }) {
		t.Fatalf("not restarted: %+v", s.Status())
	}
	if st := s.Status(); st.Restarts != 1 || st.LastErr == "" {
		t.Errorf("status after restart = %+v", st)
	}
	if !eventually(5*time.Second, func() bool { return gone(first.Pid) }) {
		t.Error("the killed process was not reaped")
	}
	if v, err := callFilter(f, "again", 5*time.Second); err != nil || v[0].Body != "AGAIN" {
		t.Fatalf("Filter after restart = %v, %v", v, err)
	}
}

// TestSuperviseHung: calls that keep hitting their deadline get the
// process killed and replaced.
func TestSuperviseHung(t *testing.T) {
	s := supervise(t, plugins.KindFilter, nil, plugins.Env{})
	pid := s.Status().Pid
	for range 2 {
		if _, err := callFilter(s.Filter(), "slow", 100*time.Millisecond); err == nil {
			t.Fatal("a slow call succeeded")
		}
	}
	if !eventually(5*time.Second, func() bool { st := s.Status(); return st.Up && st.Pid != pid }) {
		t.Fatalf("hung plugin not replaced: %+v", s.Status())
	}
	if !eventually(5*time.Second, func() bool { return gone(pid) }) {
		t.Error("the hung process still runs")
	}
}

// TestSuperviseStorageDown: while the storage plugin is down, Write says
// nothing was written and other calls fail with ErrPluginDown.
func TestSuperviseStorageDown(t *testing.T) {
	env, conf := sqliteConfig(t, "normal")
	s := supervise(t, plugins.KindStorage, conf, env)
	st := s.Storage()
	ctx := context.Background()
	if err := st.CreateUser(ctx, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	// Sentinels are answers, not failures.
	if err := st.CreateUser(ctx, "alice", "h"); !errors.Is(err, plugins.ErrUserExists) {
		t.Fatalf("CreateUser twice = %v", err)
	}
	// The account calls cross the process boundary, sentinels included.
	if err := st.SetPasswordHash(ctx, "alice", "h2"); err != nil {
		t.Fatalf("SetPasswordHash = %v", err)
	}
	if err := st.SetPasswordHash(ctx, "nobody", "h"); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Fatalf("SetPasswordHash(nobody) = %v, want ErrUnknownUser", err)
	}
	if err := st.CreateUser(ctx, "bob", "h"); err != nil {
		t.Fatal(err)
	}
	if n, err := st.CountUsers(ctx); err != nil || n != 2 {
		t.Fatalf("CountUsers = %d, %v; want 2", n, err)
	}
	if n, err := st.CountPending(ctx); err != nil || n != 0 {
		t.Fatalf("CountPending = %d, %v; want 0", n, err)
	}
	if n, err := st.DeleteUser(ctx, "bob"); err != nil || n != 0 {
		t.Fatalf("DeleteUser(bob) = %d, %v; want 0", n, err)
	}
	if _, err := st.DeleteUser(ctx, "bob"); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Fatalf("DeleteUser(bob) again = %v, want ErrUnknownUser", err)
	}
	if restarts := s.Status().Restarts; restarts != 0 {
		t.Errorf("the sentinel answers restarted the plugin: %d restarts", restarts)
	}
	s.Close()
	_, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "alice", "x", "")}})
	var we *plugins.WriteError
	if !errors.As(err, &we) || we.MaybeWritten || !errors.Is(err, plugins.ErrPluginDown) {
		t.Fatalf("Write while down = %v, want a WriteError saying nothing was written", err)
	}
	if _, err := st.PendingCount(ctx, "alice"); !errors.Is(err, plugins.ErrPluginDown) {
		t.Fatalf("PendingCount while down = %v", err)
	}
	if err := st.SetPasswordHash(ctx, "alice", "h"); !errors.Is(err, plugins.ErrPluginDown) {
		t.Fatalf("SetPasswordHash while down = %v", err)
	}
	if _, err := st.DeleteUser(ctx, "alice"); !errors.Is(err, plugins.ErrPluginDown) {
		t.Fatalf("DeleteUser while down = %v", err)
	}
	if _, err := st.CountUsers(ctx); !errors.Is(err, plugins.ErrPluginDown) {
		t.Fatalf("CountUsers while down = %v", err)
	}
	if _, err := st.CountPending(ctx); !errors.Is(err, plugins.ErrPluginDown) {
		t.Fatalf("CountPending while down = %v", err)
	}
	if s.Status().Up {
		t.Fatal("closed supervisor reports up")
	}
}

// TestSuperviseStartFails: a plugin that refuses its configuration is an
// error of Supervise, not something it retries.
func TestSuperviseStartFails(t *testing.T) {
	t.Setenv(envServe, "filter")
	_, err := plugins.Supervise(context.Background(), plugins.Spec{
		Name: "bad", Kind: plugins.KindFilter, Command: []string{os.Args[0]}, Config: []byte(`{"fail":"no such list"}`),
		Logger: slog.New(slog.DiscardHandler),
	}, plugins.SuperviseOptions{})
	if err == nil || !strings.Contains(err.Error(), "no such list") {
		t.Fatalf("Supervise = %v, want the plugin's configuration error", err)
	}
}
