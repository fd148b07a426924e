package pebblestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/qqchat/qq/plugins"
)

var _ plugins.Social = (*Store)(nil)

// errSelf is the error of a friend request or block aimed at oneself
// (qqd refuses those before they reach the storage).
var errSelf = errors.New("a user cannot befriend or block themselves")

// requestRecord is the value of r<lp from><to>: a pending friend request.
// Seq orders requests made in the same millisecond.
type requestRecord struct {
	Note string
	TS   int64
	Seq  uint64
}

func (r requestRecord) append(b []byte) []byte {
	b = appendString(b, r.Note)
	b = appendSeq(b, uint64(r.TS))
	return appendSeq(b, r.Seq)
}

func decodeRequest(v []byte) (requestRecord, error) {
	r := reader{b: v}
	note := r.string()
	if r.err != nil || len(r.b) != 16 {
		return requestRecord{}, fmt.Errorf("friend request record: %w", errCorrupt)
	}
	return requestRecord{Note: note, TS: int64(seqSuffix(r.b[:8])), Seq: seqSuffix(r.b[8:])}, nil
}

// relation reads how a stands to b in r.
func relation(r pebble.Reader, a, b string) (plugins.Relation, error) {
	var rel plugins.Relation
	for _, c := range []struct {
		k   []byte
		out *bool
	}{
		{key(pFriend, a, b), &rel.Friends},
		{key(pBlock, a, b), &rel.Blocks},
		{key(pBlock, b, a), &rel.BlockedBy},
		{key(pRequest, a, b), &rel.RequestOut},
		{key(pRequest, b, a), &rel.RequestIn},
	} {
		ok, err := has(r, c.k)
		if err != nil {
			return plugins.Relation{}, err
		}
		*c.out = ok
	}
	return rel, nil
}

// Batch edits of the social keys; each keeps both keys of a pair.

func delRequest(b *pebble.Batch, from, to string) error {
	if err := b.Delete(key(pRequest, from, to), nil); err != nil {
		return err
	}
	return b.Delete(key(pRequestR, to, from), nil)
}

func addFriends(b *pebble.Batch, a, c string, since int64) error {
	if err := b.Set(key(pFriend, a, c), i64(since), nil); err != nil {
		return err
	}
	return b.Set(key(pFriend, c, a), i64(since), nil)
}

func delFriends(b *pebble.Batch, a, c string) error {
	if err := b.Delete(key(pFriend, a, c), nil); err != nil {
		return err
	}
	return b.Delete(key(pFriend, c, a), nil)
}

func delBlock(b *pebble.Batch, blocker, blocked string) error {
	if err := b.Delete(key(pBlock, blocker, blocked), nil); err != nil {
		return err
	}
	return b.Delete(key(pBlockR, blocked, blocker), nil)
}

// RequestFriend implements plugins.Social. Besides ErrUnknownUser for an
// unknown or deleted to (or from) and ErrBlocked, a request to oneself is
// an error.
func (s *Store) RequestFriend(ctx context.Context, from, to, note string, ts int64) (became bool, err error) {
	err = s.writing(ctx, "request friend", func(b *pebble.Batch, _ *delta) error {
		became = false
		if err := s.live(to, from); err != nil {
			return err
		}
		if from == to {
			return errSelf
		}
		rel, err := relation(s.db, from, to)
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
			if err := delRequest(b, to, from); err != nil {
				return err
			}
			became = true
			return addFriends(b, from, to, ts)
		}
		// A new request, or a repeated one (a new seq: it moves to the
		// end). The seq advances even if the commit fails.
		s.reqSeq++
		if err := b.Set(key(pRequest, from, to), requestRecord{Note: note, TS: ts, Seq: s.reqSeq}.append(nil), nil); err != nil {
			return err
		}
		return b.Set(key(pRequestR, to, from), nil, nil)
	})
	return became, err
}

// AnswerFriendRequest implements plugins.Social.
func (s *Store) AnswerFriendRequest(ctx context.Context, user, from string, accept bool, ts int64) error {
	return s.writing(ctx, "answer friend request", func(b *pebble.Batch, _ *delta) error {
		ok, err := has(s.db, key(pRequest, from, user))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("from %q to %q: %w", from, user, plugins.ErrNoRequest)
		}
		if err := delRequest(b, from, user); err != nil {
			return err
		}
		if !accept {
			return nil
		}
		// A pending request means both are live and neither blocks the
		// other: DeleteUser and Block drop requests.
		return addFriends(b, user, from, ts)
	})
}

// CancelFriendRequest implements plugins.Social.
func (s *Store) CancelFriendRequest(ctx context.Context, from, to string) error {
	return s.writing(ctx, "cancel friend request", func(b *pebble.Batch, _ *delta) error {
		ok, err := has(s.db, key(pRequest, from, to))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("from %q to %q: %w", from, to, plugins.ErrNoRequest)
		}
		return delRequest(b, from, to)
	})
}

// RemoveFriend implements plugins.Social.
func (s *Store) RemoveFriend(ctx context.Context, user, friend string) error {
	return s.writing(ctx, "remove friend", func(b *pebble.Batch, _ *delta) error {
		ok, err := has(s.db, key(pFriend, user, friend))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%q and %q: %w", user, friend, plugins.ErrNotFriends)
		}
		return delFriends(b, user, friend)
	})
}

