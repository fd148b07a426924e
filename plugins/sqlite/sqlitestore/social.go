package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/qqchat/qq/plugins"
)

// errSelf is the error of a friend request or block aimed at oneself
// (qqd refuses those before they reach the storage).
var errSelf = errors.New("a user cannot befriend or block themselves")

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE, on the writer,
// under s.wmu) and commits it unless fn fails. what names the operation
// in errors. The social and group operations use it.
func (s *Store) writeTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("sqlitestore: %s: %w", what, ErrClosed)
	}
	if err := s.restoreSync(ctx); err != nil {
		return err
	}
	tx, err := s.writer.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("sqlitestore: %s: begin: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: %s: commit: %w", what, err)
	}
	return nil
}

// live checks, inside tx, that every name is a live user (registered, not
// deleted), or fails with ErrUnknownUser naming the first that is not.
func (s *Store) live(ctx context.Context, tx *sql.Tx, names ...string) error {
	st := tx.StmtContext(ctx, s.stUserExists)
	for _, name := range names {
		var ok bool
		if err := st.QueryRowContext(ctx, name).Scan(&ok); err != nil {
			return fmt.Errorf("look up user: %w", err)
		}
		if !ok {
			return fmt.Errorf("user %q: %w", name, plugins.ErrUnknownUser)
		}
	}
	return nil
}

// exec runs a statement of the writer inside tx and returns how many rows
// it changed.
func exec(ctx context.Context, tx *sql.Tx, st *sql.Stmt, args ...any) (int64, error) {
	res, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// scanRelation reads a row of qRelation.
func scanRelation(row *sql.Row) (plugins.Relation, error) {
	var r plugins.Relation
	err := row.Scan(&r.Friends, &r.Blocks, &r.BlockedBy, &r.RequestOut, &r.RequestIn)
	return r, err
}

// RequestFriend implements plugins.Social. Besides ErrUnknownUser for an
// unknown or deleted to (or from) and ErrBlocked, a request to oneself is
// an error.
func (s *Store) RequestFriend(ctx context.Context, from, to, note string, ts int64) (became bool, err error) {
	err = s.writeTx(ctx, "request friend", func(tx *sql.Tx) error {
		if err := s.live(ctx, tx, to, from); err != nil {
			return err
		}
		if from == to {
			return errSelf
		}
		rel, err := scanRelation(tx.StmtContext(ctx, s.stRelationW).QueryRowContext(ctx, from, to))
		if err != nil {
			return fmt.Errorf("look up relation: %w", err)
		}
		switch {
		case rel.Blocks || rel.BlockedBy:
			return fmt.Errorf("%q and %q: %w", from, to, plugins.ErrBlocked)
		case rel.Friends:
			became = true
			return nil
		case rel.RequestIn: // crossing requests: friends now
			if _, err := exec(ctx, tx, s.stDelRequests, from, to); err != nil {
				return err
			}
			if _, err := exec(ctx, tx, s.stAddFriends, from, to, ts); err != nil {
				return err
			}
			became = true
			return nil
		}
		_, err = exec(ctx, tx, s.stPutRequest, from, to, note, ts)
		return err
	})
	return became, err
}

// AnswerFriendRequest implements plugins.Social.
func (s *Store) AnswerFriendRequest(ctx context.Context, user, from string, accept bool, ts int64) error {
	return s.writeTx(ctx, "answer friend request", func(tx *sql.Tx) error {
		n, err := exec(ctx, tx, s.stDelRequest, from, user)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("from %q to %q: %w", from, user, plugins.ErrNoRequest)
		}
		if !accept {
			return nil
		}
		// A pending request means both are live and neither blocks the
		// other: DeleteUser and Block drop requests.
		_, err = exec(ctx, tx, s.stAddFriends, user, from, ts)
		return err
	})
}

