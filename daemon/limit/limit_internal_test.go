package limit

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestIPKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string // "" : no per-IP key
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1}, "2001:db8:1:2::"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff:ffff:ffff:ffff"), Port: 1}, "2001:db8:1:2::"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 1}, "2001:db8:1:3::"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, ""},
		{nil, ""},
	} {
		got, ok := IPKey(tc.addr)
		if tc.want == "" {
			if ok {
				t.Errorf("IPKey(%v) = %v, want none", tc.addr, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("IPKey(%v) = %v, %v; want %s", tc.addr, got, ok, tc.want)
		}
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Now()
	b := newBucket(2, t0)
	for i, want := range []bool{true, true, false} {
		if ok, _ := b.take(t0, 4, 2); ok != want {
			t.Fatalf("take %d = %v, want %v", i, ok, want)
		}
	}
	if _, wait := b.take(t0, 4, 2); wait != 250*time.Millisecond {
		t.Errorf("wait = %v, want 250ms", wait)
	}
	if ok, _ := b.take(t0.Add(250*time.Millisecond), 4, 2); !ok {
		t.Error("no token after the wait")
	}
	if b.full(t0.Add(time.Second), 4, 2) != true {
		t.Error("not full after refilling")
	}
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{{0, 1}, {time.Microsecond, 1}, {time.Millisecond, 1}, {1001 * time.Microsecond, 2}, {time.Second, 1000}} {
		if got := RetryAfterMS(tc.d); got != tc.want {
			t.Errorf("RetryAfterMS(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// TestKeyedLimiterBounded: idle keys are dropped, and past maxKeys the
// least recently used one goes.
func TestKeyedLimiterBounded(t *testing.T) {
	l := NewKeyed[string](2, 3)
	for _, k := range []string{"a", "b", "c", "a", "d"} { // d evicts b
		l.Take(k)
	}
	if l.Size() != 3 {
		t.Fatalf("size %d, want 3", l.Size())
	}
	if _, ok := l.m["b"]; ok {
		t.Error("b, the least recently used, was kept")
	}
	if ok, _ := l.Take("a"); ok {
		t.Error("a got a third token within a minute")
	}
	l.Refund("a")
	if ok, _ := l.Take("a"); !ok {
		t.Error("a refunded token was not there")
	}
	l.idle = 0 // every entry is now idle: the next take drops them all
	l.Take("e")
	if l.Size() != 1 {
		t.Errorf("size %d after idle entries expired, want 1", l.Size())
	}
}

// TestSendLimitsPruned: a user's bucket is shared by their sessions,
// survives their last session while it is not full, and is dropped once
// full.
func TestSendLimitsPruned(t *testing.T) {
	l := NewSends(10, 2)
	a1, a2 := l.Acquire("alice"), l.Acquire("alice")
	if a1 != a2 {
		t.Fatal("two buckets for one user")
	}
	l.Take(a1)
	l.Take(a2)
	if ok, _ := l.Take(a1); ok {
		t.Fatal("a third token from a bucket of 2")
	}
	l.Release(a1)
	l.Release(a2)
	if l.Size() != 1 {
		t.Fatalf("an empty bucket was dropped with its last session")
	}
	if l.Acquire("alice") != a1 {
		t.Fatal("a new login got a fresh bucket")
	}
	l.Release(a1)
	time.Sleep(300 * time.Millisecond) // 10/s: full again
	b := l.Acquire("bob")
	l.Release(b) // full: dropped at once
	l.sweepLocked(time.Now())
	if l.Size() != 0 {
		t.Fatalf("%d buckets kept, want 0", l.Size())
	}
}

func TestConnLimits(t *testing.T) {
	var c Conns
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i, tc := range []struct {
		ip    netip.Addr
		hasIP bool
		want  ConnVerdict
	}{
		{a, true, ConnOK}, {a, true, ConnOK}, {a, true, ConnOverPerIP},
		{b, true, ConnOK}, {netip.Addr{}, false, ConnOverTotal}, {b, true, ConnOverTotal},
	} {
		if got := c.Open(tc.ip, tc.hasIP, 3, 2); got != tc.want {
			t.Fatalf("open %d = %d, want %d", i, got, tc.want)
		}
	}
	c.Close(a, true)
	c.Close(a, true)
	c.Close(b, true)
	if c.total != 0 || len(c.perIP) != 0 {
		t.Fatalf("after closing all: total %d, %d addresses", c.total, len(c.perIP))
	}
}
