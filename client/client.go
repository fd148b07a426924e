package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// DefaultDialTimeout is the connect timeout of the dialer used when
// Options.Dialer is nil.
const DefaultDialTimeout = 10 * time.Second

// ErrClosed is the reason Err reports, and the error calls return, after
// Close.
var ErrClosed = errors.New("closed by the client")

// maxKeptWriteBuf bounds the write buffer a client keeps between requests.
const maxKeptWriteBuf = 64 << 10

// Options configures Dial. The zero value is ready to use.
type Options struct {
	// Dialer connects to the server; nil means a net.Dialer with
	// DefaultDialTimeout.
	Dialer *net.Dialer
	// Logger receives diagnostics (ignored pushes, discarded late replies,
	// the end of the connection); nil discards them.
	Logger *slog.Logger
	// MaxFrameBytes bounds the length of a frame read from the server; 0
	// means protocol.DefaultMaxFrameBytes. A longer frame ends the
	// connection.
	MaxFrameBytes int
	// TLS, when set, makes Dial speak TLS (qqd's tls.listen); set its
	// RootCAs for a private CA and ServerName when addr is not the name
	// in the certificate. TLS 1.2 is the minimum.
	TLS *tls.Config
	// Dial, when set, opens the connection instead of Dialer and TLS,
	// with Dial's addr: for instance a WebSocket to qqd's web listener
	// (daemon/web.Dial), which carries the same QQP/1 stream.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Events delivers pushes other than messages (friend requests and
	// answers, presence, typing, notices, group entries and requests to
	// join) on Events. Without it they are
	// dropped; with it, the program must read Events (they queue without
	// bound meanwhile, like messages).
	Events bool
}

// Event is a push other than a message. Type says which; the fields that
// push carries are set (docs/protocol.md, "Friends, presence and
// typing" and "Groups"):
//
//   - friend_request: User (who asks), Note, TS
//   - friend_added: User, Since
//   - friend_removed, friend_declined, friend_cancelled: User
//   - presence: User, State (online, away, busy, offline), Text
//   - typing: User (who types), State (start, stop)
//   - notice: Text (an operator's broadcast)
//   - group_entry: Group, Entry (the new entry of the group's log; TS is
//     the entry's)
//   - group_join_request: Group, User (who asks to join)
//
// Types added later arrive with Type set and nothing else.
type Event struct {
	Type  protocol.Type
	User  string
	Note  string
	TS    int64
	Since int64
	State string
	Text  string
	Group string // the group's id (group pushes, and typing in a group)
	// Entry is the entry a group_entry push carries; nil for other
	// pushes.
	Entry *protocol.GroupEntry

	// The fields below are set only on a Session's own events
	// (EventDown, EventReconnecting, EventUp, EventSendDone); see
	// Session.Events.

	// Err is why the connection ended (EventDown), why the previous
	// attempt failed (EventReconnecting; nil before the first), or why a
	// send was refused (EventSendDone; nil when it was stored).
	Err error
	// Attempt counts the reconnection attempts since the connection was
	// lost: 1 for the first (EventReconnecting), and on EventUp the
	// attempt that succeeded (0: the first login, made by Connect).
	Attempt int
	// Delay is the wait before this attempt (EventReconnecting).
	Delay time.Duration
	// Resumed is true when the login of EventUp was a resume by token,
	// false when it was by password.
	Resumed bool
	// Pending is the number of messages pending for the user at the
	// login of EventUp (they are fetched and delivered on Messages).
	Pending int64
	// Send is the outcome of a send from the outbox whose result no Send
	// call received (EventSendDone).
	Send *SendDone
}

// eventOf returns the Event of a push frame.
func eventOf(f *frame) Event {
	e := Event{Type: f.Type, User: f.User, Note: f.Note, TS: f.TS, Since: f.Since, State: f.State, Text: f.Text}
	switch f.Type {
	case protocol.TypeFriendRequest:
		e.User = f.From
	case protocol.TypeTyping:
		e.User, e.Group = f.From, f.GroupEntry.Group
	case protocol.TypeNotice:
		e.Text = f.Message
	case protocol.TypeGroupEntry:
		entry := f.Entry()
		e.Group, e.Entry = entry.Group, &entry
	case protocol.TypeGroupJoinRequest:
		e.Group = f.GroupEntry.Group
	}
	return e
}

