// Package limit holds qqd's abuse limits (limits.* in the
// configuration), each its own type, with the standard library only:
//
//   - connections in total and per remote IP (Conns), checked at accept;
//   - each user's send rate (Sends), a token bucket shared by all the
//     user's connections, checked before a send enters the pipeline;
//   - login and register attempts per remote IP and failed logins per
//     account (Keyed), checked before any credential is looked at;
//   - undelivered messages per recipient (Pending), checked in the
//     pipeline's store stage.
//
// None of them runs a timer: token buckets refill lazily from the time
// elapsed, and idle entries are dropped when the maps are touched. Their
// memory is bounded as each type says. The daemon decides what to answer
// when one refuses.
package limit

import (
	"container/list"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// This file holds the abuse limits (limits.* in the configuration):
//
//   - connections in total and per remote IP (Conns), checked at
//     accept;
//   - each user's send rate (Sends), a token bucket shared by all the
//     user's connections, checked before a send enters the pipeline;
//   - login and register attempts per remote IP and failed logins per
//     account (Keyed), checked before any credential is looked at;
//   - undelivered messages per recipient (pendingCap, in pending.go),
//     checked in the pipeline's store stage.
//
// None of them runs a timer: token buckets refill lazily from the time
// elapsed, and idle entries are dropped when the maps are touched. Their
// memory is bounded as each type says.

// bucket is a token bucket: up to burst tokens, refilled at rate per
// second, computed lazily from the time of the last update.
type bucket struct {
	tokens float64
	last   time.Time
}

// newBucket returns a full bucket.
func newBucket(burst float64, now time.Time) bucket { return bucket{tokens: burst, last: now} }

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
}

// take takes a token if there is one. Otherwise it reports how long until
// there is one.
func (b *bucket) take(now time.Time, rate, burst float64) (bool, time.Duration) {
	b.refill(now, rate, burst)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// full reports whether the bucket has refilled completely: it is then the
// same as a new one, and its entry can be dropped.
func (b *bucket) full(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	return b.tokens >= burst
}

// RetryAfterMS turns a wait into retry_after_ms: whole milliseconds,
// rounded up, at least 1.
func RetryAfterMS(d time.Duration) int64 {
	return max(1, int64(math.Ceil(float64(d)/float64(time.Millisecond))))
}

// IPKey returns the key the per-IP limits count a remote address under:
// the IPv4 address, or the /64 prefix of an IPv6 address (one host or
// site usually gets a whole /64). ok is false for an address that is not
// IP (no per-IP limit applies to it).
func IPKey(a net.Addr) (key netip.Addr, ok bool) {
	var ap netip.AddrPort
	switch t := a.(type) {
	case *net.TCPAddr:
		ap = t.AddrPort()
	default:
		if a == nil {
			return netip.Addr{}, false
		}
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Addr{}, false
		}
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail for a valid IPv6 address
		return p.Addr(), true
	}
	return ip, true
}

// ConnVerdict says which connection limit refused a connection, if any.
type ConnVerdict uint8

// Connection verdicts.
const (
	ConnOK ConnVerdict = iota
	ConnOverTotal
	ConnOverPerIP
)

// Conns counts open connections in total and per remote IP. A
// session's count is taken at accept and given back when its connection
// is closed (session.closeLocked), so the counts are exact. Memory: one
// map entry per remote IP with an open connection.
type Conns struct {
	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

// open counts one more connection from ip (hasIP false: no per-IP count),
// unless that would pass maxTotal or maxPerIP; it returns ConnOK or which
// limit refused it.
func (c *Conns) Open(ip netip.Addr, hasIP bool, maxTotal, maxPerIP int) ConnVerdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total >= maxTotal {
		return ConnOverTotal
	}
	if hasIP {
		if c.perIP[ip] >= maxPerIP {
			return ConnOverPerIP
		}
		if c.perIP == nil {
			c.perIP = make(map[netip.Addr]int)
		}
		c.perIP[ip]++
	}
	c.total++
	return ConnOK
}

// close gives back a connection counted by open.
func (c *Conns) Close(ip netip.Addr, hasIP bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if hasIP {
		if n := c.perIP[ip]; n <= 1 {
			delete(c.perIP, ip)
		} else {
			c.perIP[ip] = n - 1
		}
	}
}

// Sends holds each user's send bucket (limits.send_rate,
// limits.send_burst), shared by all the user's connections. A session
// holds its user's bucket from login to close. A bucket stays after its
// user's last session closed until it has refilled (so logging in again
// does not refill it early); entries of users with no session whose bucket
// is full are dropped when that session closes or by a sweep when the map
// has doubled since the last one. Memory: the users logged in, plus those
// who left within the last send_burst/send_rate seconds.
type Sends struct {
	rate, burst float64

	mu        sync.Mutex
	users     map[string]*SendBucket
	sweepSize int // sweep when len(users) passes this
}

