package plugins_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// plainStorage hides the Social of the storage it wraps.
type plainStorage struct{ plugins.Storage }

func newPlainStorage(env plugins.Env, config []byte) (plugins.Storage, error) {
	st, err := newTestStorage(env, config)
	if err != nil {
		return nil, err
	}
	return plainStorage{st}, nil
}

// TestSocialOf: a wrapper's Social (and Groups, Tokens) method wins over
// what it embeds; an in-process storage has Social (Groups, Tokens) when
// it implements it.
func TestSocialOf(t *testing.T) {
	env, cfg := sqliteConfig(t, "normal")
	st, err := newTestStorage(env, cfg) // faultStorage: hands on sqlitestore's Social
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inner := st.(interface{ Social() (plugins.Social, bool) })
	if _, ok := inner.Social(); !ok {
		t.Fatal("the test storage has no Social")
	}
	for _, tt := range []struct {
		name string
		st   plugins.Storage
		want bool
	}{
		{"a storage that implements Social", st.(faultStorage).Storage, true},
		{"a wrapper that hands it on", st, true},
		{"a wrapper that hides it", plainStorage{st}, false},
		{"nil", nil, false},
	} {
		if soc, ok := plugins.SocialOf(tt.st); ok != tt.want || (soc != nil) != tt.want {
			t.Errorf("SocialOf(%s) = %v, %v; want %v", tt.name, soc, ok, tt.want)
		}
		if g, ok := plugins.GroupsOf(tt.st); ok != tt.want || (g != nil) != tt.want {
			t.Errorf("GroupsOf(%s) = %v, %v; want %v", tt.name, g, ok, tt.want)
		}
		if tk, ok := plugins.TokensOf(tt.st); ok != tt.want || (tk != nil) != tt.want {
			t.Errorf("TokensOf(%s) = %v, %v; want %v", tt.name, tk, ok, tt.want)
		}
	}
}

