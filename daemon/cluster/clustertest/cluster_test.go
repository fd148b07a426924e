package clustertest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/cluster/clustertest"
)

// TestClusterUpControl starts a whole cluster with Up and drives it
// through its control socket. The postgres plugin is not in this tree
// yet, so the nodes run on sqlite each with cluster mode off: this
// checks the orchestration (NATS, nodes, balancer, control, Close), not
// cluster mode.
func TestClusterUpControl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var progress strings.Builder
	c, err := clustertest.Up(ctx, clustertest.ClusterOptions{
		Dir: dir, LBListen: "127.0.0.1:0", Binary: qqdBinary(t),
		DSN: "postgres://unused", Storage: "sqlite",
		Config: map[string]any{"cluster.enabled": false, "filters": []any{}},
		Log:    &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Nodes) != 3 || c.NATS.Len() != 3 || c.PG != nil {
		t.Fatalf("cluster: %d nodes, %d NATS servers, PG %v", len(c.Nodes), c.NATS.Len(), c.PG)
	}
	yaml, err := os.ReadFile(c.Node("b").ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range c.NATS.URLs() {
		if !strings.Contains(string(yaml), u) {
			t.Errorf("node b's qq.yaml lacks NATS URL %s:\n%s", u, yaml)
		}
	}

	ln, err := clustertest.ListenControl(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.ServeControl(ln) })
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	if _, err := clustertest.ListenControl(dir); err == nil {
		t.Error("a second ListenControl in the same dir: no error")
	}
	do := func(cmd string) string {
		t.Helper()
		out, err := clustertest.Control(ctx, dir, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return out
	}

	status := do("status")
	for _, want := range []string{c.LB.Addr(), c.Node("a").Addr(), c.Node("c").AdminSocket(), c.NATS.URL(2), "postgres://unused"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	b := c.Node("b")
	do("kill b")
	if b.Running() {
		t.Fatal("node b runs after kill")
	}
	waitFor(t, "the LB drains b", func() bool { return !c.LB.Healthy(1) })
	for range 4 {
		cl, err := client.Dial(ctx, c.LB.Addr(), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Register(ctx, "u"+strings.Repeat("x", int(c.LB.Served(0)+c.LB.Served(2))), "password1"); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	do("start b")
	if !b.Running() || !b.Ready(ctx) {
		t.Fatal("node b not ready after start")
	}
	do("nats-stop 1")
	if c.NATS.Running(1) {
		t.Fatal("NATS server 1 runs after nats-stop")
	}
	do("nats-start 1")
	if !c.NATS.Running(1) {
		t.Fatal("NATS server 1 stopped after nats-start")
	}
	do("stop c")
	for _, bad := range []string{"pg-stop", "kill z", "nats-stop 7", "frobnicate", ""} {
		if out, err := clustertest.Control(ctx, dir, bad); err == nil {
			t.Errorf("%q: no error, answer %q", bad, out)
		}
	}

	pids := []int{c.Node("a").Pid(), b.Pid()}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if n.Running() {
			t.Errorf("node %s runs after Close", n.Name())
		}
	}
	for _, pid := range pids {
		if p, err := os.FindProcess(pid); err == nil && p.Signal(nil) == nil {
			// A zombie would be reaped by Node's Wait; a live pid is a leak.
			t.Errorf("process %d still exists after Close", pid)
		}
	}
	if !strings.Contains(progress.String(), "starting node c") {
		t.Errorf("progress log: %q", progress.String())
	}
}

// TestUpWithoutPostgres: without a DSN and without PostgreSQL support in
// the build, Up fails with ErrNoPostgres and leaves nothing running.
func TestUpWithoutPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := func(dir string) (clustertest.Postgres, error) { return nil, clustertest.ErrNoPostgres }
	_, err := clustertest.Up(ctx, clustertest.ClusterOptions{Dir: t.TempDir(), Binary: "/nonexistent/qqd", StartPostgres: start})
	if !errors.Is(err, clustertest.ErrNoPostgres) {
		t.Fatalf("Up = %v, want ErrNoPostgres", err)
	}
	if _, err := clustertest.Up(ctx, clustertest.ClusterOptions{}); err == nil {
		t.Error("Up without Dir: no error")
	}
	if err := clustertest.Down(ctx, t.TempDir()); err == nil {
		t.Error("Down with no cluster: no error")
	}
	if _, err := clustertest.Control(ctx, filepath.Join(t.TempDir(), "none"), "status"); err == nil {
		t.Error("Control with no cluster: no error")
	}
}
