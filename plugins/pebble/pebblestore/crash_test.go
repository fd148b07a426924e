package pebblestore_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
)

// crashChildEnv names the database a TestCrashChild process writes to.
const crashChildEnv = "QQ_PEBBLESTORE_CRASH_CHILD_DB"

// TestCrashChild is not a test: it is the process TestCrashRecovery kills.
// It writes batches until killed (or for at most 20 s): four messages to
// bob, and an ack of the first message of the batch before. After each
// Write returns it prints one line "ok <cid> <msg_id>" per message and
// one "acked <msg_id>" for the ack, in one write.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	ctx := context.Background()
	s, err := pebblestore.Open(ctx, pebblestore.Options{Path: path, DedupWindow: 24 * time.Hour, CacheSize: 8 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(20 * time.Second)
	var prev string
	for i := 0; time.Now().Before(deadline); i++ {
		var msgs []plugins.NewMessage
		for j := range 4 {
			msgs = append(msgs, nm("alice", "bob", fmt.Sprintf("body %d/%d", i, j), fmt.Sprintf("c%d-%d", i, j)))
		}
		b := &plugins.WriteBatch{Messages: msgs}
		if prev != "" {
			b.Acks = []plugins.Ack{{User: "bob", MsgIDs: []string{prev}}}
		}
		res, err := s.Write(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for j, r := range res {
			fmt.Fprintf(&out, "ok %s %s\n", msgs[j].CID, r.Message.ID)
		}
		if prev != "" {
			fmt.Fprintf(&out, "acked %s\n", prev)
		}
		os.Stdout.WriteString(out.String()) // one write: never a torn batch
		prev = res[0].Message.ID
	}
}

// TestCrashRecovery kills a writing process with SIGKILL: after a reopen,
// every message a Write acknowledged is stored (a retry is a duplicate),
// pending in order unless an acknowledged Write acked it, and the counts
// rebuilt at Open agree with Pending.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	t.Parallel()
	const killAfter = 200 // acknowledged messages before SIGKILL
	path := filepath.Join(t.TempDir(), "qq.pebble")
	ctx := context.Background()
	s := openAt(t, path, nil)
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

	stored := map[string]string{} // cid -> msg_id
	var order []string            // cids
	acked := map[string]bool{}    // msg_ids acked by an acknowledged Write
	var lastFirst string          // the first message of the last batch: an ack in flight may name it
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "ok":
			stored[f[1]] = f[2]
			order = append(order, f[1])
			if strings.HasSuffix(f[1], "-0") {
				lastFirst = f[2]
			}
		case len(f) == 2 && f[0] == "acked":
			acked[f[1]] = true
		default:
			continue // test framework output
		}
		if len(stored) == killAfter {
			kill() // mid-way; lines already in the pipe are still read
		}
	}
	err = wait()
	if len(stored) < killAfter {
		t.Fatalf("child acknowledged %d messages before exiting (%v); stderr:\n%s", len(stored), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v; stderr:\n%s", err, stderr.String())
	}
	t.Logf("child acknowledged %d messages and %d acks before SIGKILL", len(stored), len(acked))

	s2 := openAt(t, path, nil)
	var retry []plugins.NewMessage
	for _, cid := range order {
		retry = append(retry, nm("alice", "bob", "retry", cid))
	}
	res := send(t, s2, retry...)
	for i, r := range res {
		if !r.Duplicate || r.Message.ID != stored[order[i]] {
			t.Fatalf("cid %s: retry = %+v, want duplicate of %s", order[i], r, stored[order[i]])
		}
	}
	// Pending: the acknowledged messages not acked, in order; or, if the
	// batch in flight landed (whole: its four messages and its ack of the
	// last acknowledged batch's first message), those without that one
	// and then the four.
	p, _, err := s2.Pending(ctx, "bob", len(order)+1000)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, cid := range order {
		if id := stored[cid]; !acked[id] {
			want = append(want, id)
		}
	}
	got := make([]string, 0, len(p))
	for _, m := range p {
		got = append(got, m.ID)
	}
	landed := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return id == lastFirst })
	if !slices.Equal(got, want) && (len(got) != len(landed)+4 || !slices.Equal(got[:len(landed)], landed)) {
		t.Fatalf("Pending(bob) after the crash = %v\nwant %v\nor, with the batch in flight, %v and 4 more", got, want, landed)
	}
	t.Logf("the batch in flight landed: %v", !slices.Equal(got, want))
	n, err := s2.PendingCount(ctx, "bob")
	if err != nil || n != int64(len(p)) {
		t.Errorf("PendingCount(bob) = %d, %v; want %d (rebuilt at Open)", n, err, len(p))
	}
	all, err := s2.CountPending(ctx)
	if err != nil || all != n {
		t.Errorf("CountPending = %d, %v; want %d", all, err, n)
	}
	if users, err := s2.CountUsers(ctx); err != nil || users != 2 {
		t.Errorf("CountUsers = %d, %v; want 2", users, err)
	}
}
