package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// Session defaults.
const (
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait before a
	// reconnection attempt when SessionOptions leaves them 0.
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// DefaultOutboxSize is how many sends may wait for their ok at once.
	DefaultOutboxSize = 1000
	// DefaultSeenIDs is how many msg_ids of acked messages a session
	// remembers to drop repeats.
	DefaultSeenIDs = 4096
	// DefaultOfflinePage is the page size of the catch-up after a login.
	DefaultOfflinePage = 100
	// DefaultPingInterval is how often a session pings an idle server
	// (qqd kicks a connection silent for limits.idle_timeout, 5 min).
	DefaultPingInterval = time.Minute
)

// attemptTimeout bounds one reconnection attempt: dial, hello and login.
const attemptTimeout = DefaultDialTimeout + 20*time.Second

// maxAckIDs is the most msg_ids one ack carries (qqd's limits.max_ack_ids
// is 1000).
const maxAckIDs = 1000

// Session event types: the session's own events on Session.Events, among
// the pushes. Their names hold a ".", which no wire type does.
const (
	// EventDown: the connection was lost; Err says why. The session
	// reconnects unless Err is a kick by an operator (then the session
	// ends).
	EventDown protocol.Type = "session.down"
	// EventReconnecting: attempt Attempt starts after Delay; Err is why
	// the previous attempt failed (nil before the first).
	EventReconnecting protocol.Type = "session.reconnecting"
	// EventUp: logged in, by token (Resumed) or by password; Pending
	// messages wait and are fetched. Attempt is 0 for the login Connect
	// made.
	EventUp protocol.Type = "session.up"
	// EventSendDone: a send from the outbox was stored (Err nil) or
	// refused, and no Send call received that result: it was queued
	// with Enqueue, or its Send returned early because ctx ended.
	EventSendDone protocol.Type = "session.send_done"
)

// ErrDisconnected is the error of a Session's requests while it has no
// connection (it is reconnecting).
var ErrDisconnected = errors.New("client: not connected: the session is reconnecting")

// ErrOutboxFull is the error of a send when SessionOptions.OutboxSize
// sends already wait for their ok.
var ErrOutboxFull = errors.New("client: outbox full: too many sends wait for the server")

// ErrNoCredentials ends a session whose token cannot be used (the server
// does not list the resume feature) and that has no password.
var ErrNoCredentials = errors.New("client: the server does not offer resume tokens and the session has no password")

// SessionOptions configures Connect.
type SessionOptions struct {
	// Options are the options of each connection's Dial. Their Events is
	// ignored: a session always delivers events.
	Options Options
	// User is the user to log in as; required with a Password. With a
	// Token alone it may be "" (the token names its user).
	User string
	// Password logs in. The session keeps it in memory, to log in again
	// after a connection is lost when it has no usable token. It is
	// needed unless Token is set.
	Password string
	// Token is a resume token from an earlier login with Remember (see
	// Session.Token), used on servers that list the resume feature.
	Token string
	// Remember asks the server for a resume token at each password login,
	// on servers that list the resume feature. The session then resumes
	// by token after a lost connection (no password work on the server);
	// Session.Token returns the token for the application to keep, if it
	// wants, for a later Connect.
	Remember bool
	// MinBackoff and MaxBackoff bound the wait before a reconnection
	// attempt (0: DefaultMinBackoff, DefaultMaxBackoff): attempt n waits
	// a uniformly random time between MinBackoff and
	// min(MaxBackoff, MinBackoff·2ⁿ). A server's kicked shutdown with
	// retry_after_ms sets the first wait instead.
	MinBackoff, MaxBackoff time.Duration
	// OutboxSize is how many sends may wait for their ok at once
	// (0: DefaultOutboxSize); past it a send fails with ErrOutboxFull.
	OutboxSize int
	// SeenIDs is how many msg_ids of acked messages the session
	// remembers to drop repeats (0: DefaultSeenIDs), besides every
	// delivered message not yet acked.
	SeenIDs int
	// OfflinePage is the page size of the catch-up after each login
	// (0: DefaultOfflinePage).
	OfflinePage int
	// PingInterval is how often the session pings the server, so that
	// an idle session is not kicked for idleness (0:
	// DefaultPingInterval; negative: never).
	PingInterval time.Duration
}

