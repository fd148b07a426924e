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
//   - Why a connection closed is a CloseReason; the reasons that tell the
//     client why map to the reason of its kicked push (closereason.go).
//
// # The path of a send
//
//  1. handlers.go: the reader goroutine of the connection (session.go)
//     decodes the frame (package protocol) and looks its type up in the
//     handler table, which says whether it needs a login. sendMsg checks
//     the fields, takes a token of the user's send rate (limit.Sends) and
//     an inflight slot, and submits a writeReq of kind reqSend.
//  2. pipeline.go, collect stage: batches what was submitted meanwhile and
//     answers cid retries from storage (LookupCIDs); a request that a
//     stage answers is no longer live (writeReq.live).
//  3. pipeline.go, filter stage: the live sends go through the filter
//     chain (plugins.FilterLink: a plugins.Filter with its failure
//     policy and timeout), one call per filter per batch.
//  4. pending.go, store stage: the pending cap (limit.Pending) admits or
//     refuses each live send by its recipient's undelivered messages;
//     then one Storage.Write commits the batch's messages and acks
//     (plugset.go holds the storage and chain in service).
//  5. pipeline.go, answer stage: the Write's results are attached to their
//     requests (finishWrite), the router's epoch advances, the cap
//     settles, every request is answered in order, and each new message
//     is pushed through the router (package route: route.Router, with
//     route.Local the single-node implementation) to the recipient's
//     sessions that joined before the epoch.
//
// A group send (group.go) takes the same path as a writeReq of kind
// reqGroupSend: the same rate, filters (which see the group id) and
// Write, where the storage checks membership and mutes and appends the
// entry to the group's log; the answer stage then pushes the entry under
// the group's lock (package groups: the members as the daemon knows
// them), in seq order (Server.deliver fills a gap from the log first), to
// every member's sessions but the sender's. Membership and settings
// operations commit and push under the same lock, so a removed member
// never gets an entry after their removal. Friends, presence and typing
// are social.go, group_typing.go and package presence.
//
// A session leaves the router from one place, when it starts to close
// (session.setClosingLocked); the router never holds a lock while it
// delivers, so that is safe under the session's own lock.
package daemon
