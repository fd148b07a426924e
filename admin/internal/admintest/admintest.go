// Package admintest holds what the admin packages' tests share: a fake
// adminserver.Backend, a test double of qqd that records the calls made
// and answers from its fields; a running admin server on a socket in a
// fresh directory; and a way to run the test binary again as another
// user, to test who may call.
package admintest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/adminserver"
)

// Backend is a fake adminserver.Backend. Set its fields before use; Calls
// records every call as "Method arg...".
type Backend struct {
	SessionList []admin.UserSession
	StatsValue  admin.Stats
	PluginList  []admin.Plugin
	ReloadErr   error
	// NeedsRestart is what Reload reports.
	NeedsRestart []string
	// Online is the number of sessions per user that Kick reports.
	Online map[string]int
	// BroadcastN is what Broadcast reports.
	BroadcastN int
	// Accounts holds user → password; AccountErr, if set, is returned by
	// every account method instead.
	Accounts   map[string]string
	AccountErr error
	// Pending is what RemoveAccount reports as dropped.
	Pending int64
	// GroupList holds the groups by id, and GroupMemberList their members
	// by name; GroupErr, if set, is returned by every group method
	// instead.
	GroupList       map[int64]admin.Group
	GroupMemberList map[int64][]admin.GroupMember
	GroupErr        error
	// TokenList holds each user's resume tokens, most recently used
	// first; TokenErr, if set, is returned by every token method instead.
	TokenList map[string][]admin.Token
	TokenErr  error
	// BackupReply and BackupErr are what Backup returns; BackupStarted,
	// if set, gets a value when a Backup starts, which then waits for
	// BackupRelease (if set) to be closed.
	BackupReply   admin.BackupReply
	BackupErr     error
	BackupStarted chan<- struct{}
	BackupRelease <-chan struct{}

	mu    sync.Mutex
	calls []string
}

var _ adminserver.Backend = (*Backend)(nil)

// Calls returns the calls made so far.
func (b *Backend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *Backend) record(method string, args ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, strings.Join(append([]string{method}, args...), " "))
}

func (b *Backend) Sessions() []admin.UserSession { b.record("Sessions"); return b.SessionList }
func (b *Backend) Stats() admin.Stats            { b.record("Stats"); return b.StatsValue }
func (b *Backend) Plugins() []admin.Plugin       { b.record("Plugins"); return b.PluginList }

func (b *Backend) Kick(user, reason string) int {
	b.record("Kick", user, reason)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Online[user]
}

func (b *Backend) Broadcast(text string) int { b.record("Broadcast", text); return b.BroadcastN }

func (b *Backend) Reload(ctx context.Context) ([]string, error) {
	b.record("Reload")
	if b.ReloadErr != nil {
		return nil, b.ReloadErr
	}
	return b.NeedsRestart, nil
}

func (b *Backend) CheckReload(ctx context.Context) (admin.ReloadCheckReply, error) {
	b.record("CheckReload")
	if b.ReloadErr != nil {
		return admin.ReloadCheckReply{}, b.ReloadErr
	}
	return admin.ReloadCheckReply{NeedsRestart: b.NeedsRestart, FiltersKept: []string{"wordfilter"}}, nil
}

func (b *Backend) AddAccount(ctx context.Context, user, password string) error {
	b.record("AddAccount", user, password)
	return b.setPassword(user, password, false)
}

func (b *Backend) SetPassword(ctx context.Context, user, password string) error {
	b.record("SetPassword", user, password)
	return b.setPassword(user, password, true)
}

// setPassword gives user password, if the account exists (exists) or
// does not (!exists), and the password has at least 8 bytes.
func (b *Backend) setPassword(user, password string, exists bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.AccountErr != nil {
		return b.AccountErr
	}
	_, ok := b.Accounts[user]
	switch {
	case ok && !exists:
		return admin.ErrUserExists
	case !ok && exists:
		return admin.ErrUnknownUser
	case len(password) < 8:
		return admin.Invalid("password must be 8 to 1024 bytes of UTF-8")
	}
	if b.Accounts == nil {
		b.Accounts = map[string]string{}
	}
	b.Accounts[user] = password
	return nil
}

func (b *Backend) RemoveAccount(ctx context.Context, user string) (int64, error) {
	b.record("RemoveAccount", user)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.AccountErr != nil {
		return 0, b.AccountErr
	}
	if _, ok := b.Accounts[user]; !ok {
		return 0, admin.ErrUnknownUser
	}
	delete(b.Accounts, user)
	return b.Pending, nil
}

func (b *Backend) Group(ctx context.Context, id int64) (admin.Group, error) {
	b.record("Group", strconv.FormatInt(id, 10))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.GroupErr != nil {
		return admin.Group{}, b.GroupErr
	}
	g, ok := b.GroupList[id]
	if !ok {
		return admin.Group{}, admin.ErrNoGroup
	}
	return g, nil
}

func (b *Backend) UserGroups(ctx context.Context, user string) ([]admin.Group, error) {
	b.record("UserGroups", user)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.GroupErr != nil {
		return nil, b.GroupErr
	}
	var out []admin.Group
	for id, g := range b.GroupList {
		i := slices.IndexFunc(b.GroupMemberList[id], func(m admin.GroupMember) bool { return m.User == user })
		if !g.Dissolved && i >= 0 {
			g.Role = b.GroupMemberList[id][i].Role
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b admin.Group) int { // by id, a number
		return cmp.Or(cmp.Compare(len(a.Group), len(b.Group)), strings.Compare(a.Group, b.Group))
	})
	return out, nil
}

