package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
)

// TestMain lets the test binary act as qqd itself when QQ_TEST_RUN_AS_QQD is
// set, so subprocess tests run the real main without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("QQ_TEST_RUN_AS_QQD") == "1" {
		if len(os.Args) > 1 && os.Args[1] == "test-plugin" {
			serveTestPlugin(os.Args[2:])
			os.Exit(0)
		}
		if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "qqd:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	pg = pgtesting.NewLazy() // before TMPDIR turns private
	code := daemontest.RunWithPrivateTmp(m)
	if err := pg.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close PostgreSQL:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// pg is the PostgreSQL server of the tests that need one, started on
// first use; owned by TestMain.
var pg *pgtesting.Lazy

// defaultStorage is the storage plugin qqd runs on its embedded defaults:
// the tests that start qqd without choosing one run on it.
const defaultStorage = "pebble"

// openDataStore opens, in process, the store that the built-in storage
// plugin named storage keeps in dataDir with its default settings, as qqd
// would open it (qqd must not be running): for tests that seed a data
// directory or read what a stopped qqd stored. fast turns sqlite's fsync
// off (synchronous off), to seed many users quickly; pebble keeps its
// default. The caller closes it.
func openDataStore(tb testing.TB, dataDir, storage string, fast bool) plugins.Storage {
	tb.Helper()
	conf := config.StorageDefaults(storage)
	if fast && storage == "sqlite" {
		conf["synchronous"] = "off"
	}
	js, err := json.Marshal(conf)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := builtins().Storages[storage](plugins.Env{DataDir: dataDir}, js)
	if err != nil {
		tb.Fatalf("open the %s store in %s: %v", storage, dataDir, err)
	}
	return st
}

// qqdProc is a qqd child process.
type qqdProc struct {
	cmd  *exec.Cmd
	addr string
	exit chan error

	mu  sync.Mutex
	log []string
}

// logLines returns the log so far.
func (p *qqdProc) logLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// logged reports whether a log line matching re was written.
func (p *qqdProc) logged(re string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.log {
		if regexp.MustCompile(re).MatchString(l) {
			return true
		}
	}
	return false
}

