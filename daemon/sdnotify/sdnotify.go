// Package sdnotify tells systemd how a service is doing, through the
// sd_notify protocol: one datagram of "KEY=value" lines sent to the unix
// socket named by $NOTIFY_SOCKET, which systemd sets for units with
// Type=notify. It covers what qqd needs: readiness, reloads, stopping, a
// status line and the watchdog keep-alive. It uses the standard library
// only.
//
// A Notifier made while NOTIFY_SOCKET is unset (not under systemd, or a
// unit of another Type) does nothing: every method returns at once and
// sends nothing, so callers need no conditionals.
//
// The protocol is described in sd_notify(3); NOTIFY_SOCKET is a file
// system path ("/run/systemd/notify") or, starting with "@", a name in
// Linux's abstract socket namespace.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends sd_notify messages to the socket systemd named when it
// was made. Its methods are safe for concurrent use; each sends one
// datagram on a socket of its own. The zero value and a nil *Notifier
// are disabled notifiers.
type Notifier struct {
	addr     *net.UnixAddr // nil: disabled
	err      error         // non-nil: NOTIFY_SOCKET was set but unusable
	watchdog time.Duration // WATCHDOG_USEC meant for this process; 0: none
}

// New makes a Notifier from the environment that env reads (os.Getenv in
// qqd; tests pass a map's lookup). It reads
//   - NOTIFY_SOCKET: where to send; unset or empty disables the Notifier;
//   - WATCHDOG_USEC: the unit's WatchdogSec in microseconds;
//   - WATCHDOG_PID: the process the watchdog is meant for. When set to
//     another process's id, WATCHDOG_USEC is ignored.
//
// New does not unset the variables: child processes that must not talk
// to systemd should be started without them (qqd's plugins are).
func New(env func(string) string) *Notifier {
	n := &Notifier{}
	sock := env("NOTIFY_SOCKET")
	switch {
	case sock == "":
		return n
	case sock[0] == '/' || sock[0] == '@':
		// net maps a leading "@" to the abstract namespace (a NUL byte).
		n.addr = &net.UnixAddr{Name: sock, Net: "unixgram"}
	default:
		n.err = fmt.Errorf("sdnotify: unsupported NOTIFY_SOCKET %q (want a path or @name)", sock)
		return n
	}
	usec, err := strconv.ParseUint(env("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return n
	}
	if pid := env("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return n
	}
	n.watchdog = time.Duration(usec) * time.Microsecond
	return n
}

// Enabled reports whether NOTIFY_SOCKET was set, i.e. whether the
// methods send anything (or, for an unusable value, return an error).
func (n *Notifier) Enabled() bool { return n != nil && (n.addr != nil || n.err != nil) }

// Ready tells systemd that start-up, or a reload announced by Reloading,
// is complete: "READY=1". With Type=notify, `systemctl start` returns
// and units ordered after this one start only then.
func (n *Notifier) Ready() error { return n.send("READY=1") }

// Reloading tells systemd that a configuration reload has begun; Ready
// ends it. It sends "RELOADING=1" with MONOTONIC_USEC, the current
// CLOCK_MONOTONIC time in microseconds, which systemd 253 and later
// require for Type=notify-reload and older ones ignore.
func (n *Notifier) Reloading() error {
	if !n.Enabled() {
		return nil
	}
	msg := "RELOADING=1"
	if usec := monotonicUsec(); usec > 0 {
		msg += "\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10)
	}
	return n.send(msg)
}

// Stopping tells systemd that the service is shutting down: "STOPPING=1".
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }

// Status sets the free-form status line `systemctl status` shows:
// "STATUS=s". Line breaks in s are replaced by spaces, since each line of
// a message is a field of its own.
func (n *Notifier) Status(s string) error {
	if !n.Enabled() {
		return nil
	}
	return n.send("STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
}

// WatchdogInterval is how often RunWatchdog sends its keep-alive: half of
// the unit's WatchdogSec, as sd_watchdog_enabled(3) advises. It is 0 when
// the watchdog is off or meant for another process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil || n.addr == nil {
		return 0
	}
	return n.watchdog / 2
}

// RunWatchdog sends "WATCHDOG=1" every WatchdogInterval for as long as
// healthy (nil means always) returns true, and returns when ctx is done.
// A tick on which healthy returns false sends nothing, so a service that
// stays unhealthy for WatchdogSec is killed by systemd and, with
// Restart=on-failure, restarted. With no watchdog it returns at once.
// Send errors are ignored: a missed keep-alive is what the watchdog is
// there to notice.
func (n *Notifier) RunWatchdog(ctx context.Context, healthy func() bool) {
	interval := n.WatchdogInterval()
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy == nil || healthy() {
				n.send("WATCHDOG=1")
			}
		}
	}
}

// errWriteShort is returned when the socket took part of a datagram.
var errWriteShort = errors.New("sdnotify: short write")

// send sends msg as one datagram.
func (n *Notifier) send(msg string) error {
	if n == nil || n.addr == nil {
		if n != nil {
			return n.err
		}
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	k, err := conn.Write([]byte(msg))
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if k != len(msg) {
		return errWriteShort
	}
	return nil
}
