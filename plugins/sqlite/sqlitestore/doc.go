// Package sqlitestore is a durable implementation of [plugins.Storage] on a
// single SQLite database file, using the pure-Go driver modernc.org/sqlite
// (no cgo). It is the reference implementation of the interface: the
// requirements on every storage plugin are in docs/plugins.md ("Writing a
// storage plugin"); this documentation says how this one meets them.
//
// # Durability
//
// The database runs in WAL mode. With the default Options.Synchronous
// ("full"), a Write or CreateUser that returns without error has been
// fsynced: it survives a crash of the process and of the machine. The one
// exception is a Write of acks only: it commits without fsync (as with
// "normal"), because an ack that is lost is harmless under at-least-once
// delivery. It survives a crash of the process; a power loss right after
// it may undo it, and the message is then pending again and redelivered
// (clients de-duplicate by msg_id). TouchTokens commits the same way: a
// lost touch only makes a token look idle since an earlier use. A commit
// that carries messages fsyncs the whole WAL, and with it every earlier
// ack. At low load, where every ack is a Write of its own, this halves
// the fsyncs. With
// "normal", a commit survives a crash of the process but the last commits
// may be lost when the machine loses power; "off" leaves syncing to the
// operating system. Every Write is exactly one transaction (BEGIN IMMEDIATE
// ... COMMIT): all of its messages and acks are stored, or none.
// AddToken, RevokeTokens and PurgeTokens are durable like a Write with
// messages.
//
// A failed Write returns a [*plugins.WriteError]. MaybeWritten is false when
// the transaction was rolled back or never began, including on SQLITE_FULL
// and I/O errors before the commit. When COMMIT itself fails and left the
// transaction open (SQLite may, after SQLITE_FULL), the store rolls it
// back: MaybeWritten is false. Otherwise it
// looks for the batch's first new message on the writer connection: if it
// is absent, MaybeWritten is false; if it is present, the lookup fails, or
// the batch stored no new message, MaybeWritten is true. The store stays
// usable after a failed Write (for example once disk space returns).
//
// # Disk space
//
// Open reads the size of the filesystem that holds the database and sizes
// two things by it (budgetFor). The WAL is checkpointed once it holds
// 1/32 of the filesystem (at least 1 MiB, at most 32,000 pages, about
// 125 MiB, reached at 4 GiB), and truncated to that size after a
// checkpoint (journal_size_limit): a WAL that could outgrow the free space
// would never reach its checkpoint, and once it had taken the last byte no
// write would fit, not even an ack. And a reserve of free space, twice the
// checkpoint size plus 1 MiB, is kept: while less is free, a Write that
// carries messages, and CreateUser, fail with [ErrLowSpace] (inside a
// [*plugins.WriteError] with MaybeWritten false: nothing stored), while
// Writes of acks alone, every other write and every read go on. The
// reserve is what a checkpoint needs to copy the WAL into the database
// and what acks need to commit meanwhile. When space returns the next
// Write stores again. A write that meets a full disk all the same
// (something else took the space) fails as any failed write does, and
// then runs a truncating checkpoint (at most once a second) to give the
// WAL's space back. Where the filesystem's size cannot be read (not
// Linux), the checkpoint is 32,000 pages and there is no reserve.
//
// # Ordering and timestamps
//
// Messages get an increasing sequence number (the acceptance order) in the
// order Write calls commit and, within a batch, in slice order. Pending
// and History return messages in that order. All messages of one batch get
// the same timestamp: Options.Now in unix milliseconds, raised to the
// largest timestamp already stored when the clock went backwards, so
// timestamps never decrease along the sequence, across restarts too.
//
// # Message ids
//
// A msg_id is 26 characters of lowercase Crockford base32
// ("0123456789abcdefghjkmnpqrstvwxyz"), ULID-style: 10 characters encode
// the 48-bit unix-millisecond timestamp of the message, 16 characters
// encode 80 bits from crypto/rand. Ids are URL-safe and opaque to clients;
// ordering is given by the sequence number, not by comparing ids.
//
// # De-duplication
//
// A message with a non-empty CID is stored at most once per (From, CID):
// a later message with the same key, in the same batch or another, gets
// the first message and its stored status with Duplicate set, whatever its
// To and Body, even after the recipient acked the first. Keys are kept at
// least Options.DedupWindow (forever when zero): [Store.PruneCIDs] forgets
// older ones; Open runs it once and then hourly until Close.
//
// # Accounts
//
// DeleteUser does not remove the user's row: it marks it deleted, erases
// its password hash and, in the same transaction, drops the messages
// pending for the user (they are settled as if acked, and DeleteUser
// returns how many). Messages keep referring to the row, so the history
// of the deleted user's conversations stays: History with the deleted
// name still returns it to the other side. A deleted user is unknown to
// PasswordHash (no login), to Write as sender or recipient, to
// SetPasswordHash, DeleteUser and AddToken, CountUsers does not count it,
// and it has no resume tokens left (DeleteUser drops them; SetPasswordHash
// drops a live user's). Its name stays taken for good: CreateUser returns
// ErrUserExists, so that a new account can never read the old one's
// conversations or collide with its de-duplication keys.
//
// # Friends and blocks
//
// A Store implements [plugins.Social]. A friendship is stored twice, once
// from each side; friend requests and blocks have tables of their own; all
// three are keyed by user name (a name is never reused, so it names one
// account for good) and DeleteUser drops the deleted user's rows from all
// three in its transaction. Every social write is one transaction on the
// writer, like Write. A friend request or block by or to a user that is
// not live, or to oneself, is refused (ErrUnknownUser, or an error).
//
// Write checks each message against them without slowing the common case.
// The store keeps in memory the set of users who block someone (loaded at
// Open, grown by Block; Unblock may leave a name in it until the next
// load). A message to a user outside that set, not FriendsOnly, is
// inserted with no check at all. Any other message is inserted
// by a statement that makes the checks itself, one primary-key probe each:
// a message whose recipient blocks its sender is not inserted, nor a
// FriendsOnly one between users who are not friends (a message to oneself
// passes). Only when that insert stores nothing does the store look
// further: the (From, CID) already stored makes a Duplicate, whatever the
// relation now; otherwise a second lookup tells ErrBlocked from
// ErrNotFriends. A refused message takes no cid.
//
// # Groups
//
// A Store implements [plugins.Groups] (the contract is in its
// documentation). A group is a row of its own, with its settings, its
// member count and the seq and timestamp of its log's last entry; a
// member's row keeps their role, join seq, mute, and, once they are
// removed, the seq of their removal, which bounds what Log shows them;
// the log is one table for every group, keyed by (group, seq). Every
// operation (CreateGroup, GroupOp) is one transaction on the writer that
// reads the group's row and the actor's, checks the rights, appends the
// entry at the next seq (its timestamp raised to the last entry's when the
// host's is earlier) and applies the change. A refused operation changes
// nothing.
//
// Write stores a batch's group messages after its direct messages, in
// the same transaction. Per message it reads the group's row and the
// sender's membership (once per batch each), inserts the log row, moves
// the sender's cursor to it and, for each member named in its mentions, adds
// a mention row and counts it in their cursor: the cost of a message does
// not depend on the group's size. A mention of "all" is a flag on the log
// row, counted for each member when UserGroups reads their cursor. A
// cursor that moves (GroupAck, or the member's own message) drops the
// mention rows it passed and recounts the rest, so the count stays exact
// when it moves only part of the way. A group message's (From, CID)
// shares the direct messages' key space: each kind's insert checks the
// other's table in the same statement (one index probe, only when the
// message has a cid), and PruneCIDs forgets both kinds' keys.
//
// DeleteUser removes the user from their groups in its transaction: an
// owned group passes to the longest-standing admin, else member (an owner
// entry), or is dissolved when the user was alone in it; then a left entry
// in each group. Dissolving a group removes its members at the dissolved
// entry without entries of their own.
//
// # Resume tokens
//
// A Store implements [plugins.Tokens]: a row per token keyed by its id,
// with its user, the host's hash of its secret (a BLOB, kept byte for
// byte; never the secret), and its creation, last use and expiry in unix
// ms, and an index on (user, last use). AddToken checks that the user is
// live, inserts the row (a taken id inserts nothing: ErrTokenExists), and
// drops the user's least recently used other tokens beyond keep, in one
// transaction. TouchTokens updates each listed token's last use, forward
// only, one single-row statement per use in one transaction, without
// fsync. PurgeTokens reads the whole table. SetPasswordHash and
// DeleteUser drop the user's tokens in their transactions.
//
// # Concurrency
//
// A Store is safe for concurrent use. Writes (Write, CreateUser,
// SetPasswordHash, DeleteUser, PruneCIDs, the social writes, CreateGroup,
// GroupOp and the token writes) go through one connection, serialised by
// a mutex, so a batch is one group commit. Reads (PasswordHash,
// CountUsers, CountPending, PendingCount, Pending, History, Friends,
// Blocks, Relation, Group, UserGroups, Members, JoinRequests, Log, Token,
// UserTokens) use a separate
// pool of read-only connections and run in parallel with writes.
// Several Stores (or processes) may open the same file, writers then
// waiting for each other up to a busy timeout, but the ordering and
// timestamp guarantees above hold for one writing Store at a time: run one
// qqd per database file. The in-memory caches (users known to exist, users
// who block someone) follow other writers: each Write checks PRAGMA
// data_version in its transaction and reloads them when another
// connection has committed.
//
// # Schema
//
// The schema is versioned with PRAGMA user_version; Open applies missing
// migrations, each in its own transaction, and refuses a database whose
// version is newer than the code. A conversation is keyed by its two user
// names, sorted, in the form "<len(a)>:<a> <b>", which is unambiguous
// whatever bytes the names hold.
package sqlitestore
