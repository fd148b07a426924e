package plugins

import (
	"context"
	"errors"

	"github.com/qqchat/qq/daemon/protocol"
)

// Errors a Storage returns. Callers test them with errors.Is.
var (
	// ErrUserExists is returned by CreateUser when the name is taken (a
	// deleted account's name stays taken).
	ErrUserExists = errors.New("user exists")
	// ErrUnknownUser means a named user is not registered (never was, or
	// was deleted). It is returned by PasswordHash, History,
	// SetPasswordHash and DeleteUser, and set per message in AppendResult.
	ErrUnknownUser = errors.New("unknown user")
	// ErrBadCursor is returned by History when before is not the id of a
	// message in the conversation.
	ErrBadCursor = errors.New("cursor is not a message of this conversation")
)

// WriteError is the error of a Write that failed as a whole. MaybeWritten
// is false when the storage knows that nothing of the batch was stored (the
// transaction rolled back or never began); true when it cannot know (for
// example a deadline expired while a commit was under way).
type WriteError struct {
	MaybeWritten bool
	Err          error
}

func (e *WriteError) Error() string {
	if e.MaybeWritten {
		return "storage write (outcome unknown): " + e.Err.Error()
	}
	return "storage write (nothing stored): " + e.Err.Error()
}

func (e *WriteError) Unwrap() error { return e.Err }

// NewMessage is a message to append.
type NewMessage struct {
	From string
	To   string
	Body string
	// CID is the sender's idempotency key, or empty. A message whose
	// (From, CID) was stored within the de-duplication window is not
	// stored again: its result carries the first message and Duplicate.
	CID string
	// Status is what the ok to the send reports: sent when the recipient
	// was online at acceptance. It is stored so a cid retry returns it.
	Status protocol.Status
	// FriendsOnly stores the message only if From and To are friends
	// (AppendResult.Err ErrNotFriends otherwise); a message to oneself
	// passes. Only a storage with Social honours it; qqd sets it only for
	// such a storage (a plugin of protocol version 1 never sees it).
	FriendsOnly bool
}

// AppendResult is the outcome for one NewMessage of a batch, at the same
// index.
type AppendResult struct {
	// Message is the stored message with its id and timestamp assigned by
	// the storage. For a duplicate, it is the first message.
	Message protocol.Message
	// Status is the stored status (the first send's, for a duplicate).
	Status protocol.Status
	// Duplicate is set when (From, CID) matched an earlier message.
	Duplicate bool
	// Err is set when the message was not stored: ErrUnknownUser when
	// From or To is not a live user; for a storage with Social, then
	// ErrBlocked when To blocks From, then ErrNotFriends when the message
	// is FriendsOnly and they are not friends. nil otherwise (also for a
	// Duplicate, whatever the users' relation is now). For a group
	// message: ErrNoGroup, ErrNotMember, ErrMuted or ErrNotAllowed (see
	// Groups).
	Err error
	// Group is set for a group message (WriteBatch.GroupMessages, and
	// LookupCIDs of a group message's cid): its stored entry. Message and
	// Status are then zero.
	Group *GroupEntry
}

// CIDKey names a message by its sender's idempotency key.
type CIDKey struct {
	From string
	CID  string
}

// Ack settles messages pending for User. Ids that are not pending for User
// are ignored.
type Ack struct {
	User   string
	MsgIDs []string
}

// WriteBatch is everything Write stores in one transaction.
type WriteBatch struct {
	Messages []NewMessage
	Acks     []Ack
	// GroupMessages and GroupAcks are for a storage with Groups only
	// (the host sends none to another); GroupLimits apply to the group
	// messages (MaxMentions).
	GroupMessages []NewGroupMessage
	GroupAcks     []GroupAck
	GroupLimits   GroupLimits
}

// Storage keeps accounts, history and the pending (unacknowledged) messages
// of every user. Implementations are safe for concurrent use.
//
// Deleted accounts: after DeleteUser, the name is unknown to PasswordHash,
// Write (as From or To), SetPasswordHash and DeleteUser, and CountUsers no
// longer counts it; but the name stays taken (CreateUser returns
// ErrUserExists), so that no new account ever inherits the old one's
// conversations or de-duplication keys, and History with the deleted name
// still returns the conversation (the other side keeps its history).
//
// Ordering: Write assigns each stored message a position in one total
// order (the acceptance order); within a batch, messages are stored in
// slice order. History and Pending return messages in that order, and the
// timestamps a storage assigns never decrease along it, across restarts
// too.
//
// docs/plugins.md ("Writing a storage plugin") lists what else qqd and its
// clients rely on: the form of message ids, de-duplication and its window,
// MaybeWritten, the counts on every metrics scrape, the order of
// overlapping Writes. Package sqlitestore is the reference implementation.
type Storage interface {
	// CreateUser stores a new account with its password hash (an opaque
	// string to the storage). ErrUserExists if the name is taken, by a
	// live or a deleted account.
	CreateUser(ctx context.Context, user, passwordHash string) error
	// PasswordHash returns the stored hash of user, or ErrUnknownUser.
	PasswordHash(ctx context.Context, user string) (string, error)
	// SetPasswordHash replaces user's password hash. ErrUnknownUser if the
	// user does not exist.
	SetPasswordHash(ctx context.Context, user, passwordHash string) error
	// DeleteUser removes an account: the user can no longer log in or be
	// sent to, and the messages pending for them are dropped (they can
	// never be fetched). History rows stay, so the other side of each
	// conversation keeps its history. ErrUnknownUser if the user does not
	// exist. Returns how many pending messages were dropped. The name is
	// not freed: see "Deleted accounts" above.
	DeleteUser(ctx context.Context, user string) (droppedPending int64, err error)
	// CountUsers returns how many accounts exist (deleted ones excluded).
	CountUsers(ctx context.Context) (int64, error)
	// CountPending returns how many messages are pending (not yet acked) over all users.
	CountPending(ctx context.Context) (int64, error)

	// Write stores the batch's messages and applies its acks in one
	// durable transaction: when it returns without error, everything is
	// committed as the storage's sync policy promises (fsync by default).
	// The results are in the order of b.Messages. A failed Write returns
	// a *WriteError.
	// With Groups, one result per b.GroupMessages follows, in order.
	Write(ctx context.Context, b *WriteBatch) ([]AppendResult, error)

	// LookupCIDs returns, for each key, the message stored under that
	// (From, CID) within the de-duplication window: a result with
	// Duplicate set, as Write would return it for a retry. Keys with no
	// such message get a zero AppendResult. The host calls it before the
	// filter chain, so that a retry is answered with the first send's
	// outcome and is not filtered again.
	LookupCIDs(ctx context.Context, keys []CIDKey) ([]AppendResult, error)

	// PendingCount returns how many messages are pending for user.
	PendingCount(ctx context.Context, user string) (int64, error)
	// Pending returns up to limit of the oldest messages pending for user,
	// oldest first, and whether more are pending beyond them.
	Pending(ctx context.Context, user string, limit int) ([]protocol.Message, bool, error)
	// History returns up to limit messages of the conversation between
	// user and with (both directions), oldest first: the page just before
	// the message with id before, or the newest page when before is empty.
	// more reports whether older messages exist. ErrUnknownUser when with
	// was never registered (a deleted account's conversations stay
	// readable); ErrBadCursor when before is not in the conversation.
	History(ctx context.Context, user, with, before string, limit int) (msgs []protocol.Message, more bool, err error)

	// Close releases the storage. Calls after Close fail.
	Close() error
}
