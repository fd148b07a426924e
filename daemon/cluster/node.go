package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/protocol"
)

// Subjects and headers of the bus. A user name goes into a subject with
// '.' (allowed in names, a separator in NATS) replaced by '~' (not
// allowed in names), so the mapping is one to one.
const (
	subjUser      = "qq.u."    // + user token: frames for a user's sessions
	subjRequest   = "qq.r."    // + kind: scatter-gather requests
	subjHeartbeat = "qq.hb"    // node heartbeats
	subjDirectory = "qq.d"     // presence directory events
	subjSnapshot  = "qq.s."    // + node: directory snapshot requests
	subjGroupInv  = "qq.gi"    // a group's membership changed: drop it from caches
	hdrKind       = "k"        // "m" a message with seq, "f" any other frame
	hdrSeq        = "s"        // the message's seq
	hdrOrigin     = "o"        // the publishing node
	kindMsg       = "m"        // a direct message push (seq set)
	kindFrame     = "f"        // another push frame
	hdrFrom       = "fr"       // kindTyping: who types
	kindTyping    = "t"        // a typing push (hdrFrom set): the receiving node checks blocks
	kindSocial    = "s"        // a friendship or block changed (see SocialEvent)
	kindGroup     = "e"        // a group entry (its storage form, JSON): the receiving node orders it (Hooks.GroupEntry)
	inboxChanSize = 1 << 16    // bus messages queued for the delivery goroutine
	heartbeatMiss = 3          // heartbeats missed before a node counts as gone
	storeProbeKey = "qq probe" // a user name that cannot exist (a space)
)

// userToken maps a user name to a subject token.
func userToken(user string) string { return strings.ReplaceAll(user, ".", "~") }

// tokenUser is userToken's inverse.
func tokenUser(tok string) string { return strings.ReplaceAll(tok, "~", ".") }

// Host is what the node needs of its qqd. Every method is safe for
// concurrent use and returns promptly.
type Host interface {
	// Pending reads up to limit of the oldest messages pending for user.
	Pending(ctx context.Context, user string, limit int) ([]protocol.Message, bool, error)
	// ProbeStorage checks that the storage answers.
	ProbeStorage(ctx context.Context) error
	// Fence is called with true when the node fences itself, and with
	// false when it stops being fenced.
	Fence(fenced bool)
	// LocalUsers lists the users online here that others may see.
	LocalUsers() []string
	// LocalSessions lists the sessions here (qqadmin users).
	LocalSessions() []Session
	// Kick kicks user's sessions here and returns how many.
	Kick(user, reason string) int
	// Broadcast pushes an operator's notice to every session here.
	Broadcast(text string) int
	// RemotePresence tells the host that user's presence elsewhere in the
	// cluster changed (their friends here may need a push).
	RemotePresence(user string, p Presence)
}

// Session is a logged-in connection on some node, for qqadmin users.
type Session struct {
	Node      string    `json:"node"`
	ID        uint64    `json:"id"`
	User      string    `json:"user"`
	Remote    string    `json:"remote"`
	Transport string    `json:"transport"`
	Since     time.Time `json:"since"`
	MsgsIn    uint64    `json:"in"`
	MsgsOut   uint64    `json:"out"`
}

// Presence is a user's state as the directory holds it: connected (has a
// session), and what friends see (state and text; "offline" for an
// invisible user). After the last session left, a node keeps publishing
// the visible state until its presence.offline_debounce ends (Connected
// false, State still online), so friends on other nodes see the same
// debounce as friends on the user's node.
type Presence struct {
	Connected bool   `json:"c"`
	State     string `json:"st,omitempty"`
	Text      string `json:"tx,omitempty"`
}

