package pebblestore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/qqchat/qq/plugins"
)

var _ plugins.Tokens = (*Store)(nil)

// tokenRecord is the value of t<id>: a token without its id.
func appendToken(b []byte, t plugins.Token) []byte {
	b = appendString(b, t.User)
	b = appendBytes(b, t.Hash)
	b = appendSeq(b, uint64(t.Created))
	b = appendSeq(b, uint64(t.LastUsed))
	return appendSeq(b, uint64(t.Expires))
}

func decodeToken(id string, v []byte) (plugins.Token, error) {
	r := reader{b: v}
	t := plugins.Token{ID: id, User: r.string()}
	t.Hash = append([]byte{}, r.bytes()...)
	if r.err != nil || len(r.b) != 24 {
		return plugins.Token{}, fmt.Errorf("token record: %w", errCorrupt)
	}
	t.Created = int64(seqSuffix(r.b[:8]))
	t.LastUsed = int64(seqSuffix(r.b[8:16]))
	t.Expires = int64(seqSuffix(r.b[16:]))
	return t, nil
}

// userTokens reads user's tokens from r, most recently used first (by
// LastUsed, then Created, then id).
func userTokens(r pebble.Reader, user string) ([]plugins.Token, error) {
	prefix := lpPrefix(pTokenU, user)
	var ids []string
	if err := scan(r, prefix, func(k, _ []byte) error {
		ids = append(ids, string(k[len(prefix):]))
		return nil
	}); err != nil {
		return nil, err
	}
	ts := make([]plugins.Token, 0, len(ids))
	for _, id := range ids {
		v, err := get(r, key(pToken, id))
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, fmt.Errorf("token %q of %q: missing", id, user)
		}
		t, err := decodeToken(id, v)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b plugins.Token) int {
		return cmp.Or(cmp.Compare(b.LastUsed, a.LastUsed), cmp.Compare(b.Created, a.Created), cmp.Compare(a.ID, b.ID))
	})
	return ts, nil
}

func delToken(b *pebble.Batch, t plugins.Token) error {
	if err := b.Delete(key(pToken, t.ID), nil); err != nil {
		return err
	}
	return b.Delete(key(pTokenU, t.User, t.ID), nil)
}