// TestSocialRoundTrip: the Social calls, their errors and the Write
// checks cross the gRPC boundary.
func TestSocialRoundTrip(t *testing.T) {
	ctx := context.Background()
	env, cfg := sqliteConfig(t, "normal")
	st := inProcessStorage(t, newTestStorage, env, cfg)
	soc, ok := plugins.SocialOf(st)
	if !ok {
		t.Fatal("SocialOf = false over gRPC, want the plugin's Social")
	}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		if err := st.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	const ts = 1_764_158_400_000
	if became, err := soc.RequestFriend(ctx, "alice", "bob", "hé 🌍", ts); err != nil || became {
		t.Fatalf("RequestFriend = %v, %v", became, err)
	}
	if became, err := soc.RequestFriend(ctx, "carol", "alice", "", ts+1); err != nil || became {
		t.Fatalf("RequestFriend = %v, %v", became, err)
	}
	if err := soc.AnswerFriendRequest(ctx, "dave", "alice", true, ts); !errors.Is(err, plugins.ErrNoRequest) || !strings.Contains(err.Error(), "answer friend request") {
		t.Errorf("AnswerFriendRequest with no request = %v, want ErrNoRequest", err)
	}
	if err := soc.CancelFriendRequest(ctx, "dave", "alice"); !errors.Is(err, plugins.ErrNoRequest) {
		t.Errorf("CancelFriendRequest with no request = %v, want ErrNoRequest", err)
	}
	if err := soc.RemoveFriend(ctx, "alice", "dave"); !errors.Is(err, plugins.ErrNotFriends) {
		t.Errorf("RemoveFriend of a stranger = %v, want ErrNotFriends", err)
	}
	if _, err := soc.RequestFriend(ctx, "alice", "ghost", "", ts); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Errorf("RequestFriend(ghost) = %v, want ErrUnknownUser", err)
	}
	if err := soc.Block(ctx, "alice", "ghost", ts); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Errorf("Block(ghost) = %v, want ErrUnknownUser", err)
	}
	if err := soc.AnswerFriendRequest(ctx, "bob", "alice", true, ts+2); err != nil {
		t.Fatal(err)
	}
	if err := soc.Block(ctx, "dave", "alice", ts+3); err != nil {
		t.Fatal(err)
	}
	if _, err := soc.RequestFriend(ctx, "alice", "dave", "", ts); !errors.Is(err, plugins.ErrBlocked) {
		t.Errorf("RequestFriend to a blocker = %v, want ErrBlocked", err)
	}
	l, err := soc.Friends(ctx, "alice")
	want := plugins.FriendList{
		Friends:  []plugins.Friend{{User: "bob", Since: ts + 2}},
		Incoming: []plugins.FriendRequest{{From: "carol", To: "alice", TS: ts + 1}},
	}
	if err != nil || !slices.Equal(l.Friends, want.Friends) || !slices.Equal(l.Incoming, want.Incoming) || len(l.Outgoing) != 0 {
		t.Errorf("Friends(alice) = %+v, %v; want %+v", l, err, want)
	}
	if b, err := soc.Blocks(ctx, "dave"); err != nil || !slices.Equal(b, []string{"alice"}) {
		t.Errorf("Blocks(dave) = %v, %v", b, err)
	}
	if r, err := soc.Relation(ctx, "alice", "dave"); err != nil || r != (plugins.Relation{BlockedBy: true}) {
		t.Errorf("Relation(alice, dave) = %+v, %v", r, err)
	}
	if r, err := soc.Relation(ctx, "alice", "carol"); err != nil || r != (plugins.Relation{RequestIn: true}) {
		t.Errorf("Relation(alice, carol) = %+v, %v", r, err)
	}
	if err := soc.Unblock(ctx, "dave", "alice"); err != nil {
		t.Errorf("Unblock = %v", err)
	}
	if err := soc.Block(ctx, "dave", "alice", ts+4); err != nil {
		t.Fatal(err)
	}

	// The Write checks: FriendsOnly crosses, and so do the result errors.
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		{From: "alice", To: "dave", Body: "blocked", Status: protocol.StatusQueued},
		{From: "alice", To: "carol", Body: "not friends", FriendsOnly: true, Status: protocol.StatusQueued},
		{From: "alice", To: "bob", Body: "friends", FriendsOnly: true, Status: protocol.StatusQueued},
	}})
	if err != nil || len(res) != 3 {
		t.Fatalf("Write = %+v, %v", res, err)
	}
	if !errors.Is(res[0].Err, plugins.ErrBlocked) || !strings.Contains(res[0].Err.Error(), "blocks") {
		t.Errorf("result 0 = %+v, want ErrBlocked with the store's text", res[0])
	}
	if !errors.Is(res[1].Err, plugins.ErrNotFriends) {
		t.Errorf("result 1 = %+v, want ErrNotFriends", res[1])
	}
	if res[2].Err != nil || res[2].Message.ID == "" {
		t.Errorf("result 2 = %+v, want stored", res[2])
	}
}

// TestSocialHiddenOverGRPC: a plugin whose storage has no Social (nor
// Groups, nor Tokens) says so at Configure; the host then reports none, even at
// version 2. A Write with group messages to it fails with nothing
// written, not with missing results.
func TestSocialHiddenOverGRPC(t *testing.T) {
	ctx := context.Background()
	env, cfg := sqliteConfig(t, "normal")
	st := inProcessStorage(t, newPlainStorage, env, cfg)
	if _, ok := plugins.SocialOf(st); ok {
		t.Error("SocialOf = true for a plugin whose storage has no Social")
	}
	if _, ok := plugins.GroupsOf(st); ok {
		t.Error("GroupsOf = true for a plugin whose storage has no Groups")
	}
	if _, ok := plugins.TokensOf(st); ok {
		t.Error("TokensOf = true for a plugin whose storage has no Tokens")
	}
	if err := st.CreateUser(ctx, "alice", "h"); err != nil {
		t.Errorf("CreateUser = %v", err)
	}
	res, err := st.Write(ctx, &plugins.WriteBatch{
		Messages:      []plugins.NewMessage{msg("alice", "alice", "note", "c1")},
		GroupMessages: []plugins.NewGroupMessage{{Group: 1, From: "alice", Body: "x"}},
	})
	var we *plugins.WriteError
	if !errors.As(err, &we) || we.MaybeWritten || res != nil {
		t.Errorf("Write with group messages = %+v, %v; want a *WriteError{MaybeWritten: false}", res, err)
	}
	if n, err := st.PendingCount(ctx, "alice"); err != nil || n != 0 {
		t.Errorf("PendingCount(alice) = %d, %v; want 0", n, err)
	}
}

