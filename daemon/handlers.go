package daemon

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/limit"
	"github.com/qqchat/qq/daemon/monitor"
	"github.com/qqchat/qq/daemon/password"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// handler is one row of the protocol table.
type handler struct {
	fn func(*session, *protocol.Request)
	// needsLogin: answered not_logged_in before a successful login.
	needsLogin bool
}

// handlers is the QQP/1 request table.
var handlers = map[protocol.Type]handler{
	protocol.TypeRegister: {fn: (*session).register},
	protocol.TypeLogin:    {fn: (*session).login},
	protocol.TypeResume:   {fn: (*session).resume},
	protocol.TypePing:     {fn: (*session).ping},
	protocol.TypeSend:     {fn: (*session).sendMsg, needsLogin: true},
	protocol.TypeAck:      {fn: (*session).ack, needsLogin: true},
	protocol.TypeOffline:  {fn: (*session).offline, needsLogin: true},
	protocol.TypeUsers:    {fn: (*session).users, needsLogin: true},
	protocol.TypeHistory:  {fn: (*session).history, needsLogin: true},
	protocol.TypeLogout:   {fn: (*session).logout, needsLogin: true},

	// Extensions (social.go); each answers unknown_type when the storage
	// in service has no Social side.
	protocol.TypeFriendRequest: {fn: (*session).friendRequest, needsLogin: true},
	protocol.TypeFriendAccept:  {fn: (*session).friendAccept, needsLogin: true},
	protocol.TypeFriendDecline: {fn: (*session).friendDecline, needsLogin: true},
	protocol.TypeFriendCancel:  {fn: (*session).friendCancel, needsLogin: true},
	protocol.TypeFriendRemove:  {fn: (*session).friendRemove, needsLogin: true},
	protocol.TypeFriends:       {fn: (*session).friends, needsLogin: true},
	protocol.TypeBlock:         {fn: (*session).block, needsLogin: true},
	protocol.TypeUnblock:       {fn: (*session).unblock, needsLogin: true},
	protocol.TypeBlocks:        {fn: (*session).blocks, needsLogin: true},
	protocol.TypePresence:      {fn: (*session).setPresence, needsLogin: true},
	protocol.TypeTyping:        {fn: (*session).typingReq, needsLogin: true},

	// Groups (group.go); each answers unknown_type when the storage in
	// service has no Groups side.
	protocol.TypeGroupCreate:   {fn: (*session).groupCreate, needsLogin: true},
	protocol.TypeGroupSend:     {fn: (*session).groupSend, needsLogin: true},
	protocol.TypeGroupAck:      {fn: (*session).groupAck, needsLogin: true},
	protocol.TypeGroupSync:     {fn: (*session).groupSync, needsLogin: true},
	protocol.TypeGroupHistory:  {fn: (*session).groupHistory, needsLogin: true},
	protocol.TypeGroups:        {fn: (*session).groupList, needsLogin: true},
	protocol.TypeGroupInfo:     {fn: (*session).groupInfo, needsLogin: true},
	protocol.TypeGroupMembers:  {fn: (*session).groupMembers, needsLogin: true},
	protocol.TypeGroupRequests: {fn: (*session).groupRequests, needsLogin: true},
	protocol.TypeGroupJoin:     {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupInvite:   {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupApprove:  {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupReject:   {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupLeave:    {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupKick:     {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupRole:     {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupTransfer: {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupRename:   {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupMute:     {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupMuteAll:  {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupSettings: {fn: (*session).groupOp, needsLogin: true},
	protocol.TypeGroupDissolve: {fn: (*session).groupOp, needsLogin: true},
}

// handle decodes and dispatches one frame, checking in the contract's
// order: the frame, the type, the login, then the operation.
func (s *session) handle(line []byte) {
	req, perr := protocol.DecodeRequest(line)
	if perr != nil {
		var id []byte
		if req != nil {
			id = req.ID
		}
		s.replyErr(id, perr)
		return
	}
	h, ok := handlers[req.Type]
	if !ok {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeUnknownType, "unknown request type"))
		return
	}
	if h.needsLogin && !s.loggedIn.Load() {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeNotLoggedIn, "log in first"))
		return
	}
	h.fn(s, req)
}

func (s *session) replyErr(id []byte, e *protocol.Error) {
	s.reply(protocol.AppendError(nil, id, e))
}

func (s *session) replyOK(id []byte) {
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(id).End())
}

// storage returns the storage in service and a context bounding one call;
// done releases both.
func (s *session) storage() (plugins.Storage, context.Context, func()) {
	ps := s.srv.acquirePlugs()
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.Storage.Timeout)
	return ps.storage, ctx, func() { cancel(); ps.release() }
}

var errUnavailable = protocol.Errorf(protocol.CodeUnavailable, "storage unavailable; try again")

func (s *session) storageFailed(id []byte, op string, err error) {
	s.logger().Error("storage call failed", "op", op, "err", err)
	s.replyErr(id, errUnavailable)
}

// credentials reads the user and password fields of register and login.
func credentials(req *protocol.Request) (user, pw string, err *protocol.Error) {
	if user, err = req.RequiredString("user"); err != nil {
		return "", "", err
	}
	if pw, err = req.RequiredString("password"); err != nil {
		return "", "", err
	}
	return user, pw, nil
}

func (s *session) register(req *protocol.Request) {
	regs := s.srv.m.registrations
	user, pw, err := credentials(req)
	if err != nil {
		s.replyErr(req.ID, err)
		regs[regInvalid].Inc()
		return
	}
	if why := s.srv.accountRules(user, pw); why != "" {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeBadRequest, why))
		regs[regInvalid].Inc()
		return
	}
	if s.srv.cfg.Registration != config.RegistrationOpen {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeRegistrationClosed, "registration is closed on this server"))
		regs[regClosed].Inc()
		return
	}
	if e := s.registerAttempt(); e != nil {
		s.replyErr(req.ID, e)
		regs[regRateLimited].Inc()
		return
	}
	// A taken name is answered before the password is hashed: a register
	// flood of existing names costs a lookup each, not an Argon2id hash.
	// (The answer tells that the name is taken anyway.) CreateUser below
	// still decides: for a name freed by nothing (a deleted account's
	// stays taken) or taken meanwhile.
	st, ctx, done := s.storage()
	_, perr := st.PasswordHash(ctx, user)
	done()
	if perr == nil {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeUserExists, "user name is taken"))
		regs[regExists].Inc()
		return
	}
	hash, herr := s.srv.registerHash(pw)
	if herr != nil {
		s.logger().Error("password hash failed", "err", herr)
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeInternal, "could not register; try again"))
		regs[regError].Inc()
		return
	}
	st, ctx, done = s.storage()
	defer done()
	switch cerr := st.CreateUser(ctx, user, hash); {
	case errors.Is(cerr, plugins.ErrUserExists):
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeUserExists, "user name is taken"))
		regs[regExists].Inc()
	case cerr != nil:
		s.storageFailed(req.ID, "create_user", cerr)
		regs[regError].Inc()
	default:
		s.logger().Info("user registered", "user", user)
		s.replyOK(req.ID)
		regs[regOK].Inc()
	}
}

