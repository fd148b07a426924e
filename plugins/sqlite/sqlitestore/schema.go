package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaV1 is the first schema.
//
// messages.seq is the acceptance order. pending is 1 until the recipient
// acks. cid is NULL when the sender gave none or when PruneCIDs forgot it.
// conv is convKey(sender, recipient).
const schemaV1 = `
CREATE TABLE users (
	name       TEXT NOT NULL PRIMARY KEY,
	pw_hash    TEXT NOT NULL,
	created_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE messages (
	seq       INTEGER PRIMARY KEY,
	msg_id    TEXT NOT NULL UNIQUE,
	sender    TEXT NOT NULL REFERENCES users (name),
	recipient TEXT NOT NULL REFERENCES users (name),
	conv      TEXT NOT NULL,
	body      TEXT NOT NULL,
	ts        INTEGER NOT NULL,
	cid       TEXT,
	status    TEXT NOT NULL,
	pending   INTEGER NOT NULL DEFAULT 1 CHECK (pending IN (0, 1))
) STRICT;

-- Pending (offline) messages of a user, oldest first.
CREATE INDEX messages_pending ON messages (recipient, seq) WHERE pending = 1;
-- History of a conversation.
CREATE INDEX messages_conv ON messages (conv, seq);
-- De-duplication keys.
CREATE UNIQUE INDEX messages_sender_cid ON messages (sender, cid) WHERE cid IS NOT NULL;
-- Pruning of de-duplication keys by age.
CREATE INDEX messages_cid_ts ON messages (ts) WHERE cid IS NOT NULL;
`

// schemaV2 adds account deletion. A deleted user keeps its row, marked by
// deleted_ms (NULL while the account exists) and with its password hash
// erased: the messages' foreign keys stay valid, so history rows of the
// deleted user stay, and the name stays taken (CreateUser conflicts on
// it). ADD COLUMN only changes the schema text, not the rows.
const schemaV2 = `
ALTER TABLE users ADD COLUMN deleted_ms INTEGER;
`

// schemaV3 adds friendships, friend requests and blocks. Users are keyed
// by name, as in messages: a name is never reused (a deleted account's
// stays taken), so it identifies one account for good. DeleteUser drops
// the deleted user's rows from all three tables.
//
// friends holds a friendship twice, once from each side, so that the
// check of a FriendsOnly message is one primary-key probe (owner =
// sender, friend = recipient) and a user's list one range. blocks is
// probed by Write (blocker = recipient, blocked = sender), inside the
// insert itself, for messages to users who block someone. friend_requests.seq orders requests
// made in the same millisecond; a repeated request is a new row (REPLACE),
// so it moves to the end.
const schemaV3 = `
CREATE TABLE friends (
	owner    TEXT NOT NULL REFERENCES users (name),
	friend   TEXT NOT NULL REFERENCES users (name),
	since_ms INTEGER NOT NULL,
	PRIMARY KEY (owner, friend)
) STRICT, WITHOUT ROWID;
-- DeleteUser: the rows that name the deleted user as the friend.
CREATE INDEX friends_friend ON friends (friend);

CREATE TABLE friend_requests (
	seq       INTEGER PRIMARY KEY,
	sender    TEXT NOT NULL REFERENCES users (name),
	recipient TEXT NOT NULL REFERENCES users (name),
	note      TEXT NOT NULL,
	ts        INTEGER NOT NULL,
	UNIQUE (sender, recipient)
) STRICT;
-- Incoming requests of a user, oldest first.
CREATE INDEX friend_requests_recipient ON friend_requests (recipient, ts, seq);

CREATE TABLE blocks (
	blocker TEXT NOT NULL REFERENCES users (name),
	blocked TEXT NOT NULL REFERENCES users (name),
	ts      INTEGER NOT NULL,
	PRIMARY KEY (blocker, blocked)
) STRICT, WITHOUT ROWID;
-- DeleteUser: the blocks of the deleted user by others.
CREATE INDEX blocks_blocked ON blocks (blocked);
`

// migrations returns the schema migrations in order: migration i brings
// the database from user_version i to i+1. Append, never edit.
func migrations() []string {
	return []string{schemaV1, schemaV2, schemaV3}
}

