package plugins

// The host side: Storage and Filter implementations that call a plugin
// process over gRPC.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins/pluginpb"
)

// errExited is the error of a call made after the plugin process exited.
var errExited = errors.New("plugin process exited")

// closeTimeout bounds Storage.Close, which has no context.
const closeTimeout = 30 * time.Second

// configurer is what Start calls on a dispensed client.
type configurer interface {
	configure(ctx context.Context, config []byte, env Env) error
}

// rpcBase is what the storage and filter clients share.
type rpcBase struct {
	name string          // instance name, for errors; may be empty
	done context.Context // cancelled when the plugin process has exited
}

// exited reports whether the process is known to be gone.
func (b *rpcBase) exited() bool { return b.done != nil && b.done.Err() != nil }

// wrap puts the plugin's name and the method before an error decoded
// from a call.
func (b *rpcBase) wrap(method string, err error) error {
	if b.name == "" {
		return fmt.Errorf("plugin: %s: %w", method, err)
	}
	return fmt.Errorf("plugin %s: %s: %w", b.name, method, err)
}

// check fails when the process is known to have exited.
func (b *rpcBase) check(method string) error {
	if b.exited() {
		return b.wrap(method, errExited)
	}
	return nil
}

// decode turns the error of a call into a Go error (see
// decodeCallError).
func (b *rpcBase) decode(method string, err error) error {
	if err == nil {
		return nil
	}
	return b.wrap(method, decodeCallError(err))
}

// decodeCallError turns the error of a unary call or of a call on a call
// stream into a Go error: a status as fromStatus decodes it; an error
// already decoded (a call stream's) as it is.
func decodeCallError(err error) error {
	var ns *notSentError
	if errors.As(err, &ns) {
		err = ns.err
	}
	return fromStatus(err)
}

func configureRequest(config []byte, env Env) *pluginpb.ConfigureRequest {
	if len(config) == 0 {
		config = []byte("{}")
	}
	return &pluginpb.ConfigureRequest{ConfigJson: config, DataDir: env.DataDir}
}

// storageClient is a Storage in a plugin process.
type storageClient struct {
	rpcBase
	rpc pluginpb.StorageClient
	// version is the negotiated protocol version; social, groups,
	// tokens, backup and stats are what Configure answered (the plugin's
	// storage has Social, Groups, Tokens, Backup, Stats).
	version int
	social  bool
	groups  bool
	tokens  bool
	backup  bool
	stats   bool
	// seq numbers Writes so that the plugin applies overlapping ones in
	// call order (see writeGate).
	seqMu sync.Mutex
	seq   uint64
	// calls carries Write and LookupCIDs when the process negotiated
	// protocol version 3 or later; nil otherwise (unary calls).
	calls *callStream
}

// WriteOverlap implements WriteOverlapper.
func (c *storageClient) WriteOverlap() int { return writeOverlap }

var (
	_ Storage    = (*storageClient)(nil)
	_ configurer = (*storageClient)(nil)
)

func (c *storageClient) configure(ctx context.Context, config []byte, env Env) error {
	if err := c.check("configure"); err != nil {
		return err
	}
	resp, err := c.rpc.Configure(ctx, configureRequest(config, env))
	if status.Code(err) == codes.Unimplemented {
		return c.wrap("configure", fmt.Errorf("the process does not serve a storage plugin: %w", fromStatus(err)))
	}
	if err != nil {
		return c.decode("configure", err)
	}
	c.social = resp.GetSocial()
	c.groups = resp.GetGroups()
	c.tokens = resp.GetTokens()
	c.backup = resp.GetBackup()
	c.stats = resp.GetStats()
	return nil
}

// Social implements the interface SocialOf asks: the plugin's Social,
// when the process negotiated protocol version 2 or later and its
// storage has one.
func (c *storageClient) Social() (Social, bool) {
	if c.version < 2 || !c.social {
		return nil, false
	}
	return socialClient{c}, true
}

