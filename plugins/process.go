package plugins

// Starting and stopping plugin processes.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// DefaultStartTimeout bounds Start when Spec.StartTimeout is zero.
const DefaultStartTimeout = 10 * time.Second

// Spec describes a plugin process to start.
type Spec struct {
	// Name is the instance name used in logs and errors, e.g.
	// "wordfilter". Required.
	Name string
	// Kind is what the process serves. Required.
	Kind Kind
	// Command is the argv that starts the plugin; built-in plugins use
	// {os.Executable(), "plugin", name}. Command[0] is looked up in PATH
	// when it has no slash. Required.
	Command []string
	// Config is the JSON given to the plugin's factory; "{}" if empty.
	Config []byte
	// Env is given to the plugin's factory.
	Env Env
	// Logger receives go-plugin's messages about the process and every
	// line the plugin writes to stderr (or stdout), with
	// plugin=<Name>. Nil means slog.Default().
	Logger *slog.Logger
	// StartTimeout bounds process start, handshake and Configure
	// together; 0 means DefaultStartTimeout.
	StartTimeout time.Duration
}

// Process is one running plugin subprocess, started by Start. Its methods
// are safe for concurrent use.
type Process struct {
	name    string
	kind    Kind
	pid     int
	version int // negotiated protocol version
	client  *goplugin.Client
	rpc     *goplugin.GRPCClient
	storage *storageClient
	filter  *filterClient
	relays  []*lineRelay
	// tmpDir is the child's TMPDIR, where go-plugin puts its socket; Kill
	// removes it, so a killed plugin leaves no socket file behind.
	tmpDir string
}

// Start starts the plugin process spec describes, completes go-plugin's
// handshake (gRPC only, with automatic mutual TLS), and calls Configure
// with spec.Config and spec.Env, all within spec.StartTimeout (and ctx's
// deadline). ctx's cancellation is observed when the handshake ends.
//
// On any failure the process is killed and the error says why; a
// configuration refused by the plugin's factory comes back with the
// factory's full error text.
//
// The child gets qqd's environment without the systemd notification and
// socket-activation variables (NOTIFY_SOCKET, WATCHDOG_PID, WATCHDOG_USEC,
// LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES). On Linux it is SIGKILLed when
// the thread that started it exits (Pdeathsig); on every system the
// plugin itself exits when its parent dies (see ServeStorage). The process
// is managed: CleanupClients kills it too. The caller must Kill it.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	timeout := spec.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if err := ctx.Err(); err != nil || timeout <= 0 {
		if err == nil {
			err = context.DeadlineExceeded
		}
		return nil, fmt.Errorf("plugin %s: start: %w", spec.Name, err)
	}
	deadline := time.Now().Add(timeout)

	logger := spec.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("plugin", spec.Name)

	tmpDir, err := os.MkdirTemp("", "qq-plugin-")
	if err != nil {
		return nil, fmt.Errorf("plugin %s: start: %w", spec.Name, err)
	}
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Env = append(childEnv(os.Environ()), "TMPDIR="+tmpDir)
	setPdeathsig(cmd)

	stderr, syncStderr, syncStdout := newLineRelay(logger), newLineRelay(logger), newLineRelay(logger)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: maps.Clone(VersionedPlugins),
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env is the environment
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(connWindow),
		},
		Managed:      true,
		StartTimeout: timeout,
		Logger:       newHCLogAdapter(logger, filepath.Base(cmd.Path)),
		Stderr:       stderr,
		SyncStderr:   syncStderr,
		SyncStdout:   syncStdout,
	})
	p := &Process{name: spec.Name, kind: spec.Kind, client: client, relays: []*lineRelay{stderr, syncStderr, syncStdout}, tmpDir: tmpDir}

	fail := func(what string, err error) (*Process, error) {
		p.Kill()
		return nil, fmt.Errorf("plugin %s: %s: %w", spec.Name, what, err)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(fmt.Sprintf("start %q", cmd.Path), err)
	}
	if cmd.Process != nil {
		p.pid = cmd.Process.Pid
	}
	grpcClient, ok := rpc.(*goplugin.GRPCClient)
	if !ok {
		return fail("start", fmt.Errorf("unexpected go-plugin client %T", rpc))
	}
	p.rpc = grpcClient
	p.version = client.NegotiatedVersion()
	if err := ctx.Err(); err != nil {
		return fail("start", err)
	}
	raw, err := rpc.Dispense(string(spec.Kind))
	if err != nil {
		return fail("dispense", err)
	}
	var conf configurer
	switch c := raw.(type) {
	case *storageClient:
		c.name, p.storage, conf = spec.Name, c, c
	case *filterClient:
		c.name, p.filter, conf = spec.Name, c, c
	default:
		return fail("dispense", fmt.Errorf("unexpected client %T", raw))
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := conf.configure(cctx, spec.Config, spec.Env); err != nil {
		p.Kill()
		return nil, err // already "plugin <name>: configure: ..."
	}
	return p, nil
}