type SendBucket struct {
	user     string
	b        bucket
	sessions int
}

func NewSends(rate float64, burst int) *Sends {
	return &Sends{rate: rate, burst: float64(burst), users: make(map[string]*SendBucket), sweepSize: 64}
}

// acquire returns user's bucket, held until release.
func (l *Sends) Acquire(user string) *SendBucket {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	sb := l.users[user]
	if sb == nil {
		if len(l.users) >= l.sweepSize {
			l.sweepLocked(now)
		}
		sb = &SendBucket{user: user, b: newBucket(l.burst, now)}
		l.users[user] = sb
	}
	sb.sessions++
	return sb
}

func (l *Sends) sweepLocked(now time.Time) {
	for u, sb := range l.users {
		if sb.sessions == 0 && sb.b.full(now, l.rate, l.burst) {
			delete(l.users, u)
		}
	}
	l.sweepSize = max(64, 2*len(l.users))
}

// release gives back a bucket taken by acquire.
func (l *Sends) Release(sb *SendBucket) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	sb.sessions--
	if sb.sessions == 0 && sb.b.full(now, l.rate, l.burst) && l.users[sb.user] == sb {
		delete(l.users, sb.user)
	}
}

// take takes a token from sb, or says how long until one is there.
func (l *Sends) Take(sb *SendBucket) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return sb.b.take(now, l.rate, l.burst)
}

// size returns how many buckets are kept.
func (l *Sends) Size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}

// MaxTrackedKeys bounds the entries of a Keyed.
const MaxTrackedKeys = 100_000

// Keyed is a token bucket per key (a remote IP, an account name):
// up to perMinute attempts at once, then one every minute/perMinute. Keys
// are kept in least-recently-used order: each take first drops the entries
// untouched for a minute (their buckets are full, the same as no entry),
// then, past maxKeys entries, the least recently used one (whose limit
// thereby starts afresh). Memory: at most maxKeys entries, and no more than
// the keys used within the last minute.
type Keyed[K comparable] struct {
	rate, burst float64
	idle        time.Duration // a bucket untouched this long is full
	maxKeys     int

	mu  sync.Mutex
	m   map[K]*list.Element // of *keyedEntry[K]
	lru list.List           // front: most recently used
}

type keyedEntry[K comparable] struct {
	key  K
	b    bucket
	used time.Time
}

// NewKeyed returns a Keyed of perMinute attempts a minute per key.
func NewKeyed[K comparable](perMinute, maxKeys int) *Keyed[K] {
	return NewKeyedPer[K](perMinute, time.Minute, maxKeys)
}

// NewKeyedPer returns a Keyed of n attempts per period per key: up to n
// at once, then one every period/n; an entry untouched for period is
// dropped (its bucket is full).
func NewKeyedPer[K comparable](n int, period time.Duration, maxKeys int) *Keyed[K] {
	l := &Keyed[K]{
		rate:    float64(n) / period.Seconds(),
		burst:   float64(n),
		idle:    period,
		maxKeys: maxKeys,
		m:       make(map[K]*list.Element),
	}
	l.lru.Init()
	return l
}

// take takes a token from k's bucket, or says how long until one is
// there.
func (l *Keyed[K]) Take(k K) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for e := l.lru.Back(); e != nil && now.Sub(e.Value.(*keyedEntry[K]).used) >= l.idle; e = l.lru.Back() {
		l.removeLocked(e)
	}
	el := l.m[k]
	if el == nil {
		if l.lru.Len() >= l.maxKeys {
			l.removeLocked(l.lru.Back())
		}
		el = l.lru.PushFront(&keyedEntry[K]{key: k, b: newBucket(l.burst, now)})
		l.m[k] = el
	} else {
		l.lru.MoveToFront(el)
	}
	ke := el.Value.(*keyedEntry[K])
	ke.used = now
	return ke.b.take(now, l.rate, l.burst)
}

// refund gives back the token a take of k took.
func (l *Keyed[K]) Refund(k K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el := l.m[k]; el != nil {
		ke := el.Value.(*keyedEntry[K])
		ke.b.tokens = min(l.burst, ke.b.tokens+1)
	}
}

func (l *Keyed[K]) removeLocked(e *list.Element) {
	delete(l.m, e.Value.(*keyedEntry[K]).key)
	l.lru.Remove(e)
}

// size returns how many keys are tracked.
func (l *Keyed[K]) Size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
