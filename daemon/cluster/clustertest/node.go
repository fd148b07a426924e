package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// NodeStartTimeout bounds how long [Node.Start] waits for qqd to be ready,
// and [Node.Stop] for it to exit after SIGTERM.
const NodeStartTimeout = 60 * time.Second

// QQDPackage is the import path BuildQQD builds.
const QQDPackage = "github.com/qqchat/qq/daemon/qqd"

// BuildQQD builds qqd into dir/qqd with the go command, from the module
// of the current working directory (the repository), and returns the
// binary's path.
func BuildQQD(ctx context.Context, dir string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, "qqd"))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, QQDPackage)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build qqd: %w\n%s", err, out.Bytes())
	}
	return bin, nil
}

// NodeOptions describe one qqd node. Dir and Binary are required.
type NodeOptions struct {
	// Name is the node's cluster.node name ([a-z0-9_-]).
	Name string
	// Dir holds everything of the node: qq.yaml, data/, admin.sock,
	// qqd.log and tmp/ (TMPDIR of qqd and its plugins). It is created.
	Dir string
	// Binary is the qqd executable (see [BuildQQD]).
	Binary string
	// Storage is storage.plugin: "postgres" (the default) or another.
	Storage string
	// DSN is the postgres plugin's storage.config.dsn.
	DSN string
	// StorageConfig is storage.config; nil means {dsn: DSN} for postgres
	// and {} (the plugin's defaults) for another storage.
	StorageConfig map[string]any
	// Cluster is cluster.enabled; NATSURLs are cluster.nats.urls.
	Cluster  bool
	NATSURLs []string
	// Listen and MetricsListen are the client and metrics addresses; ""
	// picks a free loopback port once, kept across restarts.
	Listen, MetricsListen string
	// Config holds more qq.yaml keys (dotted, e.g. "log.level" or
	// "cluster.fence_after"), set after the ones above.
	Config map[string]any
	// Env holds more environment variables (KEY=value) for qqd, added
	// to this process's (a test binary that runs as qqd when one is set
	// can be the Binary).
	Env []string
}

// Node is a qqd process started from a qq.yaml that NewNode writes. It
// can be started, killed and started again on the same addresses and
// data. Its methods are safe for concurrent use.
type Node struct {
	opts          NodeOptions
	listen        string
	metricsListen string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	err    error         // cmd's exit, once exited is closed
	log    *os.File
}

