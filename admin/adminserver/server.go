package adminserver

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure an admin Server.
type Options struct {
	// Path is the socket's path (config.Config.AdminSocket()).
	Path string
	// Group is the group whose members may call every endpoint, besides
	// root and qqd's own user; "" means none. The socket is given this
	// group.
	Group string
	// ReadOnlyGroup is a group whose members may call the read endpoints
	// only; "" means none.
	ReadOnlyGroup string
	// Logger receives the log of mutating calls and of refused callers;
	// nil discards it.
	Logger *slog.Logger
	// Registry, if set, gets the admin metrics (qqd_admin_requests_total).
	Registry prometheus.Registerer
}

// Server serves the admin API on a unix socket.
type Server struct {
	path    string
	b       Backend
	log     *slog.Logger
	ln      *net.UnixListener
	srv     *http.Server
	mux     *http.ServeMux
	routes  map[string]route
	metrics *metrics

	uid     uint32 // qqd's own user
	gid     int    // Group's gid, -1 when none
	roGid   int    // ReadOnlyGroup's gid, -1 when none
	group   string // Group's name, for messages
	closeLn sync.Once
}

// Timeouts and bounds of the HTTP server. WriteTimeout bounds a whole
// request, so it leaves room for a reload that starts plugins.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	reloadTimeout     = writeTimeout - 10*time.Second
	// backupTimeout bounds a backup, as qqd does (daemon.BackupTimeout);
	// its reply may be written up to backupWriteTimeout after the
	// request, far past writeTimeout.
	backupTimeout      = 10 * time.Minute
	backupWriteTimeout = backupTimeout + 30*time.Second
)

// Listen creates the admin socket at opts.Path and returns a Server ready
// to Serve. It refuses to take over a live socket: if something answers
// on the path, the error is "another qqd is already listening on PATH". A
// stale socket file (nothing listening) is replaced; any other file is
// left alone and is an error.
//
// The socket is made mode 0660 with group opts.Group, or mode 0666 when
// opts.ReadOnlyGroup is set (its members must be able to connect, and
// every connection's credentials are checked anyway). Changing the group
// fails unless qqd runs as root or its user is a member of the group.
func Listen(opts Options, b Backend) (*Server, error) {
	if opts.Path == "" {
		return nil, errors.New("admin socket: no path")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		path: opts.Path, b: b, log: log.With("component", "admin"),
		uid: uint32(os.Getuid()), gid: -1, roGid: -1, group: opts.Group,
	}
	var err error
	if opts.Group != "" {
		if s.gid, err = lookupGroup(opts.Group); err != nil {
			return nil, fmt.Errorf("admin socket: group: %w", err)
		}
	}
	if opts.ReadOnlyGroup != "" {
		if s.roGid, err = lookupGroup(opts.ReadOnlyGroup); err != nil {
			return nil, fmt.Errorf("admin socket: read-only group: %w", err)
		}
	}
	if s.metrics, err = newMetrics(opts.Registry); err != nil {
		return nil, err
	}
	if s.ln, err = listenUnix(opts.Path); err != nil {
		return nil, err
	}
	if err := s.secure(opts); err != nil {
		s.ln.Close()
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.routes = make(map[string]route)
	s.register()
	s.srv = &http.Server{
		Handler:           s,
		ConnContext:       s.connContext,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers requests until Close, then returns nil.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes the socket (removing its file) and every connection,
// interrupting calls in progress. Serve then returns.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.closeLn.Do(func() {
		// Serve closes the listener it was given; if it never ran,
		// close it here. A second Close just fails.
		s.ln.Close()
	})
	return err
}

// listenUnix listens on path, first making sure that no one else does: a
// socket that answers is left alone, a stale one is removed.
func listenUnix(path string) (*net.UnixListener, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		c.Close()
		return nil, fmt.Errorf("another qqd is already listening on %s", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		// A socket file nothing listens on: stale.
		fi, lerr := os.Lstat(path)
		if lerr != nil {
			return nil, fmt.Errorf("admin socket: %w", lerr)
		}
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("admin socket: %s exists and is not a socket; not removing it", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("admin socket: removing stale %s: %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		// Nothing there (or a missing directory, which Listen reports).
	default:
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("admin socket: %s exists and is not a socket; not removing it", path)
		}
		return nil, fmt.Errorf("admin socket: cannot tell whether another qqd listens on %s: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

// secure sets the socket's mode and group. Until it has, the socket has
// the umask's mode; a caller that connects in between still has its
// credentials checked.
func (s *Server) secure(opts Options) error {
	mode := os.FileMode(0o660)
	if opts.ReadOnlyGroup != "" {
		mode = 0o666
	}
	if err := os.Chmod(s.path, mode); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if s.gid >= 0 {
		if err := os.Chown(s.path, -1, s.gid); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("admin socket: cannot give %s group %q: qqd's user (uid %d) is not a member of it (%w)",
					s.path, opts.Group, os.Getuid(), err)
			}
			return fmt.Errorf("admin socket: %w", err)
		}
	}
	if (s.gid >= 0 || s.roGid >= 0) && !traversable(filepath.Dir(s.path)) {
		s.log.Warn("admin socket's directory is closed to other users: only root and qqd's user can reach the socket",
			"dir", filepath.Dir(s.path), "hint", "put the socket in a directory of mode 0755, such as /run/qqd")
	}
	return nil
}

// traversable reports whether users other than dir's owner may traverse
// it (a rough check, for a warning).
func traversable(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.Mode().Perm()&0o011 != 0
}

// lookupGroup returns the gid of group name, which may also be a number.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if n, nerr := strconv.Atoi(name); nerr == nil && n >= 0 {
			return n, nil
		}
		return -1, fmt.Errorf("unknown group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}
