// Package antispam is a qqd message filter ([plugins.Filter]) that rejects
// the common shapes of chat spam by counting each sender's recent messages.
//
// # Rules
//
// Three rules, each configurable and each can be disabled (see [Config]);
// all count over a sliding window measured with the messages' TS (the
// server clock in unix milliseconds), never the plugin's own clock:
//
//   - flood: a sender may have at most flood.max_messages messages
//     (default 20) in flood.window (default 10s); the next one is
//     rejected with "sending too fast; slow down".
//   - repeat: the same body (compared after Unicode simple case folding
//     and collapsing runs of whitespace to one space, trimmed; only a
//     64-bit keyed hash of it is kept) may be sent by one sender to one
//     recipient at most repeat.max_same_body times (default 3) in
//     repeat.window (default 60s), and by one sender to at most
//     repeat.max_recipients distinct recipients (default 10) in that
//     window; the next such message is rejected. The first limit is per
//     conversation, so a common short reply ("ok") sent to several people
//     is not repeat spam; the second catches broadcasts.
//   - links: a sender may have at most links.max_links messages
//     containing a link (default 3) in links.window (default 60s). A link
//     is "http://", "https://", "www." followed by a host, or a bare
//     domain name followed by "/" or ":port" (example.com/xyz) or ending
//     in a common top-level domain (example.com, bit.ly).
//
// A message counts for a window while now - TS < window: a message sent at
// TS t stops counting at exactly t + window. Only accepted messages count:
// a rejected message does not use up any allowance, so a sender who keeps
// trying is not locked out longer than the window after their last
// accepted message. The rules are checked in the order flood, repeat,
// links; the first that fails gives the reason. Messages of one batch are
// checked in order, and each accepted one counts for those after it.
//
// # State and memory
//
// State is in memory only and lost on restart. At most
// max_senders_tracked senders (default 100000) are tracked; when a new
// sender arrives beyond that, the least recently active one (by message
// arrival) is forgotten. A sender's state is dropped once its latest
// message is older than the largest enabled window. Per sender, each
// window keeps at most as many timestamps as its limit, and at most 64
// distinct bodies are tracked (the least recently sent is forgotten
// first). TS is expected not to decrease; when it does, the counts stay
// bounded and approximately right.
//
// A Filter is safe for concurrent use (one mutex). A batch is checked
// against ctx once, before it is processed: processing never blocks.
package antispam
