package adminserver_test

import (
	"encoding/json"
	"log/slog"
	"os"
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
	var line map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; {
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, `"admin call"`) {
				json.Unmarshal([]byte(l), &line)
			}
		}
		if line != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
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
