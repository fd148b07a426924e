package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qqchat/qq/daemon/cluster/clustertest"
	"github.com/qqchat/qq/daemon/daemontest"
)

// TestMain lets the test binary act as qqcluster when QQCLUSTER_TEST_RUN
// is set, so the tests run the real command in a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv("QQCLUSTER_TEST_RUN") == "1" {
		if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "qqcluster:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func qqcluster(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "QQCLUSTER_TEST_RUN=1")
	return cmd
}

// TestUpDown runs qqcluster up (nodes on sqlite, cluster mode off: the
// postgres plugin is not in this tree yet), drives it with status, kill
// and start, and stops it with down; then again with -clean.
func TestUpDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := clustertest.BuildQQD(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, clean := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "qqcluster-data")
		args := []string{"up", "-dir", dir, "-lb", "127.0.0.1:0", "-storage", "sqlite", "-qqd", bin}
		if clean {
			args = append(args, "-clean")
		}
		up := qqcluster(ctx, args...)
		var out, errOut daemontest.SyncBuffer
		up.Stdout, up.Stderr = &out, &errOut
		if err := up.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- up.Wait() }()
		deadline := time.After(3 * time.Minute)
		for !strings.Contains(out.String(), "running;") {
			select {
			case err := <-exited:
				t.Fatalf("up exited: %v\n%s%s", err, out.String(), errOut.String())
			case <-deadline:
				up.Process.Kill()
				<-exited
				t.Fatalf("up not running after 3 minutes:\n%s%s", out.String(), errOut.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		for _, want := range []string{"load balancer", "node a", "node b", "node c", "nats 2", "postgres"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("up's output lacks %q:\n%s", want, out.String())
			}
		}
		for _, step := range []struct{ args, want string }{
			{"status -dir " + dir, "node b"},
			{"kill -dir " + dir + " -node b", "killed node b"},
			{"start -dir " + dir + " -node b", "started node b"},
			{"nats-stop -dir " + dir + " -nats 0", "stopped NATS server 0"},
			{"nats-start -dir " + dir + " -nats 0", "started NATS server 0"},
		} {
			got, err := qqcluster(ctx, strings.Fields(step.args)...).CombinedOutput()
			if err != nil || !bytes.Contains(got, []byte(step.want)) {
				t.Fatalf("qqcluster %s = %q, %v; want %q", step.args, got, err, step.want)
			}
		}
		if got, err := qqcluster(ctx, "kill", "-dir", dir).CombinedOutput(); err == nil {
			t.Errorf("kill without -node: no error (%s)", got)
		}
		if got, err := qqcluster(ctx, "down", "-dir", dir).CombinedOutput(); err != nil {
			t.Fatalf("down: %v\n%s", err, got)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("up exited with %v:\n%s", err, errOut.String())
			}
		case <-time.After(time.Minute):
			t.Fatal("up still runs a minute after down")
		}
		_, err := os.Stat(filepath.Join(dir, "b", "qq.yaml"))
		if clean != os.IsNotExist(err) {
			t.Errorf("clean %v: b/qq.yaml: %v", clean, err)
		}
		if _, err := os.Stat(filepath.Join(dir, clustertest.PidFileName)); !os.IsNotExist(err) {
			t.Errorf("pid file after down: %v", err)
		}
	}
	if got, err := qqcluster(ctx, "frob").CombinedOutput(); err == nil {
		t.Errorf("an unknown command: no error (%s)", got)
	}
}

// TestReadConfig reads up's -config file: nested and dotted keys, passed
// on as ClusterOptions.Config.
func TestReadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "extra.yaml")
	if err := os.WriteFile(path, []byte("storage.timeout: 30s\nlimits:\n  send_rate: 100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := readConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if m["storage.timeout"] != "30s" || fmt.Sprint(m["limits"]) != "map[send_rate:100]" {
		t.Fatalf("readConfig = %v", m)
	}
	if err := os.WriteFile(path, []byte("limits: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readConfig(path); err == nil {
		t.Fatal("readConfig of bad YAML: no error")
	}
	var stderr bytes.Buffer
	if err := run([]string{"up", "-nodes", " , ", "-dir", t.TempDir()}, &bytes.Buffer{}, &stderr); err == nil {
		t.Fatal("up -nodes ' , ': no error")
	}
}
