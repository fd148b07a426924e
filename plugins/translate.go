package plugins

// Translation between the Go contract and the pluginpb wire types, both
// ways, and between Go errors and gRPC statuses.

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins/pluginpb"
)

// ---- messages ---------------------------------------------------------

func messageToPB(m *protocol.Message, into *pluginpb.Message) *pluginpb.Message {
	into.Id, into.From, into.To, into.Body, into.Ts, into.Seq = m.ID, m.From, m.To, m.Body, m.TS, m.Seq
	return into
}

func messageFromPB(m *pluginpb.Message) protocol.Message {
	if m == nil {
		return protocol.Message{}
	}
	return protocol.Message{ID: m.Id, From: m.From, To: m.To, Body: m.Body, TS: m.Ts, Seq: m.Seq}
}

func messagesToPB(ms []protocol.Message) []*pluginpb.Message {
	if len(ms) == 0 {
		return nil
	}
	buf := make([]pluginpb.Message, len(ms))
	out := make([]*pluginpb.Message, len(ms))
	for i := range ms {
		out[i] = messageToPB(&ms[i], &buf[i])
	}
	return out
}

func messagesFromPB(ms []*pluginpb.Message) []protocol.Message {
	if len(ms) == 0 {
		return nil
	}
	out := make([]protocol.Message, len(ms))
	for i, m := range ms {
		out[i] = messageFromPB(m)
	}
	return out
}

// ---- write batches ----------------------------------------------------

func writeBatchToPB(b *WriteBatch) *pluginpb.WriteBatch {
	out := &pluginpb.WriteBatch{}
	if b == nil {
		return out
	}
	if n := len(b.Messages); n > 0 {
		buf := make([]pluginpb.NewMessage, n)
		out.Messages = make([]*pluginpb.NewMessage, n)
		for i := range b.Messages {
			m, p := &b.Messages[i], &buf[i]
			p.From, p.To, p.Body, p.Cid, p.Status, p.FriendsOnly = m.From, m.To, m.Body, m.CID, string(m.Status), m.FriendsOnly
			out.Messages[i] = p
		}
	}
	if n := len(b.Acks); n > 0 {
		buf := make([]pluginpb.Ack, n)
		out.Acks = make([]*pluginpb.Ack, n)
		for i := range b.Acks {
			a, p := &b.Acks[i], &buf[i]
			p.User, p.MsgIds = a.User, a.MsgIDs
			out.Acks[i] = p
		}
	}
	if n := len(b.GroupMessages); n > 0 {
		buf := make([]pluginpb.NewGroupMessage, n)
		out.GroupMessages = make([]*pluginpb.NewGroupMessage, n)
		for i := range b.GroupMessages {
			m, p := &b.GroupMessages[i], &buf[i]
			p.Group, p.From, p.Body, p.Cid, p.Mentions, p.Ts = m.Group, m.From, m.Body, m.CID, m.Mentions, m.TS
			out.GroupMessages[i] = p
		}
	}
	if n := len(b.GroupAcks); n > 0 {
		buf := make([]pluginpb.GroupAck, n)
		out.GroupAcks = make([]*pluginpb.GroupAck, n)
		for i := range b.GroupAcks {
			a, p := &b.GroupAcks[i], &buf[i]
			p.User, p.Group, p.Seq = a.User, a.Group, a.Seq
			out.GroupAcks[i] = p
		}
	}
	if b.GroupLimits != (GroupLimits{}) {
		out.GroupLimits = groupLimitsToPB(b.GroupLimits)
	}
	return out
}

