package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/password"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

func fillConfig(db string, users, messages int) Config {
	c := DefaultConfig()
	c.Scenario = "fill"
	c.DB = db
	c.Users, c.Messages = users, messages
	return c
}

// TestFill fills a database of each storage twice and reads it back with
// the storage's own code.
func TestFill(t *testing.T) {
	t.Parallel()
	for _, storage := range []string{"sqlite", "pebble"} {
		t.Run(storage, func(t *testing.T) {
			t.Parallel()
			testFill(t, storage)
		})
	}
}

func testFill(t *testing.T, storage string) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "data", "qq."+storage)
	c := fillConfig(db, 10, 2000)
	c.Storage = storage
	c.Batch, c.PendingFraction = 300, 0.1
	r1, err := fill(ctx, c, daemontest.FastPasswords)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Messages != 2000 || r1.Batches != 7 || r1.UsersCreated != 10 || r1.PendingTotal != r1.LeftPending || r1.FileBytes == 0 {
		t.Fatalf("first fill: %+v", r1)
	}
	if r1.LeftPending < 100 || r1.LeftPending > 300 {
		t.Errorf("first fill left %d of 2000 pending, want about 200", r1.LeftPending)
	}
	// A second run appends.
	c.Messages, c.PendingFraction = 1000, 0
	r2, err := fill(ctx, c, daemontest.FastPasswords)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Messages != 1000 || r2.UsersCreated != 0 || r2.LeftPending != 0 || r2.PendingTotal != r1.LeftPending {
		t.Fatalf("second fill: %+v (first %+v)", r2, r1)
	}

	st, err := openFillStore(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.CountUsers(ctx); err != nil || n != 10 {
		t.Errorf("CountUsers = %d, %v; want 10", n, err)
	}
	var stored, pending int64
	for i := range 10 {
		for j := i + 1; j < 10; j++ {
			msgs, more, err := st.History(ctx, userName(i), userName(j), "", 3000)
			if err != nil || more {
				t.Fatalf("History(u%d, u%d) more %v: %v", i, j, more, err)
			}
			stored += int64(len(msgs))
		}
		n, err := st.PendingCount(ctx, userName(i))
		if err != nil {
			t.Fatal(err)
		}
		pending += n
	}
	if stored != 3000 || pending != r1.LeftPending {
		t.Errorf("stored %d messages, %d pending; want 3000, %d", stored, pending, r1.LeftPending)
	}
	h, err := st.PasswordHash(ctx, "u9")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := password.Verify(h, c.Password); !ok || err != nil {
		t.Errorf("Verify(hash of u9, %q) = %v, %v; want true", c.Password, ok, err)
	}
	st.Close()

	c.Password = "another-password"
	if _, err := fill(ctx, c, daemontest.FastPasswords); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("fill with another password: %v, want an error about the password", err)
	}
}

// TestFillRefusesOpenDB opens the database in another process (this test
// binary, as TestHelperHoldDB) and checks that fill refuses it.
func TestFillRefusesOpenDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "qq.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldDB$")
	cmd.Env = append(os.Environ(), "QQBENCH_HOLD_DB="+db)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper said %q, %v; stderr: %s", line, err, stderr.String())
	}
	_, err = fill(ctx, fillConfig(db, 2, 10), daemontest.FastPasswords)
	if want := fmt.Sprintf("open in process %d", cmd.Process.Pid); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("fill while the database is open elsewhere: %v, want an error saying %q", err, want)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v; stderr: %s", err, stderr.String())
	}
	if _, err := fill(ctx, fillConfig(db, 2, 10), daemontest.FastPasswords); err != nil {
		t.Fatalf("fill after the other process closed the database: %v", err)
	}
}

// TestHelperHoldDB is not a test: run by TestFillRefusesOpenDB, it opens
// the store at $QQBENCH_HOLD_DB, says "ready" and holds it until stdin
// closes.
func TestHelperHoldDB(t *testing.T) {
	path := os.Getenv("QQBENCH_HOLD_DB")
	if path == "" {
		t.Skip("helper process only")
	}
	st, err := sqlitestore.Open(context.Background(), sqlitestore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFillCommand(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "qq.db")
	var stdout, stderr bytes.Buffer
	// Through run: the flags, the output, and the Argon2id hash qqd uses.
	err := run(strings.Fields("fill --json --users 3 --messages 50 --batch 20 --db "+db), &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v; stderr: %s", err, stderr.String())
	}
	var r FillResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || r.Messages != 50 || r.Batches != 3 || r.Users != 3 {
		t.Fatalf("output %q: %+v, %v", stdout.String(), r, err)
	}
	for _, args := range []string{"fill --messages 5", "fill --db x --users 1", "fill --db x --pending-fraction 2", "fill --db x --batch 0"} {
		if err := run(strings.Fields(args), &stdout, &stderr); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
