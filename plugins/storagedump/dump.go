// Package storagedump is the store-neutral dump of everything a qq storage
// keeps: accounts, direct messages with their pending state, friends,
// requests and blocks, groups with their members, logs, cursors and join
// requests, and resume tokens. `qqd storage export` writes one, `qqd
// storage import` loads one into an empty store, and `qqd storage migrate`
// streams one store into another (SQLite to Pebble, or back) with nothing
// lost: ids, timestamps, order, cids, statuses and what is pending survive.
//
// A dump is a sequence of records, each with exactly one field set, in
// this order (an importer may rely on it):
//
//  1. one Header;
//  2. every User, live and deleted, by name;
//  3. every Message in acceptance order (the order of Storage.Write);
//  4. every Friend, FriendRequest and Block (FriendRequests in the order
//     they were made, which an importer keeps: it orders requests made in
//     the same millisecond);
//  5. per group, by id (dissolved groups too, so ids are never reused):
//     its Group, then its GroupMembers (past ones too), its GroupEntries
//     in seq order, its JoinRequests (in the order they were made, kept
//     as FriendRequests' is) and its GroupCursors;
//  6. every Token;
//  7. one Trailer with the counts, which an importer checks against what
//     it read, so that a truncated dump is refused, not half-loaded.
//
// On disk a dump is JSON lines (Encoder, Decoder): one record per line,
// greppable and readable by jq. Derived state (counts, unread and
// mention counters, de-duplication indexes, id sequences) is not dumped;
// an importer rebuilds it from the records.
package storagedump

import (
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// Format names this version of the dump; Header.Format carries it and a
// Decoder refuses any other.
const Format = "qq-dump/1"

// Record is one line of a dump: exactly one field is set.
type Record struct {
	Header        *Header        `json:"header,omitempty"`
	User          *User          `json:"user,omitempty"`
	Message       *Message       `json:"msg,omitempty"`
	Friend        *Friend        `json:"friend,omitempty"`
	FriendRequest *FriendRequest `json:"friend_request,omitempty"`
	Block         *Block         `json:"block,omitempty"`
	Group         *Group         `json:"group,omitempty"`
	GroupMember   *GroupMember   `json:"group_member,omitempty"`
	GroupEntry    *GroupEntry    `json:"group_entry,omitempty"`
	JoinRequest   *JoinRequest   `json:"join_request,omitempty"`
	GroupCursor   *GroupCursor   `json:"group_cursor,omitempty"`
	Token         *Token         `json:"token,omitempty"`
	Trailer       *Trailer       `json:"trailer,omitempty"`
}

// Header opens a dump.
type Header struct {
	Format  string `json:"format"`  // Format
	Source  string `json:"source"`  // the storage plugin it came from: "sqlite", "pebble"
	Created int64  `json:"created"` // unix ms
}

// User is an account. A deleted account keeps its name (it stays taken)
// and its conversations; its password hash may be empty.
type User struct {
	Name         string `json:"name"`
	PasswordHash string `json:"pw_hash"`
	Created      int64  `json:"created"`           // unix ms
	Deleted      int64  `json:"deleted,omitempty"` // unix ms; 0: live
}

// Message is a direct message as stored.
type Message struct {
	ID     string          `json:"id"`
	From   string          `json:"from"`
	To     string          `json:"to"`
	Body   string          `json:"body"`
	TS     int64           `json:"ts"` // unix ms
	CID    string          `json:"cid,omitempty"`
	Status protocol.Status `json:"status"`
	// Pending: not yet acknowledged by To (and To is live).
	Pending bool `json:"pending,omitempty"`
}

// Friend is one direction of a friendship: Owner lists Friend since
// Since. A friendship is two records, one per side.
type Friend struct {
	Owner  string `json:"owner"`
	Friend string `json:"friend"`
	Since  int64  `json:"since"`
}

// FriendRequest is a pending friend request.
type FriendRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
	Note string `json:"note,omitempty"`
	TS   int64  `json:"ts"` // when it was (last) made
}