func writeBatchFromPB(b *pluginpb.WriteBatch) *WriteBatch {
	out := &WriteBatch{}
	if n := len(b.GetMessages()); n > 0 {
		out.Messages = make([]NewMessage, n)
		for i, m := range b.Messages {
			out.Messages[i] = NewMessage{From: m.GetFrom(), To: m.GetTo(), Body: m.GetBody(), CID: m.GetCid(), Status: protocol.Status(m.GetStatus()), FriendsOnly: m.GetFriendsOnly()}
		}
	}
	if n := len(b.GetAcks()); n > 0 {
		out.Acks = make([]Ack, n)
		for i, a := range b.Acks {
			out.Acks[i] = Ack{User: a.GetUser(), MsgIDs: a.GetMsgIds()}
		}
	}
	if n := len(b.GetGroupMessages()); n > 0 {
		out.GroupMessages = make([]NewGroupMessage, n)
		for i, m := range b.GroupMessages {
			out.GroupMessages[i] = NewGroupMessage{Group: m.GetGroup(), From: m.GetFrom(), Body: m.GetBody(), CID: m.GetCid(), Mentions: m.GetMentions(), TS: m.GetTs()}
		}
	}
	if n := len(b.GetGroupAcks()); n > 0 {
		out.GroupAcks = make([]GroupAck, n)
		for i, a := range b.GroupAcks {
			out.GroupAcks[i] = GroupAck{User: a.GetUser(), Group: a.GetGroup(), Seq: a.GetSeq()}
		}
	}
	out.GroupLimits = groupLimitsFromPB(b.GetGroupLimits())
	return out
}

func cidKeysToPB(keys []CIDKey) []*pluginpb.CIDKey {
	if len(keys) == 0 {
		return nil
	}
	buf := make([]pluginpb.CIDKey, len(keys))
	out := make([]*pluginpb.CIDKey, len(keys))
	for i, k := range keys {
		buf[i].From, buf[i].Cid = k.From, k.CID
		out[i] = &buf[i]
	}
	return out
}

func cidKeysFromPB(keys []*pluginpb.CIDKey) []CIDKey {
	if len(keys) == 0 {
		return nil
	}
	out := make([]CIDKey, len(keys))
	for i, k := range keys {
		out[i] = CIDKey{From: k.GetFrom(), CID: k.GetCid()}
	}
	return out
}

// resultCode is the wire value an AppendResult.Err crosses as: one of the
// contract's result errors, or "other" (with its text).
func resultCode(err error) pluginpb.ResultError {
	switch {
	case errors.Is(err, ErrUnknownUser):
		return pluginpb.ResultError_RESULT_ERROR_UNKNOWN_USER
	case errors.Is(err, ErrBlocked):
		return pluginpb.ResultError_RESULT_ERROR_BLOCKED
	case errors.Is(err, ErrNotFriends):
		return pluginpb.ResultError_RESULT_ERROR_NOT_FRIENDS
	case errors.Is(err, ErrNoGroup):
		return pluginpb.ResultError_RESULT_ERROR_NO_GROUP
	case errors.Is(err, ErrNotMember):
		return pluginpb.ResultError_RESULT_ERROR_NOT_MEMBER
	case errors.Is(err, ErrMuted):
		return pluginpb.ResultError_RESULT_ERROR_MUTED
	case errors.Is(err, ErrNotAllowed):
		return pluginpb.ResultError_RESULT_ERROR_NOT_ALLOWED
	}
	return pluginpb.ResultError_RESULT_ERROR_OTHER
}

// resultError is the contract error a result's wire value stands for, or
// nil.
func resultError(code pluginpb.ResultError) error {
	switch code {
	case pluginpb.ResultError_RESULT_ERROR_UNKNOWN_USER:
		return ErrUnknownUser
	case pluginpb.ResultError_RESULT_ERROR_BLOCKED:
		return ErrBlocked
	case pluginpb.ResultError_RESULT_ERROR_NOT_FRIENDS:
		return ErrNotFriends
	case pluginpb.ResultError_RESULT_ERROR_NO_GROUP:
		return ErrNoGroup
	case pluginpb.ResultError_RESULT_ERROR_NOT_MEMBER:
		return ErrNotMember
	case pluginpb.ResultError_RESULT_ERROR_MUTED:
		return ErrMuted
	case pluginpb.ResultError_RESULT_ERROR_NOT_ALLOWED:
		return ErrNotAllowed
	}
	return nil
}

// appendResultsToPB encodes results (see resultCode for Err). A result
// with Group carries the entry and no message.
func appendResultsToPB(rs []AppendResult) []*pluginpb.AppendResult {
	if len(rs) == 0 {
		return nil
	}
	buf := make([]pluginpb.AppendResult, len(rs))
	msgs := make([]pluginpb.Message, len(rs))
	out := make([]*pluginpb.AppendResult, len(rs))
	for i := range rs {
		r, p := &rs[i], &buf[i]
		if r.Group != nil {
			p.Group = groupEntryToPB(r.Group)
		} else {
			p.Message = messageToPB(&r.Message, &msgs[i])
		}
		p.Status, p.Duplicate = string(r.Status), r.Duplicate
		if r.Err != nil {
			p.Error, p.ErrorText = resultCode(r.Err), r.Err.Error()
		}
		out[i] = p
	}
	return out
}

