// Package pebblestore is an implementation of [plugins.Storage] on a
// Pebble database (github.com/cockroachdb/pebble/v2, an LSM key-value
// store), with [plugins.Social], [plugins.Groups] and [plugins.Tokens].
// The requirements on every storage plugin are in docs/plugins.md
// ("Writing a storage plugin"); package sqlitestore is the reference
// implementation, and this one passes the same conformance suite
// (plugins/storagetest), whole. This documentation says how it meets
// them.
//
// # Key layout
//
// Every key starts with one byte naming its kind. Names inside keys are
// length-prefixed (a uvarint, then the bytes), so that one user's keys
// never have another's as a prefix whatever bytes names hold; seqs are
// 8 bytes big-endian, so keys sort by seq.
//
//	S                        last seq and ts assigned (uvarint, varint)
//	u<name>                  account: deleted flag, password hash, created and deleted (ms)
//	m<seq>                   message: ts, foreign id (empty: none), from, to, body, cid, status
//	x<id>                    seq of a message whose id is foreign (see below)
//	h<lp a><lp b><seq>       history: the message's record, as m (empty in stores written before 2026-12-07); a <= b, the conversation's two names
//	i<lp user><seq>          inbox: empty; every message to user
//	c<user>                  the user's ack cursor (seq): every inbox entry up to it is settled, but the p entries
//	a<lp user><seq>          empty: an inbox entry above the cursor, acked out of order
//	p<lp user><seq>          an inbox entry at or below the cursor still pending (held back): its record, as m (empty: read m)
//	d<day><lp from><cid>     de-duplication key: 'm' and the seq, or 'g', the group id and the entry's seq;
//	                         day = ts / 86,400,000 (4 bytes)
//	f<lp a><b>               friendship, stored from both sides: since (ms)
//	r<lp from><to>           friend request: note, ts, order
//	R<lp to><from>           empty: the incoming index of r
//	b<lp blocker><blocked>   block: ts (ms)
//	B<lp blocked><blocker>   empty: the reverse index of b
//	t<id>                    resume token: user, hash, created, last used, expires
//	T<lp user><id>           empty: a user's tokens
//	g<id>                    group: name, owner, policy, history, mute all, dissolved, members, last seq and ts, created (ms)
//	e<id><seq>               group log entry: kind, ts and the kind's fields (msg_id, cid for a message)
//	n<id><user>              membership: role, join seq, left seq (0 while a member), muted until
//	U<lp user><id>           empty: the groups user belongs to now
//	k<lp user><id>           read cursor of a member: read seq, named mentions after it
//	K<lp user><id><seq>      empty: a named mention of user after their cursor
//	A<id><seq>               empty: a message that mentions all
//	q<id><user>              request to join: ts, order
//	Q<lp user><id>           empty: the reverse index of q
//
// Messages get one global seq each, in the acceptance order, so the
// message, history and inbox keys of new messages are appended at the
// end of their ranges: the cheap case for an LSM. History is a bounded
// backward iteration over h<conv> (its upper bound the cursor's key)
// whose values carry the records: one range read per page, not a point
// read per message, for a copy of each record (an empty value, as stores
// written before it hold, sends the read to the m key). Pending reads
// the p entries, then iterates i<user> forward from the cursor, skipping
// the few a entries, and reads the m keys.
//
// # Message ids
//
// A msg_id is the message's seq in 13 characters of lowercase Crockford
// base32 ("0123456789abcdefghjkmnpqrstvwxyz"), most significant first,
// zero-padded (the first character is 0 to f): the first message is
// "0000000000001". An id of that exact form parses back to its seq, so
// an ack or a history cursor costs no lookup. Ids are sequential, so
// they tell how many messages the server stored; that is all they tell:
// an ack settles only the acker's own pending messages and a history
// cursor must be a message of the conversation. A message may instead
// carry a foreign id (a migration from sqlitestore would keep its
// 26-character ULIDs): its record holds the id and x<id> maps it to the
// seq; acks and History consult x for any id that does not parse. Import
// writes them (see "Export and import").
//
// # Acks and pending counts
//
// The messages pending for a user are the held-back entries (p keys),
// then the inbox entries above the user's cursor that have no a entry:
// not a key per pending message. A batch's acks of a user walk the inbox
// from the cursor: the cursor moves over the run of entries that are
// acked now or have an a entry (which then goes); an acked entry beyond
// the run, acked out of order, gets an a entry. So acks that come in
// order, the common case, cost one seek and a step each and only rewrite
// the cursor; and none when every acked message is among the last 65,536
// direct messages committed, whose recipients the writer keeps in a ring,
// and those of the acker's inbox are all that is pending above the cursor
// (the walk would then run to the end of the inbox: the cursor moves to
// the last of them). Acks of ids that are not pending for the user are
// ignored. The inbox entries stay (they are the user's received messages,
// in order).
//
// A user's a entries are at most 64 (maxAcked). An old message the
// client never acks would otherwise hold the cursor back for good, and
// every later ack would become an a entry for Pending and Open to read
// and memory to hold (a fill that left 1% of 10 million messages pending
// made 9.9 million). When a batch's acks would leave more, the cursor
// moves to the newest ack and the entries it passes that are still
// pending get a p entry each (holdBack); an ack of one of those deletes
// it. The walk covers the entries between the old cursor and the newest
// ack once: the next one starts past them. Open does the same for any
// user with more a entries than the bound (a store written before p
// entries existed). DeleteUser moves the cursor past every message
// stored so far and drops the user's a and p entries.
//
// The store keeps in memory the number of pending messages per user and
// in all (CountPending, PendingCount: no scan), the number of live
// accounts (CountUsers), the out-of-order ack sets and the number of p
// entries per user; Open rebuilds them, reading the p entries, each live
// user's cursor and the inbox entries above it: its cost grows with users
// and pending messages, not with history.
//
// # Durability and visibility
//
// Every write holds one mutex (one writer): it reads what is committed
// (through an indexed batch where it must read its own writes: group
// operations, and Writes with group messages or group acks),
// assigns seqs and the timestamp in memory, builds one Pebble batch (a
// Write without groups puts its keys into it in key order, which makes
// the memtable inserts cheaper) and
// commits it with pebble.Sync (fsync of the WAL; pebble.NoSync with
// Options.NoSync, "sync: false"). A Write is one batch: all of its
// messages and acks are stored, or none. TouchTokens and PruneCIDs commit
// without fsync.
//
// Pebble makes a batch visible to its readers when it is applied to the
// memtable, which may be before the WAL's fsync returned. So readers do
// not read the database: they read a view, a Pebble snapshot that the
// writer takes after a commit returned and publishes together with the
// in-memory counts. A message is therefore seen by Pending, History or
// LookupCIDs (and pushed, or delivered, by qqd) only once it is durable,
// and the counts always match the view. A read holds a reference to its
// view for its duration, so it sees one consistent state; the last
// reference closes the snapshot. Reads do not wait for writes, with one
// exception: a read that begins while a commit runs whose Write's context
// has already ended waits for that commit. Out of process, qqd gives up
// on a Write at its deadline (outcome unknown) while the plugin may still
// be committing it, and reads at once (LookupCIDs, to settle the
// outcome): those reads then see the commit if it landed.
//
// A failed Write returns a [*plugins.WriteError]. MaybeWritten is false
// when it failed before the commit began (its context ended: the last
// check is right before the commit; a failed read). A commit, once begun,
// cannot be called back: the Write waits for it, and returns its outcome
// even if the context ended meanwhile. When the commit itself fails,
// MaybeWritten is true (Pebble may have applied the batch): the store
// rebuilds its in-memory state from the database and publishes it, or,
// if that fails, refuses every later write until it is reopened.
//
// # Disk space
//
// Pebble does not fail a commit when the disk is full: a memtable that
// cannot be flushed stalls every later commit until space returns, so a
// Write would hang past its deadline. Open therefore reads the size of
// the filesystem and keeps a reserve of free space: reserveMemTables
// memtables plus 64 MiB, at most a quarter of the filesystem. While less
// is free, a Write that carries messages (direct or group), CreateUser
// and CreateGroup fail with [ErrLowSpace] (inside a [*plugins.WriteError]
// with MaybeWritten false for a Write: nothing stored), while Writes of
// acks alone, every other write and every read go on. Where the
// filesystem's size cannot be read (not Linux), there is no reserve.
//
// # Ordering and timestamps
//
// Seqs follow the commit order and, within a batch, slice order. All
// messages of one batch get one timestamp: Options.Now in unix
// milliseconds, raised to the last timestamp assigned when the clock
// went backwards. The last seq and timestamp are stored with every batch
// that stores messages (key S), so both continue across restarts; both
// advance in memory even when a commit fails, in case it did commit.
//
// # De-duplication
//
// A (From, CID) key is stored in the bucket of its message's day. A
// lookup (Write, LookupCIDs) reads the key in every bucket the window
// reaches back to, newest first: two point reads for the default 24h.
// Each level's sstables have a bloom filter (10 bits a key), so a miss,
// the common case, reads no data block. A write skips even those reads:
// the writer keeps, per bucket, an exact Bloom filter of the keys the
// bucket may hold (10 bits a key, about 1% false "maybe"), built at Open
// by a scan of the window's keys, grown (rebuilt from the database at
// the start of a Write) when a bucket outgrows it, and dropped when
// PruneCIDs drops its bucket; a key is added before its batch commits,
// so the filter never says "absent" of a stored key. The filters take at
// most 32 MiB together: a bucket with more keys than fit at Open is not
// filtered, and a filter that may not grow answers "maybe" more often;
// either way lookups then read, as without filters. LookupCIDs (a read)
// does not use them. Keys are kept at least
// Options.DedupWindow: PruneCIDs drops every bucket older than the window
// with one range deletion; Open runs it, then hourly until Close. A zero
// window keeps keys forever, in a bucket of their own that pruning never
// reaches. Buckets written under another dedup_window setting found at
// Open are consulted too, so changing the setting forgets no key early.
// A key refers to its message by seq; a duplicate result is read from
// the message record, so it carries the first message and its status.
//
// # Groups
//
// A group is one record (settings, member count, last seq and ts); its
// log is one key per entry, e<id><seq>, appended at the end of the
// group's range. Group messages take their msg_id from the global
// sequence (so it has the form of a direct message's) and share the
// de-duplication keys. A message costs its entry, its de-duplication
// key, the sender's cursor and one K key and cursor update per named
// member, or one A key when it mentions all: never a key per member.
// UserGroups counts a member's mentions as the named ones their cursor
// holds plus the A keys after it. A cursor that moves (GroupAck, the
// member's own message) drops the K keys it passed with one range
// deletion and recounts the rest. Operations, checks, rights, limits,
// dissolution and the successor of a deleted owner follow sqlitestore
// exactly (see plugins.Groups); each is one batch.
//
// # Accounts, friends, blocks, tokens
//
// A deleted account keeps its u record (flagged, hash erased), so the
// name stays taken and History with it works. DeleteUser, in its batch,
// also drops the user's friendships, requests and blocks (both ways,
// through the reverse indexes R and B) and tokens, and leaves the user's
// groups. Write checks a message
// against blocks only when its recipient is in an in-memory set of users
// who block someone (rebuilt at Open; Block adds to it), and against
// friendship only when it is FriendsOnly: one point read each. The social
// and token operations follow sqlitestore's semantics (see plugins.Social
// and plugins.Tokens): a request to oneself and a block of oneself are
// errors; AddToken trims the user's least recently used tokens in its
// batch; TouchTokens only moves LastUsed forward.
//
// # Export and import
//
// Export ([storagedump.Exporter]) writes the records of a dump from one
// snapshot, streaming: it holds in memory the users, the ack cursors,
// out-of-order acks and held-back entries, the pending friend requests
// and one group's members and join requests at a time, never the
// messages. A message is Pending when its recipient is live and it has a
// p entry, or is above the recipient's cursor without an a entry. Friend and join requests come oldest first (ts,
// then the order of requests of the same millisecond), which is the order
// Import gives them.
//
// Import ([storagedump.Importer]) loads a dump into an empty store (else
// ErrNotEmpty) under the write lock, committing Pebble batches of 4 MiB
// without fsync, then one synced commit and a flush; readers see the
// empty store until it returns, and a failed import leaves a partial store
// that refuses writes: throw it away. Every id is kept. An id of this
// store's form keeps its seq, so such ids must ascend along the dump; any
// other id (a SQLite store's 26-character ULIDs) is foreign: the message
// takes the next seq and its record and an x key keep the id, so that
// acks, History cursors, Pending and de-duplication answers all use it.
// The last seq is the largest seq taken or named by an id (group
// messages' too) and the last timestamp the latest of any message: the
// ids and timestamps of later messages sort after the imported ones.
// Derived state is rebuilt from the records: history and inbox keys; ack
// cursors and p entries from the Pending flags (the cursor is a
// recipient's last settled message, the pending ones before it are held
// back and those after it stay above it: no a entries, however the dump
// interleaves; a deleted recipient has nothing pending and a cursor past
// everything); de-duplication keys in the bucket of each
// message's timestamp, for messages the window still covers (older ones
// get none, as PruneCIDs would have dropped them); U, A, K and cursor
// records of groups (named mentions after each cursor); then the
// in-memory counts, sets and de-duplication filters, as Open builds them.
// Import checks a group's member count and last seq against its members
// and log, and the Trailer's counts. Its memory grows with the
// users and the largest group's named mentions, not with the messages.
// Accounts and groups created before their creation time was kept export
// with Created 0 (a group: its first entry's ts) and deleted accounts with
// Deleted 1.
//
// # Pebble options
//
// Open sets a bloom filter on every level (Pebble has none by default),
// the newest format major version this Pebble supports (a store made by
// an older one is ratcheted up), a 64 MiB memtable and a 128 MiB block
// cache (Pebble's defaults are 4 MiB and 8 MiB; both are options), and
// sends Pebble's log to the store's logger.
//
// # Concurrency
//
// A Store is safe for concurrent use. Writes are serialised (so are
// overlapping Writes from qqd: plugins.ServeStorage applies them in
// order, one at a time); reads run in parallel with them and with each
// other, each on its view. One Store per database directory: Pebble
// locks it.
package pebblestore