// Node is this qqd's membership of the cluster.
type Node struct {
	name string
	cfg  config.Cluster
	host Host
	log  *slog.Logger
	m    *metrics
	nc   *nats.Conn

	inbox   chan *nats.Msg
	deliver func(user, kind string, seq int64, from string, frame []byte)
	// sweep is the router's sweep, run on each tick and after a
	// reconnect.
	sweep     func(ctx context.Context)
	sweepNow  chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu    sync.Mutex
	subs  map[string]*nats.Subscription // user -> subscription
	peers map[string]*peer              // other nodes by name
	// dirSeq numbers this node's directory events; dirLocal is what it
	// has published of its users (for snapshots).
	dirSeq   uint64
	dirLocal map[string]Presence

	// Health: when NATS and the storage were last seen well (unix ns),
	// and whether the node is fenced.
	natsOKAt  atomic.Int64
	storeOKAt atomic.Int64
	everUp    atomic.Bool
	fenced    atomic.Bool
	started   time.Time
	bootTag   string
}

// peer is another node as heartbeats and directory events show it.
type peer struct {
	lastSeen time.Time
	boot     string
	dirSeq   uint64
	users    map[string]Presence
	synced   bool // a snapshot (or its first event from seq 1) was applied
}

// Options are what Start needs besides the configuration.
type Options struct {
	Host     Host
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// GapWait is how long a direct message that arrived ahead of a missing
// one is held before the node reads the missing one from storage.
const GapWait = 100 * time.Millisecond

// Start connects the node to NATS (in the background: it never gives up
// reconnecting). Its loops (deliveries, heartbeats, health and sweeps)
// start when its Router is attached (Router.Attach), which must happen
// before logins arrive.
func Start(cfg config.Cluster, opt Options) (*Node, error) {
	name := cfg.Node
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		name: name, cfg: cfg, host: opt.Host, log: log.With("node", name),
		inbox:    make(chan *nats.Msg, inboxChanSize),
		sweepNow: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		subs:     make(map[string]*nats.Subscription),
		peers:    make(map[string]*peer),
		dirLocal: make(map[string]Presence),
		started:  time.Now(),
		bootTag:  strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	n.m = newMetrics(n)
	if opt.Registry != nil {
		if err := n.m.register(opt.Registry); err != nil {
			return nil, fmt.Errorf("cluster: register metrics: %w", err)
		}
	}
	nopts := []nats.Option{
		nats.Name("qqd " + name),
		nats.NoEcho(),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.NATS.ReconnectWait),
		nats.PingInterval(cfg.NATS.PingInterval),
		nats.MaxPingsOutstanding(cfg.NATS.MaxPingsOut),
		nats.Timeout(2 * time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) { n.connected(nc, false) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { n.connected(nc, true) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.m.disconnects.Inc()
			n.log.Warn("cluster: disconnected from NATS", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.m.slowConsumer.Inc()
			}
			n.log.Warn("cluster: NATS error", "err", err)
		}),
	}
	switch {
	case cfg.NATS.CredsFile != "":
		nopts = append(nopts, nats.UserCredentials(cfg.NATS.CredsFile))
	case cfg.NATS.User != "":
		nopts = append(nopts, nats.UserInfo(cfg.NATS.User, cfg.NATS.Password))
	case cfg.NATS.Token != "":
		nopts = append(nopts, nats.Token(cfg.NATS.Token))
	}
	if cfg.NATS.CAFile != "" {
		nopts = append(nopts, nats.RootCAs(cfg.NATS.CAFile))
	}
	if cfg.NATS.CertFile != "" {
		nopts = append(nopts, nats.ClientCert(cfg.NATS.CertFile, cfg.NATS.KeyFile))
	}
	nc, err := nats.Connect(strings.Join(cfg.NATS.URLs, ","), nopts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to NATS: %w", err)
	}
	n.nc = nc
	// The node's own subscriptions: requests to all, snapshots of this
	// node, heartbeats, directory events and group changes.
	for subj, h := range map[string]nats.MsgHandler{
		subjRequest + "*":   n.onRequest,
		subjSnapshot + name: n.onSnapshotRequest,
		subjHeartbeat:       n.onHeartbeat,
		subjDirectory:       n.onDirectory,
	} {
		if _, err := nc.Subscribe(subj, h); err != nil {
			nc.Close()
			return nil, fmt.Errorf("cluster: subscribe %s: %w", subj, err)
		}
	}
	n.storeOKAt.Store(time.Now().UnixNano())
	return n, nil
}