// frame is a frame from the server as the client decodes it: a
// protocol.ServerFrame, plus the fields of the group_info reply that
// ServerFrame lacks. That reply's members is a count, which does not
// decode into ServerFrame.Members (the group_members reply's list):
// Members keeps the raw value for the method that knows which it is.
type frame struct {
	protocol.ServerFrame
	Members json.RawMessage `json:"members,omitempty"`
	Owner   string          `json:"owner,omitempty"`
	MuteAll bool            `json:"mute_all,omitempty"`
	LastSeq int64           `json:"last_seq,omitempty"`
}

// KickedError is the reason a connection ended after a kicked push.
type KickedError struct {
	// Reason is the kick's code: protocol.KickShutdown, KickSlowConsumer,
	// KickAdmin, KickIdle or one added later.
	Reason protocol.KickReason
	// Message is the server's human text.
	Message string
	// RetryAfter is when the server asks to reconnect (qqd sets it with
	// KickShutdown, spread over its reconnect_spread); 0 when it gave no
	// hint.
	RetryAfter time.Duration
}

func (e *KickedError) Error() string {
	s := "kicked by the server (" + string(e.Reason) + ")"
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// SendResult is the ok to a send.
type SendResult struct {
	MsgID  string
	TS     int64 // unix milliseconds, as in the message
	Status protocol.Status
	// Body is the stored body when the server reports one that differs from
	// the body sent (a filter rewrote it, or this was a cid retry of a send
	// with another body), otherwise "".
	Body string
}

// Client is one QQP/1 connection. See the package documentation for its
// contracts.
type Client struct {
	conn  net.Conn
	fr    *protocol.FrameReader // owned by the reader goroutine after Dial
	log   *slog.Logger
	hello protocol.Hello

	wmu  sync.Mutex // serializes writes; guards wbuf
	wbuf []byte

	mu      sync.Mutex
	nextID  uint64
	waiting map[string]chan *frame
	closing bool  // Close was called
	cause   error // why the client itself broke the connection, if it did
	nullErr error // last error reply with a null id
	err     error // why the connection ended; set just before done is closed

	queue  queue[protocol.Message]
	msgs   chan protocol.Message
	events *queue[Event] // nil without Options.Events
	evs    chan Event
	done   chan struct{} // closed when the connection has ended
	closed chan struct{} // closed by Close

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Dial connects to the qqd at addr and reads its hello. It fails if no
// QQP/1 hello arrives before ctx ends.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	d := opts.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: DefaultDialTimeout}
	}
	maxFrame := opts.MaxFrameBytes
	if maxFrame <= 0 {
		maxFrame = protocol.DefaultMaxFrameBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var conn net.Conn
	var err error
	switch {
	case opts.Dial != nil:
		conn, err = opts.Dial(ctx, addr)
	case opts.TLS != nil:
		cfg := opts.TLS.Clone()
		cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
		conn, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", addr)
	default:
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	fr := protocol.NewFrameReader(conn, maxFrame)
	hello, err := readHello(ctx, conn, fr)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("client: hello from %s: %w", addr, err)
	}
	c := &Client{
		conn:    conn,
		fr:      fr,
		log:     log.With("addr", addr),
		hello:   hello,
		waiting: make(map[string]chan *frame),
		queue:   queue[protocol.Message]{signal: make(chan struct{}, 1)},
		msgs:    make(chan protocol.Message),
		evs:     make(chan Event),
		done:    make(chan struct{}),
		closed:  make(chan struct{}),
	}
	c.wg.Add(2)
	go c.readLoop()
	go func() {
		defer c.wg.Done()
		pump(&c.queue, c.msgs, c.closed)
	}()
	if opts.Events {
		c.events = &queue[Event]{signal: make(chan struct{}, 1)}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			pump(c.events, c.evs, c.closed)
		}()
	} else {
		close(c.evs)
	}
	return c, nil
}

