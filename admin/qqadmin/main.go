// Command qqadmin administers a running qqd through its admin socket: who
// is online, kicking and broadcasting, reloading, plugin status, accounts,
// groups and resume tokens. See qqadmin -h.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/client/cli"
	"golang.org/x/term"
)

// Exit codes.
const (
	exitOK         = cli.ExitOK
	exitUsage      = cli.ExitUsage
	exitNoServer   = 2
	exitPermission = 3
	exitRefused    = 4
	exitOther      = 5
)

// Default socket paths, in order: $QQADMIN_SOCKET, systemdSocket if it
// exists, localSocket.
const (
	systemdSocket = "/run/qqd/admin.sock"
	localSocket   = "./qqd-data/admin.sock"
)

// callTimeout bounds one call (a reload may start plugins).
const callTimeout = 2 * time.Minute

// backupCallTimeout bounds a backup call: qqd gives a backup 10 minutes
// (daemon.BackupTimeout), plus a margin for its answer.
const backupCallTimeout = 11 * time.Minute

const usageText = `qqadmin: administer a running qqd through its admin socket

Usage:
  qqadmin [--socket PATH] [--json] <command> [arguments]

Commands:
  users                          online users and their sessions
  kick <user> [--reason TEXT] [--revoke]
                                 disconnect every session of user; --revoke
                                 first revokes all of user's resume tokens,
                                 so that no session comes back without the
                                 password (then a user not online is no error)
  stats                          the server's counters
  reload [--dry-run]             reload qqd's configuration (as SIGHUP does);
                                 --dry-run says what it would do, changing nothing
  plugins                        the plugin processes
  account add <user>             create an account
  account rm <user>              delete an account; its pending messages
                                 are dropped, its name stays taken
  account passwd <user>          set an account's password
  broadcast <text...>            send a notice to every logged-in session
                                 (flags go before the text)
  groups <user>                  the groups user belongs to (there is no
                                 listing of every group)
  group show <id>                a group: name, owner, settings, members
  group members <id>             a group's members and their roles
  group remove <id> <user>       remove user from a group; the group's log
                                 shows its owner as who removed them
  group dissolve <id>            dissolve a group, in its owner's name
  tokens <user>                  user's resume tokens (of logins with
                                 remember): id, created, last used, expires
  revoke <user> [<id>...]        revoke user's resume tokens with these ids,
                                 or all of them; sessions stay (kick --revoke)
  backup <dir>                   copy the store, consistently, while qqd
                                 serves, into dir: an absolute path on qqd's
                                 machine that does not exist yet, which qqd's
                                 storage plugin creates (mode 0700); under
                                 systemd, somewhere below /var/lib/qqd

Flags (also accepted after the command name):
  --socket PATH  the admin socket; default $QQADMIN_SOCKET, else
                 /run/qqd/admin.sock if it exists, else ./qqd-data/admin.sock
  --json         print the reply as one JSON object; on failure
                 {"error": {"code", "message", "exit"}}

Passwords are read from QQADMIN_PASSWORD, otherwise asked for twice
without echo.

Exit codes:
  0  ok
  1  usage error
  2  no admin socket, or nothing listening on it (is qqd running?)
  3  permission denied: only root, qqd's user and the admin group may
     call (a read-only group may list users, stats, plugins, groups and
     tokens)
  4  the server refused the request: user not online, unknown user,
     user exists, invalid name, password or token id, reload refused,
     no such group, not a member, the group's owner, no groups or no
     resume tokens on this server, backup directory exists or is not
     absolute, a backup already running, no backups with this storage
  5  anything else
`

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "qqadmin: "+err.Error())
		os.Exit(exitCode(err))
	}
}

func usageErrorf(format string, args ...any) error { return cli.Usagef("qqadmin", format, args...) }

// exitCode maps an error returned by run to the exit code.
func exitCode(err error) int {
	return cli.ExitCode(err, func(error) int { return exitOther })
}