// waitLog waits until a log line matches re.
func (p *qqdProc) waitLog(t *testing.T, re string) {
	t.Helper()
	deadline := time.Now().Add(daemontest.Timeout)
	for !p.logged(re) {
		if time.Now().After(deadline) {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("no log line matches %q; log:\n%s", re, strings.Join(p.log, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var listenRE = regexp.MustCompile(`msg="qqd starting" .* listen=(\S+)`)

// startQQD starts qqd on dataDir with a free loopback port and waits until
// it listens.
func startQQD(t testing.TB, dataDir string, args ...string) *qqdProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-listen", "127.0.0.1:0", "-data-dir", dataDir}, args...)...)
	cmd.Env = append(os.Environ(), "QQ_TEST_RUN_AS_QQD=1", "QQD_METRICS__LISTEN=127.0.0.1:0", "QQD_WEB__LISTEN=127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &qqdProc{cmd: cmd, exit: make(chan error, 1)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exit
	})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			if testing.Verbose() {
				t.Log("qqd:", sc.Text())
			}
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.exit <- cmd.Wait()
	}()
	select {
	case p.addr = <-addrc:
	case err := <-p.exit:
		p.exit <- err
		t.Fatalf("qqd exited before listening: %v", err)
	case <-time.After(daemontest.Timeout):
		t.Fatal("qqd did not start listening")
	}
	return p
}

func (p *qqdProc) signal(t testing.TB, sig syscall.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.exit:
		p.exit <- err // for Cleanup
		return err
	case <-time.After(daemontest.Timeout):
		t.Fatalf("qqd did not exit after %v", sig)
		return nil
	}
}

// TestCrashRestart kills qqd with SIGKILL right after it acknowledged
// sends, restarts it on the same data, and checks that nothing
// acknowledged was lost and that cids are still recognised.
func TestCrashRestart(t *testing.T) {
	dir := t.TempDir()
	// 50 sends in a burst: lift antispam's flood limit.
	conf := writeConfig(t, dir, "filters:\n  - plugin: antispam\n    config: {flood: {max_messages: 1000}}\n")
	p := startQQD(t, dir, "-config", conf)
	alice := daemontest.DialRaw(t, p.addr)
	alice.Expect(`{"type":"hello"}`)
	alice.Register("alice", "alice-password")
	alice.Register("bob", "bob-password")
	alice.Login("alice", "alice-password")
	const n = 50
	ids := make([]string, n)
	for i := range n {
		alice.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"bob","body":"m%d","cid":"c%d"}`, i, i, i))
		ids[i] = alice.Expect(fmt.Sprintf(`{"type":"ok","id":%d,"status":"queued"}`, i)).MsgID
	}
	if err := p.signal(t, syscall.SIGKILL); err == nil {
		t.Fatal("qqd exited cleanly after SIGKILL?")
	}

	p = startQQD(t, dir, "-config", conf)
	bob := daemontest.DialRaw(t, p.addr)
	bob.Expect(`{"type":"hello"}`)
	if got := bob.Login("bob", "bob-password"); got != n {
		t.Fatalf("pending after crash = %d, want %d", got, n)
	}
	bob.Send(`{"type":"offline","id":"o"}`)
	page := bob.Expect(`{"type":"ok","id":"o","more":false}`)
	for i, m := range page.Messages {
		if m.ID != ids[i] || m.Body != fmt.Sprintf("m%d", i) || m.From != "alice" {
			t.Fatalf("offline[%d] = %+v, want id %s", i, m, ids[i])
		}
	}
	alice = daemontest.DialRaw(t, p.addr)
	alice.Expect(`{"type":"hello"}`)
	alice.Login("alice", "alice-password")
	alice.Send(`{"type":"send","id":"retry","to":"bob","body":"m7","cid":"c7"}`)
	if got := alice.Expect(`{"type":"ok","id":"retry","status":"queued"}`).MsgID; got != ids[7] {
		t.Fatalf("cid retry after crash = %s, want %s", got, ids[7])
	}
	bob.ExpectSilence(200 * time.Millisecond)
}

// TestGracefulShutdown checks SIGTERM: clients get kicked "shutdown" and
// qqd exits 0.
func TestGracefulShutdown(t *testing.T) {
	p := startQQD(t, t.TempDir())
	c := daemontest.DialRaw(t, p.addr)
	c.Expect(`{"type":"hello"}`)
	c.Register("alice", "alice-password")
	c.Login("alice", "alice-password")
	if err := p.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("qqd exit after SIGTERM: %v", err)
	}
	c.Expect(`{"type":"kicked","reason":"shutdown"}`)
	c.ExpectClosed()
}

// TestShutdownStoresWhatItRead: SIGTERM in the middle of a burst of
// pipelined sends. Every send qqd read is stored and answered ok (the
// plugins stop only after the daemon has drained), none is answered
// unavailable, and each ok'd message is in the store after a restart.
func TestShutdownStoresWhatItRead(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, dir, crashConfigYAML) // no flood or rate limits
	p := startQQD(t, dir, "-config", conf)
	c := daemontest.DialRaw(t, p.addr)
	c.Expect(`{"type":"hello"}`)
	c.Register("alice", "alice-password")
	c.Login("alice", "alice-password")
	const n = 400
	var burst strings.Builder
	for i := range n {
		fmt.Fprintf(&burst, `{"type":"send","id":%d,"to":"alice","body":"m%d","cid":"c%d"}`+"\n", i, i, i)
	}
	c.SendRaw([]byte(burst.String()))
	c.Expect(`{"type":"ok","id":0}`) // the burst is being read
	p.cmd.Process.Signal(syscall.SIGTERM)
	oks := 1
	for {
		f := c.Read()
		if f.Type == protocol.TypeKicked {
			break
		}
		if f.Type == protocol.TypeMsg {
			continue
		}
		if f.Type != protocol.TypeOK {
			t.Fatalf("reply during shutdown: %+v", f)
		}
		oks++
	}
	if err := p.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("qqd exit after SIGTERM: %v", err)
	}
	p = startQQD(t, dir, "-config", conf)
	c = daemontest.DialRaw(t, p.addr)
	c.Expect(`{"type":"hello"}`)
	c.Login("alice", "alice-password")
	c.Send(`{"type":"history","id":"h","with":"alice","limit":500}`)
	if f := c.Expect(`{"type":"ok","id":"h"}`); len(f.Messages) < oks {
		t.Fatalf("%d sends answered ok, %d stored", oks, len(f.Messages))
	}
	t.Logf("%d of %d sends read and stored before the shutdown", oks, n)
}

// runQQD runs the test binary as qqd with args (plugins served by the
// same binary) and returns its stdout, stderr and exit error.
func runQQD(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), daemontest.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "QQ_TEST_RUN_AS_QQD=1")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestCheckConfig: qqd -t accepts the shipped and default configurations
// after starting their plugins, and fails on every configuration that
// would then fail to start, including ones whose problem only a plugin
// sees (issue: a false "configuration ok" becomes an outage).
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	file := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // regexp of stderr; "" means success
	}{
		{"defaults", []string{"-t"}, ""},
		{"shipped qq.yaml", []string{"-check-config", "-config", "../../qq.yaml"}, ""},
		{"bad listen", []string{"-t", "-listen", "nonsense"}, "listen"},
		{"missing file", []string{"-t", "-config", "/does/not/exist.yaml"}, "exist"},
		{"stray argument", []string{"stray"}, "unexpected argument"},
		{"wordfilter action ban", []string{"-t", "-config", file("ban.yaml",
			"filters:\n  - plugin: wordfilter\n    config: {lists: [{words: [darn], action: ban}]}\n")}, `filter wordfilter: .*action`},
		{"missing command", []string{"-t", "-config", file("missing.yaml",
			"filters:\n  - command: [/does/not/exist/qq-filter]\n")}, `filter qq-filter: .*(no such file|not found)`},
		{"relative command", []string{"-t", "-config", file("relative.yaml",
			"filters:\n  - command: [qq-no-such-filter-on-path]\n")}, `filter qq-no-such-filter-on-path: .*not found`},
		{"bad storage config", []string{"-t", "-config", file("storage.yaml",
			"storage:\n  config: {no_such_key: 1}\n")}, `storage pebble: .*no_such_key`},
		// sqlite gets its own defaults, none of pebble's keys.
		{"sqlite chosen", []string{"-t", "-config", file("sqlite.yaml", "storage: {plugin: sqlite}\n")}, ""},
		{"sqlite chosen, a setting of its own", []string{"-t", "-config", file("sqlite2.yaml",
			"storage: {plugin: sqlite, config: {synchronous: normal}}\n")}, ""},
		{"bad sqlite config", []string{"-t", "-config", file("sqlite3.yaml",
			"storage:\n  plugin: sqlite\n  config: {no_such_key: 1}\n")}, `storage sqlite: .*no_such_key`},
		{"web tls without a certificate", []string{"-t", "-config", file("webtls.yaml", "web: {tls: true}\n")},
			`web.tls: needs tls.cert_file and tls.key_file`},
		{"web tls with missing files", []string{"-t", "-config", file("webtls2.yaml",
			"web: {tls: true}\ntls: {cert_file: /does/not/exist.pem, key_file: /does/not/exist.key}\n")}, `tls: load /does/not/exist.pem`},
		{"web origin allowing all", []string{"-t", "-config", file("origins.yaml", "web: {allowed_origins: ['*']}\n")},
			`web.allowed_origins: "\*" would allow every origin`},
		{"every problem at once", []string{"-t", "-config", file("two.yaml",
			"filters:\n  - plugin: wordfilter\n    config: {lists: [{words: [darn], action: ban}]}\n  - command: [/does/not/exist/qq-filter]\n")},
			`(?s)filter wordfilter: .*filter qq-filter: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runQQD(t, tc.args...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("qqd %q: %v\n%s", tc.args, err, stderr)
			case tc.wantErr == "" && !strings.HasPrefix(stdout, "configuration ok"):
				t.Errorf("qqd %q printed %q, want configuration ok", tc.args, stdout)
			case tc.wantErr != "" && (err == nil || !regexp.MustCompile(tc.wantErr).MatchString(stderr)):
				t.Errorf("qqd %q = %v, stderr %q; want a failure matching %q", tc.args, err, stderr, tc.wantErr)
			}
		})
	}
	var out strings.Builder
	if err := run([]string{"-version"}, &out, io.Discard); err != nil || !regexp.MustCompile(`^qqd \d+\.\d+\.\d+`).MatchString(out.String()) {
		t.Errorf("-version printed %q, %v", out.String(), err)
	}
}

// transports maps each online user to the transport of their sessions
// (tcp, tls, ws), as qqadmin users lists them; a user with sessions on
// several transports gets them joined with "+".
func transports(ctx context.Context, t *testing.T, adm *admin.Client) map[string]string {
	t.Helper()
	users, err := adm.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	via := map[string]string{}
	for _, u := range users {
		var ts []string
		for _, s := range u.Sessions {
			ts = append(ts, s.Transport)
		}
		via[u.User] = strings.Join(ts, "+")
	}
	return via
}
