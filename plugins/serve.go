package plugins

// The plugin side: the gRPC servers in front of a plugin's Go
// implementation, and the Serve helpers a plugin's main calls.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qqchat/qq/plugins/pluginpb"
)

// ServeStorage runs the current process as a storage plugin: its main is
// just
//
//	func main() { plugins.ServeStorage(mystore.New) }
//
// The host's Configure call runs f with the plugin's configuration (a
// factory error is returned to the host with its full text, and qqd
// reports it); the Storage it returns then serves every call. ServeStorage
// returns when the host stops the plugin, after closing the Storage if the
// host did not. It never returns if the process was not started by a qq
// host: it prints an explanation and exits with status 1.
//
// The process exits by itself if its parent (qqd) dies. Stdout carries
// go-plugin's handshake: a plugin must not write to it. Plugins log with
// log/slog to os.Stderr (for example slog.New(slog.NewJSONHandler(os.Stderr,
// nil))); qqd relays each line to its own log with plugin=<instance name>,
// keeping the level. SIGINT and SIGTERM are ignored: qqd stops its plugins
// itself, after its last write.
//
// The process serves every protocol version from 1 to ProtocolVersion, so
// that it starts under an older qqd too; its Storage's Social, Groups and
// Tokens parts (if it has them, see SocialOf, GroupsOf, TokensOf) are used
// only by a host that negotiated version 2 or later, and its Backup (see
// BackupOf) only by one that negotiated version 4, and its Stats (see
// StatsOf) only by one that negotiated version 5. A host that negotiated
// version 3 or later sends Write and LookupCIDs on a call stream.
func ServeStorage(f StorageFactory) { serveStorage(f, servedVersions()) }

func serveStorage(f StorageFactory, versions []int) {
	s := &storageServer{factory: f}
	serve(servedPlugins(KindStorage, &storagePlugin{server: s}, versions), s.close)
	_ = s.close()
}

// ServeFilter runs the current process as a filter plugin, like
// ServeStorage:
//
//	func main() { plugins.ServeFilter(myfilter.New) }
func ServeFilter(f FilterFactory) { serveFilter(f, servedVersions()) }

func serveFilter(f FilterFactory, versions []int) {
	s := &filterServer{factory: f}
	serve(servedPlugins(KindFilter, &filterPlugin{server: s}, versions), func() error { return nil })
}

// ProfileDirEnv names an environment variable: when set (for example by a
// benchmark), every plugin process writes a CPU profile to
// <dir>/plugin-<pid>.cpu.pprof until the host stops it.
const ProfileDirEnv = "QQ_PLUGIN_CPUPROFILE_DIR"

func startProfile() (stop func()) {
	dir := os.Getenv(ProfileDirEnv)
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("plugin-%d.cpu.pprof", os.Getpid())))
	if err != nil {
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// parentCheckInterval is how often a plugin checks that qqd is alive.
const parentCheckInterval = 500 * time.Millisecond

// serve runs go-plugin's Serve with the qq handshake until the host stops
// the plugin. release runs before the process exits because its parent
// died.
func serve(set map[int]goplugin.PluginSet, release func() error) {
	stop := make(chan struct{})
	defer close(stop)
	go watchParent(stop, parentCheckInterval, os.Getppid, func() {
		logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
		logger.Error("qq plugin: parent process died; exiting")
		done := make(chan struct{})
		go func() { _ = release(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		os.Exit(3)
	})
	// qqd stops its plugins after its own last call; a signal sent to the
	// whole process group (Ctrl-C, systemd's control-group kill) must not
	// stop them first. go-plugin ignores SIGINT itself.
	signal.Ignore(syscall.SIGTERM)
	if stopProfile := startProfile(); stopProfile != nil {
		defer stopProfile()
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: set,
		GRPCServer:       grpcServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "go-plugin",
			Level:      hclog.Debug,
			Output:     os.Stderr,
			JSONFormat: true,
		}),
	})
}

// grpcServer is go-plugin's default server with go-plugin's client-side
// message size limit (a Write or Filter batch of large bodies can exceed
// gRPC's 4 MiB default) and fixed flow-control windows (see
// streamWindow).
func grpcServer(opts []grpc.ServerOption) *grpc.Server {
	return goplugin.DefaultGRPCServer(append(opts, grpc.MaxRecvMsgSize(math.MaxInt32),
		grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow)))
}

