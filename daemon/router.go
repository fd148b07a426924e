package daemon

import (
	"slices"
	"sync"
	"sync/atomic"
)

// router is the online set: which sessions each logged-in user has. Pushes
// iterate a user's sessions under the read lock and only append to their
// bounded queues, so routing never blocks on a connection.
//
// Epochs keep login and delivery exact: the pipeline advances the epoch
// after each storage commit and before it answers or pushes anything of
// that batch; a session records the epoch at which it joined, and receives
// pushes only of batches with a later epoch. A message whose ok a client
// could have seen before a login completed was committed before the join,
// so it is counted in the login's pending and not pushed.
type router struct {
	mu    sync.RWMutex
	users map[string][]*session
	epoch atomic.Uint64
}

func newRouter() *router { return &router{users: make(map[string][]*session)} }

func (r *router) add(s *session) {
	r.mu.Lock()
	s.joinEpoch = r.epoch.Load()
	r.users[s.user] = append(r.users[s.user], s)
	r.mu.Unlock()
}

// advance starts a new epoch and returns it. The pipeline calls it after a
// commit.
func (r *router) advance() uint64 { return r.epoch.Add(1) }

// remove takes s out of its user's set; it is a no-op if s is not there.
func (r *router) remove(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ss := r.users[s.user]
	i := slices.Index(ss, s)
	if i < 0 {
		return
	}
	if len(ss) == 1 {
		delete(r.users, s.user)
		return
	}
	r.users[s.user] = slices.Delete(ss, i, i+1)
}

// online reports whether user has at least one session.
func (r *router) online(user string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users[user]) > 0
}

// each calls fn for every session of user that joined before epoch, under
// the read lock: fn must not block.
func (r *router) each(user string, epoch uint64, fn func(*session)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.users[user] {
		if s.joinEpoch < epoch {
			fn(s)
		}
	}
}

// count returns how many users are online.
func (r *router) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users)
}

// list returns the online user names sorted byte-wise.
func (r *router) list() []string {
	r.mu.RLock()
	names := make([]string, 0, len(r.users))
	for u := range r.users {
		names = append(names, u)
	}
	r.mu.RUnlock()
	slices.Sort(names)
	return names
}
