package adminserver

import (
	"context"

	"github.com/qqchat/qq/admin"
)

// Backend is what the admin API needs from the daemon. Methods are called
// concurrently, from one goroutine per request.
type Backend interface {
	// Sessions returns the logged-in connections, ordered by user, then
	// by session id.
	Sessions() []admin.UserSession
	// Stats returns the server's counters and qqd's version; the server
	// fills in UptimeSeconds from Started.
	Stats() admin.Stats
	// Kick disconnects every session of user with an admin kicked push
	// carrying reason, and returns how many it kicked.
	Kick(user, reason string) int
	// Broadcast pushes a notice to every logged-in session and returns
	// how many it was queued for.
	Broadcast(text string) int
	// Plugins returns the status of each supervised plugin process.
	Plugins() []admin.Plugin
	// Reload reloads the configuration as SIGHUP does, and returns the
	// changed settings that apply only after a restart. Its error says,
	// for the operator, why the reload was refused or failed.
	Reload(ctx context.Context) (needsRestart []string, err error)
	// CheckReload says what Reload would do now without changing
	// anything in service: it loads the configuration and starts, then
	// stops, every plugin Reload would start. Its error says why Reload
	// would be refused.
	CheckReload(ctx context.Context) (admin.ReloadCheckReply, error)
	// AddAccount creates an account. Errors: admin.ErrUserExists,
	// admin.ErrInvalid (bad name, password too short or too long);
	// anything else is internal.
	AddAccount(ctx context.Context, user, password string) error
	// RemoveAccount deletes an account and ends its sessions, and
	// returns how many pending messages were dropped. Errors:
	// admin.ErrUnknownUser, admin.ErrInvalid; anything else is internal.
	RemoveAccount(ctx context.Context, user string) (droppedPending int64, err error)
	// SetPassword replaces an account's password. Errors:
	// admin.ErrUnknownUser, admin.ErrInvalid; anything else is internal.
	SetPassword(ctx context.Context, user, password string) error
}
