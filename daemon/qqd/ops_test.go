package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
)

// TestNotifyAndMetrics runs qqd under a fake systemd: a unixgram socket as
// NOTIFY_SOCKET receives READY=1 once it listens, RELOADING=1 and READY=1
// around a SIGHUP reload, STOPPING=1 on SIGTERM; its metrics listener
// serves /metrics, /healthz and /readyz, and counts traffic.
func TestNotifyAndMetrics(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	nsock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nsock.Close()
	notes := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nsock.Read(buf)
			if err != nil {
				close(notes)
				return
			}
			notes <- string(buf[:n])
		}
	}()
	expectNote := func(prefix string) {
		t.Helper()
		select {
		case n := <-notes:
			if !strings.HasPrefix(n, prefix) {
				t.Fatalf("notification %q, want %s", n, prefix)
			}
		case <-time.After(daemontest.Timeout):
			t.Fatalf("no %s notification", prefix)
		}
	}
	t.Setenv("NOTIFY_SOCKET", sockPath)
	p := startQQD(t, dir)
	expectNote("READY=1")

	m := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
	var maddr string
	for _, l := range p.logLines() {
		if s := m.FindStringSubmatch(l); s != nil {
			maddr = s[1]
		}
	}
	if maddr == "" {
		t.Fatal("no metrics listener in the log")
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + maddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(path); code != 200 {
			t.Errorf("GET %s = %d %s", path, code, body)
		}
	}
	c := dialClient(t, p.addr, "alice")
	if _, err := c.Send(context.Background(), "alice", "note to self"); err != nil {
		t.Fatal(err)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`qqd_messages_total{result="sent"} 1`,
		`qqd_logins_total{result="ok"} 1`,
		`qqd_plugin_up{plugin="` + defaultStorage + `"} 1`,
		`qqd_build_info{`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	p.cmd.Process.Signal(syscall.SIGHUP)
	expectNote("RELOADING=1")
	expectNote("READY=1")
	if err := p.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	expectNote("STOPPING=1")
}
