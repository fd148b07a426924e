package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/internal/admintest"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/plugins"
	"go.uber.org/goleak"
)

// childEnv makes the test binary run qqadmin itself with the arguments
// in the variable (JSON), so that tests can run it as another user.
const childEnv = "QQADMIN_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		var args []string
		json.Unmarshal([]byte(spec), &args)
		err := run(args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "qqadmin: "+err.Error())
		}
		os.Exit(exitCode(err))
	}
	goleak.VerifyTestMain(m)
}

var t0 = time.Now().Add(-95 * time.Second).Truncate(time.Second)

func backend() *admintest.Backend {
	return &admintest.Backend{
		SessionList: []daemon.SessionInfo{
			{ID: 1, User: "alice", Remote: "127.0.0.1:4001", Since: t0, MsgsIn: 2, MsgsOut: 3},
			{ID: 7, User: "bob", Remote: "[::1]:4002", Since: t0, MsgsIn: 15, MsgsOut: 0},
		},
		StatsValue: daemon.Stats{Started: t0, Connections: 3, LoggedIn: 2, UsersOnline: 2, Accepted: 10, MessagesAccepted: 7, MessagesPushed: 9},
		PluginList: []plugins.Status{
			{Name: "sqlite", Kind: plugins.KindStorage, Up: true, Pid: 42, Since: t0, Restarts: 0},
			{Name: "antispam", Kind: plugins.KindFilter, Up: false, Since: t0, Restarts: 3, LastErr: "process exited"},
		},
		Online:     map[string]int{"alice": 2, "bob": 1},
		BroadcastN: 3,
		Accounts:   map[string]string{"carol": "carol-pass"},
		Pending:    4,
	}
}

// serve runs an admin server with b in a fresh directory and returns its
// socket path.
func serve(t *testing.T, opts admin.Options, b admin.Backend) string {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(openTempDir(t), "admin.sock")
	}
	s, err := admin.Listen(opts, b)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return opts.Path
}

// openTempDir is a t.TempDir() that other users may enter.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type result struct {
	code           int
	stdout, stderr string
}

