package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qqchat/qq/daemon/limit"
	"github.com/qqchat/qq/daemon/protocol"
)

// session is one client connection.
//
// Goroutines: the reader (serve) owns fr and runs every handler in request
// order. A writer goroutine exists only while output is queued: enqueue
// starts it, and it exits when the queue is empty, so an idle connection
// has no writer and no output buffer. The pipeline goroutine answers
// pipelined sends and acks, and delivers pushes, through enqueue, which
// never blocks.
//
// Reply order: sends and acks are pipelined (up to max_inflight awaiting
// storage); every other reply is written by the reader only after all
// pipelined replies before it were queued (waitInflight), so replies leave
// in request order.
type session struct {
	srv    *Server
	conn   net.Conn
	id     uint64
	remote string
	start  time.Time
	fr     *protocol.FrameReader
	// ip is the remote address as the per-IP limits count it (hasIP
	// false: not an IP address); set before serve starts.
	ip    netip.Addr
	hasIP bool
	// authExempt: the remote address is in limits.exempt_networks, so
	// the per-IP login and registration limits do not count it.
	authExempt bool

	// user is set once by a successful login in the reader goroutine,
	// before the session enters the router; loggedIn publishes it to
	// other goroutines.
	user     string
	loggedIn atomic.Bool
	// tokenID is the resume token this session logged in with, or was
	// issued at its login (remember): logout revokes it. Reader goroutine
	// only.
	tokenID         string
	msgsIn, msgsOut atomic.Uint64

	// inflight counts pipelined requests awaiting storage.
	ifMu     sync.Mutex
	ifCond   sync.Cond
	inflight int

	// raw writes to the socket without waiting (writeNow); nil when the
	// connection is not a plain TCP one (TLS, tests' wrappers).
	raw syscall.RawConn
	// rawWrite is the function writeNow hands raw, made once per session
	// (a closure per call would allocate); it writes rawBuf and sets
	// rawN and rawErr. Only the goroutine that set writing uses them.
	rawWrite func(fd uintptr) bool
	rawBuf   []byte
	rawN     int
	rawErr   error

	mu  sync.Mutex
	out []byte // queued output not yet handed to the writer
	// outBox is the pool's box that out came in (see appendOutLocked),
	// kept so that flush can put the buffer back without allocating a
	// new one; nil when out did not come from the pool.
	outBox  *[]byte
	writing bool // a writer goroutine (or flush) is writing
	// flushPending: the pipeline queued output with enqueueDeferred and
	// has not flushed it yet.
	flushPending bool
	closing      bool // no more output accepted; close once out is written
	closed       bool // conn closed
	reason       CloseReason
	// groupSeq is the highest seq of each group (its id as on the wire)
	// pushed on this connection (see enqueueGroupEntry).
	groupSeq map[string]int64
	// inPresence: the session counts in the presence registry (from a
	// login until it starts to close; see joinPresence).
	inPresence bool
	// sendBucket is the user's send-rate bucket, held from login until
	// the connection is closed.
	sendBucket *limit.SendBucket
}

