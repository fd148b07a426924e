// Package client is a Go client for qqd, speaking QQP/1 (see
// docs/protocol.md) over one TCP connection.
//
// Contracts:
//
//   - A *Client is safe for concurrent use. Requests may be issued from many
//     goroutines at once; writes are serialized, and each request carries a
//     string id ("1", "2", ... per connection) by which its reply is matched.
//   - Every request method blocks until the reply arrives, ctx is done, or the
//     connection ends. A server error reply is returned as a *protocol.Error,
//     so callers can test it with errors.Is(err, &protocol.Error{Code: ...}).
//     When ctx ends first the method returns ctx.Err() and the late reply is
//     discarded; the connection stays usable unless the request frame was
//     only partly written, in which case the connection is closed. When the
//     connection ends first the error wraps the reason (see Err).
//   - Pushed messages are delivered on Messages in arrival order, through an
//     unbounded internal queue: a slow reader of Messages never delays replies
//     and no push is dropped. When the connection ends, messages already
//     queued are still delivered, then Messages is closed. Close discards
//     undelivered messages and closes Messages at once.
//   - Other pushes (friend requests and answers, presence, typing, an
//     operator's notice, and push types added later) are delivered on
//     Events, in arrival order and through a queue of their own, when
//     Options.Events is set; without it they are dropped and Events is a
//     closed channel. Has tells which extensions the server's hello lists.
//   - A kicked push ends the connection; Err then returns a *KickedError.
//   - Done is closed when the connection ends, for whatever reason. Err
//     reports why: *KickedError, ErrClosed after Close, io.EOF when the
//     server closed the connection (for example after Logout), or the read
//     error.
//   - Close must be called to release the connection and the client's
//     goroutines; it may be called any number of times, concurrently, and
//     after the connection has ended. When it returns, the client's
//     goroutines have exited.
package client
