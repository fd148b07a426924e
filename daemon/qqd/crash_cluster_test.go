package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/cluster/clustertest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
)

// Bounds and shape of the cluster crash test.
const (
	clusterCrashUsers   = 9 // direct messages
	clusterCrashMembers = 4 // the group
	clusterCrashKills   = 5 // kill -9 of a random node
	clusterFenceAfter   = 3 * time.Second
	clusterStartWait    = 2 * time.Minute // the cluster's start, and a node's restart
)

// clusterCrashConfig is every node's qq.yaml on top of clustertest's:
// the limits lifted as in crashConfigYAML, no filters (their plugin
// processes are not what this test is about, and cost CPU), and short
// cluster timings so that each fault is noticed and repaired quickly.
var clusterCrashConfig = map[string]any{
	"limits.send_rate":                   100000,
	"limits.send_burst":                  100000,
	"limits.auth_per_ip_per_minute":      100000,
	"limits.auth_per_account_per_minute": 100000,
	"limits.max_connections_per_ip":      1000,
	"filters":                            []any{},
	"cluster.fence_after":                clusterFenceAfter.String(),
	"cluster.sweep_interval":             "1s",
	"cluster.request_timeout":            "1s",
	"cluster.nats.ping_interval":         "500ms",
	"cluster.nats.max_pings_out":         2,
	"cluster.nats.reconnect_wait":        "100ms",
}

// Fault windows of the cluster crash test.
const (
	faultNodeKill    = "node kill -9"
	faultNATSRestart = "NATS restart"
	faultPGRestart   = "PostgreSQL restart"
	faultNone        = "" // before the first fault
	faultEnd         = "after the run"
)