// Groups implements the interface GroupsOf asks: the plugin's Groups,
// when the process negotiated protocol version 2 or later and its
// storage has one.
func (c *storageClient) Groups() (Groups, bool) {
	if c.version < 2 || !c.groups {
		return nil, false
	}
	return groupsClient{c}, true
}

// Tokens implements the interface TokensOf asks: the plugin's Tokens,
// when the process negotiated protocol version 2 or later and its
// storage has them.
func (c *storageClient) Tokens() (Tokens, bool) {
	if c.version < 2 || !c.tokens {
		return nil, false
	}
	return tokensClient{c}, true
}

// BackupSide implements the interface BackupOf asks: the plugin's Backup,
// when the process negotiated protocol version 4 or later and its
// storage has one.
func (c *storageClient) BackupSide() (Backup, bool) {
	if c.version < backupProtocolVersion || !c.backup {
		return nil, false
	}
	return backupClient{c}, true
}

// backupClient is the Backup of a storage in a plugin process.
type backupClient struct{ c *storageClient }

var _ Backup = backupClient{}

func (bc backupClient) Backup(ctx context.Context, dir string) error {
	if err := bc.c.check("backup"); err != nil {
		return err
	}
	_, err := bc.c.rpc.Backup(ctx, &pluginpb.BackupRequest{Dir: dir})
	return bc.c.decode("backup", err)
}

// StatsSide implements the interface StatsOf asks: the plugin's Stats,
// when the process negotiated protocol version 5 or later and its storage
// has one.
func (c *storageClient) StatsSide() (Stats, bool) {
	if c.version < statsProtocolVersion || !c.stats {
		return nil, false
	}
	return statsClient{c}, true
}

// statsClient is the Stats of a storage in a plugin process.
type statsClient struct{ c *storageClient }

var _ Stats = statsClient{}

func (sc statsClient) Stats(ctx context.Context) (StorageStats, error) {
	if err := sc.c.check("stats"); err != nil {
		return StorageStats{}, err
	}
	resp, err := sc.c.rpc.Stats(ctx, &pluginpb.StatsRequest{})
	if err != nil {
		return StorageStats{}, sc.c.decode("stats", err)
	}
	return storageStatsFromPB(resp), nil
}

func (c *storageClient) CreateUser(ctx context.Context, user, passwordHash string) error {
	if err := c.check("create user"); err != nil {
		return err
	}
	_, err := c.rpc.CreateUser(ctx, &pluginpb.CreateUserRequest{User: user, PasswordHash: passwordHash})
	return c.decode("create user", err)
}

func (c *storageClient) PasswordHash(ctx context.Context, user string) (string, error) {
	if err := c.check("password hash"); err != nil {
		return "", err
	}
	resp, err := c.rpc.PasswordHash(ctx, &pluginpb.PasswordHashRequest{User: user})
	if err != nil {
		return "", c.decode("password hash", err)
	}
	return resp.GetPasswordHash(), nil
}

func (c *storageClient) SetPasswordHash(ctx context.Context, user, passwordHash string) error {
	if err := c.check("set password hash"); err != nil {
		return err
	}
	_, err := c.rpc.SetPasswordHash(ctx, &pluginpb.SetPasswordHashRequest{User: user, PasswordHash: passwordHash})
	return c.decode("set password hash", err)
}

func (c *storageClient) DeleteUser(ctx context.Context, user string) (int64, error) {
	if err := c.check("delete user"); err != nil {
		return 0, err
	}
	resp, err := c.rpc.DeleteUser(ctx, &pluginpb.DeleteUserRequest{User: user})
	if err != nil {
		return 0, c.decode("delete user", err)
	}
	return resp.GetDroppedPending(), nil
}

