package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
)

func testConfig(s *daemontest.Server, scenario string) Config {
	c := DefaultConfig()
	c.Addr = s.Addr
	c.Scenario = scenario
	c.Register = true
	c.Password = "password1"
	c.Warmup = 200 * time.Millisecond
	c.Drain = 3 * time.Second
	return c
}

func TestDMClosedLoop(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	c := testConfig(s, "dm")
	c.Users, c.Window, c.Duration = 8, 4, 2*time.Second
	c.QQDPIDs = []int{os.Getpid()} // the in-process server: exercises the /proc reading
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Delivered == 0 || r.Lost != 0 || r.Unanswered != 0 || len(r.Errors) != 0 {
		t.Fatalf("delivered %d lost %d unanswered %d errors %v", r.Delivered, r.Lost, r.Unanswered, r.Errors)
	}
	if r.Latency == nil || r.Latency.Count == 0 || len(r.Procs) == 0 || r.Procs[0].RSSBytes == 0 {
		t.Fatalf("result %+v", r)
	}
	var buf bytes.Buffer
	r.WriteSummary(&buf)
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var back Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &back); err != nil || back.Delivered != r.Delivered {
		t.Fatalf("JSON line %q: %v", lines[len(lines)-1], err)
	}
}

func TestDMOpenLoop(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	c := testConfig(s, "dm")
	c.Users, c.Rate, c.Duration = 8, 500, 2*time.Second
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "open" || r.Lost != 0 || len(r.Errors) != 0 {
		t.Fatalf("result %+v", r)
	}
	// 500 msg/s for 2 s, give or take the edges.
	if r.Delivered < 800 || r.Delivered > 1100 {
		t.Errorf("delivered %d, want about 1000", r.Delivered)
	}
	l := r.Latency
	if l.Count == 0 || l.P50 <= 0 || l.P99 < l.P50 || l.P999 < l.P99 || l.Max < l.P999 {
		t.Fatalf("latency %+v", l)
	}
}

func TestFanin(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	c := testConfig(s, "fanin")
	c.Users, c.Window, c.Duration, c.Warmup = 4, 2, time.Second, 0
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Delivered == 0 || r.Lost != 0 || len(r.Errors) != 0 {
		t.Fatalf("result %+v", r)
	}
}

func TestOffline(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	c := testConfig(s, "offline")
	c.Messages = 200
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	o := r.Offline
	if o.Pending != 200 || o.Drained != 200 || r.Delivered != 200 || r.Lost != 0 || o.DrainS <= 0 {
		t.Fatalf("offline %+v, result %+v", o, r)
	}
}

func TestIdle(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	c := testConfig(s, "idle")
	c.Users, c.Duration = 50, 300*time.Millisecond
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Idle.Connections != 50 || !r.Idle.AllConnectionsAlive {
		t.Fatalf("idle %+v", r.Idle)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, a := range []string{"10.0.0.1:5190", "example.org:5190", "[2001:db8::1]:5190", "0.0.0.0:5190", "nonsense"} {
		if err := CheckLoopback(a); err == nil {
			t.Errorf("CheckLoopback(%q) = nil, want an error", a)
		}
	}
	for _, a := range []string{"127.0.0.1:5190", "127.1.2.3:1", "[::1]:5190", "localhost:5190"} {
		if err := CheckLoopback(a); err != nil {
			t.Errorf("CheckLoopback(%q) = %v", a, err)
		}
	}
	var stderr bytes.Buffer
	if err := run([]string{"--addr", "10.0.0.1:5190", "dm"}, &bytes.Buffer{}, &stderr); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("run with 10.0.0.1: %v", err)
	}
}

func TestParseArgs(t *testing.T) {
	c, err := parseArgs(strings.Fields("--addr 127.0.0.1:1 --users 5 dm --window 3 --duration 3s --json"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:1" || c.Users != 5 || c.Window != 3 || c.Duration != 3*time.Second || !c.JSON || c.Scenario != "dm" {
		t.Fatalf("%+v", c)
	}
	if _, err := parseArgs([]string{"bogus"}, &bytes.Buffer{}); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestSummarize(t *testing.T) {
	var s []time.Duration
	for i := 1000; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	l := summarize(s, "x")
	if l.P50 != 500 || l.P99 != 990 || l.P999 != 999 || l.Max != 1000 {
		t.Fatalf("%+v", l)
	}
}

func TestMain(m *testing.M) { os.Exit(daemontest.RunWithPrivateTmp(m)) }

// TestGroup runs the group scenario against a real qqd: every send is
// pushed to every other online member, none lost, and the summary and
// the report carry the per-send and per-push figures.
func TestGroup(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	c := testConfig(s, "group")
	c.Users, c.Members, c.Window, c.Duration = 4, 12, 2, 2*time.Second
	c.QQDPIDs = []int{os.Getpid()}
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Group == nil || r.Group.Members != 12 || r.Group.Online != 4 || r.Sent == 0 {
		t.Fatalf("result %+v, group %+v", r, r.Group)
	}
	if r.Lost != 0 || r.Unanswered != 0 || len(r.Errors) != 0 || r.Duplicates != 0 {
		t.Fatalf("lost %d unanswered %d errors %v duplicates %d", r.Lost, r.Unanswered, r.Errors, r.Duplicates)
	}
	// Each measured send reaches the 3 others (sends of the warm-up may be
	// pushed inside the window, and the window's last ones after it).
	if r.Delivered < 2*r.Sent || r.Delivered > 3*r.Sent+3*int64(c.Users*c.Window) {
		t.Errorf("delivered %d pushes for %d sends to 3 others each", r.Delivered, r.Sent)
	}
	if r.Group.CPUPerSendUs <= 0 || r.CPUPer1000 <= 0 {
		t.Errorf("CPU per send %v µs, per 1000 pushes %v s", r.Group.CPUPerSendUs, r.CPUPer1000)
	}
	var buf bytes.Buffer
	r.WriteSummary(&buf)
	if !strings.Contains(buf.String(), "each pushed to the 3 other online members") {
		t.Errorf("summary:\n%s", buf.String())
	}
	buf.Reset()
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var rep bytes.Buffer
	if err := runReport([]string{path}, &rep, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	for _, want := range []string{"Group traffic (group)", "group-m12-closed-w2-c4", "12 members, ", "CPU µs/push", "CPU µs/send"} {
		if !strings.Contains(rep.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, rep.String())
		}
	}
}
