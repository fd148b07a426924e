package adminserver_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/admin/adminserver"
	"github.com/qqchat/qq/daemon/daemontest"
)

// TestMutatingCallsAreLogged: a write call is logged with the caller's
// uid, gid and pid; a read call is not logged at info level.
func TestMutatingCallsAreLogged(t *testing.T) {
	var buf daemontest.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	_, c := start(t, adminserver.Options{Logger: log}, richBackend())
	c.Users(ctx(t))
	if _, err := c.Kick(ctx(t), "alice", "spam"); err != nil {
		t.Fatal(err)
	}
	line := adminCallLine(&buf, 1)
	want := map[string]any{
		"msg": "admin call", "method": "POST", "path": "/v1/kick", "status": float64(200),
		"uid": float64(os.Getuid()), "gid": float64(os.Getgid()), "pid": float64(os.Getpid()),
		"user": "alice", "sessions": float64(2),
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
	if strings.Count(buf.String(), `"admin call"`) != 1 {
		t.Errorf("log has other admin calls than the kick:\n%s", buf.String())
	}
}

// TestRevocationsAreLogged: the log of a revocation, by POST
// /v1/tokens/revoke or by a kick with revoke, names the user, the ids
// (or all) and how many tokens were revoked.
func TestRevocationsAreLogged(t *testing.T) {
	var buf daemontest.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	_, c := start(t, adminserver.Options{Logger: log}, richBackend())
	if _, err := c.RevokeTokens(ctx(t), "alice", "fedcba9876543210"); err != nil {
		t.Fatal(err)
	}
	line := adminCallLine(&buf, 1)
	if line["path"] != "/v1/tokens/revoke" || line["user"] != "alice" || !reflect.DeepEqual(line["ids"], []any{"fedcba9876543210"}) || line["revoked"] != float64(1) {
		t.Errorf("log of the revocation = %v", line)
	}
	if _, err := c.RevokeTokens(ctx(t), "dave"); err != nil {
		t.Fatal(err)
	}
	line = adminCallLine(&buf, 2)
	if line["user"] != "dave" || line["ids"] != "all" || line["revoked"] != float64(1) {
		t.Errorf("log of the revocation of all = %v", line)
	}
	if _, _, err := c.KickRevoke(ctx(t), "alice", "spam"); err != nil {
		t.Fatal(err)
	}
	line = adminCallLine(&buf, 3)
	if line["path"] != "/v1/kick" || line["user"] != "alice" || line["revoke"] != true || line["revoked"] != float64(1) || line["sessions"] != float64(2) {
		t.Errorf("log of the kick with revoke = %v", line)
	}
}

// adminCallLine waits until buf holds n "admin call" lines (the server
// logs a call after it has answered) and returns the last, decoded.
func adminCallLine(buf *daemontest.SyncBuffer, n int) map[string]any {
	var line map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; {
		var lines []string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, `"admin call"`) {
				lines = append(lines, l)
			}
		}
		if len(lines) >= n || time.Now().After(deadline) {
			if len(lines) > 0 {
				json.Unmarshal([]byte(lines[len(lines)-1]), &line)
			}
			return line
		}
		time.Sleep(10 * time.Millisecond)
	}
}
