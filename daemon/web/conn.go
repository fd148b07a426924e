package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// closeTimeout bounds sending the close frame of a connection being
// closed.
const closeTimeout = time.Second

// ErrBinaryMessage is the error Read returns after the peer sent a binary
// message; the connection is then closed with status 1003.
var ErrBinaryMessage = errors.New("web: binary message: QQP/1 frames are text messages")

// conn is one WebSocket as a net.Conn carrying the QQP/1 line stream.
// The package documentation states its contract.
type conn struct {
	ws *websocket.Conn
	// nc is the connection under the WebSocket (TCP, or TLS over TCP):
	// its addresses and deadlines are the conn's.
	nc net.Conn
	// remote is the address the session counts as (see clientAddr);
	// nil: nc's.
	remote     net.Addr
	transport  string             // "ws" or "wss"
	binaryMsgs prometheus.Counter // counts binary messages; nil on the client side
	// bufs, on the server side, holds the buffers Write encodes a
	// burst of frames into (see Write); nil on the client side, which
	// writes through the library.
	bufs *sync.Pool
	// closers tracks the goroutines that send close frames; nil: Close
	// sends its close frame itself (the client side).
	closers *tracker

	// The reader's state. rmu is held by Read, and by the close
	// goroutine before the library reads the connection's last bytes.
	rmu  sync.Mutex
	msg  io.Reader // the message being read; nil between messages
	nl   bool      // the last message ended and its "\n" is still owed
	rerr error     // the error every Read returns once reading failed
	// br and rc let an idle Read wait for the socket outside the
	// library (see waitReadable); nil on TLS and the client side.
	br *bufio.Reader
	rc syscall.RawConn

	wmu     sync.Mutex
	partial []byte // bytes written after the last "\n"
	wfailed bool   // a write failed: no close frame can follow

	closing atomic.Bool
	status  atomic.Int32 // the close status when not 1000 (1003)
	// readEnded is set when reading failed for good: the library may
	// have answered with a close frame, after which no data frame may
	// follow (see writeBurst).
	readEnded atomic.Bool
}

var _ net.Conn = (*conn)(nil)

func newConn(ws *websocket.Conn, nc net.Conn, br *bufio.Reader, bufs *sync.Pool, binaryMsgs prometheus.Counter, closers *tracker) *conn {
	// The session bounds each frame as it streams by (see the package
	// documentation); a message limit would cut a long stream of small
	// frames, or cut a long frame without the frame_too_large reply.
	ws.SetReadLimit(-1)
	transport := "ws"
	if _, ok := nc.(*tls.Conn); ok {
		transport = "wss"
	}
	c := &conn{ws: ws, nc: nc, transport: transport, bufs: bufs, binaryMsgs: binaryMsgs, closers: closers}
	if sc, ok := nc.(syscall.Conn); ok && br != nil && canWaitReadable {
		if rc, err := sc.SyscallConn(); err == nil {
			c.br, c.rc = br, rc
		}
	}
	return c
}

// Transport names the connection's transport for operators: "ws", or
// "wss" over TLS.
func (c *conn) Transport() string { return c.transport }

