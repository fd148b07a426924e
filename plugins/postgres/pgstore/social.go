package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/plugins"
)

// errSelf is the error of a friend request or block aimed at oneself
// (qqd refuses those before they reach the storage).
var errSelf = errors.New("a user cannot befriend or block themselves")

// qRelation says how $1 stands to $2.
const qRelation = `SELECT
	EXISTS (SELECT 1 FROM friends WHERE owner = $1 AND friend = $2),
	EXISTS (SELECT 1 FROM blocks WHERE blocker = $1 AND blocked = $2),
	EXISTS (SELECT 1 FROM blocks WHERE blocker = $2 AND blocked = $1),
	EXISTS (SELECT 1 FROM friend_requests WHERE sender = $1 AND recipient = $2),
	EXISTS (SELECT 1 FROM friend_requests WHERE sender = $2 AND recipient = $1)`

// Social statements used in several places.
const (
	qDeleteRequests = `DELETE FROM friend_requests WHERE (sender = $1 AND recipient = $2) OR (sender = $2 AND recipient = $1)`
	qDeleteFriends  = `DELETE FROM friends WHERE (owner = $1 AND friend = $2) OR (owner = $2 AND friend = $1)`
	qAddFriends     = `INSERT INTO friends (owner, friend, since_ms) VALUES ($1, $2, $3), ($2, $1, $3)
		ON CONFLICT (owner, friend) DO NOTHING`
	qDeleteRequest = `DELETE FROM friend_requests WHERE sender = $1 AND recipient = $2`
)

func scanRelation(row pgx.Row) (plugins.Relation, error) {
	var r plugins.Relation
	err := row.Scan(&r.Friends, &r.Blocks, &r.BlockedBy, &r.RequestOut, &r.RequestIn)
	return r, err
}

// lockPair locks the rows of users a and b, in name order: every change
// of a relation holds both, so crossing requests and a Write's checks see
// one order of events.
func lockPair(ctx context.Context, tx pgx.Tx, a, b string) (map[string]*userRow, error) {
	if b < a {
		a, b = b, a
	}
	names := []string{a}
	if b != a {
		names = append(names, b)
	}
	return lockUsers(ctx, tx, names)
}

// liveIn fails with ErrUnknownUser for the first of names that users does
// not hold as live.
func liveIn(users map[string]*userRow, names ...string) error {
	for _, n := range names {
		if u := users[n]; u == nil || !u.live {
			return fmt.Errorf("user %q: %w", n, plugins.ErrUnknownUser)
		}
	}
	return nil
}

// RequestFriend implements plugins.Social.
func (s *Store) RequestFriend(ctx context.Context, from, to, note string, ts int64) (became bool, err error) {
	err = s.writeTx(ctx, "request friend", func(tx pgx.Tx) error {
		became = false
		users, err := lockPair(ctx, tx, from, to)
		if err != nil {
			return err
		}
		if err := liveIn(users, to, from); err != nil {
			return err
		}
		if from == to {
			return errSelf
		}
		rel, err := scanRelation(tx.QueryRow(ctx, qRelation, from, to))
		if err != nil {
			return fmt.Errorf("look up relation: %w", err)
		}
		switch {
		case rel.Blocks || rel.BlockedBy:
			return fmt.Errorf("%q and %q: %w", from, to, plugins.ErrBlocked)
		case rel.Friends:
			became = true
			return nil
		case rel.RequestIn:
			if _, err := tx.Exec(ctx, qDeleteRequests, from, to); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, qAddFriends, from, to, ts); err != nil {
				return err
			}
			became = true
			return nil
		}
		// A repeated request is a new row: it moves to the end.
		if _, err := tx.Exec(ctx, qDeleteRequest, from, to); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO friend_requests (sender, recipient, note, ts) VALUES ($1, $2, $3, $4)`, from, to, []byte(note), ts)
		return err
	})
	return became, err
}

// AnswerFriendRequest implements plugins.Social.
func (s *Store) AnswerFriendRequest(ctx context.Context, user, from string, accept bool, ts int64) error {
	return s.writeTx(ctx, "answer friend request", func(tx pgx.Tx) error {
		if _, err := lockPair(ctx, tx, user, from); err != nil {
			return err
		}
		n, err := exec(ctx, tx, qDeleteRequest, from, user)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("from %q to %q: %w", from, user, plugins.ErrNoRequest)
		}
		if !accept {
			return nil
		}
		_, err = tx.Exec(ctx, qAddFriends, user, from, ts)
		return err
	})
}

// CancelFriendRequest implements plugins.Social.
func (s *Store) CancelFriendRequest(ctx context.Context, from, to string) error {
	return s.writeTx(ctx, "cancel friend request", func(tx pgx.Tx) error {
		n, err := exec(ctx, tx, qDeleteRequest, from, to)
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
	return s.writeTx(ctx, "remove friend", func(tx pgx.Tx) error {
		if _, err := lockPair(ctx, tx, user, friend); err != nil {
			return err
		}
		n, err := exec(ctx, tx, qDeleteFriends, user, friend)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%q and %q: %w", user, friend, plugins.ErrNotFriends)
		}
		return nil
	})
}

// Block implements plugins.Social.
func (s *Store) Block(ctx context.Context, user, target string, ts int64) error {
	return s.writeTx(ctx, "block", func(tx pgx.Tx) error {
		users, err := lockPair(ctx, tx, user, target)
		if err != nil {
			return err
		}
		if err := liveIn(users, target, user); err != nil {
			return err
		}
		if user == target {
			return errSelf
		}
		if _, err := tx.Exec(ctx, `INSERT INTO blocks (blocker, blocked, ts) VALUES ($1, $2, $3)
			ON CONFLICT (blocker, blocked) DO NOTHING`, user, target, ts); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qDeleteFriends, user, target); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, qDeleteRequests, user, target)
		return err
	})
}

// Unblock implements plugins.Social.
func (s *Store) Unblock(ctx context.Context, user, target string) error {
	return s.writeTx(ctx, "unblock", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM blocks WHERE blocker = $1 AND blocked = $2`, user, target)
		return err
	})
}