func (b *Backend) GroupMembers(ctx context.Context, id int64, after string, limit int) ([]admin.GroupMember, bool, error) {
	b.record("GroupMembers", strconv.FormatInt(id, 10), after, strconv.Itoa(limit))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.GroupErr != nil {
		return nil, false, b.GroupErr
	}
	if _, ok := b.GroupList[id]; !ok {
		return nil, false, admin.ErrNoGroup
	}
	var out []admin.GroupMember
	for _, m := range b.GroupMemberList[id] { // by name
		if m.User > after {
			out = append(out, m)
		}
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

func (b *Backend) DissolveGroup(ctx context.Context, id int64) (admin.GroupChangeReply, error) {
	b.record("DissolveGroup", strconv.FormatInt(id, 10))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.GroupErr != nil {
		return admin.GroupChangeReply{}, b.GroupErr
	}
	g, ok := b.GroupList[id]
	if !ok || g.Dissolved {
		return admin.GroupChangeReply{}, admin.ErrNoGroup
	}
	g.Dissolved, g.Members = true, 0
	g.LastSeq++
	b.GroupList[id] = g
	delete(b.GroupMemberList, id)
	return admin.GroupChangeReply{Group: g.Group, Seq: g.LastSeq, Actor: g.Owner}, nil
}

func (b *Backend) RemoveGroupMember(ctx context.Context, id int64, user string) (admin.GroupChangeReply, error) {
	b.record("RemoveGroupMember", strconv.FormatInt(id, 10), user)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.GroupErr != nil {
		return admin.GroupChangeReply{}, b.GroupErr
	}
	g, ok := b.GroupList[id]
	if !ok || g.Dissolved {
		return admin.GroupChangeReply{}, admin.ErrNoGroup
	}
	if user == g.Owner {
		return admin.GroupChangeReply{}, fmt.Errorf("%w: %s owns group %d; dissolve the group instead", admin.ErrNotAllowed, user, id)
	}
	ms := b.GroupMemberList[id]
	i := slices.IndexFunc(ms, func(m admin.GroupMember) bool { return m.User == user })
	if i < 0 {
		return admin.GroupChangeReply{}, admin.ErrNotMember
	}
	b.GroupMemberList[id] = slices.Delete(ms, i, i+1)
	g.Members--
	g.LastSeq++
	b.GroupList[id] = g
	return admin.GroupChangeReply{Group: g.Group, Seq: g.LastSeq, Actor: g.Owner}, nil
}

func (b *Backend) UserTokens(ctx context.Context, user string) ([]admin.Token, error) {
	b.record("UserTokens", user)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.TokenErr != nil {
		return nil, b.TokenErr
	}
	return slices.Clone(b.TokenList[user]), nil
}

// RevokeTokens records its call as "RevokeTokens user id...", with no
// ids for all.
func (b *Backend) RevokeTokens(ctx context.Context, user string, ids []string) (int64, error) {
	b.record("RevokeTokens", append([]string{user}, ids...)...)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.TokenErr != nil {
		return 0, b.TokenErr
	}
	ts := b.TokenList[user]
	kept := slices.DeleteFunc(slices.Clone(ts), func(t admin.Token) bool {
		return len(ids) == 0 || slices.Contains(ids, t.ID)
	})
	if b.TokenList != nil {
		b.TokenList[user] = kept
	}
	return int64(len(ts) - len(kept)), nil
}

func (b *Backend) Backup(ctx context.Context, dir string) (admin.BackupReply, error) {
	b.record("Backup", dir)
	if b.BackupStarted != nil {
		b.BackupStarted <- struct{}{}
	}
	if b.BackupRelease != nil {
		<-b.BackupRelease
	}
	if b.BackupErr != nil {
		return admin.BackupReply{}, b.BackupErr
	}
	r := b.BackupReply
	r.Dir = dir
	return r, nil
}

// Serve runs an admin server with b behind it, on a socket in a fresh
// directory that other users may enter unless opts.Path is set, until
// the test ends.
func Serve(t *testing.T, opts adminserver.Options, b adminserver.Backend) *adminserver.Server {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(OpenTempDir(t), "admin.sock")
	}
	s, err := adminserver.Listen(opts, b)
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
	return s
}

// OpenTempDir is a t.TempDir() that other users may enter (the
// directories t.TempDir makes are 0700).
func OpenTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Main runs a test binary's tests and fails them on leaked goroutines;
// call it from TestMain. When the variable env is set, the binary is
// instead a child that RunAs started: Main exits with child(value of env).
func Main(m *testing.M, env string, child func(spec string) int) {
	if spec := os.Getenv(env); spec != "" {
		os.Exit(child(spec))
	}
	goleak.VerifyTestMain(m)
}

// Result is what a child process did.
type Result struct {
	Code           int // exit code
	Stdout, Stderr string
}

// RunAs runs the test binary again, as a child with uid and gids (the
// first is the primary group) and env=spec in its environment, for Main
// to hand spec to the test's child function. It needs root; without it
// the test is skipped.
func RunAs(t *testing.T, uid uint32, gids []uint32, env, spec string) Result {
	t.Helper()
	cmd := exec.Command(childBinary(t), "-test.run=^$")
	// The race runtime waits a second at exit unless told not to.
	cmd.Env = append(os.Environ(), env+"="+spec, "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gids[0], Groups: gids[1:]}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("child as uid %d gids %v: %v", uid, gids, err)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}

// childBinary copies the test binary where any user can run it (go test
// builds it in a directory only its owner can enter).
func childBinary(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(OpenTempDir(t), filepath.Base(self))
	if err := os.Link(self, bin); err != nil {
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
