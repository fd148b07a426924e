package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"

	"github.com/qqchat/qq/daemon/cluster"
	"github.com/qqchat/qq/daemon/groups"
	"github.com/qqchat/qq/daemon/presence"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/daemon/route"
	"github.com/qqchat/qq/plugins"
)

// This file joins the server to a cluster (cluster.enabled): the
// cluster.Router replaces the single node's route.Local, and the server
// is the node's cluster.Host. See package cluster and docs/cluster.md.

// clustered is the server's cluster membership; nil on a single node.
type clustered struct {
	node   *cluster.Node
	router *cluster.Router[*session]
	// remoteShown is what this node last pushed to its users of another
	// node's user (see RemotePresence), so a directory event that
	// changes nothing visible pushes nothing.
	mu          sync.Mutex
	remoteShown map[string]presence.Presence
}

// NodeName returns the name a cluster node goes by: cluster.node, or the
// host name made fit for it (lowercase, other bytes than [a-z0-9_-] as
// '-').
func NodeName(configured string) string {
	if configured != "" {
		return configured
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "qqd"
	}
	h = strings.ToLower(h)
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// startCluster connects the server to the cluster; New calls it before
// anything can log in.
func (s *Server) startCluster(deps Deps) error {
	cfg := s.cfg.Cluster
	cfg.Node = NodeName(cfg.Node)
	node, err := cluster.Start(cfg, cluster.Options{Host: clusterHost{s}, Logger: s.log, Registry: deps.Registry})
	if err != nil {
		return err
	}
	r := cluster.NewRouter[*session](node)
	s.cluster = &clustered{node: node, router: r, remoteShown: make(map[string]presence.Presence)}
	s.router = r
	return nil
}

// attachCluster gives the router its deliverers once the pipeline exists.
func (s *Server) attachCluster() {
	if s.cluster == nil {
		return
	}
	s.cluster.router.Attach(msgPusher{s}, enqueuer{}, cluster.Hooks{
		Presence: func(user string) cluster.Presence {
			p := s.presence.Shown(user)
			return cluster.Presence{State: p.State.String(), Text: p.Text}
		},
		Typing:     func(user, from string) bool { return !s.presence.Blocks(user, from) },
		Social:     s.remoteSocial,
		GroupEntry: s.deliverRemoteEntry,
	})
}

// closeCluster leaves the cluster (Shutdown, after the sessions are
// gone).
func (s *Server) closeCluster() {
	if s.cluster != nil {
		s.cluster.node.Close()
	}
}

// msgPusher is a route.Deliverer of direct messages for any goroutine
// (the pipeline's own defers the write to the end of its batch, and is
// for its goroutine only): it queues the frame and counts the push.
type msgPusher struct{ s *Server }

func (p msgPusher) Deliver(s *session, frame []byte) {
	if s.enqueue(frame) {
		s.msgsOut.Add(1)
		p.s.msgsPushed.Add(1)
	}
}

// enqueuer is a route.Deliverer that queues a frame that came over the
// bus on a session (a group entry only if it keeps the group's pushes
// in seq order there: see enqueueGroupEntry).
type enqueuer struct{}

func (enqueuer) Deliver(s *session, frame []byte) { s.enqueueGroupEntry(frame) }

// fenced reports whether this node is fenced: it takes no logins.
func (s *Server) fenced() bool { return s.cluster != nil && s.cluster.node.Fenced() }

var errFenced = protocol.Errorf(protocol.CodeUnavailable, "this server is cut off from its cluster; connect again to reach another")

// shown is what a user's friends see of them: this node's registry when
// the user is here, else what the cluster's other nodes show.
func (s *Server) shown(user string) presence.Presence {
	if s.cluster == nil || s.presence.Here(user) {
		return s.presence.Shown(user)
	}
	return remotePresence(s.cluster.node.Remote(user))
}

func remotePresence(p cluster.Presence) presence.Presence {
	st, ok := presence.ParseState(p.State)
	if !ok {
		return presence.Presence{State: presence.Offline}
	}
	return presence.Presence{State: st, Text: p.Text}
}

// presenceChanged tells the cluster's directory what user shows now.
func (s *Server) presenceChanged(user string) {
	if s.cluster != nil {
		s.cluster.router.PresenceChanged(user)
	}
}

// onlineUsers lists the users others may see online, cluster-wide.
func (s *Server) onlineUsers(ctx context.Context) []string {
	users := s.visibleLocalUsers()
	if s.cluster == nil {
		return users
	}
	remote, err := s.cluster.node.Users(ctx)
	if err != nil {
		s.log.Warn("cluster: users: only this node's", "err", err)
	}
	return mergeSorted(users, remote)
}

func (s *Server) visibleLocalUsers() []string {
	users := s.router.Users()
	visible := users[:0]
	for _, u := range users {
		if !s.presence.Invisible(u) {
			visible = append(visible, u)
		}
	}
	return visible
}

// mergeSorted merges two sorted lists without duplicates.
func mergeSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// clusterHost is the server as its node's cluster.Host.
type clusterHost struct{ s *Server }

func (h clusterHost) Pending(ctx context.Context, user string, limit int) ([]protocol.Message, bool, error) {
	ps := h.s.acquirePlugs()
	defer ps.release()
	return ps.storage.Pending(ctx, user, limit)
}

// ProbeStorage asks the storage for a user that cannot exist: "unknown
// user" is the storage answering.
func (h clusterHost) ProbeStorage(ctx context.Context) error {
	ps := h.s.acquirePlugs()
	defer ps.release()
	_, err := ps.storage.PasswordHash(ctx, "qq probe")
	if errors.Is(err, plugins.ErrUnknownUser) {
		return nil
	}
	if err == nil {
		return errors.New("probe user exists")
	}
	return err
}

// Fence, with true, sends every client here kicked shutdown (they
// reconnect, through the balancer, to a healthy node) and, as
// fenced() is then true, refuses logins until the node unfences.
func (h clusterHost) Fence(fenced bool) {
	if !fenced {
		return
	}
	h.s.mu.Lock()
	all := make([]*session, 0, len(h.s.sessions))
	for sess := range h.s.sessions {
		all = append(all, sess)
	}
	h.s.mu.Unlock()
	for _, sess := range all {
		sess.kick(CloseFenced, "this server is cut off from its cluster; connect again to reach another")
	}
}

func (h clusterHost) LocalUsers() []string { return h.s.visibleLocalUsers() }

func (h clusterHost) LocalSessions() []cluster.Session {
	var out []cluster.Session
	for _, si := range h.s.localSessions() {
		out = append(out, cluster.Session{ID: si.ID, User: si.User, Remote: si.Remote, Transport: si.Transport,
			Since: si.Since, MsgsIn: si.MsgsIn, MsgsOut: si.MsgsOut})
	}
	return out
}

func (h clusterHost) Kick(user, reason string) int { return h.s.kickHere(user, reason) }

func (h clusterHost) Broadcast(text string) int { return h.s.broadcastHere(text) }

// RemotePresence pushes what another node now shows of user to their
// friends here, unless this node's registry speaks for user (they are
// here) or nothing visible changed.
func (h clusterHost) RemotePresence(user string, p cluster.Presence) {
	s := h.s
	if s.presence.Here(user) {
		return
	}
	shown := remotePresence(p)
	c := s.cluster
	c.mu.Lock()
	last, known := c.remoteShown[user]
	if !known {
		last = presence.Presence{State: presence.Offline}
	}
	if shown == last {
		c.mu.Unlock()
		return
	}
	if shown.State == presence.Offline {
		delete(c.remoteShown, user)
	} else {
		c.remoteShown[user] = shown
	}
	c.mu.Unlock()
	to := s.presence.Watchers(user)
	if len(to) == 0 {
		return
	}
	frame := presenceFrame(user, shown)
	for _, w := range to {
		var n enqueueCount
		s.router.PushHere(w, route.AllEpochs, frame, &n)
		s.m.presencePushes.Add(float64(n))
	}
}

// ClusterPeers lists the other cluster nodes this one hears (none on a
// single node).
func (s *Server) ClusterPeers() []string {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.node.Peers()
}

// pushTyping pushes a typing frame from from to user: here, and over the
// bus to user's other nodes (which check blocks there); a single node
// pushes it here only. It returns how many sessions here took it.
func (s *Server) pushTypingTo(user, from string, frame []byte) int {
	if s.cluster == nil {
		return s.pushTo(user, frame)
	}
	var c enqueueCount
	s.cluster.router.PushTyping(user, from, frame, &c)
	return int(c)
}

// socialChanged tells the node(s) holding the other side of a friendship
// or block change, so that their presence registries follow (a single
// node changed its own registry already).
func (s *Server) socialChanged(ev cluster.SocialEvent) {
	if s.cluster == nil {
		return
	}
	for _, u := range []string{ev.A, ev.B} {
		s.cluster.router.PublishSocial(u, ev)
	}
}

// remoteSocial applies another node's friendship or block change to the
// registry here, and pushes the presence updates it brings (a new friend
// sees the other's presence).
func (s *Server) remoteSocial(user string, ev cluster.SocialEvent) {
	switch ev.Op {
	case "befriend":
		s.pushPresences(s.presence.Befriend(ev.A, ev.B))
		// The other side may be on another node: show what the
		// directory says of them.
		other := ev.A
		if other == user {
			other = ev.B
		}
		s.showRemoteFriend(user, other)
	case "unfriend":
		s.presence.Unfriend(ev.A, ev.B)
	case "block":
		s.presence.Block(ev.A, ev.B)
	case "unblock":
		s.presence.Unblock(ev.A, ev.B)
	}
}

// deliverRemoteEntry delivers a group entry that another node committed
// to the members here, through the group's lock and in its seq order:
// a gap below it (an entry still on the bus, or lost) is filled from the
// log first, and an entry at or below what was pushed here is skipped
// (it comes once per member here). Membership entries update the view
// here, as local ones do.
func (s *Server) deliverRemoteEntry(data []byte) {
	var e plugins.GroupEntry
	if err := json.Unmarshal(data, &e); err != nil || e.Group == 0 || e.Seq == 0 {
		s.log.Warn("cluster: a group entry from the bus did not decode", "err", err)
		return
	}
	ps := s.acquirePlugs()
	defer ps.release()
	if ps.groups == nil {
		return
	}
	load := s.loadGroup(ps.groups)
	err := s.groupCache.Do(e.Group, func(g *groups.Group) error {
		if err := load(g); err != nil {
			return err
		}
		// Loaded after e was committed: e is still to be pushed here.
		g.Pushed = min(g.Pushed, e.Seq-1)
		return nil
	}, func(g *groups.Group) error {
		s.deliverFrom(ps.groups, g, &e, route.AllEpochs, nil, true)
		return nil
	})
	if err != nil {
		s.log.Warn("cluster: group members could not be read; entry not pushed here", "group", e.Group, "seq", e.Seq, "err", err)
	}
}

// showRemoteFriend pushes to user's sessions here what other, a new
// friend whose sessions are on other nodes, shows (as the directory has
// it); nothing for an offline friend or one who is here (the registry's
// Befriend covers those).
func (s *Server) showRemoteFriend(user, other string) {
	if s.cluster == nil || s.presence.Here(other) {
		return
	}
	if p := s.shown(other); p.State != presence.Offline {
		var c enqueueCount
		s.router.PushHere(user, route.AllEpochs, presenceFrame(other, p), &c)
		s.m.presencePushes.Add(float64(c))
	}
}