func newSession(srv *Server, conn net.Conn) *session {
	s := &session{
		srv:    srv,
		conn:   conn,
		id:     srv.nextID.Add(1),
		remote: conn.RemoteAddr().String(),
		start:  time.Now(),
		fr:     protocol.NewFrameReader(countingReader{conn, srv.m.receivedBytes}, srv.cfg.Limits.MaxFrameBytes),
	}
	s.ifCond.L = &s.ifMu
	if tc, ok := conn.(*net.TCPConn); ok && canWriteNow {
		if raw, err := tc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	return s
}

func (s *session) logger() *slog.Logger {
	return s.srv.log.With("conn", s.id, "remote", s.remote)
}

// serve is the reader goroutine.
func (s *session) serve() {
	defer s.srv.readers.Done()
	defer s.srv.removeSession(s)
	lim := &s.srv.cfg.Limits
	s.conn.SetReadDeadline(s.start.Add(lim.LoginTimeout))
	ps := s.srv.acquirePlugs()
	s.send(ps.hello)
	ps.release()
	for {
		if s.loggedIn.Load() {
			s.conn.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
			// Shutdown sets the flag, then a past deadline: checking
			// after our own deadline never overwrites its.
			if s.srv.shuttingDown.Load() {
				return
			}
		}
		line, err := s.fr.ReadFrame()
		if err != nil {
			s.readFailed(err)
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s.handle(line)
		if s.isClosing() {
			return
		}
	}
}

// readFailed ends the session after ReadFrame failed.
func (s *session) readFailed(err error) {
	switch {
	case errors.Is(err, protocol.ErrFrameTooLarge):
		s.waitInflight()
		s.finish(CloseFrameTooLarge, protocol.AppendError(nil, nil,
			protocol.Errorf(protocol.CodeFrameTooLarge, "frame longer than max_frame_bytes")), false)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if s.srv.shuttingDown.Load() {
			return // Shutdown kicks every session once the pipeline drained
		}
		s.waitInflight()
		if s.loggedIn.Load() {
			s.kick(CloseIdle, "no request for "+s.srv.cfg.Limits.IdleTimeout.String())
		} else {
			s.kick(CloseLoginTimeout, "no login within "+s.srv.cfg.Limits.LoginTimeout.String())
		}
	case errors.Is(err, io.EOF):
		s.closeNow(CloseClientQuit)
	default:
		s.closeNow(CloseReadError)
	}
}

func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// acquireInflight reserves a pipeline slot, waiting while max_inflight
// requests of this connection await storage.
func (s *session) acquireInflight() {
	s.ifMu.Lock()
	for s.inflight >= s.srv.cfg.Limits.MaxInflight {
		s.ifCond.Wait()
	}
	s.inflight++
	s.ifMu.Unlock()
}

func (s *session) releaseInflight() {
	s.ifMu.Lock()
	s.inflight--
	s.ifCond.Broadcast()
	s.ifMu.Unlock()
}

// waitInflight returns once every pipelined request of this connection has
// been answered.
func (s *session) waitInflight() {
	s.ifMu.Lock()
	for s.inflight > 0 {
		s.ifCond.Wait()
	}
	s.ifMu.Unlock()
}

// reply queues a frame from the reader goroutine, after every pipelined
// reply before it.
func (s *session) reply(frame []byte) {
	s.waitInflight()
	s.send(frame)
}

// enqueue queues a frame for writing without blocking, and reports whether
// it did. If the unsent output would pass outbound_queue_bytes the session
// is kicked slow_consumer: its queued output is dropped (its messages stay
// pending in storage) and it is closed once the kicked push is written or
// write_timeout passes. A session that takes no more output has left the
// router (see setClosingLocked).
func (s *session) enqueue(frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enqueueLocked(frame)
}

// enqueueGroupEntry is enqueue for a group_entry push, which it drops
// when this connection was pushed that entry, or a later one of the
// group, already: a group's pushes go out in seq order (QQP/1). On one
// node they are made in seq order under the group's lock; in a cluster
// an entry also comes over the bus from the node that committed it, and
// may come after this node pushed it (filling a gap from the log before
// an entry of its own) or a later entry. A client that sees a gap in a
// group's seqs catches up with group_sync. A frame that is not a
// group_entry push is queued as by enqueue.
func (s *session) enqueueGroupEntry(frame []byte) bool {
	group, seq, ok := groupEntryKey(frame)
	if !ok {
		return s.enqueue(frame)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.groupSeq[group] {
		return false
	}
	if !s.enqueueLocked(frame) {
		return false
	}
	if s.groupSeq == nil {
		s.groupSeq = make(map[string]int64)
	}
	s.groupSeq[group] = seq
	return true
}

// groupEntryPrefix starts every group_entry push: appendEntry writes the
// group first, then the seq.
var groupEntryPrefix = []byte(`{"type":"group_entry","group":"`)

// groupEntryKey returns the group and seq of a group_entry push frame;
// ok is false for any other frame.
func groupEntryKey(frame []byte) (group string, seq int64, ok bool) {
	rest, ok := bytes.CutPrefix(frame, groupEntryPrefix)
	if !ok {
		return "", 0, false
	}
	i := bytes.IndexByte(rest, '"')
	if i <= 0 {
		return "", 0, false
	}
	group = string(rest[:i])
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`","seq":`))
	if !ok {
		return "", 0, false
	}
	n := 0
	for ; n < len(rest) && rest[n] >= '0' && rest[n] <= '9' && n < 19; n++ {
		seq = seq*10 + int64(rest[n]-'0')
	}
	if n == 0 || seq <= 0 {
		return "", 0, false
	}
	return group, seq, true
}

// enqueueLocked is enqueue with s.mu held.
func (s *session) enqueueLocked(frame []byte) bool {
	if s.closing {
		return false
	}
	if len(s.out)+len(frame) > s.srv.cfg.Limits.OutboundQueueBytes {
		s.beginCloseLocked(CloseSlowConsumer, CloseSlowConsumer.kicked("too much unread output; pending messages are kept"), true)
		return false
	}
	s.appendOutLocked(frame)
	s.startWriterLocked()
	return true
}

// maxPooledOut is the largest output buffer kept in Server.outBufs.
const maxPooledOut = 64 << 10

// appendOutLocked appends frame to the queued output, taking a buffer
// from the pool when there is none.
func (s *session) appendOutLocked(frame []byte) {
	if s.out == nil {
		if b, ok := s.srv.outBufs.Get().(*[]byte); ok {
			s.out, s.outBox = (*b)[:0], b
		}
	}
	s.out = append(s.out, frame...)
}

// putOut returns a written buffer to the pool, in box if it came in one
// (see outBox).
func (s *session) putOut(buf []byte, box *[]byte) {
	if buf != nil && cap(buf) <= maxPooledOut {
		if box == nil {
			box = new([]byte)
		}
		*box = buf[:0]
		s.srv.outBufs.Put(box)
	}
}

// enqueueDeferred is enqueue without starting a writer: the caller (the
// pipeline's answer stage) calls flush once it has queued a batch's
// output. first reports that s had no flush pending, so the caller must
// flush it.
func (s *session) enqueueDeferred(frame []byte) (ok, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false, false
	}
	if len(s.out)+len(frame) > s.srv.cfg.Limits.OutboundQueueBytes {
		s.beginCloseLocked(CloseSlowConsumer, CloseSlowConsumer.kicked("too much unread output; pending messages are kept"), true)
		return false, false
	}
	s.appendOutLocked(frame)
	first = !s.flushPending
	s.flushPending = true
	return true, first
}

