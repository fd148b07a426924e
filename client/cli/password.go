package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"golang.org/x/term"
)

// ReadPassword writes prompt to out and reads a line without echo from the
// terminal fd. If ctx ends first (say, on Ctrl-C) it restores the
// terminal's echo and returns ctx.Err(); the reading goroutine stays
// blocked until the terminal delivers a line, which a tool that then
// exits never sees.
func ReadPassword(ctx context.Context, fd int, out io.Writer, prompt string) (string, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("terminal state: %w", err)
	}
	fmt.Fprint(out, prompt)
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		fmt.Fprintln(out)
		return strings.TrimRight(string(r.b), "\r\n"), r.err
	case <-ctx.Done():
		term.Restore(fd, state)
		fmt.Fprintln(out)
		return "", ctx.Err()
	}
}