// Read reads the byte stream of the text messages, each followed by "\n".
func (c *conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, c.rerr
	}
	if c.closing.Load() {
		return 0, c.readFailed(net.ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.nl {
		c.nl = false
		p[0] = '\n'
		return 1, nil
	}
	for {
		if c.msg == nil {
			if err := c.waitReadable(); err != nil {
				return 0, c.readFailed(err)
			}
			typ, r, err := c.ws.Reader(context.Background())
			if err != nil {
				return 0, c.readFailed(err)
			}
			if typ != websocket.MessageText {
				c.status.Store(int32(websocket.StatusUnsupportedData))
				if c.binaryMsgs != nil {
					c.binaryMsgs.Inc()
				}
				c.rerr = ErrBinaryMessage
				return 0, c.rerr
			}
			c.msg = r
		}
		n, err := c.msg.Read(p)
		// Read on to the end of the message while p has room, so that
		// a message and its "\n" come in one Read. It may wait for the
		// rest of a message that is still arriving: the caller could do
		// nothing with a partial frame anyway.
		for err == nil && n > 0 && n < len(p) {
			var more int
			more, err = c.msg.Read(p[n:])
			if more == 0 && err == nil {
				break
			}
			n += more
		}
		switch {
		case err == io.EOF:
			c.msg = nil
			if n < len(p) {
				p[n] = '\n'
				return n + 1, nil
			}
			c.nl = true
			return n, nil
		case err != nil:
			err = c.readFailed(err)
			if n > 0 {
				return n, nil // the error comes with the next Read
			}
			return 0, err
		case n > 0:
			return n, nil
		}
	}
}

// waitReadable waits, when nothing is buffered, until the socket has
// something to read, before the library is asked for the next message.
// The library's read path is deep: a reader parked in it needs an 8 KiB
// stack, where one parked here needs less than 2 KiB, so that the
// runtime shrinks the stack of an idle session to what a TCP one uses
// (see docs/performance.md, "WebSocket gateway"). It costs a peek at the
// socket per message read from an empty buffer.
func (c *conn) waitReadable() error {
	if c.rc == nil || c.br.Buffered() > 0 {
		return nil
	}
	return c.rc.Read(peekReady)
}

// readFailed records why reading ended and returns it: io.EOF when the
// peer closed (with a close frame, or its TCP connection between
// messages), net.ErrClosed after Close, else the error. A deadline error
// (os.ErrDeadlineExceeded for errors.Is) is not kept: a later Read goes
// on, which is sound when the deadline came between WebSocket frames
// (nothing of a frame was read), as when nothing arrived at all.
func (c *conn) readFailed(err error) error {
	switch {
	case c.closing.Load():
		err = net.ErrClosed
	case websocket.CloseStatus(err) != -1, errors.Is(err, io.EOF):
		err = io.EOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		return err
	}
	c.rerr = err
	c.readEnded.Store(true)
	return err
}

// Write sends each "\n"-terminated frame of p as one text message (a "\r"
// before the "\n" is dropped; empty frames are not sent). Bytes after the
// last "\n" are kept for the next Write.
//
// On the server side the frames of one Write are encoded here and leave
// in one write to the connection, as a burst does on TCP. The library's
// own writer costs more per frame (three channel locks, each a select)
// and writes each frame by itself; it still writes the control frames
// (pongs, the close frame), each whole in one write through its buffer
// (a control frame is at most 127 bytes, see wsWriteBuf). Writes to a
// net.Conn do not interleave, so a control frame lands between two
// bursts, never inside one.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Load() {
		return 0, net.ErrClosed
	}
	var (
		written int
		err     error
	)
	if c.bufs == nil {
		written, err = c.writeFrames(p)
	} else {
		written, err = c.writeBurst(p)
	}
	if err != nil {
		c.wfailed = true
		c.partial = nil
		if c.closing.Load() {
			err = net.ErrClosed
		}
	}
	return written, err
}

// nextFrame cuts the next frame off p: the frame (joined to what an
// earlier Write left in partial), and how many bytes of p it took. ok is
// false when p holds no "\n"; its bytes are then kept in partial.
func (c *conn) nextFrame(p []byte) (frame []byte, took int, ok bool) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		c.partial = append(c.partial, p...)
		return nil, len(p), false
	}
	frame = p[:i]
	if len(c.partial) > 0 {
		c.partial = append(c.partial, frame...)
		frame = c.partial
	}
	if n := len(frame); n > 0 && frame[n-1] == '\r' {
		frame = frame[:n-1]
	}
	return frame, i + 1, true
}

// writeFrames writes each frame of p through the library (the client
// side: masked, one write per frame).
func (c *conn) writeFrames(p []byte) (int, error) {
	written := 0
	for {
		frame, took, ok := c.nextFrame(p)
		if !ok {
			return written + took, nil
		}
		if len(frame) > 0 {
			if err := c.ws.Write(context.Background(), websocket.MessageText, frame); err != nil {
				return written, err
			}
		}
		c.partial = c.partial[:0]
		written += took
		p = p[took:]
	}
}

// writeBurst encodes the frames of p as text messages into one buffer
// and writes it (the server side: unmasked frames, RFC 6455 section 5.2).
func (c *conn) writeBurst(p []byte) (int, error) {
	var buf *[]byte
	written := 0
	for {
		frame, took, ok := c.nextFrame(p)
		if !ok {
			written += took
			break
		}
		if len(frame) > 0 {
			if buf == nil {
				if buf, _ = c.bufs.Get().(*[]byte); buf == nil {
					buf = new([]byte)
				}
			}
			*buf = appendTextFrame(*buf, frame)
		}
		c.partial = c.partial[:0]
		written += took
		p = p[took:]
	}
	if buf == nil {
		return written, nil
	}
	var err error
	if !c.readEnded.Load() {
		_, err = c.nc.Write(*buf)
	} // else the peer closed, or the library closed on a protocol error: drop it

	if cap(*buf) <= maxPooledBuf {
		*buf = (*buf)[:0]
		c.bufs.Put(buf)
	}
	if err != nil {
		return 0, err
	}
	return written, nil
}

// maxPooledBuf is the largest burst buffer kept for reuse.
const maxPooledBuf = 64 << 10

// appendTextFrame appends payload to b as one unmasked, final text frame.
func appendTextFrame(b, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x81, byte(n))
	case n <= 0xffff:
		b = append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// Close closes the connection without blocking (see the package
// documentation): status 1000, or 1003 after a binary message.
func (c *conn) Close() error {
	status := websocket.StatusNormalClosure
	if s := c.status.Load(); s != 0 {
		status = websocket.StatusCode(s)
	}
	return c.closeWith(status)
}