func (c *storageClient) CountUsers(ctx context.Context) (int64, error) {
	if err := c.check("count users"); err != nil {
		return 0, err
	}
	resp, err := c.rpc.CountUsers(ctx, &pluginpb.CountUsersRequest{})
	if err != nil {
		return 0, c.decode("count users", err)
	}
	return resp.GetCount(), nil
}

func (c *storageClient) CountPending(ctx context.Context) (int64, error) {
	if err := c.check("count pending"); err != nil {
		return 0, err
	}
	resp, err := c.rpc.CountPending(ctx, &pluginpb.CountPendingRequest{})
	if err != nil {
		return 0, c.decode("count pending", err)
	}
	return resp.GetCount(), nil
}

// Write stores b in the plugin. Its failure is always a *WriteError:
// MaybeWritten false when the call was never sent (ctx already done, the
// process already gone, the plugin not configured) or the plugin said
// nothing was stored; true when the call failed in transport (the process
// died, the deadline expired) or the plugin could not tell.
func (c *storageClient) Write(ctx context.Context, b *WriteBatch) ([]AppendResult, error) {
	return c.StartWrite(ctx, b)()
}

// StartWrite implements WriteOverlapper: it numbers the Write (the plugin
// applies them in that order) and sends it from a goroutine.
func (c *storageClient) StartWrite(ctx context.Context, b *WriteBatch) func() ([]AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return failedWrite(&WriteError{MaybeWritten: false, Err: c.wrap("write", err)})
	}
	if err := c.check("write"); err != nil {
		return failedWrite(&WriteError{MaybeWritten: false, Err: err})
	}
	pb := writeBatchToPB(b)
	if c.calls != nil {
		return c.startStreamWrite(ctx, b, pb)
	}
	c.nextSeq(pb)
	type outcome struct {
		res []AppendResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := c.write(ctx, b, pb)
		done <- outcome{res, err}
	}()
	return func() ([]AppendResult, error) {
		o := <-done
		return o.res, o.err
	}
}

// nextSeq numbers pb.
func (c *storageClient) nextSeq(pb *pluginpb.WriteBatch) {
	c.seqMu.Lock()
	c.seq++
	pb.Seq = c.seq
	c.seqMu.Unlock()
}

// startStreamWrite is StartWrite on the call stream: the Write is numbered
// and sent before it returns (so sends are in seq order, and the plugin
// rarely has to hold a Write back), and the outcome is waited for in
// wait.
func (c *storageClient) startStreamWrite(ctx context.Context, b *WriteBatch, pb *pluginpb.WriteBatch) func() ([]AppendResult, error) {
	req := &pluginpb.CallRequest{Call: &pluginpb.CallRequest_Write{Write: pb}}
	call, err := c.calls.start(ctx, req, func() { c.nextSeq(pb) })
	if err != nil {
		return failedWrite(&WriteError{MaybeWritten: false, Err: c.decode("write", err)})
	}
	return func() ([]AppendResult, error) {
		r, err := call.wait(ctx)
		if err == nil && r.GetWrite() == nil {
			return nil, &WriteError{MaybeWritten: true, Err: c.wrap("write", unexpectedResult(r))}
		}
		return c.writeResult(b, r.GetWrite(), err)
	}
}

func failedWrite(err error) func() ([]AppendResult, error) {
	return func() ([]AppendResult, error) { return nil, err }
}

func (c *storageClient) write(ctx context.Context, b *WriteBatch, pb *pluginpb.WriteBatch) ([]AppendResult, error) {
	resp, err := c.rpc.Write(ctx, pb)
	return c.writeResult(b, resp, err)
}