func readHello(ctx context.Context, conn net.Conn, fr *protocol.FrameReader) (protocol.Hello, error) {
	unbind := bindDeadline(ctx, conn.SetReadDeadline)
	line, err := nextFrame(fr)
	unbind()
	if err != nil {
		if ctx.Err() != nil {
			return protocol.Hello{}, ctx.Err()
		}
		return protocol.Hello{}, err
	}
	var f protocol.ServerFrame
	if err := json.Unmarshal(line, &f); err != nil {
		return protocol.Hello{}, fmt.Errorf("malformed frame: %w", err)
	}
	if f.Type != protocol.TypeHello {
		if f.Type == protocol.TypeError {
			return protocol.Hello{}, fmt.Errorf("expected a hello: %w", f.Err())
		}
		return protocol.Hello{}, fmt.Errorf("expected a hello, got a %q frame", f.Type)
	}
	if f.Proto != protocol.Version {
		return protocol.Hello{}, fmt.Errorf("server speaks QQP/%d, not QQP/%d", f.Proto, protocol.Version)
	}
	return protocol.Hello{Server: f.Server, Version: f.Version, Proto: f.Proto, Features: f.Features}, nil
}

// nextFrame returns the next frame that is not blank.
func nextFrame(fr *protocol.FrameReader) ([]byte, error) {
	for {
		line, err := fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) > 0 {
			return line, nil
		}
	}
}

// bindDeadline makes a blocked read or write (per set) fail as soon as ctx
// is done, until the returned function is called; that function clears the
// deadline again. The deadline is set only after ctx is done, so a call that
// failed by it always sees ctx.Err() != nil.
func bindDeadline(ctx context.Context, set func(time.Time) error) (unbind func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0)) // in the past: wake the blocked call now
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired // do not let a late set outlive the reset below
		}
		set(time.Time{})
	}
}

// Hello returns the server's hello.
func (c *Client) Hello() protocol.Hello { return c.hello }

// Messages returns the channel of msg pushes, in arrival order. It is closed
// after the connection has ended and every queued message was received, or
// at once by Close.
func (c *Client) Messages() <-chan protocol.Message { return c.msgs }

// Done returns a channel closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is up, and then why it ended: a
// *KickedError, ErrClosed, io.EOF when the server closed it, or another
// error.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection (if it has not ended already), fails waiting
// calls, discards undelivered messages and waits for the client's goroutines
// to exit. It always returns nil.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		close(c.closed)
		c.conn.Close()
	})
	c.wg.Wait()
	return nil
}

// Register creates an account. It does not log in.
func (c *Client) Register(ctx context.Context, user, password string) error {
	_, err := c.call(ctx, protocol.TypeRegister, func(f protocol.Frame) protocol.Frame {
		return f.Str("user", user).Str("password", password)
	})
	return err
}

// Login logs the connection in and returns how many messages are pending
// for the user. Pending messages are not pushed: fetch them with Offline.
func (c *Client) Login(ctx context.Context, user, password string) (pending int64, err error) {
	r, err := c.login(ctx, user, password, false)
	return r.Pending, err
}

// Send sends body to the user to. Every call is a new message; use SendCID
// for retries that must not duplicate.
func (c *Client) Send(ctx context.Context, to, body string) (SendResult, error) {
	return c.SendCID(ctx, to, body, "")
}

// SendCID sends body to the user to with the client id cid, which makes a
// retry safe: the server answers a repeated (sender, cid) with the first
// send's result. An empty cid is omitted.
func (c *Client) SendCID(ctx context.Context, to, body, cid string) (SendResult, error) {
	return c.sendCID(ctx, to, body, cid, false)
}

