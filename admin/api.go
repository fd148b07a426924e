package admin

import (
	"context"
	"time"

	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/plugins"
)

// Backend is what the admin API needs from the daemon. qqd implements it
// by wiring the daemon, its plugins and reload together: *daemon.Server
// has every method but Plugins and Reload. Methods are called
// concurrently, from one goroutine per request.
type Backend interface {
	// Sessions returns the logged-in connections (daemon.Server.Sessions).
	Sessions() []daemon.SessionInfo
	// Stats returns the server's counters (daemon.Server.Stats).
	Stats() daemon.Stats
	// Kick disconnects every session of user with an admin kicked push
	// carrying reason, and returns how many it kicked.
	Kick(user, reason string) int
	// Broadcast pushes a notice to every logged-in session and returns
	// how many it was queued for.
	Broadcast(text string) int
	// Plugins returns the status of each supervised plugin process.
	Plugins() []plugins.Status
	// Reload reloads the configuration as SIGHUP does, and returns the
	// changed settings that apply only after a restart. Its error says,
	// for the operator, why the reload was refused or failed.
	Reload(ctx context.Context) (needsRestart []string, err error)
	// AddAccount creates an account. Errors: ErrUserExists, ErrInvalid
	// (bad name, password too short or too long); anything else is
	// internal.
	AddAccount(ctx context.Context, user, password string) error
	// RemoveAccount deletes an account and ends its sessions, and
	// returns how many pending messages were dropped. Errors:
	// ErrUnknownUser, ErrInvalid; anything else is internal.
	RemoveAccount(ctx context.Context, user string) (droppedPending int64, err error)
	// SetPassword replaces an account's password. Errors: ErrUnknownUser,
	// ErrInvalid; anything else is internal.
	SetPassword(ctx context.Context, user, password string) error
}

// Wire types of the API. Requests are decoded strictly: unknown fields
// are an error. Replies may gain fields within /v1/.

// Session is one logged-in connection.
type Session struct {
	ID      uint64    `json:"id"`
	Remote  string    `json:"remote"`
	Since   time.Time `json:"since"`
	MsgsIn  uint64    `json:"msgs_in"`  // messages it sent that were stored
	MsgsOut uint64    `json:"msgs_out"` // messages pushed to it
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
	Version          string    `json:"version"`
	Started          time.Time `json:"started"`
	UptimeSeconds    int64     `json:"uptime_seconds"`
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
	Kind      string    `json:"kind"` // storage or filter
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
