// Package daemon is the protocol core of qqd: it accepts QQP/1 connections,
// runs one reader goroutine per connection, dispatches requests through a
// handler table, routes messages to the online sessions of their
// recipients, and stores everything through a plugins.Storage.
//
// Contracts this package keeps (see docs/protocol.md for the wire view):
//
//   - An ok to a send is written only after the storage committed the batch
//     that holds the message. Sends and acks from all connections are
//     grouped into one storage write while the previous write runs (group
//     commit); nothing waits for a timer.
//   - Every per-connection resource is bounded: one frame (max_frame_bytes),
//     requests awaiting storage (max_inflight), unsent output
//     (outbound_queue_bytes, then the connection is kicked slow_consumer).
//     Nothing a connection does blocks another connection or the router.
//   - An idle connection holds a goroutine, a 512-byte read buffer and no
//     output buffer or writer goroutine; no timer ticks for it.
//   - Abuse limits (limits.go, pending.go) bound connections in total and
//     per remote IP, each user's send rate, login and register attempts per
//     IP and failed logins per account, and each recipient's undelivered
//     messages. They refuse with an answer, never by dropping; they run no
//     timer, and their memory is bounded.
//   - Why a connection closed is a CloseReason.
package daemon
