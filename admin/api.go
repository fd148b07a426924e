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

// KickRequest is the body of POST /v1/kick. Reason is optional.
type KickRequest struct {
	User   string `json:"user"`
	Reason string `json:"reason,omitempty"`
}

// KickReply is the reply of POST /v1/kick.
type KickReply struct {
	Kicked int `json:"kicked"`
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

// Limits of the API.
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 64 << 10
	// MaxReasonBytes bounds a kick reason.
	MaxReasonBytes = 1024
	// MaxNoticeBytes bounds a broadcast's text.
	MaxNoticeBytes = 4096
)
