package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
)

// Test hooks; compiled into the test binary only.

// MsgIDLen is the length of a msg_id.
const MsgIDLen = msgIDLen

// ConvKey exposes convKey.
func ConvKey(a, b string) string { return convKey(a, b) }

// WriterPragma returns the value of PRAGMA name on the writer connection.
func WriterPragma(s *Store, name string) (string, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var v string
	err := s.writer.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&v)
	return v, err
}

// SchemaVersion is the schema version Open migrates to.
var SchemaVersion = len(migrations())

// MigrateTo creates (or brings) the database at path to schema version
// version exactly as Open did when that version was the newest, so that a
// test can fill an old database and open it with the current code.
func MigrateTo(path string, version int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", dsn(abs, []string{"_txlock=immediate"}, "foreign_keys(1)"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return migrate(context.Background(), db, migrations()[:version])
}

// WriterExec runs query on the writer connection, holding the write lock.
func WriterExec(s *Store, query string, args ...any) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.writer.ExecContext(context.Background(), query, args...)
	return err
}

// Query is a statement of the store, with arguments for EXPLAIN, and the
// index it must use.
type Query struct {
	Name, SQL, Index string
	Args             []any
}

// Queries lists the statements whose plans must use an index.
func Queries() []Query {
	return []Query{
		{"lookup cid", qLookupCID, "messages_sender_cid", []any{"a", "c"}},
		{"lookup cids", qLookupCIDs, "messages_sender_cid", []any{`[[0,"a","c"]]`}},
		{"user exists", qUserExists, "USING PRIMARY KEY", []any{"a"}},
		{"user known", qUserKnown, "USING PRIMARY KEY", []any{"a"}},
		{"password hash", qPasswordHash, "USING PRIMARY KEY", []any{"a"}},
		{"set password hash", qSetPasswordHash, "USING PRIMARY KEY", []any{"h", "a"}},
		{"delete user", qDeleteUser, "USING PRIMARY KEY", []any{int64(1), "a"}},
		{"drop pending", qDropPending, "messages_pending", []any{"a"}},
		{"ack", qAck, "sqlite_autoindex_messages_1", []any{"id", "a"}},
		{"prune", qPrune, "messages_cid_ts", []any{int64(1), int64(10)}},
		{"pending count", qPendingCount, "messages_pending", []any{"a"}},
		{"count pending", qCountPending, "messages_pending", nil},
		{"pending", qPending, "messages_pending", []any{"a", int64(10)}},
		{"cursor", qCursor, "sqlite_autoindex_messages_1", []any{"id", "1:a b"}},
		{"history", qHistory, "messages_conv", []any{"1:a b", int64(5), int64(10)}},
		{"probe", qProbe, "sqlite_autoindex_messages_1", []any{"id"}},
		{"insert checked", qInsertChecked, "SEARCH blocks USING PRIMARY KEY (blocker=? AND blocked=?)", []any{"id", "a", "b", "1:a b", "x", int64(1), "c", "queued", true}},
		{"insert checked friends only", qInsertChecked, "SEARCH friends USING PRIMARY KEY (owner=? AND friend=?)", []any{"id", "a", "b", "1:a b", "x", int64(1), "c", "queued", true}},
		{"write relation", qWriteRelation, "SEARCH blocks USING PRIMARY KEY (blocker=? AND blocked=?)", []any{"a", "b"}},
		{"relation", qRelation, "SEARCH friend_requests USING COVERING INDEX sqlite_autoindex_friend_requests_1 (sender=? AND recipient=?)", []any{"a", "b"}},
		{"delete request", qDeleteRequest, "sqlite_autoindex_friend_requests_1", []any{"a", "b"}},
		{"delete requests", qDeleteRequests, "sqlite_autoindex_friend_requests_1", []any{"a", "b"}},
		{"delete friends", qDeleteFriends, "USING PRIMARY KEY", []any{"a", "b"}},
		{"unblock", qUnblock, "USING PRIMARY KEY", []any{"a", "b"}},
		{"blocks", qBlocks, "USING PRIMARY KEY", []any{"a"}},
		{"friends", qFriends, "friend_requests_recipient", []any{"a"}},
		{"drop friends", qDropFriends, "friends_friend", []any{"a"}},
		{"drop requests", qDropRequests, "friend_requests_recipient", []any{"a"}},
		{"drop blocks", qDropBlocks, "blocks_blocked", []any{"a"}},
	}
}

// QueryPlan returns the EXPLAIN QUERY PLAN details of q, one per line.
func QueryPlan(s *Store, q Query) (string, error) {
	rows, err := s.reader.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q.SQL, q.Args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		fmt.Fprintln(&b, detail)
	}
	return b.String(), rows.Err()
}