// run starts the node's loops with the router's hooks: deliver takes the
// pushes that arrive for users here, sweep runs on each sweep tick and
// after a reconnect. Router.Attach calls it once.
func (n *Node) run(deliver func(user, kind string, seq int64, from string, frame []byte), sweep func(ctx context.Context)) {
	n.deliver, n.sweep = deliver, sweep
	n.wg.Add(4)
	go n.deliverLoop()
	go n.heartbeatLoop()
	go n.healthLoop()
	go n.sweepLoop()
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// connected runs when the connection to NATS is (re)established.
func (n *Node) connected(nc *nats.Conn, again bool) {
	n.natsOKAt.Store(time.Now().UnixNano())
	n.everUp.Store(true)
	if again {
		n.m.reconnects.Inc()
		n.log.Info("cluster: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		// Pushes may have been lost meanwhile: sweep now.
		select {
		case n.sweepNow <- struct{}{}:
		default:
		}
	} else {
		n.log.Info("cluster: connected to NATS", "url", nc.ConnectedUrlRedacted())
	}
	n.publishHeartbeat(nc)
}

// Close leaves the cluster: it stops the loops and closes the NATS
// connection (its subscriptions go with it).
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.nc.Drain()
		n.wg.Wait()
		n.nc.Close()
	})
}

// ---- per-user interest -------------------------------------------------

// subscribe starts receiving user's pushes (the user's first session
// here).
func (n *Node) subscribe(user string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs[user] != nil {
		return
	}
	sub, err := n.nc.ChanSubscribe(subjUser+userToken(user), n.inbox)
	if err != nil {
		n.log.Error("cluster: subscribe", "err", err)
		return
	}
	// The shared channel's limit bounds what is queued; the per
	// subscription limits are not needed on top of it.
	sub.SetPendingLimits(-1, -1)
	n.subs[user] = sub
}

// unsubscribe stops receiving user's pushes (the last session left).
func (n *Node) unsubscribe(user string) {
	n.mu.Lock()
	sub := n.subs[user]
	delete(n.subs, user)
	n.mu.Unlock()
	if sub != nil {
		sub.Unsubscribe()
	}
}

// publish sends a push for user to the other nodes that hold them. It
// never blocks: while NATS is down, nats.go buffers up to its reconnect
// buffer and then fails, and the sweep after the reconnect recovers what
// was lost.
func (n *Node) publish(user, kind string, seq int64, from string, frame []byte) {
	msg := &nats.Msg{Subject: subjUser + userToken(user), Data: frame, Header: nats.Header{}}
	msg.Header[hdrKind] = []string{kind}
	msg.Header[hdrOrigin] = []string{n.name}
	if seq != 0 {
		msg.Header[hdrSeq] = []string{strconv.FormatInt(seq, 10)}
	}
	if from != "" {
		msg.Header[hdrFrom] = []string{from}
	}
	if err := n.nc.PublishMsg(msg); err != nil {
		n.m.publishErrors.Inc()
		return
	}
	n.m.published[kindIndex(kind)].Inc()
}

func kindIndex(kind string) int {
	if kind == kindMsg {
		return 0
	}
	return 1
}

// deliverLoop hands the pushes of the users' subscriptions to the
// router, one at a time and in arrival order.
func (n *Node) deliverLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case msg := <-n.inbox:
			user := tokenUser(strings.TrimPrefix(msg.Subject, subjUser))
			kind := msg.Header.Get(hdrKind)
			var seq int64
			if s := msg.Header.Get(hdrSeq); s != "" {
				seq, _ = strconv.ParseInt(s, 10, 64)
			}
			n.m.received[kindIndex(kind)].Inc()
			n.deliver(user, kind, seq, msg.Header.Get(hdrFrom), msg.Data)
		}
	}
}

