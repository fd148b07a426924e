package sqlitestore_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// crashChildEnv names the database a TestCrashChild process writes to.
const crashChildEnv = "QQ_SQLITESTORE_CRASH_CHILD_DB"

// TestCrashChild is not a test: it is the process TestCrashRecovery kills.
// It writes batches until killed (or for at most 20 s) and prints, after
// each Write returns, one line "ok <cid> <msg_id>" per message.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: path, DedupWindow: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		var msgs []plugins.NewMessage
		for j := range 4 {
			msgs = append(msgs, nm("alice", "bob", fmt.Sprintf("body %d/%d", i, j), fmt.Sprintf("c%d-%d", i, j)))
		}
		res, err := s.Write(ctx, &plugins.WriteBatch{Messages: msgs})
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for j, r := range res {
			fmt.Fprintf(&out, "ok %s %s\n", msgs[j].CID, r.Message.ID)
		}
		os.Stdout.WriteString(out.String()) // one write: never a torn batch
	}
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	t.Parallel()
	const killAfter = 40 // acknowledged messages before SIGKILL
	path := filepath.Join(t.TempDir(), "qq.db")
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var killOnce sync.Once
	kill := func() { killOnce.Do(func() { _ = cmd.Process.Signal(syscall.SIGKILL) }) }
	var waitOnce sync.Once
	var waitErr error
	wait := func() error {
		waitOnce.Do(func() { waitErr = cmd.Wait() })
		return waitErr
	}
	t.Cleanup(func() { kill(); _ = wait() })
	watchdog := time.AfterFunc(30*time.Second, kill) // never hang on the pipe
	defer watchdog.Stop()

	acked := map[string]string{} // cid -> msg_id
	var order []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ok" {
			continue // test framework output
		}
		acked[f[1]] = f[2]
		order = append(order, f[1])
		if len(acked) == killAfter {
			kill() // mid-way; lines already in the pipe are still read
		}
	}
	err = wait()
	if len(acked) < killAfter {
		t.Fatalf("child acknowledged %d messages before exiting (%v); stderr:\n%s", len(acked), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v; stderr:\n%s", err, stderr.String())
	}
	t.Logf("child acknowledged %d messages before SIGKILL", len(acked))

	s2 := openAt(t, path, nil)
	var retry []plugins.NewMessage
	for _, cid := range order {
		retry = append(retry, nm("alice", "bob", "retry", cid))
	}
	res := send(t, s2, retry...)
	for i, r := range res {
		if !r.Duplicate || r.Message.ID != acked[order[i]] {
			t.Errorf("cid %s: retry = %+v, want duplicate of %s", order[i], r, acked[order[i]])
		}
	}
	// Every acknowledged message is pending for bob, in acknowledgement order.
	p, _, err := s2.Pending(ctx, "bob", len(order)+1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) < len(order) {
		t.Fatalf("bob has %d pending, want at least %d", len(p), len(order))
	}
	for i, cid := range order {
		if p[i].ID != acked[cid] {
			t.Fatalf("pending %d = %s, want %s", i, p[i].ID, acked[cid])
		}
	}
}