func (s *Spec) validate() error {
	switch {
	case s.Name == "":
		return errors.New("plugin: start: spec has no name")
	case !s.Kind.valid():
		return fmt.Errorf("plugin %s: start: unknown kind %q", s.Name, s.Kind)
	case len(s.Command) == 0 || s.Command[0] == "":
		return fmt.Errorf("plugin %s: start: spec has no command", s.Name)
	}
	return nil
}

// childEnv is env without the variables that address qqd itself
// (systemd's notification socket, watchdog and socket activation).
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Name is the instance name of spec.Name.
func (p *Process) Name() string { return p.name }

// Kind is what the process serves.
func (p *Process) Kind() Kind { return p.kind }

// ProtocolVersion is the plugin protocol version negotiated with the
// process: the newest both it and this package speak (see
// ProtocolVersion).
func (p *Process) ProtocolVersion() int { return p.version }

// Storage is the process's Storage, nil unless its kind is KindStorage.
// Its Close closes the storage inside the plugin; the process runs on
// until Kill. SocialOf finds its Social part when the process negotiated
// protocol version 2 and its storage has one (GroupsOf and TokensOf
// likewise). Once the process has exited, calls fail at once (Write with
// a *WriteError whose MaybeWritten is false); a call in flight when it
// dies fails with a transport error (Write: MaybeWritten true).
func (p *Process) Storage() Storage {
	if p.storage == nil {
		return nil
	}
	return p.storage
}

// Filter is the process's Filter, nil unless its kind is KindFilter.
// Once the process has exited, calls fail at once.
func (p *Process) Filter() Filter {
	if p.filter == nil {
		return nil
	}
	return p.filter
}

// Exited reports whether the process has exited (and been reaped).
func (p *Process) Exited() bool { return p.client.Exited() }

// Pid is the process id of the plugin.
func (p *Process) Pid() int { return p.pid }

// Ping checks the plugin's health with the gRPC health service go-plugin
// serves, within ctx. An exited process fails at once.
func (p *Process) Ping(ctx context.Context) error {
	if p.client.Exited() || p.rpc == nil {
		return fmt.Errorf("plugin %s: ping: %w", p.name, errExited)
	}
	resp, err := grpc_health_v1.NewHealthClient(p.rpc.Conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: goplugin.GRPCServiceName})
	if err != nil {
		return fmt.Errorf("plugin %s: ping: %w", p.name, fromStatus(err))
	}
	if st := resp.GetStatus(); st != grpc_health_v1.HealthCheckResponse_SERVING {
		return fmt.Errorf("plugin %s: ping: health status %s", p.name, st)
	}
	return nil
}

// Kill stops the process: it asks go-plugin's controller to shut the
// plugin down, waits up to 2 seconds for it to exit, then SIGKILLs it. It
// returns once the process has been reaped and its output relayed. Kill
// is idempotent and safe to call concurrently; calls on the process's
// Storage or Filter fail afterwards.
func (p *Process) Kill() {
	p.client.Kill()
	for _, r := range p.relays {
		r.Flush()
	}
	os.RemoveAll(p.tmpDir)
}

// CleanupClients kills every plugin process started by Start that is
// still running, in parallel, and waits for them. qqd calls it once, on
// its way out (it is goplugin.CleanupClients).
func CleanupClients() { goplugin.CleanupClients() }
