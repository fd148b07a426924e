package cli_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/qqchat/qq/client/cli"
)

func TestExitCode(t *testing.T) {
	other := func(error) int { return 5 }
	for _, tc := range []struct {
		err  error
		want int
		text string
	}{
		{nil, cli.ExitOK, ""},
		{cli.Usagef("qq", "no user %s", "x"), cli.ExitUsage, "no user x (see qq -h)"},
		{fmt.Errorf("wrapped: %w", &cli.Error{Code: 3, Msg: "denied"}), 3, "wrapped: denied"},
		{&cli.Error{Code: 2, Err: io.EOF}, 2, "EOF"},
		{errors.New("plain"), 5, "plain"},
	} {
		if got := cli.ExitCode(tc.err, other); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
		if tc.err != nil && tc.err.Error() != tc.text {
			t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.text)
		}
	}
	if e := (&cli.Error{Code: 2, Err: io.EOF}); !errors.Is(e, io.EOF) {
		t.Error("Unwrap lost the cause")
	}
}
