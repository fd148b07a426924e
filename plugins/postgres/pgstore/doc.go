// Package pgstore is an implementation of [plugins.Storage] (with
// [plugins.Social], [plugins.Groups] and [plugins.Tokens], and the dump
// export and import of package storagedump) on PostgreSQL, through
// github.com/jackc/pgx/v5. It is the storage of a qqd cluster: several
// qqd nodes (several Stores, in several processes) share one database.
// The requirements on every storage plugin are in docs/plugins.md
// ("Writing a storage plugin"); package sqlitestore is the reference
// implementation, whose SQL this package ports. This documentation says
// what differs.
//
// # Transactions and locks
//
// Every Write is one READ COMMITTED transaction. It first locks, in one
// statement, the rows of every user the batch names (senders,
// recipients, users whose acks it carries) in name order, then the rows
// of every group it names (group messages, group acks) in id order; every
// other transaction of the store that locks both locks users before
// groups (DeleteUser, GroupOp, CreateGroup, the social operations, which
// lock the two users they name). Batches whose users overlap in any order
// thus wait for each other instead of deadlocking. The locks are FOR NO
// KEY UPDATE: they exclude each other but not the KEY SHARE locks that
// foreign-key checks take, which would otherwise be taken out of order. A
// transaction that fails all the same with a serialization failure
// (40001) or a deadlock (40P01) runs again, at most 8 times, after a
// short random backoff.
//
// # Sequence numbers and order
//
// Each user row holds msg_seq, the seq of the last message stored for the
// user. A Write gives each message it stores the next seq of its
// recipient, under the recipient's row lock, and writes the counters back
// in the same transaction: seqs start at 1, have no gaps (a transaction
// that rolls back rolls its counters back too; refused and duplicate
// messages take none) and follow commit order, so commit order is
// delivery order per recipient. The seq is returned as
// protocol.Message.Seq by Write (AppendResult.Message), Pending, History
// and LookupCIDs. Group entries take the next seq of their group under
// the group's row lock, as the contract's GroupEntry.Seq says.
//
// A Write gives all its direct messages one timestamp: now, raised to the
// timestamp of the last message each of its users sent or received
// (users.last_ts), so that timestamps never decrease along a recipient's
// seq nor along a conversation (both of whose users a Write locks),
// whatever the clocks of the nodes. The messages' row ids (a bigserial)
// are drawn after the locks, so they too grow along each recipient's seq
// and each conversation. History and Export order messages by
// (timestamp, row id): the store's one total order, which is commit order
// within a conversation.
//
// # De-duplication
//
// The (sender, cid) keys of direct and group messages are one key space:
// the table cids, whose primary key is the key. A Write claims a key with
// INSERT ... ON CONFLICT DO NOTHING inside its transaction: when two
// Writes (on two nodes) race with one key, the second waits for the
// first to commit and then finds the key taken, and answers with the
// first's message as a Duplicate; if the first rolls back, the second
// stores its own. Keys older than the dedup window are forgotten by a
// pruner every 10 minutes.
//
// # Failures
//
// A failed Write returns a [*plugins.WriteError]. MaybeWritten is false
// when the transaction failed before COMMIT, or when COMMIT failed with
// an answer from the server (the transaction rolled back). When COMMIT
// got no answer (the connection broke, the context ended), the store
// looks for the batch's first new message on a fresh connection:
// MaybeWritten is false if it is absent, true if it is present or the
// lookup fails. Connections that broke are replaced by the pool: after a
// restart of the server the same Store works again.
//
// Message ids are ULID-style strings of 26 characters, as sqlitestore's
// (and kept as they are by an import), so ids stay comparable across a
// migration. Bodies and friend request notes are bytea (PostgreSQL text
// cannot hold a NUL byte); names are text COLLATE "C", compared and
// sorted byte-wise.
//
// # Schema
//
// Open applies the schema migrations the database lacks (the table
// schema_version holds the version), each in its own transaction, under
// a session-level advisory lock: several nodes opening a new database at
// once apply each migration once.
//
// # Backups
//
// The store has no plugins.Backup: back the database up with PostgreSQL's
// own tools (pg_dump, or base backups with WAL archiving), or take a
// dump with `qqd storage export`.
package pgstore
