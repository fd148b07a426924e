package web_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hello is what the first frame of every session matches.
const hello = `{"type":"hello","server":"qqd","proto":1}`

// gateway is an in-process qqd (daemontest) serving a web listener on
// 127.0.0.1:0, with the metrics of both in reg.
type gateway struct {
	s   *daemontest.Server
	l   *web.Listener
	reg *prometheus.Registry
	// ws is the URL of the gateway: ws://127.0.0.1:port/ws.
	ws string
}

// startGateway starts a gateway with the configuration of daemontest
// (web.listen on 127.0.0.1:0), changed by opts.
func startGateway(t *testing.T, opts ...func(*config.Config)) *gateway {
	t.Helper()
	opts = append([]func(*config.Config){func(c *config.Config) { c.Web.Listen = "127.0.0.1:0" }}, opts...)
	cfg := daemontest.Config(t, opts...)
	reg := prometheus.NewPedanticRegistry()
	l := listen(t, cfg.Web, web.Deps{Registry: reg})
	s := daemontest.StartDeps(t, cfg, daemon.Deps{Registry: reg})
	done := make(chan error, 1)
	go func() { done <- s.Daemon.Serve(l) }()
	t.Cleanup(func() {
		s.Shutdown()
		if err := <-done; !errors.Is(err, daemon.ErrServerClosed) {
			t.Errorf("serve on the web listener: %v", err)
		}
	})
	return &gateway{s: s, l: l, reg: reg, ws: wsURL(l)}
}

// listen starts a web listener on 127.0.0.1:0. When the test ends (after whatever is
// registered later, such as a daemon serving it) it is closed and waited
// for.
func listen(t *testing.T, cfg config.Web, deps web.Deps) *web.Listener {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	l, err := web.Listen(cfg, deps)
	if err != nil {
		t.Fatalf("web.Listen: %v", err)
	}
	t.Cleanup(func() {
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
		defer cancel()
		if err := l.Wait(ctx); err != nil {
			t.Errorf("web listener: wait: %v", err)
		}
	})
	return l
}

func wsURL(l *web.Listener) string { return "ws://" + l.Addr().String() + web.WSPath }

// dial opens a WebSocket session and reads its hello.
func (g *gateway) dial(t *testing.T) *daemontest.Conn {
	t.Helper()
	return dialWith(t, g.ws, web.DialOptions{})
}

func dialWith(t *testing.T, url string, opts web.DialOptions) *daemontest.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	nc, err := web.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("web.Dial: %v", err)
	}
	c := daemontest.NewConn(t, nc)
	c.Hello = c.Expect(hello)
	return c
}

// user registers user (password "password1") over a new WebSocket
// session, logs in and returns the session.
func (g *gateway) user(t *testing.T, user string) *daemontest.Conn {
	t.Helper()
	c := g.dial(t)
	c.Send(`{"type":"register","id":"reg","user":"` + user + `","password":"password1"}`)
	if f := c.Read(); f.Type != "ok" && f.Code != "user_exists" {
		t.Fatalf("register %s: %+v", user, f)
	}
	c.Login(user, "password1")
	return c
}

// raw opens a WebSocket with the library itself, to see messages as they
// are on the wire. origin "" sends none.
func raw(t *testing.T, url, origin string) *websocket.Conn {
	t.Helper()
	ws, err := rawDial(url, origin)
	if err != nil {
		t.Fatalf("websocket.Dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func rawDial(url, origin string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h, HTTPClient: &http.Client{Transport: &http.Transport{}}})
	return ws, err
}

// readMsg reads one message, which must be text.
func readMsg(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	typ, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("read a %v message %q, want text", typ, b)
	}
	return string(b)
}

// expectMsg reads one text message and checks it against want (see
// daemontest.Match); a message must hold exactly one frame.
func expectMsg(t *testing.T, ws *websocket.Conn, want string) string {
	t.Helper()
	m := readMsg(t, ws)
	if strings.ContainsAny(m, "\r\n") {
		t.Fatalf("message %q holds a line break", m)
	}
	if err := daemontest.Match(m, want); err != nil {
		t.Fatal(err)
	}
	return m
}

// expectClose reads until the connection ends and checks that it ended
// with a close frame of status want.
func expectClose(t *testing.T, ws *websocket.Conn, want websocket.StatusCode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	typ, b, err := ws.Read(ctx)
	if err == nil {
		t.Fatalf("read a %v message %q, want close %d", typ, b, want)
	}
	if got := websocket.CloseStatus(err); got != want {
		t.Fatalf("connection ended with %v (status %d), want close status %d", err, got, want)
	}
}

func write(t *testing.T, ws *websocket.Conn, typ websocket.MessageType, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	if err := ws.Write(ctx, typ, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// upgradeRequest is a WebSocket handshake request for url (http://...)
// from a page of origin ("" for none).
func upgradeRequest(t *testing.T, url, origin string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return req
}

// do sends req on a client of its own, reads the whole body and closes
// the connection.
func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: daemontest.Timeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

// dialTCP opens a plain TCP connection to addr from local ("" for any
// address), closed when the test ends.
func dialTCP(t *testing.T, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: daemontest.Timeout}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
