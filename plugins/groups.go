package plugins

import (
	"context"
	"errors"
)

// Errors of Groups and of Write's group messages (GroupResult.Err).
// Callers test them with errors.Is; they cross the plugin process
// boundary like the others.
var (
	// ErrNoGroup: no such group, or it was dissolved.
	ErrNoGroup = errors.New("no such group")
	// ErrNotMember: the user is not a member of the group.
	ErrNotMember = errors.New("not a member of the group")
	// ErrNotAllowed: the user's role does not allow the operation (or the
	// group's join policy does not).
	ErrNotAllowed = errors.New("not allowed in this group")
	// ErrMuted: the member is muted, or the group is muted for everyone
	// but admins.
	ErrMuted = errors.New("muted in this group")
	// ErrGroupFull: the group has GroupLimits.MaxMembers members.
	ErrGroupFull = errors.New("the group is full")
	// ErrAlreadyMember: the user is a member already.
	ErrAlreadyMember = errors.New("already a member of the group")
	// ErrGroupLimit: the user owns or belongs to as many groups as
	// GroupLimits allows.
	ErrGroupLimit = errors.New("too many groups")
)

// GroupPolicy says how users join a group.
type GroupPolicy string

// Join policies.
const (
	PolicyOpen     GroupPolicy = "open"     // anyone may join
	PolicyApproval GroupPolicy = "approval" // a request, approved by an admin
	PolicyInvite   GroupPolicy = "invite"   // only by an admin's invitation
)

// GroupHistory says which log entries a member sees.
type GroupHistory string

// History visibilities.
const (
	HistoryJoined GroupHistory = "joined" // from their joined entry on
	HistoryShared GroupHistory = "shared" // the whole log
)

// GroupRole is a member's role.
type GroupRole string

// Roles.
const (
	RoleOwner  GroupRole = "owner"
	RoleAdmin  GroupRole = "admin"
	RoleMember GroupRole = "member"
)

// EntryKind is the kind of a group log entry.
type EntryKind string

// Entry kinds. Every message and every change of membership or settings
// is an entry.
const (
	EntryMsg       EntryKind = "msg"       // From, Body, Mentions
	EntryCreated   EntryKind = "created"   // Actor (the owner), Name
	EntryJoined    EntryKind = "joined"    // Target; Actor approved or invited (Target for an open join)
	EntryLeft      EntryKind = "left"      // Target
	EntryKicked    EntryKind = "kicked"    // Actor, Target
	EntryRole      EntryKind = "role"      // Actor, Target, Role (admin or member)
	EntryOwner     EntryKind = "owner"     // Actor (old owner), Target (new owner)
	EntryRenamed   EntryKind = "renamed"   // Actor, Name
	EntryMuted     EntryKind = "muted"     // Actor, Target, Until (ms; 0: unmuted)
	EntryMuteAll   EntryKind = "mute_all"  // Actor, On
	EntrySettings  EntryKind = "settings"  // Actor, Policy, History
	EntryDissolved EntryKind = "dissolved" // Actor
)

// GroupEntry is one entry of a group's log.
type GroupEntry struct {
	Group int64
	// Seq is the entry's place in the group's log: 1 for the creation,
	// then contiguous.
	Seq  int64
	Kind EntryKind
	TS   int64 // ms since the epoch; never decreases along the log
	// By kind (see EntryKind).
	From, Body    string
	Mentions      []string // user names, or "all"
	Actor, Target string
	Name          string
	Role          GroupRole
	Until         int64
	On            bool
	Policy        GroupPolicy
	History       GroupHistory
	MsgID         string // msg entries: a message id of the same form as direct messages'
	CID           string // msg entries: the sender's idempotency key, if any
}

// GroupInfo describes a group.
type GroupInfo struct {
	ID        int64
	Name      string
	Owner     string
	Policy    GroupPolicy
	History   GroupHistory
	MuteAll   bool
	Members   int
	LastSeq   int64
	Dissolved bool
}

// Member is a member of a group.
type Member struct {
	User       string
	Role       GroupRole
	JoinSeq    int64 // the seq of their joined (or created) entry
	MutedUntil int64 // ms; 0: not muted
}

// UserGroup is a group in a user's listing, with their read position.
type UserGroup struct {
	GroupInfo
	Role    GroupRole
	JoinSeq int64
	ReadSeq int64 // the cursor: everything up to it is read
	// Unread counts the entries after ReadSeq the user may see;
	// Mentions the msg entries among them that mention the user or all.
	Unread, Mentions int64
}