func appendResultsFromPB(rs []*pluginpb.AppendResult) []AppendResult {
	if len(rs) == 0 {
		return nil
	}
	out := make([]AppendResult, len(rs))
	for i, r := range rs {
		a := &out[i]
		a.Message = messageFromPB(r.GetMessage())
		a.Status, a.Duplicate = protocol.Status(r.GetStatus()), r.GetDuplicate()
		if g := r.GetGroup(); g != nil {
			e := groupEntryFromPB(g)
			a.Group = &e
		}
		if code := r.GetError(); code != pluginpb.ResultError_RESULT_ERROR_NONE {
			a.Err = remote(r.GetErrorText(), resultError(code))
		}
	}
	return out
}

// writeErrorToPB encodes a failed Write. An error that is not a
// *WriteError breaks the contract; the host cannot tell what was stored,
// so it crosses as maybe written.
func writeErrorToPB(err error) *pluginpb.WriteError {
	out := &pluginpb.WriteError{Failed: true, MaybeWritten: true, Message: err.Error(), Kind: errorKind(err)}
	var we *WriteError
	if errors.As(err, &we) {
		out.MaybeWritten = we.MaybeWritten
		if we.Err != nil {
			out.Message = we.Err.Error()
		}
	}
	return out
}

func writeErrorFromPB(e *pluginpb.WriteError) *WriteError {
	return &WriteError{MaybeWritten: e.GetMaybeWritten(), Err: remote(e.GetMessage(), kindError(e.GetKind()))}
}

// ---- social -----------------------------------------------------------

func friendRequestsToPB(rs []FriendRequest) []*pluginpb.FriendRequest {
	if len(rs) == 0 {
		return nil
	}
	buf := make([]pluginpb.FriendRequest, len(rs))
	out := make([]*pluginpb.FriendRequest, len(rs))
	for i, r := range rs {
		buf[i].From, buf[i].To, buf[i].Note, buf[i].Ts = r.From, r.To, r.Note, r.TS
		out[i] = &buf[i]
	}
	return out
}

func friendRequestsFromPB(rs []*pluginpb.FriendRequest) []FriendRequest {
	if len(rs) == 0 {
		return nil
	}
	out := make([]FriendRequest, len(rs))
	for i, r := range rs {
		out[i] = FriendRequest{From: r.GetFrom(), To: r.GetTo(), Note: r.GetNote(), TS: r.GetTs()}
	}
	return out
}

func friendListToPB(l FriendList) *pluginpb.FriendsResponse {
	out := &pluginpb.FriendsResponse{Incoming: friendRequestsToPB(l.Incoming), Outgoing: friendRequestsToPB(l.Outgoing)}
	if n := len(l.Friends); n > 0 {
		buf := make([]pluginpb.Friend, n)
		out.Friends = make([]*pluginpb.Friend, n)
		for i, f := range l.Friends {
			buf[i].User, buf[i].Since = f.User, f.Since
			out.Friends[i] = &buf[i]
		}
	}
	return out
}

func friendListFromPB(r *pluginpb.FriendsResponse) FriendList {
	out := FriendList{Incoming: friendRequestsFromPB(r.GetIncoming()), Outgoing: friendRequestsFromPB(r.GetOutgoing())}
	if n := len(r.GetFriends()); n > 0 {
		out.Friends = make([]Friend, n)
		for i, f := range r.GetFriends() {
			out.Friends[i] = Friend{User: f.GetUser(), Since: f.GetSince()}
		}
	}
	return out
}

func relationToPB(r Relation) *pluginpb.RelationResponse {
	return &pluginpb.RelationResponse{Friends: r.Friends, Blocks: r.Blocks, BlockedBy: r.BlockedBy, RequestOut: r.RequestOut, RequestIn: r.RequestIn}
}

