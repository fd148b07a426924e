// Package client is a Go client for qqd, speaking QQP/1 (see
// docs/protocol.md): a Client is one TCP connection, a Session a login
// that reconnects (see Sessions below).
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
//     operator's notice, group entries and requests to join a group, and
//     push types added later) are delivered on
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
//
// # Sessions
//
// A *Client is one connection: when it ends, it stays ended. A *Session
// (Connect) is a login that rides through lost connections, such as a
// restart of qqd. It is built on *Client, one connection at a time, and
// keeps the same contracts for what it shares with Client, plus these:
//
//   - Reconnection. When its connection ends, the session emits
//     EventDown (Err: why) and connects again. Attempt n waits a random
//     time between MinBackoff and min(MaxBackoff, MinBackoff·2ⁿ) (full
//     jitter above a floor), announced by EventReconnecting (Attempt,
//     Delay, Err of the previous attempt); after a kicked shutdown with
//     retry_after_ms, that hint is the first wait. A kick by an operator
//     (reason admin) ends the session: reconnecting would undo it. Every
//     other reason (shutdown, idle, slow_consumer, too_many_connections,
//     reasons added later) and every other loss of the connection is
//     followed by a reconnection. The session pings the server every
//     PingInterval, so that an idle session is not kicked for idleness.
//   - Login. By resume token when the session has one and the server's
//     hello lists the resume feature, else by password; with Remember, a
//     password login asks for a token (Token returns it; the application
//     decides whether to store it). A refused token is dropped and the
//     password used, when the session has one. The password is kept in
//     the session's memory only, and only if the application gave one.
//     The session ends, with Err telling why, when the login is refused
//     (auth_failed: a password changed, a token revoked with no password
//     to fall back on) or impossible (ErrNoCredentials); busy answers
//     (rate_limited, after its retry_after_ms; unavailable) and lost
//     connections are retried. EventUp tells that the session is logged
//     in again (Resumed: by token) and how many messages were pending.
//     Connect makes the first attempt and returns its error: it does not
//     retry.
//   - Incoming messages. After every login the session sends the acks
//     the server has not confirmed, then fetches the pending messages
//     page by page (OfflinePage), then delivers the pushes that arrived
//     meanwhile, which it holds back until then: so the messages of each
//     sender reach Messages in the order they were stored, and each
//     message once: repeats (by msg_id) are dropped, of every message
//     delivered and not yet acked, and of the last SeenIDs acked. The
//     application must Ack what it received, through the session: the
//     server returns the oldest pending messages, so a page after the
//     first is fetched only once the previous one was acked, and pushes
//     wait behind it. An ack the server did not confirm is sent again
//     after the next login.
//   - Group entries. At the first login the session notes each group's
//     last seq; after a reconnect, it catches up every group whose log
//     grew past the last entry delivered (for a group it has not seen:
//     past the user's read cursor) with group_sync, and delivers those
//     entries as group_entry Events, with the pushes that follow, once
//     per (group, seq) and in seq order. Entries made by the session's
//     own requests may come in the catch-up (the server pushes them to
//     others only); a group the user left or lost while disconnected is
//     not caught up; what happened before the session started is the
//     application's to fetch from the read cursor, as with a Client.
//   - Outgoing messages. Send, SendCID, GroupSend, GroupSendCID, Enqueue
//     and EnqueueGroup put the message in the outbox with a cid (a
//     random one when the application gives none). The outbox is written
//     in order, one send at a time, and a send stays in it until its ok
//     or a refusal (any error reply but rate_limited and unavailable,
//     which are retried after their wait); after each reconnect the send
//     that had no answer is sent again with its cid, so that the server
//     stores each send exactly once, in the order they were queued
//     (within the server's cid de-duplication window). A Send whose ctx
//     ends first returns ctx.Err() and leaves its message in the outbox:
//     its outcome then comes as an EventSendDone event, as for Enqueue.
//     The outbox holds OutboxSize sends; past that a send fails at once
//     with ErrOutboxFull. When the session ends, Unsent lists what is
//     left.
//   - Other requests (Users, History, the friends and groups requests)
//     go to the current connection and fail at once with ErrDisconnected
//     while there is none; they are not retried. The last SetPresence is
//     set again after each reconnect.
//   - Events delivers the session's own events and every push other than
//     a message; the program must read it, and Messages, until they are
//     closed (after the session ended) or it calls Close.
//   - Close ends the session without logging out (a resume token stays
//     valid); Logout logs out (the server revokes the session's token)
//     and closes. Done and Err tell when and why the session ended.
package client
