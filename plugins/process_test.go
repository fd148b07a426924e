package plugins_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

// startPlugin starts the test binary as a plugin of kind and kills it
// when the test ends. The log goes to buf when not nil.
func startPlugin(t testing.TB, name string, kind plugins.Kind, config []byte, env plugins.Env, buf *daemontest.SyncBuffer) (*plugins.Process, error) {
	t.Helper()
	t.Setenv(envServe, string(kind))
	logger := slog.New(slog.DiscardHandler)
	if buf != nil {
		logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := plugins.Start(context.Background(), plugins.Spec{
		Name: name, Kind: kind, Command: []string{os.Args[0]},
		Config: config, Env: env, Logger: logger,
	})
	if p != nil {
		t.Cleanup(p.Kill)
	}
	return p, err
}

// gone reports whether pid no longer runs (it does not exist, or is a
// zombie waiting for a parent that is not us).
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	state, _, ok := procStat(pid)
	return !ok || state == "Z"
}

func TestProcessFilter(t *testing.T) {
	p, err := startPlugin(t, "upper", plugins.KindFilter, nil, plugins.Env{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Storage() != nil || p.Filter() == nil {
		t.Fatalf("storage %v, filter %v", p.Storage(), p.Filter())
	}
	if p.Pid() <= 0 || p.Pid() == os.Getpid() {
		t.Fatalf("pid %d", p.Pid())
	}
	ctx := context.Background()
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	vs, err := p.Filter().Filter(ctx, []plugins.FilterMessage{{From: "a", To: "b", Body: "hi"}, {Body: "bad"}})
	if err != nil || len(vs) != 2 || vs[0] != (plugins.Verdict{Action: plugins.Rewrite, Body: "HI"}) || vs[1].Action != plugins.Reject {
		t.Fatalf("filter = %+v, %v", vs, err)
	}

	pid := p.Pid()
	p.Kill()
	if !gone(pid) {
		t.Errorf("pid %d still running after Kill", pid)
	}
	if !p.Exited() {
		t.Error("Exited false after Kill")
	}
	p.Kill() // idempotent
	if _, err := p.Filter().Filter(ctx, []plugins.FilterMessage{{Body: "x"}}); err == nil {
		t.Error("filter after Kill succeeded")
	}
	if err := p.Ping(ctx); err == nil {
		t.Error("ping after Kill succeeded")
	}
}

func TestProcessStartErrors(t *testing.T) {
	// The factory's text comes back, and the process is gone (TestMain
	// checks that no child is left).
	_, err := startPlugin(t, "picky", plugins.KindFilter, []byte(`{"fail":"testfilter: words: must not be empty"}`), plugins.Env{}, nil)
	if err == nil || !strings.Contains(err.Error(), "plugin picky: configure: testfilter: words: must not be empty") {
		t.Errorf("start with bad config: %v", err)
	}
	if err == nil || !errors.Is(err, plugins.ErrConfig) {
		t.Errorf("start with bad config: %v, want ErrConfig", err)
	}
	// A storage plugin that serves a filter.
	t.Setenv(envServe, "filter")
	_, err = plugins.Start(context.Background(), plugins.Spec{Name: "wrong", Kind: plugins.KindStorage, Command: []string{os.Args[0]}, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "does not serve a storage plugin") {
		t.Errorf("start storage on a filter: %v", err)
	}
	// A command that is not there.
	_, err = plugins.Start(context.Background(), plugins.Spec{Name: "ghost", Kind: plugins.KindFilter, Command: []string{"/nonexistent/qq-plugin"}})
	if err == nil || !strings.Contains(err.Error(), "plugin ghost: start") {
		t.Errorf("start missing command: %v", err)
	}
	// A command that is not a plugin (no handshake): it times out.
	start := time.Now()
	_, err = plugins.Start(context.Background(), plugins.Spec{Name: "sleepy", Kind: plugins.KindFilter, Command: []string{"sleep", "30"}, StartTimeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("start non-plugin: %v after %v", err, time.Since(start))
	}
	// Bad specs.
	for _, spec := range []plugins.Spec{{Kind: plugins.KindFilter, Command: []string{"x"}}, {Name: "n", Kind: "cache", Command: []string{"x"}}, {Name: "n", Kind: plugins.KindFilter}} {
		if _, err := plugins.Start(context.Background(), spec); err == nil {
			t.Errorf("start %+v succeeded", spec)
		}
	}
}

func TestProcessLogs(t *testing.T) {
	var buf daemontest.SyncBuffer
	p, err := startPlugin(t, "chatty", plugins.KindFilter, []byte(`{"log":"hello from the plugin"}`), plugins.Env{}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	// The slog line (through go-plugin's stdio stream) keeps its level
	// and attributes; the raw line (the original stderr) is logged whole.
	wantSlog := `level=WARN msg="hello from the plugin" plugin=chatty source=slog`
	wantRaw := `plugin=chatty`
	if !eventually(5*time.Second, func() bool {
		out := buf.String()
		return strings.Contains(out, wantSlog) && strings.Contains(out, "raw hello from the plugin") && strings.Contains(out, wantRaw)
	}) {
		t.Errorf("log lacks %q or the raw line:\n%s", wantSlog, buf.String())
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "raw hello from the plugin") && !strings.Contains(line, "plugin=chatty") {
			t.Errorf("raw line without plugin=chatty: %s", line)
		}
	}
	p.Kill()
}

func TestProcessStorageCrash(t *testing.T) {
	env, cfg := sqliteConfig(t, "off")
	p, err := startPlugin(t, "sqlite", plugins.KindStorage, cfg, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := p.Storage()
	if st == nil || p.Filter() != nil {
		t.Fatalf("storage %v, filter %v", st, p.Filter())
	}
	ctx := context.Background()
	if err := st.CreateUser(ctx, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, "alice", "h"); !errors.Is(err, plugins.ErrUserExists) {
		t.Fatalf("second create user: %v, want ErrUserExists", err)
	}

	// A Write in flight when the process is SIGKILLed: outcome unknown.
	errc := make(chan error, 1)
	go func() {
		_, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "alice", "hang", "")}})
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the call reach the plugin
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var we *plugins.WriteError
	select {
	case err := <-errc:
		if !errors.As(err, &we) || !we.MaybeWritten {
			t.Errorf("in-flight write: %v, want WriteError maybe written", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight write did not fail within 5s of the SIGKILL")
	}
	if !eventually(3*time.Second, p.Exited) {
		t.Fatal("Exited still false 3s after SIGKILL")
	}
	// Calls after the exit fail at once; a Write was not sent.
	start := time.Now()
	_, err = st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "alice", "x", "")}})
	if !errors.As(err, &we) || we.MaybeWritten {
		t.Errorf("write after exit: %v, want WriteError not written", err)
	}
	if _, err := st.PendingCount(ctx, "alice"); err == nil {
		t.Error("pending count after exit succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("calls after exit took %v", d)
	}
	if err := p.Ping(ctx); err == nil {
		t.Error("ping after exit succeeded")
	}
}

func TestProcessFilterCrash(t *testing.T) {
	p, err := startPlugin(t, "upper", plugins.KindFilter, nil, plugins.Env{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !eventually(3*time.Second, p.Exited) {
		t.Fatal("Exited still false 3s after SIGKILL")
	}
	start := time.Now()
	if _, err := p.Filter().Filter(context.Background(), []plugins.FilterMessage{{Body: "x"}}); err == nil {
		t.Error("filter after SIGKILL succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("filter after exit took %v", d)
	}
}

// A plugin whose parent dies exits: with Start (Pdeathsig and the
// watchdog), and started by hand without Pdeathsig (the watchdog alone).
func TestProcessOrphan(t *testing.T) {
	for _, mode := range []string{"start", "raw"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), envParent+"="+mode)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("read plugin pid: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil || pid <= 0 {
				t.Fatalf("plugin pid %q: %v", line, err)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if gone(pid) {
				t.Fatalf("plugin %d not running", pid)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			start := time.Now()
			if !eventually(3*time.Second, func() bool { return gone(pid) }) {
				t.Fatalf("plugin %d still running 3s after its parent died", pid)
			}
			t.Logf("plugin exited %v after its parent", time.Since(start).Round(time.Millisecond))
		})
	}
}
