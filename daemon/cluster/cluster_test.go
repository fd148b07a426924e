package cluster_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
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
	alice.Expect(`{"type":"ok","id":"1"}`)
	bob.Expect(`{"type":"msg","from":"alice","to":"bob","body":"hi bob"}`)

	// A second session of bob on node a gets the next push too.
	bob2 := c.nodes[0].Dial(t)
	bob2.Login("bob", "password1")
	alice.Send(`{"type":"send","id":"2","to":"bob","body":"both","cid":"c2"}`)
	alice.Expect(`{"type":"ok","id":"2"}`)
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
	alice2.Expect(`{"type":"ok","id":"3"}`)
	bob.ExpectSilence(300 * time.Millisecond)

	// An operator's kick on node b reaches bob's session on node a.
	if n := c.nodes[1].Daemon.Kick("bob", "test"); n != 2 {
		t.Errorf("kick: %d sessions, want 2", n)
	}
	bob.Expect(`{"type":"kicked","reason":"admin"}`)
	bob2.Expect(`{"type":"kicked","reason":"admin"}`)
}

func TestCrossNodePresenceTypingBroadcast(t *testing.T) {
	ns := startNATS(t)
	c := startCluster(t, sharedSQLite(t), []string{ns.ClientURL()}, "a", "b")
	dora := c.nodes[0].User(t, "dora")
	eve := c.nodes[1].User(t, "eve")
	eve.Send(`{"type":"friend_request","id":"f","to":"dora"}`)
	await(t, eve, `{"type":"ok","id":"f","status":"pending"}`)
	await(t, dora, `{"type":"friend_request","from":"eve"}`)
	dora.Send(`{"type":"friend_accept","id":"a","user":"eve"}`)
	await(t, dora, `{"type":"ok","id":"a"}`)
	await(t, eve, `{"type":"friend_added","user":"dora"}`)

	// eve's presence on node b reaches dora on node a.
	eve.Send(`{"type":"presence","id":"p","state":"away","text":"lunch"}`)
	await(t, dora, `{"type":"presence","user":"eve","state":"away","text":"lunch"}`)
	// friends on node a shows eve's state from node b.
	dora.Send(`{"type":"friends","id":"fl"}`)
	line := dora.ReadLine()
	for strings.Contains(line, `"type":"presence"`) || strings.Contains(line, `"type":"friend_added"`) {
		line = dora.ReadLine()
	}
	if !strings.Contains(line, `"presence":"away"`) {
		t.Errorf("friends on node a: %s", line)
	}

	// Typing crosses nodes.
	dora.Send(`{"type":"typing","id":"t","to":"eve","state":"start"}`)
	await(t, dora, `{"type":"ok","id":"t"}`)
	await(t, eve, `{"type":"typing","from":"dora","state":"start"}`)

	// eve leaves: dora sees her offline after the debounce.
	eve.Send(`{"type":"logout","id":"bye"}`)
	await(t, dora, `{"type":"presence","user":"eve","state":"offline"}`)

	// An operator's broadcast on node a reaches node b.
	frank := c.nodes[1].User(t, "frank")
	if n := c.nodes[0].Daemon.Broadcast("maintenance at noon"); n != 2 {
		t.Errorf("broadcast reached %d sessions, want 2", n)
	}
	await(t, frank, `{"type":"notice","message":"maintenance at noon"}`)
}

func TestCrossNodeOfflineAndGroups(t *testing.T) {
	ns := startNATS(t)
	c := startCluster(t, sharedSQLite(t), []string{ns.ClientURL()}, "a", "b", "c")
	// Offline delivery: sent on node a while gina is away, fetched on
	// node c.
	hal := c.nodes[0].User(t, "hal")
	gina := c.nodes[1].User(t, "gina")
	gina.Send(`{"type":"logout","id":"bye"}`)
	await(t, gina, `{"type":"ok","id":"bye"}`)
	hal.Send(`{"type":"send","id":"1","to":"gina","body":"while you were out"}`)
	await(t, hal, `{"type":"ok","id":"1"}`)
	gina = c.nodes[2].Dial(t)
	if n := gina.Login("gina", "password1"); n != 1 {
		t.Fatalf("gina pending on node c: %d", n)
	}
	gina.Send(`{"type":"offline","id":"o"}`)
	f := gina.Expect(`{"type":"ok","id":"o"}`)
	if len(f.Messages) != 1 || f.Messages[0].Body != "while you were out" {
		t.Fatalf("offline on node c: %+v", f.Messages)
	}

	// A group with a member on each node: every message reaches the
	// others.
	ivy := c.nodes[2].User(t, "ivy")
	hal.Send(`{"type":"group_create","id":"g","name":"crew","policy":"open"}`)
	g := hal.Expect(`{"type":"ok","id":"g"}`)
	gid := g.Group
	for _, m := range []*daemontest.Conn{gina, ivy} {
		m.Send(fmt.Sprintf(`{"type":"group_join","id":"j","group":%q}`, gid))
		await(t, m, `{"type":"ok","id":"j","status":"joined"}`)
	}
	for i, sender := range []*daemontest.Conn{hal, gina, ivy} {
		body := fmt.Sprintf("from node %d", i)
		sender.Send(fmt.Sprintf(`{"type":"group_send","id":"s%d","group":%q,"body":%q}`, i, gid, body))
		await(t, sender, fmt.Sprintf(`{"type":"ok","id":"s%d"}`, i))
		for j, r := range []*daemontest.Conn{hal, gina, ivy} {
			if j == i {
				continue
			}
			expectEntry(t, r, body)
		}
	}
}

