package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// serveTestPlugin serves the third-party test plugins that tests name with
// command: [<test binary>, "test-plugin", <name>].
func serveTestPlugin(args []string) {
	switch args[0] {
	case "sleepfilter": // never answers
		plugins.ServeFilter(func(plugins.Env, []byte) (plugins.Filter, error) { return sleepFilter{}, nil })
	case "garbagefilter": // oversized rewrites, wrong verdict counts, unknown actions
		plugins.ServeFilter(func(plugins.Env, []byte) (plugins.Filter, error) { return garbageFilter{}, nil })
	case "nobackupstore", "heldbackupstore": // see backup_test.go
		plugins.ServeStorage(backupTestStorage(args[0]))
	case "v3store": // sqlite as a plugin built for protocol versions 1 to 3
		// go-plugin picks the newest version both sides list: listing
		// 1 to 3 for the host makes the handshake settle on 3, which is
		// what qqd sees of a plugin built before version 4.
		os.Setenv("PLUGIN_PROTOCOL_VERSIONS", "1,2,3")
		plugins.ServeStorage(sqlitestore.New)
	default:
		fmt.Fprintln(os.Stderr, "unknown test plugin", args)
		os.Exit(2)
	}
}

// garbageFilter misbehaves according to the body: "huge" is rewritten to
// 8 MiB, "count" gets two verdicts, "action" an unknown action.
type garbageFilter struct{}

func (garbageFilter) Filter(_ context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	vs := make([]plugins.Verdict, len(msgs))
	for i, m := range msgs {
		switch m.Body {
		case "huge":
			vs[i] = plugins.Verdict{Action: plugins.Rewrite, Body: strings.Repeat("x", 8<<20)}
		case "count":
			return append(vs, plugins.Verdict{}), nil
		case "action":
			vs[i] = plugins.Verdict{Action: plugins.Action(42)}
		}
	}
	return vs, nil
}

type sleepFilter struct{}

func (sleepFilter) Filter(ctx context.Context, _ []plugins.FilterMessage) ([]plugins.Verdict, error) {
	<-ctx.Done()
	time.Sleep(time.Hour) // past the deadline too: a hung plugin
	return nil, ctx.Err()
}

// loadLimitsYAML lifts the per-IP connection, send-rate and login-attempt
// limits for tests whose clients, all from 127.0.0.1, send as fast as they
// can.
const loadLimitsYAML = "limits: {max_connections_per_ip: 100000, send_rate: 1000000000, send_burst: 1000000000, auth_per_ip_per_minute: 1000000000, auth_per_account_per_minute: 1000000000}\n"

// writeConfig writes a qq.yaml into dir and returns its path.
func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, "qq.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const filtersYAML = `
filters:
  - plugin: antispam
    config:
      flood: {max_messages: 5, window: 10s}
  - plugin: wordfilter
    config:
      lists:
        - {name: rude, action: mask, words: [darn, 笨蛋]}
        - {name: shops, action: reject, reason: "no follower shops", words: [buy followers]}