// flush writes the queued output. With no writer running, it writes at
// once from the calling goroutine without waiting for the socket
// (writeNow): on a connection that keeps up that is the whole write, with
// no goroutine started and no deadline set. What the socket does not take
// is left to a writer goroutine, as enqueue would.
func (s *session) flush() {
	s.mu.Lock()
	s.flushPending = false
	if s.writing || s.closed || len(s.out) == 0 {
		s.mu.Unlock()
		return
	}
	if s.raw == nil {
		s.startWriterLocked()
		s.mu.Unlock()
		return
	}
	s.writing = true
	buf, box := s.out, s.outBox
	s.out, s.outBox = nil, nil
	s.mu.Unlock()

	n, err := s.writeNow(buf)
	s.srv.m.sentBytes.Add(float64(n))

	s.mu.Lock()
	switch {
	case s.closed:
		s.writing = false
	case err != nil:
		s.writing = false
		reason := CloseWriteError
		if s.closing && s.reason != CloseNone {
			reason = s.reason
		}
		s.closeLocked(reason)
		s.mu.Unlock()
		return
	default:
		if n < len(buf) { // the socket is full: the rest goes first
			s.out = append(buf[n:len(buf):len(buf)], s.out...)
		} else {
			s.putOut(buf, box)
		}
		if len(s.out) > 0 {
			s.srv.writers.Add(1)
			go s.writeLoop() // s.writing stays true
		} else {
			s.writing = false
			if s.closing {
				s.closeLocked(s.reason)
			}
		}
	}
	s.mu.Unlock()
}

// send queues a frame; a closing session drops it.
func (s *session) send(frame []byte) { s.enqueue(frame) }

func (s *session) startWriterLocked() {
	if s.writing || s.closed {
		return
	}
	s.writing = true
	s.srv.writers.Add(1)
	go s.writeLoop()
}