// TestProcessProtocolVersions: the host starts plugins of version 1 (no
// Social), 2 (Social), 3 (call streams), 4 (Backup) and 5 (Stats), and a plugin of
// this package starts under a host that knows only version 1.
func TestProcessProtocolVersions(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		serve       string
		wantVersion int
		wantSocial  bool // and Groups, Tokens
	}{
		{"storage", 5, true},
		{"storage-v3", 3, true},
		{"storage-v2", 2, true},
		{"storage-v1", 1, false},
	} {
		t.Run(tt.serve, func(t *testing.T) {
			p := startStorageServing(t, tt.serve, tt.wantVersion)
			st := p.Storage()
			soc, ok := plugins.SocialOf(st)
			if ok != tt.wantSocial {
				t.Fatalf("SocialOf = %v, want %v", ok, tt.wantSocial)
			}
			if _, ok := plugins.GroupsOf(st); ok != tt.wantSocial {
				t.Errorf("GroupsOf = %v, want %v", ok, tt.wantSocial)
			}
			if _, ok := plugins.TokensOf(st); ok != tt.wantSocial {
				t.Errorf("TokensOf = %v, want %v", ok, tt.wantSocial)
			}
			for _, u := range []string{"alice", "bob"} {
				if err := st.CreateUser(ctx, u, "h"); err != nil {
					t.Fatal(err)
				}
			}
			if ok {
				if err := soc.Block(ctx, "bob", "alice", 1); err != nil {
					t.Fatal(err)
				}
			}
			res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "hi", "c1")}})
			if err != nil || len(res) != 1 {
				t.Fatalf("Write = %+v, %v", res, err)
			}
			if blocked := errors.Is(res[0].Err, plugins.ErrBlocked); blocked != tt.wantSocial {
				t.Errorf("Write result = %+v, want ErrBlocked %v", res[0], tt.wantSocial)
			}
		})
	}

	t.Run("under a version 1 host", func(t *testing.T) {
		st := storageUnderHost(t, 1)
		if _, ok := plugins.SocialOf(st); ok {
			t.Error("SocialOf = true at version 1")
		}
		if _, ok := plugins.GroupsOf(st); ok {
			t.Error("GroupsOf = true at version 1")
		}
		if _, ok := plugins.TokensOf(st); ok {
			t.Error("TokensOf = true at version 1")
		}
		for _, u := range []string{"alice", "bob"} {
			if err := st.CreateUser(ctx, u, "h"); err != nil {
				t.Fatal(err)
			}
		}
		if res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "hi", "c1")}}); err != nil || res[0].Err != nil {
			t.Errorf("Write = %+v, %v", res, err)
		}
	})
}

