package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/internal/admintest"
	"go.uber.org/goleak"
)

// childEnv switches the test binary into a tiny admin client (see
// runChild), run as another user by asUser.
const childEnv = "QQ_ADMIN_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	goleak.VerifyTestMain(m)
}

// childRequest is what a child process does: one request, as a plain
// HTTP client on the socket.
type childRequest struct {
	Socket string
	Method string
	Path   string
	Body   string
}

// childResult is what it prints as JSON.
type childResult struct {
	DialErr string // set when it cannot connect
	Status  int
	Body    string
}

func runChild(spec string) int {
	var req childRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var res childResult
	status, body, err := rawRequest(req.Socket, req.Method, req.Path, req.Body)
	if err != nil {
		res.DialErr = err.Error()
		if errors.Is(err, syscall.EACCES) {
			res.DialErr = "EACCES"
		}
	}
	res.Status, res.Body = status, body
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// rawRequest sends one HTTP request over the unix socket, as curl
// --unix-socket would.
func rawRequest(socket, method, path, body string) (int, string, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest(method, "http://qqd"+path, strings.NewReader(body))
	if body == "" {
		req.Body = nil
	}
	if err := req.Write(c); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufioReader(c), req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// asUser runs req in a child process with uid and gids (the first is the
// primary group) and returns its result. It needs root; without it the
// test is skipped.
func asUser(t *testing.T, uid uint32, gids []uint32, req childRequest) childResult {
	t.Helper()
	bin := childBinary(t)
	spec, _ := json.Marshal(req)
	cmd := exec.Command(bin, "-test.run=^$")
	// The race runtime waits a second at exit unless told not to.
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec), "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gids[0], Groups: gids[1:]}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child as uid %d gids %v: %v\n%s", uid, gids, err, stderr.String())
	}
	var res childResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	return res
}

// childBinary copies the test binary where any user can run it (go test
// builds it in a directory only its owner can enter).
func childBinary(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := openTempDir(t)
	bin := filepath.Join(dir, "admin.test")
	if os.Link(self, bin) == nil {
		if err := os.Chmod(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		return bin
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// openTempDir is a t.TempDir() that other users may enter (the
// directories t.TempDir makes are 0700).
func openTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// start runs an admin Server on a socket in a fresh directory, with b
// behind it, and returns it with a Client; both are closed by Cleanup.
func start(t *testing.T, opts admin.Options, b admin.Backend) (*admin.Server, *admin.Client) {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(openTempDir(t), "admin.sock")
	}
	s, err := admin.Listen(opts, b)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c, err := admin.Dial(opts.Path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func fakeBackend() *admintest.Backend {
	return &admintest.Backend{Accounts: map[string]string{"carol": "carol-pass"}}
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
