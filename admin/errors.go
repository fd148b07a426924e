package admin

import "errors"

// The account errors of the API. The server's Backend returns them from
// its account methods (any other error is an internal one: the server
// logs it and the caller sees only "internal error"), and the Client's
// errors match them with errors.Is. qqd maps the daemon's own account
// errors to these.
var (
	// ErrUserExists means the account to create exists (or existed: a
	// deleted account's name stays taken).
	ErrUserExists = errors.New("account exists")
	// ErrUnknownUser means the named account does not exist.
	ErrUnknownUser = errors.New("no such account")
	// ErrInvalid means the request was refused as invalid: a bad user
	// name, a password too short or too long. Its text is shown to the
	// operator without a leading "invalid account: ", so build it with
	// Invalid or as fmt.Errorf("%w: <human message>", ErrInvalid).
	ErrInvalid = errors.New("invalid account")
)

// The group errors of the API, returned by the server's Backend from its
// group methods and matched by the Client's errors with errors.Is, as the
// account errors are.
var (
	// ErrNoGroup means there is no such group (or, for a change, it was
	// dissolved already).
	ErrNoGroup = errors.New("no such group")
	// ErrNotMember means the user named is not a member of the group.
	ErrNotMember = errors.New("not a member of the group")
	// ErrNotAllowed means the change is refused by the group's rules:
	// its owner cannot be removed (dissolve the group instead). Its text
	// says why, as ErrInvalid's does.
	ErrNotAllowed = errors.New("not allowed")
	// ErrGroupsOff means the server keeps no groups: its storage has
	// none.
	ErrGroupsOff = errors.New("this server keeps no groups")
)

// ErrTokensOff means the server keeps no resume tokens: they are turned
// off (tokens.enabled), or its storage has none. The Backend returns it
// from its token methods, and the Client's errors match it.
var ErrTokensOff = errors.New("this server keeps no resume tokens")

// The backup errors of the API, returned by the server's Backend from
// Backup and matched by the Client's errors. A dir that is not absolute
// is ErrInvalid.
var (
	// ErrBackupExists means the backup directory exists: a backup never
	// writes into (or over) an existing directory.
	ErrBackupExists = errors.New("backup directory exists")
	// ErrBackupBusy means another backup is running; one runs at a time.
	ErrBackupBusy = errors.New("a backup is already running")
	// ErrBackupUnsupported means the storage plugin in service cannot
	// make backups (a plugin built before protocol version 4, or one
	// whose storage does not implement plugins.Backup).
	ErrBackupUnsupported = errors.New("backup not supported by this storage plugin")
	// ErrBackupFailed means the storage plugin tried and failed (no
	// space, permission denied, the deadline passed); qqd's log says why.
	ErrBackupFailed = errors.New("backup failed")
)

// Invalid returns an error that matches ErrInvalid and whose text is msg,
// for example Invalid("password must be at least 8 bytes").
func Invalid(msg string) error { return &invalidError{msg: msg} }

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// Error codes of the admin API, in {"error":{"code":...}}.
const (
	CodeBadRequest        = "bad_request"        // 400: malformed JSON or unknown fields
	CodeInvalid           = "invalid"            // 400: a value was refused (ErrInvalid)
	CodeForbidden         = "forbidden"          // 403: the caller may not call this
	CodeNotFound          = "not_found"          // 404: no such endpoint
	CodeNotOnline         = "not_online"         // 404: kick of a user with no session
	CodeUnknownUser       = "unknown_user"       // 404: ErrUnknownUser
	CodeMethodNotAllowed  = "method_not_allowed" // 405
	CodeUserExists        = "user_exists"        // 409: ErrUserExists
	CodeReloadRefused     = "reload_refused"     // 409: the server's Backend refused the reload; the message says why
	CodeNoGroup           = "no_group"           // 404: ErrNoGroup
	CodeNotMember         = "not_member"         // 404: ErrNotMember
	CodeNotAllowed        = "not_allowed"        // 409: ErrNotAllowed
	CodeGroupsOff         = "groups_off"         // 501: ErrGroupsOff
	CodeTokensOff         = "tokens_off"         // 501: ErrTokensOff
	CodeBackupExists      = "backup_exists"      // 409: ErrBackupExists
	CodeBackupBusy        = "backup_busy"        // 409: ErrBackupBusy
	CodeBackupUnsupported = "backup_unsupported" // 501: ErrBackupUnsupported
	CodeBackupFailed      = "backup_failed"      // 500: ErrBackupFailed; see qqd's log
	CodeTooLarge          = "too_large"          // 413: request body over MaxBodyBytes
	CodeInternal          = "internal"           // 500: see qqd's log
)

// APIError is an error reply of the admin API. The Client returns it for
// every reply that is not a success; the server renders it as
// {"error":{"code","message"}} with status Status.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return e.Message }

// Is lets callers of the Client test account and group errors with
// errors.Is: ErrUserExists, ErrUnknownUser, ErrInvalid, ErrNoGroup,
// ErrNotMember, ErrNotAllowed, ErrGroupsOff, ErrTokensOff and the backup
// errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUserExists:
		return e.Code == CodeUserExists
	case ErrUnknownUser:
		return e.Code == CodeUnknownUser
	case ErrInvalid:
		return e.Code == CodeInvalid || e.Code == CodeBadRequest
	case ErrNoGroup:
		return e.Code == CodeNoGroup
	case ErrNotMember:
		return e.Code == CodeNotMember
	case ErrNotAllowed:
		return e.Code == CodeNotAllowed
	case ErrGroupsOff:
		return e.Code == CodeGroupsOff
	case ErrTokensOff:
		return e.Code == CodeTokensOff
	case ErrBackupExists:
		return e.Code == CodeBackupExists
	case ErrBackupBusy:
		return e.Code == CodeBackupBusy
	case ErrBackupUnsupported:
		return e.Code == CodeBackupUnsupported
	case ErrBackupFailed:
		return e.Code == CodeBackupFailed
	}
	return false
}
