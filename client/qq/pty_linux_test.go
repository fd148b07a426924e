package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// runAsQQ, set in the environment, makes the test binary run qq's main
// instead of the tests: the terminal test starts qq that way, as a child
// process whose stdin and stdout are a pseudo-terminal.
const runAsQQ = "QQ_TEST_RUN_AS_QQ"

func TestMain(m *testing.M) {
	if os.Getenv(runAsQQ) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// openPTY opens a pseudo-terminal pair of the given size.
func openPTY(cols, rows uint16) (master, tty *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*os.File, *os.File, error) {
		master.Close()
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fail(fmt.Errorf("unlock pty: %w", err))
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fail(fmt.Errorf("pty number: %w", err))
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		tty.Close()
		return fail(fmt.Errorf("pty size: %w", err))
	}
	return master, tty, nil
}

// ptyChat is qq's chat running in a child process on a pseudo-terminal:
// the real line editor in raw mode, as a person uses it.
type ptyChat struct {
	t      *testing.T
	master *os.File
	out    daemontest.SyncBuffer // everything qq wrote to the terminal
	exited chan error
	pos    int
}

func startPTYChat(t *testing.T, addr, user string) *ptyChat {
	t.Helper()
	master, tty, err := openPTY(100, 30)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	cmd := exec.Command(os.Args[0], "chat")
	cmd.Env = append(os.Environ(), runAsQQ+"=1", "QQ_ADDR="+addr, "QQ_USER="+user, "QQ_PASSWORD="+pw, "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		master.Close()
		tty.Close()
		t.Fatalf("start qq: %v", err)
	}
	tty.Close()
	p := &ptyChat{t: t, master: master, exited: make(chan error, 1)}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		io.Copy(&p.out, master) // ends with EIO when qq has exited
	}()
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.exited:
			p.exited <- err
		case <-time.After(daemontest.Timeout):
			cmd.Process.Kill()
		}
		master.Close()
		<-readDone
	})
	return p
}

// waitFor waits until want appears in the output after what the previous
// waitFor matched, and moves past it. It returns the output before want,
// from the start.
func (p *ptyChat) waitFor(want string) string {
	p.t.Helper()
	deadline := time.Now().Add(daemontest.Timeout)
	for {
		out := p.out.String()
		if i := strings.Index(out[p.pos:], want); i >= 0 {
			before := out[:p.pos+i]
			p.pos += i + len(want)
			return before
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("terminal output after offset %d does not contain %q:\n%q", p.pos, want, out[p.pos:])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// keys types s as a person would, without a newline unless s has "\r".
func (p *ptyChat) keys(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.master, s); err != nil {
		p.t.Fatalf("type %q: %v", s, err)
	}
}

// nextTyping returns the next typing event of c, skipping other events.
func nextTyping(t *testing.T, c *client.Client) client.Event {
	t.Helper()
	deadline := time.After(daemontest.Timeout)
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed: %v", c.Err())
			}
			if e.Type == protocol.TypeTyping {
				return e
			}
		case <-deadline:
			t.Fatal("no typing event within 10s")
		}
	}
}

