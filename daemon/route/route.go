// Package route owns "who is connected where": which sessions each
// logged-in user has, and the epoch that orders pushes against storage
// commits. The daemon talks to a Router; Local is the single-node
// implementation, and a clustered router (sessions on other nodes) is a
// second implementation of the same interface, so that session and
// pipeline code do not change with it.
//
// # Epochs
//
// Epochs keep login and delivery exact. The pipeline calls Advance after
// each storage commit and before it answers or pushes anything of that
// batch; a session is tagged with the epoch current when it joined, and
// Push reaches it only for epochs after that. A message whose ok a client
// could have seen before a login completed was committed before the join,
// so that login counts it as pending and it is not pushed as well.
package route

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Session is a logged-in connection as a Router holds it. Implementations
// are comparable (pointers); User never changes while the session is
// joined.
type Session interface {
	comparable
	User() string
}

// AllEpochs, as Push's epoch, reaches every session of a user whatever its
// join epoch.
const AllEpochs = ^uint64(0)

// Deliverer queues a frame on a session without blocking (the daemon's
// sessions and their bounded output queues). A router calls it for the
// sessions it holds; a clustered router forwards the frame to the nodes
// holding the others, whose daemons deliver it there.
type Deliverer[S Session] interface {
	Deliver(s S, frame []byte)
}

// Router is the online set. Every method is safe for concurrent use and
// none blocks on a connection.
type Router[S Session] interface {
	// Join adds s to its user's sessions, tagged with the current epoch.
	Join(s S)
	// Leave removes s; it is a no-op if s is not joined. It takes no lock
	// that Push holds while delivering, so a session may call it with its
	// own locks held (it does, from the one place where it starts to
	// close).
	Leave(s S)
	// Online reports whether user has at least one session.
	Online(user string) bool
	// Users returns the online users, sorted byte-wise.
	Users() []string
	// Count returns how many users are online.
	Count() int
	// Advance starts a new epoch and returns it.
	Advance() uint64
	// Push delivers frame to every session of user that joined before
	// epoch (AllEpochs: every session), through d. d must not block; it
	// runs with no router lock held, on a snapshot of the user's sessions
	// taken when Push was called. (A Deliverer, not a closure: the hot
	// path passes a long-lived one and allocates nothing.)
	Push(user string, epoch uint64, frame []byte, d Deliverer[S])
	// PushSeq is Push for a direct message that the storage numbered
	// (seq > 0, the recipient's sequence number; 0 is Push): a clustered
	// router delivers a user's messages in seq order and recovers the
	// ones its bus lost.
	PushSeq(user string, epoch uint64, seq int64, frame []byte, d Deliverer[S])
	// PushHere is Push to the sessions this router holds only, for what
	// every node computes for its own sessions (presence).
	PushHere(user string, epoch uint64, frame []byte, d Deliverer[S])
	// Sessions appends user's sessions held here to dst (operators'
	// actions: kick).
	Sessions(dst []S, user string) []S
}

// member is a joined session and the epoch it joined at.
type member[S Session] struct {
	s     S
	epoch uint64
}

// Local is the Router of a single qqd: a map from user to an immutable
// slice of members, replaced (never changed in place) by Join and Leave,
// so that Push iterates a snapshot without holding the lock.
type Local[S Session] struct {
	mu    sync.RWMutex
	users map[string][]member[S]
	epoch atomic.Uint64
}

// NewLocal returns an empty Local router.
func NewLocal[S Session]() *Local[S] { return &Local[S]{users: make(map[string][]member[S])} }

// Join implements Router.
func (r *Local[S]) Join(s S) {
	user := s.User()
	r.mu.Lock()
	ms := r.users[user]
	r.users[user] = append(ms[:len(ms):len(ms)], member[S]{s: s, epoch: r.epoch.Load()})
	r.mu.Unlock()
}

// Leave implements Router.
func (r *Local[S]) Leave(s S) {
	user := s.User()
	r.mu.Lock()
	defer r.mu.Unlock()
	ms := r.users[user]
	i := slices.IndexFunc(ms, func(m member[S]) bool { return m.s == s })
	switch {
	case i < 0:
	case len(ms) == 1:
		delete(r.users, user)
	default:
		r.users[user] = slices.Delete(slices.Clone(ms), i, i+1)
	}
}

// Online implements Router.
func (r *Local[S]) Online(user string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users[user]) > 0
}

// Users implements Router.
func (r *Local[S]) Users() []string {
	r.mu.RLock()
	names := make([]string, 0, len(r.users))
	for u := range r.users {
		names = append(names, u)
	}
	r.mu.RUnlock()
	slices.Sort(names)
	return names
}

// Count implements Router.
func (r *Local[S]) Count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users)
}

// Advance implements Router.
func (r *Local[S]) Advance() uint64 { return r.epoch.Add(1) }

// Push implements Router.
func (r *Local[S]) Push(user string, epoch uint64, frame []byte, d Deliverer[S]) {
	r.mu.RLock()
	ms := r.users[user]
	r.mu.RUnlock()
	for _, m := range ms {
		if m.epoch < epoch {
			d.Deliver(m.s, frame)
		}
	}
}

// PushSeq implements Router: the single node's order is its commit order.
func (r *Local[S]) PushSeq(user string, epoch uint64, _ int64, frame []byte, d Deliverer[S]) {
	r.Push(user, epoch, frame, d)
}

// PushHere implements Router: every session is here.
func (r *Local[S]) PushHere(user string, epoch uint64, frame []byte, d Deliverer[S]) {
	r.Push(user, epoch, frame, d)
}

// Sessions implements Router.
func (r *Local[S]) Sessions(dst []S, user string) []S {
	r.mu.RLock()
	ms := r.users[user]
	r.mu.RUnlock()
	for _, m := range ms {
		dst = append(dst, m.s)
	}
	return dst
}