func relationFromPB(r *pluginpb.RelationResponse) Relation {
	return Relation{Friends: r.GetFriends(), Blocks: r.GetBlocks(), BlockedBy: r.GetBlockedBy(), RequestOut: r.GetRequestOut(), RequestIn: r.GetRequestIn()}
}

// ---- groups -----------------------------------------------------------

func groupLimitsToPB(l GroupLimits) *pluginpb.GroupLimits {
	return &pluginpb.GroupLimits{MaxMembers: int64(l.MaxMembers), MaxOwned: int64(l.MaxOwned), MaxJoined: int64(l.MaxJoined), MaxMentions: int64(l.MaxMentions)}
}

func groupLimitsFromPB(l *pluginpb.GroupLimits) GroupLimits {
	return GroupLimits{MaxMembers: clampInt(l.GetMaxMembers()), MaxOwned: clampInt(l.GetMaxOwned()), MaxJoined: clampInt(l.GetMaxJoined()), MaxMentions: clampInt(l.GetMaxMentions())}
}

func groupEntryToPB(e *GroupEntry) *pluginpb.GroupEntry {
	return &pluginpb.GroupEntry{
		Group: e.Group, Seq: e.Seq, Kind: string(e.Kind), Ts: e.TS,
		From: e.From, Body: e.Body, Mentions: e.Mentions,
		Actor: e.Actor, Target: e.Target, Name: e.Name, Role: string(e.Role),
		Until: e.Until, On: e.On, Policy: string(e.Policy), History: string(e.History),
		MsgId: e.MsgID, Cid: e.CID,
	}
}

func groupEntryFromPB(e *pluginpb.GroupEntry) GroupEntry {
	return GroupEntry{
		Group: e.GetGroup(), Seq: e.GetSeq(), Kind: EntryKind(e.GetKind()), TS: e.GetTs(),
		From: e.GetFrom(), Body: e.GetBody(), Mentions: e.GetMentions(),
		Actor: e.GetActor(), Target: e.GetTarget(), Name: e.GetName(), Role: GroupRole(e.GetRole()),
		Until: e.GetUntil(), On: e.GetOn(), Policy: GroupPolicy(e.GetPolicy()), History: GroupHistory(e.GetHistory()),
		MsgID: e.GetMsgId(), CID: e.GetCid(),
	}
}

func groupEntriesToPB(es []GroupEntry) []*pluginpb.GroupEntry {
	if len(es) == 0 {
		return nil
	}
	out := make([]*pluginpb.GroupEntry, len(es))
	for i := range es {
		out[i] = groupEntryToPB(&es[i])
	}
	return out
}

func groupEntriesFromPB(es []*pluginpb.GroupEntry) []GroupEntry {
	if len(es) == 0 {
		return nil
	}
	out := make([]GroupEntry, len(es))
	for i, e := range es {
		out[i] = groupEntryFromPB(e)
	}
	return out
}

func groupInfoToPB(g GroupInfo) *pluginpb.GroupInfo {
	return &pluginpb.GroupInfo{
		Id: g.ID, Name: g.Name, Owner: g.Owner, Policy: string(g.Policy), History: string(g.History),
		MuteAll: g.MuteAll, Members: int64(g.Members), LastSeq: g.LastSeq, Dissolved: g.Dissolved,
	}
}

func groupInfoFromPB(g *pluginpb.GroupInfo) GroupInfo {
	return GroupInfo{
		ID: g.GetId(), Name: g.GetName(), Owner: g.GetOwner(), Policy: GroupPolicy(g.GetPolicy()), History: GroupHistory(g.GetHistory()),
		MuteAll: g.GetMuteAll(), Members: clampInt(g.GetMembers()), LastSeq: g.GetLastSeq(), Dissolved: g.GetDissolved(),
	}
}

func userGroupsToPB(gs []UserGroup) []*pluginpb.UserGroup {
	if len(gs) == 0 {
		return nil
	}
	out := make([]*pluginpb.UserGroup, len(gs))
	for i, g := range gs {
		out[i] = &pluginpb.UserGroup{
			Group: groupInfoToPB(g.GroupInfo), Role: string(g.Role), JoinSeq: g.JoinSeq,
			ReadSeq: g.ReadSeq, Unread: g.Unread, Mentions: g.Mentions,
		}
	}
	return out
}

