package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/adminserver"
	"github.com/qqchat/qq/admin/internal/admintest"
)

// childEnv makes the test binary run qqadmin itself with the arguments
// in the variable (JSON), so that tests can run it as another user.
const childEnv = "QQADMIN_TEST_CHILD"

func TestMain(m *testing.M) { admintest.Main(m, childEnv, runChild) }

// runChild runs qqadmin with the arguments in spec, as main would.
func runChild(spec string) int {
	var args []string
	json.Unmarshal([]byte(spec), &args)
	err := run(args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qqadmin: "+err.Error())
	}
	return exitCode(err)
}

var t0 = time.Now().Add(-95 * time.Second).Truncate(time.Second)

func backend() *admintest.Backend {
	return &admintest.Backend{
		SessionList: []admin.UserSession{
			{User: "alice", Session: admin.Session{ID: 1, Remote: "127.0.0.1:4001", Transport: "ws", Since: t0, MsgsIn: 2, MsgsOut: 3}},
			{User: "bob", Session: admin.Session{ID: 7, Remote: "[::1]:4002", Transport: "tcp", Since: t0, MsgsIn: 15, MsgsOut: 0}},
		},
		StatsValue: admin.Stats{Version: "1.2.3", Started: t0, Connections: 3, LoggedIn: 2, UsersOnline: 2, Accepted: 10, MessagesAccepted: 7, MessagesPushed: 9},
		PluginList: []admin.Plugin{
			{Name: "sqlite", Kind: "storage", Up: true, Pid: 42, Since: t0, Restarts: 0},
			{Name: "antispam", Kind: "filter", Up: false, Since: t0, Restarts: 3, LastError: "process exited"},
		},
		TokenList: map[string][]admin.Token{
			"alice": {
				{ID: "0123456789abcdef", Created: t0, LastUsed: t0.Add(time.Minute), Expires: t0.Add(168 * time.Hour)},
				{ID: "fedcba9876543210", Created: t0, LastUsed: t0, Expires: t0.Add(time.Hour)},
			},
			"dave": {{ID: "00000000000000aa", Created: t0, LastUsed: t0, Expires: t0.Add(time.Hour)}},
		},
		Online:     map[string]int{"alice": 2, "bob": 1},
		BroadcastN: 3,
		Accounts:   map[string]string{"carol": "carol-pass"},
		Pending:    4,
		GroupList: map[int64]admin.Group{
			12:  {Group: "12", Name: "crew\tlead", Owner: "alice", Policy: "open", History: "joined", Members: 3, LastSeq: 9},
			100: {Group: "100", Name: "book club", Owner: "bob", Policy: "approval", History: "shared", MuteAll: true, Members: 2, LastSeq: 30},
		},
		GroupMemberList: map[int64][]admin.GroupMember{
			12:  {{User: "alice", Role: "owner"}, {User: "bob", Role: "admin"}, {User: "carol", Role: "member", MutedUntil: t0}},
			100: {{User: "alice", Role: "member"}, {User: "bob", Role: "owner"}},
		},
	}
}

// serve runs an admin server with b (see admintest.Serve) and returns its
// socket path.
func serve(t *testing.T, opts adminserver.Options, b adminserver.Backend) string {
	t.Helper()
	return admintest.Serve(t, opts, b).Path()
}