`

// pluginPIDs returns the pids of ppid's children whose command line
// contains "plugin".
func pluginPIDs(t *testing.T, ppid int) map[string]int {
	t.Helper()
	out := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		fields := strings.Fields(rest)
		if len(fields) < 2 || fields[1] != strconv.Itoa(ppid) || fields[0] == "Z" {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		for i, a := range args {
			if (a == "plugin" || a == "test-plugin") && i+1 < len(args) {
				out[args[i+1]] = pid
			}
		}
	}
	return out
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

func dialClient(t *testing.T, addr, user string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	c, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Register(ctx, user, user+"-password"); err != nil && !errors.Is(err, &protocol.Error{Code: protocol.CodeUserExists}) {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, user, user+"-password"); err != nil {
		t.Fatal(err)
	}
	return c
}

func errCode(err error) protocol.Code {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestPluginsEndToEnd runs qqd with its real plugins as subprocesses: a
// masked word arrives masked, a rejected phrase gets rejected with the
// list's reason, a flood is cut.
func TestPluginsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startQQD(t, dir, "-config", writeConfig(t, dir, filtersYAML))
	pids := pluginPIDs(t, p.cmd.Process.Pid)
	for _, name := range []string{defaultStorage, "antispam", "wordfilter"} {
		if pids[name] == 0 {
			t.Fatalf("plugin %s is not running as a subprocess of qqd (children: %v)", name, pids)
		}
	}
	ctx := t.Context()
	alice := dialClient(t, p.addr, "alice")
	bob := dialClient(t, p.addr, "bob")

	r, err := alice.Send(ctx, "bob", "well DARN it, 你这个笨蛋!")
	if err != nil || r.Body != "well **** it, 你这个**!" {
		t.Fatalf("masked send = %+v, %v", r, err)
	}
	if m := <-bob.Messages(); m.Body != "well **** it, 你这个**!" {
		t.Fatalf("bob got %q", m.Body)
	}
	_, err = alice.Send(ctx, "bob", "Buy   followers cheap")
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeRejected || pe.Message != "no follower shops" {
		t.Fatalf("rejected send: %v", err)
	}
	// The flood limit is 5 accepted messages in 10 s; 2 were sent (one was
	// rejected and does not count).
	for i := range 3 {
		if _, err := alice.Send(ctx, "bob", fmt.Sprint("ok ", i)); err != nil {
			t.Fatalf("send %d under the limit: %v", i, err)
		}
	}
	if _, err := alice.Send(ctx, "bob", "one too many"); errCode(err) != protocol.CodeRejected {
		t.Fatalf("flood send: %v, want rejected", err)
	}
	// Bob is not limited by alice's flood.
	if _, err := bob.Send(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
}

// sendLoad runs n clients that send to each other with cids until stop
// closes, and records every message acknowledged with ok.
type sendLoad struct {
	mu     sync.Mutex
	acked  map[string][]string // recipient -> msg_ids acknowledged to senders
	errors map[protocol.Code]int
	other  int
	wg     sync.WaitGroup
	n      int
}

func startLoad(t *testing.T, addr string, n int, stop <-chan struct{}) *sendLoad {
	l := &sendLoad{acked: map[string][]string{}, errors: map[protocol.Code]int{}, n: n}
	cs := make([]*client.Client, n)
	for i := range cs {
		cs[i] = dialClient(t, addr, fmt.Sprintf("load%d", i))
	}
	for i, c := range cs {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			go func() { // drain pushes
				for range c.Messages() {
				}
			}()
			to := fmt.Sprintf("load%d", (i+1)%n)
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, err := c.SendCID(ctx, to, fmt.Sprintf("m%d", seq), fmt.Sprintf("load%d-%d", i, seq))
				cancel()
				l.mu.Lock()
				switch {
				case err == nil:
					l.acked[to] = append(l.acked[to], r.MsgID)
				case errCode(err) != "":
					l.errors[errCode(err)]++
				default:
					l.other++
				}
				l.mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

// checkHistory checks that every acknowledged message is in its
// recipient's history exactly once.
func (l *sendLoad) checkHistory(t *testing.T, addr string) (total int) {
	t.Helper()
	ctx := t.Context()
	for to, ids := range l.acked {
		c := dialClient(t, addr, to)
		count := map[string]int{}
		before := ""
		// History with the sender: load(i) receives from load(i-1).
		n := 0
		fmt.Sscanf(to, "load%d", &n)
		from := fmt.Sprintf("load%d", (n+l.n-1)%l.n)
		for {
			msgs, more, err := c.History(ctx, from, before, 500)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				count[m.ID]++
			}
			if !more || len(msgs) == 0 {
				break
			}
			before = msgs[0].ID
		}
		for _, id := range ids {
			if count[id] != 1 {
				t.Errorf("acknowledged message %s to %s is in history %d times", id, to, count[id])
			}
		}
		total += len(ids)
	}
	return total
}

// TestStoragePluginKilled kills the storage plugin with SIGKILL while ten
// clients send: it comes back, every acknowledged message is in history
// exactly once, and the others got errors.
func TestStoragePluginKilled(t *testing.T) {
	dir := t.TempDir()
	p := startQQD(t, dir, "-config", writeConfig(t, dir, "filters: []\n"+loadLimitsYAML))
	stop := make(chan struct{})
	load := startLoad(t, p.addr, 10, stop)
	time.Sleep(300 * time.Millisecond)
	for round := range 2 {
		pid := pluginPIDs(t, p.cmd.Process.Pid)[defaultStorage]
		if pid == 0 {
			t.Fatalf("round %d: no %s plugin", round, defaultStorage)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		p.waitLog(t, fmt.Sprintf(`plugin restarted.* plugin=%s .*restarts=%d`, defaultStorage, round+1))
		time.Sleep(300 * time.Millisecond)
	}
	close(stop)
	load.wg.Wait()
	total := load.checkHistory(t, p.addr)
	t.Logf("acknowledged %d messages; errors %v; other failures %d", total, load.errors, load.other)
	if total == 0 || load.errors[protocol.CodeUnavailable] == 0 {
		t.Fatalf("want acknowledged sends and unavailable errors; got %d acked, errors %v", total, load.errors)
	}
	for code := range load.errors {
		if code != protocol.CodeUnavailable {
			t.Errorf("unexpected error code %s", code)
		}
	}
}

// TestFilterPluginKilledAndHung: SIGKILL of a filter plugin applies its
// on_failure policy until it is back; a filter that never answers hits its
// deadline, the policy applies, and it is restarted as hung.
func TestFilterPluginKilledAndHung(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
filters:
  - plugin: wordfilter
    on_failure: reject
    config: {lists: [{words: [darn]}]}
  - name: sleepy
    command: [%q, "test-plugin", "sleepfilter"]
    on_failure: allow
    timeout: 200ms
`, os.Args[0])
	p := startQQD(t, dir, "-config", writeConfig(t, dir, cfg))
	ctx := t.Context()
	alice := dialClient(t, p.addr, "alice")
	dialClient(t, p.addr, "bob")

	// sleepy never answers: after its deadline, allow.
	start := time.Now()
	if _, err := alice.Send(ctx, "bob", "through a hung filter"); err != nil {
		t.Fatalf("send past a hung on_failure=allow filter: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("send took %v: the filter deadline did not apply", d)
	}
	// A second deadline in a row: taken for hung, killed and restarted.
	alice.Send(ctx, "bob", "again")
	p.waitLog(t, `plugin restarted.* plugin=sleepy`)

	// wordfilter killed: fail closed until it is back.
	pid := pluginPIDs(t, p.cmd.Process.Pid)["wordfilter"]
	syscall.Kill(pid, syscall.SIGKILL)
	for !p.logged(`plugin down; restarting.* plugin=wordfilter`) {
		_, err := alice.Send(ctx, "bob", "during outage")
		if err != nil && errCode(err) != protocol.CodeUnavailable {
			t.Fatalf("send while the filter is down: %v, want unavailable or ok", err)
		}
		if err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.waitLog(t, `plugin restarted.* plugin=wordfilter`)
	r, err := alice.Send(ctx, "bob", "darn, it is back")
	if err != nil || r.Body != "****, it is back" {
		t.Fatalf("after restart: %+v, %v", r, err)
	}
}

// TestGarbageFilterPlugin: a filter plugin that answers with an oversized
// rewrite, the wrong number of verdicts or an unknown action fails closed
// for that batch; the server keeps serving, and sane messages pass.
func TestGarbageFilterPlugin(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("filters:\n  - name: garbage\n    command: [%q, \"test-plugin\", \"garbagefilter\"]\n", os.Args[0])
	p := startQQD(t, dir, "-config", writeConfig(t, dir, conf))
	ctx := t.Context()
	alice := dialClient(t, p.addr, "alice")
	bob := dialClient(t, p.addr, "bob")
	for _, body := range []string{"huge", "count", "action"} {
		if _, err := alice.Send(ctx, "bob", body); errCode(err) != protocol.CodeUnavailable {
			t.Errorf("send %q through a garbage filter: %v, want unavailable", body, err)
		}
		if r, err := alice.Send(ctx, "bob", "fine after "+body); err != nil || r.Body != "" {
			t.Fatalf("a sane message after %q: %+v, %v", body, r, err)
		}
		if m := <-bob.Messages(); m.Body != "fine after "+body {
			t.Fatalf("bob got %q", m.Body)
		}
	}
}

// TestReload: SIGHUP with a new filter chain while clients send drops no
// connection and loses no acknowledged message; an invalid qq.yaml keeps
// the running configuration.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "filters:\n  - plugin: wordfilter\n    config: {lists: [{words: [darn]}]}\n"+loadLimitsYAML)
	p := startQQD(t, dir, "-config", path)
	ctx := t.Context()
	alice := dialClient(t, p.addr, "alice")
	dialClient(t, p.addr, "bob")
	if r, _ := alice.Send(ctx, "bob", "darn heck"); r.Body != "**** heck" {
		t.Fatalf("before reload: %+v", r)
	}
	storagePID := pluginPIDs(t, p.cmd.Process.Pid)[defaultStorage]

	stop := make(chan struct{})
	load := startLoad(t, p.addr, 5, stop)
	time.Sleep(200 * time.Millisecond)
	writeConfig(t, dir, "filters:\n  - plugin: wordfilter\n    config: {lists: [{words: [heck]}]}\n"+loadLimitsYAML)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `reload done`)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	load.wg.Wait()
	if len(load.errors) != 0 || load.other != 0 {
		t.Fatalf("sends failed across the reload: %v, other %d", load.errors, load.other)
	}
	total := load.checkHistory(t, p.addr)
	t.Logf("%d messages acknowledged across the reload", total)
	if r, err := alice.Send(ctx, "bob", "darn heck"); err != nil || r.Body != "darn ****" {
		t.Fatalf("after reload: %+v, %v", r, err)
	}
	if got := pluginPIDs(t, p.cmd.Process.Pid)[defaultStorage]; got != storagePID {
		t.Errorf("storage plugin restarted by a filter-only reload: pid %d -> %d", storagePID, got)
	}

	// An invalid file: every problem logged, the running chain stays.
	writeConfig(t, dir, "filters:\n  - plugin: wordfilter\n    on_failure: maybe\nlimits: {max_body_bytes: 1}\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `reload refused`)
	if !p.logged(`on_failure`) || !p.logged(`max_body_bytes`) {
		t.Error("not every problem of the invalid configuration was logged")
	}
	if r, err := alice.Send(ctx, "bob", "darn heck"); err != nil || r.Body != "darn ****" {
		t.Fatalf("after a refused reload: %+v, %v", r, err)
	}
	if _, err := alice.Users(ctx); err != nil {
		t.Fatalf("connection dropped: %v", err)
	}
}