// ---- heartbeats, the directory ----------------------------------------

type heartbeat struct {
	Node   string `json:"n"`
	Boot   string `json:"b"`
	DirSeq uint64 `json:"d"`
}

type dirEvent struct {
	Node string   `json:"n"`
	Seq  uint64   `json:"q"`
	User string   `json:"u"`
	P    Presence `json:"p"`
	Boot string   `json:"b"`
}

type snapshot struct {
	Boot   string              `json:"b"`
	DirSeq uint64              `json:"d"`
	Users  map[string]Presence `json:"u"`
	More   bool                `json:"m,omitempty"` // another part follows
}

func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.publishHeartbeat(n.nc)
			n.expirePeers()
		}
	}
}

// heartbeatEvery is how often a node says it is alive; heartbeatMiss of
// them missed and it counts as gone.
const heartbeatEvery = time.Second

func (n *Node) publishHeartbeat(nc *nats.Conn) {
	n.mu.Lock()
	hb := heartbeat{Node: n.name, Boot: n.bootID(), DirSeq: n.dirSeq}
	n.mu.Unlock()
	b, _ := json.Marshal(hb)
	nc.Publish(subjHeartbeat, b)
}

// bootID tells this run of the node from an earlier one of the same
// name (a restart): peers then drop what they knew of the old one.
func (n *Node) bootID() string { return n.bootTag }

func (n *Node) onHeartbeat(msg *nats.Msg) {
	var hb heartbeat
	if json.Unmarshal(msg.Data, &hb) != nil || hb.Node == n.name {
		return
	}
	n.mu.Lock()
	p := n.peerLocked(hb.Node, hb.Boot)
	p.lastSeen = time.Now()
	need := !p.synced || hb.DirSeq != p.dirSeq
	n.mu.Unlock()
	if need {
		n.requestSnapshot(hb.Node)
	}
}

// peerLocked returns the peer named node, new (and unsynced) if it was
// unknown or restarted (another boot).
func (n *Node) peerLocked(node, boot string) *peer {
	p := n.peers[node]
	if p == nil || p.boot != boot {
		if p != nil {
			n.dropPeerLocked(node, p)
		}
		p = &peer{boot: boot, users: make(map[string]Presence), lastSeen: time.Now()}
		n.peers[node] = p
	}
	return p
}

// dropPeerLocked forgets a peer's users; each one shown offline to the
// host if no other node holds them.
func (n *Node) dropPeerLocked(node string, p *peer) {
	delete(n.peers, node)
	for u, pr := range p.users {
		if pr.Connected {
			n.notifyPresenceLocked(u)
		}
	}
}

func (n *Node) expirePeers() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, p := range n.peers {
		if time.Since(p.lastSeen) > heartbeatMiss*heartbeatEvery {
			n.log.Warn("cluster: node gone (no heartbeat)", "peer", name)
			n.m.peersLost.Inc()
			n.dropPeerLocked(name, p)
		}
	}
}

