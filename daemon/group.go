package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/qqchat/qq/daemon/groups"
	"github.com/qqchat/qq/daemon/limit"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/daemon/route"
	"github.com/qqchat/qq/plugins"
)

// This file holds qqd's groups extension (docs/protocol.md, "Groups"):
// its handlers, the group messages' part of the pipeline's answer stage,
// and the pushes of group log entries. Groups, their logs and cursors
// live in the storage (plugins.Groups); the daemon keeps only who is a
// member of the groups in use (package groups), whose per-group lock
// orders membership changes against the pushes of entries: a member
// removed at entry N never receives N+1.

// Bounds of the groups extension besides qq.yaml's groups.*.
const (
	maxGroupNameBytes = 64
	groupPageDefault  = 100
	groupPageMax      = 500
	memberPageMax     = 1000
	membersLoadPage   = 1000
)

var errNoGroups = protocol.Errorf(protocol.CodeUnknownType, "unknown request type")

// groupsStore returns the storage's Groups side and a context bounding
// one call; done releases both. ok is false when the storage has none.
func (s *session) groupsStore() (g plugins.Groups, ctx context.Context, done func(), ok bool) {
	ps := s.srv.acquirePlugs()
	if ps.groups == nil {
		ps.release()
		return nil, nil, nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.Storage.Timeout)
	return ps.groups, ctx, func() { cancel(); ps.release() }, true
}

// groupErr maps a Groups error to its wire error, or nil for one that is
// not the contract's (the caller answers unavailable).
func groupErr(err error) *protocol.Error {
	switch {
	case errors.Is(err, plugins.ErrNoGroup):
		return protocol.Errorf(protocol.CodeNoGroup, "no such group")
	case errors.Is(err, plugins.ErrNotMember):
		return protocol.Errorf(protocol.CodeNotMember, "not a member of this group")
	case errors.Is(err, plugins.ErrNotAllowed):
		return protocol.Errorf(protocol.CodeNotAllowed, "your role in this group does not allow that")
	case errors.Is(err, plugins.ErrMuted):
		return protocol.Errorf(protocol.CodeMuted, "you are muted in this group; nothing was stored")
	case errors.Is(err, plugins.ErrGroupFull):
		return protocol.Errorf(protocol.CodeGroupFull, "the group is full")
	case errors.Is(err, plugins.ErrAlreadyMember):
		return protocol.Errorf(protocol.CodeAlreadyMember, "already a member of this group")
	case errors.Is(err, plugins.ErrGroupLimit):
		return protocol.Errorf(protocol.CodeGroupLimit, "you own or belong to as many groups as this server allows")
	case errors.Is(err, plugins.ErrNoRequest):
		return protocol.Errorf(protocol.CodeNoRequest, "no such request to join")
	case errors.Is(err, plugins.ErrUnknownUser):
		return protocol.Errorf(protocol.CodeUnknownUser, "no such user")
	}
	return nil
}

func (s *session) groupFailed(id []byte, op string, err error) {
	switch {
	case errors.Is(err, plugins.ErrGroupFull):
		s.srv.m.limited[limitGroupMembers].Inc()
	case errors.Is(err, plugins.ErrGroupLimit):
		s.srv.m.limited[limitGroupsPerUser].Inc()
	}
	if e := groupErr(err); e != nil {
		s.replyErr(id, e)
		return
	}
	s.storageFailed(id, op, err)
}

// groupID reads the group field: a string of decimal digits.
func groupID(req *protocol.Request) (int64, *protocol.Error) {
	g, err := req.RequiredString("group")
	if err != nil {
		return 0, err
	}
	id, perr := strconv.ParseInt(g, 10, 64)
	if perr != nil || id <= 0 || strconv.FormatInt(id, 10) != g {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "group is not a group id")
	}
	return id, nil
}

func groupIDString(id int64) string { return strconv.FormatInt(id, 10) }

