package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/cluster/clustertest"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/postgres/pgstore"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
)

// startNATS runs one NATS server on 127.0.0.1 for the test.
func startNATS(t testing.TB) *clustertest.NATSCluster {
	t.Helper()
	nc, err := clustertest.StartNATS(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testCluster is nodes that share one storage and one NATS.
type testCluster struct {
	nodes []*daemontest.Server
	dsn   string
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

func startCluster(t *testing.T, dsn string, urls []string, names ...string) *testCluster {
	t.Helper()
	c := &testCluster{dsn: dsn}
	for _, name := range names {
		c.nodes = append(c.nodes, daemontest.StartWith(t, clusterConfig(t, name, urls), openStore(t, dsn)))
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

// pg is the package's PostgreSQL server, started on first use; owned by
// TestMain.
var pg *pgtesting.Lazy

func TestMain(m *testing.M) {
	pg = pgtesting.NewLazy()
	code := m.Run()
	if err := pg.Close(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// sharedDB creates a PostgreSQL database for one test's nodes.
func sharedDB(t *testing.T) string { return pgtesting.NewDB(t, pg.Server(t)) }

// openStore opens a postgres store on dsn in this process (one per node,
// each with its own pool, as separate qqd processes have), closed when
// the test ends.
func openStore(t testing.TB, dsn string) plugins.Storage {
	t.Helper()
	conf, _ := json.Marshal(map[string]any{"dsn": dsn, "max_conns": 4})
	opts, err := pgstore.ParseConfig(plugins.Env{DataDir: t.TempDir()}, conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := pgstore.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestCrossNodeDirectMessage(t *testing.T) {
	ns := startNATS(t)
	c := startCluster(t, sharedDB(t), []string{ns.URL(0)}, "a", "b")
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
	// bob2 may get "hi bob" pushed first too: it was stored moments
	// before bob2's login (see cluster.sweepClockSkew); at-least-once.
	await(t, bob2, `{"type":"msg","body":"both"}`)

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
	c := startCluster(t, sharedDB(t), []string{ns.URL(0)}, "a", "b")
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
	c := startCluster(t, sharedDB(t), []string{ns.URL(0)}, "a", "b", "c")
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
	// The message may also be pushed (stored moments before the login:
	// at-least-once), before the offline answer.
	line := gina.ReadLine()
	for strings.HasPrefix(line, `{"type":"msg"`) {
		t.Logf("pushed: %s", line)
		line = gina.ReadLine()
	}
	f := &protocol.ServerFrame{}
	if err := json.Unmarshal([]byte(line), f); err != nil || f.Type != "ok" {
		t.Fatalf("offline: %s", line)
	}
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
	dsn := sharedDB(t)
	proxy := newCutProxy(t, strings.TrimPrefix(ns.URL(0), "nats://"))
	a := daemontest.StartWith(t, clusterConfig(t, "a", []string{ns.URL(0)}), openStore(t, dsn))
	b := daemontest.StartWith(t, clusterConfig(t, "b", []string{proxy.URL()}), openStore(t, dsn))
	waitFor(t, 10*time.Second, "cluster forms", func() bool { return len(a.Daemon.ClusterPeers()) == 1 && len(b.Daemon.ClusterPeers()) == 1 })
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

// startNodeReg starts one node on its own store and metrics registry.
func startNodeReg(t *testing.T, name, dsn string, urls []string, opts ...func(*config.Config)) (*daemontest.Server, *prometheus.Registry) {
	t.Helper()
	cfg := clusterConfig(t, name, urls)
	for _, o := range opts {
		o(cfg)
	}
	reg := prometheus.NewRegistry()
	return daemontest.StartDeps(t, cfg, daemon.Deps{Storage: openStore(t, dsn), Registry: reg}), reg
}

// storeDirect stores a message from -> to straight into the shared
// storage, as a node does that dies between its commit and its publish:
// no bus message ever carries it.
func storeDirect(t *testing.T, dsn, from, to, body string) {
	t.Helper()
	st := openStore(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{{From: from, To: to, Body: body, CID: body, Status: "queued"}}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("direct write: %v %v", err, res)
	}
}

// TestLostPushFoundBySweep: a message whose push never reached the bus
// (its node died between commit and publish) reaches its online
// recipient with the next sweep.
func TestLostPushFoundBySweep(t *testing.T) {
	ns := startNATS(t)
	dsn := sharedDB(t)
	a, _ := startNodeReg(t, "a", dsn, []string{ns.URL(0)})
	b, reg := startNodeReg(t, "b", dsn, []string{ns.URL(0)})
	a.User(t, "alice")
	bob := b.User(t, "bob")
	storeDirect(t, dsn, "alice", "bob", "lost on the way")
	bob.Expect(`{"type":"msg","from":"alice","body":"lost on the way","seq":1}`)
	if n := daemontest.MetricValue(t, reg, "qqd_cluster_recovered_messages_total", "source", "sweep"); n != 1 {
		t.Errorf("recovered by sweep: %v, want 1", n)
	}
}

// TestGapFilledInOrder: with a push lost between two that arrive, the
// recipient's node reads the missing one from storage after the gap wait
// and delivers all three in seq order, long before any sweep.
func TestGapFilledInOrder(t *testing.T) {
	ns := startNATS(t)
	dsn := sharedDB(t)
	noSweep := func(c *config.Config) { c.Cluster.SweepInterval = time.Hour }
	a, _ := startNodeReg(t, "a", dsn, []string{ns.URL(0)}, noSweep)
	b, reg := startNodeReg(t, "b", dsn, []string{ns.URL(0)}, noSweep)
	alice := a.User(t, "alice")
	bob := b.User(t, "bob")
	alice.Send(`{"type":"send","id":"1","to":"bob","body":"one"}`)
	alice.Expect(`{"type":"ok","id":"1"}`)
	bob.Expect(`{"type":"msg","body":"one","seq":1}`)
	storeDirect(t, dsn, "alice", "bob", "two")
	alice.Send(`{"type":"send","id":"3","to":"bob","body":"three"}`)
	alice.Expect(`{"type":"ok","id":"3"}`)
	start := time.Now()
	bob.Expect(`{"type":"msg","body":"two","seq":2}`)
	bob.Expect(`{"type":"msg","body":"three","seq":3}`)
	t.Logf("gap filled in %v", time.Since(start).Round(time.Millisecond))
	if n := daemontest.MetricValue(t, reg, "qqd_cluster_gap_fills_total"); n < 1 {
		t.Errorf("gap fills: %v", n)
	}
	if n := daemontest.MetricValue(t, reg, "qqd_cluster_recovered_messages_total", "source", "gap"); n != 1 {
		t.Errorf("recovered by gap fill: %v, want 1", n)
	}
}

// TestNATSServerRestartLosesNothing: node b's NATS server dies while
// node a keeps sending to bob; b reconnects to the other server, sweeps,
// and bob gets every message, in order.
func TestNATSServerRestartLosesNothing(t *testing.T) {
	nc, err := clustertest.StartNATS(t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	dsn := sharedDB(t)
	a, _ := startNodeReg(t, "a", dsn, []string{nc.URL(0)})
	b, reg := startNodeReg(t, "b", dsn, []string{nc.URL(1)}) // learns server 0 from server 1
	waitFor(t, 10*time.Second, "cluster forms", func() bool { return len(a.Daemon.ClusterPeers()) == 1 })
	alice := a.User(t, "alice")
	bob := b.User(t, "bob")
	const n = 40
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			if i == n/4 {
				nc.Stop(1)
			}
			alice.Send(fmt.Sprintf(`{"type":"send","id":"%d","to":"bob","body":"m%d"}`, i, i))
			alice.Expect(fmt.Sprintf(`{"type":"ok","id":"%d"}`, i))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var next int64 = 1
	for next <= n {
		f := bob.Read()
		if f.Type != "msg" {
			continue
		}
		switch {
		case f.Seq < next:
			continue // at-least-once: a push the sweep also found
		case f.Seq > next:
			t.Fatalf("seq %d arrived before %d", f.Seq, next)
		}
		next++
	}
	<-done
	t.Logf("recovered: sweep %v, gap %v; reconnects %v",
		daemontest.MetricValue(t, reg, "qqd_cluster_recovered_messages_total", "source", "sweep"),
		daemontest.MetricValue(t, reg, "qqd_cluster_recovered_messages_total", "source", "gap"),
		daemontest.MetricValue(t, reg, "qqd_cluster_nats_reconnects_total"))
}

// TestCrossNodeFriendshipAndBlock: a friendship made on one node shows
// each side the other's presence on the other node, and a block made on
// one node stops typing pushed from the other.
func TestCrossNodeFriendshipAndBlock(t *testing.T) {
	ns := startNATS(t)
	c := startCluster(t, sharedDB(t), []string{ns.URL(0)}, "a", "b")
	mia := c.nodes[0].User(t, "mia")
	ned := c.nodes[1].User(t, "ned")
	mia.Send(`{"type":"friend_request","id":"f","to":"ned"}`)
	await(t, mia, `{"type":"ok","id":"f"}`)
	await(t, ned, `{"type":"friend_request","from":"mia"}`)
	ned.Send(`{"type":"friend_accept","id":"a","user":"mia"}`)
	await(t, ned, `{"type":"presence","user":"mia","state":"online"}`)
	await(t, mia, `{"type":"presence","user":"ned","state":"online"}`)

	// Later changes reach the other side: node a's registry learned of
	// the friendship made on node b.
	mia.Send(`{"type":"presence","id":"p","state":"busy"}`)
	await(t, ned, `{"type":"presence","user":"mia","state":"busy"}`)

	// ned blocks mia on node b: mia's typing from node a is not pushed.
	ned.Send(`{"type":"block","id":"b","user":"mia"}`)
	await(t, ned, `{"type":"ok","id":"b"}`)
	mia.Send(`{"type":"typing","id":"t","to":"ned","state":"start"}`)
	await(t, mia, `{"type":"ok","id":"t"}`)
	ned.ExpectSilence(500 * time.Millisecond)
}
