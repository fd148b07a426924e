package adminserver_test

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/adminserver"
	"github.com/qqchat/qq/admin/internal/admintest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func richBackend() *admintest.Backend {
	b := fakeBackend()
	b.SessionList = []admin.UserSession{
		{User: "alice", Session: admin.Session{ID: 1, Remote: "127.0.0.1:4001", Since: t0, MsgsIn: 2, MsgsOut: 3}},
		{User: "alice", Session: admin.Session{ID: 4, Remote: "127.0.0.1:4004", Since: t0, MsgsIn: 0, MsgsOut: 1}},
		{User: "bob", Session: admin.Session{ID: 2, Remote: "[::1]:4002", Since: t0, MsgsIn: 5, MsgsOut: 0}},
	}
	b.StatsValue = admin.Stats{Version: "1.2.3", Started: t0, Connections: 4, LoggedIn: 3, UsersOnline: 2, Accepted: 10, MessagesAccepted: 7, MessagesPushed: 9}
	b.PluginList = []admin.Plugin{
		{Name: "sqlite", Kind: "storage", Up: true, Pid: 42, Since: t0, Restarts: 1},
		{Name: "antispam", Kind: "filter", Up: false, Since: t0, Restarts: 3, LastError: "process exited"},
	}
	b.GroupList = map[int64]admin.Group{
		12:  {Group: "12", Name: "crew", Owner: "alice", Policy: "open", History: "joined", Members: 3, LastSeq: 9},
		15:  {Group: "15", Name: "old", Owner: "bob", Policy: "invite", History: "shared", LastSeq: 4, Dissolved: true},
		100: {Group: "100", Name: "book club", Owner: "bob", Policy: "approval", History: "joined", MuteAll: true, Members: 2, LastSeq: 30},
	}
	b.GroupMemberList = map[int64][]admin.GroupMember{
		12:  {{User: "alice", Role: "owner"}, {User: "bob", Role: "admin"}, {User: "carol", Role: "member", MutedUntil: t0}},
		100: {{User: "alice", Role: "member"}, {User: "bob", Role: "owner"}},
	}
	b.TokenList = map[string][]admin.Token{
		"alice": {
			{ID: "0123456789abcdef", Created: t0, LastUsed: t0.Add(time.Hour), Expires: t0.Add(169 * time.Hour)},
			{ID: "fedcba9876543210", Created: t0, LastUsed: t0, Expires: t0.Add(168 * time.Hour)},
		},
		"dave": {{ID: "00000000000000aa", Created: t0, LastUsed: t0, Expires: t0.Add(time.Hour)}},
	}
	b.Online = map[string]int{"alice": 2}
	b.BroadcastN = 3
	b.Pending = 5
	return b
}