// TestChatTerminal runs the chat on a real terminal: pushes are printed
// above the line being typed, which the line editor erases first and
// redraws after; who is typing shows in the prompt; typing a plain line
// sends typing notifications to the peer.
func TestChatTerminal(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.Presence.OfflineDebounce = 50 * time.Millisecond })
	ctx := t.Context()
	bob := libUser(t, s.Addr, "bob")
	setup := libUser(t, s.Addr, "alice")
	if _, err := setup.RequestFriend(ctx, "bob", ""); err != nil {
		t.Fatal(err)
	}
	if err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}

	p := startPTYChat(t, s.Addr, "alice")
	p.waitFor("friends online: ● bob")
	p.waitFor("type /help for help")
	setup.Close() // alice stays online through the chat: no presence push
	if _, err := bob.Send(ctx, "alice", "hi alice"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("bob: hi alice")
	p.waitFor("to bob> ")

	// A partly typed line sends a start to the peer.
	p.keys("hel")
	p.waitFor("to bob> hel")
	if e := nextTyping(t, bob); e.User != "alice" || e.State != "start" {
		t.Fatalf("bob got %+v, want alice's typing start", e)
	}

	// A push erases the input line, prints, and redraws it.
	if err := bob.SetPresence(ctx, "away", "lunch"); err != nil {
		t.Fatal(err)
	}
	before := p.waitFor("bob is away: lunch")
	if !strings.HasSuffix(before, "\x1b[2K\r") {
		t.Fatalf("the push was not printed on an erased line: %q", before[max(0, len(before)-40):])
	}
	p.waitFor("to bob> hel")

	// Typing shows in the prompt until a stop, or a message.
	if err := bob.Typing(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	p.waitFor("(bob is typing…) to bob> hel")
	if err := bob.Typing(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	p.waitFor("\x1b[2K\rto bob> hel")
	if err := bob.Typing(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	p.waitFor("(bob is typing…) to bob> hel")
	if _, err := bob.Send(ctx, "alice", "there"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("bob: there")
	p.waitFor("\x1b[2K\rto bob> hel")
	if err := bob.Typing(ctx, "alice", false); err != nil { // as qq does after a send
		t.Fatal(err)
	}

	// Sending the line sends it, and a stop.
	p.keys("lo\r")
	select {
	case m := <-bob.Messages():
		if m.Body != "hello" || m.From != "alice" {
			t.Fatalf("bob got %+v, want alice's hello", m)
		}
	case <-time.After(daemontest.Timeout):
		t.Fatal("bob got no message")
	}
	if e := nextTyping(t, bob); e.User != "alice" || e.State != "stop" {
		t.Fatalf("bob got %+v, want alice's typing stop", e)
	}
	// A typing indicator that makes the input line wrap, and its end: the
	// line editor erases the rows the line covers on the screen, neither
	// more (a chat line above it) nor fewer.
	long := strings.Repeat("y", 80) // "to bob> " and 80 fit on a row of 100
	p.keys(long)
	p.waitFor("to bob> " + long)
	if e := nextTyping(t, bob); e.State != "start" {
		t.Fatalf("bob got %+v, want a start", e)
	}
	if err := bob.Typing(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	before = p.waitFor("(bob is typing…) to bob> " + long)
	if !strings.HasSuffix(before, "\x1b[J\x1b[2K\r") {
		t.Fatalf("erasing the one-row line before the longer prompt: %q", before[max(0, len(before)-40):])
	}
	if err := bob.Typing(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	before = p.waitFor("to bob> " + long)
	if !strings.HasSuffix(before, "\x1b[J\x1b[2K\r\x1b[A\x1b[2K\r") {
		t.Fatalf("erasing the two-row line before the shorter prompt: %q", before[max(0, len(before)-40):])
	}
	p.keys("\x15")
	if e := nextTyping(t, bob); e.State != "stop" {
		t.Fatalf("bob got %+v, want a stop", e)
	}

	// A command line is not typing; clearing a line (Ctrl-U) is a stop.
	p.keys("/users")
	p.waitFor("to bob> /users")
	p.keys("\r")
	p.waitFor("online: alice, bob")
	p.keys("x")
	if e := nextTyping(t, bob); e.State != "start" {
		t.Fatalf("bob got %+v, want a start", e)
	}
	p.keys("\x15/quit\r")
	p.waitFor("bye")
	if e := nextTyping(t, bob); e.State != "stop" {
		t.Fatalf("bob got %+v, want a stop", e)
	}
	// Nothing else was typed to bob: his next event is alice gone offline.
	select {
	case e := <-bob.Events():
		if e.Type != protocol.TypePresence || e.User != "alice" || e.State != "offline" {
			t.Fatalf("bob got %+v after the last stop, want alice offline", e)
		}
	case <-time.After(daemontest.Timeout):
		t.Fatal("bob did not see alice go offline")
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Fatalf("qq exited with %v:\n%q", err, p.out.String())
		}
	case <-time.After(daemontest.Timeout):
		t.Fatalf("qq did not exit after /quit:\n%q", p.out.String())
	}
}