// Block implements plugins.Social. Besides ErrUnknownUser for an unknown
// or deleted target (or user), blocking oneself is an error.
func (s *Store) Block(ctx context.Context, user, target string, ts int64) error {
	return s.writing(ctx, "block", func(b *pebble.Batch, _ *delta) error {
		if err := s.live(target, user); err != nil {
			return err
		}
		if user == target {
			return errSelf
		}
		ok, err := has(s.db, key(pBlock, user, target))
		if err != nil {
			return err
		}
		// Before the commit: from here on, messages to user are checked.
		s.blockers[user] = struct{}{}
		if !ok { // a repeated block keeps the first
			if err := b.Set(key(pBlock, user, target), i64(ts), nil); err != nil {
				return err
			}
			if err := b.Set(key(pBlockR, target, user), nil, nil); err != nil {
				return err
			}
		}
		if err := delFriends(b, user, target); err != nil {
			return err
		}
		if err := delRequest(b, user, target); err != nil {
			return err
		}
		return delRequest(b, target, user)
	})
}

// Unblock implements plugins.Social.
func (s *Store) Unblock(ctx context.Context, user, target string) error {
	return s.writing(ctx, "unblock", func(b *pebble.Batch, _ *delta) error {
		ok, err := has(s.db, key(pBlock, user, target))
		if err != nil || !ok {
			return err
		}
		return delBlock(b, user, target)
	})
}

// dropSocial adds to b the removal of every friendship, request and block
// of user, both ways. The caller holds s.wmu.
func (s *Store) dropSocial(b *pebble.Batch, user string) error {
	type pair struct {
		prefix byte
		drop   func(other string) error
	}
	for _, p := range []pair{
		{pFriend, func(o string) error { return delFriends(b, user, o) }},
		{pRequest, func(o string) error { return delRequest(b, user, o) }},
		{pRequestR, func(o string) error { return delRequest(b, o, user) }},
		{pBlock, func(o string) error { return delBlock(b, user, o) }},
		{pBlockR, func(o string) error { return delBlock(b, o, user) }},
	} {
		prefix := lpPrefix(p.prefix, user)
		var others []string
		if err := scan(s.db, prefix, func(k, _ []byte) error {
			others = append(others, string(k[len(prefix):]))
			return nil
		}); err != nil {
			return err
		}
		for _, o := range others {
			if err := p.drop(o); err != nil {
				return err
			}
		}
	}
	return nil
}

// Friends implements plugins.Social, on one read view: friends sorted by
// name, requests oldest first.
func (s *Store) Friends(_ context.Context, user string) (plugins.FriendList, error) {
	var l plugins.FriendList
	v, done, err := s.acquire("friends")
	if err != nil {
		return l, err
	}
	defer done()
	prefix := lpPrefix(pFriend, user)
	if err := scan(v.snap, prefix, func(k, val []byte) error {
		since, err := decodeI64(val)
		if err != nil {
			return err
		}
		l.Friends = append(l.Friends, plugins.Friend{User: string(k[len(prefix):]), Since: since})
		return nil
	}); err != nil {
		return plugins.FriendList{}, fmt.Errorf("pebblestore: friends: %w", err)
	}
	type req struct {
		r   plugins.FriendRequest
		seq uint64
	}
	var out, in []req
	prefix = lpPrefix(pRequest, user)
	if err := scan(v.snap, prefix, func(k, val []byte) error {
		rec, err := decodeRequest(val)
		if err != nil {
			return err
		}
		out = append(out, req{plugins.FriendRequest{From: user, To: string(k[len(prefix):]), Note: rec.Note, TS: rec.TS}, rec.Seq})
		return nil
	}); err != nil {
		return plugins.FriendList{}, fmt.Errorf("pebblestore: friends: %w", err)
	}
	prefix = lpPrefix(pRequestR, user)
	var senders []string
	if err := scan(v.snap, prefix, func(k, _ []byte) error {
		senders = append(senders, string(k[len(prefix):]))
		return nil
	}); err != nil {
		return plugins.FriendList{}, fmt.Errorf("pebblestore: friends: %w", err)
	}
	for _, from := range senders {
		val, err := get(v.snap, key(pRequest, from, user))
		if err != nil {
			return plugins.FriendList{}, fmt.Errorf("pebblestore: friends: %w", err)
		}
		if val == nil {
			continue
		}
		rec, err := decodeRequest(val)
		if err != nil {
			return plugins.FriendList{}, fmt.Errorf("pebblestore: friends: %w", err)
		}
		in = append(in, req{plugins.FriendRequest{From: from, To: user, Note: rec.Note, TS: rec.TS}, rec.Seq})
	}
	byAge := func(a, b req) int { return cmp.Or(cmp.Compare(a.r.TS, b.r.TS), cmp.Compare(a.seq, b.seq)) }
	slices.SortFunc(out, byAge)
	slices.SortFunc(in, byAge)
	for _, r := range in {
		l.Incoming = append(l.Incoming, r.r)
	}
	for _, r := range out {
		l.Outgoing = append(l.Outgoing, r.r)
	}
	return l, nil
}

// Blocks implements plugins.Social.
func (s *Store) Blocks(_ context.Context, user string) ([]string, error) {
	v, done, err := s.acquire("blocks")
	if err != nil {
		return nil, err
	}
	defer done()
	var users []string
	prefix := lpPrefix(pBlock, user)
	if err := scan(v.snap, prefix, func(k, _ []byte) error {
		users = append(users, string(k[len(prefix):]))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("pebblestore: blocks: %w", err)
	}
	return users, nil
}

// Relation implements plugins.Social.
func (s *Store) Relation(_ context.Context, a, b string) (plugins.Relation, error) {
	v, done, err := s.acquire("relation")
	if err != nil {
		return plugins.Relation{}, err
	}
	defer done()
	rel, err := relation(v.snap, a, b)
	if err != nil {
		return plugins.Relation{}, fmt.Errorf("pebblestore: relation: %w", err)
	}
	return rel, nil
}
