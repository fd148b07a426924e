package admin_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/qqchat/qq/admin"
)

// TestAccountErrors: the error replies the Client returns, and the errors
// a Backend builds, match the account errors they stand for and no other.
func TestAccountErrors(t *testing.T) {
	sentinels := []error{admin.ErrUserExists, admin.ErrUnknownUser, admin.ErrInvalid,
		admin.ErrNoGroup, admin.ErrNotMember, admin.ErrNotAllowed, admin.ErrGroupsOff, admin.ErrTokensOff,
		admin.ErrBackupExists, admin.ErrBackupBusy, admin.ErrBackupUnsupported, admin.ErrBackupFailed}
	tests := []struct {
		err  error
		is   error // the one sentinel it matches, or nil
		text string
	}{
		{&admin.APIError{Status: 409, Code: admin.CodeUserExists, Message: "user exists"}, admin.ErrUserExists, "user exists"},
		{&admin.APIError{Status: 404, Code: admin.CodeUnknownUser, Message: "unknown user"}, admin.ErrUnknownUser, "unknown user"},
		{&admin.APIError{Status: 400, Code: admin.CodeInvalid, Message: "user is required"}, admin.ErrInvalid, "user is required"},
		{&admin.APIError{Status: 400, Code: admin.CodeBadRequest, Message: "request body: unexpected EOF"}, admin.ErrInvalid, "request body: unexpected EOF"},
		{&admin.APIError{Status: 404, Code: admin.CodeNotOnline, Message: "dave is not online"}, nil, "dave is not online"},
		{&admin.APIError{Status: 500, Code: admin.CodeInternal, Message: "internal error"}, nil, "internal error"},
		{admin.Invalid("password must be 8 to 1024 bytes of UTF-8"), admin.ErrInvalid, "password must be 8 to 1024 bytes of UTF-8"},
		{fmt.Errorf("%w: user must be lower case", admin.ErrInvalid), admin.ErrInvalid, "invalid account: user must be lower case"},
		{fmt.Errorf("account dave: %w", admin.ErrUserExists), admin.ErrUserExists, "account dave: account exists"},
		{&admin.APIError{Status: 404, Code: admin.CodeNoGroup, Message: "no group 12"}, admin.ErrNoGroup, "no group 12"},
		{&admin.APIError{Status: 404, Code: admin.CodeNotMember, Message: "bob is not a member of group 12"}, admin.ErrNotMember, "bob is not a member of group 12"},
		{&admin.APIError{Status: 409, Code: admin.CodeNotAllowed, Message: "alice owns group 12"}, admin.ErrNotAllowed, "alice owns group 12"},
		{&admin.APIError{Status: 501, Code: admin.CodeGroupsOff, Message: "this server keeps no groups"}, admin.ErrGroupsOff, "this server keeps no groups"},
		{fmt.Errorf("%w: alice owns group 12", admin.ErrNotAllowed), admin.ErrNotAllowed, "not allowed: alice owns group 12"},
		{&admin.APIError{Status: 501, Code: admin.CodeTokensOff, Message: "this server keeps no resume tokens"}, admin.ErrTokensOff, "this server keeps no resume tokens"},
		{fmt.Errorf("listing tokens: %w", admin.ErrTokensOff), admin.ErrTokensOff, "listing tokens: this server keeps no resume tokens"},
		{&admin.APIError{Status: 409, Code: admin.CodeBackupExists, Message: "exists"}, admin.ErrBackupExists, "exists"},
		{&admin.APIError{Status: 409, Code: admin.CodeBackupBusy, Message: "busy"}, admin.ErrBackupBusy, "busy"},
		{&admin.APIError{Status: 501, Code: admin.CodeBackupUnsupported, Message: "no"}, admin.ErrBackupUnsupported, "no"},
		{&admin.APIError{Status: 500, Code: admin.CodeBackupFailed, Message: "failed"}, admin.ErrBackupFailed, "failed"},
	}
	for i, tt := range tests {
		for _, s := range sentinels {
			if got, want := errors.Is(tt.err, s), s == tt.is; got != want {
				t.Errorf("%d: errors.Is(%v, %v) = %v, want %v", i, tt.err, s, got, want)
			}
		}
		if tt.err.Error() != tt.text {
			t.Errorf("%d: text %q, want %q", i, tt.err.Error(), tt.text)
		}
	}
}