// cmd is one invocation's state.
type cmd struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	socket string
	json   bool
}

// run runs qqadmin with the arguments after the program name.
func run(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := &cmd{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	pos, err := c.parse("qqadmin", args, nil, 1)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("no command")
	}
	name, rest := pos[0], pos[1:]
	timeout := callTimeout
	if name == "backup" {
		timeout = backupCallTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch name {
	case "users":
		err = c.users(ctx, rest)
	case "kick":
		err = c.kick(ctx, rest)
	case "stats":
		err = c.stats(ctx, rest)
	case "reload":
		err = c.reload(ctx, rest)
	case "plugins":
		err = c.plugins(ctx, rest)
	case "account":
		err = c.account(ctx, rest)
	case "broadcast":
		err = c.broadcast(ctx, rest)
	case "groups":
		err = c.groups(ctx, rest)
	case "group":
		err = c.group(ctx, rest)
	case "tokens":
		err = c.tokens(ctx, rest)
	case "revoke":
		err = c.revoke(ctx, rest)
	case "backup":
		err = c.backup(ctx, rest)
	case "help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		return usageErrorf("unknown command %q", name)
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return nil
	}
	if err != nil && c.json {
		c.printJSONError(err)
	}
	return err
}

// parse parses args with the global flags and those extra adds, and
// returns the positional arguments (see cli.ParseFlags for flagsUntil).
func (c *cmd) parse(name string, args []string, extra func(*flag.FlagSet), flagsUntil int) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.socket, "socket", c.socket, "admin socket")
	fs.BoolVar(&c.json, "json", c.json, "JSON output")
	if extra != nil {
		extra(fs)
	}
	return cli.ParseFlags("qqadmin", fs, args, flagsUntil)
}

// args parses a command's arguments and checks their number.
func (c *cmd) args(name string, args []string, extra func(*flag.FlagSet), want int, usage string) ([]string, error) {
	pos, err := c.parse(name, args, extra, 0)
	if err != nil {
		return nil, err
	}
	if len(pos) != want {
		return nil, usageErrorf("usage: qqadmin %s", usage)
	}
	return pos, nil
}

// socketPath is --socket, else $QQADMIN_SOCKET, else the systemd path if
// it exists, else ./qqd-data/admin.sock.
func (c *cmd) socketPath() string {
	if c.socket != "" {
		return c.socket
	}
	if p := c.getenv("QQADMIN_SOCKET"); p != "" {
		return p
	}
	if _, err := os.Stat(systemdSocket); err == nil {
		return systemdSocket
	}
	return localSocket
}

// dial connects to the admin socket, turning failures into messages that
// say what to do.
func (c *cmd) dial() (*admin.Client, error) {
	path := c.socketPath()
	cl, err := admin.Dial(path)
	if err == nil {
		return cl, nil
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return nil, &cli.Error{Code: exitNoServer, Err: err,
			Msg: fmt.Sprintf("no qqd admin socket at %s: is qqd running? (--socket)", path)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, &cli.Error{Code: exitNoServer, Err: err,
			Msg: fmt.Sprintf("nothing listens on the qqd admin socket %s: is qqd running? (--socket)", path)}
	case errors.Is(err, fs.ErrPermission):
		return nil, &cli.Error{Code: exitPermission, Err: err, Msg: "permission denied: you must be root, the qqd user" + socketGroup(path)}
	}
	return nil, &cli.Error{Code: exitNoServer, Err: err, Msg: fmt.Sprintf("cannot connect to the qqd admin socket %s: %v", path, err)}
}

// socketGroup names the group that may use the socket at path, as
// " or in group X", or "" when it cannot be told.
func socketGroup(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return " or in the admin group (cannot reach " + path + ")"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	name := strconv.Itoa(int(st.Gid))
	if g, err := user.LookupGroupId(name); err == nil {
		name = g.Name
	}
	return " or in group " + name
}

// call dials and runs fn with the client, mapping the API's errors to
// exit codes.
func (c *cmd) call(fn func(*admin.Client) error) error {
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	err = fn(cl)
	var ae *admin.APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae) && ae.Status == 403:
		return &cli.Error{Code: exitPermission, Err: err}
	case errors.Is(err, admin.ErrGroupsOff), errors.Is(err, admin.ErrTokensOff), errors.Is(err, admin.ErrBackupUnsupported): // 501: this server has none
		return &cli.Error{Code: exitRefused, Err: err}
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
		return &cli.Error{Code: exitRefused, Err: err}
	case errors.As(err, &ae):
		return &cli.Error{Code: exitOther, Err: err}
	case errors.Is(err, admin.ErrInvalid):
		return &cli.Error{Code: exitRefused, Err: err}
	}
	return &cli.Error{Code: exitOther, Err: err}
}