// Session is a login that rides through lost connections: it reconnects
// with jittered exponential backoff, logs in again (by resume token, or
// by password), catches up on what arrived meanwhile, and re-sends what
// was not confirmed. It is built on *Client, one connection at a time.
// See the package documentation for its contracts.
type Session struct {
	addr string
	opts SessionOptions
	log  *slog.Logger

	// ctx ends when the session ends; the requests the session makes
	// itself run under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu           sync.Mutex
	c            *Client // the current connection; nil while there is none
	hello        protocol.Hello
	user         string
	password     string
	token        string
	tokenExpires time.Time
	pending      int64
	presence     *[2]string // the last state and text set, re-set after a reconnect
	ending       bool       // Logout or Close: do not reconnect
	err          error      // why the session ended; set before done is closed
	in           inbox
	out          outbox

	msgs   queue[protocol.Message]
	msgCh  chan protocol.Message
	events queue[Event]
	evCh   chan Event
	done   chan struct{} // closed when the session has ended
	closed chan struct{} // closed by Close

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Connect dials the qqd at addr and logs in: by opts.Token when the
// server lists the resume feature (falling back to opts.Password if the
// token is refused), else by opts.Password. It makes one attempt, bounded
// by ctx, and returns its error: a *protocol.Error with code auth_failed
// for refused credentials. ctx does not bound the session's life: Close
// (or Logout) ends it.
func Connect(ctx context.Context, addr string, opts SessionOptions) (*Session, error) {
	if opts.Token == "" {
		if opts.User == "" {
			return nil, errors.New("client: connect: a user name is needed with a password")
		}
		if opts.Password == "" {
			return nil, errors.New("client: connect: no password and no token")
		}
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.OutboxSize <= 0 {
		opts.OutboxSize = DefaultOutboxSize
	}
	if opts.SeenIDs <= 0 {
		opts.SeenIDs = DefaultSeenIDs
	}
	if opts.OfflinePage <= 0 {
		opts.OfflinePage = DefaultOfflinePage
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	opts.Options.Events = true
	log := opts.Options.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		addr:     addr,
		opts:     opts,
		log:      log.With("addr", addr),
		user:     opts.User,
		password: opts.Password,
		token:    opts.Token,
		in:       newInbox(opts.SeenIDs),
		out:      newOutbox(),
		msgs:     queue[protocol.Message]{signal: make(chan struct{}, 1)},
		msgCh:    make(chan protocol.Message),
		events:   queue[Event]{signal: make(chan struct{}, 1)},
		evCh:     make(chan Event),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	c, up, aerr := s.establish(ctx)
	if aerr != nil {
		s.cancel()
		return nil, aerr.err
	}
	s.mu.Lock()
	s.c, s.hello = c, c.Hello()
	s.mu.Unlock()
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		pump(&s.msgs, s.msgCh, s.closed)
	}()
	go func() {
		defer s.wg.Done()
		pump(&s.events, s.evCh, s.closed)
	}()
	go s.run(c, up)
	return s, nil
}

// Messages returns the channel of messages to the user, each once (by
// msg_id), in the order each sender's messages were stored: those that
// were pending at each login, then those pushed. It is closed after the
// session has ended and every queued message was received, or at once by
// Close.
func (s *Session) Messages() <-chan protocol.Message { return s.msgCh }

// Events returns the channel of the session's own events (EventDown,
// EventReconnecting, EventUp, EventSendDone) and of every push other than
// a message, in order. The program must read it (events queue without
// bound meanwhile). It is closed like Messages.
func (s *Session) Events() <-chan Event { return s.evCh }

// Done returns a channel closed when the session has ended: after Close
// or Logout, or when it could not log in again (see Err).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns nil while the session lives, and then why it ended:
// ErrClosed after Close or Logout; the *KickedError of an operator's
// kick; or the error of a login that cannot succeed by retrying (a
// *protocol.Error with code auth_failed for refused credentials,
// ErrNoCredentials).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// endErr is the error of a call that failed because the session ended.
// s.mu is held and s.err is set.
func (s *Session) endErrLocked() error {
	return fmt.Errorf("client: session ended: %w", s.err)
}

// Connected reports whether the session has a logged-in connection now.
func (s *Session) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c != nil
}

// User returns the name the session is logged in as (the last login's).
func (s *Session) User() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user
}

// Pending returns the pending count of the last login.
func (s *Session) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Token returns the session's resume token and its expiry: the token it
// was given, or the one the server issued at the last login with
// Remember; "" when it has none (never had one, or the server refused
// it).
func (s *Session) Token() (token string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token, s.tokenExpires
}

// Hello returns the hello of the last connection.
func (s *Session) Hello() protocol.Hello {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hello
}