// groupName checks a group name: 1 to 64 bytes, one line of UTF-8.
func groupName(req *protocol.Request) (string, *protocol.Error) {
	name, err := req.RequiredString("name")
	if err != nil {
		return "", err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxGroupNameBytes || !utf8.ValidString(name) || strings.ContainsAny(name, "\r\n") {
		return "", protocol.Errorf(protocol.CodeBadRequest, "name must be 1 to 64 bytes, one line of UTF-8")
	}
	return name, nil
}

func (srv *Server) groupLimits() plugins.GroupLimits {
	g := srv.cfg.Groups
	return plugins.GroupLimits{MaxMembers: g.MaxMembers, MaxOwned: g.MaxOwned, MaxJoined: g.MaxJoined, MaxMentions: g.MaxMentions}
}

// appendEntry appends e's fields to a frame or object.
func appendEntry(f protocol.Frame, e *plugins.GroupEntry) protocol.Frame {
	f = f.Str("group", groupIDString(e.Group)).Int("seq", e.Seq).Str("kind", string(e.Kind)).Int("ts", e.TS)
	if e.MsgID != "" {
		f = f.Str("msg_id", e.MsgID)
	}
	if e.From != "" {
		f = f.Str("from", e.From)
	}
	if e.Body != "" {
		f = f.Str("body", e.Body)
	}
	if len(e.Mentions) > 0 {
		f = f.Strings("mentions", e.Mentions)
	}
	if e.Actor != "" {
		f = f.Str("actor", e.Actor)
	}
	if e.Target != "" {
		f = f.Str("target", e.Target)
	}
	if e.Name != "" {
		f = f.Str("name", e.Name)
	}
	if e.Role != "" {
		f = f.Str("role", string(e.Role))
	}
	if e.Until != 0 {
		f = f.Int("until", e.Until)
	}
	if e.Kind == plugins.EntryMuteAll {
		f = f.Bool("on", e.On)
	}
	if e.Policy != "" {
		f = f.Str("policy", string(e.Policy))
	}
	if e.History != "" {
		f = f.Str("history", string(e.History))
	}
	return f
}

// loadGroup fills g from storage: its members and history visibility.
func (srv *Server) loadGroup(gs plugins.Groups) func(g *groups.Group) error {
	return func(g *groups.Group) error {
		ctx, cancel := context.WithTimeout(context.Background(), srv.cfg.Storage.Timeout)
		defer cancel()
		info, err := gs.Group(ctx, g.ID)
		if errors.Is(err, plugins.ErrNoGroup) {
			g.Gone = true
			return nil
		}
		if err != nil {
			return err
		}
		g.Gone = info.Dissolved
		g.Shared = info.History == plugins.HistoryShared
		g.Pushed = info.LastSeq
		if g.Gone {
			return nil
		}
		after := ""
		for {
			ms, more, err := gs.Members(ctx, g.ID, after, membersLoadPage)
			if err != nil {
				return err
			}
			for _, m := range ms {
				g.Members[m.User] = groups.Member{Role: string(m.Role), JoinSeq: m.JoinSeq, MutedUntil: m.MutedUntil}
				after = m.User
			}
			if !more || len(ms) == 0 {
				return nil
			}
		}
	}
}

// groupPush delivers a group entry to the sessions of the members who
// may see it, through the router, skipping one session (the sender's).
type groupPush struct {
	skip *session
	n    int
}

func (d *groupPush) Deliver(s *session, frame []byte) {
	if s == d.skip {
		return
	}
	if s.enqueueGroupEntry(frame) {
		d.n++
	}
}

// pushEntry pushes e to the members of g who see it: to sessions that
// joined the router before epoch (route.AllEpochs for operations, whose
// reply the handler writes itself), skipping skip; with here, only to the
// sessions on this node (route.Router.PushHere). g's lock is held.
func (srv *Server) pushEntry(g *groups.Group, e *plugins.GroupEntry, epoch uint64, skip *session, here bool) {
	frame := appendEntry(protocol.StartFrame(nil, protocol.TypeGroupEntry), e).End()
	d := &groupPush{skip: skip}
	// In a cluster, the other nodes get the entry itself, which each
	// orders against the group's log (see deliverRemoteEntry).
	var stored []byte
	if srv.cluster != nil && !here {
		stored, _ = json.Marshal(e)
	}
	for user := range g.Members {
		if g.Sees(user, e.Seq) {
			srv.router.PushHere(user, epoch, frame, d)
			if stored != nil {
				srv.cluster.router.PublishGroupEntry(user, stored)
			}
		}
	}
	srv.m.groupFanout.Observe(float64(d.n))
}

// deliver pushes the committed entry e to the members of g who see it
// and applies it to g, in seq order (see package groups): an entry at or
// below g.Pushed was delivered already; a gap below e is filled from the
// log first. g's lock is held.
func (srv *Server) deliver(gs plugins.Groups, g *groups.Group, e *plugins.GroupEntry, epoch uint64, skip *session) {
	srv.deliverFrom(gs, g, e, epoch, skip, false)
}

// deliverFrom is deliver; remote says e was committed on another node,
// which published it to the members elsewhere: it goes to the sessions
// here only.
func (srv *Server) deliverFrom(gs plugins.Groups, g *groups.Group, e *plugins.GroupEntry, epoch uint64, skip *session, remote bool) {
	if e.Seq <= g.Pushed {
		return
	}
	if e.Seq > g.Pushed+1 {
		srv.fillGap(gs, g, e.Seq)
	}
	if e.Kind == plugins.EntryJoined {
		apply(g, e) // the member who joins sees their join
	}
	srv.pushEntry(g, e, epoch, skip, remote)
	if e.Kind != plugins.EntryJoined {
		apply(g, e)
	}
	g.Pushed = e.Seq
}

// fillGap delivers the entries between g.Pushed and upTo (exclusive),
// read from the log: messages committed but not pushed yet (their own
// push finds them delivered and skips), and entries made outside qqd's
// group lock (a deleted account's "left"). They go to every connection,
// the sender's too (a client de-duplicates by group and seq). The log is
// read as the member who joined first, who sees every entry a current
// member may see. If it cannot be read, the gap stays: members catch up
// with group_sync.
func (srv *Server) fillGap(gs plugins.Groups, g *groups.Group, upTo int64) {
	ctx, cancel := context.WithTimeout(context.Background(), srv.cfg.Storage.Timeout)
	defer cancel()
	defer func() { g.Pushed = max(g.Pushed, upTo-1) }()
	for g.Pushed < upTo-1 {
		viewer, first := "", int64(0)
		for u, m := range g.Members {
			if viewer == "" || m.JoinSeq < first || m.JoinSeq == first && u < viewer {
				viewer, first = u, m.JoinSeq
			}
		}
		if viewer == "" {
			return
		}
		es, _, err := gs.Log(ctx, g.ID, viewer, g.Pushed, 0, min(int(upTo-1-g.Pushed), groupPageMax))
		if err != nil {
			srv.log.Warn("group log could not be read; entries not pushed", "group", g.ID, "after", g.Pushed, "err", err)
			return
		}
		progress := false
		for i := range es {
			fe := &es[i]
			if fe.Seq >= upTo {
				return
			}
			if fe.Seq <= g.Pushed {
				continue
			}
			if fe.Kind == plugins.EntryJoined {
				apply(g, fe)
			}
			// Here only: in a cluster, the node that committed fe
			// pushed it to the members on other nodes.
			srv.pushEntry(g, fe, route.AllEpochs, nil, true)
			if fe.Kind != plugins.EntryJoined {
				apply(g, fe)
			}
			g.Pushed, progress = fe.Seq, true
		}
		if !progress { // the viewer sees no further (their removal)
			return
		}
	}
}

// apply brings g up to date with the membership or settings change e,
// which storage committed. Removals are applied after e was pushed (the
// removed member sees their removal, and nothing after it).
func apply(g *groups.Group, e *plugins.GroupEntry) {
	switch e.Kind {
	case plugins.EntryJoined:
		g.Members[e.Target] = groups.Member{Role: string(plugins.RoleMember), JoinSeq: e.Seq}
	case plugins.EntryLeft, plugins.EntryKicked:
		delete(g.Members, e.Target)
	case plugins.EntryRole:
		if m, ok := g.Members[e.Target]; ok {
			m.Role = string(e.Role)
			g.Members[e.Target] = m
		}
	case plugins.EntryOwner:
		if m, ok := g.Members[e.Target]; ok {
			m.Role = string(plugins.RoleOwner)
			g.Members[e.Target] = m
		}
		if m, ok := g.Members[e.Actor]; ok {
			m.Role = string(plugins.RoleAdmin)
			g.Members[e.Actor] = m
		}
	case plugins.EntryMuted:
		if m, ok := g.Members[e.Target]; ok {
			m.MutedUntil = e.Until
			g.Members[e.Target] = m
		}
	case plugins.EntrySettings:
		g.Shared = e.History == plugins.HistoryShared
	case plugins.EntryDissolved:
		g.Gone = true
		clear(g.Members)
	}
}

// answerGroupSend answers a group send that reached storage (or a cid
// retry of one), and pushes a new entry to the members online. It runs
// in the answer stage.
func (p *pipeline) answerGroupSend(r *writeReq, res *plugins.AppendResult, epoch uint64, gs plugins.Groups) {
	srv := p.srv
	if errors.Is(res.Err, errNotStored) {
		srv.m.groupMessages[gmsgFailed].Inc()
		p.reply(r.sess, protocol.AppendError(nil, r.id, errStorageDown))
		return
	}
	if res.Err == nil && (res.Group == nil || // the cid names a direct message
		res.Duplicate && res.Group.Group != r.group) { // or one in another group
		srv.m.groupMessages[gmsgInvalid].Inc()
		p.reply(r.sess, protocol.AppendError(nil, r.id, errCIDReused))
		return
	}
	if res.Err != nil {
		e := groupErr(res.Err)
		if e == nil {
			srv.log.Error("storage refused a group message", "err", res.Err)
			e = protocol.Errorf(protocol.CodeInternal, "message not stored")
		}
		srv.m.groupMessages[gmsgRefused].Inc()
		p.reply(r.sess, protocol.AppendError(nil, r.id, e))
		return
	}
	e := res.Group
	f := p.startOK(r.id).Str("group", groupIDString(e.Group)).Int("seq", e.Seq).
		Int("ts", e.TS).Str("msg_id", e.MsgID)
	if e.Body != r.sentBody {
		f = f.Str("body", e.Body)
	}
	if res.Duplicate {
		srv.m.groupMessages[gmsgDuplicate].Inc()
	} else {
		srv.m.groupMessages[gmsgStored].Inc()
	}
	p.replyOK(r.sess, f)
	if res.Duplicate {
		return
	}
	// The push waits for the group's lock: a membership change being
	// committed for this group is applied first (see package groups).
	load := srv.loadGroup(gs)
	err := srv.groupCache.Do(e.Group, func(g *groups.Group) error {
		if err := load(g); err != nil {
			return err
		}
		// Loaded after e was committed: e is still to be pushed.
		g.Pushed = min(g.Pushed, e.Seq-1)
		return nil
	}, func(g *groups.Group) error {
		srv.deliver(gs, g, e, epoch, r.sess)
		return nil
	})
	if err != nil {
		// The entry is stored; members catch up with group_sync.
		srv.log.Warn("group members could not be read; entry not pushed", "group", e.Group, "seq", e.Seq, "err", err)
	}
}

func (s *session) groupCreate(req *protocol.Request) {
	gs, ctx, done, ok := s.groupsStore()
	if !ok {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	defer done()
	name, err := groupName(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	policy, history := plugins.PolicyOpen, plugins.HistoryJoined
	if v, has, err := req.String("policy"); err != nil {
		s.replyErr(req.ID, err)
		return
	} else if has {
		if policy = plugins.GroupPolicy(v); policy != plugins.PolicyOpen && policy != plugins.PolicyApproval && policy != plugins.PolicyInvite {
			s.replyErr(req.ID, protocol.Errorf(protocol.CodeBadRequest, "policy must be open, approval or invite"))
			return
		}
	}
	if v, has, err := req.String("history"); err != nil {
		s.replyErr(req.ID, err)
		return
	} else if has {
		if history = plugins.GroupHistory(v); history != plugins.HistoryJoined && history != plugins.HistoryShared {
			s.replyErr(req.ID, protocol.Errorf(protocol.CodeBadRequest, "history must be joined or shared"))
			return
		}
	}
	if ok, wait := s.srv.groupCreateLimit.Take(s.user); !ok {
		s.replyErr(req.ID, &protocol.Error{Code: protocol.CodeRateLimited, RetryAfterMS: limit.RetryAfterMS(wait),
			Message: "too many groups created: at most " + strconv.Itoa(s.srv.cfg.Groups.CreatedPerDay) + " a day"})
		s.srv.m.limited[limitGroupsCreated].Inc()
		return
	}
	gi, serr := gs.CreateGroup(ctx, s.user, name, policy, history, time.Now().UnixMilli(), s.srv.groupLimits())
	if serr != nil {
		s.srv.groupCreateLimit.Refund(s.user)
		s.groupFailed(req.ID, "create_group", serr)
		return
	}
	s.srv.m.groupsCreated.Inc()
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Str("group", groupIDString(gi.ID)).Int("seq", gi.LastSeq).End())
}

func (s *session) groupSend(req *protocol.Request) {
	if !s.hasGroups() {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	start := time.Now()
	invalid := s.srv.m.groupMessages[gmsgInvalid]
	id, err := groupID(req)
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
	mentions, _, err := req.Strings("mentions")
	switch {
	case err != nil:
	case len(mentions) > s.srv.cfg.Groups.MaxMentions:
		s.srv.m.limited[limitGroupMentions].Inc()
		err = protocol.Errorf(protocol.CodeBadRequest, "more than "+strconv.Itoa(s.srv.cfg.Groups.MaxMentions)+" mentions")
	default:
		for _, m := range mentions {
			if m != "all" && !protocol.ValidUser(m) {
				err = protocol.Errorf(protocol.CodeBadRequest, "mentions must be user names or all")
				break
			}
		}
	}
	if err != nil {
		s.replyErr(req.ID, err)
		invalid.Inc()
		return
	}
	if e := s.sendRateLimit(); e != nil {
		s.replyErr(req.ID, e)
		s.srv.m.groupMessages[gmsgRateLimited].Inc()
		return
	}
	s.acquireInflight()
	s.srv.pipe.submit(&writeReq{
		kind:     reqGroupSend,
		sess:     s,
		id:       req.ID,
		start:    start,
		msg:      plugins.NewMessage{From: s.user, Body: body, CID: cid},
		sentBody: body,
		cidFlags: cidFlags,
		group:    id,
		mentions: mentions,
	})
}

// hasGroups reports whether the storage in service has a Groups side.
func (s *session) hasGroups() bool {
	ps := s.srv.acquirePlugs()
	defer ps.release()
	return ps.groups != nil
}

func (s *session) groupAck(req *protocol.Request) {
	if !s.hasGroups() {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	id, err := groupID(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	seq, ok, err := req.Int("seq")
	if err == nil && (!ok || seq < 1) {
		err = protocol.Errorf(protocol.CodeBadRequest, "seq must be a positive integer")
	}
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	s.acquireInflight()
	s.srv.pipe.submit(&writeReq{kind: reqGroupAck, sess: s, id: req.ID, group: id, ackSeq: seq})
}

// entries replies with a page of log entries.
func (s *session) entries(id []byte, es []plugins.GroupEntry, more bool) {
	buf := []byte{'['}
	for i := range es {
		buf = append(appendEntry(protocol.StartObject(buf), &es[i]).Close(), ',')
	}
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(id).Raw("entries", closeArray(buf)).Bool("more", more).End())
}

func (s *session) groupSync(req *protocol.Request) { s.groupLog(req, false) }

func (s *session) groupHistory(req *protocol.Request) { s.groupLog(req, true) }

// groupLog is group_sync (entries after a seq: catching up from the
// cursor) and group_history (entries before a seq, paging back).
func (s *session) groupLog(req *protocol.Request, back bool) {
	gs, ctx, done, ok := s.groupsStore()
	if !ok {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	defer done()
	id, err := groupID(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	key := "after"
	if back {
		key = "before"
	}
	at, has, err := req.Int(key)
	if err == nil && (at < 0 || !back && !has) {
		err = protocol.Errorf(protocol.CodeBadRequest, key+" must be a seq (0 or more)")
	}
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	limit, err := pageLimit(req, groupPageDefault, groupPageMax)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	s.waitInflight() // includes this connection's earlier sends and acks
	var after, before int64
	if back {
		before = at
		if before == 0 {
			before = 1<<63 - 1
		}
	} else {
		after = at
	}
	es, more, serr := gs.Log(ctx, id, s.user, after, before, limit)
	if serr != nil {
		s.groupFailed(req.ID, "log", serr)
		return
	}
	s.entries(req.ID, es, more)
}

func (s *session) groupList(req *protocol.Request) {
	gs, ctx, done, ok := s.groupsStore()
	if !ok {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	defer done()
	s.waitInflight()
	ugs, serr := gs.UserGroups(ctx, s.user)
	if serr != nil {
		s.groupFailed(req.ID, "user_groups", serr)
		return
	}
	buf := []byte{'['}
	for _, g := range ugs {
		o := protocol.StartObject(buf).Str("group", groupIDString(g.ID)).Str("name", g.Name).Str("role", string(g.Role)).
			Int("members", int64(g.Members)).Int("last_seq", g.LastSeq).Int("read_seq", g.ReadSeq).
			Int("unread", g.Unread).Int("mentions", g.Mentions)
		buf = append(o.Close(), ',')
	}
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Raw("groups", closeArray(buf)).End())
}

func (s *session) groupInfo(req *protocol.Request) {
	gs, ctx, done, ok := s.groupsStore()
	if !ok {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	defer done()
	id, err := groupID(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	gi, serr := gs.Group(ctx, id)
	if serr == nil && gi.Dissolved {
		serr = plugins.ErrNoGroup
	}
	if serr != nil {
		s.groupFailed(req.ID, "group", serr)
		return
	}
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Str("group", groupIDString(gi.ID)).Str("name", gi.Name).
		Str("owner", gi.Owner).Str("policy", string(gi.Policy)).Str("history", string(gi.History)).
		Bool("mute_all", gi.MuteAll).Int("members", int64(gi.Members)).Int("last_seq", gi.LastSeq).End())
}

func (s *session) groupMembers(req *protocol.Request) {
	gs, ctx, done, ok := s.groupsStore()
	if !ok {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	defer done()
	id, err := groupID(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	after, _, err := req.String("after")
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	limit, err := pageLimit(req, memberPageMax, memberPageMax)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	ms, more, serr := gs.Members(ctx, id, after, limit)
	if serr != nil {
		s.groupFailed(req.ID, "members", serr)
		return
	}
	buf := []byte{'['}
	for _, m := range ms {
		o := protocol.StartObject(buf).Str("user", m.User).Str("role", string(m.Role))
		if m.MutedUntil > time.Now().UnixMilli() {
			o = o.Int("muted_until", m.MutedUntil)
		}
		buf = append(o.Close(), ',')
	}
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Raw("members", closeArray(buf)).Bool("more", more).End())
}

func (s *session) groupRequests(req *protocol.Request) {
	gs, ctx, done, ok := s.groupsStore()
	if !ok {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	defer done()
	id, err := groupID(req)
	if err != nil {
		s.replyErr(req.ID, err)
		return
	}
	// Admins only: the storage's member record says who is.
	ms, _, serr := gs.Members(ctx, id, "", memberPageMax)
	if serr == nil {
		serr = plugins.ErrNotMember
		for _, m := range ms {
			if m.User == s.user {
				serr = nil
				if m.Role == plugins.RoleMember {
					serr = plugins.ErrNotAllowed
				}
			}
		}
	}
	var rs []plugins.JoinRequest
	if serr == nil {
		rs, serr = gs.JoinRequests(ctx, id)
	}
	if serr != nil {
		s.groupFailed(req.ID, "join_requests", serr)
		return
	}
	buf := []byte{'['}
	for _, r := range rs {
		buf = append(protocol.StartObject(buf).Str("user", r.User).Int("ts", r.TS).Close(), ',')
	}
	s.reply(protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID).Raw("requests", closeArray(buf)).End())
}

// groupOpFields are what each operation reads from its request, besides
// group.
var groupOpFields = map[protocol.Type]plugins.GroupOpKind{
	protocol.TypeGroupJoin:     plugins.OpJoin,
	protocol.TypeGroupInvite:   plugins.OpInvite,
	protocol.TypeGroupApprove:  plugins.OpApprove,
	protocol.TypeGroupReject:   plugins.OpReject,
	protocol.TypeGroupLeave:    plugins.OpLeave,
	protocol.TypeGroupKick:     plugins.OpKick,
	protocol.TypeGroupRole:     plugins.OpRole,
	protocol.TypeGroupTransfer: plugins.OpTransfer,
	protocol.TypeGroupRename:   plugins.OpRename,
	protocol.TypeGroupMute:     plugins.OpMute,
	protocol.TypeGroupMuteAll:  plugins.OpMuteAll,
	protocol.TypeGroupSettings: plugins.OpSettings,
	protocol.TypeGroupDissolve: plugins.OpDissolve,
}

// readGroupOp reads an operation's fields from req.
func (s *session) readGroupOp(req *protocol.Request, kind plugins.GroupOpKind) (plugins.GroupOp, *protocol.Error) {
	op := plugins.GroupOp{Kind: kind, Actor: s.user, TS: time.Now().UnixMilli(), Limits: s.srv.groupLimits()}
	var err *protocol.Error
	if op.Group, err = groupID(req); err != nil {
		return op, err
	}
	switch kind {
	case plugins.OpInvite, plugins.OpApprove, plugins.OpReject, plugins.OpKick, plugins.OpRole, plugins.OpTransfer, plugins.OpMute:
		if op.Target, err = req.RequiredString("user"); err != nil {
			return op, err
		}
		if !protocol.ValidUser(op.Target) {
			return op, protocol.Errorf(protocol.CodeBadRequest, "user is not a valid user name")
		}
	}
	switch kind {
	case plugins.OpRole:
		r, err := req.RequiredString("role")
		if err != nil {
			return op, err
		}
		if op.Role = plugins.GroupRole(r); op.Role != plugins.RoleAdmin && op.Role != plugins.RoleMember {
			return op, protocol.Errorf(protocol.CodeBadRequest, "role must be admin or member")
		}
	case plugins.OpRename:
		if op.Name, err = groupName(req); err != nil {
			return op, err
		}
	case plugins.OpMute:
		secs, ok, err := req.Int("seconds")
		if err == nil && (!ok || secs < 0 || secs > 366*24*3600) {
			err = protocol.Errorf(protocol.CodeBadRequest, "seconds must be 0 (unmute) to a year")
		}
		if err != nil {
			return op, err
		}
		if secs > 0 {
			op.Until = op.TS + secs*1000
		}
	case plugins.OpMuteAll:
		v, ok := req.Bool("on")
		if !ok {
			return op, protocol.Errorf(protocol.CodeBadRequest, "on must be true or false")
		}
		op.On = v
	case plugins.OpSettings:
		p, hasP, err := req.String("policy")
		if err != nil {
			return op, err
		}
		h, hasH, err := req.String("history")
		if err != nil {
			return op, err
		}
		if !hasP && !hasH {
			return op, protocol.Errorf(protocol.CodeBadRequest, "policy or history is required")
		}
		op.Policy, op.History = plugins.GroupPolicy(p), plugins.GroupHistory(h)
		if hasP && op.Policy != plugins.PolicyOpen && op.Policy != plugins.PolicyApproval && op.Policy != plugins.PolicyInvite {
			return op, protocol.Errorf(protocol.CodeBadRequest, "policy must be open, approval or invite")
		}
		if hasH && op.History != plugins.HistoryJoined && op.History != plugins.HistoryShared {
			return op, protocol.Errorf(protocol.CodeBadRequest, "history must be joined or shared")
		}
	}
	return op, nil
}

// groupOp runs a membership or settings operation: under the group's
// lock, storage applies it (checking the actor's rights) and appends its
// entry; the entry is pushed to the members who see it, and then applied
// to the daemon's view of the group.
func (s *session) groupOp(req *protocol.Request) {
	gs, ctx, done, ok := s.groupsStore()
	if !ok {
		s.replyErr(req.ID, errNoGroups)
		return
	}
	defer done()
	op, perr := s.readGroupOp(req, groupOpFields[req.Type])
	if perr != nil {
		s.replyErr(req.ID, perr)
		return
	}
	s.waitInflight() // after this connection's earlier group sends
	var res plugins.GroupOpResult
	err := s.srv.groupCache.Do(op.Group, s.srv.loadGroup(gs), func(g *groups.Group) error {
		var err error
		if res, err = gs.GroupOp(ctx, op); err != nil {
			return err
		}
		if e := res.Entry; e != nil {
			// Not to the asking connection: its ok carries the seq.
			s.srv.deliver(gs, g, e, route.AllEpochs, s)
		}
		return nil
	})
	s.srv.m.groupOps.Inc()
	if err != nil {
		s.groupFailed(req.ID, "group_op", err)
		return
	}
	f := protocol.StartFrame(nil, protocol.TypeOK).ID(req.ID)
	switch {
	case res.Requested:
		f = f.Str("status", "requested")
		s.srv.notifyJoinRequest(gs, op.Group, s.user)
	case res.Entry != nil:
		f = f.Int("seq", res.Entry.Seq)
		if op.Kind == plugins.OpJoin {
			f = f.Str("status", "joined")
		}
	}
	s.reply(f.End())
}

// notifyJoinRequest tells the group's admins and owner online that user
// asks to join.
func (srv *Server) notifyJoinRequest(gs plugins.Groups, id int64, user string) {
	frame := protocol.StartFrame(nil, protocol.TypeGroupJoinRequest).Str("group", groupIDString(id)).Str("user", user).End()
	srv.groupCache.Do(id, srv.loadGroup(gs), func(g *groups.Group) error {
		for u, m := range g.Members {
			if m.Role != string(plugins.RoleMember) {
				srv.pushTo(u, frame)
			}
		}
		return nil
	})
}
