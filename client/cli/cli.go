// Package cli holds what qq's command-line tools (qq, qqadmin) share: an
// error that carries the process exit code and the text to show, the
// mapping from the error a tool's run returns to its exit code, the
// parsing of flags that may stand among a command's arguments
// (ParseFlags), and reading a password without echo. Exit code 0 is
// success and 1 a usage error in every tool; the others are each tool's
// own and documented in its -h.
package cli

import (
	"errors"
	"fmt"
)

// Exit codes every tool shares.
const (
	ExitOK    = 0
	ExitUsage = 1
)

// Error is an error with the exit code it means and, when Msg is set, the
// text to show instead of Err's.
type Error struct {
	Code int
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Msg != "" || e.Err == nil {
		return e.Msg
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Usagef returns a usage error (ExitUsage) that points to "tool -h".
func Usagef(tool, format string, args ...any) error {
	return &Error{Code: ExitUsage, Msg: fmt.Sprintf(format, args...) + " (see " + tool + " -h)"}
}

// ExitCode maps the error a tool's run returned to its exit code: ExitOK
// for nil, the Code of an *Error in err's chain, and otherwise other(err).
func ExitCode(err error, other func(error) int) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return other(err)
}
