// Package presence keeps, for the users online on this server, their
// presence (a state and a short text, one per user whatever their number
// of connections), their friends and whom they block (read from storage
// at login and kept current by the daemon), and decides who must be told
// of a change: only friends, and only on real transitions (first
// connection up, a change of state or text, the last connection gone
// after a debounce, going invisible or coming back). It also expires
// typing notifications (Typing).
//
// It is standard library only and does no I/O: methods return the
// Updates to push, and the caller pushes them once it holds no lock (the
// debounced offline is handed to the Notify function from a timer).
// Nothing here is stored: a restart starts everyone online at login.
package presence

import (
	"slices"
	"sync"
	"time"
)

// State is a user's presence state.
type State uint8

// Presence states. Offline is what others see of a user with no
// connection, or an invisible one.
const (
	Offline State = iota
	Online
	Away
	Busy
	Invisible
)

var stateNames = [...]string{Offline: "offline", Online: "online", Away: "away", Busy: "busy", Invisible: "invisible"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "offline"
}

// ParseState parses a state a user may set: online, away, busy or
// invisible.
func ParseState(s string) (State, bool) {
	for i, n := range stateNames {
		if n == s && State(i) != Offline {
			return State(i), true
		}
	}
	return Offline, false
}

// Presence is a state and a status text.
type Presence struct {
	State State
	Text  string
}

// visible is what friends see of p: invisible shows as offline, without
// text.
func (p Presence) visible() Presence {
	if p.State == Invisible || p.State == Offline {
		return Presence{State: Offline}
	}
	return p
}

// Update is a change to push: User now shows P (never Invisible) to the
// users in To (online friends).
type Update struct {
	User string
	P    Presence
	To   []string
}

// Registry is the presence of the users online here. It is safe for
// concurrent use.
type Registry struct {
	debounce time.Duration
	notify   func(Update)

	mu    sync.Mutex
	users map[string]*entry
}

type entry struct {
	conns   int
	own     Presence // as the user set it (may be Invisible)
	shown   Presence // what friends were last told
	friends map[string]bool
	blocks  map[string]bool // whom this user blocks
	// off is the debounced offline after the last connection closed;
	// offTok tells its timer it is still the current one.
	off    *time.Timer
	offTok *struct{}
}

// New returns a Registry that tells friends a user went offline debounce
// after their last connection closed, through notify (called from a timer
// goroutine, holding no lock).
func New(debounce time.Duration, notify func(Update)) *Registry {
	return &Registry{debounce: debounce, notify: notify, users: make(map[string]*entry)}
}

// Join counts a new connection of user. friends and blocks are read from
// storage for it; they are used when user had no entry (the entry of a
// user already here is current). It returns the update to push, if the
// user's visible presence changed.
func (r *Registry) Join(user string, friends, blocks []string) []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.users[user]
	if e == nil {
		e = &entry{own: Presence{State: Online}, friends: set(friends), blocks: set(blocks)}
		r.users[user] = e
	}
	if e.off != nil {
		e.off.Stop()
		e.off, e.offTok = nil, nil
	}
	e.conns++
	return r.transitionLocked(user, e)
}

// Leave counts a connection of user gone. The last one starts the
// debounce: if no connection comes back within it, friends are told the
// user is offline and the entry is dropped.
func (r *Registry) Leave(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.users[user]
	if e == nil || e.conns == 0 {
		return
	}
	e.conns--
	if e.conns > 0 {
		return
	}
	tok := new(struct{})
	e.offTok = tok
	e.off = time.AfterFunc(r.debounce, func() { r.expire(user, tok) })
}

func (r *Registry) expire(user string, tok *struct{}) {
	r.mu.Lock()
	e := r.users[user]
	if e == nil || e.offTok != tok || e.conns > 0 {
		r.mu.Unlock()
		return
	}
	delete(r.users, user)
	var up []Update
	if e.shown.State != Offline {
		up = []Update{{User: user, P: Presence{State: Offline}, To: r.onlineLocked(e.friends)}}
	}
	r.mu.Unlock()
	for _, u := range up {
		r.notify(u)
	}
}

// Set sets user's own presence (a connected user only) and returns the
// update to push, if what friends see changed.
func (r *Registry) Set(user string, p Presence) []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.users[user]
	if e == nil || e.conns == 0 {
		return nil
	}
	e.own = p
	return r.transitionLocked(user, e)
}

// transitionLocked returns the update that brings friends to what e shows
// now, if that differs from what they were told.
func (r *Registry) transitionLocked(user string, e *entry) []Update {
	v := e.own.visible()
	if v == e.shown {
		return nil
	}
	e.shown = v
	return []Update{{User: user, P: v, To: r.onlineLocked(e.friends)}}
}

// onlineLocked lists the users of set that are here, sorted.
func (r *Registry) onlineLocked(users map[string]bool) []string {
	var out []string
	for u := range users {
		if e := r.users[u]; e != nil && e.conns > 0 {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// Shown returns what friends see of user: Offline when user is not here,
// invisible, or gone.
func (r *Registry) Shown(user string) Presence {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.users[user]; e != nil {
		return e.shown
	}
	return Presence{State: Offline}
}

// Here reports whether user has an entry here: connected, or within the
// offline debounce after their last connection (then this registry, not
// another node's, says what their friends here see).
func (r *Registry) Here(user string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.users[user] != nil
}

// Watchers lists, sorted, the users connected here who are friends of
// user and do not block them: whom a change of user's presence on
// another node of a cluster must reach here. It looks at every user
// here (O(users here)).
func (r *Registry) Watchers(user string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for u, e := range r.users {
		if e.conns > 0 && e.friends[user] && !e.blocks[user] {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// Own returns user's presence as the user set it (zero when user is not
// here).
func (r *Registry) Own(user string) Presence {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.users[user]; e != nil {
		return e.own
	}
	return Presence{}
}

// Invisible reports whether user is here and invisible (the users listing
// leaves them out).
func (r *Registry) Invisible(user string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.users[user]
	return e != nil && e.own.State == Invisible
}

// Befriend records that a and b became friends, and returns the updates
// that show each what the other shows now (nothing for an offline one).
func (r *Registry) Befriend(a, b string) []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ups []Update
	for _, p := range [2][2]string{{a, b}, {b, a}} {
		self, other := p[0], p[1]
		if e := r.users[self]; e != nil {
			e.friends[other] = true
			if oe := r.users[other]; oe != nil && oe.shown.State != Offline && e.conns > 0 {
				ups = append(ups, Update{User: other, P: oe.shown, To: []string{self}})
			}
		}
	}
	return ups
}

// Unfriend records that a and b are no longer friends.
func (r *Registry) Unfriend(a, b string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.users[a]; e != nil {
		delete(e.friends, b)
	}
	if e := r.users[b]; e != nil {
		delete(e.friends, a)
	}
}

// Block records that user blocks target (which ends their friendship).
func (r *Registry) Block(user, target string) {
	r.Unfriend(user, target)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.users[user]; e != nil {
		e.blocks[target] = true
	}
}

// Unblock records that user no longer blocks target.
func (r *Registry) Unblock(user, target string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.users[user]; e != nil {
		delete(e.blocks, target)
	}
}

// Blocks reports whether user, who is here, blocks other.
func (r *Registry) Blocks(user, other string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.users[user]
	return e != nil && e.blocks[other]
}

// Len returns how many users the registry holds (connected, or within
// the offline debounce).
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.users)
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
