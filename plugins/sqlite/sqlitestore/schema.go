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

// schemaV4 adds groups (plugins.Groups). Users are keyed by name, as
// everywhere.
//
// groups is one row per group, dissolved ones included (ids are never
// reused): its settings, its owner, how many members it has now and the
// seq and ts of its log's last entry, so that appending an entry and the
// checks of a message read one row.
//
// group_members holds a row per user who ever belonged to a group:
// left_seq is NULL while they belong to it, else the seq of the entry
// that removed them (left, kicked, dissolved). Joining again reuses the
// row (a new join_seq, left_seq NULL; muted_until stays). The partial
// index lists a user's current groups.
//
// group_log is every group's log: one row per entry, keyed by (group_id,
// seq), with the columns of every kind (NULL where a kind has none).
// Message entries carry the sender's cid like messages do, unique per
// sender among group entries (the store keeps it unique across both
// tables: see qInsert and qGroupInsert), and pruned alike.
// mention_all marks the messages that mention "all": they are counted as
// mentions for every member at read time (group_log_mention_all), so a
// message to everyone does not write a row per member.
//
// group_cursors is a current member's read position: read_seq, and
// mentions, the number of their group_mentions rows (named mentions after
// read_seq). group_mentions has one row per member named in a message,
// removed as the cursor passes it, so that a cursor that moves only part
// of the way keeps the count exact.
//
// group_requests are pending requests to join an approval group; id
// orders those made in the same millisecond.
const schemaV4 = `
CREATE TABLE groups (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	owner      TEXT NOT NULL REFERENCES users (name),
	policy     TEXT NOT NULL,
	history    TEXT NOT NULL,
	mute_all   INTEGER NOT NULL DEFAULT 0 CHECK (mute_all IN (0, 1)),
	members    INTEGER NOT NULL,
	last_seq   INTEGER NOT NULL,
	last_ts    INTEGER NOT NULL,
	dissolved  INTEGER NOT NULL DEFAULT 0 CHECK (dissolved IN (0, 1)),
	created_ms INTEGER NOT NULL
) STRICT;
-- The live groups a user owns (GroupLimits.MaxOwned).
CREATE INDEX groups_owner ON groups (owner) WHERE dissolved = 0;

CREATE TABLE group_members (
	group_id    INTEGER NOT NULL REFERENCES groups (id),
	member      TEXT NOT NULL REFERENCES users (name),
	role        TEXT NOT NULL,
	join_seq    INTEGER NOT NULL,
	left_seq    INTEGER,
	muted_until INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (group_id, member)
) STRICT, WITHOUT ROWID;
-- A user's current groups.
CREATE INDEX group_members_member ON group_members (member, group_id) WHERE left_seq IS NULL;

CREATE TABLE group_log (
	id          INTEGER PRIMARY KEY,
	group_id    INTEGER NOT NULL REFERENCES groups (id),
	seq         INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	ts          INTEGER NOT NULL,
	sender      TEXT,
	body        TEXT,
	mentions    TEXT,
	mention_all INTEGER NOT NULL DEFAULT 0 CHECK (mention_all IN (0, 1)),
	msg_id      TEXT,
	cid         TEXT,
	actor       TEXT,
	target      TEXT,
	name        TEXT,
	role        TEXT,
	until_ms    INTEGER,
	flag        INTEGER,
	policy      TEXT,
	history     TEXT,
	UNIQUE (group_id, seq)
) STRICT;
-- De-duplication keys of group messages.
CREATE UNIQUE INDEX group_log_sender_cid ON group_log (sender, cid) WHERE cid IS NOT NULL;
-- Pruning of those keys by age.
CREATE INDEX group_log_cid_ts ON group_log (ts) WHERE cid IS NOT NULL;
-- The messages that mention all, per group.
CREATE INDEX group_log_mention_all ON group_log (group_id, seq) WHERE mention_all = 1;

CREATE TABLE group_cursors (
	member   TEXT NOT NULL REFERENCES users (name),
	group_id INTEGER NOT NULL REFERENCES groups (id),
	read_seq INTEGER NOT NULL,
	mentions INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (member, group_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE group_mentions (
	member   TEXT NOT NULL,
	group_id INTEGER NOT NULL,
	seq      INTEGER NOT NULL,
	PRIMARY KEY (member, group_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE group_requests (
	id       INTEGER PRIMARY KEY,
	group_id INTEGER NOT NULL REFERENCES groups (id),
	member   TEXT NOT NULL REFERENCES users (name),
	ts       INTEGER NOT NULL,
	UNIQUE (group_id, member)
) STRICT;
-- DeleteUser: the requests of the deleted user.
CREATE INDEX group_requests_member ON group_requests (member);
`

