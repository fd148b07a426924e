package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/qqchat/qq/plugins"
)

// AddToken implements plugins.Tokens: in one transaction on the writer,
// durable like Write, it checks that t.User is live (ErrUnknownUser),
// inserts t (ErrTokenExists when its id is taken, by any user), then
// removes the user's least recently used tokens other than t until keep
// are left, t included. With keep <= 0 none is left, t neither.
func (s *Store) AddToken(ctx context.Context, t plugins.Token, keep int) error {
	return s.writeTx(ctx, "add token", func(tx *sql.Tx) error {
		if err := s.live(ctx, tx, t.User); err != nil {
			return err
		}
		hash := t.Hash
		if hash == nil {
			hash = []byte{} // NOT NULL: an empty hash is stored as such
		}
		n, err := exec(ctx, tx, s.stAddToken, t.ID, t.User, hash, t.Created, t.LastUsed, t.Expires)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("token %q: %w", t.ID, plugins.ErrTokenExists)
		}
		if keep <= 0 {
			_, err = exec(ctx, tx, s.stDropUserTokens, t.User)
			return err
		}
		_, err = exec(ctx, tx, s.stTrimTokens, t.User, t.ID, keep-1)
		return err
	})
}

// Token implements plugins.Tokens, on the reader pool.
func (s *Store) Token(ctx context.Context, id string) (plugins.Token, error) {
	if s.closed.Load() {
		return plugins.Token{}, fmt.Errorf("sqlitestore: token: %w", ErrClosed)
	}
	t := plugins.Token{ID: id}
	err := s.stToken.QueryRowContext(ctx, id).Scan(&t.User, &t.Hash, &t.Created, &t.LastUsed, &t.Expires)
	if errors.Is(err, sql.ErrNoRows) {
		return plugins.Token{}, fmt.Errorf("sqlitestore: token %q: %w", id, plugins.ErrNoToken)
	}
	if err != nil {
		return plugins.Token{}, fmt.Errorf("sqlitestore: token %q: %w", id, err)
	}
	return t, nil
}

// TouchTokens implements plugins.Tokens: one transaction on the writer,
// one single-row UPDATE per use (a statement that changes many rows
// would make SQLite write a statement journal). Like a Write of acks
// only, it commits without fsync: a lost touch only makes a token look
// idle since an earlier use (see the package documentation, Durability).
func (s *Store) TouchTokens(ctx context.Context, uses []plugins.TokenUse) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("sqlitestore: touch tokens: %w", ErrClosed)
	}
	if len(uses) == 0 {
		return nil
	}
	if err := s.restoreSync(ctx); err != nil {
		return err
	}
	if s.syncLevel == "FULL" {
		s.syncLowered = true
		if err := s.setSynchronous(ctx, "NORMAL"); err != nil {
			return fmt.Errorf("sqlitestore: touch tokens: %w", err)
		}
		defer func() { _ = s.restoreSync(context.Background()) }()
	}
	tx, err := s.writer.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("sqlitestore: touch tokens: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	sctx := statementContext(ctx)
	touch := tx.StmtContext(sctx, s.stTouchToken)
	for i, u := range uses {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("sqlitestore: touch tokens: %w", err)
			}
		}
		if _, err := touch.ExecContext(sctx, u.ID, u.TS); err != nil {
			return fmt.Errorf("sqlitestore: touch tokens: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: touch tokens: commit: %w", err)
	}
	return nil
}

// UserTokens implements plugins.Tokens, on the reader pool.
func (s *Store) UserTokens(ctx context.Context, user string) ([]plugins.Token, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlitestore: user tokens: %w", ErrClosed)
	}
	rows, err := s.stUserTokens.QueryContext(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: user tokens: %w", err)
	}
	defer rows.Close()
	ts := []plugins.Token{}
	for rows.Next() {
		t := plugins.Token{User: user}
		if err := rows.Scan(&t.ID, &t.Hash, &t.Created, &t.LastUsed, &t.Expires); err != nil {
			return nil, fmt.Errorf("sqlitestore: user tokens: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: user tokens: %w", err)
	}
	return ts, nil
}

// RevokeTokens implements plugins.Tokens: one transaction on the writer,
// durable like Write.
func (s *Store) RevokeTokens(ctx context.Context, user string, ids []string) (n int64, err error) {
	var idsJSON []byte
	if len(ids) > 0 {
		if idsJSON, err = json.Marshal(ids); err != nil {
			return 0, fmt.Errorf("sqlitestore: revoke tokens: %w", err)
		}
	}
	err = s.writeTx(ctx, "revoke tokens", func(tx *sql.Tx) error {
		var err error
		if idsJSON == nil {
			n, err = exec(ctx, tx, s.stDropUserTokens, user)
		} else {
			n, err = exec(ctx, tx, s.stRevokeTokens, user, string(idsJSON))
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PurgeTokens implements plugins.Tokens: one transaction on the writer
// (it reads every token: see qPurgeTokens).
func (s *Store) PurgeTokens(ctx context.Context, now, idleBefore int64) (n int64, err error) {
	err = s.writeTx(ctx, "purge tokens", func(tx *sql.Tx) error {
		var err error
		n, err = exec(ctx, tx, s.stPurgeTokens, now, idleBefore)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
