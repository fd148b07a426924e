package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/web"
)

// startWeb serves a web listener (the WebSocket gateway) on s and returns
// its address.
func startWeb(t *testing.T, s *daemontest.Server) string {
	t.Helper()
	cfg := config.Default().Web
	cfg.Listen = "127.0.0.1:0"
	l, err := web.Listen(cfg, web.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Daemon.Serve(l) }()
	t.Cleanup(func() {
		s.Shutdown()
		if err := <-done; !errors.Is(err, daemon.ErrServerClosed) {
			t.Errorf("serve web: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
		defer cancel()
		l.Wait(ctx)
	})
	return l.Addr().String()
}

// TestDMOverWebSocket: the dm scenario with --transport ws runs over the
// WebSocket gateway, loses nothing, and says so in its result.
func TestDMOverWebSocket(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	c := testConfig(s, "dm")
	c.Addr = startWeb(t, s)
	c.Transport = "ws"
	c.Users, c.Window, c.Duration = 8, 4, 2*time.Second
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Delivered == 0 || r.Lost != 0 || r.Unanswered != 0 || len(r.Errors) != 0 {
		t.Fatalf("delivered %d lost %d unanswered %d errors %v", r.Delivered, r.Lost, r.Unanswered, r.Errors)
	}
	if r.Transport != "ws" || defaultLabel(reportRun{Result: r}) != "dm-closed-w4-c8-ws" {
		t.Fatalf("transport %q, label %q", r.Transport, defaultLabel(reportRun{Result: r}))
	}
}

func TestTransportFlag(t *testing.T) {
	if _, err := parseArgs([]string{"--transport", "udp", "dm"}, nil); err == nil {
		t.Fatal("--transport udp accepted")
	}
	c, err := parseArgs([]string{"dm", "--transport", "ws", "--users", "2"}, nil)
	if err != nil || c.Transport != "ws" {
		t.Fatalf("parseArgs: %+v, %v", c, err)
	}
}
