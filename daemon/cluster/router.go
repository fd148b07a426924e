package cluster

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/daemon/route"
)

// Router is the route.Router of a cluster node: the sessions here are
// held by a route.Local, and every push is also published on the bus for
// the nodes that hold the user's other sessions. Direct messages with a
// seq are delivered here in seq order, with gaps filled from storage (see
// the package comment).
type Router[S route.Session] struct {
	local *route.Local[S]
	node  *Node
	// msgD delivers direct messages that came over the bus or were held
	// (counted as pushed messages); it must be safe to call from any
	// goroutine. frameD delivers any other frame.
	msgD, frameD route.Deliverer[S]
	// hooks are the host's for bus events that are more than a frame.
	hooks Hooks

	mu    sync.Mutex
	users map[string]*userSeq
}

// userSeq orders the direct messages of one user online here.
type userSeq struct {
	mu     sync.Mutex
	joined time.Time
	// floor is the highest seq up to which everything was delivered (or
	// is known settled), once known is set (at the first message).
	floor int64
	known bool
	held  map[int64]heldMsg
	// gap is set while a gap timer or fill is under way.
	gap bool
}

// heldMsg is a message waiting for the ones before it. Whatever pushed
// it, it is delivered through msgD: it may be released from another
// goroutine than its pusher's (a bus arrival or a gap fill), and a local
// pusher's Deliverer (the pipeline's) is for its own goroutine only.
type heldMsg struct {
	frame []byte
	epoch uint64
}

// NewRouter returns the router of node n. Attach must be called before
// the first Join.
func NewRouter[S route.Session](n *Node) *Router[S] {
	return &Router[S]{local: route.NewLocal[S](), node: n, users: make(map[string]*userSeq)}
}

// Hooks are what a host does with bus events that are more than a frame
// to deliver.
type Hooks struct {
	// Presence returns what friends see of a user here, for the
	// directory.
	Presence func(user string) Presence
	// Typing reports whether from's typing push may reach user here (user
	// does not block from).
	Typing func(user, from string) bool
	// Social applies a friendship or block change that another node made
	// to the state here (user has sessions here).
	Social func(user string, ev SocialEvent)
	// GroupEntry delivers a group entry that another node committed (as
	// published by PublishGroupEntry) to the members here, in the group's
	// seq order. It comes once per member here who sees it; the host
	// delivers it to all of them at the first and skips the others.
	GroupEntry func(entry []byte)
}

// SocialEvent is a change of friendship or block between A and B that
// the node holding the other side must apply (its presence registry).
type SocialEvent struct {
	Op string `json:"op"` // befriend, unfriend, block (A blocks B), unblock (A unblocks B)
	A  string `json:"a"`
	B  string `json:"b"`
}

// Attach sets the deliverers for pushes that come over the bus (msgD for
// direct messages, frameD for the rest) and the host's hooks, and starts
// taking the bus's pushes and running sweeps.
func (r *Router[S]) Attach(msgD, frameD route.Deliverer[S], hooks Hooks) {
	r.msgD, r.frameD, r.hooks = msgD, frameD, hooks
	r.node.run(r.remote, r.sweep)
}

// PushTyping pushes from's typing frame to user's sessions here (through
// d) and on other nodes, where each checks that user does not block
// from.
func (r *Router[S]) PushTyping(user, from string, frame []byte, d route.Deliverer[S]) {
	r.local.Push(user, route.AllEpochs, frame, d)
	r.node.publish(user, kindTyping, 0, from, frame)
}

// PublishGroupEntry sends a group entry that this node committed to the
// nodes holding user (a member who sees it), in the storage's form
// (entry, JSON), which the receiving node orders by the group's seq
// against the log (Hooks.GroupEntry).
func (r *Router[S]) PublishGroupEntry(user string, entry []byte) {
	r.node.publish(user, kindGroup, 0, "", entry)
}

// PublishSocial tells the nodes holding user's sessions about ev.
func (r *Router[S]) PublishSocial(user string, ev SocialEvent) {
	b, _ := json.Marshal(ev)
	r.node.publish(user, kindSocial, 0, "", b)
}

// Join implements route.Router: the user's first session here
// subscribes to their pushes and tells the directory.
func (r *Router[S]) Join(s S) {
	user := s.User()
	r.mu.Lock()
	first := !r.local.Online(user)
	r.local.Join(s)
	if first {
		r.users[user] = &userSeq{joined: time.Now(), held: map[int64]heldMsg{}}
	}
	r.mu.Unlock()
	if first {
		r.node.subscribe(user)
		r.node.SetPresence(user, r.presence(user))
	}
}

// Leave implements route.Router.
func (r *Router[S]) Leave(s S) {
	user := s.User()
	r.mu.Lock()
	r.local.Leave(s)
	last := !r.local.Online(user)
	if last {
		delete(r.users, user)
	}
	r.mu.Unlock()
	if last {
		r.node.unsubscribe(user)
		// Still shown as before until the debounce says otherwise
		// (PresenceChanged).
		p := r.presence(user)
		p.Connected = false
		r.node.SetPresence(user, p)
	}
}

