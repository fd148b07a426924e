package web_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/web"
)

// TestWebHelloFirst: the first message of a WebSocket session is the
// hello, one frame, with no line feed.
func TestWebHelloFirst(t *testing.T) {
	g := startGateway(t)
	ws := raw(t, g.ws, "")
	expectMsg(t, ws, hello)
	write(t, ws, websocket.MessageText, `{"type":"ping","id":"p"}`)
	expectMsg(t, ws, `{"type":"ok","id":"p"}`)
}

// TestWebChatWithTCP: a WebSocket session and a TCP session register,
// log in and chat both ways; acks and pending counts work across them.
func TestWebChatWithTCP(t *testing.T) {
	g := startGateway(t)
	alice := g.user(t, "alice") // WebSocket
	bob := g.s.User(t, "bob")   // TCP

	alice.Send(`{"type":"send","id":1,"to":"bob","body":"hi from a browser","cid":"c1"}`)
	alice.Expect(`{"type":"ok","id":1,"status":"sent"}`)
	m := bob.Expect(`{"type":"msg","from":"alice","body":"hi from a browser"}`)
	bob.Send(fmt.Sprintf(`{"type":"ack","id":2,"msg_ids":[%q]}`, m.MsgID))
	bob.Expect(`{"type":"ok","id":2}`)

	bob.Send(`{"type":"send","id":3,"to":"alice","body":"hi from a terminal"}`)
	bob.Expect(`{"type":"ok","id":3}`)
	m = alice.Expect(`{"type":"msg","from":"bob","body":"hi from a terminal"}`)
	alice.Send(fmt.Sprintf(`{"type":"ack","id":4,"msg_ids":[%q]}`, m.MsgID))
	alice.Expect(`{"type":"ok","id":4}`)

	// Offline delivery to a WebSocket session: alice leaves, bob writes,
	// alice comes back over WebSocket and finds it pending.
	alice.Send(`{"type":"logout","id":5}`)
	alice.Expect(`{"type":"ok","id":5}`)
	alice.ExpectClosed()
	bob.Send(`{"type":"send","id":6,"to":"alice","body":"while you were away"}`)
	bob.Expect(`{"type":"ok","id":6,"status":"queued"}`)
	again := g.dial(t)
	if got := again.Login("alice", "password1"); got != 1 {
		t.Fatalf("pending at login = %d, want 1", got)
	}
	again.Send(`{"type":"offline","id":7}`)
	f := again.Expect(`{"type":"ok","id":7}`)
	if len(f.Messages) != 1 || f.Messages[0].Body != "while you were away" {
		t.Fatalf("offline = %+v", f.Messages)
	}
}

// TestWebOneFramePerMessage: output the server coalesces leaves as one
// message per frame, and a message holding line feeds is read as one
// frame per line (the documented choice), blank lines ignored.
func TestWebOneFramePerMessage(t *testing.T) {
	g := startGateway(t)
	ws := raw(t, g.ws, "")
	expectMsg(t, ws, hello)
	// 200 pipelined requests in one message: the replies are written
	// in bursts, many frames per write, and must still come one per
	// message, in order.
	const n = 200
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"type\":\"ping\",\"id\":%d}\n\n", i)
	}
	write(t, ws, websocket.MessageText, b.String())
	for i := range n {
		expectMsg(t, ws, fmt.Sprintf(`{"type":"ok","id":%d}`, i))
	}
	// A frame split over... nothing: a message is a frame; "\r\n" ends a
	// line like "\n".
	write(t, ws, websocket.MessageText, "{\"type\":\"ping\",\"id\":\"a\"}\r\n{\"type\":\"ping\",\"id\":\"b\"}")
	expectMsg(t, ws, `{"type":"ok","id":"a"}`)
	expectMsg(t, ws, `{"type":"ok","id":"b"}`)
	// A pretty-printed object is several frames, each bad on its own, as
	// on TCP: the gateway adds no second framing.
	write(t, ws, websocket.MessageText, "{\n\"type\":\"ping\"}")
	expectMsg(t, ws, `{"type":"error","id":null,"code":"bad_request"}`)
	expectMsg(t, ws, `{"type":"error","id":null,"code":"bad_request"}`)
	write(t, ws, websocket.MessageText, `{"type":"ping","id":"after"}`)
	expectMsg(t, ws, `{"type":"ok","id":"after"}`)
}

