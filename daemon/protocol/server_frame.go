package protocol

import "encoding/json"

// ServerFrame is any frame the server writes, decoded with every field the
// contract defines: hello, ok and error replies, msg and kicked pushes.
// Clients decode into it and look at Type first. Unknown push types decode
// too; clients ignore them.
type ServerFrame struct {
	Type Type            `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`

	// error
	Code         Code   `json:"code,omitempty"`
	Message      string `json:"message,omitempty"` // error and kicked text
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`

	// hello
	Server  string `json:"server,omitempty"`
	Version string `json:"version,omitempty"`
	Proto   int    `json:"proto,omitempty"`

	// ok results and msg pushes
	User     string    `json:"user,omitempty"`
	Pending  int64     `json:"pending,omitempty"`
	MsgID    string    `json:"msg_id,omitempty"`
	From     string    `json:"from,omitempty"`
	To       string    `json:"to,omitempty"`
	Body     string    `json:"body,omitempty"`
	TS       int64     `json:"ts,omitempty"`
	Status   Status    `json:"status,omitempty"`
	Messages []Message `json:"messages,omitempty"`
	More     bool      `json:"more,omitempty"`
	Users    []string  `json:"users,omitempty"`

	// kicked
	Reason string `json:"reason,omitempty"`

	// The resume extension: the ok to a login with remember (Token,
	// TokenExpires) and to a resume (TokenExpires).
	Token        string `json:"token,omitempty"`
	TokenExpires int64  `json:"token_expires,omitempty"`

	// hello: the extensions the server supports (Feature*).
	Features []string `json:"features,omitempty"`

	// The friends, presence and typing extensions: friend_request,
	// friend_added, presence and typing pushes (From, User, Note, TS,
	// Since, State, Text) and the friends listing.
	Note     string          `json:"note,omitempty"`
	Since    int64           `json:"since,omitempty"`
	State    string          `json:"state,omitempty"`
	Text     string          `json:"text,omitempty"`
	Friends  []FriendEntry   `json:"friends,omitempty"`
	Incoming []FriendRequest `json:"incoming,omitempty"`
	Outgoing []FriendRequest `json:"outgoing,omitempty"`

	// The groups extension: group_entry pushes (GroupEntry fields, inline),
	// and the replies of groups, group_sync, group_history,
	// group_members, group_requests.
	GroupEntry
	Entries  []GroupEntry   `json:"entries,omitempty"`
	Groups   []GroupListing `json:"groups,omitempty"`
	Members  []GroupMember  `json:"members,omitempty"`
	Requests []GroupRequest `json:"requests,omitempty"`
}

// GroupEntry is an entry of a group's log, as pushed (type group_entry)
// and paged. Group is the group's id (a string of decimal digits, opaque
// to clients); Seq its place in the log.
type GroupEntry struct {
	Group    string   `json:"group,omitempty"`
	Seq      int64    `json:"seq,omitempty"`
	Kind     string   `json:"kind,omitempty"`
	Mentions []string `json:"mentions,omitempty"`
	Actor    string   `json:"actor,omitempty"`
	Target   string   `json:"target,omitempty"`
	Name     string   `json:"name,omitempty"`
	Role     string   `json:"role,omitempty"`
	Until    int64    `json:"until,omitempty"`
	On       bool     `json:"on,omitempty"`
	Policy   string   `json:"policy,omitempty"`
	History  string   `json:"history,omitempty"`
	// msg entries carry From, Body and MsgID; every entry a TS. (In a
	// push they land in ServerFrame's own fields: use Entry.)
	From  string `json:"from,omitempty"`
	Body  string `json:"body,omitempty"`
	MsgID string `json:"msg_id,omitempty"`
	TS    int64  `json:"ts,omitempty"`
}

// Entry returns the entry a group_entry push carries.
func (f *ServerFrame) Entry() GroupEntry {
	e := f.GroupEntry
	e.From, e.Body, e.MsgID, e.TS = f.From, f.Body, f.MsgID, f.TS
	return e
}

// GroupListing is a group in the groups reply.
type GroupListing struct {
	Group    string `json:"group"`
	Name     string `json:"name"`
	Role     string `json:"role"`
	Members  int    `json:"members"`
	LastSeq  int64  `json:"last_seq"`
	ReadSeq  int64  `json:"read_seq"`
	Unread   int64  `json:"unread"`
	Mentions int64  `json:"mentions"`
}

// GroupMember is a member in the group_members reply.
type GroupMember struct {
	User       string `json:"user"`
	Role       string `json:"role"`
	MutedUntil int64  `json:"muted_until,omitempty"`
}

// GroupRequest is a pending request to join, in the group_requests reply.
type GroupRequest struct {
	User string `json:"user"`
	TS   int64  `json:"ts"`
}

// FriendEntry is a friend in a friends listing.
type FriendEntry struct {
	User     string `json:"user"`
	Since    int64  `json:"since"`    // ms since the epoch
	Presence string `json:"presence"` // online, away, busy or offline
	Text     string `json:"text,omitempty"`
}

// FriendRequest is a pending friend request in a friends listing: From is
// set for incoming requests, To for outgoing ones.
type FriendRequest struct {
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	Note string `json:"note"`
	TS   int64  `json:"ts"` // ms since the epoch
}

// Msg returns the message carried by a msg push. Its seq (a qqd
// extension) decodes into the embedded GroupEntry's Seq, the field that
// holds the frame's "seq".
func (f *ServerFrame) Msg() Message {
	return Message{ID: f.MsgID, From: f.From, To: f.To, Body: f.Body, TS: f.TS, Seq: f.Seq}
}

// Err returns the error carried by an error reply.
func (f *ServerFrame) Err() *Error {
	return &Error{Code: f.Code, Message: f.Message, RetryAfterMS: f.RetryAfterMS}
}