// NewNode creates opts.Dir, picks the node's addresses and writes its
// qq.yaml. It does not start qqd.
func NewNode(opts NodeOptions) (*Node, error) {
	if opts.Dir == "" || opts.Binary == "" {
		return nil, errors.New("node: Dir and Binary are required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	if opts.Storage == "" {
		opts.Storage = "postgres"
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("node %s: %w", opts.Name, err)
	}
	n := &Node{opts: opts, listen: opts.Listen, metricsListen: opts.MetricsListen}
	if n.listen == "" {
		if n.listen, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	if n.metricsListen == "" {
		if n.metricsListen, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	if err := n.writeConfig(); err != nil {
		return nil, fmt.Errorf("node %s: %w", opts.Name, err)
	}
	return n, nil
}

// StartNode is NewNode and Start.
func StartNode(ctx context.Context, opts NodeOptions) (*Node, error) {
	n, err := NewNode(opts)
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a process that must keep its port across restarts.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// writeConfig writes the node's qq.yaml.
func (n *Node) writeConfig() error {
	o := n.opts
	sc := o.StorageConfig
	if sc == nil {
		sc = map[string]any{}
		if o.Storage == "postgres" {
			sc["dsn"] = o.DSN
		}
	}
	cfg := map[string]any{
		"listen":   n.listen,
		"data_dir": filepath.Join(o.Dir, "data"),
		"metrics":  map[string]any{"listen": n.metricsListen},
		"web":      map[string]any{"listen": ""},
		"admin":    map[string]any{"socket": n.AdminSocket()},
		// A kicked client comes back through the balancer at once.
		"reconnect_spread": "1s",
		"storage":          map[string]any{"plugin": o.Storage, "config": sc},
		"cluster": map[string]any{
			"enabled": o.Cluster,
			"node":    o.Name,
			"nats":    map[string]any{"urls": append([]string{}, o.NATSURLs...)},
		},
	}
	// Sorted: a parent key ("log") comes before its children ("log.level").
	for _, k := range slices.Sorted(maps.Keys(o.Config)) {
		setDotted(cfg, k, o.Config[k])
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	head := "# qq.yaml of node " + o.Name + ", written by clustertest\n"
	return os.WriteFile(n.ConfigPath(), append([]byte(head), b...), 0o600)
}

// setDotted sets the dotted key k ("a.b.c") in the nested map m.
func setDotted(m map[string]any, k string, v any) {
	parts := strings.Split(k, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = v
}

// Name returns the node's name.
func (n *Node) Name() string { return n.opts.Name }

// Dir returns the node's directory.
func (n *Node) Dir() string { return n.opts.Dir }

// Addr returns the node's client TCP address.
func (n *Node) Addr() string { return n.listen }

// MetricsAddr returns the address of its metrics listener.
func (n *Node) MetricsAddr() string { return n.metricsListen }

// ReadyURL returns its /readyz URL.
func (n *Node) ReadyURL() string { return "http://" + n.metricsListen + "/readyz" }

// Backend returns the node as an LB backend.
func (n *Node) Backend() Backend { return Backend{Addr: n.listen, ReadyURL: n.ReadyURL()} }

// AdminSocket returns the path of its admin socket.
func (n *Node) AdminSocket() string { return filepath.Join(n.opts.Dir, "admin.sock") }

// ConfigPath returns the path of its qq.yaml.
func (n *Node) ConfigPath() string { return filepath.Join(n.opts.Dir, "qq.yaml") }

// LogPath returns the file qqd's output goes to (appended at each start).
func (n *Node) LogPath() string { return filepath.Join(n.opts.Dir, "qqd.log") }

// Pid returns the process id of the running qqd, or 0.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Running reports whether qqd runs (it may not be ready).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Start starts qqd and waits until its /readyz answers 200. It fails if
// qqd runs already, exits first, or is not ready within
// NodeStartTimeout (then it is killed).
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		return fmt.Errorf("node %s: running", n.opts.Name)
	}
	logf, err := os.OpenFile(n.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.mu.Unlock()
		return fmt.Errorf("node %s: %w", n.opts.Name, err)
	}
	fmt.Fprintf(logf, "=== clustertest: starting %s at %s\n", n.opts.Binary, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(n.opts.Binary, "-config", n.ConfigPath())
	cmd.Dir = n.opts.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(append(os.Environ(), n.opts.Env...), "TMPDIR="+filepath.Join(n.opts.Dir, "tmp"))
	// Its own process group: a ^C in the terminal of qqcluster reaches
	// qqcluster, which stops the nodes in order; Kill reaches the
	// plugins too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		return fmt.Errorf("node %s: start qqd: %w", n.opts.Name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.log = cmd, exited, logf
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== clustertest: qqd exited: %v\n", exitText(err))
		logf.Close()
		n.mu.Lock()
		n.err = err
		if n.cmd == cmd {
			n.cmd = nil
		}
		n.mu.Unlock()
		close(exited)
	}()
	n.mu.Unlock()

	if err := n.waitReady(ctx, exited); err != nil {
		n.Kill()
		return fmt.Errorf("node %s: %w (log: %s)%s", n.opts.Name, err, n.LogPath(), n.logTail())
	}
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// waitReady polls /readyz until it answers 200.
func (n *Node) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, NodeStartTimeout)
	defer cancel()
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready(ctx, hc, n.ReadyURL()) {
			return nil
		}
		select {
		case <-exited:
			n.mu.Lock()
			err := n.err
			n.mu.Unlock()
			return fmt.Errorf("qqd exited before it was ready: %s", exitText(err))
		case <-ctx.Done():
			return fmt.Errorf("qqd not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func ready(ctx context.Context, hc *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Ready reports whether the node's /readyz answers 200 now.
func (n *Node) Ready(ctx context.Context) bool {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	return ready(ctx, &http.Client{Transport: tr, Timeout: time.Second}, n.ReadyURL())
}

// logTail returns the last lines of the log, for an error message.
func (n *Node) logTail() string {
	b, err := os.ReadFile(n.LogPath())
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "\n" + strings.Join(lines, "\n")
}

// running returns the process and its exit channel, or nil.
func (n *Node) running() (*exec.Cmd, chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd, n.exited
}

// Kill kills qqd and its plugins with SIGKILL, as a crash, and waits for
// it to be gone. Killing a stopped node does nothing.
func (n *Node) Kill() error {
	cmd, exited := n.running()
	if cmd == nil {
		return nil
	}
	// The whole process group: qqd and the plugins it started.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("node %s: kill: %w", n.opts.Name, err)
	}
	<-exited
	return nil
}

// Stop asks qqd to shut down (SIGTERM) and waits for it to exit; past
// NodeStartTimeout it is killed. It returns qqd's exit error, if any.
// Stopping a stopped node does nothing.
func (n *Node) Stop() error {
	cmd, exited := n.running()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(NodeStartTimeout):
		n.Kill()
		return fmt.Errorf("node %s: qqd did not exit within %v of SIGTERM; killed", n.opts.Name, NodeStartTimeout)
	}
	// Plugins left behind (none should be) go with the group.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	n.mu.Lock()
	err := n.err
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("node %s: qqd: %w", n.opts.Name, err)
	}
	return nil
}
