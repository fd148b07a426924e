//go:build !webgateway

package browsertest

// A stand-in for the gateway of package web while it is being written:
// each WebSocket at /ws is bridged to a TCP connection to the test's qqd,
// one text message per frame. Replaced by web's Listener when it lands.

import (
	"bufio"
	"context"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/web"
)

type gateway struct {
	mu     sync.Mutex
	conns  map[net.Conn]*atomic.Bool // stalled
	paused bool
	cut    *sendCutter
}

func startGateway(t *testing.T, srv *daemontest.Server, cut *sendCutter) (base string, drop func() int, pause func(bool), stall func() int) {
	g := &gateway{conns: make(map[net.Conn]*atomic.Bool), cut: cut}
	files := http.FileServerFS(web.App())
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		g.mu.Lock()
		paused := g.paused
		g.mu.Unlock()
		if paused {
			return
		}
		tc, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			return
		}
		stalled := new(atomic.Bool)
		g.mu.Lock()
		g.conns[tc] = stalled
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.conns, tc)
			g.mu.Unlock()
			tc.Close()
		}()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			defer cancel()
			sc := bufio.NewScanner(tc)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if stalled.Load() {
					continue
				}
				if err := c.Write(ctx, websocket.MessageText, sc.Bytes()); err != nil {
					return
				}
			}
			c.Close(websocket.StatusNormalClosure, "")
		}()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if stalled.Load() {
				continue
			}
			if _, err := tc.Write(append(b, '\n')); err != nil {
				return
			}
			if g.cut.passed(b) {
				tc.Close()
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	var _ fs.FS = web.App()
	drop = func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		n := 0
		for c := range g.conns {
			c.Close()
			n++
		}
		return n
	}
	pause = func(on bool) {
		g.mu.Lock()
		g.paused = on
		g.mu.Unlock()
	}
	stall = func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, s := range g.conns {
			s.Store(true)
		}
		return len(g.conns)
	}
	return hs.URL, drop, pause, stall
}
