package plugins

import (
	"context"
	"errors"
)

// Errors of the social part of a storage (errors.Is).
var (
	ErrBlocked    = errors.New("blocked")
	ErrNotFriends = errors.New("not friends")
	ErrNoRequest  = errors.New("no such friend request")
)

// FriendRequest is a pending friend request.
type FriendRequest struct {
	From, To, Note string
	TS             int64 // ms since the epoch, when it was (last) made
}

// Friend is one side of a friendship.
type Friend struct {
	User  string
	Since int64 // ms
}

// FriendList is a user's friends (sorted by name) and pending requests
// (oldest first).
type FriendList struct {
	Friends  []Friend
	Incoming []FriendRequest // to the user
	Outgoing []FriendRequest // from the user
}

// Relation is how user a stands to user b.
type Relation struct {
	Friends    bool
	Blocks     bool // a blocks b
	BlockedBy  bool // b blocks a
	RequestOut bool // a asked b
	RequestIn  bool // b asked a
}

// Social is the part of a Storage that keeps friendships, friend requests
// and blocks.
type Social interface {
	RequestFriend(ctx context.Context, from, to, note string, ts int64) (becameFriends bool, err error)
	AnswerFriendRequest(ctx context.Context, user, from string, accept bool, ts int64) error
	CancelFriendRequest(ctx context.Context, from, to string) error
	RemoveFriend(ctx context.Context, user, friend string) error
	Friends(ctx context.Context, user string) (FriendList, error)
	Block(ctx context.Context, user, target string, ts int64) error
	Unblock(ctx context.Context, user, target string) error
	Blocks(ctx context.Context, user string) ([]string, error)
	Relation(ctx context.Context, a, b string) (Relation, error)
}

// SocialOf returns the Social side of s, if it has one.
func SocialOf(s Storage) (Social, bool) {
	if w, ok := s.(interface{ Social() (Social, bool) }); ok {
		return w.Social()
	}
	so, ok := s.(Social)
	return so, ok
}
