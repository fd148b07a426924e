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

	// The groups of qqd's groups extension. Errors: admin.ErrGroupsOff
	// (the server keeps no groups), admin.ErrNoGroup, admin.ErrNotMember,
	// admin.ErrNotAllowed and admin.ErrUnknownUser as each method says;
	// anything else is internal.
	//
	// Group describes group id, a dissolved one too. Errors: ErrNoGroup.
	Group(ctx context.Context, id int64) (admin.Group, error)
	// UserGroups lists the live groups user belongs to, by id, with
	// user's Role in each.
	UserGroups(ctx context.Context, user string) ([]admin.Group, error)
	// GroupMembers lists group id's members by name after after, up to
	// limit, and whether more follow. Errors: ErrNoGroup.
	GroupMembers(ctx context.Context, id int64, after string, limit int) ([]admin.GroupMember, bool, error)
	// DissolveGroup dissolves group id. Errors: ErrNoGroup (also when it
	// was dissolved already).
	DissolveGroup(ctx context.Context, id int64) (admin.GroupChangeReply, error)
	// RemoveGroupMember removes user from group id. Errors: ErrNoGroup,
	// ErrNotMember, ErrUnknownUser, ErrNotAllowed (user owns the group;
	// its text says so).
	RemoveGroupMember(ctx context.Context, id int64, user string) (admin.GroupChangeReply, error)

	// The resume tokens of qqd's resume extension. Errors:
	// admin.ErrTokensOff (tokens are turned off, or the storage keeps
	// none); anything else is internal.
	//
	// UserTokens lists user's tokens, most recently used first, with the
	// expiry qqd applies now; an unknown user has none.
	UserTokens(ctx context.Context, user string) ([]admin.Token, error)
	// RevokeTokens revokes user's tokens with the listed ids (ids of
	// other users' tokens, or of none, are ignored), or all of user's
	// tokens when ids is empty, and returns how many it revoked. Sessions
	// that logged in with them stay: Kick ends them.
	RevokeTokens(ctx context.Context, user string, ids []string) (int64, error)

	// Backup has the storage plugin write a consistent copy of the store
	// into dir (absolute, not existing) while the server keeps serving,
	// and reports it. It is given the time it needs (ctx carries qqd's
	// deadline for backups, not the caller's). Errors:
	// admin.ErrInvalid, admin.ErrBackupExists, admin.ErrBackupBusy,
	// admin.ErrBackupUnsupported; anything else is a failed backup
	// (admin.ErrBackupFailed), whose cause the Backend logs.
	Backup(ctx context.Context, dir string) (admin.BackupReply, error)
}