// TestSuperviseSocialAcrossRestarts: SocialOf, GroupsOf and TokensOf on a
// supervised storage follow the protocol version each new process
// negotiates.
func TestSuperviseSocialAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	env, cfg := sqliteConfig(t, "normal")
	s := supervise(t, plugins.KindStorage, cfg, env) // serves versions 1 and 2
	st := s.Storage()
	soc, ok := plugins.SocialOf(st)
	if !ok {
		t.Fatal("SocialOf = false for a version 2 plugin")
	}
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := soc.RequestFriend(ctx, "alice", "bob", "hi", 1); err != nil {
		t.Fatal(err)
	}
	grp, ok := plugins.GroupsOf(st)
	if !ok {
		t.Fatal("GroupsOf = false for a version 2 plugin")
	}
	g, err := grp.CreateGroup(ctx, "alice", "g", plugins.PolicyOpen, plugins.HistoryJoined, 1, plugins.GroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	// Group answers do not count as failures either.
	for range 3 {
		if _, err := grp.GroupOp(ctx, plugins.GroupOp{Kind: plugins.OpKick, Group: g.ID, Actor: "bob", Target: "alice"}); !errors.Is(err, plugins.ErrNotMember) {
			t.Fatalf("GroupOp = %v, want ErrNotMember", err)
		}
	}
	// Sentinel answers do not count as failures.
	for range 3 {
		if err := soc.RemoveFriend(ctx, "alice", "bob"); !errors.Is(err, plugins.ErrNotFriends) {
			t.Fatalf("RemoveFriend = %v, want ErrNotFriends", err)
		}
	}
	tks, ok := plugins.TokensOf(st)
	if !ok {
		t.Fatal("TokensOf = false for a version 2 plugin")
	}
	token := plugins.Token{ID: "00000000000000a1", User: "alice", Hash: []byte{0, 1, 0xff}, Created: 1, LastUsed: 2, Expires: 3}
	if err := tks.AddToken(ctx, token, 20); err != nil {
		t.Fatal(err)
	}
	// Nor do the token answers.
	for range 3 {
		if _, err := tks.Token(ctx, "00000000000000ff"); !errors.Is(err, plugins.ErrNoToken) {
			t.Fatalf("Token = %v, want ErrNoToken", err)
		}
		if err := tks.AddToken(ctx, token, 20); !errors.Is(err, plugins.ErrTokenExists) {
			t.Fatalf("AddToken again = %v, want ErrTokenExists", err)
		}
	}

	// restart kills the process and waits for the next one, which serves
	// what serve says.
	restart := func(serve string) {
		t.Helper()
		t.Setenv(envServe, serve)
		before := s.Status()
		syscall.Kill(before.Pid, syscall.SIGKILL)
		if !eventually(10*time.Second, func() bool { st := s.Status(); return st.Up && st.Pid != before.Pid }) {
			t.Fatalf("not restarted: %+v", s.Status())
		}
	}

	restart("storage-v1") // an older plugin binary
	if _, ok := plugins.SocialOf(st); ok {
		t.Error("SocialOf = true after a restart with a version 1 plugin")
	}
	// The Social obtained before fails, as the plugin being down would.
	if _, err := soc.Friends(ctx, "alice"); !errors.Is(err, plugins.ErrPluginDown) || !strings.Contains(err.Error(), "protocol version 1") {
		t.Errorf("Friends on a version 1 process = %v, want ErrPluginDown naming version 1", err)
	}
	if _, ok := plugins.GroupsOf(st); ok {
		t.Error("GroupsOf = true after a restart with a version 1 plugin")
	}
	if _, err := grp.Group(ctx, g.ID); !errors.Is(err, plugins.ErrPluginDown) || !strings.Contains(err.Error(), "protocol version 1") {
		t.Errorf("Group on a version 1 process = %v, want ErrPluginDown naming version 1", err)
	}
	if _, ok := plugins.TokensOf(st); ok {
		t.Error("TokensOf = true after a restart with a version 1 plugin")
	}
	if _, err := tks.Token(ctx, token.ID); !errors.Is(err, plugins.ErrPluginDown) || !strings.Contains(err.Error(), "protocol version 1") {
		t.Errorf("Token on a version 1 process = %v, want ErrPluginDown naming version 1", err)
	}
	if _, err := st.PasswordHash(ctx, "alice"); err != nil {
		t.Errorf("PasswordHash on the version 1 process = %v", err)
	}

	restart("storage")
	soc2, ok := plugins.SocialOf(st)
	if !ok {
		t.Fatal("SocialOf = false after a restart with a version 2 plugin")
	}
	for _, so := range []plugins.Social{soc, soc2} {
		l, err := so.Friends(ctx, "bob")
		if err != nil || len(l.Incoming) != 1 || l.Incoming[0] != (plugins.FriendRequest{From: "alice", To: "bob", Note: "hi", TS: 1}) {
			t.Errorf("Friends(bob) after the restarts = %+v, %v; want alice's request", l, err)
		}
	}
	grp2, ok := plugins.GroupsOf(st)
	if !ok {
		t.Fatal("GroupsOf = false after a restart with a version 2 plugin")
	}
	for _, gr := range []plugins.Groups{grp, grp2} {
		if info, err := gr.Group(ctx, g.ID); err != nil || info.Owner != "alice" {
			t.Errorf("Group after the restarts = %+v, %v", info, err)
		}
	}
	tks2, ok := plugins.TokensOf(st)
	if !ok {
		t.Fatal("TokensOf = false after a restart with a version 2 plugin")
	}
	for _, tk := range []plugins.Tokens{tks, tks2} {
		if got, err := tk.Token(ctx, token.ID); err != nil || got.User != "alice" || !slices.Equal(got.Hash, token.Hash) {
			t.Errorf("Token after the restarts = %+v, %v; want %+v", got, err, token)
		}
	}
	if st := s.Status(); st.Restarts != 2 {
		t.Errorf("restarts = %d, want 2 (the sentinel answers restarted nothing)", st.Restarts)
	}

	// Closed: the last answer stands, and calls fail with ErrPluginDown.
	s.Close()
	if _, ok := plugins.SocialOf(st); !ok {
		t.Error("SocialOf after Close = false, want the last process's answer")
	}
	if _, err := soc.Friends(ctx, "bob"); !errors.Is(err, plugins.ErrPluginDown) {
		t.Errorf("Friends after Close = %v, want ErrPluginDown", err)
	}
	if _, err := grp.Group(ctx, g.ID); !errors.Is(err, plugins.ErrPluginDown) {
		t.Errorf("Group after Close = %v, want ErrPluginDown", err)
	}
	if _, err := tks.Token(ctx, token.ID); !errors.Is(err, plugins.ErrPluginDown) {
		t.Errorf("Token after Close = %v, want ErrPluginDown", err)
	}
}

