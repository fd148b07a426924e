package protocol

import "strconv"

// Code is a wire error code. Codes are the only error information a client
// can rely on; the accompanying message is for people.
type Code string

// Error codes of QQP/1.
const (
	CodeBadRequest         Code = "bad_request"
	CodeUnknownType        Code = "unknown_type"
	CodeNotLoggedIn        Code = "not_logged_in"
	CodeFrameTooLarge      Code = "frame_too_large"
	CodeUserExists         Code = "user_exists"
	CodeRegistrationClosed Code = "registration_closed"
	CodeAuthFailed         Code = "auth_failed"
	CodeAlreadyLoggedIn    Code = "already_logged_in"
	CodeRateLimited        Code = "rate_limited"
	CodeUnknownUser        Code = "unknown_user"
	CodeTooLarge           Code = "too_large"
	CodeRejected           Code = "rejected"
	CodeUnavailable        Code = "unavailable"
	// CodeInternal is qqd's code for a failure that is the server's fault
	// and fits no other code. Nothing was changed.
	CodeInternal Code = "internal"

	// Codes of qqd's friends extension.
	//
	// CodeBlocked: the other user blocks you (a send, a friend request),
	// or you block them (a friend request: unblock first). Nothing was
	// stored.
	CodeBlocked Code = "blocked"
	// CodeNotFriends: a send refused under direct_messages: friends, or a
	// friend_remove of someone who is not a friend.
	CodeNotFriends Code = "not_friends"
	// CodeNoRequest: no such pending friend request.
	CodeNoRequest Code = "no_request"

	// Codes of qqd's groups extension.
	//
	// CodeNoGroup: no such group, or it was dissolved.
	CodeNoGroup Code = "no_group"
	// CodeNotMember: you (or the user named) are not a member.
	CodeNotMember Code = "not_member"
	// CodeNotAllowed: your role (or the group's join policy) does not
	// allow it.
	CodeNotAllowed Code = "not_allowed"
	// CodeMuted: you are muted in the group, or it is muted for everyone
	// but admins. Nothing was stored.
	CodeMuted Code = "muted"
	// CodeGroupFull: the group has groups.max_members members.
	CodeGroupFull Code = "group_full"
	// CodeAlreadyMember: the user is a member already.
	CodeAlreadyMember Code = "already_member"
	// CodeGroupLimit: you own or belong to as many groups as the server
	// allows.
	CodeGroupLimit Code = "group_limit"
)

// Error is a wire error: what an error reply carries. It implements error so
// that client code can return it and test it with errors.Is against a
// code-only value such as &Error{Code: CodeUnknownUser}.
type Error struct {
	Code    Code
	Message string
	// RetryAfterMS is set with CodeRateLimited.
	RetryAfterMS int64
}

// Errorf returns an *Error with the given code and message.
func Errorf(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Code == CodeRateLimited {
		s += " (retry after " + strconv.FormatInt(e.RetryAfterMS, 10) + " ms)"
	}
	return s
}

// Is reports whether target is an *Error with the same code. A target with
// an empty code matches any *Error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (t.Code == "" || t.Code == e.Code)
}