// JoinRequest is a pending request to join an approval group.
type JoinRequest struct {
	User string
	TS   int64
}

// GroupLimits are qq.yaml's group limits, passed with each call that
// can pass one (CreateGroup, GroupOp, and Write in WriteBatch.GroupLimits).
// A limit of zero (or less) is no limit.
type GroupLimits struct {
	MaxMembers  int // members per group: ErrGroupFull
	MaxOwned    int // live groups a user owns: ErrGroupLimit
	MaxJoined   int // live groups a user belongs to: ErrGroupLimit
	MaxMentions int // entries of NewGroupMessage.Mentions: ErrNotAllowed
}

// GroupOpKind is what a GroupOp does. Actor is who asks; the storage checks the actor's rights
// in the same transaction as the change:
//   - join: Actor joins (open: joined; approval: a request is stored and
//     GroupOpResult reports Requested; invite: ErrNotAllowed)
//   - invite: Actor (admin or owner) adds Target
//   - approve, reject: Actor (admin or owner) answers Target's request
//     (ErrNoRequest when there is none)
//   - leave: Actor leaves (the owner must transfer first: ErrNotAllowed)
//   - kick: Actor removes Target (admins kick members; the owner kicks
//     anyone but themself)
//   - role: the owner makes Target Role (admin or member)
//   - transfer: the owner makes Target (a member) the owner, and becomes
//     an admin
//   - rename: an admin or the owner sets Name
//   - mute: an admin or the owner mutes Target (a member; admins only by
//     the owner) until Until (0 unmutes)
//   - mute_all: an admin or the owner sets On
//   - settings: the owner sets Policy and History
//   - dissolve: the owner dissolves the group (the last entry)
type GroupOpKind string

// Operations.
const (
	OpJoin     GroupOpKind = "join"
	OpInvite   GroupOpKind = "invite"
	OpApprove  GroupOpKind = "approve"
	OpReject   GroupOpKind = "reject"
	OpLeave    GroupOpKind = "leave"
	OpKick     GroupOpKind = "kick"
	OpRole     GroupOpKind = "role"
	OpTransfer GroupOpKind = "transfer"
	OpRename   GroupOpKind = "rename"
	OpMute     GroupOpKind = "mute"
	OpMuteAll  GroupOpKind = "mute_all"
	OpSettings GroupOpKind = "settings"
	OpDissolve GroupOpKind = "dissolve"
)

// GroupOp is one change of membership or settings. TS is the time of the
// change (ms); the entry gets TS, raised to the group's last entry's when
// that is later, so that timestamps never decrease along a log.
type GroupOp struct {
	Kind    GroupOpKind
	Group   int64
	Actor   string
	Target  string
	Role    GroupRole
	Name    string
	Until   int64
	On      bool
	Policy  GroupPolicy
	History GroupHistory
	TS      int64
	Limits  GroupLimits
}

// GroupOpResult is the outcome of a GroupOp: the entry it appended, or,
// for a join of an approval group, Requested (no entry; reject appends
// none either).
type GroupOpResult struct {
	Entry     *GroupEntry
	Requested bool
}

// NewGroupMessage is a group message to append with Write.
type NewGroupMessage struct {
	Group int64
	From  string
	Body  string
	// CID is the sender's idempotency key, or empty; it shares the key
	// space and the window of NewMessage.CID (see Groups).
	CID string
	// Mentions are user names, or "all" (admins and the owner only).
	// Names that are not members are kept in the entry but counted for
	// no one.
	Mentions []string
	// TS is the time of the send (ms), or 0 for the storage's clock; the
	// entry gets it raised to the group's last entry's TS when that is
	// later.
	TS int64
}

// GroupAck moves User's read cursor of Group forward to Seq (never
// back).
type GroupAck struct {
	User  string
	Group int64
	Seq   int64
}