// TestWebFrameTooLarge: a message longer than limits.max_frame_bytes gets
// the frame_too_large error frame, then the close; a long message is cut
// as it streams, not read whole; other sessions are served.
func TestWebFrameTooLarge(t *testing.T) {
	g := startGateway(t, func(c *config.Config) {
		c.Limits.MaxFrameBytes = 8192
		c.Limits.MaxBodyBytes = 4096
	})
	max := g.s.Config.Limits.MaxFrameBytes
	other := g.user(t, "other")

	ws := raw(t, g.ws, "")
	expectMsg(t, ws, hello)
	// Exactly max bytes is a frame (a bad one: not an object).
	write(t, ws, websocket.MessageText, strings.Repeat(" ", max-2)+"[]")
	expectMsg(t, ws, `{"type":"error","id":null,"code":"bad_request"}`)
	// max+1 bytes is not.
	write(t, ws, websocket.MessageText, strings.Repeat("x", max+1))
	expectMsg(t, ws, `{"type":"error","id":null,"code":"frame_too_large"}`)
	expectClose(t, ws, websocket.StatusNormalClosure)

	// A message of up to 256 MiB streamed in 64 KiB frames: the server
	// answers after max+1 bytes and closes; the writer fails long before
	// the end (what the kernel buffers hold is all it gets rid of).
	big := raw(t, g.ws, "")
	expectMsg(t, big, hello)
	var sent atomic.Int64
	writeDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
		defer cancel()
		w, err := big.Writer(ctx, websocket.MessageText)
		if err != nil {
			writeDone <- err
			return
		}
		chunk := []byte(strings.Repeat("y", 64<<10))
		for sent.Load() < 256<<20 {
			if _, err := w.Write(chunk); err != nil {
				writeDone <- err
				return
			}
			sent.Add(int64(len(chunk)))
		}
		writeDone <- nil
	}()
	expectMsg(t, big, `{"type":"error","id":null,"code":"frame_too_large"}`)
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	if _, _, err := big.Read(ctx); err == nil {
		t.Fatal("read after frame_too_large succeeded, want the connection closed")
	}
	if err := <-writeDone; err == nil {
		t.Fatalf("wrote all %d bytes of the long message; want the write cut", sent.Load())
	}
	t.Logf("the writer got rid of %d KiB before the server closed", sent.Load()>>10)

	other.Send(`{"type":"ping","id":"fine"}`)
	other.Expect(`{"type":"ok","id":"fine"}`)
}

// TestWebBinaryMessage: a binary message closes the session with status
// 1003 and is counted; other sessions are served.
func TestWebBinaryMessage(t *testing.T) {
	g := startGateway(t)
	other := g.user(t, "other")
	ws := raw(t, g.ws, "")
	expectMsg(t, ws, hello)
	write(t, ws, websocket.MessageBinary, `{"type":"ping","id":1}`)
	expectClose(t, ws, websocket.StatusUnsupportedData)
	daemontest.WaitMetric(t, g.reg, 1, "qqd_web_binary_messages_total")
	other.Send(`{"type":"ping","id":"fine"}`)
	other.Expect(`{"type":"ok","id":"fine"}`)
}

