package daemontest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// FaultConn wraps the client side of a real TCP connection and injects
// faults below the protocol: latency, stalls, short writes and resets. The
// server sees nothing but an ordinary, badly behaved TCP peer.
//
//   - SetLatency delays every Write before it starts and every Read after
//     data arrived, so a round trip takes at least twice the latency.
//   - SetShortWrites splits every Write into pieces of 1..max bytes with a
//     pause after each piece.
//   - StallReads and StallWrites stop the client from reading or writing
//     (for a while, or until Resume): a stalled reader leaves the data in
//     the kernel's buffers, which then fill up, as with a client that does
//     not read. A stalled Read or Write still honours the deadline that was
//     set before it started.
//   - Reset closes the connection with SO_LINGER 0: the kernel sends RST
//     instead of FIN, and discards unsent data.
//
// All methods are safe for concurrent use.
type FaultConn struct {
	net.Conn

	mu        sync.Mutex
	rng       *rand.Rand
	latency   time.Duration
	splitMax  int
	splitGap  time.Duration
	readGate  chan struct{} // non-nil while reads are stalled; closed on release
	writeGate chan struct{}
	rdl, wdl  time.Time
	closed    chan struct{}
	closeOnce sync.Once
}

// NewFaultConn wraps c, which should be a *net.TCPConn for Reset and
// TCP to work. seed makes the split points of short writes repeatable.
func NewFaultConn(c net.Conn, seed uint64) *FaultConn {
	return &FaultConn{Conn: c, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), closed: make(chan struct{})}
}

// TCP returns the wrapped connection as a *net.TCPConn, or nil.
func (f *FaultConn) TCP() *net.TCPConn {
	tc, _ := f.Conn.(*net.TCPConn)
	return tc
}

// SetLatency sets the delay added to every Read and Write (0: none).
func (f *FaultConn) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = d
	f.mu.Unlock()
}

// SetShortWrites makes every Write go out in pieces of 1..max bytes (chosen
// at random), sleeping gap after each piece. max 0 turns it off.
func (f *FaultConn) SetShortWrites(max int, gap time.Duration) {
	f.mu.Lock()
	f.splitMax, f.splitGap = max, gap
	f.mu.Unlock()
}

// StallReads makes Read wait for d, or until Resume if d <= 0. Data the
// server sends meanwhile stays in the kernel's buffers.
func (f *FaultConn) StallReads(d time.Duration) { f.stall(&f.readGate, d) }

// StallWrites makes Write wait for d, or until Resume if d <= 0. A Write
// split by SetShortWrites may stall between two pieces.
func (f *FaultConn) StallWrites(d time.Duration) { f.stall(&f.writeGate, d) }

func (f *FaultConn) stall(gate *chan struct{}, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *gate != nil {
		close(*gate)
	}
	ch := make(chan struct{})
	*gate = ch
	if d > 0 {
		time.AfterFunc(d, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if *gate == ch {
				close(ch)
				*gate = nil
			}
		})
	}
}

// Resume ends every stall.
func (f *FaultConn) Resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range []*chan struct{}{&f.readGate, &f.writeGate} {
		if *g != nil {
			close(*g)
			*g = nil
		}
	}
}

// wait blocks while gate is stalled, until the deadline dl, or until the
// connection is closed.
func (f *FaultConn) wait(gate *chan struct{}, dl *time.Time) error {
	f.mu.Lock()
	ch, deadline := *gate, *dl
	f.mu.Unlock()
	if ch == nil {
		return nil
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		tm := time.NewTimer(time.Until(deadline))
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case <-ch:
		return nil
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-f.closed:
		return net.ErrClosed
	}
}

// sleep waits d or until the connection is closed.
func (f *FaultConn) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-f.closed:
	}
}

func (f *FaultConn) Read(p []byte) (int, error) {
	if err := f.wait(&f.readGate, &f.rdl); err != nil {
		return 0, err
	}
	n, err := f.Conn.Read(p)
	if n > 0 {
		f.mu.Lock()
		lat := f.latency
		f.mu.Unlock()
		f.sleep(lat)
	}
	return n, err
}