func (c *cmd) printJSON(v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (c *cmd) printJSONError(err error) {
	type jsonError struct {
		Code    string `json:"code,omitempty"`
		Message string `json:"message"`
		Exit    int    `json:"exit"`
	}
	je := jsonError{Message: err.Error(), Exit: exitCode(err)}
	var ae *admin.APIError
	if errors.As(err, &ae) {
		je.Code = ae.Code
	}
	c.printJSON(map[string]jsonError{"error": je})
}

func (c *cmd) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
}

func (c *cmd) users(ctx context.Context, args []string) error {
	if _, err := c.args("users", args, nil, 0, "users"); err != nil {
		return err
	}
	var users []admin.User
	if err := c.call(func(cl *admin.Client) (err error) { users, err = cl.Users(ctx); return err }); err != nil {
		return err
	}
	if c.json {
		c.printJSON(admin.UsersReply{Users: users})
		return nil
	}
	if len(users) == 0 {
		fmt.Fprintln(c.stdout, "no users online")
		return nil
	}
	tw := c.table()
	clustered := false
	for _, u := range users {
		for _, s := range u.Sessions {
			clustered = clustered || s.Node != ""
		}
	}
	if clustered {
		fmt.Fprintln(tw, "USER\tNODE\tSESSION\tREMOTE\tVIA\tCONNECTED\tMSGS IN\tMSGS OUT")
	} else {
		fmt.Fprintln(tw, "USER\tSESSION\tREMOTE\tVIA\tCONNECTED\tMSGS IN\tMSGS OUT")
	}
	for _, u := range users {
		for _, s := range u.Sessions {
			via := s.Transport
			if via == "" {
				via = "-" // a qqd from before transports were reported
			}
			node := ""
			if clustered {
				node = s.Node + "\t"
			}
			fmt.Fprintf(tw, "%s\t%s%d\t%s\t%s\t%s\t%d\t%d\n", u.User, node, s.ID, s.Remote, via, age(s.Since), s.MsgsIn, s.MsgsOut)
		}
	}
	return tw.Flush()
}

// age says how long ago t was, to the second, for people.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func (c *cmd) kick(ctx context.Context, args []string) error {
	var reason string
	var revoke bool
	pos, err := c.args("kick", args, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "reason shown to the user")
		fs.BoolVar(&revoke, "revoke", false, "revoke all of the user's resume tokens first")
	}, 1, "kick <user> [--reason TEXT] [--revoke]")
	if err != nil {
		return err
	}
	var r admin.KickReply
	err = c.call(func(cl *admin.Client) (err error) {
		if revoke {
			r.Kicked, r.Revoked, err = cl.KickRevoke(ctx, pos[0], reason)
		} else {
			r.Kicked, err = cl.Kick(ctx, pos[0], reason)
		}
		return err
	})
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(r)
		return nil
	}
	if revoke {
		fmt.Fprintf(c.stdout, "kicked %s: %s, %s revoked\n", pos[0], plural(r.Kicked, "session"), plural(int(r.Revoked), "resume token"))
		return nil
	}
	fmt.Fprintf(c.stdout, "kicked %s: %s\n", pos[0], plural(r.Kicked, "session"))
	return nil
}

