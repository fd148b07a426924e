package clustertest_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/cluster/clustertest"
)

// TestNodeLifecycle runs a real qqd (on sqlite, cluster mode off: the
// postgres plugin is not in this tree yet) through start, kill -9, start
// on the same address and data, and stop, with a real client and the LB
// in front.
func TestNodeLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	n, err := clustertest.StartNode(ctx, clustertest.NodeOptions{
		Name: "a", Dir: filepath.Join(dir, "a"), Binary: qqdBinary(t), Storage: "sqlite",
		Config: map[string]any{"log.level": "debug", "filters": []any{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Kill()
	if !n.Running() || n.Pid() == 0 || !n.Ready(ctx) {
		t.Fatalf("after Start: running %v, pid %d, ready %v", n.Running(), n.Pid(), n.Ready(ctx))
	}
	if _, err := os.Stat(n.AdminSocket()); err != nil {
		t.Errorf("admin socket: %v", err)
	}
	yaml, err := os.ReadFile(n.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"plugin: sqlite", "listen: " + n.Addr(), "level: debug", "node: a", "enabled: false"} {
		if !strings.Contains(string(yaml), want) {
			t.Errorf("qq.yaml lacks %q:\n%s", want, yaml)
		}
	}

	lb := startLB(t, []clustertest.Backend{n.Backend()})
	if !lb.Healthy(0) {
		t.Fatal("LB: the node is not healthy")
	}
	c, err := client.Dial(ctx, lb.Addr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	c.Close()

	addr := n.Addr()
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	if n.Running() || n.Pid() != 0 {
		t.Fatal("running after Kill")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the killed node still accepts connections")
	}
	waitFor(t, "LB sees the node down", func() bool { return !lb.Healthy(0) })

	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err == nil {
		t.Error("Start of a running node: no error")
	}
	if n.Addr() != addr {
		t.Errorf("address changed across the restart: %s, was %s", n.Addr(), addr)
	}
	waitFor(t, "LB sees the node up", func() bool { return lb.Healthy(0) })
	c, err = client.Dial(ctx, lb.Addr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, "alice", "password1"); err != nil {
		t.Fatalf("login after kill -9 and restart: %v", err)
	}
	c.Close()

	if err := n.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := n.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	log, err := os.ReadFile(n.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(log), `msg="qqd starting"`); got != 2 {
		t.Errorf("log has %d starts, want 2:\n%s", got, log)
	}
	if !strings.Contains(string(log), "qqd exited: signal: killed") || !strings.Contains(string(log), "qqd exited: exit status 0") {
		t.Errorf("log does not record the kill and the clean exit:\n%s", log)
	}
}

// TestNodeRefused: a node whose configuration qqd refuses (cluster mode
// on a storage that is not shared) fails Start with qqd's reason.
func TestNodeRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := clustertest.StartNode(ctx, clustertest.NodeOptions{
		Name: "b", Dir: filepath.Join(t.TempDir(), "b"), Binary: qqdBinary(t), Storage: "sqlite",
		Cluster: true, NATSURLs: []string{"nats://127.0.0.1:1"},
	})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "cluster.enabled") {
		t.Fatalf("StartNode = %v, want qqd's refusal of cluster mode on sqlite", err)
	}
	// The postgres storage (the default) gets the DSN.
	n, err := clustertest.NewNode(clustertest.NodeOptions{
		Name: "c", Dir: filepath.Join(t.TempDir(), "c"), Binary: "qqd", DSN: "postgres://u@127.0.0.1:1/qq",
		Cluster: true, NATSURLs: []string{"nats://127.0.0.1:2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	yaml, err := os.ReadFile(n.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"plugin: postgres", "dsn: postgres://u@127.0.0.1:1/qq", "enabled: true", "- nats://127.0.0.1:2"} {
		if !strings.Contains(string(yaml), want) {
			t.Errorf("qq.yaml lacks %q:\n%s", want, yaml)
		}
	}
	if _, err := clustertest.NewNode(clustertest.NodeOptions{Name: "x"}); err == nil {
		t.Error("NewNode without Dir and Binary: no error")
	}
}
