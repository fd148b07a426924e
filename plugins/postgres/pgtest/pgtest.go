// Package pgtest starts a real PostgreSQL server for tests and tools: it
// runs initdb into a directory of its own and the server with pg_ctl,
// listening on 127.0.0.1 only, on a free port, with its unix socket in
// that directory. It uses the PostgreSQL binaries Debian installs
// (package postgresql-15), found with Binaries. When the process runs as
// root, the binaries run as the postgres user (PostgreSQL refuses root).
//
// The package does not import testing: the daemon's cluster tests and
// the `make cluster` tool use it too. Package pgtesting has the helpers
// for tests (one server per test package, one database per test).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBinDir is where Debian's postgresql-15 installs the server
// binaries.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Package is the Debian package that provides the binaries.
const Package = "postgresql-15"

// ErrNoBinaries is returned (wrapped) by Binaries and Start when the
// PostgreSQL binaries are missing.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found (install the package " + Package + ", or set QQ_PG_BINDIR)")

// User is the database superuser the server is initialized with
// (trust authentication).
const User = "qq"

// Binaries returns the directory of the PostgreSQL server binaries:
// $QQ_PG_BINDIR, else DefaultBinDir. It fails with ErrNoBinaries when
// initdb, pg_ctl or postgres is missing there.
func Binaries() (string, error) {
	dir := os.Getenv("QQ_PG_BINDIR")
	if dir == "" {
		dir = DefaultBinDir
	}
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s: %w", filepath.Join(dir, b), ErrNoBinaries)
		}
	}
	return dir, nil
}

// Server is a PostgreSQL server started by Start.
type Server struct {
	// Port is the TCP port the server listens on, on 127.0.0.1.
	Port int

	dir    string // root: data/, the socket, the log
	own    bool   // dir was made by Start: Close removes it
	bindir string
	cred   *syscall.Credential // nil unless running as root
}

// Start creates a cluster in dir/data (dir must not hold one; "" makes a
// temporary directory, removed by Close) and starts the server. When
// running as root, the postgres user must be able to reach dir: a
// temporary directory is made under os.TempDir() if every directory
// above it lets others through, else under /tmp. The
// server fsyncs as in production (fsync on); initdb itself skips its
// final sync.
func Start(dir string) (_ *Server, err error) {
	bindir, err := Binaries()
	if err != nil {
		return nil, err
	}
	s := &Server{bindir: bindir}
	if dir == "" {
		if dir, err = MkdirTemp(""); err != nil {
			return nil, err
		}
		s.own = true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s.dir = dir
	defer func() {
		if err != nil && s.own {
			_ = os.RemoveAll(dir)
		}
	}()
	// The postgres user must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", User, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	var lastErr error
	for range 5 { // a free port may be taken before the server binds it
		if s.Port, err = freePort(); err != nil {
			return nil, err
		}
		if err := s.writeConf(); err != nil {
			return nil, err
		}
		if lastErr = s.Start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// writeConf appends the test settings to postgresql.conf (the last
// setting of a key wins).
func (s *Server) writeConf() error {
	f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, `
# pgtest
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = on
max_connections = 300
shared_buffers = 32MB
log_min_messages = warning
`, s.Port, s.dir)
	if err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// run runs a binary of bindir (as the postgres user when root) and
// returns its combined output.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bindir, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

// Start starts the server again (after Stop), on the same port with the
// same data, and waits until it accepts connections.
func (s *Server) Start() error {
	if out, err := s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, tail(log, 2000))
	}
	return nil
}

// Stop stops the server (fast shutdown: sessions are ended, the data is
// kept).
func (s *Server) Stop() error {
	if out, err := s.run("pg_ctl", "-D", s.data(), "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Restart stops and starts the server.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// Close stops the server (immediately) and removes what Start made
// (unless QQ_PG_KEEP=1: then the directory, server.log included, stays
// for a post-mortem).
func (s *Server) Close() error {
	var err error
	if _, statErr := os.Stat(filepath.Join(s.data(), "postmaster.pid")); statErr == nil {
		if out, e := s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "-t", "60", "stop"); e != nil {
			err = fmt.Errorf("pg_ctl stop: %w\n%s", e, out)
		}
	}
	if s.own && os.Getenv("QQ_PG_KEEP") != "1" {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	return err
}

// Dir is the server's directory (data/, the socket, server.log).
func (s *Server) Dir() string { return s.dir }

// DSN is the URL of database db on the server, as User.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", User, s.Port, db)
}

// CreateDatabase creates database name and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := s.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	return s.DSN(name), nil
}

// DropDatabase drops database name, ending its sessions.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	if err := s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	return nil
}

// admin runs a statement on the postgres database.
func (s *Server) admin(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	_, err = conn.Exec(ctx, stmt)
	return err
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// MkdirTemp makes a new temporary directory for a server under base
// ("": os.TempDir()), or under /tmp when running as root and some
// directory on the way to base does not let others through (a test's
// private TMPDIR is mode 0700): the postgres user could not reach the
// data there.
func MkdirTemp(base string) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	if os.Geteuid() == 0 {
		for d := base; ; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil || fi.Mode().Perm()&0o001 == 0 {
				base = "/tmp"
				break
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return os.MkdirTemp(base, "qq-pg-")
}
