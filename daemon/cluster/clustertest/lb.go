package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one node behind an [LB].
type Backend struct {
	// Addr is the node's client TCP address, host:port.
	Addr string
	// ReadyURL is the node's readiness endpoint (http://host:port/readyz);
	// "" checks only that Addr accepts a connection.
	ReadyURL string
}

// Defaults of an LB's settings.
const (
	DefaultLBMaxConns      = 10000
	DefaultLBCheckInterval = 500 * time.Millisecond
	// lbCheckTimeout bounds one readiness request and one dial.
	lbCheckTimeout = 500 * time.Millisecond
)

// LBOption changes a setting of [NewLB].
type LBOption func(*LB)

// WithMaxConns bounds the client connections an LB splices at once
// (default [DefaultLBMaxConns]); one more is closed at accept.
func WithMaxConns(n int) LBOption { return func(lb *LB) { lb.maxConns = n } }

// WithCheckInterval sets how often an LB checks its backends' health
// (default [DefaultLBCheckInterval]).
func WithCheckInterval(d time.Duration) LBOption { return func(lb *LB) { lb.interval = d } }

// LB is a small TCP load balancer for a qq cluster on loopback. It hands
// each accepted connection to the next healthy backend, round-robin, and
// copies bytes both ways until both sides are done (a half-close is
// passed on). A backend is healthy when its ReadyURL answered 200 within
// 500 ms at the last check and its Addr accepted a dial; a node that
// fences itself (its /readyz fails) thus gets no new connections, while
// the ones it has stay until it closes them. With no healthy backend a
// client is closed at once. Its methods are safe for concurrent use.
type LB struct {
	ln       net.Listener
	backends []Backend
	maxConns int
	interval time.Duration
	client   *http.Client

	healthy []atomic.Bool
	served  []atomic.Int64
	next    atomic.Uint64
	active  atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// NewLB listens on listen (host:port; port 0 for a free one), checks every
// backend once, and starts balancing. Close stops it.
func NewLB(listen string, backends []Backend, opts ...LBOption) (*LB, error) {
	if len(backends) == 0 {
		return nil, errors.New("lb: no backends")
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lb := &LB{
		ln:       ln,
		backends: append([]Backend(nil), backends...),
		maxConns: DefaultLBMaxConns,
		interval: DefaultLBCheckInterval,
		client: &http.Client{
			Timeout:   lbCheckTimeout,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		},
		healthy: make([]atomic.Bool, len(backends)),
		served:  make([]atomic.Int64, len(backends)),
		ctx:     ctx,
		cancel:  cancel,
		conns:   map[net.Conn]struct{}{},
	}
	for _, o := range opts {
		o(lb)
	}
	lb.checkAll()
	lb.wg.Add(2)
	go lb.checkLoop()
	go lb.acceptLoop()
	return lb, nil
}

// Addr returns the address the LB listens on.
func (lb *LB) Addr() string { return lb.ln.Addr().String() }

// Healthy reports whether backend i passed its last check.
func (lb *LB) Healthy(i int) bool { return lb.healthy[i].Load() }

// Served returns how many client connections were handed to backend i.
func (lb *LB) Served(i int) int64 { return lb.served[i].Load() }

// Active returns the number of client connections being spliced now.
func (lb *LB) Active() int { return int(lb.active.Load()) }

// CheckNow checks every backend's health at once, without waiting for the
// next periodic check.
func (lb *LB) CheckNow() { lb.checkAll() }

// Close stops accepting, closes every spliced connection and waits until
// all of the LB's goroutines have returned.
func (lb *LB) Close() error {
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		return nil
	}
	lb.closed = true
	for c := range lb.conns {
		c.Close()
	}
	lb.mu.Unlock()
	lb.cancel()
	err := lb.ln.Close()
	lb.wg.Wait()
	lb.client.CloseIdleConnections()
	return err
}

func (lb *LB) checkLoop() {
	defer lb.wg.Done()
	t := time.NewTicker(lb.interval)
	defer t.Stop()
	for {
		select {
		case <-lb.ctx.Done():
			return
		case <-t.C:
			lb.checkAll()
		}
	}
}

// checkAll checks all backends concurrently and records the results.
func (lb *LB) checkAll() {
	var wg sync.WaitGroup
	for i := range lb.backends {
		wg.Go(func() { lb.healthy[i].Store(lb.check(lb.backends[i])) })
	}
	wg.Wait()
}

// check reports whether b is healthy: its ReadyURL (if any) answers 200
// and its Addr accepts a connection, each within lbCheckTimeout.
func (lb *LB) check(b Backend) bool {
	if b.ReadyURL != "" {
		ctx, cancel := context.WithTimeout(lb.ctx, lbCheckTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.ReadyURL, nil)
		if err != nil {
			return false
		}
		resp, err := lb.client.Do(req)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	d := net.Dialer{Timeout: lbCheckTimeout}
	c, err := d.DialContext(lb.ctx, "tcp", b.Addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (lb *LB) acceptLoop() {
	defer lb.wg.Done()
	var delay time.Duration
	for {
		c, err := lb.ln.Accept()
		if err != nil {
			if lb.ctx.Err() != nil {
				return
			}
			// A temporary failure (out of descriptors): back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-lb.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		if lb.active.Load() >= int64(lb.maxConns) || !lb.track(c) {
			c.Close()
			continue
		}
		lb.active.Add(1)
		lb.wg.Add(1)
		go lb.serve(c)
	}
}

// track records c for Close; false once the LB is closed.
func (lb *LB) track(c net.Conn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return false
	}
	lb.conns[c] = struct{}{}
	return true
}

func (lb *LB) untrack(c net.Conn) {
	lb.mu.Lock()
	delete(lb.conns, c)
	lb.mu.Unlock()
	c.Close()
}

// serve connects client to a healthy backend and splices them.
func (lb *LB) serve(client net.Conn) {
	defer lb.wg.Done()
	defer lb.active.Add(-1)
	defer lb.untrack(client)
	backend := lb.dial()
	if backend == nil {
		return
	}
	if !lb.track(backend) {
		backend.Close()
		return
	}
	defer lb.untrack(backend)
	done := make(chan struct{})
	go func() {
		splice(backend, client)
		close(done)
	}()
	splice(client, backend)
	<-done
}

// dial connects to the next healthy backend, round-robin, trying each at
// most once; a backend that refuses is marked unhealthy until its next
// check. It returns nil when none is reachable.
func (lb *LB) dial() net.Conn {
	n := len(lb.backends)
	start := lb.next.Add(1) - 1
	for k := range n {
		i := int((start + uint64(k)) % uint64(n))
		if !lb.healthy[i].Load() {
			continue
		}
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(lb.ctx, "tcp", lb.backends[i].Addr)
		if err != nil {
			lb.healthy[i].Store(false)
			continue
		}
		lb.served[i].Add(1)
		return c
	}
	return nil
}

// splice copies from src to dst until src ends, then half-closes dst
// (or closes it, when it cannot half-close), so that dst's reader sees
// the end; on a read error src is closed too.
func splice(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
	if err != nil {
		src.Close()
	}
}
