package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/qqchat/qq/plugins/msgid"
)

// Test hooks; compiled into the test binary only.

// MsgIDLen is the length of a msg_id.
const MsgIDLen = msgid.Len

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

// WriterChanges returns SQLite's total_changes() of the writer
// connection: how many rows its INSERTs, UPDATEs and DELETEs have changed
// since it opened.
func WriterChanges(s *Store) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var n int64
	err := s.writer.QueryRowContext(context.Background(), "SELECT total_changes()").Scan(&n)
	return n, err
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
		{"insert group cid check", qInsert, "group_log_sender_cid", []any{"id", "a", "b", "1:a b", "x", int64(1), "c", "queued"}},
		{"insert checked group cid check", qInsertChecked, "group_log_sender_cid", []any{"id", "a", "b", "1:a b", "x", int64(1), "c", "queued", true}},
		{"group", qGroup, "USING INTEGER PRIMARY KEY", []any{int64(1)}},
		{"put group", qPutGroup, "USING INTEGER PRIMARY KEY", []any{int64(1), "n", "o", "open", "joined", false, int64(1), int64(1), int64(1), false}},
		{"group seq", qGroupSeq, "USING INTEGER PRIMARY KEY", []any{int64(1), int64(1), int64(1)}},
		{"owned groups", qOwnedGroups, "groups_owner", []any{"a"}},
		{"joined groups", qJoinedGroups, "group_members_member", []any{"a"}},
		{"member", qMember, "USING PRIMARY KEY", []any{int64(1), "a"}},
		{"sender", qSender, "SEARCH c USING PRIMARY KEY", []any{int64(1), "a"}},
		{"remove member", qRemoveMember, "USING PRIMARY KEY", []any{int64(1), "a", int64(2)}},
		{"set role", qSetRole, "USING PRIMARY KEY", []any{int64(1), "a", "admin"}},
		{"set muted", qSetMuted, "USING PRIMARY KEY", []any{int64(1), "a", int64(2)}},
		{"members", qMembers, "USING PRIMARY KEY (group_id=? AND member>?)", []any{int64(1), "a", int64(10)}},
		{"successor", qSuccessor, "USING PRIMARY KEY (group_id=?)", []any{int64(1), "a"}},
		{"dissolve members", qDissolveMembers, "USING PRIMARY KEY (group_id=?)", []any{int64(1), int64(2)}},
		{"user memberships", qUserMemberships, "group_members_member", []any{"a"}},
		{"group insert", qGroupInsert, "messages_sender_cid", []any{int64(1), int64(2), int64(3), "a", "b", nil, false, "id", "c"}},
		{"group lookup cid", qGroupLookupCID, "group_log_sender_cid", []any{"a", "c"}},
		{"group lookup cids", qGroupLookupCIDs, "group_log_sender_cid", []any{`[[0,"a","c"]]`}},
		{"log after", qLogAfter, "sqlite_autoindex_group_log_1 (group_id=? AND seq>? AND seq<?)", []any{int64(1), int64(1), int64(9), int64(10)}},
		{"log before", qLogBefore, "sqlite_autoindex_group_log_1 (group_id=? AND seq>? AND seq<?)", []any{int64(1), int64(1), int64(9), int64(10)}},
		{"group probe", qGroupProbe, "sqlite_autoindex_group_log_1", []any{int64(1), int64(1), "id"}},
		{"group prune", qGroupPrune, "group_log_cid_ts", []any{int64(1), int64(10)}},
		{"sender cursor", qSenderCursor, "USING PRIMARY KEY", []any{"a", int64(1), int64(2)}},
		{"ack group", qAckGroup, "SEARCH group_cursors USING PRIMARY KEY", []any{"a", int64(1), int64(2)}},
		{"pass mentions", qPassMentions, "USING PRIMARY KEY (member=? AND group_id=? AND seq<?)", []any{"a", int64(1), int64(2)}},
		{"recount mentions", qRecountMentions, "SEARCH group_mentions USING PRIMARY KEY (member=? AND group_id=?)", []any{"a", int64(1)}},
		{"mention", qMention, "SEARCH group_cursors EXISTS USING PRIMARY KEY", []any{"a", int64(1), int64(2)}},
		{"count mention", qCountMention, "USING PRIMARY KEY", []any{"a", int64(1)}},
		{"drop cursor", qDropCursor, "USING PRIMARY KEY", []any{"a", int64(1)}},
		{"drop mentions", qDropMentions, "USING PRIMARY KEY (member=? AND group_id=?)", []any{"a", int64(1)}},
		{"drop user cursors", qDropUserCursors, "USING PRIMARY KEY (member=?)", []any{"a"}},
		{"drop user mentions", qDropUserMentions, "USING PRIMARY KEY (member=?)", []any{"a"}},
		{"user groups", qUserGroups, "group_log_mention_all", []any{"a"}},
		{"user groups members", qUserGroups, "group_members_member", []any{"a"}},
		{"delete join request", qDeleteJoinRequest, "sqlite_autoindex_group_requests_1", []any{int64(1), "a"}},
		{"group requests", qGroupRequests, "sqlite_autoindex_group_requests_1", []any{int64(1)}},
		{"drop group requests", qDropGroupRequests, "sqlite_autoindex_group_requests_1", []any{int64(1)}},
		{"drop user requests", qDropUserRequests, "group_requests_member", []any{"a"}},
		{"trim tokens", qTrimTokens, "tokens_user (user=?)", []any{"a", "id", int64(19)}},
		{"token", qToken, "SEARCH tokens USING PRIMARY KEY (id=?)", []any{"id"}},
		{"touch token", qTouchToken, "SEARCH tokens USING PRIMARY KEY (id=?)", []any{"id", int64(2)}},
		{"user tokens", qUserTokens, "tokens_user (user=?)", []any{"a"}},
		{"drop user tokens", qDropUserTokens, "tokens_user (user=?)", []any{"a"}},
		{"revoke tokens", qRevokeTokens, "tokens_user (user=?)", []any{"a", `["id"]`}},
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
