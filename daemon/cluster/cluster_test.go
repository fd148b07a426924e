package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

// startNATS runs one NATS server on 127.0.0.1 for the test.
func startNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// testCluster is nodes that share one storage and one NATS.
type testCluster struct {
	nodes []*daemontest.Server
	store plugins.Storage
}

// clusterConfig is a node's configuration: cluster mode on the shared
// storage (opened in this process and passed to every node), fast
// fencing and sweeps for tests.
func clusterConfig(t testing.TB, name string, urls []string) *config.Config {
	cfg := daemontest.Config(t)
	cfg.Storage.Plugin = "postgres" // what validation asks of cluster mode; the store itself is passed in
	cfg.Cluster.Enabled = true
	cfg.Cluster.Node = name
	cfg.Cluster.NATS.URLs = urls
	cfg.Cluster.FenceAfter = 2 * time.Second
	cfg.Cluster.SweepInterval = 500 * time.Millisecond
	cfg.Cluster.RequestTimeout = time.Second
	cfg.Cluster.NATS.PingInterval = 200 * time.Millisecond
	cfg.Cluster.NATS.ReconnectWait = 50 * time.Millisecond
	return cfg
}

func startCluster(t *testing.T, store plugins.Storage, urls []string, names ...string) *testCluster {
	t.Helper()
	c := &testCluster{store: store}
	for _, name := range names {
		c.nodes = append(c.nodes, daemontest.StartWith(t, clusterConfig(t, name, urls), store))
	}
	// Wait until every node hears the others.
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.nodes {
		for n.Daemon.Ready() != nil || len(n.Daemon.ClusterPeers()) < len(names)-1 {
			if time.Now().After(deadline) {
				t.Fatalf("cluster did not form: %v", n.Daemon.ClusterPeers())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// sharedSQLite opens one sqlite store for nodes of one test to share
// (in this process): it does not number messages (seq 0), so pushes take
// the bus without seq ordering.
func sharedSQLite(t *testing.T) plugins.Storage {
	cfg := daemontest.Config(t)
	return daemontest.OpenStore(t, cfg)
}

func TestCrossNodeDirectMessage(t *testing.T) {
	ns := startNATS(t)
	c := startCluster(t, sharedSQLite(t), []string{ns.ClientURL()}, "a", "b")
	alice := c.nodes[0].User(t, "alice")
	bob := c.nodes[1].User(t, "bob")
	alice.Send(`{"type":"send","id":"1","to":"bob","body":"hi bob","cid":"c1"}`)
	alice.Expect(`{"type":"ok","id":"1","status":"sent"}`)
	bob.Expect(`{"type":"msg","from":"alice","to":"bob","body":"hi bob"}`)

	// A second session of bob on node a gets the next push too.
	bob2 := c.nodes[0].Dial(t)
	bob2.Login("bob", "password1")
	alice.Send(`{"type":"send","id":"2","to":"bob","body":"both","cid":"c2"}`)
	alice.Expect(`{"type":"ok","id":"2","status":"sent"}`)
	bob.Expect(`{"type":"msg","body":"both"}`)
	bob2.Expect(`{"type":"msg","body":"both"}`)

	// users lists both nodes' users, from either node.
	for i, n := range c.nodes {
		conn := n.Dial(t)
		conn.Register(fmt.Sprintf("watcher%d", i), "password1")
		conn.Login(fmt.Sprintf("watcher%d", i), "password1")
		conn.Send(`{"type":"users","id":"u"}`)
		f := conn.Expect(`{"type":"ok","id":"u"}`)
		got := strings.Join(f.Users, ",")
		if !strings.Contains(got, "alice") || !strings.Contains(got, "bob") {
			t.Errorf("node %d users: %v", i, f.Users)
		}
	}

	// A cid retry on the other node returns the first answer and pushes
	// nothing again.
	alice2 := c.nodes[1].Dial(t)
	alice2.Login("alice", "password1")
	alice2.Send(`{"type":"send","id":"3","to":"bob","body":"hi bob","cid":"c1"}`)
	alice2.Expect(`{"type":"ok","id":"3","status":"sent"}`)
	bob.ExpectSilence(300 * time.Millisecond)

	// An operator's kick on node b reaches bob's session on node a.
	if n := c.nodes[1].Daemon.Kick("bob", "test"); n != 2 {
		t.Errorf("kick: %d sessions, want 2", n)
	}
	bob.Expect(`{"type":"kicked","reason":"admin"}`)
	bob2.Expect(`{"type":"kicked","reason":"admin"}`)
}
