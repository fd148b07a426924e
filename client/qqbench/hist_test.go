package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
)

// TestHistory fills a database, starts qqd on it and runs the history
// scenario open loop, then closed loop.
func TestHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := daemontest.Config(t)
	fc := fillConfig(filepath.Join(cfg.DataDir, "qq.db"), 6, 2000)
	fc.PendingFraction = 0.1
	if _, err := fill(ctx, fc, daemontest.FastPasswords); err != nil {
		t.Fatal(err)
	}
	s := daemontest.StartWith(t, cfg, nil)

	c := DefaultConfig()
	c.Addr, c.Scenario, c.Users = s.Addr, "history", 6
	// A low rate: under -race a call costs qqd some milliseconds of CPU,
	// and the other tests run in parallel. The drain only lasts while
	// calls are outstanding.
	c.Rate, c.Duration, c.Warmup, c.Drain = 100, 1500*time.Millisecond, 200*time.Millisecond, 20*time.Second
	c.QQDPIDs = []int{os.Getpid()}
	r, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	h := r.History
	if h == nil || len(r.Errors) != 0 || h.Mode != "open" {
		t.Fatalf("result %+v, history %+v", r, h)
	}
	// 100 calls/s for 1.5 s, give or take the edges.
	if h.Calls < 130 || h.Calls > 170 || h.History.Count+h.Offline.Count != int(h.Calls) {
		t.Errorf("calls %d (history %d, offline %d), want about 150", h.Calls, h.History.Count, h.Offline.Count)
	}
	// 2,000 messages over 15 pairs: history pages are full and have more.
	if h.Paged == 0 || h.HistoryMsgs < 45 || h.OfflineMsgs < 1 || h.Offline.Count == 0 {
		t.Errorf("paged %d, %.1f msgs per history call, %.1f per offline call (%d calls)",
			h.Paged, h.HistoryMsgs, h.OfflineMsgs, h.Offline.Count)
	}
	if l := h.History; l.P50 <= 0 || l.P99 < l.P50 || l.P999 < l.P99 || l.Max < l.P999 {
		t.Errorf("history latency %+v", l)
	}
	if len(r.Procs) == 0 || r.CPUSeconds <= 0 {
		t.Errorf("procs %+v, cpu %v", r.Procs, r.CPUSeconds)
	}
	var buf bytes.Buffer
	r.WriteSummary(&buf)
	if out := buf.String(); !strings.Contains(out, "history latency") || !strings.Contains(out, "offline latency") {
		t.Errorf("summary lacks the latencies:\n%s", out)
	}

	c.Rate, c.Window, c.Duration, c.Warmup, c.QQDPIDs = 0, 1, 300*time.Millisecond, 0, nil
	r, err = Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if h := r.History; h.Mode != "closed" || h.Calls == 0 || len(r.Errors) != 0 {
		t.Fatalf("closed loop: result %+v, history %+v", r, h)
	}
}