// TestClusterCrash runs a whole cluster (PostgreSQL, three NATS servers,
// three qqd nodes as subprocesses on the postgres storage plugin, and
// clustertest's balancer in front) while clients connected through the
// balancer send direct messages and group messages, every send retried
// with its cid until ok, and ack what they get. Meanwhile it kills a
// random node with SIGKILL five times (starting it again after a short
// pause), stops and restarts one NATS server, and restarts PostgreSQL
// once (faster than cluster.fence_after). Then it checks what
// TestCrashRecovery checks (checkCrashRun: nothing acknowledged lost, no
// phantom, no duplicate after de-dup, per-sender order, one message per
// cid, nothing pending at the end) and, for the group, that every
// member's view (what it was pushed and the log) is gap-free and holds
// every acknowledged send, and that every member's cursor reaches the
// end. It logs what the clients met in each kind of fault window.
//
// QQ_CRASH_SEED=<n> replays a fault schedule and traffic pattern (timing
// still varies).
func TestClusterCrash(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QQ_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("QQ_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (QQ_CRASH_SEED=%d replays it)", seed, seed)
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, 0))

	srv := pg.Server(t) // skips without PostgreSQL, fails if QQ_REQUIRE_POSTGRES=1
	dsn := pgtesting.NewDB(t, srv)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterStartWait)
	defer cancel()
	dir := t.TempDir()
	c, err := clustertest.Up(ctx, clustertest.ClusterOptions{
		Dir: dir, LBListen: "127.0.0.1:0", DSN: dsn,
		// The test binary is qqd (TestMain).
		Binary: self, Env: []string{"QQ_TEST_RUN_AS_QQD=1"},
		Config: clusterCrashConfig,
	})
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	// Before the harness's cleanup is registered: runs after it.
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close the cluster: %v", err)
		}
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("node %s's log: %s", n.Name(), n.LogPath())
				logTail(t, n.LogPath(), 40)
			}
		}
	})
	t.Logf("cluster up in %v: balancer %s, NATS %v", time.Since(start).Round(time.Millisecond), c.LB.Addr(), c.NATS.URLs())

	h := newCrashHarness(t, c.LB.Addr(), seed, clusterCrashUsers)
	h.register()
	g := newCrashGroupLoad(t, h, seed, clusterCrashMembers)
	h.start()
	g.start()

	// The faults, in a random order.
	var plan []string
	for range clusterCrashKills {
		plan = append(plan, faultNodeKill)
	}
	plan = append(plan, faultNATSRestart, faultPGRestart)
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	var pgDown time.Duration
	faults := 0
	for _, fault := range plan {
		// Traffic flows again since the last fault: wait for new oks,
		// then a random moment.
		want := h.okCount() + g.okCount() + 10 + rng.IntN(20)
		progressBy := time.Now().Add(crashProgress)
		for h.okCount()+g.okCount() < want && !h.failed() {
			if time.Now().After(progressBy) {
				h.fail("no send acknowledged within %v after fault %d", crashProgress, faults)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if h.failed() || !h.sleep(time.Duration(100+rng.IntN(900))*time.Millisecond) {
			break
		}
		h.window(fault, true)
		began := time.Now()
		what := fault
		switch fault {
		case faultNodeKill:
			n := c.Nodes[rng.IntN(len(c.Nodes))]
			what += " " + n.Name()
			if err := n.Kill(); err != nil {
				t.Fatal(err)
			}
			if !h.sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond) {
				break
			}
			if err := n.Start(ctx); err != nil {
				t.Fatalf("restart after %s: %v", what, err)
			}
		case faultNATSRestart:
			i := rng.IntN(c.NATS.Len())
			what += fmt.Sprintf(" %d", i)
			c.NATS.Stop(i)
			if !h.sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond) {
				break
			}
			if err := c.NATS.Restart(i); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case faultPGRestart:
			if err := srv.Restart(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			pgDown = time.Since(began)
		}
		took := time.Since(began)
		h.mu.Lock()
		h.winLocked().dur += took
		h.mu.Unlock()
		faults++
		t.Logf("fault %d: %s (%v) at %v", faults, what, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	if pgDown >= clusterFenceAfter {
		t.Logf("the PostgreSQL restart took %v, not under cluster.fence_after (%v): the nodes may have fenced", pgDown, clusterFenceAfter)
	}
	chaos := time.Since(start)

	// Let everything settle: every node ready, then the clients finish.
	for _, n := range c.Nodes {
		for by := time.Now().Add(crashProgress); !n.Ready(ctx); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(by) {
				t.Fatalf("node %s not ready within %v after the last fault", n.Name(), crashProgress)
			}
		}
	}
	h.window(faultEnd, false)
	st := h.finish("cluster", faults)
	gst := g.check()
	total := time.Since(start)

	h.mu.Lock()
	defer h.mu.Unlock()
	summary := fmt.Sprintf("cluster crash run, seed %d: %d faults in %v, total %v; direct sends acked %d (retried %d, %d retry attempts, %d stored by an earlier attempt), cid rechecks %d, connections %d; "+
		"messages delivered %d (%d pushed, %d offline); lost %d, shown twice after de-dup %d, never sent %d; "+
		"group sends acked %d, group entries pushed %d (in a connection's pushes: %d gaps, left to group_sync; %d at or below a seq pushed before), members' views gap-free: %v",
		seed, faults, chaos.Round(time.Millisecond), total.Round(time.Millisecond), h.oks, h.retried, h.retries, h.storedEarlier, h.rechecks, h.reconns,
		st.delivered, st.pushed, st.offline, st.lost, st.twice, st.neverSent,
		gst.acked, gst.pushed, gst.pushGaps, gst.pushBack, gst.gapFree)
	// Where the balancer sent the clients, and whether a node fenced.
	var spread []string
	fences := 0
	for i, n := range c.Nodes {
		spread = append(spread, fmt.Sprintf("%s=%d", n.Name(), c.LB.Served(i)))
		if b, err := os.ReadFile(n.LogPath()); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "cluster: fencing this node") || strings.Contains(l, "cluster: unfenced") {
					t.Logf("node %s: %s", n.Name(), l)
					fences += strings.Count(l, "fencing this node")
				}
			}
		}
	}
	summary += fmt.Sprintf("; connections per node %s; fences %d; PostgreSQL down %v (fence_after %v)",
		strings.Join(spread, " "), fences, pgDown.Round(time.Millisecond), clusterFenceAfter)
	table := h.windowTable()
	t.Log(summary)
	t.Log("per fault window:\n" + table)
	// For the closing note, also without -v.
	fmt.Printf("%s\nper fault window:\n%s", summary, table)
	if n := len(h.refusedStored); n > 0 {
		t.Errorf("CONTRACT: %d sends answered with errors only were stored; QQP/1 says unavailable means \"nothing was accepted\"", n)
		for _, e := range h.refusedStored[:min(5, n)] {
			t.Logf("CONTRACT: %s", e.what)
		}
	}
	if faults < len(plan) {
		t.Errorf("only %d of %d faults", faults, len(plan))
	}
}

