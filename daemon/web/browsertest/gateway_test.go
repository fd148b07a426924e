package browsertest

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/web"
)

// startGateway serves the web app and its WebSocket gateway (package
// web's Listener) for srv's daemon, on 127.0.0.1:0, through a tap that
// lets a test break the WebSocket sessions from the server's side: drop
// closes them, pause refuses new ones, stall silences them, and cut
// closes one right after a given send reached the daemon.
func startGateway(t *testing.T, srv *daemontest.Server, cut *sendCutter) (base string, drop func() int, pause func(bool), stall func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl, err := web.NewListener(ln, srv.Config.Web, web.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tap := &tapListener{Listener: wl, cut: cut, conns: make(map[*tapConn]struct{})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Daemon.Serve(tap) // returns once wl is closed
	}()
	t.Cleanup(func() {
		wl.Close()
		<-served
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := wl.Wait(ctx); err != nil {
			t.Errorf("web listener: wait: %v", err)
		}
	})
	drop = func() int {
		n := 0
		for _, c := range tap.all() {
			c.Close()
			n++
		}
		return n
	}
	pause = tap.paused.Store
	stall = func() int {
		cs := tap.all()
		for _, c := range cs {
			c.stalled.Store(true)
		}
		return len(cs)
	}
	return strings.TrimSuffix(wl.URL(), "/"), drop, pause, stall
}

// tapListener hands the gateway's connections to the daemon, wrapped.
type tapListener struct {
	net.Listener
	cut    *sendCutter
	paused atomic.Bool
	mu     sync.Mutex
	conns  map[*tapConn]struct{}
}

func (l *tapListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.paused.Load() {
			c.Close() // the server is "unreachable"
			continue
		}
		tc := &tapConn{Conn: c, l: l}
		l.mu.Lock()
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		return tc, nil
	}
}

func (l *tapListener) all() []*tapConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := make([]*tapConn, 0, len(l.conns))
	for c := range l.conns {
		cs = append(cs, c)
	}
	return cs
}

// tapConn is a WebSocket session's connection as the daemon sees it.
type tapConn struct {
	net.Conn
	l       *tapListener
	stalled atomic.Bool // nothing goes through, in either direction
	cutNow  atomic.Bool // close at the next Read
	line    []byte      // the frame being read, up to 1 KiB
	once    sync.Once
}

func (c *tapConn) Read(p []byte) (int, error) {
	if c.cutNow.Load() {
		c.Close()
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	for c.stalled.Load() && err == nil {
		// Swallowed: the daemon waits on (its deadlines still apply).
		n, err = c.Conn.Read(p)
	}
	if c.stalled.Load() {
		return 0, err
	}
	for _, b := range p[:n] {
		if b != '\n' {
			if len(c.line) < 1024 {
				c.line = append(c.line, b)
			}
			continue
		}
		if c.l.cut.passed(c.line) {
			c.cutNow.Store(true)
		}
		c.line = c.line[:0]
	}
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	if c.stalled.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *tapConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Transport is the gateway connection's (qqadmin users shows it).
func (c *tapConn) Transport() string {
	if t, ok := c.Conn.(interface{ Transport() string }); ok {
		return t.Transport()
	}
	return "ws"
}