// Groups is the part of a Storage that keeps groups, their logs and the
// members' read cursors. Find it with GroupsOf. Such a storage's Write
// also stores WriteBatch.GroupMessages (one AppendResult each, after the
// direct messages', with Group set) and applies WriteBatch.GroupAcks, in
// the same transaction: a group message costs one log entry and the
// mention counters of the users it mentions, never a row per member.
// A group message's cid shares the direct messages' key space and
// window: a (From, CID) names one message of either kind, so a retry
// returns the first one whatever its kind (a group message whose key was
// taken by a direct message is a Duplicate carrying that message, and the
// other way round), and LookupCIDs answers a group message's key with
// Group set. Sending advances the sender's own cursor to the new entry.
//
// The checks of a group message in Write, in order: ErrNoGroup (no such
// group, or dissolved), ErrNotMember (From is not a member), ErrMuted
// (From is muted at the entry's time, or the group is muted for all and
// From is a plain member), ErrNotAllowed ("all" among the mentions of a
// plain member, or more mentions than GroupLimits.MaxMentions). A
// refused message takes no seq and no cid; a retry of a stored one is a
// Duplicate whatever the checks say now.
//
// Cursors: a member's cursor starts just before their joined entry (so
// that entry is their first unread) and only moves forward: a GroupAck
// below it, or for a group the user is not a member of, changes nothing,
// and one beyond the log's end stops at the end. Unread counts the
// entries after the cursor; Mentions the msg entries among them that
// name the user or "all". Removal from a group (left, kicked) drops the
// cursor; joining again starts a new one.
//
// Deleted accounts: DeleteUser removes the user from every live group
// they belong to, appending a left entry to each, and drops their
// cursors and join requests. A group the user owns first passes to its
// longest-standing admin (the smallest JoinSeq), else to its
// longest-standing member (an owner entry, then the left entry), and is
// dissolved (a dissolved entry, by the user) when no one else is left.
// Limits do not apply to such a transfer.
//
// Dissolution: a dissolved group takes no more entries or members; its
// members are removed (at the dissolved entry) without entries of their
// own, and its pending join requests dropped. Its log stays readable by
// each of its former members, up to their removal. Group still
// describes it.
type Groups interface {
	// CreateGroup creates a group owned by owner, and its created entry
	// (seq 1), at ts. Errors: ErrUnknownUser (owner is not a live user),
	// ErrGroupLimit past limits.MaxOwned or MaxJoined. An empty policy or
	// history means PolicyApproval or HistoryJoined.
	CreateGroup(ctx context.Context, owner, name string, policy GroupPolicy, history GroupHistory, ts int64, limits GroupLimits) (GroupInfo, error)
	// Group describes a group; a dissolved one too (Dissolved set).
	// ErrNoGroup for an id that never was.
	Group(ctx context.Context, id int64) (GroupInfo, error)
	// UserGroups lists the live groups user belongs to, by id (none for
	// an unknown user).
	UserGroups(ctx context.Context, user string) ([]UserGroup, error)
	// Members lists members by name (byte-wise) after after, up to
	// limit, and whether more follow. ErrNoGroup for an id that never
	// was; a dissolved group has none.
	Members(ctx context.Context, id int64, after string, limit int) ([]Member, bool, error)
	// GroupOp applies op (see GroupOpKind). Errors: ErrNoGroup (no such
	// group, or dissolved), ErrUnknownUser (Target, or a joining Actor,
	// is not a live user), ErrNotMember (Actor, or the Target of kick,
	// role, transfer or mute, is not a member), ErrNotAllowed (the
	// Actor's role or the join policy does not allow it, or it aims at
	// the wrong member: the owner, oneself), ErrAlreadyMember (join,
	// invite), ErrNoRequest (approve, reject), ErrGroupFull
	// (limits.MaxMembers), ErrGroupLimit (the joining user's MaxJoined,
	// or the new owner's MaxOwned). A change that changes nothing (a role
	// the member has already, the same name) still appends its entry.
	GroupOp(ctx context.Context, op GroupOp) (GroupOpResult, error)
	// JoinRequests lists the pending requests to join, oldest first.
	// ErrNoGroup for an id that never was.
	JoinRequests(ctx context.Context, id int64) ([]JoinRequest, error)
	// Log returns the entries of group id that user may see (from their
	// join, or all with HistoryShared; not after their removal), in seq
	// order: with before 0, those with seq > after, up to limit
	// (catching up); with before > 0, the last limit entries with seq <
	// before (history, paging back). more reports entries the user may
	// see beyond the page in that direction. ErrNotMember when user is
	// not and never was a member (a removed member keeps their part of
	// the log; joining again shows it from the new joined entry on, or
	// all of it with HistoryShared); ErrNoGroup when there is no such
	// group.
	Log(ctx context.Context, id int64, user string, after, before int64, limit int) ([]GroupEntry, bool, error)
}

// GroupsOf returns the Groups side of s, if it has one (as SocialOf).
func GroupsOf(s Storage) (Groups, bool) {
	if w, ok := s.(interface{ Groups() (Groups, bool) }); ok {
		return w.Groups()
	}
	g, ok := s.(Groups)
	return g, ok
}