func (n *Node) requestSnapshot(node string) {
	go func() {
		// A snapshot comes in parts (see onSnapshotRequest), the last
		// with More unset.
		inbox := n.nc.NewRespInbox()
		sub, err := n.nc.SubscribeSync(inbox)
		if err != nil {
			return
		}
		defer sub.Unsubscribe()
		if err := n.nc.PublishRequest(subjSnapshot+node, inbox, nil); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
		defer cancel()
		var s snapshot
		for {
			msg, err := sub.NextMsgWithContext(ctx)
			if err != nil {
				return // incomplete: the next heartbeat asks again
			}
			var part snapshot
			if json.Unmarshal(msg.Data, &part) != nil {
				return
			}
			if s.Users == nil {
				s = part
			} else {
				if part.Boot != s.Boot || part.DirSeq != s.DirSeq {
					return
				}
				for u, p := range part.Users {
					s.Users[u] = p
				}
			}
			if s.Users == nil {
				s.Users = make(map[string]Presence)
			}
			if !part.More {
				break
			}
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		p := n.peerLocked(node, s.Boot)
		if p.synced && p.dirSeq >= s.DirSeq {
			return
		}
		old := p.users
		p.users, p.dirSeq, p.synced = s.Users, s.DirSeq, true
		for u := range old {
			if _, ok := p.users[u]; !ok {
				n.notifyPresenceLocked(u)
			}
		}
		for u, pr := range p.users {
			if old[u] != pr {
				n.notifyPresenceLocked(u)
			}
		}
	}()
}

// chunkItems bounds the users or sessions in one bus reply, so that a
// reply stays well under NATS's max_payload (1 MiB by default) however
// many users a node holds; a longer answer comes in several parts.
const chunkItems = 2000

func (n *Node) onSnapshotRequest(msg *nats.Msg) {
	n.mu.Lock()
	all := maps.Clone(n.dirLocal)
	boot, seq := n.bootID(), n.dirSeq
	n.mu.Unlock()
	part := snapshot{Boot: boot, DirSeq: seq, Users: map[string]Presence{}}
	send := func(more bool) {
		part.More = more
		b, _ := json.Marshal(part)
		msg.Respond(b)
		part.Users = map[string]Presence{}
	}
	for u, p := range all {
		if len(part.Users) == chunkItems {
			send(true)
		}
		part.Users[u] = p
	}
	send(false)
}

// SetPresence publishes user's presence here (Connected false: the last
// session left) to the directory.
func (n *Node) SetPresence(user string, p Presence) {
	n.mu.Lock()
	if p.gone() {
		delete(n.dirLocal, user)
	} else {
		n.dirLocal[user] = p
	}
	n.dirSeq++
	ev := dirEvent{Node: n.name, Seq: n.dirSeq, User: user, P: p, Boot: n.bootID()}
	b, _ := json.Marshal(ev)
	n.mu.Unlock()
	n.nc.Publish(subjDirectory, b)
}

func (n *Node) onDirectory(msg *nats.Msg) {
	var ev dirEvent
	if json.Unmarshal(msg.Data, &ev) != nil || ev.Node == n.name {
		return
	}
	n.mu.Lock()
	p := n.peerLocked(ev.Node, ev.Boot)
	p.lastSeen = time.Now()
	switch {
	case p.synced && ev.Seq == p.dirSeq+1, !p.synced && ev.Seq == 1:
		p.dirSeq, p.synced = ev.Seq, true
		if ev.P.gone() {
			delete(p.users, ev.User)
		} else {
			p.users[ev.User] = ev.P
		}
		n.notifyPresenceLocked(ev.User)
		n.mu.Unlock()
	case p.synced && ev.Seq <= p.dirSeq:
		n.mu.Unlock() // old news (a snapshot covered it)
	default:
		n.m.directoryResyncs.Inc()
		n.mu.Unlock()
		n.requestSnapshot(ev.Node)
	}
}

// notifyPresenceLocked tells the host what the cluster (other nodes)
// now shows of user.
func (n *Node) notifyPresenceLocked(user string) {
	p := n.remoteLocked(user)
	go n.host.RemotePresence(user, p)
}

// remoteLocked merges what the other nodes show of user: connected if
// any holds them; the visible state of the most present one.
func (n *Node) remoteLocked(user string) Presence {
	var best Presence
	connected := false
	for _, p := range n.peers {
		pr, ok := p.users[user]
		if !ok {
			continue
		}
		connected = connected || pr.Connected
		if rank(pr.State) > rank(best.State) {
			best = pr
		}
	}
	best.Connected = connected
	return best
}

// gone reports whether p says nothing any more: no session, and nothing
// visible left to show (the offline debounce is over).
func (p Presence) gone() bool { return !p.Connected && (p.State == "" || p.State == "offline") }

// rank orders states for merging several nodes' sessions of one user:
// the most available wins.
func rank(state string) int {
	switch state {
	case "online":
		return 4
	case "busy":
		return 3
	case "away":
		return 2
	case "offline":
		return 1
	}
	return 0
}

// Remote returns what the other nodes show of user.
func (n *Node) Remote(user string) Presence {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.remoteLocked(user)
}

// ---- scatter-gather ---------------------------------------------------

type request struct {
	User   string `json:"user,omitempty"`
	Reason string `json:"reason,omitempty"`
	Text   string `json:"text,omitempty"`
}

type reply struct {
	Node     string    `json:"node"`
	Users    []string  `json:"users,omitempty"`
	Sessions []Session `json:"sessions,omitempty"`
	N        int       `json:"n"`
	// More: another part of this node's answer follows (see chunkItems).
	More bool `json:"more,omitempty"`
}

func (n *Node) onRequest(msg *nats.Msg) {
	kind := strings.TrimPrefix(msg.Subject, subjRequest)
	var req request
	if json.Unmarshal(msg.Data, &req) != nil {
		return
	}
	respond := func(r reply) {
		b, _ := json.Marshal(r)
		msg.Respond(b)
	}
	switch kind {
	case "users":
		users := n.host.LocalUsers()
		for len(users) > chunkItems {
			respond(reply{Node: n.name, Users: users[:chunkItems], More: true})
			users = users[chunkItems:]
		}
		respond(reply{Node: n.name, Users: users})
	case "sessions":
		ss := n.host.LocalSessions()
		for len(ss) > chunkItems {
			respond(reply{Node: n.name, Sessions: ss[:chunkItems], More: true})
			ss = ss[chunkItems:]
		}
		respond(reply{Node: n.name, Sessions: ss})
	case "kick":
		respond(reply{Node: n.name, N: n.host.Kick(req.User, req.Reason)})
	case "broadcast":
		respond(reply{Node: n.name, N: n.host.Broadcast(req.Text)})
	}
}

// gather asks every other node and collects the answers of those that
// answer before the deadline (RequestTimeout, or ctx's): the nodes known
// alive, or as many as answer in time.
func (n *Node) gather(ctx context.Context, kind string, req request) ([]reply, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	n.mu.Lock()
	want := 0
	for _, p := range n.peers {
		if time.Since(p.lastSeen) <= heartbeatMiss*heartbeatEvery {
			want++
		}
	}
	n.mu.Unlock()
	n.m.requests.Inc()
	if want == 0 {
		return nil, nil // no other node heard from: nobody to ask
	}
	if !n.nc.IsConnected() {
		n.m.requestsPartial.Inc()
		return nil, errors.New("cluster: not connected to NATS")
	}
	inbox := n.nc.NewRespInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", kind, err)
	}
	defer sub.Unsubscribe()
	b, _ := json.Marshal(req)
	if err := n.nc.PublishRequest(subjRequest+kind, inbox, b); err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", kind, err)
	}
	var out []reply
	done := map[string]bool{} // nodes whose last part came
	for want == 0 || len(done) < want {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // deadline: those who answered
		}
		var r reply
		if json.Unmarshal(msg.Data, &r) != nil || done[r.Node] || r.Node == n.name {
			continue
		}
		if !r.More {
			done[r.Node] = true
		}
		out = append(out, r)
	}
	if len(done) < want {
		n.m.requestsPartial.Inc()
	}
	return out, nil
}

