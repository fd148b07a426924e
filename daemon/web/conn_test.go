package web_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/web"
)

// accept takes the next connection of l.
func accept(t *testing.T, l *web.Listener) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(daemontest.Timeout):
		t.Fatal("Accept: nothing to accept")
		return nil
	}
}

// TestConnContract checks the net.Conn of an upgraded WebSocket against
// the package documentation, with no daemon: writes split at "\n" into
// one message per frame, reads of messages each followed by "\n",
// addresses, deadlines, close status.
func TestConnContract(t *testing.T) {
	l := listen(t, config.Default().Web, web.Deps{})
	ws := raw(t, wsURL(l), "")
	c := accept(t, l)

	if c.RemoteAddr().String() == "" || c.RemoteAddr().Network() != "tcp" {
		t.Errorf("RemoteAddr = %v (%s), want the TCP peer", c.RemoteAddr(), c.RemoteAddr().Network())
	}
	if c.LocalAddr().String() != l.Addr().String() {
		t.Errorf("LocalAddr = %v, want %v", c.LocalAddr(), l.Addr())
	}

	// Server to client: one message per frame, however it is written.
	if _, err := c.Write([]byte("{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("3}\n")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"a":1}`, `{"b":2}`, `{"c":3}`} {
		if got := readMsg(t, ws); got != want {
			t.Fatalf("message %q, want %q", got, want)
		}
	}

	// Client to server: each message then "\n", one byte at a time too.
	write(t, ws, websocket.MessageText, "one")
	write(t, ws, websocket.MessageText, "")
	write(t, ws, websocket.MessageText, "two\nthree")
	want := "one\n\ntwo\nthree\n"
	got := make([]byte, 0, len(want))
	buf := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(daemontest.Timeout))
	for len(got) < len(want) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != want {
		t.Fatalf("stream %q, want %q", got, want)
	}

	// A read deadline between messages fails the Read, and the stream
	// goes on after it.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	c.SetReadDeadline(time.Now().Add(daemontest.Timeout))
	write(t, ws, websocket.MessageText, "x")
	if n, err := io.ReadFull(c, buf[:1]); err != nil || n != 1 || buf[0] != 'x' {
		t.Fatalf("read after the deadline: %q, %v", buf[:n], err)
	}
	io.ReadFull(c, buf[:1]) // its "\n"

	// Writes still work after a read deadline passed (the daemon's last
	// frame after idle_timeout), and Close sends 1000.
	c.SetReadDeadline(time.Unix(1, 0))
	if _, err := c.Write([]byte("{\"last\":true}\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("{}\n")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	expectMsg(t, ws, `{"last":true}`)
	expectClose(t, ws, websocket.StatusNormalClosure)
}

// TestConnPeerClose: the peer's close frame is EOF to Read, and a binary
// message is ErrBinaryMessage, then a close with 1003.
func TestConnPeerClose(t *testing.T) {
	l := listen(t, config.Default().Web, web.Deps{})

	ws := raw(t, wsURL(l), "")
	c := accept(t, l)
	closed := make(chan error, 1)
	go func() { closed <- ws.Close(websocket.StatusGoingAway, "tab closed") }()
	c.SetReadDeadline(time.Now().Add(daemontest.Timeout))
	if _, err := c.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("read after the peer's close: %v, want io.EOF", err)
	}
	// Reading the close frame answered it: the peer's close handshake
	// completes.
	if err := <-closed; err != nil {
		t.Fatalf("the peer's Close: %v", err)
	}

	ws2 := raw(t, wsURL(l), "")
	c2 := accept(t, l)
	write(t, ws2, websocket.MessageBinary, "\x00\x01")
	c2.SetReadDeadline(time.Now().Add(daemontest.Timeout))
	if _, err := c2.Read(make([]byte, 10)); !errors.Is(err, web.ErrBinaryMessage) {
		t.Fatalf("read of a binary message: %v, want ErrBinaryMessage", err)
	}
	c2.Close()
	expectClose(t, ws2, websocket.StatusUnsupportedData)
}

// TestConnCloseDoesNotBlock: Close returns at once while a Write is stuck
// on a peer that does not read, and the Write is cut (within a second).
func TestConnCloseDoesNotBlock(t *testing.T) {
	l := listen(t, config.Default().Web, web.Deps{})
	raw(t, wsURL(l), "") // never reads
	c := accept(t, l)
	frame := make([]byte, 64<<10)
	for i := range frame {
		frame[i] = 'x'
	}
	frame[len(frame)-1] = '\n'
	writeErr := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(frame); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	// Let the buffers fill, so that the Write is stuck.
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	c.Close()
	// Waiting for the stuck Write would take up to a second.
	if d := time.Since(start); d >= time.Second {
		t.Errorf("Close took %v with a Write stuck", d)
	}
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("the stuck Write succeeded")
		}
	case <-time.After(daemontest.Timeout):
		t.Fatal("the stuck Write did not end after Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	l.Close()
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConnPingDuringBursts: the pongs the library writes while the
// session writes bursts of frames never land inside one: the client gets
// every frame whole and in order, and every pong.
func TestConnPingDuringBursts(t *testing.T) {
	l := listen(t, config.Default().Web, web.Deps{})
	ws := raw(t, wsURL(l), "")
	c := accept(t, l)
	go io.Copy(io.Discard, c) // reads, so that the library answers pings

	const bursts, per = 300, 10
	go func() {
		var b []byte
		for i := range bursts {
			b = b[:0]
			for j := range per {
				b = fmt.Appendf(b, "{\"n\":%d,\"pad\":%q}\n", i*per+j, strings.Repeat("p", (i*7+j*13)%300))
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}()
	pings := make(chan error, 1)
	go func() {
		for range 50 {
			ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
			err := ws.Ping(ctx)
			cancel()
			if err != nil {
				pings <- err
				return
			}
		}
		pings <- nil
	}()
	for n := range bursts * per {
		m := readMsg(t, ws)
		if !strings.HasPrefix(m, fmt.Sprintf(`{"n":%d,"pad":"`, n)) || !strings.HasSuffix(m, `"}`) {
			t.Fatalf("message %d = %.60q", n, m)
		}
	}
	// The pings still need a reader for their pongs.
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	if err := <-pings; err != nil {
		t.Fatalf("ping: %v", err)
	}
}
