package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/qqchat/qq/client/cli"
	"github.com/qqchat/qq/daemon/protocol"
	"golang.org/x/term"
)

// Exit codes.
const (
	exitOK      = cli.ExitOK
	exitUsage   = cli.ExitUsage
	exitConnect = 2
	exitAuth    = 3
	exitRefused = 4
	exitOther   = 5
)

const defaultAddr = "127.0.0.1:5190"

const usageText = `qq: chat on a qqd server (QQP/1)

Usage:
  qq [flags] [chat]                          interactive chat (the default)
  qq [flags] register <user>                 create an account
  qq [flags] send [--cid ID] <to> <text...>  send one message (flags before <to>)
  qq [flags] users                           list who is online
  qq [flags] offline [--limit N] [--ack]     show the oldest waiting messages;
                                             --ack marks them read
  qq [flags] history <user> [--limit N] [--before MSG_ID]
                                             show a conversation, oldest first
  qq [flags] friends                         your friends with their presence
                                             (● online ◐ away ⊘ busy ○ offline),
                                             and friend requests both ways
  qq [flags] add <user> [note...]            ask user to be your friend (flags
                                             before <user>)
  qq [flags] accept|decline <user>           answer user's friend request
  qq [flags] cancel <user>                   withdraw your friend request to user
  qq [flags] remove <user>                   end a friendship
  qq [flags] block|unblock <user>            block user (messages, friend
                                             requests, typing), or lift it
  qq [flags] blocks                          list whom you block
  qq [flags] groups                          your groups, with unread entries
                                             and mentions of you
  qq [flags] group-send [--cid ID] <group> <text...>
                                             send one message to a group
                                             (@name in the text mentions name)

Flags (also accepted after the command name):
  --addr HOST:PORT   server address (default 127.0.0.1:5190, env QQ_ADDR)
  --user NAME        your user name (env QQ_USER)
  --tls              connect with TLS (qqd's tls.listen; env QQ_TLS=1)
  --ca FILE          PEM CA certificates to trust instead of the system's (env QQ_CA)
  --server-name NAME the name the server's certificate must carry
                     (default: the host of --addr)
  --remember         chat: remember this login (a resume token, in a file
                     only you can read under your configuration directory,
                     qq/token-<server>-<user>), so that the next chat starts
                     without the password; /logout forgets it (env
                     QQ_REMEMBER=1)
  --json             one-shot commands print one JSON object
                     (messages as an array of {msg_id, from, to, body, ts};
                     friends as {friends: [{user, since, presence, text}],
                     incoming: [{from, note, ts}], outgoing: [{to, note, ts}]};
                     groups as {groups: [{group, name, role, members,
                     last_seq, read_seq, unread, mentions}]});
                     on failure: {"error": {"code", "message", "exit"}}

The password is read from QQ_PASSWORD, otherwise asked for without echo.
A chat started with --remember, and every later chat while the remembered
login is valid, does not ask for it.

In the chat, type /help for its commands. Besides messages, the chat shows
friend requests and answers, friends' presence changes, the entries of your
groups ("[#12 crew] alice: hi") and server notices as lines above the input
line, and who is typing to you in the prompt; at a terminal it tells the
person you write to when you are typing. When the connection is lost (qqd
restarts, the network fails), the chat says "reconnecting…", keeps what
you type in its outbox, and once "reconnected" sends it and shows what
arrived meanwhile, each message once.

Exit codes:
  0  ok
  1  usage error
  2  cannot connect to the server
  3  login failed (wrong user or password), or not logged in
  4  the server refused the request (unknown user, message too large,
     rejected by a filter, rate limited, user name taken, blocked, no such
     friend request, no such group, not a member, muted, the server has
     no friends or groups support, ...)
  5  anything else (connection lost, kicked, unexpected errors)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{
		getenv:       os.Getenv,
		stdin:        os.Stdin,
		stdout:       os.Stdout,
		stderr:       os.Stderr,
		readPassword: terminalPassword,
		terminal:     term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())),
		loc:          time.Local,
		now:          time.Now,
		configDir:    os.UserConfigDir,
	}
	err := a.run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qq: "+err.Error())
		os.Exit(exitCode(err))
	}
}

// app is qq's environment: everything run needs from the process, so that
// tests can supply their own.
type app struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// readPassword asks for a password without echo; nil when there is no
	// terminal to ask on.
	readPassword func(ctx context.Context, prompt string) (string, error)
	// terminal reports whether stdin and stdout are a terminal, for the
	// chat's line editor.
	terminal bool
	loc      *time.Location
	now      func() time.Time
	// configDir returns the user's configuration directory, where the
	// chat remembers logins; nil: it remembers none.
	configDir func() (string, error)
}

func usageErrorf(format string, args ...any) error { return cli.Usagef("qq", format, args...) }

// exitCode maps an error returned by run to qq's exit code.
func exitCode(err error) int { return cli.ExitCode(err, codeFor) }

// codeFor is the exit code for an error from the client library.
func codeFor(err error) int {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case protocol.CodeAuthFailed, protocol.CodeNotLoggedIn:
			return exitAuth
		}
		return exitRefused
	}
	return exitOther
}

// failed wraps a client library error for the request about name with a
// readable text and its exit code.
func failed(err error, name string) error {
	var ce *cli.Error
	if errors.As(err, &ce) {
		return err
	}
	return &cli.Error{Code: codeFor(err), Msg: describe(err, name), Err: err}
}

// globals are the flags every command accepts.
type globals struct {
	addr       string
	user       string
	json       bool
	tls        bool
	ca         string
	serverName string
	remember   bool
}

// flagSet returns a flag set for cmd with the global flags registered on
// it, their defaults being the values parsed so far.
func (g *globals) flagSet(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.addr, "addr", g.addr, "server address")
	fs.StringVar(&g.user, "user", g.user, "user name")
	fs.BoolVar(&g.json, "json", g.json, "JSON output")
	fs.BoolVar(&g.tls, "tls", g.tls, "use TLS")
	fs.StringVar(&g.ca, "ca", g.ca, "CA certificates (PEM)")
	fs.StringVar(&g.serverName, "server-name", g.serverName, "expected server name")
	fs.BoolVar(&g.remember, "remember", g.remember, "remember the chat's login")
	return fs
}

// run runs qq with the arguments after the program name.
func (a *app) run(ctx context.Context, args []string) error {
	g := &globals{addr: a.getenv("QQ_ADDR"), user: a.getenv("QQ_USER"), tls: a.getenv("QQ_TLS") == "1", ca: a.getenv("QQ_CA"),
		remember: a.getenv("QQ_REMEMBER") == "1"}
	if g.addr == "" {
		g.addr = defaultAddr
	}
	fs := g.flagSet("qq")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(a.stdout, usageText)
			return nil
		}
		return usageErrorf("%v", err)
	}
	cmd, rest := "chat", fs.Args()
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	var err error
	switch cmd {
	case "chat":
		err = a.chatCmd(ctx, g, rest)
	case "register":
		err = a.registerCmd(ctx, g, rest)
	case "send":
		err = a.sendCmd(ctx, g, rest)
	case "users":
		err = a.usersCmd(ctx, g, rest)
	case "offline":
		err = a.offlineCmd(ctx, g, rest)
	case "history":
		err = a.historyCmd(ctx, g, rest)
	case "friends":
		err = a.friendsCmd(ctx, g, rest)
	case "add":
		err = a.addCmd(ctx, g, rest)
	case "accept", "decline", "cancel", "remove", "block", "unblock":
		err = a.friendActionCmd(ctx, g, cmd, rest)
	case "blocks":
		err = a.blocksCmd(ctx, g, rest)
	case "groups":
		err = a.groupsCmd(ctx, g, rest)
	case "group-send":
		err = a.groupSendCmd(ctx, g, rest)
	case "help":
		fmt.Fprint(a.stdout, usageText)
		return nil
	default:
		return usageErrorf("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(a.stdout, usageText)
		return nil
	}
	if err != nil && g.json && cmd != "chat" {
		a.printJSONError(err)
	}
	return err
}

// password returns the password: QQ_PASSWORD, or asked for on the terminal.
// With confirm, a typed password must be typed twice.
func (a *app) password(ctx context.Context, user string, confirm bool) (string, error) {
	if p := a.getenv("QQ_PASSWORD"); p != "" {
		return p, nil
	}
	if a.readPassword == nil {
		return "", usageErrorf("no password: set QQ_PASSWORD or run qq on a terminal")
	}
	p, err := a.readPassword(ctx, "password for "+user+": ")
	if err != nil {
		return "", &cli.Error{Code: exitUsage, Msg: "cannot read the password: " + err.Error(), Err: err}
	}
	if p == "" {
		return "", usageErrorf("empty password")
	}
	if confirm {
		p2, err := a.readPassword(ctx, "password again: ")
		if err != nil {
			return "", &cli.Error{Code: exitUsage, Msg: "cannot read the password: " + err.Error(), Err: err}
		}
		if p2 != p {
			return "", usageErrorf("the passwords do not match")
		}
	}
	return p, nil
}

// terminalPassword reads a password without echo from /dev/tty, or else
// from stdin when it is a terminal. If ctx ends first the terminal's state
// is restored.
func terminalPassword(ctx context.Context, prompt string) (string, error) {
	in, out := os.Stdin, os.Stderr
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		defer tty.Close()
		if term.IsTerminal(int(tty.Fd())) {
			in, out = tty, tty
		}
	}
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no terminal: set QQ_PASSWORD")
	}
	return cli.ReadPassword(ctx, fd, out, prompt)
}