// SendFirst is SendCID for the first send of cid, which must not be
// empty: the request says so ("first": true), and the server then skips
// the look-up of an earlier message under cid that it makes before the
// filters, which saves a storage round trip. A cid that was sent before
// must go with SendCID: marked first, a repeat is still answered with the
// first message and never stored twice, but the server's filters see it
// again (and may refuse it).
func (c *Client) SendFirst(ctx context.Context, to, body, cid string) (SendResult, error) {
	if cid == "" {
		return SendResult{}, errors.New("send first: empty cid")
	}
	return c.sendCID(ctx, to, body, cid, true)
}

func (c *Client) sendCID(ctx context.Context, to, body, cid string, first bool) (SendResult, error) {
	f, err := c.call(ctx, protocol.TypeSend, func(f protocol.Frame) protocol.Frame {
		f = f.Str("to", to).Str("body", body)
		if cid != "" {
			f = f.Str("cid", cid)
		}
		if first {
			f = f.Bool("first", true)
		}
		return f
	})
	if err != nil {
		return SendResult{}, err
	}
	r := SendResult{MsgID: f.MsgID, TS: f.TS, Status: f.Status}
	if f.Body != "" && f.Body != body {
		r.Body = f.Body
	}
	return r, nil
}

// Ack settles the given messages. Ids that are not pending for the user are
// ignored by the server.
func (c *Client) Ack(ctx context.Context, msgIDs ...string) error {
	_, err := c.call(ctx, protocol.TypeAck, func(f protocol.Frame) protocol.Frame {
		return f.Strings("msg_ids", msgIDs)
	})
	return err
}

// Offline returns the oldest pending messages, oldest first, and whether
// more are pending beyond them. limit <= 0 means the server's default.
func (c *Client) Offline(ctx context.Context, limit int) (msgs []protocol.Message, more bool, err error) {
	f, err := c.call(ctx, protocol.TypeOffline, func(f protocol.Frame) protocol.Frame {
		if limit > 0 {
			f = f.Int("limit", int64(limit))
		}
		return f
	})
	if err != nil {
		return nil, false, err
	}
	return nonNil(f.Messages), f.More, nil
}

// History returns a page of the conversation with the user with, oldest
// first: the page just before the message before, or the newest page when
// before is "". more reports whether older messages exist. limit <= 0 means
// the server's default.
func (c *Client) History(ctx context.Context, with, before string, limit int) ([]protocol.Message, bool, error) {
	f, err := c.call(ctx, protocol.TypeHistory, func(f protocol.Frame) protocol.Frame {
		f = f.Str("with", with)
		if before != "" {
			f = f.Str("before", before)
		}
		if limit > 0 {
			f = f.Int("limit", int64(limit))
		}
		return f
	})
	if err != nil {
		return nil, false, err
	}
	return nonNil(f.Messages), f.More, nil
}

// Users returns the names of the users with at least one logged-in
// connection, sorted byte-wise.
func (c *Client) Users(ctx context.Context) ([]string, error) {
	f, err := c.call(ctx, protocol.TypeUsers, nil)
	if err != nil {
		return nil, err
	}
	if f.Users == nil {
		return []string{}, nil
	}
	return f.Users, nil
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.call(ctx, protocol.TypePing, nil)
	return err
}

// Logout logs out; the server then closes the connection. Close is still
// needed (and safe) afterwards.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.call(ctx, protocol.TypeLogout, nil)
	return err
}

func nonNil(ms []protocol.Message) []protocol.Message {
	if ms == nil {
		return []protocol.Message{}
	}
	return ms
}

// call sends one request and waits for its reply. build adds the request's
// fields after type and id; it may be nil.
func (c *Client) call(ctx context.Context, t protocol.Type, build func(protocol.Frame) protocol.Frame) (*frame, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := make(chan *frame, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.endErr()
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	c.waiting[id] = ch
	c.mu.Unlock()

	if err := c.write(ctx, t, id, build); err != nil {
		c.forget(id)
		return nil, err
	}
	select {
	case f := <-ch:
		return result(f)
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	case <-c.done:
		select {
		case f := <-ch: // the reply came just before the end
			return result(f)
		default:
			return nil, c.endErr()
		}
	}
}

func result(f *frame) (*frame, error) {
	if f.Type == protocol.TypeError {
		return nil, f.Err()
	}
	return f, nil
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.waiting, id)
	c.mu.Unlock()
}