// qqadmin runs run with args and env (which has no QQADMIN_SOCKET unless
// given) and returns what main would print and exit with.
func qqadmin(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(args, getenv, strings.NewReader(""), &stdout, &stderr)
	if err != nil {
		fmt.Fprintln(&stderr, "qqadmin: "+err.Error())
	}
	return result{exitCode(err), stdout.String(), stderr.String()}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*admintest.Backend)
		env    map[string]string
		args   []string
		code   int
		stdout string // regexp, matched against the whole output
		stderr string // regexp
		calls  []string
	}{
		{name: "users", args: []string{"users"},
			stdout: `^USER   SESSION  REMOTE          CONNECTED  MSGS IN  MSGS OUT
alice  1        127.0.0.1:4001  1m3\ds ago  2        3
bob    7        \[::1\]:4002      1m3\ds ago  15       0
$`, calls: []string{"Sessions"}},
		{name: "users none", setup: func(b *admintest.Backend) { b.SessionList = nil }, args: []string{"users"},
			stdout: "^no users online\n$", calls: []string{"Sessions"}},
		{name: "users json", args: []string{"--json", "users"},
			stdout: `(?s)^\{\n  "users": \[\n    \{\n      "user": "alice",.*"msgs_in": 15,.*\}\n$`, calls: []string{"Sessions"}},
		{name: "kick", args: []string{"kick", "alice", "--reason", "be nice"},
			stdout: "^kicked alice: 2 sessions\n$", calls: []string{"Kick alice be nice"}},
		{name: "kick one", args: []string{"kick", "--reason=x", "bob"},
			stdout: "^kicked bob: 1 session\n$", calls: []string{"Kick bob x"}},
		{name: "kick json", args: []string{"kick", "bob", "--json"},
			stdout: "^{\n  \"kicked\": 1\n}\n$", calls: []string{"Kick bob "}},
		{name: "kick not online", args: []string{"kick", "dave"}, code: 4,
			stderr: "^qqadmin: dave is not online\n$", calls: []string{"Kick dave "}},
		{name: "kick not online json", args: []string{"--json", "kick", "dave"}, code: 4,
			stdout: `^\{\n  "error": \{\n    "code": "not_online",\n    "message": "dave is not online",\n    "exit": 4\n  \}\n\}\n$`,
			stderr: "dave is not online", calls: []string{"Kick dave "}},
		{name: "kick no user", args: []string{"kick"}, code: 1,
			stderr: `^qqadmin: usage: qqadmin kick <user> \[--reason TEXT\] \(see qqadmin -h\)\n$`},
		{name: "stats", args: []string{"stats"},
			stdout: `^version               \S+
started               \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(up 1m3\ds\)
connections           3
logged in             2
users online          2
connections accepted  10
messages stored       7
messages pushed       9
$`, calls: []string{"Stats"}},
		{name: "stats json", args: []string{"stats", "--json"},
			stdout: `(?s)"uptime_seconds": 9\d,.*"messages_pushed": 9`, calls: []string{"Stats"}},
		{name: "reload", args: []string{"reload"}, stdout: "^reloaded\n$", calls: []string{"Reload"}},
		{name: "reload needs restart", setup: func(b *admintest.Backend) { b.NeedsRestart = []string{"listen", "data_dir"} },
			args: []string{"reload"}, stdout: "^reloaded; changed settings that apply only after a restart: listen, data_dir\n$", calls: []string{"Reload"}},
		{name: "reload json", args: []string{"reload", "--json"}, stdout: "^{\n  \"needs_restart\": \\[\\]\n}\n$", calls: []string{"Reload"}},
		{name: "reload refused", setup: func(b *admintest.Backend) { b.ReloadErr = errors.New("invalid configuration: listen: bad port") },
			args: []string{"reload"}, code: 4,
			stderr: "^qqadmin: reload refused: invalid configuration: listen: bad port\n$", calls: []string{"Reload"}},
		{name: "plugins", args: []string{"plugins"},
			stdout: `^NAME      KIND     STATE  PID  SINCE      RESTARTS  LAST ERROR
sqlite    storage  up     42   1m3\ds ago  0         
antispam  filter   down   -    1m3\ds ago  3         process exited
$`, calls: []string{"Plugins"}},
		{name: "account add", env: map[string]string{"QQADMIN_PASSWORD": "dave-secret"}, args: []string{"account", "add", "dave"},
			stdout: "^account dave created\n$", calls: []string{"AddAccount dave dave-secret"}},
		{name: "account add exists", env: map[string]string{"QQADMIN_PASSWORD": "dave-secret"}, args: []string{"account", "add", "carol"},
			code: 4, stderr: "^qqadmin: user exists\n$", calls: []string{"AddAccount carol dave-secret"}},
		{name: "account add short", env: map[string]string{"QQADMIN_PASSWORD": "short"}, args: []string{"account", "add", "dave"},
			code: 4, stderr: "^qqadmin: password must be 8 to 1024 bytes of UTF-8\n$", calls: []string{"AddAccount dave short"}},
		{name: "account add no password", args: []string{"account", "add", "dave"},
			code: 1, stderr: "no password: set QQADMIN_PASSWORD or run qqadmin on a terminal"},
		{name: "account add internal", setup: func(b *admintest.Backend) { b.AccountErr = errors.New("disk on fire") },
			env: map[string]string{"QQADMIN_PASSWORD": "dave-secret"}, args: []string{"account", "add", "dave"},
			code: 5, stderr: "^qqadmin: internal error; see qqd's log\n$", calls: []string{"AddAccount dave dave-secret"}},
		{name: "account rm", args: []string{"account", "rm", "carol"},
			stdout: `^account carol removed \(4 pending messages dropped\)\n$`, calls: []string{"RemoveAccount carol"}},
		{name: "account rm json", args: []string{"--json", "account", "rm", "carol"},
			stdout: `^\{\n  "user": "carol",\n  "dropped_pending": 4\n\}\n$`, calls: []string{"RemoveAccount carol"}},
		{name: "account rm unknown", args: []string{"account", "rm", "zed"},
			code: 4, stderr: "^qqadmin: unknown user\n$", calls: []string{"RemoveAccount zed"}},
		{name: "account passwd", env: map[string]string{"QQADMIN_PASSWORD": "new-secret"}, args: []string{"account", "passwd", "carol"},
			stdout: "^password of carol changed\n$", calls: []string{"SetPassword carol new-secret"}},
		{name: "account passwd unknown", env: map[string]string{"QQADMIN_PASSWORD": "new-secret"}, args: []string{"account", "passwd", "zed"},
			code: 4, stderr: "^qqadmin: unknown user\n$", calls: []string{"SetPassword zed new-secret"}},
		{name: "account bad subcommand", args: []string{"account", "list"}, code: 1, stderr: `unknown account command "list"`},
		{name: "account no user", args: []string{"account", "rm"}, code: 1, stderr: `usage: qqadmin account rm <user>`},
		{name: "broadcast", args: []string{"broadcast", "back", "in", "5", "--minutes"},
			stdout: "^notice sent to 3 sessions\n$", calls: []string{"Broadcast back in 5 --minutes"}},
		{name: "broadcast json", args: []string{"--json", "broadcast", "hi"},
			stdout: "^{\n  \"sessions\": 3\n}\n$", calls: []string{"Broadcast hi"}},
		{name: "broadcast nothing", args: []string{"broadcast"}, code: 1, stderr: `usage: qqadmin broadcast <text...>`},
		{name: "no command", args: nil, code: 1, stderr: "no command"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 1, stderr: `unknown command "frobnicate"`},
		{name: "bad flag", args: []string{"--nope", "users"}, code: 1, stderr: `flag provided but not defined: -nope`},
		{name: "extra argument", args: []string{"stats", "now"}, code: 1, stderr: `usage: qqadmin stats`},
		{name: "help", args: []string{"-h"}, stdout: `(?s)^qqadmin: administer.*Exit codes:\n  0  ok\n  1  usage error\n  2 .*  3 .*  4 .*  5  anything else\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backend()
			if tt.setup != nil {
				tt.setup(b)
			}
			path := serve(t, admin.Options{}, b)
			args := append([]string{"--socket", path}, tt.args...)
			r := qqadmin(t, tt.env, args...)
			if r.code != tt.code {
				t.Errorf("qqadmin %q: exit %d, want %d\nstdout: %s\nstderr: %s", tt.args, r.code, tt.code, r.stdout, r.stderr)
			}
			if !regexp.MustCompile(orEmpty(tt.stdout)).MatchString(r.stdout) {
				t.Errorf("qqadmin %q: stdout\n%s\nwant match of\n%s", tt.args, r.stdout, tt.stdout)
			}
			if !regexp.MustCompile(orEmpty(tt.stderr)).MatchString(r.stderr) {
				t.Errorf("qqadmin %q: stderr\n%s\nwant match of\n%s", tt.args, r.stderr, tt.stderr)
			}
			if got := b.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("qqadmin %q: backend calls %q, want %q", tt.args, got, tt.calls)
			}
		})
	}
}

func orEmpty(re string) string {
	if re == "" {
		return "^$"
	}
	return re
}

func TestSocketNotFound(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "admin.sock")
	r := qqadmin(t, nil, "--socket", missing, "users")
	want := "qqadmin: no qqd admin socket at " + missing + ": is qqd running? (--socket)\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 2, %q", r.code, r.stderr, want)
	}

	// QQADMIN_SOCKET is the default; --json reports the failure on stdout.
	r = qqadmin(t, map[string]string{"QQADMIN_SOCKET": missing}, "--json", "stats")
	if r.code != 2 || r.stderr != want || !strings.Contains(r.stdout, `"exit": 2`) {
		t.Errorf("with QQADMIN_SOCKET: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// A socket file left by a qqd that died.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	r = qqadmin(t, nil, "--socket", stale, "users")
	want = "qqadmin: nothing listens on the qqd admin socket " + stale + ": is qqd running? (--socket)\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("stale socket: exit %d, stderr %q; want 2, %q", r.code, r.stderr, want)
	}
}

func TestDefaultSocket(t *testing.T) {
	c := &cmd{getenv: func(string) string { return "" }}
	want := localSocket
	if _, err := os.Stat(systemdSocket); err == nil {
		want = systemdSocket
	}
	if got := c.socketPath(); got != want {
		t.Errorf("default socket = %s, want %s", got, want)
	}
	c.getenv = func(k string) string { return map[string]string{"QQADMIN_SOCKET": "/x.sock"}[k] }
	if got := c.socketPath(); got != "/x.sock" {
		t.Errorf("socket with QQADMIN_SOCKET = %s", got)
	}
	c.socket = "/y.sock"
	if got := c.socketPath(); got != "/y.sock" {
		t.Errorf("socket with --socket = %s", got)
	}
}

// asNobody runs qqadmin args in a child process as uid 65534 with gids,
// and returns its exit code and stderr. It needs root.
func asNobody(t *testing.T, gids []uint32, args ...string) result {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to run qqadmin as another user")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(openTempDir(t), "qqadmin.test")
	if err := os.Link(self, bin); err != nil {
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(bin, 0o755)
	spec, _ := json.Marshal(args)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec), "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: gids[0], Groups: gids[1:]}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

func TestPermissionDenied(t *testing.T) {
	const nogroup, users = 65534, 100
	const want = "qqadmin: permission denied: you must be root, the qqd user or in group users\n"

	// The kernel refuses the connect: the socket is 0660 with group users.
	path := serve(t, admin.Options{Group: "users"}, backend())
	r := asNobody(t, []uint32{nogroup}, "--socket", path, "users")
	if r.code != 3 || r.stderr != want {
		t.Errorf("connect refused: exit %d, stderr %q; want 3, %q", r.code, r.stderr, want)
	}

	// The server refuses: the socket is open to all (a read-only group
	// is set) and the credential check says no.
	path = serve(t, admin.Options{Group: "users", ReadOnlyGroup: "staff"}, backend())
	r = asNobody(t, []uint32{nogroup}, "--socket", path, "users")
	if r.code != 3 || r.stderr != want {
		t.Errorf("403: exit %d, stderr %q; want 3, %q", r.code, r.stderr, want)
	}

	// A member of the group may.
	r = asNobody(t, []uint32{nogroup, users}, "--socket", path, "kick", "alice")
	if r.code != 0 || r.stdout != "kicked alice: 2 sessions\n" {
		t.Errorf("as a member: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