// windowTable renders the per-window counts; h.mu is held.
func (h *crashHarness) windowTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s %6s %8s %6s %7s %7s %7s %7s %6s %7s %7s  %s\n",
		"window", "faults", "took", "oks", "g-oks", "retried", "unknown", "earlier", "conns", "pushes", "g-push", "errors")
	for _, name := range []string{faultNone, faultNodeKill, faultNATSRestart, faultPGRestart, faultEnd} {
		w := h.wins[name]
		if w == nil {
			continue
		}
		label := name
		if label == faultNone {
			label = "before the faults"
		}
		var errs []string
		for _, k := range slices.Sorted(maps.Keys(w.errs)) {
			errs = append(errs, fmt.Sprintf("%s=%d", k, w.errs[k]))
		}
		fmt.Fprintf(&b, "%-20s %6d %8v %6d %7d %7d %7d %7d %6d %7d %7d  %s\n",
			label, w.faults, w.dur.Round(time.Millisecond), w.oks, w.goks, w.retried, w.unknown, w.earlier, w.reconns, w.pushes, w.gpushes, strings.Join(errs, " "))
	}
	return b.String()
}

// logTail logs the last n lines of the file at path.
func logTail(t *testing.T, path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s: %v", filepath.Base(path), err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	t.Log(strings.Join(lines[max(0, len(lines)-n):], "\n"))
}

// crashGroupLoad is the group traffic of a crash run: members of one group,
// each sending to it (every send retried with its cid until ok) and
// acking now and then, through the harness's address; each connection
// records the group entries pushed to it. It shares the harness's stop,
// quit, goroutine groups and counts.
type crashGroupLoad struct {
	h       *crashHarness
	gid     string
	members []*groupMember

	mu    sync.Mutex
	acked []groupSent
}

type groupMember struct {
	g    *crashGroupLoad
	name string
	rng  *rand.Rand
	c    *client.Client // the sender goroutine's
	conn int            // connections made

	mu     sync.Mutex
	pushed [][]protocol.GroupEntry // per connection, in the order pushed
}

// newCrashGroupLoad registers n members g0..g<n-1> and makes g0's group, which
// the others join.
func newCrashGroupLoad(t *testing.T, h *crashHarness, seed uint64, n int) *crashGroupLoad {
	t.Helper()
	g := &crashGroupLoad{h: h}
	addr := h.getAddr()
	for i := range n {
		name := fmt.Sprintf("g%d", i)
		c := dialClient(t, addr, name) // registers
		ctx, cancel := callCtx()
		var err error
		if i == 0 {
			g.gid, err = c.CreateGroup(ctx, "crash crew", "", "")
		} else {
			_, _, err = c.GroupJoin(ctx, g.gid)
		}
		cancel()
		c.Close()
		if err != nil {
			t.Fatalf("%s: create or join the group: %v", name, err)
		}
		g.members = append(g.members, &groupMember{g: g, name: name, rng: rand.New(rand.NewPCG(seed, uint64(100+i)))})
	}
	return g
}

func (g *crashGroupLoad) okCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.acked)
}

func (g *crashGroupLoad) start() {
	for _, m := range g.members {
		g.h.senders.Add(1)
		go m.run()
	}
}

