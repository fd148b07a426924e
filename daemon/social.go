package daemon

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/qqchat/qq/daemon/cluster"
	"github.com/qqchat/qq/daemon/limit"
	"github.com/qqchat/qq/daemon/presence"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/daemon/route"
	"github.com/qqchat/qq/plugins"
)

// This file holds qqd's friends, presence and typing extensions
// (docs/protocol.md, "Friends, presence and typing"): their handlers and
// pushes. The state of who is online with whom lives in package
// presence; friendships, requests and blocks live in the storage
// (plugins.Social), which these handlers call directly: each reply comes
// after the storage committed.

// Limits of the extensions.
const (
	// maxNoteBytes bounds a friend request's note.
	maxNoteBytes = 200
	// maxStatusTextBytes bounds a presence text.
	maxStatusTextBytes = 100
	// typingExpire ends a typing start that no stop or new start follows.
	typingExpire = 6 * time.Second
)

var errNoSocial = protocol.Errorf(protocol.CodeUnknownType, "unknown request type")

// social returns the storage's Social side and a context bounding one
// call; done releases both. ok is false when the storage in service has
// none (the features are off).
func (s *session) social() (so plugins.Social, ctx context.Context, done func(), ok bool) {
	ps := s.srv.acquirePlugs()
	if ps.social == nil {
		ps.release()
		return nil, nil, nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.Storage.Timeout)
	return ps.social, ctx, func() { cancel(); ps.release() }, true
}

// socialFailed answers a Social call's error: the contract's errors by
// their codes, anything else unavailable (and logged).
func (s *session) socialFailed(id []byte, op string, err error) {
	switch {
	case errors.Is(err, plugins.ErrUnknownUser):
		s.replyErr(id, protocol.Errorf(protocol.CodeUnknownUser, "no such user"))
	case errors.Is(err, plugins.ErrBlocked):
		s.replyErr(id, protocol.Errorf(protocol.CodeBlocked, "you cannot send this user requests"))
	case errors.Is(err, plugins.ErrNoRequest):
		s.replyErr(id, protocol.Errorf(protocol.CodeNoRequest, "no such friend request"))
	case errors.Is(err, plugins.ErrNotFriends):
		s.replyErr(id, protocol.Errorf(protocol.CodeNotFriends, "not friends"))
	default:
		s.storageFailed(id, op, err)
	}
}

// otherUser reads the user-name field key of req: required, a valid user
// name, not the caller's own.
func (s *session) otherUser(req *protocol.Request, key string) (string, *protocol.Error) {
	u, err := req.RequiredString(key)
	if err != nil {
		return "", err
	}
	if !protocol.ValidUser(u) {
		return "", protocol.Errorf(protocol.CodeBadRequest, key+" is not a valid user name")
	}
	if u == s.user {
		return "", protocol.Errorf(protocol.CodeBadRequest, key+" must be another user")
	}
	return u, nil
}

// oneLine checks an optional text field: at most max bytes of valid UTF-8
// without line breaks.
func oneLine(req *protocol.Request, key string, max int) (string, bool, *protocol.Error) {
	v, ok, err := req.String(key)
	switch {
	case err != nil:
		return "", false, err
	case len(v) > max:
		return "", false, protocol.Errorf(protocol.CodeBadRequest, key+" longer than "+strconv.Itoa(max)+" bytes")
	case !utf8.ValidString(v) || strings.ContainsAny(v, "\r\n"):
		return "", false, protocol.Errorf(protocol.CodeBadRequest, key+" must be one line of UTF-8")
	}
	return v, ok, nil
}

// pushTo queues frame on every session of user; a closing session drops
// it. It returns how many sessions it was queued for.
func (srv *Server) pushTo(user string, frame []byte) int {
	var c enqueueCount
	srv.router.Push(user, route.AllEpochs, frame, &c)
	return int(c)
}

// enqueueCount is a route.Deliverer that queues a frame on each session
// and counts those that took it.
type enqueueCount int

func (c *enqueueCount) Deliver(s *session, frame []byte) {
	if s.enqueue(frame) {
		*c++
	}
}