// TestEndpoints calls every endpoint as curl would and checks the reply
// and what reached the Backend.
func TestEndpoints(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		setup                    func(*admintest.Backend)
		status                   int
		want                     string // JSON the reply must equal
		calls                    []string
	}{
		{name: "users", method: "GET", path: "/v1/users", status: 200,
			want: `{"users":[{"user":"alice","sessions":[
				{"id":1,"remote":"127.0.0.1:4001","since":"2026-03-01T12:00:00Z","msgs_in":2,"msgs_out":3},
				{"id":4,"remote":"127.0.0.1:4004","since":"2026-03-01T12:00:00Z","msgs_in":0,"msgs_out":1}]},
				{"user":"bob","sessions":[{"id":2,"remote":"[::1]:4002","since":"2026-03-01T12:00:00Z","msgs_in":5,"msgs_out":0}]}]}`,
			calls: []string{"Sessions"}},
		{name: "users none", method: "GET", path: "/v1/users", status: 200, want: `{"users":[]}`,
			setup: func(b *admintest.Backend) { b.SessionList = nil }, calls: []string{"Sessions"}},
		{name: "plugins", method: "GET", path: "/v1/plugins", status: 200,
			want: `{"plugins":[
				{"name":"sqlite","kind":"storage","up":true,"pid":42,"since":"2026-03-01T12:00:00Z","restarts":1},
				{"name":"antispam","kind":"filter","up":false,"since":"2026-03-01T12:00:00Z","restarts":3,"last_error":"process exited"}]}`,
			calls: []string{"Plugins"}},
		{name: "kick", method: "POST", path: "/v1/kick", body: `{"user":"alice","reason":"spam"}`, status: 200,
			want: `{"kicked":2}`, calls: []string{"Kick alice spam"}},
		{name: "kick not online", method: "POST", path: "/v1/kick", body: `{"user":"dave"}`, status: 404,
			want: `{"error":{"code":"not_online","message":"dave is not online"}}`, calls: []string{"Kick dave "}},
		{name: "kick no user", method: "POST", path: "/v1/kick", body: `{"reason":"x"}`, status: 400,
			want: `{"error":{"code":"invalid","message":"user is required"}}`},
		{name: "kick reason too long", method: "POST", path: "/v1/kick", body: `{"user":"a","reason":"` + strings.Repeat("x", 1025) + `"}`, status: 400,
			want: `{"error":{"code":"invalid","message":"reason is over 1024 bytes"}}`},
		{name: "kick revoke", method: "POST", path: "/v1/kick", body: `{"user":"alice","reason":"spam","revoke":true}`, status: 200,
			want: `{"kicked":2,"revoked":2}`, calls: []string{"RevokeTokens alice", "Kick alice spam"}},
		{name: "kick revoke not online", method: "POST", path: "/v1/kick", body: `{"user":"dave","revoke":true}`, status: 200,
			want: `{"kicked":0,"revoked":1}`, calls: []string{"RevokeTokens dave", "Kick dave "}},
		{name: "kick revoke nothing", method: "POST", path: "/v1/kick", body: `{"user":"zed","revoke":true}`, status: 200,
			want: `{"kicked":0}`, calls: []string{"RevokeTokens zed", "Kick zed "}},
		{name: "kick revoke tokens off", method: "POST", path: "/v1/kick", body: `{"user":"alice","revoke":true}`, status: 501,
			setup: func(b *admintest.Backend) { b.TokenErr = admin.ErrTokensOff },
			want:  `{"error":{"code":"tokens_off","message":"this server keeps no resume tokens: they are turned off (tokens.enabled), or its storage has none"}}`,
			calls: []string{"RevokeTokens alice"}},
		{name: "kick revoke fails", method: "POST", path: "/v1/kick", body: `{"user":"alice","revoke":true}`, status: 500,
			setup: func(b *admintest.Backend) { b.TokenErr = errors.New("storage timed out") },
			want:  `{"error":{"code":"internal","message":"internal error; see qqd's log"}}`, calls: []string{"RevokeTokens alice"}},
		{name: "backup", method: "POST", path: "/v1/backup", body: `{"dir":"/var/lib/qqd/backup/1"}`, status: 200,
			setup: func(b *admintest.Backend) { b.BackupReply = admin.BackupReply{DurationMS: 1500, Bytes: 4096, Files: 1} },
			want:  `{"dir":"/var/lib/qqd/backup/1","duration_ms":1500,"bytes":4096,"files":1}`, calls: []string{"Backup /var/lib/qqd/backup/1"}},
		{name: "backup relative", method: "POST", path: "/v1/backup", body: `{"dir":"backup/1"}`, status: 400,
			want: `{"error":{"code":"invalid","message":"dir \"backup/1\" is not an absolute path: qqd's storage plugin writes it, in its own working directory"}}`},
		{name: "backup no dir", method: "POST", path: "/v1/backup", body: `{}`, status: 400,
			want: `{"error":{"code":"invalid","message":"dir is required"}}`},
		{name: "backup exists", method: "POST", path: "/v1/backup", body: `{"dir":"/b"}`, status: 409,
			setup: func(b *admintest.Backend) { b.BackupErr = admin.ErrBackupExists },
			want:  `{"error":{"code":"backup_exists","message":"the backup directory exists: name a new one"}}`, calls: []string{"Backup /b"}},
		{name: "backup busy", method: "POST", path: "/v1/backup", body: `{"dir":"/b"}`, status: 409,
			setup: func(b *admintest.Backend) { b.BackupErr = admin.ErrBackupBusy },
			want:  `{"error":{"code":"backup_busy","message":"a backup is already running; try again when it is done"}}`, calls: []string{"Backup /b"}},
		{name: "backup unsupported", method: "POST", path: "/v1/backup", body: `{"dir":"/b"}`, status: 501,
			setup: func(b *admintest.Backend) { b.BackupErr = admin.ErrBackupUnsupported },
			want:  `{"error":{"code":"backup_unsupported","message":"backup not supported by this storage plugin"}}`, calls: []string{"Backup /b"}},
		{name: "backup fails", method: "POST", path: "/v1/backup", body: `{"dir":"/b"}`, status: 500,
			setup: func(b *admintest.Backend) {
				b.BackupErr = errors.New("sqlitestore: backup to /b: mkdir /b: read-only file system")
			},
			want: `{"error":{"code":"backup_failed","message":"backup failed; see qqd's log"}}`, calls: []string{"Backup /b"}},
		{name: "broadcast", method: "POST", path: "/v1/broadcast", body: `{"text":"maintenance at 5"}`, status: 200,
			want: `{"sessions":3}`, calls: []string{"Broadcast maintenance at 5"}},
		{name: "broadcast empty", method: "POST", path: "/v1/broadcast", body: `{"text":""}`, status: 400,
			want: `{"error":{"code":"invalid","message":"text is required"}}`},
		{name: "reload", method: "POST", path: "/v1/reload", status: 200, want: `{"needs_restart":[]}`, calls: []string{"Reload"}},
		{name: "reload needs restart", method: "POST", path: "/v1/reload", status: 200,
			setup: func(b *admintest.Backend) { b.NeedsRestart = []string{"listen", "data_dir"} },
			want:  `{"needs_restart":["listen","data_dir"]}`, calls: []string{"Reload"}},
		{name: "reload refused", method: "POST", path: "/v1/reload", status: 409,
			setup: func(b *admintest.Backend) { b.ReloadErr = errors.New("invalid configuration: listen: bad port") },
			want:  `{"error":{"code":"reload_refused","message":"invalid configuration: listen: bad port"}}`, calls: []string{"Reload"}},
		{name: "reload check", method: "POST", path: "/v1/reload/check", status: 200,
			setup: func(b *admintest.Backend) { b.NeedsRestart = []string{"listen"} },
			want:  `{"needs_restart":["listen"],"storage_restarted":false,"filters_started":[],"filters_kept":["wordfilter"],"filters_stopped":[]}`,
			calls: []string{"CheckReload"}},
		{name: "reload check refused", method: "POST", path: "/v1/reload/check", status: 409,
			setup: func(b *admintest.Backend) { b.ReloadErr = errors.New("plugins: filter x: bad") },
			want:  `{"error":{"code":"reload_refused","message":"plugins: filter x: bad"}}`, calls: []string{"CheckReload"}},
		{name: "add account", method: "POST", path: "/v1/accounts", body: `{"user":"dave","password":"dave-secret"}`, status: 200,
			want: `{"user":"dave"}`, calls: []string{"AddAccount dave dave-secret"}},
		{name: "add account exists", method: "POST", path: "/v1/accounts", body: `{"user":"carol","password":"whatever1"}`, status: 409,
			want: `{"error":{"code":"user_exists","message":"user exists"}}`, calls: []string{"AddAccount carol whatever1"}},
		{name: "add account short password", method: "POST", path: "/v1/accounts", body: `{"user":"dave","password":"short"}`, status: 400,
			want: `{"error":{"code":"invalid","message":"password must be 8 to 1024 bytes of UTF-8"}}`, calls: []string{"AddAccount dave short"}},
		{name: "add account no password", method: "POST", path: "/v1/accounts", body: `{"user":"dave"}`, status: 400,
			want: `{"error":{"code":"invalid","message":"password is required"}}`},
		{name: "remove account", method: "DELETE", path: "/v1/accounts/carol", status: 200,
			want: `{"user":"carol","dropped_pending":5}`, calls: []string{"RemoveAccount carol"}},
		{name: "remove unknown account", method: "DELETE", path: "/v1/accounts/nobody", status: 404,
			want: `{"error":{"code":"unknown_user","message":"unknown user"}}`, calls: []string{"RemoveAccount nobody"}},
		{name: "set password", method: "PUT", path: "/v1/accounts/carol/password", body: `{"password":"new-secret"}`, status: 200,
			want: `{"user":"carol"}`, calls: []string{"SetPassword carol new-secret"}},
		{name: "set password unknown", method: "PUT", path: "/v1/accounts/zed/password", body: `{"password":"new-secret"}`, status: 404,
			want: `{"error":{"code":"unknown_user","message":"unknown user"}}`, calls: []string{"SetPassword zed new-secret"}},
		{name: "set password invalid", method: "PUT", path: "/v1/accounts/carol/password", body: `{"password":"x"}`, status: 400,
			want: `{"error":{"code":"invalid","message":"password must be 8 to 1024 bytes of UTF-8"}}`, calls: []string{"SetPassword carol x"}},
		{name: "internal error", method: "POST", path: "/v1/accounts", body: `{"user":"dave","password":"dave-secret"}`, status: 500,
			setup: func(b *admintest.Backend) { b.AccountErr = errors.New("disk on fire at /var/lib/secret") },
			want:  `{"error":{"code":"internal","message":"internal error; see qqd's log"}}`, calls: []string{"AddAccount dave dave-secret"}},
		{name: "wrapped invalid", method: "DELETE", path: "/v1/accounts/Bad", status: 400,
			setup: func(b *admintest.Backend) { b.AccountErr = errorsJoin(admin.ErrInvalid, "user must be lower case") },
			want:  `{"error":{"code":"invalid","message":"user must be lower case"}}`, calls: []string{"RemoveAccount Bad"}},

		// Groups.
		{name: "user groups", method: "GET", path: "/v1/groups?user=alice", status: 200,
			want: `{"user":"alice","groups":[
				{"group":"12","name":"crew","owner":"alice","policy":"open","history":"joined","mute_all":false,"members":3,"last_seq":9,"dissolved":false,"role":"owner"},
				{"group":"100","name":"book club","owner":"bob","policy":"approval","history":"joined","mute_all":true,"members":2,"last_seq":30,"dissolved":false,"role":"member"}]}`,
			calls: []string{"UserGroups alice"}},
		{name: "user groups none", method: "GET", path: "/v1/groups?user=zed", status: 200,
			want: `{"user":"zed","groups":[]}`, calls: []string{"UserGroups zed"}},
		{name: "all groups", method: "GET", path: "/v1/groups", status: 400,
			want: `{"error":{"code":"invalid","message":"user is required (GET /v1/groups?user=NAME lists the groups of a user; the storage lists no groups but by member: GET /v1/groups/{id} describes one)"}}`},
		{name: "user groups empty user", method: "GET", path: "/v1/groups?user=", status: 400,
			want: `{"error":{"code":"invalid","message":"user is required"}}`},
		{name: "group", method: "GET", path: "/v1/groups/12", status: 200,
			want:  `{"group":"12","name":"crew","owner":"alice","policy":"open","history":"joined","mute_all":false,"members":3,"last_seq":9,"dissolved":false}`,
			calls: []string{"Group 12"}},
		{name: "group dissolved", method: "GET", path: "/v1/groups/15", status: 200,
			want:  `{"group":"15","name":"old","owner":"bob","policy":"invite","history":"shared","mute_all":false,"members":0,"last_seq":4,"dissolved":true}`,
			calls: []string{"Group 15"}},
		{name: "no group", method: "GET", path: "/v1/groups/13", status: 404,
			want: `{"error":{"code":"no_group","message":"no such group"}}`, calls: []string{"Group 13"}},
		{name: "bad group id", method: "GET", path: "/v1/groups/012", status: 400,
			want: `{"error":{"code":"invalid","message":"invalid group id \"012\": want the digits of a group id"}}`},
		{name: "group id not a number", method: "DELETE", path: "/v1/groups/crew", status: 400,
			want: `{"error":{"code":"invalid","message":"invalid group id \"crew\": want the digits of a group id"}}`},
		{name: "groups off", method: "GET", path: "/v1/groups/12", status: 501,
			setup: func(b *admintest.Backend) { b.GroupErr = admin.ErrGroupsOff },
			want:  `{"error":{"code":"groups_off","message":"this server keeps no groups: its storage has none"}}`, calls: []string{"Group 12"}},
		{name: "members", method: "GET", path: "/v1/groups/12/members", status: 200,
			want: `{"group":"12","members":[{"user":"alice","role":"owner"},{"user":"bob","role":"admin"},
				{"user":"carol","role":"member","muted_until":"2026-03-01T12:00:00Z"}],"more":false}`,
			calls: []string{"GroupMembers 12  100"}},
		{name: "members page", method: "GET", path: "/v1/groups/12/members?after=alice&limit=1", status: 200,
			want: `{"group":"12","members":[{"user":"bob","role":"admin"}],"more":true}`, calls: []string{"GroupMembers 12 alice 1"}},
		{name: "members of a dissolved group", method: "GET", path: "/v1/groups/15/members", status: 200,
			want: `{"group":"15","members":[],"more":false}`, calls: []string{"GroupMembers 15  100"}},
		{name: "members bad limit", method: "GET", path: "/v1/groups/12/members?limit=1001", status: 400,
			want: `{"error":{"code":"invalid","message":"limit must be 1 to 1000"}}`},
		{name: "members no group", method: "GET", path: "/v1/groups/7/members", status: 404,
			want: `{"error":{"code":"no_group","message":"no such group"}}`, calls: []string{"GroupMembers 7  100"}},
		{name: "dissolve", method: "DELETE", path: "/v1/groups/12", status: 200,
			want: `{"group":"12","seq":10,"actor":"alice"}`, calls: []string{"DissolveGroup 12"}},
		{name: "dissolve dissolved", method: "DELETE", path: "/v1/groups/15", status: 404,
			want: `{"error":{"code":"no_group","message":"no such group"}}`, calls: []string{"DissolveGroup 15"}},
		{name: "remove member", method: "DELETE", path: "/v1/groups/12/members/carol", status: 200,
			want: `{"group":"12","seq":10,"actor":"alice"}`, calls: []string{"RemoveGroupMember 12 carol"}},
		{name: "remove non-member", method: "DELETE", path: "/v1/groups/12/members/dave", status: 404,
			want: `{"error":{"code":"not_member","message":"not a member of the group"}}`, calls: []string{"RemoveGroupMember 12 dave"}},
		{name: "remove owner", method: "DELETE", path: "/v1/groups/12/members/alice", status: 409,
			want:  `{"error":{"code":"not_allowed","message":"alice owns group 12; dissolve the group instead"}}`,
			calls: []string{"RemoveGroupMember 12 alice"}},
		{name: "remove unknown user", method: "DELETE", path: "/v1/groups/12/members/zed", status: 404,
			setup: func(b *admintest.Backend) { b.GroupErr = admin.ErrUnknownUser },
			want:  `{"error":{"code":"unknown_user","message":"unknown user"}}`, calls: []string{"RemoveGroupMember 12 zed"}},
		{name: "group internal error", method: "DELETE", path: "/v1/groups/12", status: 500,
			setup: func(b *admintest.Backend) { b.GroupErr = errors.New("storage timed out") },
			want:  `{"error":{"code":"internal","message":"internal error; see qqd's log"}}`, calls: []string{"DissolveGroup 12"}},
		{name: "members wrong method", method: "POST", path: "/v1/groups/12/members", status: 405,
			want: `{"error":{"code":"method_not_allowed","message":"method POST not allowed on /v1/groups/12/members"}}`},

		// Resume tokens.
		{name: "tokens", method: "GET", path: "/v1/tokens?user=alice", status: 200,
			want: `{"user":"alice","tokens":[
				{"id":"0123456789abcdef","created":"2026-03-01T12:00:00Z","last_used":"2026-03-01T13:00:00Z","expires":"2026-03-08T13:00:00Z"},
				{"id":"fedcba9876543210","created":"2026-03-01T12:00:00Z","last_used":"2026-03-01T12:00:00Z","expires":"2026-03-08T12:00:00Z"}]}`,
			calls: []string{"UserTokens alice"}},
		{name: "tokens none", method: "GET", path: "/v1/tokens?user=zed", status: 200,
			want: `{"user":"zed","tokens":[]}`, calls: []string{"UserTokens zed"}},
		{name: "tokens no user", method: "GET", path: "/v1/tokens", status: 400,
			want: `{"error":{"code":"invalid","message":"user is required"}}`},
		{name: "tokens off", method: "GET", path: "/v1/tokens?user=alice", status: 501,
			setup: func(b *admintest.Backend) { b.TokenErr = admin.ErrTokensOff },
			want:  `{"error":{"code":"tokens_off","message":"this server keeps no resume tokens: they are turned off (tokens.enabled), or its storage has none"}}`,
			calls: []string{"UserTokens alice"}},
		{name: "revoke", method: "POST", path: "/v1/tokens/revoke", body: `{"user":"alice","ids":["fedcba9876543210","00000000000000aa"]}`, status: 200,
			want: `{"user":"alice","revoked":1}`, calls: []string{"RevokeTokens alice fedcba9876543210 00000000000000aa"}},
		{name: "revoke all", method: "POST", path: "/v1/tokens/revoke", body: `{"user":"alice"}`, status: 200,
			want: `{"user":"alice","revoked":2}`, calls: []string{"RevokeTokens alice"}},
		{name: "revoke all empty ids", method: "POST", path: "/v1/tokens/revoke", body: `{"user":"alice","ids":[]}`, status: 200,
			want: `{"user":"alice","revoked":2}`, calls: []string{"RevokeTokens alice"}},
		{name: "revoke upper case id", method: "POST", path: "/v1/tokens/revoke", body: `{"user":"alice","ids":["0123456789ABCDEF"]}`, status: 400,
			want: `{"error":{"code":"invalid","message":"invalid token id \"0123456789ABCDEF\": want 16 lowercase hex digits"}}`},
		{name: "revoke whole token", method: "POST", path: "/v1/tokens/revoke",
			body: `{"user":"alice","ids":["qqt1.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]}`, status: 400,
			want: `{"error":{"code":"invalid","message":"invalid token id \"qqt1.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\": want 16 lowercase hex digits"}}`},
		{name: "revoke short id", method: "POST", path: "/v1/tokens/revoke", body: `{"user":"alice","ids":["0123456789abcde"]}`, status: 400,
			want: `{"error":{"code":"invalid","message":"invalid token id \"0123456789abcde\": want 16 lowercase hex digits"}}`},
		{name: "revoke too many ids", method: "POST", path: "/v1/tokens/revoke",
			body: `{"user":"alice","ids":["` + strings.Repeat(`0123456789abcdef","`, 1000) + `0123456789abcdef"]}`, status: 400,
			want: `{"error":{"code":"invalid","message":"over 1000 ids"}}`},
		{name: "revoke no user", method: "POST", path: "/v1/tokens/revoke", body: `{"ids":["0123456789abcdef"]}`, status: 400,
			want: `{"error":{"code":"invalid","message":"user is required"}}`},
		{name: "revoke tokens off", method: "POST", path: "/v1/tokens/revoke", body: `{"user":"alice"}`, status: 501,
			setup: func(b *admintest.Backend) { b.TokenErr = admin.ErrTokensOff },
			want:  `{"error":{"code":"tokens_off","message":"this server keeps no resume tokens: they are turned off (tokens.enabled), or its storage has none"}}`,
			calls: []string{"RevokeTokens alice"}},
		{name: "revoke wrong method", method: "GET", path: "/v1/tokens/revoke", status: 405,
			want: `{"error":{"code":"method_not_allowed","message":"method GET not allowed on /v1/tokens/revoke"}}`},

		// Errors of the transport.
		{name: "unknown endpoint", method: "GET", path: "/v1/nope", status: 404,
			want: `{"error":{"code":"not_found","message":"no endpoint GET /v1/nope"}}`},
		{name: "unversioned", method: "GET", path: "/users", status: 404,
			want: `{"error":{"code":"not_found","message":"no endpoint GET /users"}}`},
		{name: "wrong method", method: "POST", path: "/v1/users", status: 405,
			want: `{"error":{"code":"method_not_allowed","message":"method POST not allowed on /v1/users"}}`},
		{name: "bad json", method: "POST", path: "/v1/kick", body: `{"user":`, status: 400,
			want: `{"error":{"code":"bad_request","message":"request body: unexpected EOF"}}`},
		{name: "no body", method: "POST", path: "/v1/kick", status: 400,
			want: `{"error":{"code":"bad_request","message":"request body: want a JSON object"}}`},
		{name: "unknown field", method: "POST", path: "/v1/kick", body: `{"user":"alice","why":"x"}`, status: 400,
			want: `{"error":{"code":"bad_request","message":"request body: json: unknown field \"why\""}}`},
		{name: "trailing data", method: "POST", path: "/v1/kick", body: `{"user":"alice"} {}`, status: 400,
			want: `{"error":{"code":"bad_request","message":"request body: data after the JSON object"}}`},
		{name: "too large", method: "POST", path: "/v1/broadcast", body: `{"text":"` + strings.Repeat("x", admin.MaxBodyBytes) + `"}`, status: 413,
			want: `{"error":{"code":"too_large","message":"request body over 65536 bytes"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := richBackend()
			if tt.setup != nil {
				tt.setup(b)
			}
			s, _ := start(t, adminserver.Options{}, b)
			status, body, err := rawRequest(s.Path(), tt.method, tt.path, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.status {
				t.Errorf("%s %s = %d, want %d (%s)", tt.method, tt.path, status, tt.status, body)
			}
			if !jsonEqual(t, body, tt.want) {
				t.Errorf("%s %s = %s, want %s", tt.method, tt.path, body, tt.want)
			}
			if got := b.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("backend calls = %q, want %q", got, tt.calls)
			}
		})
	}
}

func errorsJoin(err error, msg string) error {
	return &wrapped{err: err, msg: err.Error() + ": " + msg}
}

type wrapped struct {
	err error
	msg string
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

func TestStats(t *testing.T) {
	b := richBackend()
	b.StatsValue.Started = time.Now().Add(-90 * time.Second)
	_, c := start(t, adminserver.Options{}, b)
	st, err := c.Stats(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.UptimeSeconds < 89 || st.UptimeSeconds > 95 {
		t.Errorf("uptime = %ds, want about 90", st.UptimeSeconds)
	}
	st.UptimeSeconds, st.Started = 0, time.Time{}
	want := admin.Stats{Version: "1.2.3", Connections: 4, LoggedIn: 3, UsersOnline: 2, Accepted: 10, MessagesAccepted: 7, MessagesPushed: 9}
	if *st != want {
		t.Errorf("Stats = %+v, want %+v", *st, want)
	}
}

// TestClient checks every Client method and its errors.
func TestClient(t *testing.T) {
	b := richBackend()
	_, c := start(t, adminserver.Options{}, b)
	ctx := ctx(t)

	users, err := c.Users(ctx)
	if err != nil || len(users) != 2 || users[0].User != "alice" || len(users[0].Sessions) != 2 || users[1].Sessions[0].Remote != "[::1]:4002" {
		t.Errorf("Users = %+v, %v", users, err)
	}
	ps, err := c.Plugins(ctx)
	if err != nil || len(ps) != 2 || ps[0] != (admin.Plugin{Name: "sqlite", Kind: "storage", Up: true, Pid: 42, Since: t0, Restarts: 1}) {
		t.Errorf("Plugins = %+v, %v", ps, err)
	}
	if n, err := c.Kick(ctx, "alice", "bye"); n != 2 || err != nil {
		t.Errorf("Kick(alice) = %d, %v; want 2, nil", n, err)
	}
	var ae *admin.APIError
	if n, err := c.Kick(ctx, "dave", ""); n != 0 || !errors.As(err, &ae) || ae.Code != admin.CodeNotOnline || ae.Status != 404 {
		t.Errorf("Kick(dave) = %d, %v; want not_online", n, err)
	}
	if n, err := c.Broadcast(ctx, "hi"); n != 3 || err != nil {
		t.Errorf("Broadcast = %d, %v", n, err)
	}
	if keys, err := c.Reload(ctx); err != nil || keys == nil || len(keys) != 0 {
		t.Errorf("Reload = %q, %v; want [], nil", keys, err)
	}
	if err := c.AddAccount(ctx, "dave", "dave-secret"); err != nil {
		t.Errorf("AddAccount = %v", err)
	}
	if err := c.AddAccount(ctx, "dave", "dave-secret"); !errors.Is(err, admin.ErrUserExists) {
		t.Errorf("AddAccount again = %v, want ErrUserExists", err)
	}
	if err := c.AddAccount(ctx, "erin", "short"); !errors.Is(err, admin.ErrInvalid) || err.Error() != "password must be 8 to 1024 bytes of UTF-8" {
		t.Errorf("AddAccount short = %v, want ErrInvalid", err)
	}
	if err := c.SetPassword(ctx, "dave", "other-secret"); err != nil || b.Accounts["dave"] != "other-secret" {
		t.Errorf("SetPassword = %v", err)
	}
	if err := c.SetPassword(ctx, "zed", "other-secret"); !errors.Is(err, admin.ErrUnknownUser) {
		t.Errorf("SetPassword(zed) = %v, want ErrUnknownUser", err)
	}
	if n, err := c.RemoveAccount(ctx, "dave"); n != 5 || err != nil {
		t.Errorf("RemoveAccount = %d, %v", n, err)
	}
	if _, err := c.RemoveAccount(ctx, "dave"); !errors.Is(err, admin.ErrUnknownUser) {
		t.Errorf("RemoveAccount again = %v, want ErrUnknownUser", err)
	}
	if _, err := c.RemoveAccount(ctx, ".."); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("RemoveAccount(..) = %v, want ErrInvalid", err)
	}
	gs, err := c.UserGroups(ctx, "bob")
	if err != nil || len(gs) != 2 || gs[0].Group != "12" || gs[0].Role != "admin" || gs[1].Group != "100" || gs[1].Role != "owner" {
		t.Errorf("UserGroups(bob) = %+v, %v", gs, err)
	}
	if g, err := c.Group(ctx, "100"); err != nil || g.Name != "book club" || !g.MuteAll || g.Members != 2 {
		t.Errorf("Group(100) = %+v, %v", g, err)
	}
	if _, err := c.Group(ctx, "13"); !errors.Is(err, admin.ErrNoGroup) {
		t.Errorf("Group(13) = %v, want ErrNoGroup", err)
	}
	if _, err := c.Group(ctx, "../users"); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("Group(../users) = %v, want ErrInvalid", err)
	}
	ms, more, err := c.GroupMembers(ctx, "12", "", 2)
	if err != nil || !more || len(ms) != 2 || ms[1] != (admin.GroupMember{User: "bob", Role: "admin"}) {
		t.Errorf("GroupMembers(12, 2) = %+v, %v, %v", ms, more, err)
	}
	ms, more, err = c.GroupMembers(ctx, "12", "bob", 0)
	if err != nil || more || len(ms) != 1 || !ms[0].MutedUntil.Equal(t0) {
		t.Errorf("GroupMembers(12, after bob) = %+v, %v, %v", ms, more, err)
	}
	if r, err := c.RemoveGroupMember(ctx, "12", "alice"); !errors.Is(err, admin.ErrNotAllowed) || err.Error() != "alice owns group 12; dissolve the group instead" {
		t.Errorf("RemoveGroupMember(owner) = %+v, %v; want ErrNotAllowed", r, err)
	}
	if _, err := c.RemoveGroupMember(ctx, "12", "dave"); !errors.Is(err, admin.ErrNotMember) {
		t.Errorf("RemoveGroupMember(dave) = %v, want ErrNotMember", err)
	}
	if r, err := c.RemoveGroupMember(ctx, "12", "bob"); err != nil || *r != (admin.GroupChangeReply{Group: "12", Seq: 10, Actor: "alice"}) {
		t.Errorf("RemoveGroupMember(bob) = %+v, %v", r, err)
	}
	if r, err := c.DissolveGroup(ctx, "12"); err != nil || *r != (admin.GroupChangeReply{Group: "12", Seq: 11, Actor: "alice"}) {
		t.Errorf("DissolveGroup = %+v, %v", r, err)
	}
	if _, err := c.DissolveGroup(ctx, "12"); !errors.Is(err, admin.ErrNoGroup) {
		t.Errorf("DissolveGroup again = %v, want ErrNoGroup", err)
	}
	b.GroupErr = admin.ErrGroupsOff
	if _, err := c.UserGroups(ctx, "bob"); !errors.Is(err, admin.ErrGroupsOff) {
		t.Errorf("UserGroups without groups = %v, want ErrGroupsOff", err)
	}

	ts, err := c.Tokens(ctx, "alice")
	if err != nil || len(ts) != 2 || ts[0].ID != "0123456789abcdef" || !ts[0].LastUsed.Equal(t0.Add(time.Hour)) || !ts[1].Expires.Equal(t0.Add(168*time.Hour)) {
		t.Errorf("Tokens(alice) = %+v, %v", ts, err)
	}
	if ts, err := c.Tokens(ctx, "zed"); err != nil || ts == nil || len(ts) != 0 {
		t.Errorf("Tokens(zed) = %#v, %v; want [], nil", ts, err)
	}
	if _, err := c.Tokens(ctx, ""); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("Tokens(\"\") = %v, want ErrInvalid", err)
	}
	if n, err := c.RevokeTokens(ctx, "alice", "fedcba9876543210"); n != 1 || err != nil {
		t.Errorf("RevokeTokens(alice, fedcba9876543210) = %d, %v; want 1", n, err)
	}
	if _, err := c.RevokeTokens(ctx, "alice", "FEDCBA9876543210"); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("RevokeTokens(upper case) = %v, want ErrInvalid", err)
	}
	if n, err := c.RevokeTokens(ctx, "dave"); n != 1 || err != nil {
		t.Errorf("RevokeTokens(dave) = %d, %v; want 1 (all)", n, err)
	}
	if k, r, err := c.KickRevoke(ctx, "alice", "bye"); k != 2 || r != 1 || err != nil {
		t.Errorf("KickRevoke(alice) = %d, %d, %v; want 2, 1", k, r, err)
	}
	if k, r, err := c.KickRevoke(ctx, "dave", ""); k != 0 || r != 0 || err != nil {
		t.Errorf("KickRevoke(dave) = %d, %d, %v; want 0, 0, nil: with revoke, not online is no error", k, r, err)
	}
	if calls := b.Calls(); !slices.Equal(calls[len(calls)-4:], []string{"RevokeTokens alice", "Kick alice bye", "RevokeTokens dave", "Kick dave "}) {
		t.Errorf("last calls = %q; want each revocation before its kick", calls[len(calls)-4:])
	}
	b.TokenErr = admin.ErrTokensOff
	if _, err := c.Tokens(ctx, "alice"); !errors.Is(err, admin.ErrTokensOff) || !errors.As(err, &ae) || ae.Status != 501 {
		t.Errorf("Tokens without tokens = %v, want ErrTokensOff (501)", err)
	}
	if _, err := c.RevokeTokens(ctx, "alice"); !errors.Is(err, admin.ErrTokensOff) {
		t.Errorf("RevokeTokens without tokens = %v, want ErrTokensOff", err)
	}
	if _, _, err := c.KickRevoke(ctx, "alice", ""); !errors.Is(err, admin.ErrTokensOff) {
		t.Errorf("KickRevoke without tokens = %v, want ErrTokensOff", err)
	}

	b.ReloadErr = errors.New("plugin wordfilter: bad config")
	if _, err := c.Reload(ctx); !errors.As(err, &ae) || ae.Code != admin.CodeReloadRefused || ae.Message != "plugin wordfilter: bad config" {
		t.Errorf("Reload = %v, want reload_refused", err)
	}
}

func TestDialErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := admin.Dial(filepath.Join(dir, "none.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dial(missing) = %v, want ErrNotExist", err)
	}
	stale := staleSocket(t, filepath.Join(dir, "stale.sock"))
	if _, err := admin.Dial(stale); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial(stale) = %v, want ECONNREFUSED", err)
	}
}

// staleSocket leaves a socket file at path that nothing listens on, as a
// crashed qqd would.
func staleSocket(t *testing.T, path string) string {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return path
}

func TestSocketSafety(t *testing.T) {
	dir := admintest.OpenTempDir(t)
	path := filepath.Join(dir, "admin.sock")

	t.Run("live socket is not taken over", func(t *testing.T) {
		s, _ := start(t, adminserver.Options{Path: path}, fakeBackend())
		_, err := adminserver.Listen(adminserver.Options{Path: path}, fakeBackend())
		if err == nil || err.Error() != "another qqd is already listening on "+path {
			t.Fatalf("second Listen = %v, want another qqd is already listening", err)
		}
		// The first one still answers.
		if status, _, err := rawRequest(s.Path(), "GET", "/v1/users", ""); err != nil || status != 200 {
			t.Errorf("first server: %d, %v", status, err)
		}
	})
	t.Run("closed server removes its socket", func(t *testing.T) {
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket after Close: %v, want it removed", err)
		}
	})
	t.Run("stale socket is replaced", func(t *testing.T) {
		staleSocket(t, path)
		s, c := start(t, adminserver.Options{Path: path}, fakeBackend())
		if _, err := c.Users(ctx(t)); err != nil {
			t.Errorf("Users on the new socket: %v", err)
		}
		_ = s
	})
	t.Run("other file is left alone", func(t *testing.T) {
		file := filepath.Join(dir, "precious")
		os.WriteFile(file, []byte("data"), 0o600)
		_, err := adminserver.Listen(adminserver.Options{Path: file}, fakeBackend())
		if err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("Listen on a file = %v, want is not a socket", err)
		}
		if b, _ := os.ReadFile(file); string(b) != "data" {
			t.Errorf("file was changed: %q", b)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := adminserver.Listen(adminserver.Options{Path: filepath.Join(dir, "no", "admin.sock")}, fakeBackend())
		if err == nil {
			t.Error("Listen in a missing directory succeeded")
		}
	})
	t.Run("unknown group", func(t *testing.T) {
		_, err := adminserver.Listen(adminserver.Options{Path: path, Group: "no-such-group-qq"}, fakeBackend())
		if err == nil || !strings.Contains(err.Error(), `unknown group "no-such-group-qq"`) {
			t.Errorf("Listen = %v, want unknown group", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left after a failed Listen: %v", err)
		}
	})
}

func TestSocketMode(t *testing.T) {
	tests := []struct {
		name string
		opts adminserver.Options
		mode os.FileMode
		gid  int // -1: ours
	}{
		{"default", adminserver.Options{}, 0o660, -1},
		{"group", adminserver.Options{Group: "users"}, 0o660, 100},
		{"read-only group", adminserver.Options{Group: "users", ReadOnlyGroup: "staff"}, 0o666, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.gid >= 0 && os.Getuid() != 0 {
				t.Skip("chgrp needs root or membership")
			}
			s, _ := start(t, tt.opts, fakeBackend())
			fi, err := os.Stat(s.Path())
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != tt.mode {
				t.Errorf("mode = %v, want socket %v", fi.Mode(), tt.mode)
			}
			gid := int(fi.Sys().(*syscall.Stat_t).Gid)
			want := tt.gid
			if want < 0 {
				want = os.Getgid()
			}
			if gid != want {
				t.Errorf("group = %d, want %d", gid, want)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s, c := start(t, adminserver.Options{Registry: reg}, richBackend())
	c.Users(ctx(t))
	c.Users(ctx(t))
	c.Kick(ctx(t), "nobody", "")
	rawRequest(s.Path(), "GET", "/v1/secret/alice", "")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "qqd_admin_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var key []string
			for _, l := range m.GetLabel() {
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(key, ",")] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"code=200,endpoint=GET /v1/users": 2,
		"code=404,endpoint=POST /v1/kick": 1,
		"code=404,endpoint=other":         1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("qqd_admin_requests_total = %v, want %v", got, want)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// A second server on the same registry cannot register again.
	if _, err := adminserver.Listen(adminserver.Options{Path: filepath.Join(t.TempDir(), "b.sock"), Registry: reg}, fakeBackend()); err == nil {
		t.Error("second Listen on the same registry succeeded")
	}
}

func TestCloseBeforeServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	s, err := adminserver.Listen(adminserver.Options{Path: path}, fakeBackend())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
}

func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("reply %q is not JSON: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}