// TestWebOrigin: a page of another origin gets 403 and reaches nothing;
// the page's own origin, clients without an Origin and
// web.allowed_origins are let in.
func TestWebOrigin(t *testing.T) {
	g := startGateway(t, func(c *config.Config) {
		c.Web.AllowedOrigins = []string{"https://chat.example.com", "*.example.org"}
	})
	addr := g.l.Addr().String()
	httpURL := "http://" + addr + web.WSPath

	for _, origin := range []string{
		"http://evil.example",
		"http://chat.example.com",                         // the pattern names https
		"https://example.org",                             // *.example.org needs a subdomain
		"http://localhost:" + strings.Split(addr, ":")[1], // same machine, not the same host
		"null",
	} {
		resp, body := do(t, upgradeRequest(t, httpURL, origin))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("Origin %s: status %s, want 403", origin, resp.Status)
		}
		if !strings.Contains(body, "web.allowed_origins") {
			t.Errorf("Origin %s: body %q does not say why", origin, body)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("Origin %s: no CSP on the 403", origin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	if _, err := web.Dial(ctx, g.ws, web.DialOptions{Origin: "http://evil.example"}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("web.Dial from http://evil.example: %v, want a 403", err)
	}
	if got := daemontest.MetricValue(t, g.reg, "qqd_web_upgrades_total", "result", "bad_origin"); got != 6 {
		t.Errorf("bad_origin upgrades = %v, want 6", got)
	}
	// Nothing reached the daemon.
	if got := daemontest.MetricValue(t, g.reg, "qqd_connections_accepted_total"); got != 0 {
		t.Fatalf("the daemon accepted %v connections, want 0", got)
	}

	for _, origin := range []string{
		"",                // not a browser
		"http://" + addr,  // the page's own origin
		"https://" + addr, // (the host is what counts)
		"https://chat.example.com",
		"https://CHAT.example.com",
		"https://a.example.org",
		"http://a.b.example.org",
	} {
		ws, err := rawDial(g.ws, origin)
		if err != nil {
			t.Errorf("Origin %q: %v, want it allowed", origin, err)
			continue
		}
		expectMsg(t, ws, hello)
		ws.Close(websocket.StatusNormalClosure, "")
	}
	if got := daemontest.MetricValue(t, g.reg, "qqd_web_upgrades_total", "result", "ok"); got != 7 {
		t.Errorf("ok upgrades = %v, want 7", got)
	}
}

// TestWebFloodPerIP: HTTP connections that carry no session are bounded
// per address (and in all); past the bound a connection is closed at
// accept, while other addresses and sessions are served.
func TestWebFloodPerIP(t *testing.T) {
	g := startGateway(t, func(c *config.Config) { c.Web.MaxHTTPConnectionsPerIP = 3 })
	addr := g.l.Addr().String()
	session := g.user(t, "steady") // holds no HTTP slot once upgraded

	idle := make([]net.Conn, 3)
	for i := range idle {
		idle[i] = dialTCP(t, addr, "") // never sends a request
	}
	over := dialTCP(t, addr, "")
	over.SetReadDeadline(time.Now().Add(daemontest.Timeout))
	if n, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the 4th connection from one address read %d bytes, want it closed", n)
	}
	daemontest.WaitMetric(t, g.reg, 1, "qqd_web_http_connections_refused_total", "reason", "max_http_connections_per_ip")

	// Another address is served, and so is the session.
	dialWith(t, g.ws, web.DialOptions{Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}})
	session.Send(`{"type":"ping","id":1}`)
	session.Expect(`{"type":"ok","id":1}`)

	// A slot comes back when its connection closes.
	idle[0].Close()
	deadline := time.Now().Add(daemontest.Timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
		nc, err := web.Dial(ctx, g.ws, web.DialOptions{})
		cancel()
		if err == nil {
			c := daemontest.NewConn(t, nc)
			c.Expect(hello)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upgrade after a slot was given back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebHandshakeTimeout: a connection that sends no request within
// web.handshake_timeout is closed, and gives its slot back.
func TestWebHandshakeTimeout(t *testing.T) {
	g := startGateway(t, func(c *config.Config) {
		c.Web.HandshakeTimeout = 300 * time.Millisecond
		c.Web.MaxHTTPConnectionsPerIP = 1
	})
	slow := dialTCP(t, g.l.Addr().String(), "")
	slow.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n")) // and never the rest
	slow.SetReadDeadline(time.Now().Add(daemontest.Timeout))
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("read: %v, want the server to close (EOF)", err)
	}
	g.dial(t) // the one slot is free again
}

// TestWebConnectionLimits: a session over WebSocket counts against
// limits.max_connections_per_ip like a TCP one, and the one past it is
// told too_many_connections.
func TestWebConnectionLimits(t *testing.T) {
	g := startGateway(t, func(c *config.Config) { c.Limits.MaxConnectionsPerIP = 2 })
	g.dial(t)
	g.s.Dial(t) // TCP
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	nc, err := web.Dial(ctx, g.ws, web.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := daemontest.NewConn(t, nc)
	c.Expect(`{"type":"kicked","reason":"too_many_connections"}`)
	c.ExpectClosed()
}

// TestWebFlood: a burst of upgrades from one address past
// limits.max_connections_per_ip: the first ones are sessions, every
// other is refused with too_many_connections, none is left hanging, and a
// session of another address is not disturbed.
func TestWebFlood(t *testing.T) {
	g := startGateway(t, func(c *config.Config) { c.Limits.MaxConnectionsPerIP = 5 })
	other := dialWith(t, g.ws, web.DialOptions{Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}})
	const n = 100
	results := make(chan string, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
			defer cancel()
			nc, err := web.Dial(ctx, g.ws, web.DialOptions{})
			if err != nil {
				results <- "dial: " + err.Error()
				return
			}
			defer nc.Close()
			c := daemontest.NewConn(t, nc)
			line, err := c.TryRead()
			if err != nil {
				results <- "read: " + err.Error()
				return
			}
			if err := daemontest.Match(line, `{"type":"kicked","reason":"too_many_connections"}`); err == nil {
				results <- "refused"
				return
			}
			if err := daemontest.Match(line, hello); err != nil {
				results <- "unexpected " + line
				return
			}
			results <- "hello"
		}()
	}
	counts := map[string]int{}
	for range n {
		r := <-results
		if strings.HasPrefix(r, "dial: ") {
			r = "closed at accept"
		}
		counts[r]++
	}
	// Two bounds meet the burst: web.max_http_connections_per_ip (64)
	// closes connections at accept while 64 others from the address are
	// still in their handshake, then the daemon's limit refuses sessions
	// past 5. Sessions close as their goroutines end, so later ones may
	// get in: at least 5 got a hello.
	if counts["hello"] < 5 || counts["hello"]+counts["refused"]+counts["closed at accept"] != n {
		t.Fatalf("outcomes of %d upgrades: %v", n, counts)
	}
	if got := daemontest.MetricValue(t, g.reg, "qqd_web_http_connections_refused_total", "reason", "max_http_connections_per_ip"); got != float64(counts["closed at accept"]) {
		t.Errorf("connections refused at accept: metric %v, clients saw %d", got, counts["closed at accept"])
	}
	t.Logf("outcomes of %d upgrades: %v", n, counts)
	other.Send(`{"type":"ping","id":1}`)
	other.Expect(`{"type":"ok","id":1}`)
}

// TestWebBusy: an upgraded connection that no daemon takes within
// web.handshake_timeout is closed with 1013; one still waiting when the
// listener closes gets 1001.
func TestWebBusy(t *testing.T) {
	cfg := config.Default().Web
	cfg.HandshakeTimeout = 200 * time.Millisecond
	l := listen(t, cfg, web.Deps{})
	ws := raw(t, wsURL(l), "")
	expectClose(t, ws, websocket.StatusTryAgainLater)

	cfg.HandshakeTimeout = daemontest.Timeout
	l2 := listen(t, cfg, web.Deps{})
	ws2 := raw(t, wsURL(l2), "")
	l2.Close()
	expectClose(t, ws2, websocket.StatusGoingAway)
	if _, err := l2.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}

// TestWebSlowConsumer: a WebSocket session that never reads is kicked
// slow_consumer like a TCP one, and the others are served meanwhile.
func TestWebSlowConsumer(t *testing.T) {
	g := startGateway(t, func(c *config.Config) {
		c.Limits.OutboundQueueBytes = 256 << 10
		c.Limits.WriteTimeout = 2 * time.Second
	})
	sender := g.s.User(t, "sender")
	slow := g.user(t, "slow") // never reads from here on
	fast := g.user(t, "fast")
	n := int64(daemontest.FloodStuckReader(t, sender, fast, 1500))
	daemontest.WaitMetric(t, g.reg, 1, "qqd_connections_closed_total", "reason", "slow_consumer")
	fast.Send(`{"type":"users","id":"u"}`)
	fast.Expect(`{"type":"ok","id":"u","users":["fast","sender"]}`)
	// It got the frames that fit, maybe the kicked push, then the end.
	for {
		line, err := slow.TryRead()
		if err != nil {
			break
		}
		if daemontest.Match(line, `{"type":"msg"}`) != nil {
			if err := daemontest.Match(line, `{"type":"kicked","reason":"slow_consumer"}`); err != nil {
				t.Fatal(err)
			}
			slow.ExpectClosed()
			break
		}
	}
	again := g.dial(t)
	if got := again.Login("slow", "password1"); got != n {
		t.Fatalf("pending after the slow_consumer kick = %d, want %d", got, n)
	}
}

// TestWebAdmin: the daemon's admin calls see and kick a WebSocket session
// like any other.
func TestWebAdmin(t *testing.T) {
	g := startGateway(t)
	alice := g.user(t, "alice")
	g.s.User(t, "bob")
	var found bool
	for _, si := range g.s.Daemon.Sessions() {
		if si.User == "alice" {
			found = true
			if si.Remote != alice.C.LocalAddr().String() || si.Transport != "ws" {
				t.Errorf("alice's session: remote %s, transport %q; want the client's TCP address %s and ws",
					si.Remote, si.Transport, alice.C.LocalAddr())
			}
		}
	}
	if !found {
		t.Fatalf("Sessions() = %+v, want alice's", g.s.Daemon.Sessions())
	}
	if n := g.s.Daemon.Kick("alice", "enough"); n != 1 {
		t.Fatalf("Kick = %d, want 1", n)
	}
	alice.Expect(`{"type":"kicked","reason":"admin","message":"enough"}`)
	alice.ExpectClosed()
}

// TestWebShutdown: shutting the daemon down kicks WebSocket sessions with
// reason shutdown, then closes them with a close frame.
func TestWebShutdown(t *testing.T) {
	g := startGateway(t)
	alice := g.user(t, "alice")
	ws := raw(t, g.ws, "")
	expectMsg(t, ws, hello)
	g.s.Shutdown()
	alice.Expect(`{"type":"kicked","reason":"shutdown"}`)
	alice.ExpectClosed()
	expectMsg(t, ws, `{"type":"kicked","reason":"shutdown"}`)
	expectClose(t, ws, websocket.StatusNormalClosure)
}

// TestWebIdle: the idle timeout ends a silent WebSocket session with its
// kicked push, written after the read deadline passed.
func TestWebIdle(t *testing.T) {
	g := startGateway(t, func(c *config.Config) { c.Limits.LoginTimeout = 300 * time.Millisecond })
	ws := raw(t, g.ws, "")
	expectMsg(t, ws, hello)
	expectMsg(t, ws, `{"type":"kicked","reason":"idle"}`)
	expectClose(t, ws, websocket.StatusNormalClosure)
}

// TestWebEarlyFrame: a client that sends its first frame right behind the
// handshake request, before the 101 (browsers wait; others may not), is
// served: the frame is not lost in the switch from HTTP.
func TestWebEarlyFrame(t *testing.T) {
	g := startGateway(t)
	c := dialTCP(t, g.l.Addr().String(), "")
	payload := []byte(`{"type":"ping","id":"early"}`)
	mask := [4]byte{1, 2, 3, 4}
	frame := append([]byte{0x81, 0x80 | byte(len(payload))}, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	req := "GET /ws HTTP/1.1\r\nHost: " + g.l.Addr().String() + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := c.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(daemontest.Timeout))
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), `"id":"early"`) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v; got %q", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 101 ") || !strings.Contains(string(got), `{"type":"hello"`) {
		t.Fatalf("got %q", got)
	}
}

