package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The files of a running cluster in its Dir.
const (
	ControlSocketName = "qqcluster.sock"
	PidFileName       = "qqcluster.pid"
)

// controlTimeout bounds one control command (a node start may take a
// while).
const controlTimeout = 2 * time.Minute

// Commands lists what [Cluster.Do] understands.
const Commands = `status            the addresses and what runs
kill NODE         kill -9 a qqd node (and its plugins)
start NODE        start a stopped or killed node again
stop NODE         stop a node gracefully (SIGTERM)
nats-stop I       stop NATS server I (0-based) abruptly
nats-start I      start NATS server I again on its ports
pg-stop           stop PostgreSQL (its data stays)
pg-start          start PostgreSQL again`

// Do runs one control command (see [Commands]) and returns its answer.
func (c *Cluster) Do(ctx context.Context, command string) (string, error) {
	f := strings.Fields(command)
	if len(f) == 0 {
		return "", errors.New("empty command")
	}
	arg := ""
	if len(f) > 1 {
		arg = f[1]
	}
	node := func() (*Node, error) {
		n := c.Node(arg)
		if n == nil {
			return nil, fmt.Errorf("no node %q", arg)
		}
		return n, nil
	}
	natsIndex := func() (int, error) {
		i, err := strconv.Atoi(arg)
		if err != nil || c.NATS == nil || i < 0 || i >= c.NATS.Len() {
			return 0, fmt.Errorf("no NATS server %q", arg)
		}
		return i, nil
	}
	pg := func() error {
		if c.PG == nil {
			return errors.New("PostgreSQL was not started by qqcluster (a DSN was given)")
		}
		return nil
	}
	switch f[0] {
	case "status":
		var b bytes.Buffer
		c.Describe(&b)
		return b.String(), nil
	case "kill":
		n, err := node()
		if err != nil {
			return "", err
		}
		return "killed node " + n.Name(), n.Kill()
	case "stop":
		n, err := node()
		if err != nil {
			return "", err
		}
		return "stopped node " + n.Name(), n.Stop()
	case "start":
		n, err := node()
		if err != nil {
			return "", err
		}
		return "started node " + n.Name(), n.Start(ctx)
	case "nats-stop":
		i, err := natsIndex()
		if err != nil {
			return "", err
		}
		c.NATS.Stop(i)
		return fmt.Sprintf("stopped NATS server %d", i), nil
	case "nats-start":
		i, err := natsIndex()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("started NATS server %d", i), c.NATS.Restart(i)
	case "pg-stop":
		if err := pg(); err != nil {
			return "", err
		}
		return "stopped PostgreSQL", c.PG.Stop()
	case "pg-start":
		if err := pg(); err != nil {
			return "", err
		}
		return "started PostgreSQL", c.PG.Start()
	}
	return "", fmt.Errorf("unknown command %q; commands:\n%s", f[0], Commands)
}

// ListenControl listens on the control socket of the cluster in dir. It
// refuses if a cluster there answers already, and removes a stale socket.
func ListenControl(dir string) (net.Listener, error) {
	path := filepath.Join(dir, ControlSocketName)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a cluster runs in %s already (%s answers)", dir, path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// ServeControl answers control commands on ln, one connection at a time,
// until ln is closed. A connection carries one command line; the answer
// is "ok" or "error: reason" on the first line, then the text.
func (c *Cluster) ServeControl(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.serveControlConn(conn)
	}
}

func (c *Cluster) serveControlConn(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(controlTimeout))
	line, err := bufio.NewReader(io.LimitReader(conn, 4096)).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	out, err := c.Do(ctx, strings.TrimSpace(line))
	if err != nil {
		fmt.Fprintf(conn, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return
	}
	fmt.Fprintf(conn, "ok\n%s\n", strings.TrimRight(out, "\n"))
}

// Control sends command to the cluster running in dir and returns its
// answer.
func Control(ctx context.Context, dir, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(dir, ControlSocketName))
	if err != nil {
		return "", fmt.Errorf("no cluster answers in %s: %w", dir, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(conn, "%s\n", command); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	status, text, _ := strings.Cut(string(b), "\n")
	if status == "ok" {
		return text, nil
	}
	if reason, ok := strings.CutPrefix(status, "error: "); ok {
		return "", errors.New(strings.TrimSpace(reason + "\n" + text))
	}
	return "", fmt.Errorf("cluster in %s: bad answer %q", dir, b)
}

// WritePidFile records this process as the cluster's in dir.
func WritePidFile(dir string) error {
	return os.WriteFile(filepath.Join(dir, PidFileName), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

// RemovePidFile removes it again.
func RemovePidFile(dir string) { os.Remove(filepath.Join(dir, PidFileName)) }

// Down stops the cluster running in dir: SIGTERM to the process in its
// pid file, then it waits (until ctx ends) for that process to exit.
func Down(ctx context.Context, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, PidFileName))
	if err != nil {
		return fmt.Errorf("no cluster runs in %s: %w", dir, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("bad pid file in %s: %q", dir, b)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			RemovePidFile(dir)
			return fmt.Errorf("no cluster runs in %s (process %d is gone; removed its pid file)", dir, pid)
		}
		return fmt.Errorf("stop process %d: %w", pid, err)
	}
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d still runs: %w", pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
