package admin

import "time"

// Wire types of the API. Requests are decoded strictly: unknown fields
// are an error. Replies may gain fields within /v1/. The server's Backend
// (see admin/adminserver) answers in these types too, so that the daemon
// behind it is adapted to them, not the other way round.

// Session is one logged-in connection.
type Session struct {
	ID      uint64    `json:"id"`
	Remote  string    `json:"remote"`
	Since   time.Time `json:"since"`
	MsgsIn  uint64    `json:"msgs_in"`  // messages it sent that were stored
	MsgsOut uint64    `json:"msgs_out"` // messages pushed to it

	// Transport is how the client is connected: "tcp", "tls", "ws" (a
	// WebSocket of the web client) or "wss" (the same over TLS).
	Transport string `json:"transport,omitempty"`
	// Node is the cluster node that holds the session (absent on a
	// single qqd).
	Node string `json:"node,omitempty"`
}

// UserSession is a logged-in connection and its user, as the server's
// Backend reports it; GET /v1/users groups them by user. It is not sent
// as it is.
type UserSession struct {
	User string
	Session
}

// User is an online user with their sessions.
type User struct {
	User     string    `json:"user"`
	Sessions []Session `json:"sessions"`
}

// UsersReply is the reply of GET /v1/users, ordered by user name.
type UsersReply struct {
	Users []User `json:"users"`
}

// Stats is the reply of GET /v1/stats.
type Stats struct {
	Version          string    `json:"version"` // qqd's version, as qqd -version prints it
	Started          time.Time `json:"started"`
	UptimeSeconds    int64     `json:"uptime_seconds"`    // the server computes it from Started
	Connections      int       `json:"connections"`       // open now
	LoggedIn         int       `json:"logged_in"`         // open and logged in
	UsersOnline      int       `json:"users_online"`      // distinct users logged in
	Accepted         uint64    `json:"accepted"`          // connections accepted since start
	MessagesAccepted uint64    `json:"messages_accepted"` // sends stored since start
	MessagesPushed   uint64    `json:"messages_pushed"`   // pushes queued since start
}

// Plugin is the status of one plugin process.
type Plugin struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"` // "storage" or "filter"
	Up        bool      `json:"up"`
	Pid       int       `json:"pid,omitempty"`
	Since     time.Time `json:"since"` // start of the current process, or of the outage
	Restarts  uint64    `json:"restarts"`
	LastError string    `json:"last_error,omitempty"`
}

// PluginsReply is the reply of GET /v1/plugins.
type PluginsReply struct {
	Plugins []Plugin `json:"plugins"`
}

// KickRequest is the body of POST /v1/kick. Reason is optional. With
// Revoke, every resume token of the user is revoked first, so that no
// session comes back without the password; the kick then answers even
// when the user is not online (see KickReply).
type KickRequest struct {
	User   string `json:"user"`
	Reason string `json:"reason,omitempty"`
	Revoke bool   `json:"revoke,omitempty"`
}

// KickReply is the reply of POST /v1/kick: the sessions kicked and, with
// Revoke, the resume tokens revoked (omitted when none were, so that a
// plain kick's reply is as it was). Without Revoke a user who is not
// online is a 404 not_online error; with it, a success with Kicked 0.
type KickReply struct {
	Kicked  int   `json:"kicked"`
	Revoked int64 `json:"revoked,omitempty"`
}

// Token is a resume token of a user, as GET /v1/tokens lists it: its
// public id (16 lowercase hex digits; the secret is never shown, nor kept
// by qqd), when it was issued and last used, and when it expires: the
// earlier of its absolute end and its idle end (last use plus the idle
// limit), as qqd reckons it now.
type Token struct {
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Expires  time.Time `json:"expires"`
}

// TokensReply is the reply of GET /v1/tokens?user=NAME: the user's resume
// tokens, most recently used first.
type TokensReply struct {
	User   string  `json:"user"`
	Tokens []Token `json:"tokens"`
}

// RevokeRequest is the body of POST /v1/tokens/revoke: the ids of the
// user's tokens to revoke, or none to revoke them all. Ids that are not
// the user's tokens are ignored.
type RevokeRequest struct {
	User string   `json:"user"`
	IDs  []string `json:"ids,omitempty"`
}

// RevokeReply is the reply of POST /v1/tokens/revoke: how many tokens were
// revoked. Sessions that logged in with them stay (kick ends them).
type RevokeReply struct {
	User    string `json:"user"`
	Revoked int64  `json:"revoked"`
}

// BroadcastRequest is the body of POST /v1/broadcast.
type BroadcastRequest struct {
	Text string `json:"text"`
}

// BroadcastReply is the reply of POST /v1/broadcast.
type BroadcastReply struct {
	Sessions int `json:"sessions"`
}

