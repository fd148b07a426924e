// Package cluster makes qqd nodes that share one storage (the postgres
// plugin) one service: each node holds only its own sessions, and reaches
// the others' over NATS core (no JetStream, no consensus, no replication).
//
// # Bus
//
// A node subscribes to qq.u.<user> for each user with a session on it
// (the subscription is made at the user's first login on the node and
// dropped with the last), so NATS itself tracks which nodes hold a user;
// a dead node's interest goes with its connection. Everything a node
// pushes to a user (direct messages, group entries, presence, typing) is
// delivered to the user's sessions on this node and published on the
// user's subject for the others. A node publishes with NoEcho, so it
// never receives its own pushes.
//
// # Nothing lost
//
// Any bus message may be lost. A direct message carries the recipient's
// sequence number, which the storage assigns in the committing
// transaction (so commit order is seq order per recipient). The Router
// delivers a user's messages to the sessions here in seq order: a push
// whose seq is not the next one is held while the missing one may still
// be on its way (GapWait), then the node reads the user's pending
// messages from storage and delivers what is missing. A node also reads
// them for every user it holds on each sweep (cluster.sweep_interval),
// and at once after it reconnects to NATS. A lost bus message costs
// latency, never a message. Delivery stays at-least-once: a message may
// be pushed twice (clients de-duplicate by msg_id), never skipped.
//
// # Cluster-wide questions
//
// users, kick and broadcast are scatter-gather requests on qq.r.<kind>:
// every node answers for its own sessions, and the asker waits for the
// nodes it knows to be alive (heartbeats on qq.hb), at most
// cluster.request_timeout. A dead node simply does not answer.
//
// Presence is a directory: each node publishes its users' connection
// and visible presence on qq.d, with a per-node event counter; a node
// that sees a counter jump (a lost event) or a new node asks that node
// for a snapshot. A node that stops heartbeating is dropped from it.
//
// # Fencing
//
// A node that cannot reach NATS or its storage for cluster.fence_after
// fences itself: Host.Fence is called, qqd stops accepting logins, sends
// its clients kicked shutdown (they reconnect through the balancer to a
// healthy node) and /readyz fails. It unfences when both are back.
package cluster