// TestWebTrustedProxies: behind a trusted proxy a session counts as the
// client address the proxy forwarded (per-IP limits, qqadmin users);
// without trusted_proxies the header is ignored.
func TestWebTrustedProxies(t *testing.T) {
	fwd := func(ip string) web.DialOptions {
		return web.DialOptions{Header: http.Header{"X-Forwarded-For": {"1.2.3.4, " + ip}}}
	}
	t.Run("trusted", func(t *testing.T) {
		g := startGateway(t, func(c *config.Config) {
			c.Web.TrustedProxies = []string{"127.0.0.0/8"}
			c.Limits.MaxConnectionsPerIP = 1
		})
		a := dialWith(t, g.ws, fwd("203.0.113.7"))
		a.Register("alice", "password1")
		a.Login("alice", "password1")
		dialWith(t, g.ws, fwd("203.0.113.8")) // another client: its own place
		// The same client again: over max_connections_per_ip.
		ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
		defer cancel()
		nc, err := web.Dial(ctx, g.ws, fwd("203.0.113.7"))
		if err != nil {
			t.Fatal(err)
		}
		daemontest.NewConn(t, nc).Expect(`{"type":"kicked","reason":"too_many_connections"}`)
		var remote string
		for _, si := range g.s.Daemon.Sessions() {
			if si.User == "alice" {
				remote = si.Remote
			}
		}
		if remote != "203.0.113.7:0" {
			t.Errorf("alice's remote = %q, want the forwarded 203.0.113.7:0", remote)
		}
	})
	t.Run("not trusted", func(t *testing.T) {
		g := startGateway(t, func(c *config.Config) { c.Limits.MaxConnectionsPerIP = 1 })
		dialWith(t, g.ws, fwd("203.0.113.7"))
		ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
		defer cancel()
		nc, err := web.Dial(ctx, g.ws, fwd("203.0.113.8"))
		if err != nil {
			t.Fatal(err)
		}
		// Both come from 127.0.0.1, whatever the header says.
		daemontest.NewConn(t, nc).Expect(`{"type":"kicked","reason":"too_many_connections"}`)
	})
}