func userGroupsFromPB(gs []*pluginpb.UserGroup) []UserGroup {
	if len(gs) == 0 {
		return nil
	}
	out := make([]UserGroup, len(gs))
	for i, g := range gs {
		out[i] = UserGroup{
			GroupInfo: groupInfoFromPB(g.GetGroup()), Role: GroupRole(g.GetRole()), JoinSeq: g.GetJoinSeq(),
			ReadSeq: g.GetReadSeq(), Unread: g.GetUnread(), Mentions: g.GetMentions(),
		}
	}
	return out
}

func membersToPB(ms []Member) []*pluginpb.GroupMember {
	if len(ms) == 0 {
		return nil
	}
	buf := make([]pluginpb.GroupMember, len(ms))
	out := make([]*pluginpb.GroupMember, len(ms))
	for i, m := range ms {
		buf[i].User, buf[i].Role, buf[i].JoinSeq, buf[i].MutedUntil = m.User, string(m.Role), m.JoinSeq, m.MutedUntil
		out[i] = &buf[i]
	}
	return out
}

func membersFromPB(ms []*pluginpb.GroupMember) []Member {
	if len(ms) == 0 {
		return nil
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member{User: m.GetUser(), Role: GroupRole(m.GetRole()), JoinSeq: m.GetJoinSeq(), MutedUntil: m.GetMutedUntil()}
	}
	return out
}

func joinRequestsToPB(rs []JoinRequest) []*pluginpb.JoinRequest {
	if len(rs) == 0 {
		return nil
	}
	buf := make([]pluginpb.JoinRequest, len(rs))
	out := make([]*pluginpb.JoinRequest, len(rs))
	for i, r := range rs {
		buf[i].User, buf[i].Ts = r.User, r.TS
		out[i] = &buf[i]
	}
	return out
}

func joinRequestsFromPB(rs []*pluginpb.JoinRequest) []JoinRequest {
	if len(rs) == 0 {
		return nil
	}
	out := make([]JoinRequest, len(rs))
	for i, r := range rs {
		out[i] = JoinRequest{User: r.GetUser(), TS: r.GetTs()}
	}
	return out
}

func groupOpToPB(op GroupOp) *pluginpb.GroupOpRequest {
	return &pluginpb.GroupOpRequest{
		Kind: string(op.Kind), Group: op.Group, Actor: op.Actor, Target: op.Target, Role: string(op.Role),
		Name: op.Name, Until: op.Until, On: op.On, Policy: string(op.Policy), History: string(op.History),
		Ts: op.TS, Limits: groupLimitsToPB(op.Limits),
	}
}

func groupOpFromPB(r *pluginpb.GroupOpRequest) GroupOp {
	return GroupOp{
		Kind: GroupOpKind(r.GetKind()), Group: r.GetGroup(), Actor: r.GetActor(), Target: r.GetTarget(), Role: GroupRole(r.GetRole()),
		Name: r.GetName(), Until: r.GetUntil(), On: r.GetOn(), Policy: GroupPolicy(r.GetPolicy()), History: GroupHistory(r.GetHistory()),
		TS: r.GetTs(), Limits: groupLimitsFromPB(r.GetLimits()),
	}
}

// ---- tokens -----------------------------------------------------------

func tokenToPB(t *Token) *pluginpb.Token {
	return &pluginpb.Token{Id: t.ID, User: t.User, Hash: t.Hash, Created: t.Created, LastUsed: t.LastUsed, Expires: t.Expires}
}

func tokenFromPB(t *pluginpb.Token) Token {
	return Token{ID: t.GetId(), User: t.GetUser(), Hash: t.GetHash(), Created: t.GetCreated(), LastUsed: t.GetLastUsed(), Expires: t.GetExpires()}
}

func tokensToPB(ts []Token) []*pluginpb.Token {
	if len(ts) == 0 {
		return nil
	}
	out := make([]*pluginpb.Token, len(ts))
	for i := range ts {
		out[i] = tokenToPB(&ts[i])
	}
	return out
}

// tokensFromPB decodes a list of tokens; none is an empty slice, not nil
// (UserTokens answers an empty slice).
func tokensFromPB(ts []*pluginpb.Token) []Token {
	out := make([]Token, len(ts))
	for i, t := range ts {
		out[i] = tokenFromPB(t)
	}
	return out
}

