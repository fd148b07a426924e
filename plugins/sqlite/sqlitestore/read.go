package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// maxPrealloc bounds the capacity reserved for a page up front.
const maxPrealloc = 256

// PasswordHash returns the stored hash of user, or an error wrapping
// plugins.ErrUnknownUser (also for a deleted user).
func (s *Store) PasswordHash(ctx context.Context, user string) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("sqlitestore: password hash: %w", ErrClosed)
	}
	var h string
	err := s.stPasswordHash.QueryRowContext(ctx, user).Scan(&h)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("sqlitestore: password hash: user %q: %w", user, plugins.ErrUnknownUser)
	case err != nil:
		return "", fmt.Errorf("sqlitestore: password hash: %w", err)
	}
	return h, nil
}

// CountUsers returns how many accounts exist, deleted ones excluded.
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("sqlitestore: count users: %w", ErrClosed)
	}
	var n int64
	if err := s.stCountUsers.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count users: %w", err)
	}
	return n, nil
}

// CountPending returns how many messages are pending over all users. It
// reads the whole messages_pending partial index, which holds the pending
// rows only: its cost is proportional to the backlog, not to the history.
func (s *Store) CountPending(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("sqlitestore: count pending: %w", ErrClosed)
	}
	var n int64
	if err := s.stCountPend.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count pending: %w", err)
	}
	return n, nil
}

// LookupCIDs returns, for each key, the message stored under its
// (From, CID) as a Duplicate result (with Group set for a group message),
// or a zero result when there is none (or the key's CID is empty).
func (s *Store) LookupCIDs(ctx context.Context, keys []plugins.CIDKey) ([]plugins.AppendResult, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlitestore: lookup cids: %w", ErrClosed)
	}
	results := make([]plugins.AppendResult, len(keys))
	// One statement for the whole batch: the keys go in as a JSON array
	// of [index, sender, cid] and only the stored ones come back. Per
	// key, a statement of its own cost several times the index probe.
	arg := make([]any, 0, len(keys))
	for i, k := range keys {
		if k.CID != "" {
			arg = append(arg, [3]any{i, k.From, k.CID})
		}
	}
	if len(arg) == 0 {
		return results, nil
	}
	if err := s.lookupDirectCIDs(ctx, keys, arg, results); err != nil {
		return nil, fmt.Errorf("sqlitestore: lookup cids: %w", err)
	}
	if err := s.lookupGroupCIDs(ctx, keys, results); err != nil {
		return nil, fmt.Errorf("sqlitestore: lookup cids: %w", err)
	}
	return results, nil
}

// lookupDirectCIDs fills the results of the keys arg lists ([index,
// sender, cid]) that name a direct message.
func (s *Store) lookupDirectCIDs(ctx context.Context, keys []plugins.CIDKey, arg []any, results []plugins.AppendResult) error {
	keyJSON, err := json.Marshal(arg)
	if err != nil {
		return err
	}
	rows, err := s.stLookupCIDs.QueryContext(ctx, string(keyJSON))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		r := plugins.AppendResult{Duplicate: true}
		if err := rows.Scan(&i, &r.Message.ID, &r.Message.To, &r.Message.Body, &r.Message.TS, &r.Status); err != nil {
			return err
		}
		if i < 0 || i >= len(keys) {
			return fmt.Errorf("key index %d out of range", i)
		}
		r.Message.From = keys[i].From
		results[i] = r
	}
	return rows.Err()
}

// PendingCount returns how many messages are pending for user.
func (s *Store) PendingCount(ctx context.Context, user string) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("sqlitestore: pending count: %w", ErrClosed)
	}
	var n int64
	if err := s.stPendingCount.QueryRowContext(ctx, user).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: pending count: %w", err)
	}
	return n, nil
}

// Pending returns up to limit (at least 1) of the oldest messages pending
// for user, oldest first, and whether more are pending.
func (s *Store) Pending(ctx context.Context, user string, limit int) ([]protocol.Message, bool, error) {
	if s.closed.Load() {
		return nil, false, fmt.Errorf("sqlitestore: pending: %w", ErrClosed)
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("sqlitestore: pending: limit %d is not positive", limit)
	}
	rows, err := s.stPending.QueryContext(ctx, user, pageLimit(limit))
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: pending: %w", err)
	}
	msgs, err := scanMessages(rows, limit)
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: pending: %w", err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	return msgs, more, nil
}

// History returns a page of the conversation between user and with; see
// plugins.Storage.
func (s *Store) History(ctx context.Context, user, with, before string, limit int) ([]protocol.Message, bool, error) {
	if s.closed.Load() {
		return nil, false, fmt.Errorf("sqlitestore: history: %w", ErrClosed)
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("sqlitestore: history: limit %d is not positive", limit)
	}
	// A deleted account's conversations stay readable: with only has to
	// have been registered once.
	var ok bool
	if err := s.stKnownUser.QueryRowContext(ctx, with).Scan(&ok); err != nil {
		return nil, false, fmt.Errorf("sqlitestore: history: %w", err)
	}
	if !ok {
		return nil, false, fmt.Errorf("sqlitestore: history: user %q: %w", with, plugins.ErrUnknownUser)
	}
	conv := convKey(user, with)
	beforeSeq := int64(math.MaxInt64)
	if before != "" {
		err := s.stCursor.QueryRowContext(ctx, before, conv).Scan(&beforeSeq)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, false, fmt.Errorf("sqlitestore: history: before %q: %w", before, plugins.ErrBadCursor)
		case err != nil:
			return nil, false, fmt.Errorf("sqlitestore: history: %w", err)
		}
	}
	rows, err := s.stHistory.QueryContext(ctx, conv, beforeSeq, pageLimit(limit))
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: history: %w", err)
	}
	msgs, err := scanMessages(rows, limit)
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: history: %w", err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	slices.Reverse(msgs) // newest first from the query; oldest first out
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

// scanMessages reads rows of (msg_id, sender, recipient, body, ts) and
// closes rows.
func scanMessages(rows *sql.Rows, limit int) ([]protocol.Message, error) {
	defer rows.Close()
	msgs := make([]protocol.Message, 0, min(limit, maxPrealloc)+1)
	for rows.Next() {
		var m protocol.Message
		if err := rows.Scan(&m.ID, &m.From, &m.To, &m.Body, &m.TS); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// convKey is the conversation key of a and b, in either order: the names
// sorted, in the form "<len(a)>:<a> <b>". The length prefix makes the key
// unambiguous whatever bytes the names hold.
func convKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return strconv.Itoa(len(a)) + ":" + a + " " + b
}
