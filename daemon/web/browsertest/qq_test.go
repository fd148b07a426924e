package browsertest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
)

// TestChatWithQQTerminal: a browser and the qq terminal client, the real
// binary built for the test, chat both ways over the same qqd.
func TestChatWithQQTerminal(t *testing.T) {
	e := newEnv(t)
	qq := buildQQ(t)
	a := e.open("alice")
	a.register("alice")
	e.tcpUser("bob", true).Close()

	cmd := exec.Command(qq, "--addr", e.srv.Addr, "--user", "bob", "chat")
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "QQ_PASSWORD="+password, "HOME="+home, "XDG_CONFIG_HOME="+home)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out daemontest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	io.WriteString(stdin, "/msg alice hello from a terminal <b>not bold</b>\n")
	a.openConv("u:bob")
	a.waitShown("hello from a terminal <b>not bold</b>")
	a.send("hello from a browser")
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(out.String(), "hello from a browser") {
		if time.Now().After(deadline) {
			t.Fatalf("qq never showed the browser's message; its output:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	io.WriteString(stdin, "/quit\n")
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("qq /quit: %v; output:\n%s", err, out.String())
		}
	case <-time.After(waitTimeout):
		t.Errorf("qq did not exit after /quit; output:\n%s", out.String())
	}
}

// buildQQ builds the qq binary into a temporary directory.
func buildQQ(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qq")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/qqchat/qq/client/qq")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build qq: %v\n%s", err, out)
	}
	return bin
}