// pushPresence pushes a presence update to the friends it names. It is
// the presence registry's Notify (debounced offline) and delivers what
// the handlers' registry calls return.
func (srv *Server) pushPresence(u presence.Update) {
	srv.presenceChanged(u.User)
	if len(u.To) == 0 {
		return
	}
	frame := presenceFrame(u.User, u.P)
	for _, to := range u.To {
		// Here only: in a cluster, each node tells its own sessions
		// (from the presence directory).
		var c enqueueCount
		srv.router.PushHere(to, route.AllEpochs, frame, &c)
		srv.m.presencePushes.Add(float64(c))
	}
}

// presenceFrame is the presence push of user showing p.
func presenceFrame(user string, p presence.Presence) []byte {
	f := protocol.StartFrame(nil, protocol.TypePresence).Str("user", user).Str("state", p.State.String())
	if p.Text != "" {
		f = f.Str("text", p.Text)
	}
	return f.End()
}

func (srv *Server) pushPresences(ups []presence.Update) {
	for _, u := range ups {
		srv.pushPresence(u)
	}
}

// pushTyping pushes from's typing state to to: a user's connections, or
// for a group's typingKey the other members' (pushGroupTyping). It is
// also the presence.Typing expiry, which pushes the stop of a start that
// nothing ended.
func (srv *Server) pushTyping(from, to string, start bool) {
	if id, ok := typingGroup(to); ok {
		srv.pushGroupTyping(from, id, start)
		return
	}
	frame := protocol.StartFrame(nil, protocol.TypeTyping).Str("from", from).Str("state", typingStateName(start)).End()
	srv.m.typingPushes.Add(float64(srv.pushTypingTo(to, from, frame)))
}

func typingStateName(start bool) string {
	if start {
		return "start"
	}
	return "stop"
}

// typingTo records that the user starts or stops typing to to (a user,
// or a group's typingKey) and pushes it if that changed anything: a
// repeated start only extends the first.
func (s *session) typingTo(to string, start bool) {
	if start {
		if s.srv.typing.Start(s.user, to) {
			s.srv.pushTyping(s.user, to, true)
		}
	} else if s.srv.typing.Stop(s.user, to) {
		s.srv.pushTyping(s.user, to, false)
	}
}

// joinPresence counts the session in the presence registry after a
// login, with the user's friends and blocks read from storage (none when
// the storage has no Social side). It must follow router.Join; a session
// that began to close meanwhile is not counted.
func (s *session) joinPresence(friends, blocks []string) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.inPresence = true
	ups := s.srv.presence.Join(s.user, friends, blocks)
	s.mu.Unlock()
	s.srv.pushPresences(ups)
}

// loadSocial reads what the presence registry needs of user at login.
func (s *session) loadSocial() (friends, blocks []string, err error) {
	so, ctx, done, ok := s.social()
	if !ok {
		return nil, nil, nil
	}
	defer done()
	fl, err := so.Friends(ctx, s.user)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range fl.Friends {
		friends = append(friends, f.User)
	}
	blocks, err = so.Blocks(ctx, s.user)
	return friends, blocks, err
}

func (s *session) friendRequest(req *protocol.Request) {
	to, err := s.otherUser(req, "to")
	if err != nil {
		s.replyErr(req.ID, err)
		s.srv.m.friendRequests[friendInvalid].Inc()
		return
	}
	note, _, err := oneLine(req, "note", maxNoteBytes)
	if err != nil {
		s.replyErr(req.ID, err)
		s.srv.m.friendRequests[friendInvalid].Inc()
		return
	}
	if ok, wait := s.srv.friendLimit.Take(s.user); !ok {
		s.replyErr(req.ID, &protocol.Error{Code: protocol.CodeRateLimited, RetryAfterMS: limit.RetryAfterMS(wait),
			Message: "too many friend requests: at most " + strconv.Itoa(s.srv.cfg.Limits.FriendRequestsPerDay) + " a day"})
		s.srv.m.friendRequests[friendRateLimited].Inc()
		s.srv.m.limited[limitFriendRequests].Inc()
		return
	}
	so, ctx, done, ok := s.social()
	if !ok {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	now := time.Now().UnixMilli()
	// Friends already: say so, and tell nobody anything new.
	rel, serr := so.Relation(ctx, s.user, to)
	var friends bool
	if serr == nil && !rel.Friends {
		friends, serr = so.RequestFriend(ctx, s.user, to, note, now)
	}
	done()
	if serr != nil {
		s.srv.friendLimit.Refund(s.user)
		s.socialFailed(req.ID, "request_friend", serr)
		s.srv.m.friendRequests[friendRefused].Inc()
		return
	}
	if rel.Friends || friends {
		s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Str("status", "friends").End())
		s.srv.m.friendRequests[friendFriends].Inc()
		if !rel.Friends {
			s.srv.befriended(s.user, to, now)
		}
		return
	}
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Str("status", "pending").End())
	s.srv.m.friendRequests[friendPending].Inc()
	f := protocol.StartFrame(nil, protocol.TypeFriendRequest).Str("from", s.user)
	if note != "" {
		f = f.Str("note", note)
	}
	s.srv.pushTo(to, f.Int("ts", now).End())
}