// streamWindow and connWindow are the HTTP/2 flow-control windows of a
// plugin connection (per stream and for the connection), on both sides.
// Setting them turns gRPC's BDP estimation off: it would otherwise send a
// PING, and have it answered, for nearly every message the peer receives
// at low load (two more writes, two more reads and their wake-ups per
// call); and it would only ever grow the windows, which on a Unix socket
// these already are.
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
)

// watchParent calls orphaned, once, when getppid's answer changes from
// its first (the parent died and the process was re-parented), checking
// every interval until stop is closed.
func watchParent(stop <-chan struct{}, interval time.Duration, getppid func() int, orphaned func()) {
	parent := getppid()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if getppid() != parent {
				orphaned()
				return
			}
		}
	}
}

// configured holds what a plugin's factory made, once Configure has run.
type configured[T any] struct {
	mu   sync.Mutex // serialises Configure and release
	impl atomic.Pointer[T]
}

// get returns the implementation, or a NOT_CONFIGURED status.
func (c *configured[T]) get() (T, error) {
	if p := c.impl.Load(); p != nil {
		return *p, nil
	}
	var zero T
	return zero, toStatus(errNotConfigured)
}

// configure runs factory once. Its error crosses to the host with its
// full text and the CONFIG kind.
func (c *configured[T]) configure(req *pluginpb.ConfigureRequest, factory func(Env, []byte) (T, error)) (err error) {
	defer recoverRPC("configure", &err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.impl.Load() != nil {
		return status.Error(codes.FailedPrecondition, "plugin already configured")
	}
	if factory == nil {
		return toStatus(&configError{errors.New("plugin has no factory")})
	}
	cfg := req.GetConfigJson()
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	v, err := factory(Env{DataDir: req.GetDataDir()}, cfg)
	if err != nil {
		return toStatus(&configError{err})
	}
	if any(v) == nil {
		return toStatus(&configError{errors.New("factory returned no implementation and no error")})
	}
	c.impl.Store(&v)
	return nil
}

// configError is a factory's error: its text is the factory's own.
type configError struct{ err error }

func (e *configError) Error() string        { return e.err.Error() }
func (e *configError) Unwrap() error        { return e.err }
func (e *configError) Is(target error) bool { return target == errConfig }

// recoverRPC turns a panic of an implementation into an INTERNAL status
// (and logs the stack), so that one bad message does not kill the plugin.
func recoverRPC(method string, err *error) {
	if r := recover(); r != nil {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Error("qq plugin: panic", "method", method, "panic", r, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "plugin panicked in %s: %v", method, r)
	}
}

// storageServer serves a Storage over gRPC.
type storageServer struct {
	pluginpb.UnimplementedStorageServer
	factory StorageFactory

	impl      configured[Storage]
	gate      writeGate
	closeOnce sync.Once
	closeErr  error
	// backingUp: a Backup runs. The host allows one at a time, but gives
	// up on one at its deadline while the storage may still be writing
	// it (a Pebble checkpoint cannot be interrupted): the next waits for
	// this one to end, here, not for the host's flag.
	backingUp atomic.Bool
}

// close closes the Storage, if there is one, once.
func (s *storageServer) close() error {
	s.impl.mu.Lock()
	defer s.impl.mu.Unlock()
	st, err := s.impl.get()
	if err != nil {
		return nil
	}
	s.closeOnce.Do(func() { s.closeErr = st.Close() })
	return s.closeErr
}

// Configure builds the Storage and tells the host whether it has Social,
// Groups, Tokens, Backup and Stats.
func (s *storageServer) Configure(_ context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	if err := s.impl.configure(req, s.factory); err != nil {
		return nil, err
	}
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	_, social := SocialOf(st)
	_, groups := GroupsOf(st)
	_, tokens := TokensOf(st)
	_, backup := BackupOf(st)
	_, stats := StatsOf(st)
	return &pluginpb.ConfigureResponse{Social: social, Groups: groups, Tokens: tokens, Backup: backup, Stats: stats}, nil
}

func (s *storageServer) CreateUser(ctx context.Context, req *pluginpb.CreateUserRequest) (_ *pluginpb.CreateUserResponse, err error) {
	defer recoverRPC("create user", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	if err := st.CreateUser(ctx, req.GetUser(), req.GetPasswordHash()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.CreateUserResponse{}, nil
}

func (s *storageServer) PasswordHash(ctx context.Context, req *pluginpb.PasswordHashRequest) (_ *pluginpb.PasswordHashResponse, err error) {
	defer recoverRPC("password hash", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	h, err := st.PasswordHash(ctx, req.GetUser())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.PasswordHashResponse{PasswordHash: h}, nil
}

func (s *storageServer) SetPasswordHash(ctx context.Context, req *pluginpb.SetPasswordHashRequest) (_ *pluginpb.SetPasswordHashResponse, err error) {
	defer recoverRPC("set password hash", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	if err := st.SetPasswordHash(ctx, req.GetUser(), req.GetPasswordHash()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.SetPasswordHashResponse{}, nil
}

func (s *storageServer) DeleteUser(ctx context.Context, req *pluginpb.DeleteUserRequest) (_ *pluginpb.DeleteUserResponse, err error) {
	defer recoverRPC("delete user", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	n, err := st.DeleteUser(ctx, req.GetUser())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.DeleteUserResponse{DroppedPending: n}, nil
}

func (s *storageServer) CountUsers(ctx context.Context, _ *pluginpb.CountUsersRequest) (_ *pluginpb.CountUsersResponse, err error) {
	defer recoverRPC("count users", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	n, err := st.CountUsers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.CountUsersResponse{Count: n}, nil
}

func (s *storageServer) CountPending(ctx context.Context, _ *pluginpb.CountPendingRequest) (_ *pluginpb.CountPendingResponse, err error) {
	defer recoverRPC("count pending", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	n, err := st.CountPending(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.CountPendingResponse{Count: n}, nil
}

func (s *storageServer) Write(ctx context.Context, req *pluginpb.WriteBatch) (_ *pluginpb.WriteResponse, err error) {
	defer recoverRPC("write", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	batch := writeBatchFromPB(req)
	if len(batch.GroupMessages)+len(batch.GroupAcks) > 0 {
		if _, ok := GroupsOf(st); !ok {
			// Its Write would drop them (and answer too few results).
			return &pluginpb.WriteResponse{Error: writeErrorToPB(&WriteError{MaybeWritten: false, Err: errors.New("the storage does not keep groups")})}, nil
		}
	}
	if seq := req.GetSeq(); seq != 0 {
		done, err := s.gate.enter(ctx, seq)
		if err != nil {
			return &pluginpb.WriteResponse{Error: writeErrorToPB(&WriteError{MaybeWritten: false, Err: err})}, nil
		}
		defer done()
	}
	res, err := st.Write(ctx, batch)
	if err != nil {
		return &pluginpb.WriteResponse{Error: writeErrorToPB(err)}, nil
	}
	return &pluginpb.WriteResponse{Results: appendResultsToPB(res)}, nil
}

func (s *storageServer) LookupCIDs(ctx context.Context, req *pluginpb.LookupCIDsRequest) (_ *pluginpb.LookupCIDsResponse, err error) {
	defer recoverRPC("lookup cids", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	res, err := st.LookupCIDs(ctx, cidKeysFromPB(req.GetKeys()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.LookupCIDsResponse{Results: appendResultsToPB(res)}, nil
}

func (s *storageServer) PendingCount(ctx context.Context, req *pluginpb.PendingCountRequest) (_ *pluginpb.PendingCountResponse, err error) {
	defer recoverRPC("pending count", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	n, err := st.PendingCount(ctx, req.GetUser())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.PendingCountResponse{Count: n}, nil
}

func (s *storageServer) Pending(ctx context.Context, req *pluginpb.PendingRequest) (_ *pluginpb.PendingResponse, err error) {
	defer recoverRPC("pending", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	msgs, more, err := st.Pending(ctx, req.GetUser(), clampInt(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.PendingResponse{Messages: messagesToPB(msgs), More: more}, nil
}

func (s *storageServer) History(ctx context.Context, req *pluginpb.HistoryRequest) (_ *pluginpb.HistoryResponse, err error) {
	defer recoverRPC("history", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	msgs, more, err := st.History(ctx, req.GetUser(), req.GetWith(), req.GetBefore(), clampInt(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.HistoryResponse{Messages: messagesToPB(msgs), More: more}, nil
}

func (s *storageServer) Close(context.Context, *pluginpb.CloseRequest) (_ *pluginpb.CloseResponse, err error) {
	defer recoverRPC("close", &err)
	if _, err := s.impl.get(); err != nil {
		return nil, err
	}
	if err := s.close(); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.CloseResponse{}, nil
}

// social returns the Social part of the configured Storage, or an
// UNIMPLEMENTED status when it has none.
func (s *storageServer) social() (Social, error) {
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	soc, ok := SocialOf(st)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the storage does not keep friendships")
	}
	return soc, nil
}

func (s *storageServer) RequestFriend(ctx context.Context, req *pluginpb.RequestFriendRequest) (_ *pluginpb.RequestFriendResponse, err error) {
	defer recoverRPC("request friend", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	became, err := soc.RequestFriend(ctx, req.GetFrom(), req.GetTo(), req.GetNote(), req.GetTs())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.RequestFriendResponse{BecameFriends: became}, nil
}

func (s *storageServer) AnswerFriendRequest(ctx context.Context, req *pluginpb.AnswerFriendRequestRequest) (_ *pluginpb.AnswerFriendRequestResponse, err error) {
	defer recoverRPC("answer friend request", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	if err := soc.AnswerFriendRequest(ctx, req.GetUser(), req.GetFrom(), req.GetAccept(), req.GetTs()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.AnswerFriendRequestResponse{}, nil
}

func (s *storageServer) CancelFriendRequest(ctx context.Context, req *pluginpb.CancelFriendRequestRequest) (_ *pluginpb.CancelFriendRequestResponse, err error) {
	defer recoverRPC("cancel friend request", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	if err := soc.CancelFriendRequest(ctx, req.GetFrom(), req.GetTo()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.CancelFriendRequestResponse{}, nil
}

func (s *storageServer) RemoveFriend(ctx context.Context, req *pluginpb.RemoveFriendRequest) (_ *pluginpb.RemoveFriendResponse, err error) {
	defer recoverRPC("remove friend", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	if err := soc.RemoveFriend(ctx, req.GetUser(), req.GetFriend()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.RemoveFriendResponse{}, nil
}

func (s *storageServer) Friends(ctx context.Context, req *pluginpb.FriendsRequest) (_ *pluginpb.FriendsResponse, err error) {
	defer recoverRPC("friends", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	l, err := soc.Friends(ctx, req.GetUser())
	if err != nil {
		return nil, toStatus(err)
	}
	return friendListToPB(l), nil
}

func (s *storageServer) Block(ctx context.Context, req *pluginpb.BlockRequest) (_ *pluginpb.BlockResponse, err error) {
	defer recoverRPC("block", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	if err := soc.Block(ctx, req.GetUser(), req.GetTarget(), req.GetTs()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.BlockResponse{}, nil
}

func (s *storageServer) Unblock(ctx context.Context, req *pluginpb.UnblockRequest) (_ *pluginpb.UnblockResponse, err error) {
	defer recoverRPC("unblock", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	if err := soc.Unblock(ctx, req.GetUser(), req.GetTarget()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.UnblockResponse{}, nil
}

func (s *storageServer) Blocks(ctx context.Context, req *pluginpb.BlocksRequest) (_ *pluginpb.BlocksResponse, err error) {
	defer recoverRPC("blocks", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	users, err := soc.Blocks(ctx, req.GetUser())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.BlocksResponse{Users: users}, nil
}

func (s *storageServer) Relation(ctx context.Context, req *pluginpb.RelationRequest) (_ *pluginpb.RelationResponse, err error) {
	defer recoverRPC("relation", &err)
	soc, err := s.social()
	if err != nil {
		return nil, err
	}
	r, err := soc.Relation(ctx, req.GetA(), req.GetB())
	if err != nil {
		return nil, toStatus(err)
	}
	return relationToPB(r), nil
}

// groups returns the Groups part of the configured Storage, or an
// UNIMPLEMENTED status when it has none.
func (s *storageServer) groups() (Groups, error) {
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	g, ok := GroupsOf(st)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the storage does not keep groups")
	}
	return g, nil
}

func (s *storageServer) CreateGroup(ctx context.Context, req *pluginpb.CreateGroupRequest) (_ *pluginpb.CreateGroupResponse, err error) {
	defer recoverRPC("create group", &err)
	g, err := s.groups()
	if err != nil {
		return nil, err
	}
	info, err := g.CreateGroup(ctx, req.GetOwner(), req.GetName(), GroupPolicy(req.GetPolicy()), GroupHistory(req.GetHistory()), req.GetTs(), groupLimitsFromPB(req.GetLimits()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.CreateGroupResponse{Group: groupInfoToPB(info)}, nil
}

func (s *storageServer) Group(ctx context.Context, req *pluginpb.GroupRequest) (_ *pluginpb.GroupResponse, err error) {
	defer recoverRPC("group", &err)
	g, err := s.groups()
	if err != nil {
		return nil, err
	}
	info, err := g.Group(ctx, req.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.GroupResponse{Group: groupInfoToPB(info)}, nil
}

func (s *storageServer) UserGroups(ctx context.Context, req *pluginpb.UserGroupsRequest) (_ *pluginpb.UserGroupsResponse, err error) {
	defer recoverRPC("user groups", &err)
	g, err := s.groups()
	if err != nil {
		return nil, err
	}
	gs, err := g.UserGroups(ctx, req.GetUser())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.UserGroupsResponse{Groups: userGroupsToPB(gs)}, nil
}

func (s *storageServer) GroupMembers(ctx context.Context, req *pluginpb.GroupMembersRequest) (_ *pluginpb.GroupMembersResponse, err error) {
	defer recoverRPC("group members", &err)
	g, err := s.groups()
	if err != nil {
		return nil, err
	}
	ms, more, err := g.Members(ctx, req.GetGroup(), req.GetAfter(), clampInt(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.GroupMembersResponse{Members: membersToPB(ms), More: more}, nil
}

func (s *storageServer) GroupOp(ctx context.Context, req *pluginpb.GroupOpRequest) (_ *pluginpb.GroupOpResponse, err error) {
	defer recoverRPC("group op", &err)
	g, err := s.groups()
	if err != nil {
		return nil, err
	}
	r, err := g.GroupOp(ctx, groupOpFromPB(req))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pluginpb.GroupOpResponse{Requested: r.Requested}
	if r.Entry != nil {
		out.Entry = groupEntryToPB(r.Entry)
	}
	return out, nil
}

func (s *storageServer) JoinRequests(ctx context.Context, req *pluginpb.JoinRequestsRequest) (_ *pluginpb.JoinRequestsResponse, err error) {
	defer recoverRPC("join requests", &err)
	g, err := s.groups()
	if err != nil {
		return nil, err
	}
	rs, err := g.JoinRequests(ctx, req.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.JoinRequestsResponse{Requests: joinRequestsToPB(rs)}, nil
}

func (s *storageServer) GroupLog(ctx context.Context, req *pluginpb.GroupLogRequest) (_ *pluginpb.GroupLogResponse, err error) {
	defer recoverRPC("group log", &err)
	g, err := s.groups()
	if err != nil {
		return nil, err
	}
	es, more, err := g.Log(ctx, req.GetGroup(), req.GetUser(), req.GetAfter(), req.GetBefore(), clampInt(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.GroupLogResponse{Entries: groupEntriesToPB(es), More: more}, nil
}

// Backup runs the configured Storage's Backup, or answers UNIMPLEMENTED
// when it has none.
func (s *storageServer) Backup(ctx context.Context, req *pluginpb.BackupRequest) (_ *pluginpb.BackupResponse, err error) {
	defer recoverRPC("backup", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	b, ok := BackupOf(st)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the storage cannot make backups")
	}
	if !s.backingUp.CompareAndSwap(false, true) {
		return nil, status.Error(codes.FailedPrecondition, "a backup given up by qqd is still being written by the storage plugin")
	}
	defer s.backingUp.Store(false)
	if err := b.Backup(ctx, req.GetDir()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.BackupResponse{}, nil
}

// Stats answers the configured Storage's Stats, or UNIMPLEMENTED when it
// has none.
func (s *storageServer) Stats(ctx context.Context, _ *pluginpb.StatsRequest) (_ *pluginpb.StatsResponse, err error) {
	defer recoverRPC("stats", &err)
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	sts, ok := StatsOf(st)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the storage reports no statistics")
	}
	ss, err := sts.Stats(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return storageStatsToPB(ss), nil
}

func storageStatsToPB(ss StorageStats) *pluginpb.StatsResponse {
	resp := &pluginpb.StatsResponse{}
	if p := ss.Pool; p != nil {
		resp.Pool = &pluginpb.PoolStats{
			MaxConns: p.MaxConns, IdleConns: p.IdleConns, AcquiredConns: p.AcquiredConns,
			ConstructingConns: p.ConstructingConns, Acquires: p.Acquires, EmptyAcquires: p.EmptyAcquires,
			CanceledAcquires: p.CanceledAcquires, AcquireWaitNs: int64(p.AcquireWait),
		}
	}
	return resp
}

func storageStatsFromPB(resp *pluginpb.StatsResponse) StorageStats {
	var ss StorageStats
	if p := resp.GetPool(); p != nil {
		ss.Pool = &PoolStats{
			MaxConns: p.GetMaxConns(), IdleConns: p.GetIdleConns(), AcquiredConns: p.GetAcquiredConns(),
			ConstructingConns: p.GetConstructingConns(), Acquires: p.GetAcquires(), EmptyAcquires: p.GetEmptyAcquires(),
			CanceledAcquires: p.GetCanceledAcquires(), AcquireWait: time.Duration(p.GetAcquireWaitNs()),
		}
	}
	return ss
}

// tokens returns the Tokens part of the configured Storage, or an
// UNIMPLEMENTED status when it has none.
func (s *storageServer) tokens() (Tokens, error) {
	st, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	tk, ok := TokensOf(st)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the storage does not keep resume tokens")
	}
	return tk, nil
}

func (s *storageServer) AddToken(ctx context.Context, req *pluginpb.AddTokenRequest) (_ *pluginpb.AddTokenResponse, err error) {
	defer recoverRPC("add token", &err)
	tk, err := s.tokens()
	if err != nil {
		return nil, err
	}
	if err := tk.AddToken(ctx, tokenFromPB(req.GetToken()), clampInt(req.GetKeep())); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.AddTokenResponse{}, nil
}

func (s *storageServer) Token(ctx context.Context, req *pluginpb.TokenRequest) (_ *pluginpb.TokenResponse, err error) {
	defer recoverRPC("token", &err)
	tk, err := s.tokens()
	if err != nil {
		return nil, err
	}
	t, err := tk.Token(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.TokenResponse{Token: tokenToPB(&t)}, nil
}

func (s *storageServer) TouchTokens(ctx context.Context, req *pluginpb.TouchTokensRequest) (_ *pluginpb.TouchTokensResponse, err error) {
	defer recoverRPC("touch tokens", &err)
	tk, err := s.tokens()
	if err != nil {
		return nil, err
	}
	if err := tk.TouchTokens(ctx, tokenUsesFromPB(req.GetUses())); err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.TouchTokensResponse{}, nil
}

func (s *storageServer) UserTokens(ctx context.Context, req *pluginpb.UserTokensRequest) (_ *pluginpb.UserTokensResponse, err error) {
	defer recoverRPC("user tokens", &err)
	tk, err := s.tokens()
	if err != nil {
		return nil, err
	}
	ts, err := tk.UserTokens(ctx, req.GetUser())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.UserTokensResponse{Tokens: tokensToPB(ts)}, nil
}

func (s *storageServer) RevokeTokens(ctx context.Context, req *pluginpb.RevokeTokensRequest) (_ *pluginpb.RevokeTokensResponse, err error) {
	defer recoverRPC("revoke tokens", &err)
	tk, err := s.tokens()
	if err != nil {
		return nil, err
	}
	n, err := tk.RevokeTokens(ctx, req.GetUser(), req.GetIds())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.RevokeTokensResponse{Revoked: n}, nil
}

func (s *storageServer) PurgeTokens(ctx context.Context, req *pluginpb.PurgeTokensRequest) (_ *pluginpb.PurgeTokensResponse, err error) {
	defer recoverRPC("purge tokens", &err)
	tk, err := s.tokens()
	if err != nil {
		return nil, err
	}
	n, err := tk.PurgeTokens(ctx, req.GetNow(), req.GetIdleBefore())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.PurgeTokensResponse{Purged: n}, nil
}

// clampInt converts a wire int64 to int without wrapping on 32-bit.
func clampInt(v int64) int {
	return int(max(min(v, math.MaxInt), math.MinInt))
}

// filterServer serves a Filter over gRPC.
type filterServer struct {
	pluginpb.UnimplementedFilterServer
	factory FilterFactory
	impl    configured[Filter]
}

func (s *filterServer) Configure(_ context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	if err := s.impl.configure(req, s.factory); err != nil {
		return nil, err
	}
	return &pluginpb.ConfigureResponse{}, nil
}

func (s *filterServer) Filter(ctx context.Context, req *pluginpb.FilterRequest) (_ *pluginpb.FilterResponse, err error) {
	defer recoverRPC("filter", &err)
	f, err := s.impl.get()
	if err != nil {
		return nil, err
	}
	msgs := filterMessagesFromPB(req.GetMessages())
	vs, err := f.Filter(ctx, msgs)
	if err != nil {
		return nil, toStatus(err)
	}
	if len(vs) != len(msgs) {
		return nil, status.Errorf(codes.Internal, "filter returned %d verdicts for %d messages", len(vs), len(msgs))
	}
	out, err := verdictsToPB(vs)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pluginpb.FilterResponse{Verdicts: out}, nil
}