// writeResult is the outcome of a Write call that answered resp or
// failed with err.
func (c *storageClient) writeResult(b *WriteBatch, resp *pluginpb.WriteResponse, err error) ([]AppendResult, error) {
	if err != nil {
		derr := decodeCallError(err)
		return nil, &WriteError{MaybeWritten: !errors.Is(derr, errNotConfigured), Err: c.wrap("write", derr)}
	}
	if we := resp.GetError(); we.GetFailed() {
		werr := writeErrorFromPB(we)
		werr.Err = c.wrap("write", werr.Err)
		return nil, werr
	}
	n := 0
	if b != nil {
		n = len(b.Messages) + len(b.GroupMessages)
	}
	if len(resp.GetResults()) != n {
		return nil, &WriteError{MaybeWritten: true, Err: c.wrap("write", fmt.Errorf("plugin returned %d results for %d messages", len(resp.GetResults()), n))}
	}
	return appendResultsFromPB(resp.GetResults()), nil
}

func (c *storageClient) LookupCIDs(ctx context.Context, keys []CIDKey) ([]AppendResult, error) {
	if err := c.check("lookup cids"); err != nil {
		return nil, err
	}
	req := &pluginpb.LookupCIDsRequest{Keys: cidKeysToPB(keys)}
	var resp *pluginpb.LookupCIDsResponse
	var err error
	if c.calls != nil {
		var r *pluginpb.CallResponse
		if r, err = c.calls.call(ctx, &pluginpb.CallRequest{Call: &pluginpb.CallRequest_LookupCids{LookupCids: req}}); err == nil {
			if resp = r.GetLookupCids(); resp == nil {
				return nil, c.wrap("lookup cids", unexpectedResult(r))
			}
		}
	} else {
		resp, err = c.rpc.LookupCIDs(ctx, req)
	}
	if err != nil {
		return nil, c.decode("lookup cids", err)
	}
	if len(resp.GetResults()) != len(keys) {
		return nil, c.wrap("lookup cids", fmt.Errorf("plugin returned %d results for %d keys", len(resp.GetResults()), len(keys)))
	}
	return appendResultsFromPB(resp.GetResults()), nil
}

func (c *storageClient) PendingCount(ctx context.Context, user string) (int64, error) {
	if err := c.check("pending count"); err != nil {
		return 0, err
	}
	resp, err := c.rpc.PendingCount(ctx, &pluginpb.PendingCountRequest{User: user})
	if err != nil {
		return 0, c.decode("pending count", err)
	}
	return resp.GetCount(), nil
}

func (c *storageClient) Pending(ctx context.Context, user string, limit int) ([]protocol.Message, bool, error) {
	if err := c.check("pending"); err != nil {
		return nil, false, err
	}
	resp, err := c.rpc.Pending(ctx, &pluginpb.PendingRequest{User: user, Limit: int64(limit)})
	if err != nil {
		return nil, false, c.decode("pending", err)
	}
	return messagesFromPB(resp.GetMessages()), resp.GetMore(), nil
}

func (c *storageClient) History(ctx context.Context, user, with, before string, limit int) ([]protocol.Message, bool, error) {
	if err := c.check("history"); err != nil {
		return nil, false, err
	}
	resp, err := c.rpc.History(ctx, &pluginpb.HistoryRequest{User: user, With: with, Before: before, Limit: int64(limit)})
	if err != nil {
		return nil, false, c.decode("history", err)
	}
	return messagesFromPB(resp.GetMessages()), resp.GetMore(), nil
}