// endErr is the error of a call that failed because the connection ended.
// It must be called only after c.err is set.
func (c *Client) endErr() error {
	return fmt.Errorf("client: connection ended: %w", c.Err())
}

// write writes one request frame. A frame cut short (by ctx or an error)
// corrupts the stream, so then the connection is closed.
func (c *Client) write(ctx context.Context, t protocol.Type, id string, build func(protocol.Frame) protocol.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	f := protocol.StartFrame(c.wbuf[:0], t).Str("id", id)
	if build != nil {
		f = build(f)
	}
	b := f.End()
	unbind := bindDeadline(ctx, c.conn.SetWriteDeadline)
	n, err := c.conn.Write(b)
	unbind()
	if cap(b) <= maxKeptWriteBuf {
		c.wbuf = b[:0]
	} else {
		c.wbuf = nil
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if n > 0 {
			c.fail(fmt.Errorf("%s request cut short: %w", t, ctx.Err()))
		}
		return ctx.Err()
	}
	c.fail(fmt.Errorf("write %s request: %w", t, err))
	<-c.done
	return c.endErr()
}

// fail ends the connection because of err, unless it has ended already.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = err
	}
	c.mu.Unlock()
	c.conn.Close()
}

// readLoop is the only reader of the connection.
func (c *Client) readLoop() {
	defer c.wg.Done()
	err := c.readFrames()

	c.mu.Lock()
	var kicked *KickedError
	switch {
	case errors.As(err, &kicked):
	case c.closing:
		err = ErrClosed
	case c.cause != nil:
		err = c.cause
	case c.nullErr != nil:
		err = c.nullErr // e.g. frame_too_large, after which the server closes
	}
	c.err = err
	c.waiting = nil
	c.mu.Unlock()

	c.conn.Close()
	close(c.done)
	c.queue.end()
	if c.events != nil {
		c.events.end()
	}
	c.log.Debug("qq client: connection ended", "err", err)
}

func (c *Client) readFrames() error {
	for {
		line, err := nextFrame(c.fr)
		if err != nil {
			return err
		}
		var f frame
		if err := json.Unmarshal(line, &f); err != nil {
			return fmt.Errorf("malformed frame from the server: %w", err)
		}
		switch f.Type {
		case protocol.TypeOK, protocol.TypeError:
			c.deliver(&f)
		case protocol.TypeMsg:
			c.queue.push(f.Msg())
		case protocol.TypeKicked:
			return &KickedError{Reason: protocol.KickReason(f.Reason), Message: f.Message,
				RetryAfter: time.Duration(f.RetryAfterMS) * time.Millisecond}
		case protocol.TypeHello:
			c.log.Debug("qq client: ignoring a second hello")
		default:
			if c.events != nil {
				c.events.push(eventOf(&f))
				continue
			}
			c.log.Debug("qq client: ignoring push", "type", f.Type)
		}
	}
}

// deliver hands a reply to the call waiting for it.
func (c *Client) deliver(f *frame) {
	var id string
	if len(f.ID) == 0 || string(f.ID) == "null" || json.Unmarshal(f.ID, &id) != nil {
		c.log.Warn("qq client: reply without a usable id", "type", f.Type, "id", string(f.ID), "code", f.Code, "message", f.Message)
		if f.Type == protocol.TypeError {
			c.mu.Lock()
			c.nullErr = f.Err()
			c.mu.Unlock()
		}
		return
	}
	c.mu.Lock()
	ch, ok := c.waiting[id]
	delete(c.waiting, id)
	c.mu.Unlock()
	if !ok {
		c.log.Debug("qq client: discarding reply nobody waits for", "id", id, "type", f.Type)
		return
	}
	ch <- f // buffered, and each id is delivered at most once
}