// schemaV5 adds resume tokens (plugins.Tokens): one row per token, keyed
// by its public id, with its user (by name, as everywhere), the host's
// hash of its secret (never the secret), and its times in unix ms. The
// index lists a user's tokens by recency: UserTokens, the trim after
// AddToken, and the removal of all of a user's tokens (RevokeTokens,
// SetPasswordHash, DeleteUser).
const schemaV5 = `
CREATE TABLE tokens (
	id        TEXT NOT NULL PRIMARY KEY,
	user      TEXT NOT NULL REFERENCES users (name),
	hash      BLOB NOT NULL,
	created   INTEGER NOT NULL,
	last_used INTEGER NOT NULL,
	expires   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
-- A user's tokens, by last use.
CREATE INDEX tokens_user ON tokens (user, last_used);
`

// migrations returns the schema migrations in order: migration i brings
// the database from user_version i to i+1. Append, never edit.
func migrations() []string {
	return []string{schemaV1, schemaV2, schemaV3, schemaV4, schemaV5}
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
	// (no error; the caller sees zero rows changed and looks it up), and
	// group_log_sender_cid: nor does one a group message took (cids of
	// both kinds are one key space).
	qInsert = `INSERT INTO messages (msg_id, sender, recipient, conv, body, ts, cid, status, pending)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1
		WHERE ?7 IS NULL OR NOT EXISTS (SELECT 1 FROM group_log WHERE sender = ?2 AND cid = ?7)
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
			AND (?7 IS NULL OR NOT EXISTS (SELECT 1 FROM group_log WHERE sender = ?2 AND cid = ?7))
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

	// Groups.

	// The columns of a group_log row, in the order scanEntry reads them.
	entryCols = `group_id, seq, kind, ts, sender, body, mentions, msg_id, cid,
		actor, target, name, role, until_ms, flag, policy, history`

	// groups primary key
	qGroup = `SELECT name, owner, policy, history, mute_all, members, last_seq, last_ts, dissolved
		FROM groups WHERE id = ?`
	qCreateGroup = `INSERT INTO groups (name, owner, policy, history, members, last_seq, last_ts, created_ms)
		VALUES (?, ?, ?, ?, 0, 0, ?, ?)`
	// groups primary key
	qPutGroup = `UPDATE groups SET name = ?2, owner = ?3, policy = ?4, history = ?5, mute_all = ?6,
		members = ?7, last_seq = ?8, last_ts = ?9, dissolved = ?10 WHERE id = ?1`
	// groups primary key: a Write's last entry of a group
	qGroupSeq = `UPDATE groups SET last_seq = ?2, last_ts = ?3 WHERE id = ?1`
	// groups_owner
	qOwnedGroups = `SELECT count(*) FROM groups WHERE owner = ? AND dissolved = 0`
	// group_members_member
	qJoinedGroups = `SELECT count(*) FROM group_members WHERE member = ? AND left_seq IS NULL`
	// group_members primary key; also a former member's row
	qMember = `SELECT role, join_seq, left_seq, muted_until FROM group_members WHERE group_id = ? AND member = ?`
	// group_members primary key, group_cursors primary key: what the
	// checks of a message read about its sender (a current member), and
	// how many named mentions their cursor holds.
	qSender = `SELECT m.role, m.muted_until, coalesce(c.mentions, 0)
		FROM group_members AS m LEFT JOIN group_cursors AS c ON c.member = m.member AND c.group_id = m.group_id
		WHERE m.group_id = ?1 AND m.member = ?2 AND m.left_seq IS NULL`
	// group_members primary key; joining again reuses a former member's
	// row (muted_until stays)
	qAddMember = `INSERT INTO group_members (group_id, member, role, join_seq) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (group_id, member) DO UPDATE SET role = ?3, join_seq = ?4, left_seq = NULL`
	// group_members primary key
	qRemoveMember = `UPDATE group_members SET left_seq = ?3 WHERE group_id = ?1 AND member = ?2 AND left_seq IS NULL`
	// group_members primary key
	qSetRole = `UPDATE group_members SET role = ?3 WHERE group_id = ?1 AND member = ?2`
	// group_members primary key
	qSetMuted = `UPDATE group_members SET muted_until = ?3 WHERE group_id = ?1 AND member = ?2`
	// group_members primary key, in name order
	qMembers = `SELECT member, role, join_seq, muted_until FROM group_members
		WHERE group_id = ? AND member > ? AND left_seq IS NULL ORDER BY member LIMIT ?`
	// group_members primary key: the owner's successor when the owner's
	// account is deleted: the longest-standing admin, else member
	qSuccessor = `SELECT member FROM group_members
		WHERE group_id = ?1 AND member != ?2 AND left_seq IS NULL
		ORDER BY role = 'admin' DESC, join_seq, member LIMIT 1`
	// group_members primary key: every member of a group being dissolved
	qDissolveMembers = `UPDATE group_members SET left_seq = ?2 WHERE group_id = ?1 AND left_seq IS NULL`
	// group_members_member: the groups of a user being deleted
	qUserMemberships = `SELECT group_id FROM group_members WHERE member = ? AND left_seq IS NULL ORDER BY group_id`

	// group_log (group_id, seq) unique index
	qAppendEntry = `INSERT INTO group_log (group_id, seq, kind, ts, actor, target, name, role, until_ms, flag, policy, history)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// group_log_sender_cid: a (sender, cid) already stored inserts
	// nothing, and messages_sender_cid: nor does one a direct message
	// took (one key space).
	qGroupInsert = `INSERT INTO group_log (group_id, seq, kind, ts, sender, body, mentions, mention_all, msg_id, cid)
		SELECT ?1, ?2, 'msg', ?3, ?4, ?5, ?6, ?7, ?8, ?9
		WHERE ?9 IS NULL OR NOT EXISTS (SELECT 1 FROM messages WHERE sender = ?4 AND cid = ?9)
		ON CONFLICT (sender, cid) WHERE cid IS NOT NULL DO NOTHING`
	// group_log_sender_cid
	qGroupLookupCID = `SELECT ` + entryCols + ` FROM group_log WHERE sender = ? AND cid = ?`
	// group_log_sender_cid, probed once per key of the JSON array
	// [[index, sender, cid], ...].
	qGroupLookupCIDs = `SELECT k.value ->> 0, ` + entryCols + `
		FROM json_each(?) AS k JOIN group_log ON sender = k.value ->> 1 AND cid = k.value ->> 2`
	// group_log (group_id, seq) unique index: a page forward
	qLogAfter = `SELECT ` + entryCols + ` FROM group_log
		WHERE group_id = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?`
	// group_log (group_id, seq) unique index: a page back
	qLogBefore = `SELECT ` + entryCols + ` FROM group_log
		WHERE group_id = ? AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT ?`
	// group_log (group_id, seq) unique index
	qGroupProbe = `SELECT EXISTS (SELECT 1 FROM group_log WHERE group_id = ? AND seq = ? AND msg_id = ?)`
	// group_log_cid_ts
	qGroupPrune = `UPDATE group_log SET cid = NULL WHERE id IN (
		SELECT id FROM group_log WHERE cid IS NOT NULL AND ts < ? ORDER BY ts LIMIT ?)`

	// group_cursors primary key
	qAddCursor = `INSERT INTO group_cursors (member, group_id, read_seq) VALUES (?1, ?2, ?3)
		ON CONFLICT (member, group_id) DO UPDATE SET read_seq = max(read_seq, ?3)`
	// group_cursors primary key: the sender's cursor moves to their new
	// entry
	qSenderCursor = `UPDATE group_cursors SET read_seq = ?3 WHERE member = ?1 AND group_id = ?2 AND read_seq < ?3`
	// group_cursors primary key, groups primary key: a GroupAck, forward
	// only and at most to the log's end
	qAckGroup = `UPDATE group_cursors SET read_seq = min(?3, (SELECT last_seq FROM groups WHERE id = ?2))
		WHERE member = ?1 AND group_id = ?2 AND read_seq < min(?3, (SELECT last_seq FROM groups WHERE id = ?2))
		RETURNING read_seq, mentions`
	// group_mentions primary key: the mentions a cursor passed
	qPassMentions = `DELETE FROM group_mentions WHERE member = ?1 AND group_id = ?2 AND seq <= ?3`
	// group_cursors primary key
	qRecountMentions = `UPDATE group_cursors SET mentions =
		(SELECT count(*) FROM group_mentions WHERE member = ?1 AND group_id = ?2)
		WHERE member = ?1 AND group_id = ?2`
	// group_cursors primary key, group_mentions primary key: a named
	// mention of a current member (who has a cursor)
	qMention = `INSERT INTO group_mentions (member, group_id, seq)
		SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM group_cursors WHERE member = ?1 AND group_id = ?2)
		ON CONFLICT DO NOTHING`
	// group_cursors primary key
	qCountMention = `UPDATE group_cursors SET mentions = mentions + 1 WHERE member = ?1 AND group_id = ?2`
	// group_cursors and group_mentions primary keys: a removed member's
	qDropCursor   = `DELETE FROM group_cursors WHERE member = ?1 AND group_id = ?2`
	qDropMentions = `DELETE FROM group_mentions WHERE member = ?1 AND group_id = ?2`
	// group_cursors and group_mentions primary keys: a deleted user's
	qDropUserCursors  = `DELETE FROM group_cursors WHERE member = ?`
	qDropUserMentions = `DELETE FROM group_mentions WHERE member = ?`
	// group_cursors primary key (scanning a dissolved group's rows by
	// group_id is a full scan; dissolving is rare and drops them through
	// the members instead): see Store.dissolve.

	// group_members_member, groups primary key, group_cursors primary
	// key, group_log_mention_all: a user's groups with their cursors; the
	// mentions are the named ones (counted in the cursor) and the
	// messages to all after the cursor.
	qUserGroups = `SELECT g.id, g.name, g.owner, g.policy, g.history, g.mute_all, g.members, g.last_seq, g.dissolved,
			m.role, m.join_seq, c.read_seq, c.mentions,
			(SELECT count(*) FROM group_log AS l WHERE l.group_id = g.id AND l.mention_all = 1 AND l.seq > c.read_seq)
		FROM group_members AS m
			JOIN groups AS g ON g.id = m.group_id
			JOIN group_cursors AS c ON c.member = m.member AND c.group_id = m.group_id
		WHERE m.member = ?1 AND m.left_seq IS NULL
		ORDER BY m.group_id`

	// group_requests (group_id, member) unique index; a repeated request
	// keeps the first
	qPutJoinRequest = `INSERT INTO group_requests (group_id, member, ts) VALUES (?, ?, ?)
		ON CONFLICT (group_id, member) DO NOTHING`
	// group_requests (group_id, member) unique index
	qDeleteJoinRequest = `DELETE FROM group_requests WHERE group_id = ? AND member = ?`
	// group_requests (group_id, member) unique index
	qGroupRequests = `SELECT member, ts FROM group_requests WHERE group_id = ? ORDER BY ts, id`
	// group_requests (group_id, member) unique index
	qDropGroupRequests = `DELETE FROM group_requests WHERE group_id = ?`
	// group_requests_member
	qDropUserRequests = `DELETE FROM group_requests WHERE member = ?`

	// Resume tokens.

	// tokens primary key: a taken id inserts nothing (the caller sees
	// zero rows changed: ErrTokenExists).
	qAddToken = `INSERT INTO tokens (id, user, hash, created, last_used, expires) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`
	// tokens_user: the tokens of user ?1 other than ?2, beyond the ?3
	// most recently used (by last_used, then created; id breaks ties).
	qTrimTokens = `DELETE FROM tokens WHERE id IN (
		SELECT id FROM tokens WHERE user = ?1 AND id != ?2
		ORDER BY last_used DESC, created DESC, id DESC LIMIT -1 OFFSET ?3)`
	// tokens primary key
	qToken = `SELECT user, hash, created, last_used, expires FROM tokens WHERE id = ?`
	// tokens primary key: one use; last_used only moves forward.
	qTouchToken = `UPDATE tokens SET last_used = ?2 WHERE id = ?1 AND last_used < ?2`
	// tokens_user, most recently used first
	qUserTokens = `SELECT id, hash, created, last_used, expires FROM tokens
		WHERE user = ? ORDER BY last_used DESC, created DESC, id`
	// tokens_user: every token of a user
	qDropUserTokens = `DELETE FROM tokens WHERE user = ?`
	// tokens_user: those of the user's tokens (a few) whose id is in the
	// JSON array; an id of another user's token is left alone.
	qRevokeTokens = `DELETE FROM tokens WHERE id IN (SELECT value FROM json_each(?2)) AND user = ?1`
	// scans tokens: PurgeTokens runs now and then (the host's timer), and
	// an index on last_used would cost every TouchTokens a second index
	// update.
	qPurgeTokens = `DELETE FROM tokens WHERE expires <= ?1 OR last_used <= ?2`
)