// connect returns a live logged-in connection, reconnecting if the
// current one ended; nil when the run was aborted.
func (m *groupMember) connect() *client.Client {
	if m.c != nil && m.c.Err() == nil {
		return m.c
	}
	m.drop()
	h := m.g.h
	deadline := time.Now().Add(crashReconnect)
	for {
		select {
		case <-h.quit:
			return nil
		default:
		}
		ctx, cancel := callCtx()
		c, err := client.Dial(ctx, h.getAddr(), client.Options{Events: true})
		if err == nil {
			if _, err = c.Login(ctx, m.name, m.name+"-password"); err != nil {
				c.Close()
			}
		}
		cancel()
		if err == nil {
			m.c = c
			m.mu.Lock()
			m.pushed = append(m.pushed, nil)
			m.conn = len(m.pushed) - 1
			m.mu.Unlock()
			h.mu.Lock()
			h.winLocked().reconns++
			h.mu.Unlock()
			h.readers.Add(1)
			go m.read(c, m.conn)
			return c
		}
		h.countErr("connect", err)
		if time.Now().After(deadline) {
			h.fail("%s: no connection within %v: %v", m.name, crashReconnect, err)
			return nil
		}
		h.sleep(time.Duration(20+m.rng.IntN(60)) * time.Millisecond)
	}
}

func (m *groupMember) drop() {
	if m.c != nil {
		m.c.Close()
		m.c = nil
	}
}

// read records connection n's group entries until it ends.
func (m *groupMember) read(c *client.Client, n int) {
	h := m.g.h
	defer h.readers.Done()
	msgs, evs := c.Messages(), c.Events()
	for msgs != nil || evs != nil {
		select {
		case _, ok := <-msgs:
			if !ok {
				msgs = nil
			}
		case e, ok := <-evs:
			if !ok {
				evs = nil
				continue
			}
			if e.Type != protocol.TypeGroupEntry || e.Entry == nil || e.Group != m.g.gid {
				continue
			}
			m.mu.Lock()
			m.pushed[n] = append(m.pushed[n], *e.Entry)
			m.mu.Unlock()
			h.mu.Lock()
			h.winLocked().gpushes++
			h.mu.Unlock()
		}
	}
}

// call runs op on a live connection until it gets an answer other than
// unavailable or a lost connection; ok is false when the run was stopped
// or aborted, or the deadline passed.
func (m *groupMember) call(op string, do func(context.Context, *client.Client) error) (err error, ok bool) {
	h := m.g.h
	deadline := time.Now().Add(crashSendDeadline)
	for attempt := 1; ; attempt++ {
		c := m.connect()
		if c == nil {
			return nil, false
		}
		ctx, cancel := callCtx()
		err = do(ctx, c)
		cancel()
		if err == nil {
			return nil, true
		}
		h.countErr(op, err)
		if code := errCode(err); code != "" && code != protocol.CodeUnavailable {
			return err, true
		}
		if c.Err() != nil || errCode(err) == "" {
			m.drop()
		}
		if time.Now().After(deadline) {
			h.fail("%s: %s: no answer within %v; last error: %v", m.name, op, crashSendDeadline, err)
			return err, false
		}
		if !h.sleep(time.Duration(min(attempt, 20)*5+m.rng.IntN(10)) * time.Millisecond) {
			return err, false
		}
	}
}

// run sends to the group until stop.
func (m *groupMember) run() {
	h := m.g.h
	defer h.senders.Done()
	defer m.drop()
	for k := 0; ; k++ {
		select {
		case <-h.stop:
			return
		case <-h.quit:
			return
		default:
		}
		cid, body := fmt.Sprintf("%s-%d", m.name, k), fmt.Sprintf("%s says %d", m.name, k)
		var r client.GroupSendResult
		attempts := 0
		err, ok := m.call("group_send", func(ctx context.Context, c *client.Client) (err error) {
			attempts++
			r, err = c.GroupSendCID(ctx, m.g.gid, body, cid)
			return err
		})
		if !ok {
			return
		}
		if err != nil {
			h.fail("%s: group send cid %s: %v", m.name, cid, err)
			return
		}
		m.g.mu.Lock()
		m.g.acked = append(m.g.acked, groupSent{from: m.name, cid: cid, body: body, seq: r.Seq, msgID: r.MsgID})
		m.g.mu.Unlock()
		h.mu.Lock()
		w := h.winLocked()
		w.goks++
		if attempts > 1 {
			w.retried++
			w.retries += attempts - 1
		}
		h.mu.Unlock()
		if m.rng.IntN(5) == 0 {
			if err, ok := m.call("group_ack", func(ctx context.Context, c *client.Client) error {
				return c.GroupAck(ctx, m.g.gid, r.Seq)
			}); !ok || err != nil {
				if err != nil {
					h.fail("%s: group ack %d: %v", m.name, r.Seq, err)
				}
				return
			}
		}
		if !h.sleep(time.Duration(2+m.rng.IntN(8)) * time.Millisecond) {
			return
		}
	}
}

