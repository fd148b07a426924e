package plugins

import (
	"context"
	"errors"
)

// Errors of Social and of Write (AppendResult.Err). Callers test them with
// errors.Is; they cross the plugin process boundary like the others.
var (
	// ErrBlocked is returned by RequestFriend when either user blocks the
	// other, and set in AppendResult.Err for a message whose recipient
	// blocks its sender (the message is not stored).
	ErrBlocked = errors.New("blocked")
	// ErrNotFriends is returned by RemoveFriend when the two are not
	// friends, and set in AppendResult.Err for a FriendsOnly message
	// between users who are not friends (the message is not stored).
	ErrNotFriends = errors.New("not friends")
	// ErrNoRequest is returned by AnswerFriendRequest and
	// CancelFriendRequest when there is no such pending friend request,
	// and by Groups.GroupOp (approve, reject) when there is no such
	// pending request to join.
	ErrNoRequest = errors.New("no such request")
)

// FriendRequest is a pending friend request.
type FriendRequest struct {
	From, To, Note string
	TS             int64 // ms since the epoch, when it was (last) made
}

// Friend is one side of a friendship.
type Friend struct {
	User  string
	Since int64 // ms since the epoch
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
// and blocks. A storage that implements it (sqlitestore does) has the
// friends features; find it with SocialOf, not with a type assertion.
//
// Such a storage also applies two checks in Write (see NewMessage): a
// message whose recipient blocks its sender gets AppendResult.Err
// ErrBlocked, and a FriendsOnly message between users who are not
// friends gets ErrNotFriends; neither is stored. A retry of a stored
// message (its (From, CID) seen before) is a Duplicate as always,
// whatever the relation is now.
//
// Deleted accounts: their friendships, requests and blocks (both ways) are
// dropped by DeleteUser, so a deleted user is no one's friend and blocks
// no one. Users are named as everywhere in Storage; the storage compares
// names byte-wise. Every method is safe for concurrent use with every
// other method of the Storage.
type Social interface {
	// RequestFriend records a request from -> to with note at ts. If to
	// had asked from, they become friends instead (becameFriends true,
	// since = ts, both requests gone); if they are friends already,
	// becameFriends is true and nothing changes. A repeated request
	// replaces the note and ts (and so moves to the end of the oldest-first
	// order). Errors: ErrUnknownUser (to is not a live user), ErrBlocked
	// (either blocks the other).
	RequestFriend(ctx context.Context, from, to, note string, ts int64) (becameFriends bool, err error)
	// AnswerFriendRequest accepts (friends since ts) or declines from's
	// request to user; either way the request is gone. ErrNoRequest if
	// there is none.
	AnswerFriendRequest(ctx context.Context, user, from string, accept bool, ts int64) error
	// CancelFriendRequest withdraws from's request to to. ErrNoRequest if
	// none.
	CancelFriendRequest(ctx context.Context, from, to string) error
	// RemoveFriend ends the friendship of user and friend, for both.
	// ErrNotFriends if none.
	RemoveFriend(ctx context.Context, user, friend string) error
	// Friends lists user's friends and pending requests (empty for an
	// unknown user).
	Friends(ctx context.Context, user string) (FriendList, error)
	// Block makes user block target (idempotent: a repeated Block keeps
	// the first), ending their friendship and requests in both directions.
	// ErrUnknownUser if target is not a live user.
	Block(ctx context.Context, user, target string, ts int64) error
	// Unblock lifts user's block of target (no error if there was none).
	Unblock(ctx context.Context, user, target string) error
	// Blocks lists whom user blocks, sorted.
	Blocks(ctx context.Context, user string) ([]string, error)
	// Relation says how a stands to b (zero for unknown users).
	Relation(ctx context.Context, a, b string) (Relation, error)
}

// SocialOf returns the Social part of s, if it has one. A wrapper (the
// supervised plugin client, an instrumented storage) implements
//
//	interface{ Social() (Social, bool) }
//
// to say whether what it wraps has it; SocialOf asks that first. Otherwise
// s has it when it implements Social itself (an in-process storage). A
// storage in a plugin process has it when the process negotiated protocol
// version 2 and its storage implements Social; under a Supervisor the
// answer follows the process in service (see Supervisor.Storage).
func SocialOf(s Storage) (Social, bool) {
	if w, ok := s.(interface{ Social() (Social, bool) }); ok {
		return w.Social()
	}
	soc, ok := s.(Social)
	return soc, ok
}