func (s *session) login(req *protocol.Request) {
	logins := s.srv.m.logins
	user, pw, err := credentials(req)
	if err != nil {
		s.replyErr(req.ID, err)
		logins[loginInvalid].Inc()
		return
	}
	remember, err := req.Flag("remember")
	if err != nil {
		s.replyErr(req.ID, err)
		logins[loginInvalid].Inc()
		return
	}
	if s.loggedIn.Load() {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeAlreadyLoggedIn, "this connection is logged in as "+s.user))
		logins[loginAlreadyLoggedIn].Inc()
		return
	}
	// The limits come before anything looks at the account, and answer
	// alike whether it exists or not.
	if e := s.authAttempt(user); e != nil {
		s.replyErr(req.ID, e)
		logins[loginRateLimited].Inc()
		return
	}
	st, ctx, done := s.storage()
	hash, lerr := st.PasswordHash(ctx, user)
	done()
	known := lerr == nil
	if lerr != nil && !errors.Is(lerr, plugins.ErrUnknownUser) {
		s.authRefund(user) // not a failed login
		s.storageFailed(req.ID, "password_hash", lerr)
		logins[loginError].Inc()
		return
	}
	if !known {
		hash = s.srv.dummyHash // same work as a wrong password
	}
	release := s.srv.hashSlot()
	ok, verr := password.Verify(hash, pw)
	release()
	if verr != nil {
		s.logger().Error("stored password hash unreadable", "user", user, "err", verr)
	}
	if !known || !ok {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeAuthFailed, "wrong user name or password"))
		if verr != nil {
			logins[loginError].Inc()
		} else {
			logins[loginAuthFailed].Inc()
		}
		return
	}
	// Only failed logins count, per account and per address.
	s.authRefund(user)
	s.enter(req.ID, user, remember, 0, logins)
}