// befriended tells both sides of a new friendship, then shows each the
// other's presence.
func (srv *Server) befriended(a, b string, since int64) {
	for _, p := range [2][2]string{{a, b}, {b, a}} {
		srv.pushTo(p[0], protocol.StartFrame(nil, protocol.TypeFriendAdded).Str("user", p[1]).Int("since", since).End())
	}
	srv.pushPresences(srv.presence.Befriend(a, b))
	srv.socialChanged(cluster.SocialEvent{Op: "befriend", A: a, B: b})
	srv.showRemoteFriend(a, b)
	srv.showRemoteFriend(b, a)
}

func (s *session) friendAnswer(req *protocol.Request, accept bool) {
	from, err := s.otherUser(req, "user")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	so, ctx, done, ok := s.social()
	if !ok {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	now := time.Now().UnixMilli()
	serr := so.AnswerFriendRequest(ctx, s.user, from, accept, now)
	done()
	if serr != nil {
		s.socialFailed(req.ID, "answer_friend_request", serr)
		return
	}
	s.replyOK(req.ID)
	if accept {
		s.srv.befriended(s.user, from, now)
		return
	}
	s.srv.pushTo(from, protocol.StartFrame(nil, protocol.TypeFriendDeclined).Str("user", s.user).End())
}

func (s *session) friendAccept(req *protocol.Request)  { s.friendAnswer(req, true) }
func (s *session) friendDecline(req *protocol.Request) { s.friendAnswer(req, false) }

func (s *session) friendCancel(req *protocol.Request) {
	to, err := s.otherUser(req, "to")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	so, ctx, done, ok := s.social()
	if !ok {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	serr := so.CancelFriendRequest(ctx, s.user, to)
	done()
	if serr != nil {
		s.socialFailed(req.ID, "cancel_friend_request", serr)
		return
	}
	s.replyOK(req.ID)
	s.srv.pushTo(to, protocol.StartFrame(nil, protocol.TypeFriendCancelled).Str("user", s.user).End())
}

func (s *session) friendRemove(req *protocol.Request) {
	other, err := s.otherUser(req, "user")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	so, ctx, done, ok := s.social()
	if !ok {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	serr := so.RemoveFriend(ctx, s.user, other)
	done()
	if serr != nil {
		s.socialFailed(req.ID, "remove_friend", serr)
		return
	}
	s.srv.presence.Unfriend(s.user, other)
	s.srv.socialChanged(cluster.SocialEvent{Op: "unfriend", A: s.user, B: other})
	s.replyOK(req.ID)
	s.srv.pushTo(other, protocol.StartFrame(nil, protocol.TypeFriendRemoved).Str("user", s.user).End())
}

func (s *session) friends(req *protocol.Request) {
	so, ctx, done, ok := s.social()
	if !ok {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	fl, serr := so.Friends(ctx, s.user)
	done()
	if serr != nil {
		s.socialFailed(req.ID, "friends", serr)
		return
	}
	var buf []byte
	item := func(o protocol.Frame) { buf = append(o.Close(), ',') }
	buf = append(buf, '[')
	for _, f := range fl.Friends {
		p := s.srv.shown(f.User)
		o := protocol.StartObject(buf).Str("user", f.User).Int("since", f.Since).Str("presence", p.State.String())
		if p.Text != "" {
			o = o.Str("text", p.Text)
		}
		item(o)
	}
	friends := closeArray(buf)
	buf = append(buf[:0:0], '[')
	for _, r := range fl.Incoming {
		item(protocol.StartObject(buf).Str("from", r.From).Str("note", r.Note).Int("ts", r.TS))
	}
	incoming := closeArray(buf)
	buf = append(buf[:0:0], '[')
	for _, r := range fl.Outgoing {
		item(protocol.StartObject(buf).Str("to", r.To).Str("note", r.Note).Int("ts", r.TS))
	}
	outgoing := closeArray(buf)
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Raw("friends", friends).
		Raw("incoming", incoming).Raw("outgoing", outgoing).End())
}

// closeArray ends a JSON array whose elements were each followed by a
// comma.
func closeArray(buf []byte) []byte {
	if buf[len(buf)-1] == ',' {
		buf = buf[:len(buf)-1]
	}
	return append(buf, ']')
}

func (s *session) block(req *protocol.Request) {
	target, err := s.otherUser(req, "user")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	so, ctx, done, ok := s.social()
	if !ok {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	rel, rerr := so.Relation(ctx, s.user, target)
	serr := so.Block(ctx, s.user, target, time.Now().UnixMilli())
	done()
	if serr != nil {
		s.socialFailed(req.ID, "block", serr)
		return
	}
	s.srv.presence.Block(s.user, target)
	s.srv.socialChanged(cluster.SocialEvent{Op: "block", A: s.user, B: target})
	s.srv.typing.Stop(target, s.user)
	s.replyOK(req.ID)
	if rerr == nil && rel.Friends {
		s.srv.pushTo(target, protocol.StartFrame(nil, protocol.TypeFriendRemoved).Str("user", s.user).End())
	}
}

func (s *session) unblock(req *protocol.Request) {
	target, err := s.otherUser(req, "user")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	so, ctx, done, ok := s.social()
	if !ok {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	serr := so.Unblock(ctx, s.user, target)
	done()
	if serr != nil {
		s.socialFailed(req.ID, "unblock", serr)
		return
	}
	s.srv.presence.Unblock(s.user, target)
	s.srv.socialChanged(cluster.SocialEvent{Op: "unblock", A: s.user, B: target})
	s.replyOK(req.ID)
}

func (s *session) blocks(req *protocol.Request) {
	so, ctx, done, ok := s.social()
	if !ok {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	users, serr := so.Blocks(ctx, s.user)
	done()
	if serr != nil {
		s.socialFailed(req.ID, "blocks", serr)
		return
	}
	slices.Sort(users)
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Strings("users", users).End())
}

// hasSocial reports whether the storage in service has a Social side.
func (s *session) hasSocial() bool {
	ps := s.srv.acquirePlugs()
	defer ps.release()
	return ps.social != nil
}

func (s *session) setPresence(req *protocol.Request) {
	if !s.hasSocial() {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	st, err := req.RequiredString("state")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	state, ok := presence.ParseState(st)
	if !ok {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeBadRequest, "state must be online, away, busy or invisible"))
		return
	}
	text, hasText, err := oneLine(req, "text", maxStatusTextBytes)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	if !hasText {
		text = s.srv.presence.Own(s.user).Text
	}
	ups := s.srv.presence.Set(s.user, presence.Presence{State: state, Text: text})
	s.replyOK(req.ID)
	s.srv.pushPresences(ups)
}

func (s *session) typingReq(req *protocol.Request) {
	if !s.hasSocial() {
		s.replyErr(req.ID, errNoSocial)
		return
	}
	if _, has, _ := req.String("group"); has {
		s.groupTyping(req)
		return
	}
	to, err := s.otherUser(req, "to")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	st, err := typingState(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	if !s.takeTyping(req) {
		return
	}
	s.replyOK(req.ID)
	// Nothing is pushed to a recipient who is offline or blocks the
	// sender, and the ok does not tell: typing never reveals a block.
	if !s.srv.router.Online(to) || s.srv.presence.Blocks(to, s.user) {
		return
	}
	s.typingTo(to, st == "start")
}

// typingState reads a typing request's state: start or stop.
func typingState(req *protocol.Request) (string, *protocol.Error) {
	st, err := req.RequiredString("state")
	if err != nil {
		return "", err
	}
	if st != "start" && st != "stop" {
		return "", protocol.Errorf(protocol.CodeBadRequest, "state must be start or stop")
	}
	return st, nil
}

// takeTyping takes one typing notification of the user's rate; past it,
// it answers rate_limited and reports false.
func (s *session) takeTyping(req *protocol.Request) bool {
	ok, wait := s.srv.typingLimit.Take(s.user)
	if !ok {
		s.replyErr(req.ID, &protocol.Error{Code: protocol.CodeRateLimited, RetryAfterMS: limit.RetryAfterMS(wait),
			Message: "typing notifications too fast"})
		s.srv.m.limited[limitTyping].Inc()
	}
	return ok
}
