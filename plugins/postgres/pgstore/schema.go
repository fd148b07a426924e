package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the key of the session-level advisory lock under which
// Open runs the migrations, so that several stores (several qqd nodes)
// opening one database at once apply each migration once.
const migrationLock int64 = 0x71716d6967726174 // "qqmigrat"

// schemaV1 is the first schema. Names are text COLLATE "C", so that they
// compare and sort byte-wise as the contract asks; bodies and notes are
// bytea, because PostgreSQL text cannot hold a NUL byte.
//
// users.msg_seq is the last per-recipient seq given to a message to the
// user, and users.last_ts the timestamp of the last message the user
// sent or received: both move only under the user's row lock, inside the
// Write that stores the message, so seqs are gap-free and commit-ordered
// per recipient, and timestamps never decrease along them nor along a
// conversation.
//
// messages.id is the store's total order (History and Export sort by
// (ts, id)); it is drawn after the Write has locked its users, so along
// one recipient's seq, and along a conversation, both ts and id grow.
//
// cids is the one key space of the (sender, cid) de-duplication keys of
// direct and group messages: its primary key settles a race between two
// transactions (on two nodes) storing the same key; the loser waits for
// the winner's commit and then finds its message.
const schemaV1 = `
CREATE TABLE users (
	name       text COLLATE "C" PRIMARY KEY,
	pw_hash    text NOT NULL,
	created_ms bigint NOT NULL,
	deleted_ms bigint,
	msg_seq    bigint NOT NULL DEFAULT 0,
	last_ts    bigint NOT NULL DEFAULT 0
);

CREATE TABLE messages (
	id        bigserial PRIMARY KEY,
	msg_id    text COLLATE "C" NOT NULL UNIQUE,
	sender    text COLLATE "C" NOT NULL REFERENCES users (name),
	recipient text COLLATE "C" NOT NULL REFERENCES users (name),
	conv      text COLLATE "C" NOT NULL,
	body      bytea NOT NULL,
	ts        bigint NOT NULL,
	cid       text COLLATE "C",
	status    text NOT NULL,
	pending   boolean NOT NULL DEFAULT true,
	seq       bigint NOT NULL
);
CREATE INDEX messages_pending ON messages (recipient, seq) WHERE pending;
CREATE INDEX messages_conv ON messages (conv, ts, id);
CREATE INDEX messages_sender_cid ON messages (sender, cid) WHERE cid IS NOT NULL;

CREATE TABLE cids (
	sender text COLLATE "C" NOT NULL,
	cid    text COLLATE "C" NOT NULL,
	ts     bigint NOT NULL,
	PRIMARY KEY (sender, cid)
);
CREATE INDEX cids_ts ON cids (ts);

CREATE TABLE friends (
	owner    text COLLATE "C" NOT NULL REFERENCES users (name),
	friend   text COLLATE "C" NOT NULL REFERENCES users (name),
	since_ms bigint NOT NULL,
	PRIMARY KEY (owner, friend)
);
CREATE INDEX friends_friend ON friends (friend);

CREATE TABLE friend_requests (
	seq       bigserial PRIMARY KEY,
	sender    text COLLATE "C" NOT NULL REFERENCES users (name),
	recipient text COLLATE "C" NOT NULL REFERENCES users (name),
	note      bytea NOT NULL,
	ts        bigint NOT NULL,
	UNIQUE (sender, recipient)
);
CREATE INDEX friend_requests_recipient ON friend_requests (recipient, ts, seq);

CREATE TABLE blocks (
	blocker text COLLATE "C" NOT NULL REFERENCES users (name),
	blocked text COLLATE "C" NOT NULL REFERENCES users (name),
	ts      bigint NOT NULL,
	PRIMARY KEY (blocker, blocked)
);
CREATE INDEX blocks_blocked ON blocks (blocked);

CREATE TABLE groups (
	id         bigserial PRIMARY KEY,
	name       text NOT NULL,
	owner      text COLLATE "C" NOT NULL REFERENCES users (name),
	policy     text NOT NULL,
	history    text NOT NULL,
	mute_all   boolean NOT NULL DEFAULT false,
	members    bigint NOT NULL,
	last_seq   bigint NOT NULL,
	last_ts    bigint NOT NULL,
	dissolved  boolean NOT NULL DEFAULT false,
	created_ms bigint NOT NULL
);
CREATE INDEX groups_owner ON groups (owner) WHERE NOT dissolved;

CREATE TABLE group_members (
	group_id    bigint NOT NULL REFERENCES groups (id),
	member      text COLLATE "C" NOT NULL REFERENCES users (name),
	role        text NOT NULL,
	join_seq    bigint NOT NULL,
	left_seq    bigint,
	muted_until bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (group_id, member)
);
CREATE INDEX group_members_member ON group_members (member, group_id) WHERE left_seq IS NULL;

CREATE TABLE group_log (
	group_id    bigint NOT NULL REFERENCES groups (id),
	seq         bigint NOT NULL,
	kind        text NOT NULL,
	ts          bigint NOT NULL,
	sender      text COLLATE "C",
	body        bytea,
	mentions    text[],
	mention_all boolean NOT NULL DEFAULT false,
	msg_id      text COLLATE "C",
	cid         text COLLATE "C",
	actor       text COLLATE "C",
	target      text COLLATE "C",
	name        text,
	role        text,
	until_ms    bigint,
	flag        boolean,
	policy      text,
	history     text,
	PRIMARY KEY (group_id, seq)
);
CREATE INDEX group_log_sender_cid ON group_log (sender, cid) WHERE cid IS NOT NULL;
CREATE INDEX group_log_mention_all ON group_log (group_id, seq) WHERE mention_all;

CREATE TABLE group_cursors (
	member   text COLLATE "C" NOT NULL REFERENCES users (name),
	group_id bigint NOT NULL REFERENCES groups (id),
	read_seq bigint NOT NULL,
	mentions bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (member, group_id)
);

CREATE TABLE group_mentions (
	member   text COLLATE "C" NOT NULL,
	group_id bigint NOT NULL,
	seq      bigint NOT NULL,
	PRIMARY KEY (member, group_id, seq)
);

CREATE TABLE group_requests (
	id       bigserial PRIMARY KEY,
	group_id bigint NOT NULL REFERENCES groups (id),
	member   text COLLATE "C" NOT NULL REFERENCES users (name),
	ts       bigint NOT NULL,
	UNIQUE (group_id, member)
);
CREATE INDEX group_requests_member ON group_requests (member);

CREATE TABLE tokens (
	id        text COLLATE "C" PRIMARY KEY,
	owner     text COLLATE "C" NOT NULL REFERENCES users (name),
	hash      bytea NOT NULL,
	created   bigint NOT NULL,
	last_used bigint NOT NULL,
	expires   bigint NOT NULL
);
CREATE INDEX tokens_owner ON tokens (owner, last_used);
`