// enter completes a login (by password or by resume token) of user: with
// issue, it first issues a resume token (the reply carries it); then it
// joins the online set, reads what the login reply needs and answers.
// expires, for a resume, is the token's end of life for the reply. A
// failure answers unavailable and leaves the session logged out.
func (s *session) enter(id []byte, user string, issue bool, expires int64, count monitor.Counters[loginResult]) {
	if s.srv.fenced() {
		s.replyErr(id, errFenced)
		count[loginError].Inc()
		return
	}
	var tok string
	if issue {
		var err error
		if tok, expires, err = s.issueToken(user); err != nil {
			s.storageFailed(id, "add_token", err)
			count[loginError].Inc()
			return
		}
	}
	s.user = user
	s.loggedIn.Store(true)
	// Join the online set before counting: see package route for why
	// this makes the login exact. A session that began to close
	// meanwhile (shutdown) has left already, or leaves now.
	s.srv.router.Join(s)
	if s.isClosing() {
		s.srv.router.Leave(s)
	}
	st, ctx, done := s.storage()
	n, cerr := st.PendingCount(ctx, user)
	done()
	var friends, blocks []string
	if cerr == nil {
		friends, blocks, cerr = s.loadSocial()
	}
	if cerr != nil {
		s.srv.router.Leave(s)
		s.loggedIn.Store(false)
		if issue {
			s.revokeOwnToken(revokeUnused) // never handed out
		}
		s.tokenID = ""
		s.storageFailed(id, "login", cerr)
		count[loginError].Inc()
		return
	}
	s.joinPresence(friends, blocks)
	s.holdSendBucket()
	s.logger().Debug("logged in", "user", user, "pending", n, "token", s.tokenID)
	f := protocol.StartFrame(nil, protocol.TypeOK).ID(id).Str("user", user).Int("pending", n)
	if tok != "" {
		f = f.Str("token", tok)
	}
	if expires != 0 {
		f = f.Int("token_expires", expires)
	}
	s.reply(f.End())
	count[loginOK].Inc()
}

// authAttempt takes a token of limits.auth_per_ip_per_minute and, for a
// valid user name, of limits.auth_per_account_per_minute, before a
// login's password is checked. A login that succeeds, or that storage
// could not check, gives them back (authRefund): only failed logins
// count, so many users behind one address log in freely while a guesser
// is throttled. Past a limit it returns the rate_limited error to
// answer, the same whichever limit it is and whether the account exists
// or not. Names that break the user name rules are not tracked per
// account (no such account can exist); the per-IP limit still applies to
// them. An address in limits.exempt_networks is not counted per IP.
func (s *session) authAttempt(user string) *protocol.Error {
	srv := s.srv
	var wait time.Duration
	ok := true
	if s.hasIP && !s.authExempt {
		if ok, wait = srv.authIP.Take(s.ip); !ok {
			srv.m.limited[limitAuthIP].Inc()
		}
	}
	if ok && protocol.ValidUser(user) {
		if ok, wait = srv.authAccount.Take(user); !ok {
			srv.m.limited[limitAuthAccount].Inc()
			if s.hasIP && !s.authExempt {
				srv.authIP.Refund(s.ip) // refused before any check
			}
		}
	}
	if ok {
		return nil
	}
	return authLimited(wait)
}