func (c *cmd) stats(ctx context.Context, args []string) error {
	if _, err := c.args("stats", args, nil, 0, "stats"); err != nil {
		return err
	}
	var st *admin.Stats
	if err := c.call(func(cl *admin.Client) (err error) { st, err = cl.Stats(ctx); return err }); err != nil {
		return err
	}
	if c.json {
		c.printJSON(st)
		return nil
	}
	tw := c.table()
	fmt.Fprintf(tw, "version\t%s\n", st.Version)
	fmt.Fprintf(tw, "started\t%s (up %s)\n", st.Started.Local().Format(time.DateTime), time.Duration(st.UptimeSeconds)*time.Second)
	fmt.Fprintf(tw, "connections\t%d\n", st.Connections)
	fmt.Fprintf(tw, "logged in\t%d\n", st.LoggedIn)
	fmt.Fprintf(tw, "users online\t%d\n", st.UsersOnline)
	fmt.Fprintf(tw, "connections accepted\t%d\n", st.Accepted)
	fmt.Fprintf(tw, "messages stored\t%d\n", st.MessagesAccepted)
	fmt.Fprintf(tw, "messages pushed\t%d\n", st.MessagesPushed)
	return tw.Flush()
}

func (c *cmd) reload(ctx context.Context, args []string) error {
	var dryRun bool
	if _, err := c.args("reload", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "check what a reload would do (start and configure the plugins it would start) without changing anything")
	}, 0, "reload [--dry-run]"); err != nil {
		return err
	}
	if dryRun {
		return c.checkReload(ctx)
	}
	var keys []string
	if err := c.call(func(cl *admin.Client) (err error) { keys, err = cl.Reload(ctx); return err }); err != nil {
		return refusal(err, "reload refused: ")
	}
	if c.json {
		c.printJSON(admin.ReloadReply{NeedsRestart: keys})
		return nil
	}
	if len(keys) > 0 {
		fmt.Fprintf(c.stdout, "reloaded; changed settings that apply only after a restart: %s\n", strings.Join(keys, ", "))
		return nil
	}
	fmt.Fprintln(c.stdout, "reloaded")
	return nil
}

// refusal prefixes the message of a refused call's error (exit code
// exitRefused) with what was refused.
func refusal(err error, prefix string) error {
	var ce *cli.Error
	if errors.As(err, &ce) && ce.Code == exitRefused {
		ce.Msg = prefix + ce.Err.Error()
	}
	return err
}

// checkReload is reload --dry-run.
func (c *cmd) checkReload(ctx context.Context) error {
	var r *admin.ReloadCheckReply
	if err := c.call(func(cl *admin.Client) (err error) { r, err = cl.CheckReload(ctx); return err }); err != nil {
		return refusal(err, "reload would be refused: ")
	}
	if c.json {
		c.printJSON(r)
		return nil
	}
	list := func(names []string) string {
		if len(names) == 0 {
			return "none"
		}
		return strings.Join(names, ", ")
	}
	fmt.Fprintln(c.stdout, "a reload would succeed (nothing was changed)")
	tw := c.table()
	fmt.Fprintf(tw, "storage restarted\t%v\n", r.StorageRestarted)
	fmt.Fprintf(tw, "filters started\t%s\n", list(r.FiltersStarted))
	fmt.Fprintf(tw, "filters kept\t%s\n", list(r.FiltersKept))
	fmt.Fprintf(tw, "filters stopped\t%s\n", list(r.FiltersStopped))
	fmt.Fprintf(tw, "needs restart\t%s\n", list(r.NeedsRestart))
	return tw.Flush()
}

