package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds the data methods that operators' tools (the admin
// socket) call; transports live elsewhere.

// SessionInfo describes one logged-in connection.
type SessionInfo struct {
	// Node is the cluster node holding the session ("" on a single
	// node).
	Node    string
	ID      uint64
	User    string
	Remote  string
	Since   time.Time // when the connection was accepted
	MsgsIn  uint64    // messages it sent that were stored
	MsgsOut uint64    // messages pushed to it

	// Transport is how the client is connected: "tcp", "tls", or what
	// the connection names itself ("ws" or "wss" for the web gateway).
	Transport string
}

// Sessions returns every logged-in connection that is not closing,
// ordered by user, then by node, then by connection id: in a cluster,
// every node's (each answering within cluster.request_timeout; Node
// names it).
func (s *Server) Sessions() []SessionInfo {
	out := s.localSessions()
	if s.cluster == nil {
		return out
	}
	name := s.cluster.node.Name()
	for i := range out {
		out[i].Node = name
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Cluster.RequestTimeout)
	defer cancel()
	remote, err := s.cluster.node.Sessions(ctx)
	if err != nil {
		s.log.Warn("cluster: sessions: only this node's", "err", err)
	}
	for _, r := range remote {
		out = append(out, SessionInfo{Node: r.Node, ID: r.ID, User: r.User, Remote: r.Remote, Transport: r.Transport,
			Since: r.Since, MsgsIn: r.MsgsIn, MsgsOut: r.MsgsOut})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		return cmp.Or(strings.Compare(a.User, b.User), strings.Compare(a.Node, b.Node), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// localSessions is Sessions on this node.
func (s *Server) localSessions() []SessionInfo {
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(all))
	for _, sess := range all {
		// A closing session (kicked, logging out) has left the online
		// set already: list what Kick and users see.
		if !sess.loggedIn.Load() || sess.isClosing() {
			continue
		}
		out = append(out, SessionInfo{
			ID: sess.id, User: sess.user, Remote: sess.remote, Transport: transportOf(sess.conn), Since: sess.start,
			MsgsIn: sess.msgsIn.Load(), MsgsOut: sess.msgsOut.Load(),
		})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		if c := strings.Compare(a.User, b.User); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// transportOf names how a connection reached the server: a connection
// that names its transport itself (the web gateway's WebSockets), else
// "tls" or "tcp".
func transportOf(c net.Conn) string {
	switch t := c.(type) {
	case interface{ Transport() string }:
		return t.Transport()
	case *tls.Conn:
		return "tls"
	}
	return "tcp"
}

// sessionsOf returns user's sessions.
func (s *Server) sessionsOf(user string) []*session {
	ss := s.router.Sessions(nil, user)
	return ss
}

// Kick disconnects every session of user: each gets a kicked push with
// reason "admin" and the operator's reason as its message. It returns how
// many sessions were kicked (0 when the user is not online). The user's
// pending messages stay pending.
func (s *Server) Kick(user, reason string) int {
	if reason == "" {
		reason = "disconnected by an operator"
	}
	n := s.kickHere(user, reason)
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Cluster.RequestTimeout)
		defer cancel()
		m, err := s.cluster.node.Kick(ctx, user, reason)
		if err != nil {
			s.log.Warn("cluster: kick: only this node's sessions", "err", err)
		}
		n += m
	}
	return n
}

// kickHere is Kick on this node.
func (s *Server) kickHere(user, reason string) int {
	ss := s.sessionsOf(user)
	for _, sess := range ss {
		sess.kick(CloseKicked, reason)
	}
	if len(ss) > 0 {
		s.log.Info("user kicked", "user", user, "sessions", len(ss), "reason", reason)
	}
	return len(ss)
}

// Broadcast pushes an operator's notice to every logged-in session, as
// {"type":"notice","message":...} (a push type clients that do not know it
// ignore), and returns how many sessions it was queued for.
func (s *Server) Broadcast(text string) int {
	n := s.broadcastHere(text)
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Cluster.RequestTimeout)
		defer cancel()
		m, err := s.cluster.node.Broadcast(ctx, text)
		if err != nil {
			s.log.Warn("cluster: broadcast: only this node's sessions", "err", err)
		}
		n += m
	}
	return n
}

// broadcastHere is Broadcast on this node.
func (s *Server) broadcastHere(text string) int {
	frame := protocol.StartFrame(nil, protocol.TypeNotice).Str("message", text).End()
	s.mu.Lock()
	targets := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		if sess.loggedIn.Load() {
			targets = append(targets, sess)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, sess := range targets {
		if sess.enqueue(frame) {
			n++
		}
	}
	s.log.Info("notice broadcast", "sessions", n)
	return n
}

// Stats are the server's counters.
type Stats struct {
	Started          time.Time
	Connections      int    // open now
	LoggedIn         int    // open and logged in
	UsersOnline      int    // distinct users logged in
	Accepted         uint64 // connections accepted since start
	MessagesAccepted uint64 // sends stored since start
	MessagesPushed   uint64 // pushes queued since start
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Started:          s.started,
		Accepted:         s.accepted.Load(),
		MessagesAccepted: s.msgsAccepted.Load(),
		MessagesPushed:   s.msgsPushed.Load(),
		UsersOnline:      s.router.Count(),
	}
	s.mu.Lock()
	st.Connections = len(s.sessions)
	for sess := range s.sessions {
		if sess.loggedIn.Load() {
			st.LoggedIn++
		}
	}
	s.mu.Unlock()
	return st
}

// counters of a Server, kept apart for the metrics and Stats.
type counters struct {
	started      time.Time
	accepted     atomic.Uint64
	msgsAccepted atomic.Uint64
	msgsPushed   atomic.Uint64
}
