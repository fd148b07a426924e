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

// Msg returns the message carried by a msg push.
func (f *ServerFrame) Msg() Message {
	return Message{ID: f.MsgID, From: f.From, To: f.To, Body: f.Body, TS: f.TS}
}

// Err returns the error carried by an error reply.
func (f *ServerFrame) Err() *Error {
	return &Error{Code: f.Code, Message: f.Message, RetryAfterMS: f.RetryAfterMS}
}