func (c *cmd) plugins(ctx context.Context, args []string) error {
	if _, err := c.args("plugins", args, nil, 0, "plugins"); err != nil {
		return err
	}
	var ps []admin.Plugin
	if err := c.call(func(cl *admin.Client) (err error) { ps, err = cl.Plugins(ctx); return err }); err != nil {
		return err
	}
	if c.json {
		c.printJSON(admin.PluginsReply{Plugins: ps})
		return nil
	}
	if len(ps) == 0 {
		fmt.Fprintln(c.stdout, "no plugins")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tKIND\tSTATE\tPID\tSINCE\tRESTARTS\tLAST ERROR")
	for _, p := range ps {
		state, pid := "down", "-"
		if p.Up {
			state, pid = "up", strconv.Itoa(p.Pid)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.Name, p.Kind, state, pid, age(p.Since), p.Restarts, p.LastError)
	}
	return tw.Flush()
}

func (c *cmd) account(ctx context.Context, args []string) error {
	const usage = "account add|rm|passwd <user>"
	pos, err := c.parse("account", args, nil, 1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("usage: qqadmin %s", usage)
	}
	sub := pos[0]
	switch sub {
	case "add", "rm", "passwd":
	default:
		return usageErrorf("unknown account command %q; usage: qqadmin %s", sub, usage)
	}
	pos, err = c.args("account "+sub, pos[1:], nil, 1, "account "+sub+" <user>")
	if err != nil {
		return err
	}
	name := pos[0]
	switch sub {
	case "add":
		pw, err := c.password(name)
		if err != nil {
			return err
		}
		if err := c.call(func(cl *admin.Client) error { return cl.AddAccount(ctx, name, pw) }); err != nil {
			return err
		}
		if c.json {
			c.printJSON(admin.AccountReply{User: name})
		} else {
			fmt.Fprintf(c.stdout, "account %s created\n", name)
		}
	case "rm":
		var n int64
		if err := c.call(func(cl *admin.Client) (err error) { n, err = cl.RemoveAccount(ctx, name); return err }); err != nil {
			return err
		}
		if c.json {
			c.printJSON(admin.RemoveAccountReply{User: name, DroppedPending: n})
		} else {
			fmt.Fprintf(c.stdout, "account %s removed (%s dropped)\n", name, plural(int(n), "pending message"))
		}
	case "passwd":
		pw, err := c.password(name)
		if err != nil {
			return err
		}
		if err := c.call(func(cl *admin.Client) error { return cl.SetPassword(ctx, name, pw) }); err != nil {
			return err
		}
		if c.json {
			c.printJSON(admin.AccountReply{User: name})
		} else {
			fmt.Fprintf(c.stdout, "password of %s changed\n", name)
		}
	}
	return nil
}

func (c *cmd) broadcast(ctx context.Context, args []string) error {
	pos, err := c.parse("broadcast", args, nil, 1)
	if err != nil {
		return err
	}
	text := strings.Join(pos, " ")
	if text == "" {
		return usageErrorf("usage: qqadmin broadcast <text...>")
	}
	var n int
	if err := c.call(func(cl *admin.Client) (err error) { n, err = cl.Broadcast(ctx, text); return err }); err != nil {
		return err
	}
	if c.json {
		c.printJSON(admin.BroadcastReply{Sessions: n})
		return nil
	}
	fmt.Fprintf(c.stdout, "notice sent to %s\n", plural(n, "session"))
	return nil
}

func (c *cmd) groups(ctx context.Context, args []string) error {
	pos, err := c.args("groups", args, nil, 1, "groups <user>")
	if err != nil {
		return err
	}
	var gs []admin.Group
	if err := c.call(func(cl *admin.Client) (err error) { gs, err = cl.UserGroups(ctx, pos[0]); return err }); err != nil {
		return err
	}
	if c.json {
		c.printJSON(admin.GroupsReply{User: pos[0], Groups: gs})
		return nil
	}
	if len(gs) == 0 {
		fmt.Fprintf(c.stdout, "%s is in no group\n", pos[0])
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "GROUP\tNAME\tROLE\tOWNER\tMEMBERS\tENTRIES")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", g.Group, printable(g.Name), g.Role, g.Owner, g.Members, g.LastSeq)
	}
	return tw.Flush()
}