// authRefund gives back what authAttempt took for user: the login was
// not a failure.
func (s *session) authRefund(user string) {
	if s.hasIP && !s.authExempt {
		s.srv.authIP.Refund(s.ip)
	}
	if protocol.ValidUser(user) {
		s.srv.authAccount.Refund(user)
	}
}

// registerAttempt takes a token of limits.register_per_ip_per_minute
// (none for an address in limits.exempt_networks), or returns the
// rate_limited error to answer.
func (s *session) registerAttempt() *protocol.Error {
	if !s.hasIP || s.authExempt {
		return nil
	}
	ok, wait := s.srv.registerIP.Take(s.ip)
	if ok {
		return nil
	}
	s.srv.m.limited[limitRegisterIP].Inc()
	return authLimited(wait)
}

// authLimited is the answer past an authentication limit.
func authLimited(wait time.Duration) *protocol.Error {
	return &protocol.Error{Code: protocol.CodeRateLimited, RetryAfterMS: limit.RetryAfterMS(wait),
		Message: "too many login or registration attempts; try again later"}
}

func (s *session) ping(req *protocol.Request) { s.replyOK(req.ID) }

func (s *session) sendMsg(req *protocol.Request) {
	start := time.Now()
	invalid := s.srv.m.messages[msgInvalid]
	to, err := req.RequiredString("to")
	if err != nil {
		s.replyErr(req.ID, err)
		invalid.Inc()
		return
	}
	body, cid, cidFlags, err := s.sendFields(req)
	if err != nil {
		s.replyErr(req.ID, err)
		invalid.Inc()
		return
	}
	if e := s.sendRateLimit(); e != nil {
		s.replyErr(req.ID, e)
		s.srv.m.messages[msgRateLimited].Inc()
		return
	}
	s.acquireInflight()
	s.srv.pipe.submit(&writeReq{
		sess:  s,
		id:    req.ID,
		start: start,
		kind:  reqSend,
		msg: plugins.NewMessage{From: s.user, To: to, Body: body, CID: cid,
			FriendsOnly: s.srv.cfg.DirectMessages == config.DirectMessagesFriends},
		sentBody: body,
		cidFlags: cidFlags,
	})
}

// cidFlags says where a send's cid came from, and so whether the
// pipeline asks storage for an earlier message under it before the
// filters run (see pipeline.lookupRetries).
type cidFlags uint8

const (
	// cidServer: the client sent no cid; the server made one up.
	cidServer cidFlags = 1 << iota
	// cidFirst: the client says it never sent this cid before (the
	// request's optional "first": true). The lookup is skipped; the
	// storage's Write still answers a repeated cid with the first
	// message.
	cidFirst
)

// lookup reports that the cid may name a stored message, so the
// pipeline looks it up before filtering.
func (f cidFlags) lookup() bool { return f == 0 }

// sendFields reads and checks what every send carries: body, cid and
// first. A send without a cid gets one made up by the server (cidServer),
// so that a storage write with an unknown outcome can be settled (see
// pipeline.resolve); the client never sees it.
func (s *session) sendFields(req *protocol.Request) (body, cid string, flags cidFlags, err *protocol.Error) {
	if body, err = req.RequiredString("body"); err != nil {
		return "", "", 0, err
	}
	cid, hasCID, err := req.String("cid")
	if err != nil {
		return "", "", 0, err
	}
	first, err := req.Flag("first")
	switch {
	case err != nil:
		return "", "", 0, err
	case body == "":
		return "", "", 0, protocol.Errorf(protocol.CodeBadRequest, "body must not be empty")
	case hasCID && (cid == "" || len(cid) > protocol.MaxCIDBytes):
		return "", "", 0, protocol.Errorf(protocol.CodeBadRequest, "cid must be 1-128 bytes")
	case len(body) > s.srv.cfg.Limits.MaxBodyBytes:
		return "", "", 0, protocol.Errorf(protocol.CodeTooLarge, "body longer than "+strconv.Itoa(s.srv.cfg.Limits.MaxBodyBytes)+" bytes")
	}
	switch {
	case !hasCID:
		return body, s.srv.newServerCID(), cidServer, nil
	case first:
		return body, cid, cidFirst, nil
	}
	return body, cid, 0, nil
}