func tokenUsesToPB(us []TokenUse) []*pluginpb.TokenUse {
	if len(us) == 0 {
		return nil
	}
	buf := make([]pluginpb.TokenUse, len(us))
	out := make([]*pluginpb.TokenUse, len(us))
	for i, u := range us {
		buf[i].Id, buf[i].Ts = u.ID, u.TS
		out[i] = &buf[i]
	}
	return out
}

func tokenUsesFromPB(us []*pluginpb.TokenUse) []TokenUse {
	if len(us) == 0 {
		return nil
	}
	out := make([]TokenUse, len(us))
	for i, u := range us {
		out[i] = TokenUse{ID: u.GetId(), TS: u.GetTs()}
	}
	return out
}

// ---- filter -----------------------------------------------------------

func filterMessagesToPB(ms []FilterMessage) []*pluginpb.FilterMessage {
	buf := make([]pluginpb.FilterMessage, len(ms))
	out := make([]*pluginpb.FilterMessage, len(ms))
	for i := range ms {
		m, p := &ms[i], &buf[i]
		p.From, p.To, p.Group, p.Body, p.Ts = m.From, m.To, m.Group, m.Body, m.TS
		out[i] = p
	}
	return out
}

func filterMessagesFromPB(ms []*pluginpb.FilterMessage) []FilterMessage {
	out := make([]FilterMessage, len(ms))
	for i, m := range ms {
		out[i] = FilterMessage{From: m.GetFrom(), To: m.GetTo(), Group: m.GetGroup(), Body: m.GetBody(), TS: m.GetTs()}
	}
	return out
}

func verdictsToPB(vs []Verdict) ([]*pluginpb.Verdict, error) {
	buf := make([]pluginpb.Verdict, len(vs))
	out := make([]*pluginpb.Verdict, len(vs))
	for i := range vs {
		v, p := &vs[i], &buf[i]
		switch v.Action {
		case Allow:
			p.Action = pluginpb.Action_ACTION_ALLOW
		case Rewrite:
			p.Action = pluginpb.Action_ACTION_REWRITE
		case Reject:
			p.Action = pluginpb.Action_ACTION_REJECT
		default:
			return nil, fmt.Errorf("verdict %d: unknown action %d", i, v.Action)
		}
		p.Body, p.Reason = v.Body, v.Reason
		out[i] = p
	}
	return out, nil
}

func verdictsFromPB(vs []*pluginpb.Verdict) ([]Verdict, error) {
	out := make([]Verdict, len(vs))
	for i, v := range vs {
		switch v.GetAction() {
		case pluginpb.Action_ACTION_ALLOW:
			out[i].Action = Allow
		case pluginpb.Action_ACTION_REWRITE:
			out[i].Action = Rewrite
		case pluginpb.Action_ACTION_REJECT:
			out[i].Action = Reject
		default:
			return nil, fmt.Errorf("verdict %d: invalid action %v", i, v.GetAction())
		}
		out[i].Body, out[i].Reason = v.GetBody(), v.GetReason()
	}
	return out, nil
}

// ---- errors -----------------------------------------------------------

// errNotConfigured is what a plugin answers before Configure succeeded.
var errNotConfigured = errors.New("plugin not configured")

// errConfig marks the factory's refusal of the configuration.
var errConfig = errors.New("invalid plugin configuration")

