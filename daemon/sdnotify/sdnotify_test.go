package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// envOf returns an env func reading vars.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// listen opens a unixgram socket the way systemd does, at name (a path,
// or "@abstract"), and closes it when the test ends.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// socketPath is a fresh socket path in the test's temporary directory.
func socketPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "notify")
}

// recv reads one datagram, failing the test after a second.
func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(time.Second))
	k, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read datagram: %v", err)
	}
	return string(buf[:k])
}

// quiet reports whether no datagram arrives within d.
func quiet(c *net.UnixConn, d time.Duration) (string, bool) {
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(d))
	k, err := c.Read(buf)
	if err != nil {
		return "", true
	}
	return string(buf[:k]), false
}

func TestMessages(t *testing.T) {
	path := socketPath(t)
	c := listen(t, path)
	n := New(envOf(map[string]string{"NOTIFY_SOCKET": path}))
	if !n.Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"Ready", n.Ready, "READY=1"},
		{"Stopping", n.Stopping, "STOPPING=1"},
		{"Status", func() error { return n.Status("serving 3 clients") }, "STATUS=serving 3 clients"},
		{"Status multi-line", func() error { return n.Status("a\nb\r\nc") }, "STATUS=a b c"},
	}
	for _, tt := range tests {
		if err := tt.call(); err != nil {
			t.Fatalf("%s() = %v", tt.name, err)
		}
		if got := recv(t, c); got != tt.want {
			t.Errorf("%s sent %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestReloading(t *testing.T) {
	path := socketPath(t)
	c := listen(t, path)
	n := New(envOf(map[string]string{"NOTIFY_SOCKET": path}))
	before := monotonicUsec()
	if err := n.Reloading(); err != nil {
		t.Fatalf("Reloading() = %v", err)
	}
	after := monotonicUsec()
	got := recv(t, c)
	m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=([0-9]+)$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("Reloading sent %q, want RELOADING=1\\nMONOTONIC_USEC=<usec>", got)
	}
	usec, _ := strconv.ParseInt(m[1], 10, 64)
	if usec < before || usec > after || before <= 0 {
		t.Errorf("MONOTONIC_USEC=%d, want within [%d, %d]", usec, before, after)
	}
	// CLOCK_MONOTONIC is not the wall clock: it counts from boot.
	if wall := time.Now().UnixMicro(); usec > wall/2 {
		t.Errorf("MONOTONIC_USEC=%d looks like wall-clock time (%d)", usec, wall)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@qq-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	c := listen(t, name)
	n := New(envOf(map[string]string{"NOTIFY_SOCKET": name}))
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready() = %v", err)
	}
	if got := recv(t, c); got != "READY=1" {
		t.Errorf("sent %q, want %q", got, "READY=1")
	}
}

func TestDisabled(t *testing.T) {
	for _, n := range []*Notifier{New(envOf(nil)), nil, {}} {
		if n.Enabled() {
			t.Errorf("%#v.Enabled() = true, want false", n)
		}
		for name, call := range map[string]func() error{
			"Ready": n.Ready, "Reloading": n.Reloading, "Stopping": n.Stopping,
			"Status": func() error { return n.Status("x") },
		} {
			if err := call(); err != nil {
				t.Errorf("disabled %s() = %v, want nil", name, err)
			}
		}
		if d := n.WatchdogInterval(); d != 0 {
			t.Errorf("disabled WatchdogInterval() = %v, want 0", d)
		}
		returned := make(chan struct{})
		go func() { n.RunWatchdog(context.Background(), nil); close(returned) }()
		select {
		case <-returned:
		case <-time.After(time.Second):
			t.Fatal("disabled RunWatchdog did not return at once")
		}
	}
	// The watchdog needs a socket too.
	n := New(envOf(map[string]string{"WATCHDOG_USEC": "1000000"}))
	if d := n.WatchdogInterval(); d != 0 {
		t.Errorf("WatchdogInterval() without NOTIFY_SOCKET = %v, want 0", d)
	}
}

func TestUnusableSocket(t *testing.T) {
	n := New(envOf(map[string]string{"NOTIFY_SOCKET": "vsock:2:1234"}))
	if !n.Enabled() {
		t.Error("Enabled() = false with NOTIFY_SOCKET set")
	}
	if err := n.Ready(); err == nil {
		t.Error("Ready() with an unsupported NOTIFY_SOCKET = nil, want an error")
	}
	// A path nobody listens on: the send fails and says so.
	n = New(envOf(map[string]string{"NOTIFY_SOCKET": socketPath(t)}))
	if err := n.Ready(); err == nil {
		t.Error("Ready() with no listener = nil, want an error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		usec, pid string
		want      time.Duration
	}{
		{"30000000", "", 15 * time.Second},
		{"30000000", self, 15 * time.Second},
		{"30000000", strconv.Itoa(os.Getpid() + 1), 0}, // meant for another process
		{"30000000", "1", 0},
		{"", "", 0},
		{"0", "", 0},
		{"soon", "", 0},
		{"-5", "", 0},
	}
	for _, tt := range tests {
		n := New(envOf(map[string]string{"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": tt.usec, "WATCHDOG_PID": tt.pid}))
		if got := n.WatchdogInterval(); got != tt.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: WatchdogInterval() = %v, want %v", tt.usec, tt.pid, got, tt.want)
		}
	}
}

func TestRunWatchdog(t *testing.T) {
	path := socketPath(t)
	c := listen(t, path)
	n := New(envOf(map[string]string{
		"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000", "WATCHDOG_PID": strconv.Itoa(os.Getpid()),
	}))
	if got, want := n.WatchdogInterval(), 20*time.Millisecond; got != want {
		t.Fatalf("WatchdogInterval() = %v, want %v", got, want)
	}
	var healthy atomic.Bool
	var refused atomic.Int32 // ticks on which healthy returned false
	healthy.Store(true)
	check := func() bool {
		if healthy.Load() {
			return true
		}
		refused.Add(1)
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() { n.RunWatchdog(ctx, check); close(returned) }()
	defer func() { cancel(); <-returned }()

	for range 3 {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("watchdog sent %q, want %q", got, "WATCHDOG=1")
		}
	}
	healthy.Store(false)
	// Once a tick has seen healthy() false, any send of an earlier tick is
	// done (ticks run one after another): drop it.
	for deadline := time.Now().Add(5 * time.Second); refused.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("RunWatchdog did not call healthy within 5s")
		}
	}
	for {
		if _, ok := quiet(c, 0); ok {
			break
		}
	}
	if msg, ok := quiet(c, 150*time.Millisecond); !ok {
		t.Fatalf("watchdog sent %q while unhealthy", msg)
	}
	healthy.Store(true)
	if got := recv(t, c); got != "WATCHDOG=1" {
		t.Fatalf("watchdog sent %q after recovering, want %q", got, "WATCHDOG=1")
	}
	cancel()
	select {
	case <-returned:
	case <-time.After(time.Second):
		t.Fatal("RunWatchdog did not return after its context ended")
	}
}

func TestRunWatchdogNilHealthy(t *testing.T) {
	path := socketPath(t)
	c := listen(t, path)
	n := New(envOf(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"}))
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() { n.RunWatchdog(ctx, nil); close(returned) }()
	if got := recv(t, c); got != "WATCHDOG=1" {
		t.Errorf("watchdog sent %q, want %q", got, "WATCHDOG=1")
	}
	cancel()
	<-returned
}

func TestSendErrorWraps(t *testing.T) {
	n := New(envOf(map[string]string{"NOTIFY_SOCKET": socketPath(t)}))
	err := n.Stopping()
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("Stopping() with no listener = %v, want a wrapped *net.OpError", err)
	}
}