func (f *FaultConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	lat := f.latency
	f.mu.Unlock()
	f.sleep(lat)
	written := 0
	for written < len(p) {
		if err := f.wait(&f.writeGate, &f.wdl); err != nil {
			return written, err
		}
		f.mu.Lock()
		piece, gap := len(p)-written, f.splitGap
		if f.splitMax > 0 {
			piece = min(piece, 1+f.rng.IntN(f.splitMax))
		}
		f.mu.Unlock()
		n, err := f.Conn.Write(p[written : written+piece])
		written += n
		if err != nil {
			return written, err
		}
		if written < len(p) {
			f.sleep(gap)
		}
	}
	return written, nil
}

func (f *FaultConn) SetDeadline(t time.Time) error {
	f.mu.Lock()
	f.rdl, f.wdl = t, t
	f.mu.Unlock()
	return f.Conn.SetDeadline(t)
}

func (f *FaultConn) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	f.rdl = t
	f.mu.Unlock()
	return f.Conn.SetReadDeadline(t)
}

func (f *FaultConn) SetWriteDeadline(t time.Time) error {
	f.mu.Lock()
	f.wdl = t
	f.mu.Unlock()
	return f.Conn.SetWriteDeadline(t)
}

// Close closes the connection normally (FIN) and wakes every stalled call.
func (f *FaultConn) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return f.Conn.Close()
}

// Reset aborts the connection: SO_LINGER 0 and close, so the peer gets a
// RST and whatever the kernel had not sent yet is discarded.
func (f *FaultConn) Reset() error {
	tc := f.TCP()
	if tc == nil {
		return errors.New("daemontest: Reset needs a TCP connection")
	}
	if err := tc.SetLinger(0); err != nil {
		return err
	}
	return f.Close()
}

// DialFault connects to the server through a FaultConn (no faults yet) and
// reads the hello frame. The Conn's helpers (Send, Expect, ...) go through
// the FaultConn.
func (s *Server) DialFault(t testing.TB, seed uint64) (*Conn, *FaultConn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr, Timeout)
	if err != nil {
		t.Fatalf("daemontest: dial: %v", err)
	}
	fc := NewFaultConn(nc, seed)
	t.Cleanup(func() { fc.Close() })
	c := &Conn{t: t, C: fc, fr: protocol.NewFrameReader(fc, 1<<22)}
	c.Hello = c.Expect(`{"type":"hello","server":"qqd","proto":1}`)
	return c, fc
}

// Unlimited lifts the per-IP, per-account and per-user rate and count
// limits (the groups one user may create, own and join too), so that
// tests that open many connections or send many
// messages from 127.0.0.1 are not throttled. Use it as an option of Start.
func Unlimited(c *config.Config) {
	l := &c.Limits
	l.MaxConnections = 1 << 20
	l.MaxConnectionsPerIP = 1 << 20
	l.SendRate = 1e9
	l.SendBurst = 1 << 30
	l.AuthPerIPPerMinute = 1 << 30
	l.AuthPerAccountPerMinute = 1 << 30
	l.RegisterPerIPPerMinute = 1 << 30
	l.MaxPendingPerUser = 1 << 30
	l.FriendRequestsPerDay = 1 << 30
	l.TypingRate = 1e9
	l.TypingBurst = 1 << 30
	g := &c.Groups
	g.CreatedPerDay = 1 << 30
	g.MaxOwned = 1 << 30
	g.MaxJoined = 1 << 30
}

// BrokenFilter fails every call, like a filter whose plugin process died.
type BrokenFilter struct{}

// Filter implements plugins.Filter.
func (BrokenFilter) Filter(context.Context, []plugins.FilterMessage) ([]plugins.Verdict, error) {
	return nil, errors.New("filter plugin exited")
}

// BrokenChain returns a filter chain of one BrokenFilter that fails
// closed: every send is answered unavailable, "message filter
// unavailable".
func BrokenChain() []plugins.FilterLink {
	return []plugins.FilterLink{{Name: "broken", Filter: BrokenFilter{}, OnFailure: plugins.FailClosed}}
}