// storageUnderHost starts this test binary as a storage plugin (sqlite,
// synchronous normal) under a host that speaks only the protocol
// versions up to host, and returns the configured storage: what a qqd
// of that version would see. The process is killed when t ends.
func storageUnderHost(t *testing.T, host int) plugins.Storage {
	t.Helper()
	env, cfg := sqliteConfig(t, "normal")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envServe+"=storage")
	old := plugins.Handshake
	old.ProtocolVersion = uint(host)
	versions := map[int]goplugin.PluginSet{}
	for v := 1; v <= host; v++ {
		versions[v] = plugins.VersionedPlugins[v]
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  old,
		VersionedPlugins: versions,
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	if v := client.NegotiatedVersion(); v != host {
		t.Errorf("negotiated version %d, want %d", v, host)
	}
	raw, err := rpc.Dispense(string(plugins.KindStorage))
	if err != nil {
		t.Fatal(err)
	}
	if err := plugins.Configure(t.Context(), raw, cfg, env); err != nil {
		t.Fatal(err)
	}
	return raw.(plugins.Storage)
}

// startStorageServing starts this test binary as the sqlite storage
// plugin serving as serve says (envServe: "storage", or "storage-vN" for
// the protocol versions up to N), and checks that the host negotiated
// wantVersion. The process is killed when t ends.
func startStorageServing(t *testing.T, serve string, wantVersion int) *plugins.Process {
	t.Helper()
	env, cfg := sqliteConfig(t, "normal")
	t.Setenv(envServe, serve)
	p, err := plugins.Start(t.Context(), plugins.Spec{Name: "sqlite", Kind: plugins.KindStorage, Command: []string{os.Args[0]}, Config: cfg, Env: env, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if v := p.ProtocolVersion(); v != wantVersion {
		t.Fatalf("ProtocolVersion = %d, want %d", v, wantVersion)
	}
	return p
}