// await reads frames until one matches want (daemontest.Match), skipping
// pushes that may come before it.
func await(t *testing.T, c *daemontest.Conn, want string) {
	t.Helper()
	for range 30 {
		line := c.ReadLine()
		if daemontest.Match(line, want) == nil {
			return
		}
	}
	t.Fatalf("no frame like %s", want)
}

// expectEntry reads until a group entry with body arrives (join entries
// and presence pushes come before it).
func expectEntry(t *testing.T, c *daemontest.Conn, body string) {
	t.Helper()
	for range 20 {
		line := c.ReadLine()
		if strings.Contains(line, `"type":"group_entry"`) && strings.Contains(line, `"body":"`+body+`"`) {
			return
		}
	}
	t.Fatalf("no group entry %q", body)
}

// cutProxy forwards TCP to target until Cut, after which it closes
// every connection it holds and every new one at once (a node cut off
// from NATS but not from its clients); Heal forwards again.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
	}
}

func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// TestPartitionFences cuts node b from NATS (not from its clients): it
// fences itself within cluster.fence_after, sends its clients kicked
// shutdown, refuses logins and reports not ready; its users are served by
// node a meanwhile, and node b takes logins again once NATS is back.
func TestPartitionFences(t *testing.T) {
	ns := startNATS(t)
	store := sharedSQLite(t)
	proxy := newCutProxy(t, strings.TrimPrefix(ns.ClientURL(), "nats://"))
	a := daemontest.StartWith(t, clusterConfig(t, "a", []string{ns.ClientURL()}), store)
	b := daemontest.StartWith(t, clusterConfig(t, "b", []string{proxy.URL()}), store)
	c := &testCluster{nodes: []*daemontest.Server{a, b}}
	waitFor(t, 10*time.Second, "cluster forms", func() bool { return len(a.Daemon.ClusterPeers()) == 1 && len(b.Daemon.ClusterPeers()) == 1 })
	_ = c
	jack := a.User(t, "jack")
	kim := b.User(t, "kim")

	cutAt := time.Now()
	proxy.Cut()
	await(t, kim, `{"type":"kicked","reason":"shutdown"}`)
	fencedAfter := time.Since(cutAt)
	if fencedAfter > b.Config.Cluster.FenceAfter+3*time.Second {
		t.Errorf("fenced %v after the cut; fence_after is %v", fencedAfter, b.Config.Cluster.FenceAfter)
	}
	t.Logf("node b fenced %v after the cut (fence_after %v)", fencedAfter.Round(time.Millisecond), b.Config.Cluster.FenceAfter)
	if b.Daemon.Ready() == nil {
		t.Error("fenced node reports ready")
	}
	again := b.Dial(t)
	again.Send(`{"type":"login","id":"l","user":"kim","password":"password1"}`)
	again.Expect(`{"type":"error","id":"l","code":"unavailable"}`)

	// kim comes back through node a and gets what jack sends.
	kim = a.Dial(t)
	kim.Login("kim", "password1")
	jack.Send(`{"type":"send","id":"1","to":"kim","body":"are you there"}`)
	jack.Expect(`{"type":"ok","id":"1"}`)
	kim.Expect(`{"type":"msg","from":"jack","body":"are you there"}`)

	proxy.Heal()
	waitFor(t, 10*time.Second, "node b unfences", func() bool { return b.Daemon.Ready() == nil })
	lee := b.User(t, "lee")
	jack.Send(`{"type":"send","id":"2","to":"lee","body":"welcome back"}`)
	jack.Expect(`{"type":"ok","id":"2"}`)
	lee.Expect(`{"type":"msg","from":"jack","body":"welcome back"}`)
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