// presence is what friends see of user here, as connected.
func (r *Router[S]) presence(user string) Presence {
	p := Presence{State: "online"}
	if r.hooks.Presence != nil {
		p = r.hooks.Presence(user)
	}
	p.Connected = true
	return p
}

// PresenceChanged publishes user's new visible presence here to the
// directory (a user with a session here, or whose offline debounce here
// just ended).
func (r *Router[S]) PresenceChanged(user string) {
	p := r.presence(user)
	p.Connected = r.local.Online(user)
	r.node.SetPresence(user, p)
}

// Online implements route.Router: a session here or on another node.
func (r *Router[S]) Online(user string) bool {
	return r.local.Online(user) || r.node.Remote(user).Connected
}

// Users implements route.Router: the users with a session here (the
// cluster-wide list is Node.Users, a request to every node).
func (r *Router[S]) Users() []string { return r.local.Users() }

// Count implements route.Router: users with a session here.
func (r *Router[S]) Count() int { return r.local.Count() }

// Advance implements route.Router (epochs are per node: they order this
// node's commits against this node's logins).
func (r *Router[S]) Advance() uint64 { return r.local.Advance() }

// Sessions implements route.Router: the sessions here.
func (r *Router[S]) Sessions(dst []S, user string) []S { return r.local.Sessions(dst, user) }

// Push implements route.Router: to the sessions here, and over the bus
// to the other nodes holding user.
func (r *Router[S]) Push(user string, epoch uint64, frame []byte, d route.Deliverer[S]) {
	r.local.Push(user, epoch, frame, d)
	r.node.publish(user, kindFrame, 0, "", frame)
}

// PushHere implements route.Router: to the sessions here only.
func (r *Router[S]) PushHere(user string, epoch uint64, frame []byte, d route.Deliverer[S]) {
	r.local.Push(user, epoch, frame, d)
}

// PushSeq implements route.Router: a direct message with its seq, to the
// other nodes and, in seq order, to the sessions here.
func (r *Router[S]) PushSeq(user string, epoch uint64, seq int64, frame []byte, d route.Deliverer[S]) {
	if seq == 0 {
		r.Push(user, epoch, frame, d)
		return
	}
	r.node.publish(user, kindMsg, seq, "", frame)
	r.offer(user, seq, frame, epoch, d)
}

// remote takes a push that another node published for a user here.
func (r *Router[S]) remote(user, kind string, seq int64, from string, frame []byte) {
	switch {
	case kind == kindMsg && seq > 0:
		r.offer(user, seq, frame, route.AllEpochs, r.msgD)
	case kind == kindTyping:
		if r.hooks.Typing == nil || r.hooks.Typing(user, from) {
			r.local.Push(user, route.AllEpochs, frame, r.frameD)
		}
	case kind == kindGroup:
		if r.hooks.GroupEntry != nil && r.local.Online(user) {
			r.hooks.GroupEntry(frame)
		}
	case kind == kindSocial:
		var ev SocialEvent
		if json.Unmarshal(frame, &ev) == nil && r.hooks.Social != nil && r.local.Online(user) {
			r.hooks.Social(user, ev)
		}
	default:
		r.local.Push(user, route.AllEpochs, frame, r.frameD)
	}
}

func (r *Router[S]) seqOf(user string) *userSeq {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.users[user]
}

// offer delivers the message seq of user here in seq order: at once if it
// is the next one, held if it is ahead of a missing one (and the missing
// ones are read from storage after GapWait), dropped if delivered
// already. The first message of a user here is held too while the
// pending messages are read once, to learn which seqs came before it
// since the user's first session here joined.
func (r *Router[S]) offer(user string, seq int64, frame []byte, epoch uint64, d route.Deliverer[S]) {
	u := r.seqOf(user)
	if u == nil {
		return // no session here (any more)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, dup := u.held[seq]; dup || seq <= u.floor {
		r.node.m.duplicates.Inc()
		return
	}
	if !u.known || seq != u.floor+1 {
		if len(u.held) >= maxHeld {
			// Storage has it: the fill reads it back.
			r.node.m.heldDropped.Inc()
		} else {
			u.held[seq] = heldMsg{frame: slices.Clone(frame), epoch: epoch}
		}
		if !u.gap {
			u.gap = true
			wait := GapWait
			if !u.known {
				wait = 0
			}
			time.AfterFunc(wait, func() { r.fillGap(user, u) })
		}
		return
	}
	r.deliverLocked(user, u, seq, frame, epoch, d)
	r.drainLocked(user, u)
}

// deliverLocked delivers one message and advances the floor.
func (r *Router[S]) deliverLocked(user string, u *userSeq, seq int64, frame []byte, epoch uint64, d route.Deliverer[S]) {
	r.local.Push(user, epoch, frame, d)
	u.floor = seq
}