// Friends implements plugins.Social: one statement, so one snapshot.
func (s *Store) Friends(ctx context.Context, user string) (plugins.FriendList, error) {
	var l plugins.FriendList
	if s.closed.Load() {
		return l, fmt.Errorf("pgstore: friends: %w", ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT 0 AS kind, friend AS name, ''::bytea AS note, since_ms AS ts, 0::bigint AS seq, friend AS by_name
			FROM friends WHERE owner = $1
		UNION ALL SELECT 1, sender, note, ts, seq, NULL FROM friend_requests WHERE recipient = $1
		UNION ALL SELECT 2, recipient, note, ts, seq, NULL FROM friend_requests WHERE sender = $1
		ORDER BY kind, by_name, ts, seq`, user)
	if err != nil {
		return l, fmt.Errorf("pgstore: friends: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			kind    int32
			name    string
			note    []byte
			ts, seq int64
			byName  *string
		)
		if err := rows.Scan(&kind, &name, &note, &ts, &seq, &byName); err != nil {
			return plugins.FriendList{}, fmt.Errorf("pgstore: friends: %w", err)
		}
		switch kind {
		case 0:
			l.Friends = append(l.Friends, plugins.Friend{User: name, Since: ts})
		case 1:
			l.Incoming = append(l.Incoming, plugins.FriendRequest{From: name, To: user, Note: string(note), TS: ts})
		case 2:
			l.Outgoing = append(l.Outgoing, plugins.FriendRequest{From: user, To: name, Note: string(note), TS: ts})
		}
	}
	if err := rows.Err(); err != nil {
		return plugins.FriendList{}, fmt.Errorf("pgstore: friends: %w", err)
	}
	return l, nil
}

// Blocks implements plugins.Social.
func (s *Store) Blocks(ctx context.Context, user string) ([]string, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("pgstore: blocks: %w", ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT blocked FROM blocks WHERE blocker = $1 ORDER BY blocked`, user)
	if err != nil {
		return nil, fmt.Errorf("pgstore: blocks: %w", err)
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: blocks: %w", err)
	}
	if len(users) == 0 {
		return nil, nil
	}
	return users, nil
}

// Relation implements plugins.Social.
func (s *Store) Relation(ctx context.Context, a, b string) (plugins.Relation, error) {
	if s.closed.Load() {
		return plugins.Relation{}, fmt.Errorf("pgstore: relation: %w", ErrClosed)
	}
	r, err := scanRelation(s.pool.QueryRow(ctx, qRelation, a, b))
	if err != nil {
		return plugins.Relation{}, fmt.Errorf("pgstore: relation: %w", err)
	}
	return r, nil
}