// qqadmin runs run with args and env (which has no QQADMIN_SOCKET unless
// given) and returns what main would print and exit with.
func qqadmin(t *testing.T, env map[string]string, args ...string) admintest.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(args, getenv, strings.NewReader(""), &stdout, &stderr)
	if err != nil {
		fmt.Fprintln(&stderr, "qqadmin: "+err.Error())
	}
	return admintest.Result{Code: exitCode(err), Stdout: stdout.String(), Stderr: stderr.String()}
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
			stdout: `^USER   SESSION  REMOTE          VIA  CONNECTED  MSGS IN  MSGS OUT
alice  1        127.0.0.1:4001  ws   1m3\ds ago  2        3
bob    7        \[::1\]:4002      tcp  1m3\ds ago  15       0
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
			stderr: `^qqadmin: usage: qqadmin kick <user> \[--reason TEXT\] \[--revoke\] \(see qqadmin -h\)\n$`},
		{name: "kick revoke", args: []string{"kick", "--revoke", "alice", "--reason", "be nice"},
			stdout: "^kicked alice: 2 sessions, 2 resume tokens revoked\n$", calls: []string{"RevokeTokens alice", "Kick alice be nice"}},
		{name: "kick revoke not online", args: []string{"kick", "dave", "--revoke"},
			stdout: "^kicked dave: 0 sessions, 1 resume token revoked\n$", calls: []string{"RevokeTokens dave", "Kick dave "}},
		{name: "kick revoke json", args: []string{"--json", "kick", "--revoke", "bob"},
			stdout: "^{\n  \"kicked\": 1\n}\n$", calls: []string{"RevokeTokens bob", "Kick bob "}},
		{name: "kick revoke json revoked", args: []string{"--json", "kick", "--revoke", "alice"},
			stdout: "^{\n  \"kicked\": 2,\n  \"revoked\": 2\n}\n$", calls: []string{"RevokeTokens alice", "Kick alice "}},
		{name: "backup", setup: func(b *admintest.Backend) {
			b.BackupReply = admin.BackupReply{DurationMS: 2500, Bytes: 3 << 20, Files: 4}
		},
			args:   []string{"backup", "/var/lib/qqd/backup/2026-12-07"},
			stdout: `^backup written to /var/lib/qqd/backup/2026-12-07 in 2.5s: 3.0 MiB in 4 files\n$`, calls: []string{"Backup /var/lib/qqd/backup/2026-12-07"}},
		{name: "backup json", setup: func(b *admintest.Backend) { b.BackupReply = admin.BackupReply{DurationMS: 7, Bytes: 100, Files: 1} },
			args:   []string{"--json", "backup", "/b"},
			stdout: "^{\n  \"dir\": \"/b\",\n  \"duration_ms\": 7,\n  \"bytes\": 100,\n  \"files\": 1\n}\n$", calls: []string{"Backup /b"}},
		{name: "backup relative", args: []string{"backup", "b"}, code: 4,
			stderr: `^qqadmin: backup refused: dir "b" is not an absolute path: qqd's storage plugin writes it, in its own working directory\n$`},
		{name: "backup exists", setup: func(b *admintest.Backend) { b.BackupErr = admin.ErrBackupExists },
			args: []string{"backup", "/b"}, code: 4,
			stderr: "^qqadmin: backup refused: the backup directory exists: name a new one\n$", calls: []string{"Backup /b"}},
		{name: "backup unsupported", setup: func(b *admintest.Backend) { b.BackupErr = admin.ErrBackupUnsupported },
			args: []string{"backup", "/b"}, code: 4,
			stderr: "^qqadmin: backup refused: backup not supported by this storage plugin\n$", calls: []string{"Backup /b"}},
		{name: "backup fails", setup: func(b *admintest.Backend) { b.BackupErr = errors.New("disk full") },
			args: []string{"backup", "/b"}, code: 5,
			stderr: "^qqadmin: backup failed; see qqd's log\n$", calls: []string{"Backup /b"}},
		{name: "backup no dir", args: []string{"backup"}, code: 1,
			stderr: `^qqadmin: usage: qqadmin backup <dir> \(see qqadmin -h\)\n$`},
		{name: "kick revoke tokens off", setup: func(b *admintest.Backend) { b.TokenErr = admin.ErrTokensOff },
			args: []string{"kick", "--revoke", "alice"}, code: 4,
			stderr: "^qqadmin: this server keeps no resume tokens: they are turned off \\(tokens.enabled\\), or its storage has none\n$",
			calls:  []string{"RevokeTokens alice"}},
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
		{name: "reload dry run", args: []string{"reload", "--dry-run"},
			stdout: "^a reload would succeed \\(nothing was changed\\)\nstorage restarted +false\nfilters started +none\nfilters kept +wordfilter\nfilters stopped +none\nneeds restart +none\n$",
			calls:  []string{"CheckReload"}},
		{name: "reload dry run refused", setup: func(b *admintest.Backend) { b.ReloadErr = errors.New("plugins: filter x: bad") },
			args: []string{"reload", "--dry-run"}, code: 4,
			stderr: "^qqadmin: reload would be refused: plugins: filter x: bad\n$", calls: []string{"CheckReload"}},
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
		{name: "groups", args: []string{"groups", "alice"},
			stdout: `^GROUP  NAME        ROLE    OWNER  MEMBERS  ENTRIES
12     crew\\tlead  owner   alice  3        9
100    book club   member  bob    2        30
$`, calls: []string{"UserGroups alice"}},
		{name: "groups none", args: []string{"groups", "zed"}, stdout: "^zed is in no group\n$", calls: []string{"UserGroups zed"}},
		{name: "groups json", args: []string{"groups", "--json", "bob"},
			stdout: `(?s)^\{\n  "user": "bob",\n  "groups": \[\n    \{\n      "group": "12",.*"role": "admin"\n    \},.*"role": "owner"\n    \}\n  \]\n\}\n$`,
			calls:  []string{"UserGroups bob"}},
		{name: "groups no user", args: []string{"groups"}, code: 1, stderr: `usage: qqadmin groups <user>`},
		{name: "groups off", setup: func(b *admintest.Backend) { b.GroupErr = admin.ErrGroupsOff }, args: []string{"groups", "alice"},
			code: 4, stderr: "^qqadmin: this server keeps no groups: its storage has none\n$", calls: []string{"UserGroups alice"}},
		{name: "group show", args: []string{"group", "show", "#100"},
			stdout: `^group          100
name           book club
owner          bob
state          live
members        2
join policy    approval
history        shared
muted for all  true
log entries    30
$`, calls: []string{"Group 100"}},
		{name: "group show json", args: []string{"--json", "group", "show", "12"},
			stdout: `(?s)^\{\n  "group": "12",\n  "name": "crew\\tlead",.*"dissolved": false\n\}\n$`, calls: []string{"Group 12"}},
		{name: "group show none", args: []string{"group", "show", "13"}, code: 4, stderr: "^qqadmin: no such group\n$", calls: []string{"Group 13"}},
		{name: "group show bad id", args: []string{"group", "show", "crew"}, code: 4, stderr: `^qqadmin: invalid group id "crew": want its digits\n$`},
		{name: "group members", args: []string{"group", "members", "12"},
			stdout: `^USER   ROLE    MUTED UNTIL
alice  owner   -
bob    admin   -
carol  member  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d
$`, calls: []string{"GroupMembers 12  1000"}},
		{name: "group members json", args: []string{"group", "members", "100", "--json"},
			stdout: `(?s)^\{\n  "group": "100",\n  "members": \[.*"user": "bob",\n      "role": "owner"\n    \}\n  \],\n  "more": false\n\}\n$`,
			calls:  []string{"GroupMembers 100  1000"}},
		{name: "group remove", args: []string{"group", "remove", "12", "carol"},
			stdout: "^carol removed from group 12 \\(entry 10, in the name of its owner alice\\)\n$", calls: []string{"RemoveGroupMember 12 carol"}},
		{name: "group remove owner", args: []string{"group", "remove", "12", "alice"}, code: 4,
			stderr: "^qqadmin: alice owns group 12; dissolve the group instead\n$", calls: []string{"RemoveGroupMember 12 alice"}},
		{name: "group remove non-member json", args: []string{"--json", "group", "remove", "12", "dave"}, code: 4,
			stdout: `^\{\n  "error": \{\n    "code": "not_member",\n    "message": "not a member of the group",\n    "exit": 4\n  \}\n\}\n$`,
			stderr: "not a member", calls: []string{"RemoveGroupMember 12 dave"}},
		{name: "group dissolve", args: []string{"group", "dissolve", "100"},
			stdout: "^group 100 dissolved \\(entry 31, in the name of its owner bob\\)\n$", calls: []string{"DissolveGroup 100"}},
		{name: "group dissolve json", args: []string{"group", "dissolve", "--json", "12"},
			stdout: "^\\{\n  \"group\": \"12\",\n  \"seq\": 10,\n  \"actor\": \"alice\"\n\\}\n$", calls: []string{"DissolveGroup 12"}},
		{name: "group bad subcommand", args: []string{"group", "list"}, code: 1, stderr: `unknown group command "list"`},
		{name: "group remove no user", args: []string{"group", "remove", "12"}, code: 1, stderr: `usage: qqadmin group remove <id> <user>`},
		{name: "group nothing", args: []string{"group"}, code: 1, stderr: `usage: qqadmin group show\|members\|dissolve <id>, or group remove <id> <user>`},
		{name: "tokens", args: []string{"tokens", "alice"},
			stdout: `^ID                CREATED              LAST USED            EXPIRES
0123456789abcdef  (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ){2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d
fedcba9876543210  (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ){2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d
$`, calls: []string{"UserTokens alice"}},
		{name: "tokens none", args: []string{"tokens", "zed"}, stdout: "^zed has no resume tokens\n$", calls: []string{"UserTokens zed"}},
		{name: "tokens json", args: []string{"tokens", "--json", "dave"},
			stdout: `^\{\n  "user": "dave",\n  "tokens": \[\n    \{\n      "id": "00000000000000aa",\n      "created": "[^"]+",\n      "last_used": "[^"]+",\n      "expires": "[^"]+"\n    \}\n  \]\n\}\n$`,
			calls:  []string{"UserTokens dave"}},
		{name: "tokens json none", args: []string{"--json", "tokens", "zed"},
			stdout: "^\\{\n  \"user\": \"zed\",\n  \"tokens\": \\[\\]\n\\}\n$", calls: []string{"UserTokens zed"}},
		{name: "tokens off", setup: func(b *admintest.Backend) { b.TokenErr = admin.ErrTokensOff }, args: []string{"tokens", "alice"},
			code: 4, stderr: "no resume tokens", calls: []string{"UserTokens alice"}},
		{name: "tokens no user", args: []string{"tokens"}, code: 1, stderr: `usage: qqadmin tokens <user>`},
		{name: "revoke", args: []string{"revoke", "alice", "fedcba9876543210"},
			stdout: "^revoked 1 resume token of alice\n$", calls: []string{"RevokeTokens alice fedcba9876543210"}},
		{name: "revoke all", args: []string{"revoke", "alice"},
			stdout: "^revoked 2 resume tokens of alice\n$", calls: []string{"RevokeTokens alice"}},
		{name: "revoke none", args: []string{"revoke", "zed", "0123456789abcdef"},
			stdout: "^revoked 0 resume tokens of zed\n$", calls: []string{"RevokeTokens zed 0123456789abcdef"}},
		{name: "revoke json", args: []string{"--json", "revoke", "alice", "0123456789abcdef", "fedcba9876543210"},
			stdout: "^\\{\n  \"user\": \"alice\",\n  \"revoked\": 2\n\\}\n$", calls: []string{"RevokeTokens alice 0123456789abcdef fedcba9876543210"}},
		{name: "revoke bad id", args: []string{"revoke", "alice", "0123456789ABCDEF"}, code: 4,
			stderr: `^qqadmin: invalid token id "0123456789ABCDEF": want 16 lowercase hex digits\n$`},
		{name: "revoke off", setup: func(b *admintest.Backend) { b.TokenErr = admin.ErrTokensOff }, args: []string{"revoke", "alice"},
			code: 4, stderr: "no resume tokens", calls: []string{"RevokeTokens alice"}},
		{name: "revoke no user", args: []string{"revoke"}, code: 1, stderr: `usage: qqadmin revoke <user> \[<id>...\]`},
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
			path := serve(t, adminserver.Options{}, b)
			args := append([]string{"--socket", path}, tt.args...)
			r := qqadmin(t, tt.env, args...)
			if r.Code != tt.code {
				t.Errorf("qqadmin %q: exit %d, want %d\nstdout: %s\nstderr: %s", tt.args, r.Code, tt.code, r.Stdout, r.Stderr)
			}
			if !regexp.MustCompile(orEmpty(tt.stdout)).MatchString(r.Stdout) {
				t.Errorf("qqadmin %q: stdout\n%s\nwant match of\n%s", tt.args, r.Stdout, tt.stdout)
			}
			if !regexp.MustCompile(orEmpty(tt.stderr)).MatchString(r.Stderr) {
				t.Errorf("qqadmin %q: stderr\n%s\nwant match of\n%s", tt.args, r.Stderr, tt.stderr)
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
	if r.Code != 2 || r.Stderr != want {
		t.Errorf("exit %d, stderr %q; want 2, %q", r.Code, r.Stderr, want)
	}

	// QQADMIN_SOCKET is the default; --json reports the failure on stdout.
	r = qqadmin(t, map[string]string{"QQADMIN_SOCKET": missing}, "--json", "stats")
	if r.Code != 2 || r.Stderr != want || !strings.Contains(r.Stdout, `"exit": 2`) {
		t.Errorf("with QQADMIN_SOCKET: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
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
	if r.Code != 2 || r.Stderr != want {
		t.Errorf("stale socket: exit %d, stderr %q; want 2, %q", r.Code, r.Stderr, want)
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
// and returns its exit code and output. It needs root.
func asNobody(t *testing.T, gids []uint32, args ...string) admintest.Result {
	t.Helper()
	spec, _ := json.Marshal(args)
	return admintest.RunAs(t, 65534, gids, childEnv, string(spec))
}

func TestPermissionDenied(t *testing.T) {
	const nogroup, users = 65534, 100
	const want = "qqadmin: permission denied: you must be root, the qqd user or in group users\n"

	// The kernel refuses the connect: the socket is 0660 with group users.
	path := serve(t, adminserver.Options{Group: "users"}, backend())
	r := asNobody(t, []uint32{nogroup}, "--socket", path, "users")
	if r.Code != 3 || r.Stderr != want {
		t.Errorf("connect refused: exit %d, stderr %q; want 3, %q", r.Code, r.Stderr, want)
	}

	// The server refuses: the socket is open to all (a read-only group
	// is set) and the credential check says no.
	path = serve(t, adminserver.Options{Group: "users", ReadOnlyGroup: "staff"}, backend())
	r = asNobody(t, []uint32{nogroup}, "--socket", path, "users")
	if r.Code != 3 || r.Stderr != want {
		t.Errorf("403: exit %d, stderr %q; want 3, %q", r.Code, r.Stderr, want)
	}

	// A member of the group may.
	r = asNobody(t, []uint32{nogroup, users}, "--socket", path, "kick", "alice")
	if r.Code != 0 || r.Stdout != "kicked alice: 2 sessions\n" {
		t.Errorf("as a member: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}