// Has reports whether the last connection's server listed feature in its
// hello.
func (s *Session) Has(feature string) bool {
	return slices.Contains(s.Hello().Features, feature)
}

// Close ends the session without logging out: its connection is closed
// (a resume token stays valid), waiting calls fail, undelivered messages
// and events are discarded, and sends still in the outbox are abandoned
// (Unsent lists them). When it returns, the session's goroutines have
// exited. It always returns nil and may be called any number of times.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.ending = true
		s.mu.Unlock()
		close(s.closed)
		s.cancel()
	})
	s.wg.Wait()
	return nil
}

// Logout logs out on the current connection (the server revokes the
// session's resume token, if the login used or asked for one) and ends
// the session as Close does. Without a connection it returns
// ErrDisconnected, and the session ends all the same.
func (s *Session) Logout(ctx context.Context) error {
	s.mu.Lock()
	s.ending = true
	c := s.c
	s.mu.Unlock()
	err := ErrDisconnected
	if c != nil {
		err = c.Logout(ctx)
	}
	s.Close()
	return err
}

func (s *Session) emit(e Event) { s.events.push(e) }

// attemptError is why a connection attempt failed.
type attemptError struct {
	err   error
	final bool          // retrying cannot help: the session ends
	wait  time.Duration // the server's retry_after_ms, if it gave one
}

// establish dials and logs in, once.
func (s *Session) establish(ctx context.Context) (*Client, Event, *attemptError) {
	c, err := Dial(ctx, s.addr, s.opts.Options)
	if err != nil {
		return nil, Event{}, &attemptError{err: err}
	}
	up, aerr := s.authenticate(ctx, c)
	if aerr != nil {
		c.Close()
		return nil, Event{}, aerr
	}
	return c, up, nil
}

// authenticate logs c in: by token if the session has one and the server
// takes it, else by password.
func (s *Session) authenticate(ctx context.Context, c *Client) (Event, *attemptError) {
	s.mu.Lock()
	token, user, password := s.token, s.user, s.password
	s.mu.Unlock()
	if token != "" && c.Has(protocol.FeatureResume) {
		r, err := c.Resume(ctx, token, user)
		if err == nil {
			s.loggedIn(r, true)
			return Event{Type: EventUp, Resumed: true, Pending: r.Pending}, nil
		}
		if !tokenRefused(err) {
			return Event{}, loginError(err)
		}
		s.mu.Lock()
		if s.token == token {
			s.token, s.tokenExpires = "", time.Time{}
		}
		s.mu.Unlock()
		if password == "" {
			return Event{}, &attemptError{err: fmt.Errorf("client: resume token refused: %w", err), final: true}
		}
		s.log.Info("qq session: resume token refused; logging in with the password", "err", err)
	}
	if password == "" {
		return Event{}, &attemptError{err: ErrNoCredentials, final: true}
	}
	var r LoginResult
	var err error
	if s.opts.Remember && c.Has(protocol.FeatureResume) {
		r, err = c.LoginRemember(ctx, user, password)
	} else {
		r.User = user
		r.Pending, err = c.Login(ctx, user, password)
	}
	if err != nil {
		return Event{}, loginError(err)
	}
	s.loggedIn(r, false)
	return Event{Type: EventUp, Pending: r.Pending}, nil
}

// tokenRefused reports whether a resume's error means the token cannot
// be used: refused, malformed, or not known to the server after all.
func tokenRefused(err error) bool {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case protocol.CodeAuthFailed, protocol.CodeBadRequest, protocol.CodeUnknownType:
		return true
	}
	return false
}

// loginError classifies the error of a login or resume: the server's
// refusal of the credentials (or of the request) is final, while being
// busy (rate_limited, unavailable, internal) and a lost connection are
// worth another attempt.
func loginError(err error) *attemptError {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return &attemptError{err: err}
	}
	switch pe.Code {
	case protocol.CodeRateLimited:
		return &attemptError{err: err, wait: time.Duration(pe.RetryAfterMS) * time.Millisecond}
	case protocol.CodeUnavailable, protocol.CodeInternal:
		return &attemptError{err: err}
	}
	return &attemptError{err: err, final: true}
}

// loggedIn records a login's result.
func (s *Session) loggedIn(r LoginResult, resumed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.User != "" {
		s.user = r.User
	}
	s.pending = r.Pending
	switch {
	case r.Token != "":
		s.token, s.tokenExpires = r.Token, r.TokenExpires
	case resumed && !r.TokenExpires.IsZero():
		s.tokenExpires = r.TokenExpires
	}
}

