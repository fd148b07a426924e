// Package groups keeps the daemon's view of group membership, the part of
// it that fan-out and the order of a group's log need: for each group in
// use, its members with their role and the seq they joined at, behind a
// lock of its own.
//
// The lock orders membership against delivery. A change of membership is
// committed to storage and applied here while the group's lock is held
// (Do), and every push of a group entry takes the same lock (Do) and
// reads the members then: so an entry committed after a member's removal
// (a higher seq) is pushed after the removal was applied here, and never
// reaches them; an entry before a member's join is not pushed to them
// either (their join seq says so).
//
// Pushes also go out in seq order. A group message is committed in a
// storage batch outside the lock and pushed after, so a membership change
// committed under the lock meanwhile may carry a higher seq than messages
// still waiting to be pushed. Pushed records the highest seq pushed (and
// applied): the caller pushes the entries of a gap below an entry from
// the log first, and skips an entry at or below Pushed, so a member
// removed at seq N still gets every entry before N, in order, and nothing
// after. Standard library only: the caller does the storage calls and
// the pushes.
package groups

import (
	"sync"
)

// Member is a member as the daemon needs it.
type Member struct {
	Role       string // owner, admin, member
	JoinSeq    int64
	MutedUntil int64 // ms; 0: not muted
}

// Group is one group's members, valid while its lock is held (inside
// Do).
type Group struct {
	ID      int64
	Members map[string]Member
	// Shared: members see the whole log (history "shared"); otherwise
	// from their join seq on.
	Shared bool
	// Gone: dissolved, or not found; Members is empty.
	Gone bool
	// Pushed is the highest seq pushed to the members and applied to
	// Members; an entry at or below it is not pushed again. A load sets
	// it to the log's last seq (Members then reflects every entry up to
	// it).
	Pushed int64
}

// Sees reports whether user, a member, sees the entry with seq.
func (g *Group) Sees(user string, seq int64) bool {
	m, ok := g.Members[user]
	return ok && (g.Shared || seq >= m.JoinSeq)
}

type entry struct {
	mu     sync.Mutex
	loaded bool
	g      Group
}

// Cache holds the groups in use. It is safe for concurrent use.
type Cache struct {
	mu sync.Mutex
	m  map[int64]*entry
}

// NewCache returns an empty Cache.
func NewCache() *Cache { return &Cache{m: make(map[int64]*entry)} }

// Do runs fn with group id's lock held, loading the group first with load
// when it is not held yet (load fills Members, Shared and Gone). A load
// that fails is not kept: the next Do loads again. fn may change the
// group (apply a membership change it just committed).
func (c *Cache) Do(id int64, load func(g *Group) error, fn func(g *Group) error) error {
	c.mu.Lock()
	e := c.m[id]
	if e == nil {
		e = &entry{g: Group{ID: id}}
		c.m[id] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		e.g = Group{ID: id, Members: make(map[string]Member)}
		if err := load(&e.g); err != nil {
			return err
		}
		e.loaded = true
	}
	return fn(&e.g)
}

// Forget drops group id (for example after a storage swap), so that the
// next Do loads it again.
func (c *Cache) Forget(id int64) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// Len returns how many groups are held.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