func (c *cmd) tokens(ctx context.Context, args []string) error {
	pos, err := c.args("tokens", args, nil, 1, "tokens <user>")
	if err != nil {
		return err
	}
	var ts []admin.Token
	if err := c.call(func(cl *admin.Client) (err error) { ts, err = cl.Tokens(ctx, pos[0]); return err }); err != nil {
		return err
	}
	if c.json {
		if ts == nil {
			ts = []admin.Token{}
		}
		c.printJSON(admin.TokensReply{User: pos[0], Tokens: ts})
		return nil
	}
	if len(ts) == 0 {
		fmt.Fprintf(c.stdout, "%s has no resume tokens\n", pos[0])
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tCREATED\tLAST USED\tEXPIRES")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Created.Local().Format(time.DateTime),
			t.LastUsed.Local().Format(time.DateTime), t.Expires.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func (c *cmd) revoke(ctx context.Context, args []string) error {
	pos, err := c.parse("revoke", args, nil, 0)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("usage: qqadmin revoke <user> [<id>...]")
	}
	user, ids := pos[0], pos[1:]
	var n int64
	if err := c.call(func(cl *admin.Client) (err error) { n, err = cl.RevokeTokens(ctx, user, ids...); return err }); err != nil {
		return err
	}
	if c.json {
		c.printJSON(admin.RevokeReply{User: user, Revoked: n})
		return nil
	}
	fmt.Fprintf(c.stdout, "revoked %s of %s\n", plural(int(n), "resume token"), user)
	return nil
}

func (c *cmd) backup(ctx context.Context, args []string) error {
	pos, err := c.args("backup", args, nil, 1, "backup <dir>")
	if err != nil {
		return err
	}
	var r *admin.BackupReply
	if err := c.call(func(cl *admin.Client) (err error) { r, err = cl.Backup(ctx, pos[0]); return err }); err != nil {
		return refusal(err, "backup refused: ")
	}
	if c.json {
		c.printJSON(r)
		return nil
	}
	took := time.Duration(r.DurationMS) * time.Millisecond
	fmt.Fprintf(c.stdout, "backup written to %s in %s: %s in %s\n", r.Dir, took, sizeText(r.Bytes), plural(r.Files, "file"))
	return nil
}

// sizeText is n bytes for people: 512 B, 1.5 KiB, 3.2 GiB.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printable makes a name that users chose safe for a terminal and a
// table: control characters, tabs included, become escapes.
func printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func (c *cmd) group(ctx context.Context, args []string) error {
	const usage = "group show|members|dissolve <id>, or group remove <id> <user>"
	pos, err := c.parse("group", args, nil, 1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("usage: qqadmin %s", usage)
	}
	sub, want, subUsage := pos[0], 1, "group "+pos[0]+" <id>"
	switch sub {
	case "show", "members", "dissolve":
	case "remove":
		want, subUsage = 2, "group remove <id> <user>"
	default:
		return usageErrorf("unknown group command %q; usage: qqadmin %s", sub, usage)
	}
	pos, err = c.args("group "+sub, pos[1:], nil, want, subUsage)
	if err != nil {
		return err
	}
	id := strings.TrimPrefix(pos[0], "#")
	switch sub {
	case "show":
		var g *admin.Group
		if err := c.call(func(cl *admin.Client) (err error) { g, err = cl.Group(ctx, id); return err }); err != nil {
			return err
		}
		if c.json {
			c.printJSON(g)
			return nil
		}
		tw := c.table()
		fmt.Fprintf(tw, "group\t%s\n", g.Group)
		fmt.Fprintf(tw, "name\t%s\n", printable(g.Name))
		fmt.Fprintf(tw, "owner\t%s\n", g.Owner)
		fmt.Fprintf(tw, "state\t%s\n", map[bool]string{false: "live", true: "dissolved"}[g.Dissolved])
		fmt.Fprintf(tw, "members\t%d\n", g.Members)
		fmt.Fprintf(tw, "join policy\t%s\n", g.Policy)
		fmt.Fprintf(tw, "history\t%s\n", g.History)
		fmt.Fprintf(tw, "muted for all\t%v\n", g.MuteAll)
		fmt.Fprintf(tw, "log entries\t%d\n", g.LastSeq)
		return tw.Flush()
	case "members":
		return c.groupMembers(ctx, id)
	case "dissolve", "remove":
		var r *admin.GroupChangeReply
		err := c.call(func(cl *admin.Client) (err error) {
			if sub == "dissolve" {
				r, err = cl.DissolveGroup(ctx, id)
			} else {
				r, err = cl.RemoveGroupMember(ctx, id, pos[1])
			}
			return err
		})
		if err != nil {
			return err
		}
		if c.json {
			c.printJSON(r)
			return nil
		}
		if sub == "dissolve" {
			fmt.Fprintf(c.stdout, "group %s dissolved (entry %d, in the name of its owner %s)\n", r.Group, r.Seq, r.Actor)
		} else {
			fmt.Fprintf(c.stdout, "%s removed from group %s (entry %d, in the name of its owner %s)\n", pos[1], r.Group, r.Seq, r.Actor)
		}
	}
	return nil
}

// groupMembers prints every member of group id, page by page.
func (c *cmd) groupMembers(ctx context.Context, id string) error {
	var all []admin.GroupMember
	err := c.call(func(cl *admin.Client) error {
		after := ""
		for {
			ms, more, err := cl.GroupMembers(ctx, id, after, admin.MaxMembersPage)
			if err != nil {
				return err
			}
			all = append(all, ms...)
			if !more || len(ms) == 0 {
				return nil
			}
			after = ms[len(ms)-1].User
		}
	})
	if err != nil {
		return err
	}
	if all == nil {
		all = []admin.GroupMember{}
	}
	if c.json {
		c.printJSON(admin.GroupMembersReply{Group: id, Members: all})
		return nil
	}
	if len(all) == 0 {
		fmt.Fprintf(c.stdout, "group %s has no members\n", id)
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "USER\tROLE\tMUTED UNTIL")
	for _, m := range all {
		muted := "-"
		if !m.MutedUntil.IsZero() {
			muted = m.MutedUntil.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.User, m.Role, muted)
	}
	return tw.Flush()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// password returns the new password for user: QQADMIN_PASSWORD, or typed
// twice without echo when stdin is a terminal.
func (c *cmd) password(user string) (string, error) {
	if p := c.getenv("QQADMIN_PASSWORD"); p != "" {
		return p, nil
	}
	f, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageErrorf("no password: set QQADMIN_PASSWORD or run qqadmin on a terminal")
	}
	p, err := readPassword(f, c.stderr, "new password for "+user+": ")
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", usageErrorf("empty password")
	}
	p2, err := readPassword(f, c.stderr, "password again: ")
	if err != nil {
		return "", err
	}
	if p2 != p {
		return "", usageErrorf("the passwords do not match")
	}
	return p, nil
}

// readPassword reads a line without echo from the terminal f. On SIGINT
// or SIGTERM it restores the terminal's echo before giving up.
func readPassword(f *os.File, prompt io.Writer, text string) (string, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := cli.ReadPassword(ctx, int(f.Fd()), prompt, text)
	switch {
	case ctx.Err() != nil:
		return "", &cli.Error{Code: exitUsage, Msg: "interrupted"}
	case err != nil:
		return "", &cli.Error{Code: exitOther, Msg: "cannot read the password: " + err.Error(), Err: err}
	}
	return p, nil
}
