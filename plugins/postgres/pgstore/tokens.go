package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/plugins"
)

// qDropUserTokens removes every token of a user.
const qDropUserTokens = `DELETE FROM tokens WHERE owner = $1`

// AddToken implements plugins.Tokens: in one transaction holding the
// user's row lock (so that the trim of two concurrent adds is serial).
func (s *Store) AddToken(ctx context.Context, t plugins.Token, keep int) error {
	return s.writeTx(ctx, "add token", func(tx pgx.Tx) error {
		users, err := lockUsers(ctx, tx, []string{t.User})
		if err != nil {
			return err
		}
		if err := liveIn(users, t.User); err != nil {
			return err
		}
		hash := t.Hash
		if hash == nil {
			hash = []byte{}
		}
		n, err := exec(ctx, tx, `INSERT INTO tokens (id, owner, hash, created, last_used, expires) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO NOTHING`, t.ID, t.User, hash, t.Created, t.LastUsed, t.Expires)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("token %q: %w", t.ID, plugins.ErrTokenExists)
		}
		if keep <= 0 {
			_, err = tx.Exec(ctx, qDropUserTokens, t.User)
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM tokens WHERE id IN (
			SELECT id FROM tokens WHERE owner = $1 AND id != $2
			ORDER BY last_used DESC, created DESC, id DESC OFFSET $3)`, t.User, t.ID, keep-1)
		return err
	})
}

// Token implements plugins.Tokens.
func (s *Store) Token(ctx context.Context, id string) (plugins.Token, error) {
	if s.closed.Load() {
		return plugins.Token{}, fmt.Errorf("pgstore: token: %w", ErrClosed)
	}
	t := plugins.Token{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT owner, hash, created, last_used, expires FROM tokens WHERE id = $1`, id).
		Scan(&t.User, &t.Hash, &t.Created, &t.LastUsed, &t.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return plugins.Token{}, fmt.Errorf("pgstore: token %q: %w", id, plugins.ErrNoToken)
	}
	if err != nil {
		return plugins.Token{}, fmt.Errorf("pgstore: token %q: %w", id, err)
	}
	return t, nil
}

// TouchTokens implements plugins.Tokens: one statement; last_used only
// moves forward.
func (s *Store) TouchTokens(ctx context.Context, uses []plugins.TokenUse) error {
	if len(uses) == 0 {
		if s.closed.Load() {
			return fmt.Errorf("pgstore: touch tokens: %w", ErrClosed)
		}
		return nil
	}
	ids := make([]string, len(uses))
	tss := make([]int64, len(uses))
	for i, u := range uses {
		ids[i], tss[i] = u.ID, u.TS
	}
	return s.writeTx(ctx, "touch tokens", func(tx pgx.Tx) error {
		// The latest use of each id, applied in id order.
		_, err := tx.Exec(ctx, `UPDATE tokens AS t SET last_used = v.ts
			FROM (SELECT id, max(ts) AS ts FROM unnest($1::text[], $2::bigint[]) AS u(id, ts) GROUP BY id ORDER BY id) AS v
			WHERE t.id = v.id AND t.last_used < v.ts`, ids, tss)
		return err
	})
}

// UserTokens implements plugins.Tokens.
func (s *Store) UserTokens(ctx context.Context, user string) ([]plugins.Token, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("pgstore: user tokens: %w", ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, hash, created, last_used, expires FROM tokens
		WHERE owner = $1 ORDER BY last_used DESC, created DESC, id`, user)
	if err != nil {
		return nil, fmt.Errorf("pgstore: user tokens: %w", err)
	}
	defer rows.Close()
	ts := []plugins.Token{}
	for rows.Next() {
		t := plugins.Token{User: user}
		if err := rows.Scan(&t.ID, &t.Hash, &t.Created, &t.LastUsed, &t.Expires); err != nil {
			return nil, fmt.Errorf("pgstore: user tokens: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: user tokens: %w", err)
	}
	return ts, nil
}

// RevokeTokens implements plugins.Tokens.
func (s *Store) RevokeTokens(ctx context.Context, user string, ids []string) (n int64, err error) {
	err = s.writeTx(ctx, "revoke tokens", func(tx pgx.Tx) error {
		var err error
		if len(ids) == 0 {
			n, err = exec(ctx, tx, qDropUserTokens, user)
		} else {
			n, err = exec(ctx, tx, `DELETE FROM tokens WHERE owner = $1 AND id = ANY($2::text[])`, user, ids)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PurgeTokens implements plugins.Tokens.
func (s *Store) PurgeTokens(ctx context.Context, now, idleBefore int64) (n int64, err error) {
	err = s.writeTx(ctx, "purge tokens", func(tx pgx.Tx) error {
		var err error
		n, err = exec(ctx, tx, `DELETE FROM tokens WHERE expires <= $1 OR last_used <= $2`, now, idleBefore)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
