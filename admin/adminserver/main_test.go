package adminserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/adminserver"
	"github.com/qqchat/qq/admin/internal/admintest"
)

// childEnv switches the test binary into a tiny admin client (see
// runChild), run as another user by asUser.
const childEnv = "QQ_ADMIN_TEST_CHILD"

func TestMain(m *testing.M) { admintest.Main(m, childEnv, runChild) }

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
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
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
	spec, _ := json.Marshal(req)
	r := admintest.RunAs(t, uid, gids, childEnv, string(spec))
	if r.Code != 0 {
		t.Fatalf("child as uid %d gids %v: exit %d\n%s", uid, gids, r.Code, r.Stderr)
	}
	var res childResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("child output %q: %v", r.Stdout, err)
	}
	return res
}

// start runs an admin Server with b behind it (see admintest.Serve) and
// returns it with a Client, closed by Cleanup.
func start(t *testing.T, opts adminserver.Options, b adminserver.Backend) (*adminserver.Server, *admin.Client) {
	t.Helper()
	s := admintest.Serve(t, opts, b)
	c, err := admin.Dial(s.Path())
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