// errorKind names err's contract error, if it is one.
func errorKind(err error) pluginpb.ErrorKind {
	switch {
	case errors.Is(err, errNotConfigured):
		return pluginpb.ErrorKind_ERROR_KIND_NOT_CONFIGURED
	case errors.Is(err, errConfig):
		return pluginpb.ErrorKind_ERROR_KIND_CONFIG
	case errors.Is(err, ErrUserExists):
		return pluginpb.ErrorKind_ERROR_KIND_USER_EXISTS
	case errors.Is(err, ErrUnknownUser):
		return pluginpb.ErrorKind_ERROR_KIND_UNKNOWN_USER
	case errors.Is(err, ErrBadCursor):
		return pluginpb.ErrorKind_ERROR_KIND_BAD_CURSOR
	case errors.Is(err, ErrBlocked):
		return pluginpb.ErrorKind_ERROR_KIND_BLOCKED
	case errors.Is(err, ErrNotFriends):
		return pluginpb.ErrorKind_ERROR_KIND_NOT_FRIENDS
	case errors.Is(err, ErrNoRequest):
		return pluginpb.ErrorKind_ERROR_KIND_NO_REQUEST
	case errors.Is(err, ErrNoGroup):
		return pluginpb.ErrorKind_ERROR_KIND_NO_GROUP
	case errors.Is(err, ErrNotMember):
		return pluginpb.ErrorKind_ERROR_KIND_NOT_MEMBER
	case errors.Is(err, ErrNotAllowed):
		return pluginpb.ErrorKind_ERROR_KIND_NOT_ALLOWED
	case errors.Is(err, ErrMuted):
		return pluginpb.ErrorKind_ERROR_KIND_MUTED
	case errors.Is(err, ErrGroupFull):
		return pluginpb.ErrorKind_ERROR_KIND_GROUP_FULL
	case errors.Is(err, ErrAlreadyMember):
		return pluginpb.ErrorKind_ERROR_KIND_ALREADY_MEMBER
	case errors.Is(err, ErrGroupLimit):
		return pluginpb.ErrorKind_ERROR_KIND_GROUP_LIMIT
	case errors.Is(err, ErrNoToken):
		return pluginpb.ErrorKind_ERROR_KIND_NO_TOKEN
	case errors.Is(err, ErrTokenExists):
		return pluginpb.ErrorKind_ERROR_KIND_TOKEN_EXISTS
	case errors.Is(err, context.Canceled):
		return pluginpb.ErrorKind_ERROR_KIND_CANCELED
	case errors.Is(err, context.DeadlineExceeded):
		return pluginpb.ErrorKind_ERROR_KIND_DEADLINE_EXCEEDED
	}
	return pluginpb.ErrorKind_ERROR_KIND_UNSPECIFIED
}

// kindError is the Go error a kind stands for, or nil.
func kindError(k pluginpb.ErrorKind) error {
	switch k {
	case pluginpb.ErrorKind_ERROR_KIND_USER_EXISTS:
		return ErrUserExists
	case pluginpb.ErrorKind_ERROR_KIND_UNKNOWN_USER:
		return ErrUnknownUser
	case pluginpb.ErrorKind_ERROR_KIND_BAD_CURSOR:
		return ErrBadCursor
	case pluginpb.ErrorKind_ERROR_KIND_BLOCKED:
		return ErrBlocked
	case pluginpb.ErrorKind_ERROR_KIND_NOT_FRIENDS:
		return ErrNotFriends
	case pluginpb.ErrorKind_ERROR_KIND_NO_REQUEST:
		return ErrNoRequest
	case pluginpb.ErrorKind_ERROR_KIND_NO_GROUP:
		return ErrNoGroup
	case pluginpb.ErrorKind_ERROR_KIND_NOT_MEMBER:
		return ErrNotMember
	case pluginpb.ErrorKind_ERROR_KIND_NOT_ALLOWED:
		return ErrNotAllowed
	case pluginpb.ErrorKind_ERROR_KIND_MUTED:
		return ErrMuted
	case pluginpb.ErrorKind_ERROR_KIND_GROUP_FULL:
		return ErrGroupFull
	case pluginpb.ErrorKind_ERROR_KIND_ALREADY_MEMBER:
		return ErrAlreadyMember
	case pluginpb.ErrorKind_ERROR_KIND_GROUP_LIMIT:
		return ErrGroupLimit
	case pluginpb.ErrorKind_ERROR_KIND_NO_TOKEN:
		return ErrNoToken
	case pluginpb.ErrorKind_ERROR_KIND_TOKEN_EXISTS:
		return ErrTokenExists
	case pluginpb.ErrorKind_ERROR_KIND_NOT_CONFIGURED:
		return errNotConfigured
	case pluginpb.ErrorKind_ERROR_KIND_CONFIG:
		return errConfig
	case pluginpb.ErrorKind_ERROR_KIND_CANCELED:
		return context.Canceled
	case pluginpb.ErrorKind_ERROR_KIND_DEADLINE_EXCEEDED:
		return context.DeadlineExceeded
	}
	return nil
}