// Block is Blocker blocking Blocked since TS.
type Block struct {
	Blocker string `json:"blocker"`
	Blocked string `json:"blocked"`
	TS      int64  `json:"ts"`
}

// Group is a group's settings and state. Members and LastSeq are derived
// (from the GroupMembers and GroupEntries that follow); an importer checks
// them.
type Group struct {
	ID        int64                `json:"id"`
	Name      string               `json:"name"`
	Owner     string               `json:"owner"`
	Policy    plugins.GroupPolicy  `json:"policy"`
	History   plugins.GroupHistory `json:"history"`
	MuteAll   bool                 `json:"mute_all,omitempty"`
	Dissolved bool                 `json:"dissolved,omitempty"`
	Members   int64                `json:"members"`
	LastSeq   int64                `json:"last_seq"`
	LastTS    int64                `json:"last_ts"` // the TS of entry LastSeq
	Created   int64                `json:"created"` // unix ms
}

// GroupMember is a member of a group, or a past one (LeftSeq > 0: the
// seq of the entry that ended their membership).
type GroupMember struct {
	Group      int64             `json:"group"`
	User       string            `json:"user"`
	Role       plugins.GroupRole `json:"role"`
	JoinSeq    int64             `json:"join_seq"`
	LeftSeq    int64             `json:"left_seq,omitempty"`
	MutedUntil int64             `json:"muted_until,omitempty"` // unix ms
}

// GroupEntry is one entry of a group's log, messages and changes alike;
// the fields are those of plugins.GroupEntry.
type GroupEntry struct {
	Group    int64                `json:"group"`
	Seq      int64                `json:"seq"`
	Kind     plugins.EntryKind    `json:"kind"`
	TS       int64                `json:"ts"`
	From     string               `json:"from,omitempty"`
	Body     string               `json:"body,omitempty"`
	Mentions []string             `json:"mentions,omitempty"`
	Actor    string               `json:"actor,omitempty"`
	Target   string               `json:"target,omitempty"`
	Name     string               `json:"name,omitempty"`
	Role     plugins.GroupRole    `json:"role,omitempty"`
	Until    int64                `json:"until,omitempty"`
	On       bool                 `json:"on,omitempty"`
	Policy   plugins.GroupPolicy  `json:"policy,omitempty"`
	History  plugins.GroupHistory `json:"history,omitempty"`
	MsgID    string               `json:"msg_id,omitempty"`
	CID      string               `json:"cid,omitempty"`
}

// JoinRequest is a pending request to join an approval group.
type JoinRequest struct {
	Group int64  `json:"group"`
	User  string `json:"user"`
	TS    int64  `json:"ts"`
}

// GroupCursor is a member's read position in a group: everything up to
// ReadSeq is read.
type GroupCursor struct {
	User    string `json:"user"`
	Group   int64  `json:"group"`
	ReadSeq int64  `json:"read_seq"`
}

// Token is a resume token: the hash of its secret, never the secret.
type Token struct {
	ID       string `json:"id"`
	User     string `json:"user"`
	Hash     []byte `json:"hash"` // base64 in JSON
	Created  int64  `json:"created"`
	LastUsed int64  `json:"last_used"`
	Expires  int64  `json:"expires"`
}

// Trailer closes a dump with the number of records of each kind before it.
type Trailer struct {
	Users          int64 `json:"users"`
	Messages       int64 `json:"messages"`
	Pending        int64 `json:"pending"` // messages with Pending set
	Friends        int64 `json:"friends"`
	FriendRequests int64 `json:"friend_requests"`
	Blocks         int64 `json:"blocks"`
	Groups         int64 `json:"groups"`
	GroupMembers   int64 `json:"group_members"`
	GroupEntries   int64 `json:"group_entries"`
	JoinRequests   int64 `json:"join_requests"`
	GroupCursors   int64 `json:"group_cursors"`
	Tokens         int64 `json:"tokens"`
}