// Users returns the users online on the other nodes (each node lists
// those others may see), sorted, without duplicates.
func (n *Node) Users(ctx context.Context) ([]string, error) {
	rs, err := n.gather(ctx, "users", request{})
	var out []string
	for _, r := range rs {
		out = append(out, r.Users...)
	}
	slices.Sort(out)
	return slices.Compact(out), err
}

// Sessions returns the sessions on the other nodes.
func (n *Node) Sessions(ctx context.Context) ([]Session, error) {
	rs, err := n.gather(ctx, "sessions", request{})
	var out []Session
	for _, r := range rs {
		for _, s := range r.Sessions {
			s.Node = r.Node
			out = append(out, s)
		}
	}
	return out, err
}

// Kick kicks user's sessions on the other nodes, and returns how many.
func (n *Node) Kick(ctx context.Context, user, reason string) (int, error) {
	rs, err := n.gather(ctx, "kick", request{User: user, Reason: reason})
	total := 0
	for _, r := range rs {
		total += r.N
	}
	return total, err
}

// Broadcast pushes an operator's notice to the sessions on the other
// nodes, and returns how many took it.
func (n *Node) Broadcast(ctx context.Context, text string) (int, error) {
	rs, err := n.gather(ctx, "broadcast", request{Text: text})
	total := 0
	for _, r := range rs {
		total += r.N
	}
	return total, err
}