// drainLocked delivers the held messages that follow the floor.
func (r *Router[S]) drainLocked(user string, u *userSeq) {
	for {
		h, ok := u.held[u.floor+1]
		if !ok {
			return
		}
		delete(u.held, u.floor+1)
		r.deliverLocked(user, u, u.floor+1, h.frame, h.epoch, r.msgD)
	}
}

// flushLocked delivers everything held, in seq order, passing the seqs
// that are missing (storage no longer has them pending: acked on another
// session, so settled).
func (r *Router[S]) flushLocked(user string, u *userSeq) {
	seqs := slices.Sorted(maps.Keys(u.held))
	for _, seq := range seqs {
		h, ok := u.held[seq]
		if !ok || seq <= u.floor {
			continue // delivered by drainLocked meanwhile
		}
		delete(u.held, seq)
		r.deliverLocked(user, u, seq, h.frame, h.epoch, r.msgD)
		r.drainLocked(user, u)
	}
}

// fillGap runs when a message arrived ahead of a missing one and the gap
// did not close within GapWait (or at once for a user's first message
// here): it reads the user's pending messages and delivers, in seq order,
// every one above the floor together with the held ones.
func (r *Router[S]) fillGap(user string, u *userSeq) {
	if r.seqOf(user) != u {
		return // the user's sessions here are gone
	}
	u.mu.Lock()
	if len(u.held) == 0 {
		u.gap = false
		u.mu.Unlock()
		return
	}
	u.mu.Unlock()
	r.node.m.gapFills.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), r.node.cfg.RequestTimeout)
	msgs, err := r.pending(ctx, user)
	cancel()
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		r.node.m.sweepErrors.Inc()
		// The held messages wait for the next try.
		time.AfterFunc(5*GapWait, func() { r.fillGap(user, u) })
		return
	}
	u.gap = false
	if !u.known {
		r.setFloorLocked(u, msgs)
		if !u.known {
			for s := range u.held {
				if !u.known || s-1 < u.floor {
					u.floor, u.known = s-1, true
				}
			}
		}
	}
	r.catchUpLocked(u, msgs, 0)
	r.flushLocked(user, u)
}

// setFloorLocked sets the floor of a user with no message delivered here
// yet, from their pending messages: those stored since shortly before the
// user's first session here joined are this node's to push (earlier ones
// are counted in the login's pending, for the client to fetch).
func (r *Router[S]) setFloorLocked(u *userSeq, msgs []protocol.Message) {
	cut := u.joined.Add(-sweepClockSkew).UnixMilli()
	for i := range msgs {
		if msgs[i].TS >= cut && msgs[i].Seq > 0 {
			u.floor, u.known = msgs[i].Seq-1, true
			return
		}
	}
}

// catchUpLocked holds the pending messages above the floor that are not
// held already; source indexes the recovered counter (0 gap, 1 sweep).
func (r *Router[S]) catchUpLocked(u *userSeq, msgs []protocol.Message, source int) {
	for i := range msgs {
		m := &msgs[i]
		if m.Seq <= u.floor {
			continue
		}
		if _, ok := u.held[m.Seq]; ok {
			continue
		}
		r.node.m.recovered[source].Inc()
		u.held[m.Seq] = heldMsg{frame: protocol.AppendPush(nil, m), epoch: route.AllEpochs}
	}
}

// maxHeld bounds the messages held for one user while a gap is open (the
// storage is slow or down); more are not kept in memory: they are in
// storage, and the gap fill reads them back (up to sweepPage; later
// sweeps read the rest as the user acks).
const maxHeld = 1024

// sweepPage bounds the pending messages one sweep reads per user.
const sweepPage = 200

func (r *Router[S]) pending(ctx context.Context, user string) ([]protocol.Message, error) {
	msgs, _, err := r.node.host.Pending(ctx, user, sweepPage)
	return msgs, err
}

// sweep reads the pending messages of every user here and delivers those
// the bus lost: above the floor, or (for a user with no push seen yet)
// committed since shortly before their first session here joined.
func (r *Router[S]) sweep(ctx context.Context) {
	r.node.m.sweeps.Inc()
	r.mu.Lock()
	users := make(map[string]*userSeq, len(r.users))
	for name, u := range r.users {
		users[name] = u
	}
	r.mu.Unlock()
	for name, u := range users {
		if ctx.Err() != nil {
			return
		}
		msgs, err := r.pending(ctx, name)
		if err != nil {
			r.node.m.sweepErrors.Inc()
			continue
		}
		u.mu.Lock()
		if !u.gap {
			if !u.known {
				r.setFloorLocked(u, msgs)
			}
			if u.known {
				r.catchUpLocked(u, msgs, 1)
				r.flushLocked(name, u)
			}
		}
		u.mu.Unlock()
	}
}

// sweepClockSkew is how far before a user's first login here the sweep
// looks for messages the bus may have lost, for a user with no push seen
// yet (timestamps are the storage's clock; nodes' clocks may differ this
// much). Earlier pending messages are counted in the login's pending and
// fetched by the client.
const sweepClockSkew = 2 * time.Second