type groupStats struct {
	acked, pushed int
	// In one connection's pushes: a seq skipped (the client syncs), and
	// a seq at or below the highest one pushed before.
	pushGaps, pushBack int
	gapFree            bool
}

// check runs after the harness's finish (every member's sender and reader
// ended): each member's view of the log (read on a fresh connection, from
// its join) is gap-free and holds every acknowledged send
// (checkGroupView); every entry pushed to it is the log's entry of that
// seq, and the pushes of each connection come in seq order; a cid was
// acknowledged once; after acking the last entry, nothing is unread.
func (g *crashGroupLoad) check() (st groupStats) {
	t := g.h.t
	t.Helper()
	g.mu.Lock()
	acked := slices.Clone(g.acked)
	g.mu.Unlock()
	st.acked = len(acked)
	addr := g.h.getAddr()
	for _, m := range g.members {
		view := groupView(t, addr, g.gid, m.name)
		checkGroupView(t, m.name, view, acked, true)
		if len(view) == 0 {
			t.Fatalf("%s's view of the group is empty", m.name)
		}
		bySeq := map[int64]protocol.GroupEntry{}
		for _, e := range view {
			bySeq[e.Seq] = e
		}
		m.mu.Lock()
		for n, es := range m.pushed {
			for i, e := range es {
				st.pushed++
				if le, ok := bySeq[e.Seq]; !ok || le.MsgID != e.MsgID || le.Body != e.Body || le.From != e.From || le.Kind != e.Kind {
					t.Errorf("%s's connection %d was pushed %+v; the log has %+v", m.name, n, e, le)
				}
				if i == 0 {
					continue
				}
				// The highest seq pushed before e on this connection.
				top := int64(0)
				for _, p := range es[:i] {
					top = max(top, p.Seq)
				}
				// A group's pushes go out in seq order (QQP/1); a gap is
				// allowed (the client syncs).
				switch {
				case e.Seq <= top:
					if st.pushBack++; st.pushBack <= 5 {
						t.Errorf("%s's connection %d was pushed seq %d after seq %d", m.name, n, e.Seq, top)
					}
				case e.Seq > top+1:
					// Not a gap: the member's own messages, which their
					// connection is not pushed (its ok carried the seq).
					for s := top + 1; s < e.Seq; s++ {
						if le, ok := bySeq[s]; !ok || le.From != m.name || le.Kind != "msg" {
							st.pushGaps++
							break
						}
					}
				}
			}
		}
		m.mu.Unlock()

		// Settled: ack the end; nothing is unread.
		c := dialClient(t, addr, m.name)
		last := view[len(view)-1].Seq
		ctx, cancel := callCtx()
		err := c.GroupAck(ctx, g.gid, last)
		var groups []protocol.GroupListing
		if err == nil {
			groups, err = c.Groups(ctx)
		}
		cancel()
		c.Close()
		if err != nil {
			t.Fatalf("%s: ack the group's end: %v", m.name, err)
		}
		for _, gl := range groups {
			if gl.Group == g.gid && (gl.Unread != 0 || gl.ReadSeq != last || gl.LastSeq != last) {
				t.Errorf("%s: after acking seq %d the group lists read_seq %d, last_seq %d, unread %d", m.name, last, gl.ReadSeq, gl.LastSeq, gl.Unread)
			}
		}
	}
	seen := map[string]bool{}
	for _, a := range acked {
		if seen[a.from+"/"+a.cid] {
			t.Errorf("cid %s of %s acknowledged twice", a.cid, a.from)
		}
		seen[a.from+"/"+a.cid] = true
	}
	st.gapFree = true // checkGroupView stops the test at a gap
	return st
}