// TestNoPluginOutlivesQQD kills qqd with SIGKILL: its plugins notice and
// exit.
func TestNoPluginOutlivesQQD(t *testing.T) {
	p := startQQD(t, t.TempDir())
	pids := pluginPIDs(t, p.cmd.Process.Pid)
	if len(pids) != 3 {
		t.Fatalf("plugins: %v", pids)
	}
	p.signal(t, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for name, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("plugin %s (pid %d) outlived qqd", name, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestReloadKeepsUnchangedFilters: a reload that changes one filter
// restarts only that filter (antispam keeps its process, and so its flood
// state); a reload with nothing changed and a reload refused because a
// plugin does not start each log their one documented line.
func TestReloadKeepsUnchangedFilters(t *testing.T) {
	dir := t.TempDir()
	chain := func(word string) string {
		return "filters:\n  - plugin: antispam\n  - plugin: wordfilter\n    config: {lists: [{words: [" + word + "]}]}\n" + loadLimitsYAML
	}
	path := writeConfig(t, dir, chain("darn"))
	p := startQQD(t, dir, "-config", path)
	before := pluginPIDs(t, p.cmd.Process.Pid)
	if before["antispam"] == 0 || before["wordfilter"] == 0 || before[defaultStorage] == 0 {
		t.Fatalf("plugins before the reload: %v", before)
	}

	writeConfig(t, dir, chain("heck"))
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `reload done.*filters_started=\[wordfilter\] filters_kept=\[antispam\] filters_stopped=\[wordfilter\]`)
	after := pluginPIDs(t, p.cmd.Process.Pid)
	if after["antispam"] != before["antispam"] || after[defaultStorage] != before[defaultStorage] {
		t.Errorf("unchanged plugins restarted: before %v, after %v", before, after)
	}
	if after["wordfilter"] == before["wordfilter"] || after["wordfilter"] == 0 {
		t.Errorf("the changed wordfilter kept its process: before %v, after %v", before, after)
	}
	alice := dialClient(t, p.addr, "alice")
	dialClient(t, p.addr, "bob")
	if r, err := alice.Send(t.Context(), "bob", "darn heck"); err != nil || r.Body != "darn ****" {
		t.Fatalf("after the reload: %+v, %v", r, err)
	}

	// Nothing changed: one line says the reload finished.
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `reload done.*filters_started=\[\] filters_kept="\[antispam wordfilter\]" filters_stopped=\[\]`)

	// A dry run (qqadmin reload --dry-run) says what a reload would do
	// and changes nothing.
	adm, err := admin.Dial(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	writeConfig(t, dir, chain("gosh"))
	plan, err := adm.CheckReload(t.Context())
	if err != nil || plan.StorageRestarted || !slices.Equal(plan.FiltersStarted, []string{"wordfilter"}) ||
		!slices.Equal(plan.FiltersKept, []string{"antispam"}) || !slices.Equal(plan.FiltersStopped, []string{"wordfilter"}) {
		t.Errorf("CheckReload = %+v, %v; want wordfilter started and stopped, antispam kept", plan, err)
	}
	if got := pluginPIDs(t, p.cmd.Process.Pid); got["antispam"] != after["antispam"] || got["wordfilter"] != after["wordfilter"] {
		t.Errorf("a dry run touched the running filters: %v, want %v", got, after)
	}
	if r, err := alice.Send(t.Context(), "bob", "gosh heck"); err != nil || r.Body != "gosh ****" {
		t.Fatalf("after the dry run: %+v, %v", r, err)
	}

	// A filter that does not start: refused, the running chain stays.
	writeConfig(t, dir, "filters:\n  - plugin: antispam\n  - plugin: wordfilter\n    config: {lists: [{words: [heck]}]}\n"+
		"  - command: [/does/not/exist/qq-filter]\n"+loadLimitsYAML)
	var ae *admin.APIError
	if _, err := adm.CheckReload(t.Context()); !errors.As(err, &ae) || ae.Code != admin.CodeReloadRefused || !strings.Contains(ae.Message, "qq-filter") {
		t.Errorf("CheckReload of a filter that cannot start = %v, want reload_refused naming it", err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `reload refused: a plugin did not start; keeping the running plugins`)
	if got := pluginPIDs(t, p.cmd.Process.Pid); got["antispam"] != after["antispam"] || got["wordfilter"] != after["wordfilter"] {
		t.Errorf("a refused reload touched the running filters: %v, want %v", got, after)
	}
	if r, err := alice.Send(t.Context(), "bob", "darn heck"); err != nil || r.Body != "darn ****" {
		t.Fatalf("after the refused reload: %+v, %v", r, err)
	}
}
