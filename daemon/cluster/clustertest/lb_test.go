package clustertest_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/cluster/clustertest"
)

// echoServer is a real TCP backend: it greets each connection with its
// name and a newline, then echoes what it reads until EOF, then closes.
type echoServer struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startEcho(t *testing.T, name string) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{name: name, ln: ln, conns: map[net.Conn]struct{}{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer func() {
					e.mu.Lock()
					delete(e.conns, c)
					e.mu.Unlock()
					c.Close()
				}()
				fmt.Fprintf(c, "%s\n", name)
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(e.close)
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

// close stops the server and closes its connections (abruptly, as a dead
// node would).
func (e *echoServer) close() {
	e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// readyEndpoint is a /readyz whose answer the test flips.
type readyEndpoint struct {
	srv   *httptest.Server
	ready atomic.Bool
}

func startReady(t *testing.T) *readyEndpoint {
	t.Helper()
	r := &readyEndpoint{}
	r.ready.Store(true)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !r.ready.Load() {
			http.Error(w, "not ready: fenced", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *readyEndpoint) url() string { return r.srv.URL + "/readyz" }

func startLB(t *testing.T, backends []clustertest.Backend, opts ...clustertest.LBOption) *clustertest.LB {
	t.Helper()
	opts = append([]clustertest.LBOption{clustertest.WithCheckInterval(20 * time.Millisecond)}, opts...)
	lb, err := clustertest.NewLB("127.0.0.1:0", backends, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.Close() })
	return lb
}

// lbConn is a client connection through the LB.
type lbConn struct {
	net.Conn
	r *bufio.Reader
}

func dialLB(t *testing.T, lb *clustertest.LB) *lbConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", lb.Addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	return &lbConn{Conn: c, r: bufio.NewReader(c)}
}

// greeting returns the backend's name, or "" if the LB closed the
// connection.
func (c *lbConn) greeting(t *testing.T) string {
	t.Helper()
	line, err := c.r.ReadString('\n')
	if err != nil {
		if err == io.EOF || strings.Contains(err.Error(), "reset") {
			return ""
		}
		t.Fatalf("read the greeting: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

// echo sends s and reads it back.
func (c *lbConn) echo(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || got != s+"\n" {
		t.Fatalf("echo %q = %q, %v", s, got, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLBRoundRobin(t *testing.T) {
	a, b, c := startEcho(t, "a"), startEcho(t, "b"), startEcho(t, "c")
	lb := startLB(t, []clustertest.Backend{{Addr: a.addr()}, {Addr: b.addr()}, {Addr: c.addr()}})
	count := map[string]int{}
	for i := range 9 {
		conn := dialLB(t, lb)
		name := conn.greeting(t)
		count[name]++
		conn.echo(t, fmt.Sprintf("hello %d", i))
		conn.Close()
	}
	if count["a"] != 3 || count["b"] != 3 || count["c"] != 3 {
		t.Errorf("connections per backend = %v, want 3 each", count)
	}
	for i := range 3 {
		if got := lb.Served(i); got != 3 {
			t.Errorf("Served(%d) = %d, want 3", i, got)
		}
	}
	waitFor(t, "no active connections", func() bool { return lb.Active() == 0 })
}

// TestLBHalfClose: the client's half-close reaches the backend, which
// then answers and closes; the client reads the whole answer and EOF.
func TestLBHalfClose(t *testing.T) {
	// A backend that reads to EOF before it answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		// The LB's health checks connect too (and close at once).
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitTimeout))
				b, _ := io.ReadAll(c)
				fmt.Fprintf(c, "got %d bytes: %s", len(b), strings.ToUpper(string(b)))
			})
		}
	})
	lb := startLB(t, []clustertest.Backend{{Addr: ln.Addr().String()}})
	conn := dialLB(t, lb)
	io.WriteString(conn, "half closed")
	if err := conn.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn.r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "got 11 bytes: HALF CLOSED"; string(got) != want {
		t.Errorf("answer = %q, want %q", got, want)
	}
}

// TestLBDrain: a backend whose /readyz answers 503 gets no new
// connections, keeps the ones it has, and gets new ones again once ready.
func TestLBDrain(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	ra, rb := startReady(t), startReady(t)
	lb := startLB(t, []clustertest.Backend{{Addr: a.addr(), ReadyURL: ra.url()}, {Addr: b.addr(), ReadyURL: rb.url()}})
	if !lb.Healthy(0) || !lb.Healthy(1) {
		t.Fatal("backends not healthy after NewLB")
	}
	var onB *lbConn
	for onB == nil {
		conn := dialLB(t, lb)
		if conn.greeting(t) == "b" {
			onB = conn
		}
	}

	rb.ready.Store(false)
	waitFor(t, "b drained", func() bool { return !lb.Healthy(1) })
	servedB := lb.Served(1)
	for i := range 10 {
		conn := dialLB(t, lb)
		if name := conn.greeting(t); name != "a" {
			t.Fatalf("connection %d went to %q while b is drained", i, name)
		}
		conn.Close()
	}
	if got := lb.Served(1); got != servedB {
		t.Errorf("Served(b) = %d after the drain, want %d", got, servedB)
	}
	onB.echo(t, "still here") // the drained node keeps its connection

	rb.ready.Store(true)
	waitFor(t, "b ready again", func() bool { return lb.Healthy(1) })
	seen := map[string]bool{}
	for range 4 {
		conn := dialLB(t, lb)
		seen[conn.greeting(t)] = true
		conn.Close()
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("after b came back, connections went to %v, want both", seen)
	}
}

// TestLBNoBackend: with every backend unready or gone, a client is closed
// at once; a dead backend is skipped.
func TestLBNoBackend(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	ra := startReady(t)
	lb := startLB(t, []clustertest.Backend{{Addr: a.addr(), ReadyURL: ra.url()}, {Addr: b.addr()}})

	b.close() // dead: refuses connections
	for range 4 {
		conn := dialLB(t, lb)
		if name := conn.greeting(t); name != "a" {
			t.Fatalf("connection went to %q, want a (b is dead)", name)
		}
		conn.Close()
	}
	if lb.Healthy(1) {
		t.Error("dead backend b still healthy")
	}

	ra.ready.Store(false)
	waitFor(t, "a unready", func() bool { return !lb.Healthy(0) })
	conn := dialLB(t, lb)
	if name := conn.greeting(t); name != "" {
		t.Fatalf("with no healthy backend the connection went to %q", name)
	}
}

func TestLBMaxConns(t *testing.T) {
	a := startEcho(t, "a")
	lb := startLB(t, []clustertest.Backend{{Addr: a.addr()}}, clustertest.WithMaxConns(2))
	c1, c2 := dialLB(t, lb), dialLB(t, lb)
	c1.greeting(t)
	c2.greeting(t)
	if got := lb.Active(); got != 2 {
		t.Fatalf("Active() = %d, want 2", got)
	}
	if name := dialLB(t, lb).greeting(t); name != "" {
		t.Fatalf("a third connection past max 2 went to %q", name)
	}
	c1.Close()
	waitFor(t, "one connection freed", func() bool { return lb.Active() < 2 })
	c3 := dialLB(t, lb)
	if name := c3.greeting(t); name != "a" {
		t.Fatalf("after one closed, a new connection got %q", name)
	}
	c2.echo(t, "x")
	c3.echo(t, "y")
}

func TestLBClose(t *testing.T) {
	a := startEcho(t, "a")
	lb, err := clustertest.NewLB("127.0.0.1:0", []clustertest.Backend{{Addr: a.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	conn := dialLB(t, lb)
	conn.greeting(t)
	addr := lb.Addr()
	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.r.ReadString('\n'); err == nil {
		t.Error("a spliced connection survived Close")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the LB still accepts after Close")
	}
	lb.Close() // twice is fine
	if _, err := clustertest.NewLB("127.0.0.1:0", nil); err == nil {
		t.Error("NewLB without backends: no error")
	}
}