// Close closes the storage inside the plugin (bounded by 30s); the
// process keeps running until Process.Kill.
func (c *storageClient) Close() error {
	if err := c.check("close"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_, err := c.rpc.Close(ctx, &pluginpb.CloseRequest{})
	return c.decode("close", err)
}

// socialClient is the Social of a storage in a plugin process.
type socialClient struct{ c *storageClient }

var _ Social = socialClient{}

func (s socialClient) RequestFriend(ctx context.Context, from, to, note string, ts int64) (bool, error) {
	if err := s.c.check("request friend"); err != nil {
		return false, err
	}
	resp, err := s.c.rpc.RequestFriend(ctx, &pluginpb.RequestFriendRequest{From: from, To: to, Note: note, Ts: ts})
	if err != nil {
		return false, s.c.decode("request friend", err)
	}
	return resp.GetBecameFriends(), nil
}

func (s socialClient) AnswerFriendRequest(ctx context.Context, user, from string, accept bool, ts int64) error {
	if err := s.c.check("answer friend request"); err != nil {
		return err
	}
	_, err := s.c.rpc.AnswerFriendRequest(ctx, &pluginpb.AnswerFriendRequestRequest{User: user, From: from, Accept: accept, Ts: ts})
	return s.c.decode("answer friend request", err)
}

func (s socialClient) CancelFriendRequest(ctx context.Context, from, to string) error {
	if err := s.c.check("cancel friend request"); err != nil {
		return err
	}
	_, err := s.c.rpc.CancelFriendRequest(ctx, &pluginpb.CancelFriendRequestRequest{From: from, To: to})
	return s.c.decode("cancel friend request", err)
}

func (s socialClient) RemoveFriend(ctx context.Context, user, friend string) error {
	if err := s.c.check("remove friend"); err != nil {
		return err
	}
	_, err := s.c.rpc.RemoveFriend(ctx, &pluginpb.RemoveFriendRequest{User: user, Friend: friend})
	return s.c.decode("remove friend", err)
}

func (s socialClient) Friends(ctx context.Context, user string) (FriendList, error) {
	if err := s.c.check("friends"); err != nil {
		return FriendList{}, err
	}
	resp, err := s.c.rpc.Friends(ctx, &pluginpb.FriendsRequest{User: user})
	if err != nil {
		return FriendList{}, s.c.decode("friends", err)
	}
	return friendListFromPB(resp), nil
}

func (s socialClient) Block(ctx context.Context, user, target string, ts int64) error {
	if err := s.c.check("block"); err != nil {
		return err
	}
	_, err := s.c.rpc.Block(ctx, &pluginpb.BlockRequest{User: user, Target: target, Ts: ts})
	return s.c.decode("block", err)
}

func (s socialClient) Unblock(ctx context.Context, user, target string) error {
	if err := s.c.check("unblock"); err != nil {
		return err
	}
	_, err := s.c.rpc.Unblock(ctx, &pluginpb.UnblockRequest{User: user, Target: target})
	return s.c.decode("unblock", err)
}

func (s socialClient) Blocks(ctx context.Context, user string) ([]string, error) {
	if err := s.c.check("blocks"); err != nil {
		return nil, err
	}
	resp, err := s.c.rpc.Blocks(ctx, &pluginpb.BlocksRequest{User: user})
	if err != nil {
		return nil, s.c.decode("blocks", err)
	}
	return resp.GetUsers(), nil
}

func (s socialClient) Relation(ctx context.Context, a, b string) (Relation, error) {
	if err := s.c.check("relation"); err != nil {
		return Relation{}, err
	}
	resp, err := s.c.rpc.Relation(ctx, &pluginpb.RelationRequest{A: a, B: b})
	if err != nil {
		return Relation{}, s.c.decode("relation", err)
	}
	return relationFromPB(resp), nil
}

// groupsClient is the Groups of a storage in a plugin process.
type groupsClient struct{ c *storageClient }

var _ Groups = groupsClient{}

func (g groupsClient) CreateGroup(ctx context.Context, owner, name string, policy GroupPolicy, history GroupHistory, ts int64, limits GroupLimits) (GroupInfo, error) {
	if err := g.c.check("create group"); err != nil {
		return GroupInfo{}, err
	}
	resp, err := g.c.rpc.CreateGroup(ctx, &pluginpb.CreateGroupRequest{
		Owner: owner, Name: name, Policy: string(policy), History: string(history), Ts: ts, Limits: groupLimitsToPB(limits),
	})
	if err != nil {
		return GroupInfo{}, g.c.decode("create group", err)
	}
	return groupInfoFromPB(resp.GetGroup()), nil
}

func (g groupsClient) Group(ctx context.Context, id int64) (GroupInfo, error) {
	if err := g.c.check("group"); err != nil {
		return GroupInfo{}, err
	}
	resp, err := g.c.rpc.Group(ctx, &pluginpb.GroupRequest{Group: id})
	if err != nil {
		return GroupInfo{}, g.c.decode("group", err)
	}
	return groupInfoFromPB(resp.GetGroup()), nil
}

func (g groupsClient) UserGroups(ctx context.Context, user string) ([]UserGroup, error) {
	if err := g.c.check("user groups"); err != nil {
		return nil, err
	}
	resp, err := g.c.rpc.UserGroups(ctx, &pluginpb.UserGroupsRequest{User: user})
	if err != nil {
		return nil, g.c.decode("user groups", err)
	}
	return userGroupsFromPB(resp.GetGroups()), nil
}

func (g groupsClient) Members(ctx context.Context, id int64, after string, limit int) ([]Member, bool, error) {
	if err := g.c.check("group members"); err != nil {
		return nil, false, err
	}
	resp, err := g.c.rpc.GroupMembers(ctx, &pluginpb.GroupMembersRequest{Group: id, After: after, Limit: int64(limit)})
	if err != nil {
		return nil, false, g.c.decode("group members", err)
	}
	return membersFromPB(resp.GetMembers()), resp.GetMore(), nil
}

func (g groupsClient) GroupOp(ctx context.Context, op GroupOp) (GroupOpResult, error) {
	if err := g.c.check("group op"); err != nil {
		return GroupOpResult{}, err
	}
	resp, err := g.c.rpc.GroupOp(ctx, groupOpToPB(op))
	if err != nil {
		return GroupOpResult{}, g.c.decode("group op "+string(op.Kind), err)
	}
	r := GroupOpResult{Requested: resp.GetRequested()}
	if e := resp.GetEntry(); e != nil {
		entry := groupEntryFromPB(e)
		r.Entry = &entry
	}
	return r, nil
}

func (g groupsClient) JoinRequests(ctx context.Context, id int64) ([]JoinRequest, error) {
	if err := g.c.check("join requests"); err != nil {
		return nil, err
	}
	resp, err := g.c.rpc.JoinRequests(ctx, &pluginpb.JoinRequestsRequest{Group: id})
	if err != nil {
		return nil, g.c.decode("join requests", err)
	}
	return joinRequestsFromPB(resp.GetRequests()), nil
}

func (g groupsClient) Log(ctx context.Context, id int64, user string, after, before int64, limit int) ([]GroupEntry, bool, error) {
	if err := g.c.check("group log"); err != nil {
		return nil, false, err
	}
	resp, err := g.c.rpc.GroupLog(ctx, &pluginpb.GroupLogRequest{Group: id, User: user, After: after, Before: before, Limit: int64(limit)})
	if err != nil {
		return nil, false, g.c.decode("group log", err)
	}
	return groupEntriesFromPB(resp.GetEntries()), resp.GetMore(), nil
}

// tokensClient is the Tokens of a storage in a plugin process.
type tokensClient struct{ c *storageClient }

var _ Tokens = tokensClient{}

func (tc tokensClient) AddToken(ctx context.Context, t Token, keep int) error {
	if err := tc.c.check("add token"); err != nil {
		return err
	}
	_, err := tc.c.rpc.AddToken(ctx, &pluginpb.AddTokenRequest{Token: tokenToPB(&t), Keep: int64(keep)})
	return tc.c.decode("add token", err)
}

func (tc tokensClient) Token(ctx context.Context, id string) (Token, error) {
	if err := tc.c.check("token"); err != nil {
		return Token{}, err
	}
	resp, err := tc.c.rpc.Token(ctx, &pluginpb.TokenRequest{Id: id})
	if err != nil {
		return Token{}, tc.c.decode("token", err)
	}
	return tokenFromPB(resp.GetToken()), nil
}

func (tc tokensClient) TouchTokens(ctx context.Context, uses []TokenUse) error {
	if err := tc.c.check("touch tokens"); err != nil {
		return err
	}
	_, err := tc.c.rpc.TouchTokens(ctx, &pluginpb.TouchTokensRequest{Uses: tokenUsesToPB(uses)})
	return tc.c.decode("touch tokens", err)
}

func (tc tokensClient) UserTokens(ctx context.Context, user string) ([]Token, error) {
	if err := tc.c.check("user tokens"); err != nil {
		return nil, err
	}
	resp, err := tc.c.rpc.UserTokens(ctx, &pluginpb.UserTokensRequest{User: user})
	if err != nil {
		return nil, tc.c.decode("user tokens", err)
	}
	return tokensFromPB(resp.GetTokens()), nil
}

func (tc tokensClient) RevokeTokens(ctx context.Context, user string, ids []string) (int64, error) {
	if err := tc.c.check("revoke tokens"); err != nil {
		return 0, err
	}
	resp, err := tc.c.rpc.RevokeTokens(ctx, &pluginpb.RevokeTokensRequest{User: user, Ids: ids})
	if err != nil {
		return 0, tc.c.decode("revoke tokens", err)
	}
	return resp.GetRevoked(), nil
}

func (tc tokensClient) PurgeTokens(ctx context.Context, now, idleBefore int64) (int64, error) {
	if err := tc.c.check("purge tokens"); err != nil {
		return 0, err
	}
	resp, err := tc.c.rpc.PurgeTokens(ctx, &pluginpb.PurgeTokensRequest{Now: now, IdleBefore: idleBefore})
	if err != nil {
		return 0, tc.c.decode("purge tokens", err)
	}
	return resp.GetPurged(), nil
}

// filterClient is a Filter in a plugin process.
type filterClient struct {
	rpcBase
	rpc pluginpb.FilterClient
	// calls carries Filter when the process negotiated protocol version
	// 3 or later; nil otherwise (unary calls).
	calls *callStream
}

var (
	_ Filter     = (*filterClient)(nil)
	_ configurer = (*filterClient)(nil)
)

func (c *filterClient) configure(ctx context.Context, config []byte, env Env) error {
	if err := c.check("configure"); err != nil {
		return err
	}
	_, err := c.rpc.Configure(ctx, configureRequest(config, env))
	if status.Code(err) == codes.Unimplemented {
		return c.wrap("configure", fmt.Errorf("the process does not serve a filter plugin: %w", fromStatus(err)))
	}
	return c.decode("configure", err)
}

// Filter asks the plugin for one verdict per message. An answer with the
// wrong number of verdicts or an invalid action is an error.
func (c *filterClient) Filter(ctx context.Context, msgs []FilterMessage) ([]Verdict, error) {
	if err := c.check("filter"); err != nil {
		return nil, err
	}
	req := &pluginpb.FilterRequest{Messages: filterMessagesToPB(msgs)}
	var resp *pluginpb.FilterResponse
	var err error
	if c.calls != nil {
		var r *pluginpb.CallResponse
		if r, err = c.calls.call(ctx, &pluginpb.CallRequest{Call: &pluginpb.CallRequest_Filter{Filter: req}}); err == nil {
			if resp = r.GetFilter(); resp == nil {
				return nil, c.wrap("filter", unexpectedResult(r))
			}
		}
	} else {
		resp, err = c.rpc.Filter(ctx, req)
	}
	if err != nil {
		return nil, c.decode("filter", err)
	}
	if len(resp.GetVerdicts()) != len(msgs) {
		return nil, c.wrap("filter", fmt.Errorf("plugin returned %d verdicts for %d messages", len(resp.GetVerdicts()), len(msgs)))
	}
	vs, err := verdictsFromPB(resp.GetVerdicts())
	if err != nil {
		return nil, c.wrap("filter", err)
	}
	return vs, nil
}