// CancelFriendRequest implements plugins.Social.
func (s *Store) CancelFriendRequest(ctx context.Context, from, to string) error {
	return s.writeTx(ctx, "cancel friend request", func(tx *sql.Tx) error {
		n, err := exec(ctx, tx, s.stDelRequest, from, to)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("from %q to %q: %w", from, to, plugins.ErrNoRequest)
		}
		return nil
	})
}

// RemoveFriend implements plugins.Social.
func (s *Store) RemoveFriend(ctx context.Context, user, friend string) error {
	return s.writeTx(ctx, "remove friend", func(tx *sql.Tx) error {
		n, err := exec(ctx, tx, s.stDelFriends, user, friend)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%q and %q: %w", user, friend, plugins.ErrNotFriends)
		}
		return nil
	})
}

// Block implements plugins.Social. Besides ErrUnknownUser for an unknown
// or deleted target (or user), blocking oneself is an error.
func (s *Store) Block(ctx context.Context, user, target string, ts int64) error {
	return s.writeTx(ctx, "block", func(tx *sql.Tx) error {
		if err := s.live(ctx, tx, target, user); err != nil {
			return err
		}
		if user == target {
			return errSelf
		}
		// Before the commit: from here on, messages to user are checked.
		s.addBlocker(user)
		if _, err := exec(ctx, tx, s.stBlock, user, target, ts); err != nil {
			return err
		}
		if _, err := exec(ctx, tx, s.stDelFriends, user, target); err != nil {
			return err
		}
		_, err := exec(ctx, tx, s.stDelRequests, user, target)
		return err
	})
}

// Unblock implements plugins.Social.
func (s *Store) Unblock(ctx context.Context, user, target string) error {
	return s.writeTx(ctx, "unblock", func(tx *sql.Tx) error {
		_, err := exec(ctx, tx, s.stUnblock, user, target)
		return err
	})
}

// Friends implements plugins.Social: one statement, so friends and
// requests are one consistent snapshot.
func (s *Store) Friends(ctx context.Context, user string) (plugins.FriendList, error) {
	var l plugins.FriendList
	if s.closed.Load() {
		return l, fmt.Errorf("sqlitestore: friends: %w", ErrClosed)
	}
	rows, err := s.stFriends.QueryContext(ctx, user)
	if err != nil {
		return l, fmt.Errorf("sqlitestore: friends: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			kind       int
			name, note string
			ts, seq    int64
			byName     sql.NullString
		)
		if err := rows.Scan(&kind, &name, &note, &ts, &seq, &byName); err != nil {
			return plugins.FriendList{}, fmt.Errorf("sqlitestore: friends: %w", err)
		}
		switch kind {
		case 0:
			l.Friends = append(l.Friends, plugins.Friend{User: name, Since: ts})
		case 1:
			l.Incoming = append(l.Incoming, plugins.FriendRequest{From: name, To: user, Note: note, TS: ts})
		case 2:
			l.Outgoing = append(l.Outgoing, plugins.FriendRequest{From: user, To: name, Note: note, TS: ts})
		}
	}
	if err := rows.Err(); err != nil {
		return plugins.FriendList{}, fmt.Errorf("sqlitestore: friends: %w", err)
	}
	return l, nil
}

// Blocks implements plugins.Social.
func (s *Store) Blocks(ctx context.Context, user string) ([]string, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlitestore: blocks: %w", ErrClosed)
	}
	rows, err := s.stBlocks.QueryContext(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: blocks: %w", err)
	}
	defer rows.Close()
	var users []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("sqlitestore: blocks: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: blocks: %w", err)
	}
	return users, nil
}

// Relation implements plugins.Social.
func (s *Store) Relation(ctx context.Context, a, b string) (plugins.Relation, error) {
	if s.closed.Load() {
		return plugins.Relation{}, fmt.Errorf("sqlitestore: relation: %w", ErrClosed)
	}
	r, err := scanRelation(s.stRelation.QueryRowContext(ctx, a, b))
	if err != nil {
		return plugins.Relation{}, fmt.Errorf("sqlitestore: relation: %w", err)
	}
	return r, nil
}