// kindCode is the status code a kind travels with.
func kindCode(k pluginpb.ErrorKind) codes.Code {
	switch k {
	case pluginpb.ErrorKind_ERROR_KIND_USER_EXISTS:
		return codes.AlreadyExists
	case pluginpb.ErrorKind_ERROR_KIND_UNKNOWN_USER, pluginpb.ErrorKind_ERROR_KIND_NO_REQUEST,
		pluginpb.ErrorKind_ERROR_KIND_NO_GROUP, pluginpb.ErrorKind_ERROR_KIND_NO_TOKEN:
		return codes.NotFound
	case pluginpb.ErrorKind_ERROR_KIND_BAD_CURSOR, pluginpb.ErrorKind_ERROR_KIND_NOT_CONFIGURED,
		pluginpb.ErrorKind_ERROR_KIND_BLOCKED, pluginpb.ErrorKind_ERROR_KIND_NOT_FRIENDS,
		pluginpb.ErrorKind_ERROR_KIND_NOT_MEMBER:
		return codes.FailedPrecondition
	case pluginpb.ErrorKind_ERROR_KIND_NOT_ALLOWED, pluginpb.ErrorKind_ERROR_KIND_MUTED:
		return codes.PermissionDenied
	case pluginpb.ErrorKind_ERROR_KIND_ALREADY_MEMBER, pluginpb.ErrorKind_ERROR_KIND_TOKEN_EXISTS:
		return codes.AlreadyExists
	case pluginpb.ErrorKind_ERROR_KIND_GROUP_FULL, pluginpb.ErrorKind_ERROR_KIND_GROUP_LIMIT:
		return codes.ResourceExhausted
	case pluginpb.ErrorKind_ERROR_KIND_CONFIG:
		return codes.InvalidArgument
	case pluginpb.ErrorKind_ERROR_KIND_CANCELED:
		return codes.Canceled
	case pluginpb.ErrorKind_ERROR_KIND_DEADLINE_EXCEEDED:
		return codes.DeadlineExceeded
	}
	return codes.Unknown
}

// toStatus turns an error of a plugin's implementation into the gRPC
// status the host decodes with fromStatus: a contract error gets its code
// and an ErrorDetail; anything else is UNKNOWN with the error's text.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	kind := errorKind(err)
	if kind == pluginpb.ErrorKind_ERROR_KIND_UNSPECIFIED {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Error(codes.Unknown, err.Error())
	}
	st := status.New(kindCode(kind), err.Error())
	if d, derr := st.WithDetails(&pluginpb.ErrorDetail{Kind: kind}); derr == nil {
		st = d
	}
	return st.Err()
}

// remoteError is an error that crossed the process boundary: the text the
// plugin (or the gRPC transport) gave, and the Go error it stands for.
type remoteError struct {
	msg    string
	target error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.target }

// remote rebuilds an error from its text and the contract error it
// stands for: the sentinel itself when the text is just the sentinel's.
func remote(msg string, target error) error {
	switch {
	case target != nil && (msg == "" || msg == target.Error()):
		return target
	case msg == "":
		msg = "unknown error"
	}
	return &remoteError{msg: msg, target: target}
}

// fromStatus decodes an error returned by a gRPC call: a status with an
// ErrorDetail becomes its contract error (errors.Is works on the host);
// the codes CANCELLED and DEADLINE_EXCEEDED (the caller's context, or the
// plugin's) become context.Canceled and context.DeadlineExceeded; any
// other error keeps its code and text.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if ed, ok := d.(*pluginpb.ErrorDetail); ok && kindError(ed.GetKind()) != nil {
			return decodeError(st.Code(), st.Message(), ed.GetKind())
		}
	}
	return decodeError(st.Code(), st.Message(), pluginpb.ErrorKind_ERROR_KIND_UNSPECIFIED)
}

// decodeError is fromStatus for a status given by its parts: code,
// message and the kind of its ErrorDetail (UNSPECIFIED for none).
func decodeError(code codes.Code, msg string, kind pluginpb.ErrorKind) error {
	if target := kindError(kind); target != nil {
		return remote(msg, target)
	}
	switch code {
	case codes.Canceled:
		return remote(msg, context.Canceled)
	case codes.DeadlineExceeded:
		return remote(msg, context.DeadlineExceeded)
	case codes.Unknown:
		return remote(msg, nil)
	}
	return remote(fmt.Sprintf("%s: %s", code, msg), nil)
}