// dropUserTokens adds to b the removal of user's tokens: those whose ids
// are listed, or all when ids is nil. It returns how many. The caller
// holds s.wmu.
func (s *Store) dropUserTokens(b *pebble.Batch, user string, ids map[string]bool) (int64, error) {
	ts, err := userTokens(s.db, user)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range ts {
		if ids != nil && !ids[t.ID] {
			continue
		}
		if err := delToken(b, t); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// AddToken implements plugins.Tokens: in one batch, durable like Write, it
// checks that t.User is live (ErrUnknownUser), stores t (ErrTokenExists
// when its id is taken, by any user), then removes the user's least
// recently used tokens other than t until keep are left, t included.
// With keep <= 0 none is left, t neither.
func (s *Store) AddToken(ctx context.Context, t plugins.Token, keep int) error {
	return s.writing(ctx, "add token", func(b *pebble.Batch, _ *delta) error {
		if err := s.live(t.User); err != nil {
			return err
		}
		taken, err := has(s.db, key(pToken, t.ID))
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("token %q: %w", t.ID, plugins.ErrTokenExists)
		}
		others, err := userTokens(s.db, t.User)
		if err != nil {
			return err
		}
		if keep <= 0 {
			for _, o := range others {
				if err := delToken(b, o); err != nil {
					return err
				}
			}
			// t is not stored; the batch may be empty: AddToken of an
			// id that is free, with keep 0, stores nothing.
			return nil
		}
		if err := b.Set(key(pToken, t.ID), appendToken(nil, t), nil); err != nil {
			return err
		}
		if err := b.Set(key(pTokenU, t.User, t.ID), nil, nil); err != nil {
			return err
		}
		// Most recently used first; among equals the larger id first, as
		// sqlitestore trims.
		slices.SortStableFunc(others, func(a, b plugins.Token) int {
			return cmp.Or(cmp.Compare(b.LastUsed, a.LastUsed), cmp.Compare(b.Created, a.Created), cmp.Compare(b.ID, a.ID))
		})
		for i, o := range others {
			if i >= keep-1 {
				if err := delToken(b, o); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Token implements plugins.Tokens.
func (s *Store) Token(_ context.Context, id string) (plugins.Token, error) {
	v, done, err := s.acquire("token")
	if err != nil {
		return plugins.Token{}, err
	}
	defer done()
	val, err := get(v.snap, key(pToken, id))
	if err != nil {
		return plugins.Token{}, fmt.Errorf("pebblestore: token %q: %w", id, err)
	}
	if val == nil {
		return plugins.Token{}, fmt.Errorf("pebblestore: token %q: %w", id, plugins.ErrNoToken)
	}
	t, err := decodeToken(id, val)
	if err != nil {
		return plugins.Token{}, fmt.Errorf("pebblestore: token %q: %w", id, err)
	}
	return t, nil
}

// TouchTokens implements plugins.Tokens: one batch, committed without
// fsync (a lost touch only makes a token look idle since an earlier use).
func (s *Store) TouchTokens(ctx context.Context, uses []plugins.TokenUse) error {
	if len(uses) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writable(ctx); err != nil {
		return fmt.Errorf("pebblestore: touch tokens: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	touched := make(map[string]plugins.Token)
	for i, u := range uses {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("pebblestore: touch tokens: %w", err)
			}
		}
		t, ok := touched[u.ID]
		if !ok {
			v, err := get(s.db, key(pToken, u.ID))
			if err != nil {
				return fmt.Errorf("pebblestore: touch tokens: %w", err)
			}
			if v == nil {
				continue
			}
			if t, err = decodeToken(u.ID, v); err != nil {
				return fmt.Errorf("pebblestore: touch tokens: %w", err)
			}
		}
		if u.TS <= t.LastUsed {
			continue
		}
		t.LastUsed = u.TS
		touched[u.ID] = t
	}
	for id, t := range touched {
		if err := b.Set(key(pToken, id), appendToken(nil, t), nil); err != nil {
			return fmt.Errorf("pebblestore: touch tokens: %w", err)
		}
	}
	if b.Empty() {
		return nil
	}
	if _, err := s.commit(ctx, b, pebble.NoSync, nil); err != nil {
		return fmt.Errorf("pebblestore: touch tokens: commit: %w", err)
	}
	return nil
}

// UserTokens implements plugins.Tokens.
func (s *Store) UserTokens(_ context.Context, user string) ([]plugins.Token, error) {
	v, done, err := s.acquire("user tokens")
	if err != nil {
		return nil, err
	}
	defer done()
	ts, err := userTokens(v.snap, user)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: user tokens: %w", err)
	}
	return ts, nil
}

// RevokeTokens implements plugins.Tokens: one batch, durable like Write.
func (s *Store) RevokeTokens(ctx context.Context, user string, ids []string) (n int64, err error) {
	var set map[string]bool
	if len(ids) > 0 {
		set = make(map[string]bool, len(ids))
		for _, id := range ids {
			set[id] = true
		}
	}
	err = s.writing(ctx, "revoke tokens", func(b *pebble.Batch, _ *delta) error {
		var err error
		n, err = s.dropUserTokens(b, user, set)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PurgeTokens implements plugins.Tokens: one batch, durable like Write,
// after a scan of every token.
func (s *Store) PurgeTokens(ctx context.Context, now, idleBefore int64) (n int64, err error) {
	err = s.writing(ctx, "purge tokens", func(b *pebble.Batch, _ *delta) error {
		n = 0
		return scan(s.db, []byte{pToken}, func(k, v []byte) error {
			t, err := decodeToken(string(k[1:]), v)
			if err != nil {
				return err
			}
			if t.Expires <= now || t.LastUsed <= idleBefore {
				n++
				return delToken(b, t)
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
