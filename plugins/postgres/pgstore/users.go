package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// maxPrealloc bounds the capacity reserved for a page up front.
const maxPrealloc = 256

// CreateUser stores a new account. It returns an error wrapping
// plugins.ErrUserExists when the name is taken, by an account or by a
// deleted one (names are never reused).
func (s *Store) CreateUser(ctx context.Context, user, passwordHash string) error {
	return s.writeTx(ctx, "create user", func(tx pgx.Tx) error {
		n, err := exec(ctx, tx, `INSERT INTO users (name, pw_hash, created_ms) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO NOTHING`, user, passwordHash, s.now().UnixMilli())
		if err != nil {
			return fmt.Errorf("user %q: %w", user, err)
		}
		if n == 0 {
			return fmt.Errorf("user %q: %w", user, plugins.ErrUserExists)
		}
		return nil
	})
}

// PasswordHash returns the stored hash of user, or an error wrapping
// plugins.ErrUnknownUser (also for a deleted user).
func (s *Store) PasswordHash(ctx context.Context, user string) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("pgstore: password hash: %w", ErrClosed)
	}
	var h string
	err := s.pool.QueryRow(ctx, `SELECT pw_hash FROM users WHERE name = $1 AND deleted_ms IS NULL`, user).Scan(&h)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("pgstore: password hash: user %q: %w", user, plugins.ErrUnknownUser)
	case err != nil:
		return "", fmt.Errorf("pgstore: password hash: %w", err)
	}
	return h, nil
}

// SetPasswordHash replaces the password hash of user and, in the same
// transaction, removes every resume token of user.
func (s *Store) SetPasswordHash(ctx context.Context, user, passwordHash string) error {
	return s.writeTx(ctx, "set password hash", func(tx pgx.Tx) error {
		n, err := exec(ctx, tx, `UPDATE users SET pw_hash = $1 WHERE name = $2 AND deleted_ms IS NULL`, passwordHash, user)
		if err != nil {
			return fmt.Errorf("user %q: %w", user, err)
		}
		if n == 0 {
			return fmt.Errorf("user %q: %w", user, plugins.ErrUnknownUser)
		}
		if _, err := exec(ctx, tx, qDropUserTokens, user); err != nil {
			return fmt.Errorf("user %q: drop tokens: %w", user, err)
		}
		return nil
	})
}

// DeleteUser deletes the account of user in one transaction (see
// plugins.Storage, plugins.Social, plugins.Groups and plugins.Tokens for
// what goes with it).
func (s *Store) DeleteUser(ctx context.Context, user string) (int64, error) {
	var dropped int64
	err := s.writeTx(ctx, "delete user", func(tx pgx.Tx) error {
		users, err := lockUsers(ctx, tx, []string{user})
		if err != nil {
			return err
		}
		if u := users[user]; u == nil || !u.live {
			return fmt.Errorf("user %q: %w", user, plugins.ErrUnknownUser)
		}
		if _, err := exec(ctx, tx, `UPDATE users SET deleted_ms = $1, pw_hash = '' WHERE name = $2`, s.now().UnixMilli(), user); err != nil {
			return err
		}
		if dropped, err = exec(ctx, tx, `UPDATE messages SET pending = false WHERE recipient = $1 AND pending`, user); err != nil {
			return fmt.Errorf("drop pending: %w", err)
		}
		for _, q := range []string{
			`DELETE FROM friends WHERE owner = $1 OR friend = $1`,
			`DELETE FROM friend_requests WHERE sender = $1 OR recipient = $1`,
			`DELETE FROM blocks WHERE blocker = $1 OR blocked = $1`,
			qDropUserTokens,
		} {
			if _, err := exec(ctx, tx, q, user); err != nil {
				return fmt.Errorf("drop friendships, requests, blocks and tokens: %w", err)
			}
		}
		if err := s.leaveGroups(ctx, tx, user, s.now().UnixMilli()); err != nil {
			return fmt.Errorf("leave groups: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return dropped, nil
}

// CountUsers returns how many accounts exist, deleted ones excluded.
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	return s.count(ctx, "count users", `SELECT count(*) FROM users WHERE deleted_ms IS NULL`)
}

// CountPending returns how many messages are pending over all users (a
// scan of the messages_pending partial index: its cost grows with the
// backlog, not with the history).
func (s *Store) CountPending(ctx context.Context) (int64, error) {
	return s.count(ctx, "count pending", `SELECT count(*) FROM messages WHERE pending`)
}

// PendingCount returns how many messages are pending for user.
func (s *Store) PendingCount(ctx context.Context, user string) (int64, error) {
	return s.count(ctx, "pending count", `SELECT count(*) FROM messages WHERE recipient = $1 AND pending`, user)
}

func (s *Store) count(ctx context.Context, what, q string, args ...any) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("pgstore: %s: %w", what, ErrClosed)
	}
	var n int64
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgstore: %s: %w", what, err)
	}
	return n, nil
}