// closeWith closes the connection with a close frame of status: it
// wakes a pending Read at once and does the rest from a goroutine (on the
// client side, before it returns).
func (c *conn) closeWith(status websocket.StatusCode) error {
	if c.closing.Swap(true) {
		return net.ErrClosed
	}
	// This also ends at once the library's wait for the peer's close
	// frame: the close does not linger.
	c.nc.SetReadDeadline(time.Unix(1, 0))
	if c.closers == nil {
		c.finishClose(status)
		return nil
	}
	c.closers.add()
	go func() {
		defer c.closers.done()
		c.finishClose(status)
	}()
	return nil
}

// finishClose waits for a Write in progress (at most closeTimeout: the
// deadline cuts one stuck on a peer that does not read), then sends the
// close frame and closes the TCP connection; after a failed write it
// closes the TCP connection without a close frame.
func (c *conn) finishClose(status websocket.StatusCode) {
	c.nc.SetWriteDeadline(time.Now().Add(closeTimeout))
	c.wmu.Lock()
	failed := c.wfailed
	c.wmu.Unlock()
	// The Read the past read deadline woke has returned, and no other
	// will touch the connection: the library may read its last bytes.
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if failed {
		c.closeNow()
		return
	}
	// Its error is expected: it does not wait for the peer's reply.
	c.ws.Close(status, "")
}

// closeNow closes the TCP connection without a close frame. Under TLS the
// TCP connection is closed first, so that no close_notify alert waits on
// a peer that does not read.
func (c *conn) closeNow() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		tc.NetConn().Close()
	}
	c.ws.CloseNow()
}

// LocalAddr is the local TCP address.
func (c *conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr is the client's address: the TCP peer's, or the one a
// trusted proxy forwarded (web.trusted_proxies).
func (c *conn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.nc.RemoteAddr()
}

// SetDeadline sets the underlying connection's deadlines; after Close it
// does nothing, so that it cannot stretch the close.
func (c *conn) SetDeadline(t time.Time) error {
	if c.closing.Load() {
		return nil
	}
	return c.nc.SetDeadline(t)
}

// SetReadDeadline: see SetDeadline.
func (c *conn) SetReadDeadline(t time.Time) error {
	if c.closing.Load() {
		return nil
	}
	return c.nc.SetReadDeadline(t)
}

// SetWriteDeadline: see SetDeadline.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.closing.Load() {
		return nil
	}
	return c.nc.SetWriteDeadline(t)
}

// DialOptions configure Dial. The zero value is ready to use.
type DialOptions struct {
	// Dialer connects the TCP connection; nil means a net.Dialer with a
	// 10 s timeout.
	Dialer *net.Dialer
	// TLS configures wss:// URLs; nil means the system's roots and the
	// URL's host name. TLS 1.2 is the minimum.
	TLS *tls.Config
	// Origin, if set, is sent as the Origin header, as a browser sends
	// its page's origin. Go clients need not send one.
	Origin string
	// Header holds more request headers (as a proxy adds
	// X-Forwarded-For); nil: none.
	Header http.Header
}

// Dial opens a WebSocket to url (ws://host:port/ws, or wss://) and
// returns it as a net.Conn with the same contract as the server side's
// connections: writes of "\n"-terminated frames leave as one text
// message each, and Read returns each message followed by "\n". It lets
// Go programs (tests, qqbench, the client library through its Dial
// option) speak QQP/1 over qqd's WebSocket gateway where a browser would
// use the page. Close waits for the close frame to be sent (at most
// about a second).
func Dial(ctx context.Context, url string, opts DialOptions) (net.Conn, error) {
	d := opts.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: 10 * time.Second}
	}
	var nc net.Conn // the connection the WebSocket runs over, once dialled
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			nc = c
			return c, err
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			cfg := opts.TLS.Clone()
			if cfg == nil {
				cfg = &tls.Config{}
			}
			cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
			cfg.NextProtos = []string{"http/1.1"}
			if cfg.ServerName == "" {
				host, _, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				cfg.ServerName = host
			}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			nc = tc
			return tc, nil
		},
		TLSNextProto:       map[string]func(string, *tls.Conn) http.RoundTripper{},
		DisableCompression: true,
	}
	header := opts.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if opts.Origin != "" {
		header.Set("Origin", opts.Origin)
	}
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTPHeader: header})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("web: dial %s: %s: %w", url, resp.Status, err)
		}
		return nil, fmt.Errorf("web: dial %s: %w", url, err)
	}
	return newConn(ws, nc, nil, nil, nil, nil), nil
}

// tracker counts goroutines that [Listener.Wait] waits for. Unlike a
// sync.WaitGroup, it may count up again while a Wait is in progress.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0
}

func newTracker() *tracker {
	t := &tracker{idle: make(chan struct{})}
	close(t.idle)
	return t
}

func (t *tracker) add() {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

// wait returns when the count is zero, or ctx's error when it ends first.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