// migrations returns the schema migrations in order: migration i brings
// the database from schema_version i to i+1. Append, never edit.
func migrations() []string {
	return []string{schemaV1}
}

// migrate applies the migrations the database lacks, each in its own
// transaction, holding the advisory lock migrationLock on one connection
// for the whole run; it fails if the database is newer than steps.
func migrate(ctx context.Context, pool *pgxpool.Pool, steps []string) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("migrate: advisory lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock); err != nil {
			// A lock that could not be released dies with the session.
			_ = conn.Conn().Close(context.Background())
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: create schema_version: %w", err)
	}
	for {
		done, err := migrateOne(ctx, conn.Conn(), steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next migration, if any, in one transaction that
// also records the new version.
func migrateOne(ctx context.Context, conn *pgx.Conn, steps []string) (done bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var v int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&v); err != nil {
		return false, fmt.Errorf("migrate: read schema version: %w", err)
	}
	switch {
	case v > len(steps):
		return false, fmt.Errorf("schema version %d is newer than this program supports (%d)", v, len(steps))
	case v == len(steps):
		return true, nil
	}
	if _, err := tx.Exec(ctx, steps[v]); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM schema_version"); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_version (version) VALUES ($1)", v+1); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("migrate to version %d: commit: %w", v+1, err)
	}
	return false, nil
}