// msgCols are the columns scanMessage reads.
const msgCols = `msg_id, sender, recipient, body, ts, seq`

// scanMessage reads a row of msgCols.
func scanMessage(row pgx.Row, m *protocol.Message, extra ...any) error {
	var body []byte
	if err := row.Scan(append(extra, &m.ID, &m.From, &m.To, &body, &m.TS, &m.Seq)...); err != nil {
		return err
	}
	m.Body = string(body)
	return nil
}

// Pending returns up to limit (at least 1) of the oldest messages pending
// for user, in the order of their seq, and whether more are pending.
func (s *Store) Pending(ctx context.Context, user string, limit int) ([]protocol.Message, bool, error) {
	if s.closed.Load() {
		return nil, false, fmt.Errorf("pgstore: pending: %w", ErrClosed)
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("pgstore: pending: limit %d is not positive", limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+msgCols+` FROM messages
		WHERE recipient = $1 AND pending ORDER BY seq LIMIT $2`, user, pageLimit(limit))
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: pending: %w", err)
	}
	msgs, err := scanMessages(rows, limit)
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: pending: %w", err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	return msgs, more, nil
}

// History returns a page of the conversation between user and with; see
// plugins.Storage. The conversation is in (ts, id) order.
func (s *Store) History(ctx context.Context, user, with, before string, limit int) ([]protocol.Message, bool, error) {
	if s.closed.Load() {
		return nil, false, fmt.Errorf("pgstore: history: %w", ErrClosed)
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("pgstore: history: limit %d is not positive", limit)
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)`, with).Scan(&ok); err != nil {
		return nil, false, fmt.Errorf("pgstore: history: %w", err)
	}
	if !ok {
		return nil, false, fmt.Errorf("pgstore: history: user %q: %w", with, plugins.ErrUnknownUser)
	}
	conv := convKey(user, with)
	beforeTS, beforeID := int64(math.MaxInt64), int64(math.MaxInt64)
	if before != "" {
		err := s.pool.QueryRow(ctx, `SELECT ts, id FROM messages WHERE msg_id = $1 AND conv = $2`, before, conv).Scan(&beforeTS, &beforeID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, false, fmt.Errorf("pgstore: history: before %q: %w", before, plugins.ErrBadCursor)
		case err != nil:
			return nil, false, fmt.Errorf("pgstore: history: %w", err)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+msgCols+` FROM messages
		WHERE conv = $1 AND (ts, id) < ($2, $3) ORDER BY ts DESC, id DESC LIMIT $4`, conv, beforeTS, beforeID, pageLimit(limit))
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: history: %w", err)
	}
	msgs, err := scanMessages(rows, limit)
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: history: %w", err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	slices.Reverse(msgs)
	return msgs, more, nil
}

// pageLimit is the SQL LIMIT for a page of limit rows: one more, to learn
// whether more exist.
func pageLimit(limit int) int64 {
	if int64(limit) == math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(limit) + 1
}

// scanMessages reads rows of msgCols and closes rows.
func scanMessages(rows pgx.Rows, limit int) ([]protocol.Message, error) {
	defer rows.Close()
	msgs := make([]protocol.Message, 0, min(limit, maxPrealloc)+1)
	for rows.Next() {
		var m protocol.Message
		if err := scanMessage(rows, &m); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return msgs, nil
}
