package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
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
	os.Exit(daemontest.RunWithPrivateTmp(m))
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
func startQQD(t *testing.T, dataDir string, args ...string) *qqdProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-listen", "127.0.0.1:0", "-data-dir", dataDir}, args...)...)
	cmd.Env = append(os.Environ(), "QQ_TEST_RUN_AS_QQD=1", "QQD_METRICS__LISTEN=127.0.0.1:0")
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

func (p *qqdProc) signal(t *testing.T, sig syscall.Signal) error {
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

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-t"}, ""},
		{[]string{"-check-config", "-config", "../../qq.yaml"}, ""},
		{[]string{"-t", "-listen", "nonsense"}, "listen"},
		{[]string{"-t", "-config", "/does/not/exist.yaml"}, "exist"},
		{[]string{"stray"}, "unexpected argument"},
	} {
		var out, errOut strings.Builder
		err := run(tc.args, &out, &errOut)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("run(%q) = %v", tc.args, err)
		case tc.wantErr != "" && (err == nil || !regexp.MustCompile(tc.wantErr).MatchString(err.Error())):
			t.Errorf("run(%q) = %v, want error matching %q", tc.args, err, tc.wantErr)
		}
	}
	var out strings.Builder
	if err := run([]string{"-version"}, &out, io.Discard); err != nil || !regexp.MustCompile(`^qqd \d+\.\d+\.\d+`).MatchString(out.String()) {
		t.Errorf("-version printed %q, %v", out.String(), err)
	}
}