// sendRateLimit takes a token of the user's send rate (direct and group
// sends alike), or returns the rate_limited error to answer.
func (s *session) sendRateLimit() *protocol.Error {
	ok, wait := s.takeSendToken()
	if ok {
		return nil
	}
	s.srv.m.limited[limitSendRate].Inc()
	return &protocol.Error{Code: protocol.CodeRateLimited, RetryAfterMS: limit.RetryAfterMS(wait),
		Message: "sending too fast: at most " + strconv.FormatFloat(s.srv.cfg.Limits.SendRate, 'g', -1, 64) +
			" messages per second (bursts of " + strconv.Itoa(s.srv.cfg.Limits.SendBurst) + ")"}
}

func (s *session) ack(req *protocol.Request) {
	ids, ok, err := req.Strings("msg_ids")
	if err == nil && !ok {
		err = protocol.Errorf(protocol.CodeBadRequest, "msg_ids is required")
	}
	if err == nil && len(ids) > s.srv.cfg.Limits.MaxAckIDs {
		err = protocol.Errorf(protocol.CodeBadRequest, "more than "+strconv.Itoa(s.srv.cfg.Limits.MaxAckIDs)+" msg_ids")
	}
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	s.acquireInflight()
	s.srv.pipe.submit(&writeReq{kind: reqAck, sess: s, id: req.ID, ack: ids})
}

// pageLimit reads an optional limit field: absent means def, below 1 is a
// bad_request, above max is clamped.
func pageLimit(req *protocol.Request, def, max int) (int, *protocol.Error) {
	n, ok, err := req.Int("limit")
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return def, nil
	case n < 1:
		return 0, protocol.Errorf(protocol.CodeBadRequest, "limit must be at least 1")
	case n > int64(max):
		return max, nil
	}
	return int(n), nil
}

func (s *session) offline(req *protocol.Request) {
	limit, err := pageLimit(req, 100, s.srv.cfg.Limits.OfflinePageMax)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	// Pending must see every ack this connection sent before.
	s.waitInflight()
	st, ctx, done := s.storage()
	defer done()
	msgs, more, serr := st.Pending(ctx, s.user, limit)
	if serr != nil {
		s.storageFailed(req.ID, "pending", serr)
		return
	}
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Messages("messages", msgs).Bool("more", more).End())
}

func (s *session) users(req *protocol.Request) {
	// Invisible users are not listed; in a cluster, every node's are.
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.Cluster.RequestTimeout)
	defer cancel()
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Strings("users", s.srv.onlineUsers(ctx)).End())
}

func (s *session) history(req *protocol.Request) {
	with, err := req.RequiredString("with")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	before, hasBefore, err := req.String("before")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	if hasBefore && before == "" {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeBadRequest, "before must be a msg_id of this conversation"))
		return
	}
	limit, err := pageLimit(req, 50, s.srv.cfg.Limits.HistoryPageMax)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	s.waitInflight() // history includes this connection's earlier sends
	st, ctx, done := s.storage()
	defer done()
	msgs, more, serr := st.History(ctx, s.user, with, before, limit)
	switch {
	case errors.Is(serr, plugins.ErrUnknownUser):
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeUnknownUser, "no such user"))
	case errors.Is(serr, plugins.ErrBadCursor):
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeBadRequest, "before must be a msg_id of this conversation"))
	case serr != nil:
		s.storageFailed(req.ID, "history", serr)
	default:
		s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Messages("messages", msgs).Bool("more", more).End())
	}
}

func (s *session) logout(req *protocol.Request) {
	s.waitInflight()
	// Its own resume token ends with the session; if that cannot be
	// done, the session stays so that the client can try again.
	if s.tokenID != "" && !s.revokeOwnToken(revokeLogout) {
		s.replyErr(req.ID, errUnavailable)
		return
	}
	// finish leaves the online set before the ok is queued.
	s.finish(CloseLogout, protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).End(), false)
}