// ReloadReply is the reply of POST /v1/reload: the changed settings
// (config keys) that apply only after a restart.
type ReloadReply struct {
	NeedsRestart []string `json:"needs_restart"`
}

// ReloadCheckReply is the reply of POST /v1/reload/check: what a reload
// would do now, found by loading the configuration and starting (then
// stopping) every plugin the reload would start; nothing in service
// changes. A configuration the reload would refuse is a 409
// reload_refused error, as for POST /v1/reload.
type ReloadCheckReply struct {
	NeedsRestart []string `json:"needs_restart"`
	// StorageRestarted: the storage plugin would be replaced.
	StorageRestarted bool `json:"storage_restarted"`
	// FiltersStarted, FiltersKept and FiltersStopped name the filters
	// that would get a new process, keep theirs, and be stopped.
	FiltersStarted []string `json:"filters_started"`
	FiltersKept    []string `json:"filters_kept"`
	FiltersStopped []string `json:"filters_stopped"`
}

// AccountRequest is the body of POST /v1/accounts.
type AccountRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// PasswordRequest is the body of PUT /v1/accounts/{user}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// AccountReply is the reply of POST /v1/accounts and of PUT
// /v1/accounts/{user}/password.
type AccountReply struct {
	User string `json:"user"`
}

// RemoveAccountReply is the reply of DELETE /v1/accounts/{user}.
type RemoveAccountReply struct {
	User           string `json:"user"`
	DroppedPending int64  `json:"dropped_pending"`
}

// Group is a group of qqd's groups extension. Group is its id, a string
// of decimal digits as in the chat protocol.
type Group struct {
	Group     string `json:"group"`
	Name      string `json:"name"`
	Owner     string `json:"owner"`
	Policy    string `json:"policy"`  // open, approval or invite
	History   string `json:"history"` // joined or shared
	MuteAll   bool   `json:"mute_all"`
	Members   int    `json:"members"`
	LastSeq   int64  `json:"last_seq"` // the seq of the last entry of its log
	Dissolved bool   `json:"dissolved"`
	// Role is the user's role in GET /v1/groups?user=NAME (owner, admin
	// or member); empty elsewhere.
	Role string `json:"role,omitempty"`
}

// GroupsReply is the reply of GET /v1/groups?user=NAME: the live groups
// the user belongs to, by id.
type GroupsReply struct {
	User   string  `json:"user"`
	Groups []Group `json:"groups"`
}

// GroupMember is a member of a group.
type GroupMember struct {
	User       string    `json:"user"`
	Role       string    `json:"role"`                 // owner, admin or member
	MutedUntil time.Time `json:"muted_until,omitzero"` // set while muted
}

// GroupMembersReply is the reply of GET /v1/groups/{id}/members: a page
// of members by name, after the query's after, and whether more follow.
type GroupMembersReply struct {
	Group   string        `json:"group"`
	Members []GroupMember `json:"members"`
	More    bool          `json:"more"`
}

// GroupChangeReply is the reply of DELETE /v1/groups/{id} and DELETE
// /v1/groups/{id}/members/{user}: the entry the change appended to the
// group's log. Actor is whom the entry names as its author: the group's
// owner, in whose name an operator's change is made.
type GroupChangeReply struct {
	Group string `json:"group"`
	Seq   int64  `json:"seq"`
	Actor string `json:"actor"`
}

// Limits of the API.
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 64 << 10
	// MaxReasonBytes bounds a kick reason.
	MaxReasonBytes = 1024
	// MaxNoticeBytes bounds a broadcast's text.
	MaxNoticeBytes = 4096
	// DefaultMembersPage and MaxMembersPage are the default and the
	// largest limit of GET /v1/groups/{id}/members.
	DefaultMembersPage = 100
	MaxMembersPage     = 1000
	// MaxRevokeIDs bounds the ids of POST /v1/tokens/revoke (qqd keeps
	// at most 1000 tokens per user).
	MaxRevokeIDs = 1000
)

// BackupRequest is the body of POST /v1/backup: where qqd's storage
// plugin writes the copy. Dir must be an absolute path (the plugin, not
// the caller, creates it: under systemd only in a directory qqd may
// write, such as /var/lib/qqd/backup) and must not exist.
type BackupRequest struct {
	Dir string `json:"dir"`
}

// BackupReply is the reply of POST /v1/backup: the copy was written to
// Dir, in DurationMS milliseconds, and is Bytes bytes in Files files (of
// which some may be hard links to the store's own files, for storages
// that link immutable files when they can).
type BackupReply struct {
	Dir        string `json:"dir"`
	DurationMS int64  `json:"duration_ms"`
	Bytes      int64  `json:"bytes"`
	Files      int    `json:"files"`
}
