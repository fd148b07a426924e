package daemon

import (
	"strconv"
	"strings"

	"github.com/qqchat/qq/daemon/groups"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// Typing in a group: {"type":"typing","group":"12","state":"start"} from
// a member is pushed as {"type":"typing","from":"alice","group":"12",
// "state":"start"} to the other members online, except those who block
// the sender; like typing to a user it is never stored, expires, and
// shares the user's typing rate. The presence.Typing tracker keys a
// group by typingKey, which no user name can equal.

// typingKey is the key of group id in presence.Typing.
func typingKey(id int64) string { return "#" + groupIDString(id) }

// typingGroup returns the group of a typingKey.
func typingGroup(key string) (int64, bool) {
	rest, ok := strings.CutPrefix(key, "#")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil
}

func (s *session) groupTyping(req *protocol.Request) {
	if !s.hasGroups() {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	if _, has, _ := req.String("to"); has {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeBadRequest, "typing goes to a user (to) or a group (group), not both"))
		return
	}
	id, err := groupID(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	st, err := typingState(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	// The plug set is released before the push, which takes it again
	// (holding it twice could deadlock against a reload's swap).
	ps := s.srv.acquirePlugs()
	if ps.groups == nil {
		ps.release()
		s.replyErr(req.ID, errNoGroups)
		return
	}
	var member, gone bool
	lerr := s.srv.groupCache.Do(id, s.srv.loadGroup(ps.groups), func(g *groups.Group) error {
		_, member = g.Members[s.user]
		gone = g.Gone
		return nil
	})
	ps.release()
	switch {
	case lerr != nil:
		s.storageFailed(req.ID, "group_typing", lerr)
		return
	case gone:
		s.replyErr(req.ID, groupErr(plugins.ErrNoGroup))
		return
	case !member:
		s.replyErr(req.ID, groupErr(plugins.ErrNotMember))
		return
	}
	if !s.takeTyping(req) {
		return
	}
	s.replyOK(req.ID)
	s.typingTo(typingKey(id), st == "start")
}

// pushGroupTyping pushes from's typing state to the other members of
// group id online who do not block from. Without the group (gone, or the
// storage failing) nothing is pushed: typing is best effort.
func (srv *Server) pushGroupTyping(from string, id int64, start bool) {
	ps := srv.acquirePlugs()
	defer ps.release()
	if ps.groups == nil {
		return
	}
	frame := protocol.StartFrame(nil, protocol.TypeTyping).Str("from", from).Str("group", groupIDString(id)).Str("state", typingStateName(start)).End()
	srv.groupCache.Do(id, srv.loadGroup(ps.groups), func(g *groups.Group) error {
		if _, ok := g.Members[from]; !ok && start {
			return nil
		}
		for user := range g.Members {
			if user != from && !srv.presence.Blocks(user, from) {
				srv.m.typingPushes.Add(float64(srv.pushTypingTo(user, from, frame)))
			}
		}
		return nil
	})
}