// writeLoop writes queued output until the queue is empty, then exits. It
// closes the connection when the session is closing and everything queued
// was written.
func (s *session) writeLoop() {
	defer s.srv.writers.Done()
	var buf []byte
	for {
		s.mu.Lock()
		if len(s.out) == 0 || s.closed {
			if buf != nil && !s.closed && s.raw != nil {
				// flush's writes do not wait and must not fail on this
				// loop's deadline once it has passed.
				s.conn.SetWriteDeadline(time.Time{})
			}
			s.writing = false
			if s.closing && !s.closed {
				s.closeLocked(s.reason)
			}
			s.mu.Unlock()
			s.putOut(buf, nil)
			return
		}
		buf, s.out, s.outBox = s.out, buf[:0], nil
		s.mu.Unlock()

		s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.Limits.WriteTimeout))
		n, err := s.conn.Write(buf)
		s.srv.m.sentBytes.Add(float64(n))
		if err != nil {
			reason := CloseWriteError
			if errors.Is(err, os.ErrDeadlineExceeded) {
				reason = CloseWriteTimeout
			}
			s.mu.Lock()
			s.writing = false
			if s.closing && s.reason != CloseNone {
				reason = s.reason // e.g. slow_consumer whose kicked push never left
			}
			s.closeLocked(reason)
			s.mu.Unlock()
			return
		}
	}
}

// finish takes the session out of the online set, queues final (if any)
// and closes the connection once it is written. With drop, output queued
// but not yet written is discarded first.
func (s *session) finish(reason CloseReason, final []byte, drop bool) {
	s.mu.Lock()
	s.beginCloseLocked(reason, final, drop)
	s.mu.Unlock()
}

func (s *session) beginCloseLocked(reason CloseReason, final []byte, drop bool) {
	if s.closing {
		return
	}
	s.setClosingLocked(reason)
	if drop {
		s.out = s.out[:0]
	}
	s.out = append(s.out, final...)
	if s.writing {
		return // the writer closes when done
	}
	if len(s.out) == 0 {
		s.closeLocked(reason)
		return
	}
	s.startWriterLocked()
}

// kick sends a kicked push (its reason is reason's, see
// CloseReason.KickReason) and closes the connection after it.
func (s *session) kick(reason CloseReason, message string) {
	s.finish(reason, reason.kicked(message), false)
}

// closeNow closes the connection at once.
func (s *session) closeNow(reason CloseReason) {
	s.mu.Lock()
	if !s.closing {
		s.setClosingLocked(reason)
	}
	s.closeLocked(s.reason)
	s.mu.Unlock()
}

// setClosingLocked marks the session closing: it takes no more output,
// and it leaves the router. It is the one place where a session leaves
// the router (but for a login that fails after joining): every way of
// closing passes here first. Router.Leave may be called with s.mu held.
func (s *session) setClosingLocked(reason CloseReason) {
	s.closing = true
	s.reason = reason
	if s.loggedIn.Load() {
		s.srv.router.Leave(s)
	}
	if s.inPresence {
		s.inPresence = false
		s.srv.presence.Leave(s.user)
	}
}

func (s *session) closeLocked(reason CloseReason) {
	if s.closed {
		return
	}
	if !s.closing {
		s.setClosingLocked(reason)
	}
	s.closed = true
	s.reason = reason
	s.out = nil
	s.conn.Close()
	s.srv.connClosed(s)
	if s.sendBucket != nil {
		s.srv.sendLimits.Release(s.sendBucket)
	}
	s.srv.m.connClosedAs(reason)
	lvl := slog.LevelDebug
	switch reason {
	case CloseSlowConsumer, CloseWriteTimeout, CloseKicked, CloseFrameTooLarge:
		lvl = slog.LevelInfo
	}
	s.logger().Log(context.Background(), lvl, "connection closed", "reason", reason.String(), "user", s.userName(),
		"duration", time.Since(s.start).Round(time.Millisecond), "msgs_in", s.msgsIn.Load(), "msgs_out", s.msgsOut.Load())
}

// holdSendBucket takes the logged-in user's send-rate bucket. The reader
// calls it at login. A connection closed meanwhile releases it at once
// (closeLocked has run) but keeps using it for its last requests.
func (s *session) holdSendBucket() {
	sb := s.srv.sendLimits.Acquire(s.user)
	s.mu.Lock()
	s.sendBucket = sb
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.srv.sendLimits.Release(sb)
	}
}

// takeSendToken takes a token from the user's send-rate bucket, or says
// how long until there is one. Only the reader calls it, after login.
func (s *session) takeSendToken() (bool, time.Duration) {
	return s.srv.sendLimits.Take(s.sendBucket)
}

// User is the logged-in user name (route.Session); it is set before the
// session joins the router and never changes after.
func (s *session) User() string { return s.user }

func (s *session) userName() string {
	if s.loggedIn.Load() {
		return s.user
	}
	return ""
}