// run serves one connection after another until the session ends.
func (s *Session) run(c *Client, up Event) {
	defer s.wg.Done()
	var cause error
	defer func() { s.end(cause) }()
	for {
		cause = s.serve(c, up)
		if s.isEnding() {
			cause = ErrClosed
			return
		}
		s.emit(Event{Type: EventDown, Err: cause})
		var ke *KickedError
		if errors.As(cause, &ke) && ke.Reason == protocol.KickAdmin {
			return
		}
		c, up, cause = s.reconnect(cause)
		if c == nil {
			return
		}
	}
}

func (s *Session) isEnding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ending
}

// reconnect tries to connect again until it succeeds, retrying cannot
// help, or the session is closed. It returns a nil *Client and the reason
// in the last two cases.
func (s *Session) reconnect(lost error) (*Client, Event, error) {
	var wait time.Duration
	var ke *KickedError
	if errors.As(lost, &ke) && ke.Reason == protocol.KickShutdown {
		wait = ke.RetryAfter
	}
	var last error
	for attempt := 1; ; attempt++ {
		d := backoff(attempt, s.opts.MinBackoff, s.opts.MaxBackoff)
		if wait > 0 {
			d, wait = wait, 0
		}
		s.emit(Event{Type: EventReconnecting, Attempt: attempt, Delay: d, Err: last})
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.closed:
			t.Stop()
			return nil, Event{}, ErrClosed
		}
		ctx, cancel := context.WithTimeout(s.ctx, attemptTimeout)
		c, up, aerr := s.establish(ctx)
		cancel()
		if aerr == nil {
			up.Attempt = attempt
			return c, up, nil
		}
		if s.isEnding() {
			return nil, Event{}, ErrClosed
		}
		s.log.Debug("qq session: reconnection failed", "attempt", attempt, "err", aerr.err)
		if aerr.final {
			return nil, Event{}, aerr.err
		}
		last, wait = aerr.err, aerr.wait
	}
}

// backoff is the wait before reconnection attempt n (1 for the first):
// uniformly random between lo and min(hi, lo·2ⁿ).
func backoff(n int, lo, hi time.Duration) time.Duration {
	ceil := lo
	for i := 0; i < n && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	if ceil <= lo {
		return lo
	}
	return lo + time.Duration(rand.Int64N(int64(ceil-lo)+1))
}

// end ends the session because of cause (nil: ErrClosed).
func (s *Session) end(cause error) {
	if cause == nil {
		cause = ErrClosed
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = cause
	}
	s.ending = true
	s.c = nil
	s.mu.Unlock()
	s.cancel()
	close(s.done)
	s.msgs.end()
	s.events.end()
	s.log.Debug("qq session: ended", "err", cause)
}

// serve runs the session over c, after emitting up, until c ends or the
// session is closed, and returns why c ended.
func (s *Session) serve(c *Client, up Event) error {
	s.mu.Lock()
	s.c = c
	s.hello = c.Hello()
	s.in.startCatchUp()
	presence := s.presence
	s.mu.Unlock()
	s.emit(up)

	var wg sync.WaitGroup
	wg.Go(func() { s.forward(c) })
	wg.Go(func() { s.catchUp(c) })
	wg.Go(func() { s.writeOutbox(c) })
	wg.Go(func() { s.keepAlive(c) })
	if presence != nil {
		wg.Go(func() {
			if err := c.SetPresence(s.ctx, presence[0], presence[1]); err != nil {
				s.log.Debug("qq session: presence not restored", "err", err)
			}
		})
	}
	select {
	case <-c.Done():
	case <-s.closed:
		c.Close()
	}
	// The forwarder reads what the connection received before it ended,
	// then the connection is released.
	wg.Wait()
	c.Close()

	s.mu.Lock()
	s.c = nil
	s.in.stopCatchUp()
	s.mu.Unlock()
	return c.Err()
}

// keepAlive pings the server every PingInterval until c ends.
func (s *Session) keepAlive(c *Client) {
	if s.opts.PingInterval < 0 {
		return
	}
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.PingInterval)
			c.Ping(ctx)
			cancel()
		case <-c.Done():
			return
		}
	}
}

// conn returns the current connection, or why there is none.
func (s *Session) conn() (*Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.endErrLocked()
	}
	if s.c == nil {
		return nil, ErrDisconnected
	}
	return s.c, nil
}

// wait sleeps d, unless c ends or the session is closed first; it
// reports whether it slept.
func (s *Session) wait(c *Client, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.Done():
		return false
	case <-s.closed:
		return false
	}
}