// migrate applies the migrations the database lacks, each in its own
// transaction, and fails if the database is newer than steps.
func migrate(ctx context.Context, db *sql.DB, steps []string) error {
	for {
		done, err := migrateOne(ctx, db, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next migration, if any. The version is read
// inside the (immediate) transaction, so concurrent openers of one file
// do not apply a migration twice.
func migrateOne(ctx context.Context, db *sql.DB, steps []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("migrate: read schema version: %w", err)
	}
	switch {
	case v > len(steps):
		return false, fmt.Errorf("schema version %d is newer than this program supports (%d)", v, len(steps))
	case v == len(steps):
		return true, nil
	case v < 0:
		return false, fmt.Errorf("bad schema version %d", v)
	}
	if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to version %d: commit: %w", v+1, err)
	}
	return false, nil
}

// Queries. Each names the index it relies on.
const (
	// messages_sender_cid
	qLookupCID = `SELECT msg_id, recipient, body, ts, status FROM messages WHERE sender = ? AND cid = ?`
	// messages_sender_cid, probed once per key of the JSON array
	// [[index, sender, cid], ...].
	qLookupCIDs = `SELECT k.value ->> 0, m.msg_id, m.recipient, m.body, m.ts, m.status
		FROM json_each(?) AS k JOIN messages AS m
		ON m.sender = k.value ->> 1 AND m.cid = k.value ->> 2`
	// users primary key. A user that exists: registered and not deleted.
	qUserExists = `SELECT EXISTS (SELECT 1 FROM users WHERE name = ? AND deleted_ms IS NULL)`
	// users primary key. A name that was ever registered (deleted or not).
	qUserKnown = `SELECT EXISTS (SELECT 1 FROM users WHERE name = ?)`
	// messages_sender_cid: a (sender, cid) already stored inserts nothing
	// (no error; the caller sees zero rows changed and looks it up).
	qInsert = `INSERT INTO messages (msg_id, sender, recipient, conv, body, ts, cid, status, pending)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)
		ON CONFLICT (sender, cid) WHERE cid IS NOT NULL DO NOTHING`
	// qInsert with the checks, for a message whose recipient (?3) may
	// block its sender (?2) or that is friends-only (?9): blocks primary
	// key, friends primary key (probed only when ?9 is set). Neither does
	// a message whose recipient blocks its sender, nor a friends-only one
	// between users who are not friends (a message to oneself passes); the
	// caller, seeing zero rows changed, tells the cases apart with
	// qWriteRelation.
	qInsertChecked = `INSERT INTO messages (msg_id, sender, recipient, conv, body, ts, cid, status, pending)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1
		WHERE NOT EXISTS (SELECT 1 FROM blocks WHERE blocker = ?3 AND blocked = ?2)
			AND (?9 = 0 OR ?2 = ?3 OR EXISTS (SELECT 1 FROM friends WHERE owner = ?2 AND friend = ?3))
		ON CONFLICT (sender, cid) WHERE cid IS NOT NULL DO NOTHING`
	// blocks primary key, friends primary key: why qInsertChecked stored
	// nothing for sender ?1 and recipient ?2.
	qWriteRelation = `SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker = ?2 AND blocked = ?1),
		EXISTS (SELECT 1 FROM friends WHERE owner = ?1 AND friend = ?2)`
	// msg_id unique index
	qAck = `UPDATE messages SET pending = 0 WHERE msg_id = ? AND recipient = ? AND pending = 1`
	// messages_cid_ts
	qPrune = `UPDATE messages SET cid = NULL WHERE seq IN (
		SELECT seq FROM messages WHERE cid IS NOT NULL AND ts < ? ORDER BY ts LIMIT ?)`
	qCreateUser = `INSERT INTO users (name, pw_hash, created_ms) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`
	// users primary key
	qPasswordHash = `SELECT pw_hash FROM users WHERE name = ? AND deleted_ms IS NULL`
	// users primary key
	qSetPasswordHash = `UPDATE users SET pw_hash = ? WHERE name = ? AND deleted_ms IS NULL`
	// users primary key
	qDeleteUser = `UPDATE users SET deleted_ms = ?, pw_hash = '' WHERE name = ? AND deleted_ms IS NULL`
	// messages_pending
	qDropPending = `UPDATE messages SET pending = 0 WHERE recipient = ? AND pending = 1`
	// scans users (one row per account; there is no cheaper count)
	qCountUsers = `SELECT count(*) FROM users WHERE deleted_ms IS NULL`
	// messages_pending, scanned whole: the partial index holds only the
	// pending rows, so the cost grows with the backlog, not with history
	qCountPending = `SELECT count(*) FROM messages WHERE pending = 1`
	// messages_pending
	qPendingCount = `SELECT count(*) FROM messages WHERE recipient = ? AND pending = 1`
	// messages_pending
	qPending = `SELECT msg_id, sender, recipient, body, ts FROM messages
		WHERE recipient = ? AND pending = 1 ORDER BY seq LIMIT ?`
	// msg_id unique index
	qCursor = `SELECT seq FROM messages WHERE msg_id = ? AND conv = ?`
	// messages_conv
	qHistory = `SELECT msg_id, sender, recipient, body, ts FROM messages
		WHERE conv = ? AND seq < ? ORDER BY seq DESC LIMIT ?`
	// msg_id unique index
	qProbe = `SELECT EXISTS (SELECT 1 FROM messages WHERE msg_id = ?)`

	// Friendships, friend requests and blocks.

	// friends, blocks, friend_requests: primary keys and the unique
	// (sender, recipient) index. How ?1 stands to ?2.
	qRelation = `SELECT
		EXISTS (SELECT 1 FROM friends WHERE owner = ?1 AND friend = ?2),
		EXISTS (SELECT 1 FROM blocks WHERE blocker = ?1 AND blocked = ?2),
		EXISTS (SELECT 1 FROM blocks WHERE blocker = ?2 AND blocked = ?1),
		EXISTS (SELECT 1 FROM friend_requests WHERE sender = ?1 AND recipient = ?2),
		EXISTS (SELECT 1 FROM friend_requests WHERE sender = ?2 AND recipient = ?1)`
	// friend_requests (sender, recipient) unique index; a repeated request
	// replaces the row (a new seq: it moves to the end).
	qPutRequest = `INSERT OR REPLACE INTO friend_requests (sender, recipient, note, ts) VALUES (?, ?, ?, ?)`
	// friend_requests (sender, recipient) unique index
	qDeleteRequest = `DELETE FROM friend_requests WHERE sender = ? AND recipient = ?`
	// friend_requests (sender, recipient) unique index, both directions
	qDeleteRequests = `DELETE FROM friend_requests WHERE (sender, recipient) IN (VALUES (?1, ?2), (?2, ?1))`
	// friends primary key: both rows of a friendship (an existing one is
	// kept with its since).
	qAddFriends = `INSERT INTO friends (owner, friend, since_ms) VALUES (?1, ?2, ?3), (?2, ?1, ?3)
		ON CONFLICT (owner, friend) DO NOTHING`
	// friends primary key, both rows
	qDeleteFriends = `DELETE FROM friends WHERE (owner, friend) IN (VALUES (?1, ?2), (?2, ?1))`
	// blocks primary key; a repeated block keeps the first
	qBlock = `INSERT INTO blocks (blocker, blocked, ts) VALUES (?, ?, ?) ON CONFLICT (blocker, blocked) DO NOTHING`
	// blocks primary key
	qUnblock = `DELETE FROM blocks WHERE blocker = ? AND blocked = ?`
	// blocks primary key
	qBlocks = `SELECT blocked FROM blocks WHERE blocker = ? ORDER BY blocked`
	// blocks primary key, read whole: the users who block someone
	qBlockers = `SELECT DISTINCT blocker FROM blocks`
	// friends primary key, friend_requests_recipient, friend_requests
	// (sender, recipient) unique index: one statement, so one snapshot.
	// kind 0 is a friend (sorted by name: by_name is NULL for the
	// others), 1 an incoming request, 2 an outgoing one (oldest first).
	qFriends = `SELECT 0 AS kind, friend AS name, '' AS note, since_ms AS ts, 0 AS seq, friend AS by_name
			FROM friends WHERE owner = ?1
		UNION ALL SELECT 1, sender, note, ts, seq, NULL FROM friend_requests WHERE recipient = ?1
		UNION ALL SELECT 2, recipient, note, ts, seq, NULL FROM friend_requests WHERE sender = ?1
		ORDER BY kind, by_name, ts, seq`
	// friends primary key and friends_friend
	qDropFriends = `DELETE FROM friends WHERE owner = ?1 OR friend = ?1`
	// friend_requests (sender, recipient) unique index and
	// friend_requests_recipient
	qDropRequests = `DELETE FROM friend_requests WHERE sender = ?1 OR recipient = ?1`
	// blocks primary key and blocks_blocked
	qDropBlocks = `DELETE FROM blocks WHERE blocker = ?1 OR blocked = ?1`
)