// Peers returns the names of the other nodes heard from recently.
func (n *Node) Peers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name, p := range n.peers {
		if time.Since(p.lastSeen) <= heartbeatMiss*heartbeatEvery {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// ---- health and fencing -------------------------------------------------

// healthLoop checks NATS and the storage twice a second, fences the node
// after FenceAfter without either, and unfences it once both are back.
func (n *Node) healthLoop() {
	defer n.wg.Done()
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	var probing atomic.Bool
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			now := time.Now()
			if n.nc.IsConnected() {
				n.natsOKAt.Store(now.UnixNano())
			}
			if probing.CompareAndSwap(false, true) {
				go func() {
					defer probing.Store(false)
					ctx, cancel := context.WithTimeout(context.Background(), healthEvery*2)
					defer cancel()
					if err := n.host.ProbeStorage(ctx); err == nil {
						n.storeOKAt.Store(time.Now().UnixNano())
					}
				}()
			}
			n.checkFence(now)
		}
	}
}

// sweepLoop runs the router's sweep every SweepInterval and after each
// reconnect, in a goroutine of its own: a sweep reads storage once per
// user here, and must not hold up the health checks.
func (n *Node) sweepLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.sweepNow:
			n.runSweep()
		case <-t.C:
			n.runSweep()
		}
	}
}

const healthEvery = 500 * time.Millisecond

// checkFence fences or unfences the node from the last good sightings.
func (n *Node) checkFence(now time.Time) {
	natsDown := now.Sub(time.Unix(0, n.natsOKAt.Load()))
	if !n.everUp.Load() {
		natsDown = now.Sub(n.started)
	}
	storeDown := now.Sub(time.Unix(0, n.storeOKAt.Load()))
	bad := natsDown > n.cfg.FenceAfter || storeDown > n.cfg.FenceAfter
	good := natsDown <= 2*healthEvery && storeDown <= 3*healthEvery
	switch {
	case bad && !n.fenced.Load():
		n.fenced.Store(true)
		n.m.fenced.Set(1)
		n.m.fences.Inc()
		n.log.Error("cluster: fencing this node: lost NATS or storage", "nats_down", natsDown.Round(time.Millisecond).String(),
			"storage_down", storeDown.Round(time.Millisecond).String(), "fence_after", n.cfg.FenceAfter.String())
		n.host.Fence(true)
	case good && n.fenced.Load():
		n.fenced.Store(false)
		n.m.fenced.Set(0)
		n.log.Info("cluster: unfenced: NATS and storage are back")
		n.host.Fence(false)
	}
}

// Ready reports whether the node should get clients: nil unless it is
// fenced or has not reached NATS yet.
func (n *Node) Ready() error {
	if n.fenced.Load() {
		return errors.New("cluster: node fenced (lost NATS or storage)")
	}
	if !n.everUp.Load() {
		return errors.New("cluster: not connected to NATS yet")
	}
	return nil
}

// Fenced reports whether the node is fenced.
func (n *Node) Fenced() bool { return n.fenced.Load() }

func (n *Node) runSweep() {
	if !n.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.SweepInterval)
	defer cancel()
	n.sweep(ctx)
}
