package pebblestore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/qqchat/qq/plugins"
)

var _ plugins.Groups = (*Store)(nil)

// Key prefixes of groups (see keys.go and the package documentation).
const (
	pGroup      = 'g' // g<id>: groupRecord
	pEntry      = 'e' // e<id><seq>: a log entry
	pMember     = 'n' // n<id><user>: memberRecord, former members' too
	pUserGroup  = 'U' // U<lp user><id>: empty, the groups user belongs to now
	pGCursor    = 'k' // k<lp user><id>: cursorRecord of a current member
	pMention    = 'K' // K<lp user><id><seq>: empty, a named mention after the cursor
	pAllMention = 'A' // A<id><seq>: empty, a message that mentions all
	pJoinReq    = 'q' // q<id><user>: joinRequestRecord
	pJoinReqU   = 'Q' // Q<lp user><id>: empty, the reverse index of q
)

// refGroup marks a de-duplication key of a group message: 'g', the
// group id and the entry's seq.
const refGroup = 'g'

// mentionAll is the mention that names every member.
const mentionAll = "all"

func groupKey(id int64) []byte { return appendSeq([]byte{pGroup}, uint64(id)) }

func entryKey(id, seq int64) []byte {
	return appendSeq(appendSeq([]byte{pEntry}, uint64(id)), uint64(seq))
}

func memberKey(id int64, user string) []byte {
	return append(appendSeq([]byte{pMember}, uint64(id)), user...)
}

// userGroupKey is <prefix><lp user><id>: U, k and Q keys.
func userGroupKey(prefix byte, user string, id int64) []byte {
	return appendSeq(lpPrefix(prefix, user), uint64(id))
}

func mentionKey(user string, id, seq int64) []byte {
	return appendSeq(userGroupKey(pMention, user, id), uint64(seq))
}

func joinReqKey(id int64, user string) []byte {
	return append(appendSeq([]byte{pJoinReq}, uint64(id)), user...)
}

// groupRecord is the value of g<id>.
type groupRecord struct {
	id              int64
	name, owner     string
	policy          plugins.GroupPolicy
	history         plugins.GroupHistory
	muteAll         bool
	members         int64
	lastSeq, lastTS int64
	dissolved       bool
	// created is when the group was created (unix ms, the store's
	// clock); 0 in a record written before it was kept.
	created int64
}

func flag(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (g *groupRecord) append(b []byte) []byte {
	b = appendString(b, g.name)
	b = appendString(b, g.owner)
	b = appendString(b, string(g.policy))
	b = appendString(b, string(g.history))
	b = append(b, flag(g.muteAll), flag(g.dissolved))
	b = binary.AppendVarint(b, g.members)
	b = binary.AppendVarint(b, g.lastSeq)
	b = binary.AppendVarint(b, g.lastTS)
	return binary.AppendVarint(b, g.created)
}

func decodeGroup(id int64, v []byte) (*groupRecord, error) {
	r := reader{b: v}
	g := &groupRecord{id: id, name: r.string(), owner: r.string(), policy: plugins.GroupPolicy(r.string()), history: plugins.GroupHistory(r.string())}
	g.muteAll, g.dissolved = r.byte() == 1, r.byte() == 1
	g.members, g.lastSeq, g.lastTS = r.varint(), r.varint(), r.varint()
	if r.err == nil && len(r.b) > 0 {
		g.created = r.varint()
	}
	if r.err != nil {
		return nil, fmt.Errorf("group %d record: %w", id, r.err)
	}
	return g, nil
}

func (g *groupRecord) info() plugins.GroupInfo {
	return plugins.GroupInfo{
		ID: g.id, Name: g.name, Owner: g.owner, Policy: g.policy, History: g.history,
		MuteAll: g.muteAll, Members: int(g.members), LastSeq: g.lastSeq, Dissolved: g.dissolved,
	}
}

// memberRecord is the value of n<id><user>. leftSeq is 0 while the user
// is a member, else the seq of the entry that removed them.
type memberRecord struct {
	role       plugins.GroupRole
	joinSeq    int64
	leftSeq    int64
	mutedUntil int64
}

func (m *memberRecord) current() bool { return m.leftSeq == 0 }

func (m *memberRecord) admin() bool {
	return m.role == plugins.RoleAdmin || m.role == plugins.RoleOwner
}

func (m *memberRecord) append(b []byte) []byte {
	b = appendString(b, string(m.role))
	b = binary.AppendVarint(b, m.joinSeq)
	b = binary.AppendVarint(b, m.leftSeq)
	return binary.AppendVarint(b, m.mutedUntil)
}

func decodeMember(v []byte) (*memberRecord, error) {
	r := reader{b: v}
	m := &memberRecord{role: plugins.GroupRole(r.string()), joinSeq: r.varint(), leftSeq: r.varint(), mutedUntil: r.varint()}
	if r.err != nil {
		return nil, fmt.Errorf("member record: %w", r.err)
	}
	return m, nil
}

// cursorRecord is the value of k<lp user><id>: the read position and how
// many K (named mention) keys follow it.
type cursorRecord struct {
	readSeq, mentions int64
}

func (c cursorRecord) append(b []byte) []byte {
	return binary.AppendVarint(binary.AppendVarint(b, c.readSeq), c.mentions)
}

func decodeCursor(v []byte) (cursorRecord, error) {
	r := reader{b: v}
	c := cursorRecord{readSeq: r.varint(), mentions: r.varint()}
	if r.err != nil {
		return cursorRecord{}, fmt.Errorf("cursor record: %w", r.err)
	}
	return c, nil
}

// appendEntryRecord encodes a log entry (without its group and seq, which
// are its key).
func appendEntryRecord(b []byte, e *plugins.GroupEntry) []byte {
	b = appendString(b, string(e.Kind))
	b = binary.AppendVarint(b, e.TS)
	b = appendString(b, e.From)
	b = appendString(b, e.Body)
	b = binary.AppendUvarint(b, uint64(len(e.Mentions)))
	for _, m := range e.Mentions {
		b = appendString(b, m)
	}
	b = appendString(b, e.Actor)
	b = appendString(b, e.Target)
	b = appendString(b, e.Name)
	b = appendString(b, string(e.Role))
	b = binary.AppendVarint(b, e.Until)
	b = append(b, flag(e.On))
	b = appendString(b, string(e.Policy))
	b = appendString(b, string(e.History))
	b = appendString(b, e.MsgID)
	return appendString(b, e.CID)
}

func decodeEntry(id, seq int64, v []byte) (plugins.GroupEntry, error) {
	r := reader{b: v}
	e := plugins.GroupEntry{Group: id, Seq: seq, Kind: plugins.EntryKind(r.string()), TS: r.varint(), From: r.string(), Body: r.string()}
	if n := r.uvarint(); n > 0 && n <= uint64(len(r.b)) {
		e.Mentions = make([]string, n)
		for i := range e.Mentions {
			e.Mentions[i] = r.string()
		}
	}
	e.Actor, e.Target, e.Name, e.Role = r.string(), r.string(), r.string(), plugins.GroupRole(r.string())
	e.Until, e.On = r.varint(), r.byte() == 1
	e.Policy, e.History = plugins.GroupPolicy(r.string()), plugins.GroupHistory(r.string())
	e.MsgID, e.CID = r.string(), r.string()
	if r.err != nil {
		return plugins.GroupEntry{}, fmt.Errorf("entry %d of group %d: %w", seq, id, r.err)
	}
	return e, nil
}

// joinRequestRecord is the value of q<id><user>: when, and an order for
// requests of the same millisecond.
func appendJoinRequest(ts int64, seq uint64) []byte {
	return appendSeq(appendSeq(nil, uint64(ts)), seq)
}

// ---- reading helpers (a snapshot, or the writer's indexed batch) --------

func readGroup(r pebble.Reader, id int64) (*groupRecord, error) {
	v, err := get(r, groupKey(id))
	if err != nil || v == nil {
		return nil, err
	}
	return decodeGroup(id, v)
}

func readMember(r pebble.Reader, id int64, user string) (*memberRecord, error) {
	v, err := get(r, memberKey(id, user))
	if err != nil || v == nil {
		return nil, err
	}
	return decodeMember(v)
}

func readCursor(r pebble.Reader, user string, id int64) (*cursorRecord, error) {
	v, err := get(r, userGroupKey(pGCursor, user, id))
	if err != nil || v == nil {
		return nil, err
	}
	c, err := decodeCursor(v)
	return &c, err
}

func readEntry(r pebble.Reader, id, seq int64) (plugins.GroupEntry, error) {
	v, err := get(r, entryKey(id, seq))
	if err != nil {
		return plugins.GroupEntry{}, err
	}
	if v == nil {
		return plugins.GroupEntry{}, fmt.Errorf("entry %d of group %d: missing", seq, id)
	}
	return decodeEntry(id, seq, v)
}

// userGroupIDs lists the ids of the groups user belongs to now.
func userGroupIDs(r pebble.Reader, user string) ([]int64, error) {
	var ids []int64
	err := scan(r, lpPrefix(pUserGroup, user), func(k, _ []byte) error {
		ids = append(ids, int64(seqSuffix(k)))
		return nil
	})
	return ids, err
}

// ---- writing ------------------------------------------------------------

// gtx is a group write: the writer's indexed batch (reads see its own
// writes) and the groups it changed, stored by flush.
type gtx struct {
	s      *Store
	b      *pebble.Batch
	groups map[int64]*groupRecord
	dirty  map[int64]bool
}

func (s *Store) newGtx(b *pebble.Batch) *gtx {
	return &gtx{s: s, b: b, groups: make(map[int64]*groupRecord), dirty: make(map[int64]bool)}
}

// group reads group id (nil when it never was), once per gtx.
func (t *gtx) group(id int64) (*groupRecord, error) {
	if g, ok := t.groups[id]; ok {
		return g, nil
	}
	g, err := readGroup(t.b, id)
	if err != nil {
		return nil, fmt.Errorf("look up group: %w", err)
	}
	t.groups[id] = g
	return g, nil
}

// flush stores the changed groups.
func (t *gtx) flush() error {
	for id := range t.dirty {
		if err := t.b.Set(groupKey(id), t.groups[id].append(nil), nil); err != nil {
			return err
		}
	}
	clear(t.dirty)
	return nil
}

func (t *gtx) putMember(id int64, user string, m *memberRecord) error {
	return t.b.Set(memberKey(id, user), m.append(nil), nil)
}

// currentMember reads user's record of group id, or fails with
// ErrNotMember when they are not a member now.
func (t *gtx) currentMember(id int64, user string) (*memberRecord, error) {
	m, err := readMember(t.b, id, user)
	if err != nil {
		return nil, fmt.Errorf("look up member: %w", err)
	}
	if m == nil || !m.current() {
		return nil, fmt.Errorf("group %d: %q: %w", id, user, plugins.ErrNotMember)
	}
	return m, nil
}

// notMember fails with ErrAlreadyMember when user is a member of group id
// now.
func (t *gtx) notMember(id int64, user string) error {
	m, err := readMember(t.b, id, user)
	if err != nil {
		return fmt.Errorf("look up member: %w", err)
	}
	if m != nil && m.current() {
		return fmt.Errorf("group %d: %q: %w", id, user, plugins.ErrAlreadyMember)
	}
	return nil
}

// room fails when user may not join g: ErrGroupFull at limits.MaxMembers,
// ErrGroupLimit at the user's MaxJoined.
func (t *gtx) room(g *groupRecord, user string, limits plugins.GroupLimits) error {
	if limits.MaxMembers > 0 && g.members >= int64(limits.MaxMembers) {
		return fmt.Errorf("group %d has %d members: %w", g.id, g.members, plugins.ErrGroupFull)
	}
	return t.canJoin(user, limits)
}

// canJoin fails with ErrGroupLimit when user belongs to limits.MaxJoined
// groups.
func (t *gtx) canJoin(user string, limits plugins.GroupLimits) error {
	if limits.MaxJoined <= 0 {
		return nil
	}
	ids, err := userGroupIDs(t.b, user)
	if err != nil {
		return fmt.Errorf("count groups: %w", err)
	}
	if len(ids) >= limits.MaxJoined {
		return fmt.Errorf("%q belongs to %d groups: %w", user, len(ids), plugins.ErrGroupLimit)
	}
	return nil
}

// canOwn fails with ErrGroupLimit when user owns limits.MaxOwned live
// groups (an owner always belongs to their group).
func (t *gtx) canOwn(user string, limits plugins.GroupLimits) error {
	if limits.MaxOwned <= 0 {
		return nil
	}
	ids, err := userGroupIDs(t.b, user)
	if err != nil {
		return fmt.Errorf("count owned groups: %w", err)
	}
	n := 0
	for _, id := range ids {
		g, err := t.group(id)
		if err != nil {
			return err
		}
		if g != nil && g.owner == user && !g.dissolved {
			n++
		}
	}
	if n >= limits.MaxOwned {
		return fmt.Errorf("%q owns %d groups: %w", user, n, plugins.ErrGroupLimit)
	}
	return nil
}

// appendEntry appends e to g's log: e gets the next seq and a timestamp
// no earlier than the log's last.
func (t *gtx) appendEntry(g *groupRecord, e *plugins.GroupEntry) error {
	e.Group, e.Seq, e.TS = g.id, g.lastSeq+1, max(e.TS, g.lastTS)
	if err := t.b.Set(entryKey(g.id, e.Seq), appendEntryRecord(nil, e), nil); err != nil {
		return fmt.Errorf("append %s entry: %w", e.Kind, err)
	}
	g.lastSeq, g.lastTS = e.Seq, e.TS
	t.dirty[g.id] = true
	return nil
}

// addMember makes user a member of g with role, since its entry joinSeq,
// with a cursor just before that entry. A former member's record is
// reused (its mute stays).
func (t *gtx) addMember(g *groupRecord, user string, role plugins.GroupRole, joinSeq int64) error {
	m, err := readMember(t.b, g.id, user)
	if err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	if m == nil {
		m = &memberRecord{}
	}
	m.role, m.joinSeq, m.leftSeq = role, joinSeq, 0
	if err := t.putMember(g.id, user, m); err != nil {
		return err
	}
	if err := t.b.Set(userGroupKey(pUserGroup, user, g.id), nil, nil); err != nil {
		return err
	}
	c, err := readCursor(t.b, user, g.id)
	if err != nil {
		return fmt.Errorf("add cursor: %w", err)
	}
	if c == nil {
		c = &cursorRecord{}
	}
	c.readSeq = max(c.readSeq, joinSeq-1)
	if err := t.b.Set(userGroupKey(pGCursor, user, g.id), c.append(nil), nil); err != nil {
		return err
	}
	g.members++
	t.dirty[g.id] = true
	return nil
}

// dropCursor removes user's cursor of group id and their mentions there.
func (t *gtx) dropCursor(user string, id int64) error {
	if err := t.b.Delete(userGroupKey(pGCursor, user, id), nil); err != nil {
		return err
	}
	return t.b.DeleteRange(userGroupKey(pMention, user, id), prefixEnd(userGroupKey(pMention, user, id)), nil)
}

// removeMember ends user's membership of g at entry seq and drops their
// cursor and mentions.
func (t *gtx) removeMember(g *groupRecord, user string, seq int64) error {
	m, err := t.currentMember(g.id, user)
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	m.leftSeq = seq
	if err := t.putMember(g.id, user, m); err != nil {
		return err
	}
	if err := t.b.Delete(userGroupKey(pUserGroup, user, g.id), nil); err != nil {
		return err
	}
	if err := t.dropCursor(user, g.id); err != nil {
		return err
	}
	g.members--
	t.dirty[g.id] = true
	return nil
}

// setRole sets the role of user (a current member) in group id.
func (t *gtx) setRole(id int64, user string, role plugins.GroupRole) error {
	m, err := t.currentMember(id, user)
	if err != nil {
		return err
	}
	m.role = role
	return t.putMember(id, user, m)
}

// transfer makes to the owner of g, and from (the owner) an admin.
func (t *gtx) transfer(g *groupRecord, from, to string) error {
	if err := t.setRole(g.id, from, plugins.RoleAdmin); err != nil {
		return err
	}
	if err := t.setRole(g.id, to, plugins.RoleOwner); err != nil {
		return err
	}
	g.owner = to
	t.dirty[g.id] = true
	return nil
}

// members lists the current members of group id, by name.
func (t *gtx) members(id int64) ([]string, []*memberRecord, error) {
	var names []string
	var recs []*memberRecord
	prefix := appendSeq([]byte{pMember}, uint64(id))
	err := scan(t.b, prefix, func(k, v []byte) error {
		m, err := decodeMember(v)
		if err != nil {
			return err
		}
		if m.current() {
			names = append(names, string(k[len(prefix):]))
			recs = append(recs, m)
		}
		return nil
	})
	return names, recs, err
}

// dropJoinRequest removes user's request to join group id, reporting
// whether there was one.
func (t *gtx) dropJoinRequest(id int64, user string) (bool, error) {
	ok, err := has(t.b, joinReqKey(id, user))
	if err != nil || !ok {
		return false, err
	}
	if err := t.b.Delete(joinReqKey(id, user), nil); err != nil {
		return false, err
	}
	return true, t.b.Delete(userGroupKey(pJoinReqU, user, id), nil)
}

// dissolve ends g at its dissolved entry seq: every member is removed at
// seq (without entries of their own), their cursors and mentions and the
// pending requests dropped.
func (t *gtx) dissolve(g *groupRecord, seq int64) error {
	names, recs, err := t.members(g.id)
	if err != nil {
		return fmt.Errorf("dissolve: %w", err)
	}
	for i, name := range names {
		recs[i].leftSeq = seq
		if err := t.putMember(g.id, name, recs[i]); err != nil {
			return err
		}
		if err := t.b.Delete(userGroupKey(pUserGroup, name, g.id), nil); err != nil {
			return err
		}
		if err := t.dropCursor(name, g.id); err != nil {
			return err
		}
	}
	prefix := appendSeq([]byte{pJoinReq}, uint64(g.id))
	var requesters []string
	if err := scan(t.b, prefix, func(k, _ []byte) error {
		requesters = append(requesters, string(k[len(prefix):]))
		return nil
	}); err != nil {
		return fmt.Errorf("dissolve: %w", err)
	}
	for _, u := range requesters {
		if _, err := t.dropJoinRequest(g.id, u); err != nil {
			return err
		}
	}
	g.members, g.dissolved = 0, true
	t.dirty[g.id] = true
	return nil
}

// passMentions drops user's named mentions in group id up to seq, which
// their cursor passed, and recounts the rest into c.
func (t *gtx) passMentions(user string, id, seq int64, c *cursorRecord) error {
	prefix := userGroupKey(pMention, user, id)
	if err := t.b.DeleteRange(prefix, appendSeq(bytes.Clone(prefix), uint64(seq)+1), nil); err != nil {
		return err
	}
	var n int64
	if err := scan(t.b, prefix, func([]byte, []byte) error { n++; return nil }); err != nil {
		return fmt.Errorf("pass mentions: %w", err)
	}
	c.mentions = n
	return nil
}

// groupWriting runs fn on a gtx over an indexed batch, under s.wmu, and
// commits durably unless fn fails.
func (s *Store) groupWriting(ctx context.Context, what string, fn func(t *gtx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writable(ctx); err != nil {
		return fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	t := s.newGtx(b)
	if err := fn(t); err != nil {
		return fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	if b.Empty() {
		return nil
	}
	if _, err := s.commit(ctx, b, s.syncOpt, nil); err != nil {
		return fmt.Errorf("pebblestore: %s: commit: %w", what, err)
	}
	return nil
}

// ---- operations ---------------------------------------------------------

// checkSettings refuses a policy or history that is not one of the
// contract's.
func checkSettings(policy plugins.GroupPolicy, history plugins.GroupHistory) error {
	switch policy {
	case plugins.PolicyOpen, plugins.PolicyApproval, plugins.PolicyInvite:
	default:
		return fmt.Errorf("policy %q: want open, approval or invite", policy)
	}
	switch history {
	case plugins.HistoryJoined, plugins.HistoryShared:
	default:
		return fmt.Errorf("history %q: want joined or shared", history)
	}
	return nil
}

// orDefault is v, or def when v is empty.
func orDefault[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

// CreateGroup implements plugins.Groups.
func (s *Store) CreateGroup(ctx context.Context, owner, name string, policy plugins.GroupPolicy, history plugins.GroupHistory, ts int64, limits plugins.GroupLimits) (plugins.GroupInfo, error) {
	var info plugins.GroupInfo
	err := s.groupWriting(ctx, "create group", func(t *gtx) error {
		if err := s.roomForData(); err != nil {
			return err
		}
		if err := s.live(owner); err != nil {
			return err
		}
		policy, history := orDefault(policy, plugins.PolicyApproval), orDefault(history, plugins.HistoryJoined)
		if err := checkSettings(policy, history); err != nil {
			return err
		}
		if err := t.canOwn(owner, limits); err != nil {
			return err
		}
		if err := t.canJoin(owner, limits); err != nil {
			return err
		}
		// The id advances even if the commit fails: ids are never reused.
		s.lastGroup++
		g := &groupRecord{id: s.lastGroup, name: name, owner: owner, policy: policy, history: history, lastTS: ts, created: s.now().UnixMilli()}
		t.groups[g.id] = g
		e := plugins.GroupEntry{Kind: plugins.EntryCreated, TS: ts, Actor: owner, Name: name}
		if err := t.appendEntry(g, &e); err != nil {
			return err
		}
		if err := t.addMember(g, owner, plugins.RoleOwner, e.Seq); err != nil {
			return err
		}
		info = g.info()
		return nil
	})
	return info, err
}

// GroupOp implements plugins.Groups.
func (s *Store) GroupOp(ctx context.Context, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	var res plugins.GroupOpResult
	err := s.groupWriting(ctx, "group "+string(op.Kind), func(t *gtx) error {
		g, err := t.group(op.Group)
		if err != nil {
			return err
		}
		if g == nil || g.dissolved {
			return fmt.Errorf("group %d: %w", op.Group, plugins.ErrNoGroup)
		}
		res, err = s.groupOp(t, g, op)
		return err
	})
	if err != nil {
		return plugins.GroupOpResult{}, err
	}
	return res, nil
}

// groupOp applies op to the live group g, as sqlitestore does.
func (s *Store) groupOp(t *gtx, g *groupRecord, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	e := plugins.GroupEntry{TS: op.TS, Actor: op.Actor, Target: op.Target}
	if op.Kind == plugins.OpJoin {
		return s.join(t, g, op)
	}
	actor, err := t.currentMember(g.id, op.Actor)
	if err != nil {
		return plugins.GroupOpResult{}, err
	}
	notAllowed := func(why string) (plugins.GroupOpResult, error) {
		return plugins.GroupOpResult{}, fmt.Errorf("group %d: %s %s: %s: %w", g.id, actor.role, op.Actor, why, plugins.ErrNotAllowed)
	}
	isOwner := actor.role == plugins.RoleOwner
	if !actor.admin() && op.Kind != plugins.OpLeave {
		return notAllowed("only admins and the owner may " + string(op.Kind))
	}
	if !isOwner && (op.Kind == plugins.OpRole || op.Kind == plugins.OpTransfer || op.Kind == plugins.OpSettings || op.Kind == plugins.OpDissolve) {
		return notAllowed("only the owner may " + string(op.Kind))
	}
	switch op.Kind {
	case plugins.OpInvite:
		if err := s.live(op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if err := t.notMember(g.id, op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if err := t.room(g, op.Target, op.Limits); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if _, err := t.dropJoinRequest(g.id, op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		e.Kind = plugins.EntryJoined
		if err := t.appendEntry(g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, t.addMember(g, op.Target, plugins.RoleMember, e.Seq)

	case plugins.OpApprove, plugins.OpReject:
		found, err := t.dropJoinRequest(g.id, op.Target)
		if err != nil {
			return plugins.GroupOpResult{}, err
		}
		if !found {
			return plugins.GroupOpResult{}, fmt.Errorf("group %d: request of %q to join: %w", g.id, op.Target, plugins.ErrNoRequest)
		}
		if op.Kind == plugins.OpReject {
			return plugins.GroupOpResult{}, nil
		}
		// A pending request means the user is live and not a member:
		// DeleteUser and every way of joining drop requests.
		if err := t.room(g, op.Target, op.Limits); err != nil {
			return plugins.GroupOpResult{}, err
		}
		e.Kind = plugins.EntryJoined
		if err := t.appendEntry(g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, t.addMember(g, op.Target, plugins.RoleMember, e.Seq)

	case plugins.OpLeave:
		if isOwner {
			return notAllowed("the owner must transfer the group before leaving")
		}
		e = plugins.GroupEntry{Kind: plugins.EntryLeft, TS: op.TS, Target: op.Actor}
		if err := t.appendEntry(g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, t.removeMember(g, op.Actor, e.Seq)

	case plugins.OpKick, plugins.OpRole, plugins.OpTransfer, plugins.OpMute:
		if op.Target == op.Actor {
			return notAllowed(string(op.Kind) + " of oneself")
		}
		if op.Kind == plugins.OpRole && op.Role != plugins.RoleAdmin && op.Role != plugins.RoleMember {
			if op.Role == plugins.RoleOwner {
				return notAllowed("the owner is made by transfer")
			}
			return plugins.GroupOpResult{}, fmt.Errorf("role %q: want admin or member", op.Role)
		}
		target, err := t.currentMember(g.id, op.Target)
		if err != nil {
			return plugins.GroupOpResult{}, err
		}
		if target.role == plugins.RoleOwner || target.role == plugins.RoleAdmin && !isOwner {
			return notAllowed(fmt.Sprintf("%s of %s %s", op.Kind, target.role, op.Target))
		}
		switch op.Kind {
		case plugins.OpKick:
			e = plugins.GroupEntry{Kind: plugins.EntryKicked, TS: op.TS, Actor: op.Actor, Target: op.Target}
			if err := t.appendEntry(g, &e); err != nil {
				return plugins.GroupOpResult{}, err
			}
			return plugins.GroupOpResult{Entry: &e}, t.removeMember(g, op.Target, e.Seq)
		case plugins.OpRole:
			e.Kind, e.Role = plugins.EntryRole, op.Role
			target.role = op.Role
			if err := t.putMember(g.id, op.Target, target); err != nil {
				return plugins.GroupOpResult{}, err
			}
		case plugins.OpTransfer:
			if err := t.canOwn(op.Target, op.Limits); err != nil {
				return plugins.GroupOpResult{}, err
			}
			e.Kind = plugins.EntryOwner
			if err := t.transfer(g, op.Actor, op.Target); err != nil {
				return plugins.GroupOpResult{}, err
			}
		case plugins.OpMute:
			e.Kind, e.Until = plugins.EntryMuted, max(op.Until, 0)
			target.mutedUntil = e.Until
			if err := t.putMember(g.id, op.Target, target); err != nil {
				return plugins.GroupOpResult{}, err
			}
		}

	case plugins.OpRename:
		e = plugins.GroupEntry{Kind: plugins.EntryRenamed, TS: op.TS, Actor: op.Actor, Name: op.Name}
		g.name = op.Name

	case plugins.OpMuteAll:
		e = plugins.GroupEntry{Kind: plugins.EntryMuteAll, TS: op.TS, Actor: op.Actor, On: op.On}
		g.muteAll = op.On

	case plugins.OpSettings:
		policy, history := orDefault(op.Policy, g.policy), orDefault(op.History, g.history)
		if err := checkSettings(policy, history); err != nil {
			return plugins.GroupOpResult{}, err
		}
		e = plugins.GroupEntry{Kind: plugins.EntrySettings, TS: op.TS, Actor: op.Actor, Policy: policy, History: history}
		g.policy, g.history = policy, history

	case plugins.OpDissolve:
		e = plugins.GroupEntry{Kind: plugins.EntryDissolved, TS: op.TS, Actor: op.Actor}
		if err := t.appendEntry(g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, t.dissolve(g, e.Seq)

	default:
		return plugins.GroupOpResult{}, fmt.Errorf("unknown group operation %q", op.Kind)
	}
	if err := t.appendEntry(g, &e); err != nil {
		return plugins.GroupOpResult{}, err
	}
	return plugins.GroupOpResult{Entry: &e}, nil
}

// join is OpJoin: the actor joins an open group, or asks to join an
// approval group.
func (s *Store) join(t *gtx, g *groupRecord, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	if err := s.live(op.Actor); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if err := t.notMember(g.id, op.Actor); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if g.policy == plugins.PolicyInvite {
		return plugins.GroupOpResult{}, fmt.Errorf("group %d: joins by invitation only: %w", g.id, plugins.ErrNotAllowed)
	}
	if err := t.room(g, op.Actor, op.Limits); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if g.policy == plugins.PolicyApproval {
		ok, err := has(t.b, joinReqKey(g.id, op.Actor))
		if err != nil {
			return plugins.GroupOpResult{}, err
		}
		if !ok { // a repeated request keeps the first
			s.reqSeq++
			if err := t.b.Set(joinReqKey(g.id, op.Actor), appendJoinRequest(op.TS, s.reqSeq), nil); err != nil {
				return plugins.GroupOpResult{}, err
			}
			if err := t.b.Set(userGroupKey(pJoinReqU, op.Actor, g.id), nil, nil); err != nil {
				return plugins.GroupOpResult{}, err
			}
		}
		return plugins.GroupOpResult{Requested: true}, nil
	}
	if _, err := t.dropJoinRequest(g.id, op.Actor); err != nil { // asked before the group opened
		return plugins.GroupOpResult{}, err
	}
	e := plugins.GroupEntry{Kind: plugins.EntryJoined, TS: op.TS, Actor: op.Actor, Target: op.Actor}
	if err := t.appendEntry(g, &e); err != nil {
		return plugins.GroupOpResult{}, err
	}
	return plugins.GroupOpResult{Entry: &e}, t.addMember(g, op.Actor, plugins.RoleMember, e.Seq)
}

// leaveGroups, inside DeleteUser's batch, removes user from every group
// they belong to (see plugins.Groups, "Deleted accounts") and drops
// their cursors, mentions and join requests.
func (s *Store) leaveGroups(t *gtx, user string, ts int64) error {
	ids, err := userGroupIDs(t.b, user)
	if err != nil {
		return err
	}
	for _, id := range ids {
		g, err := t.group(id)
		if err != nil {
			return err
		}
		if g == nil {
			return fmt.Errorf("group %d: missing", id)
		}
		if g.owner == user {
			names, recs, err := t.members(id)
			if err != nil {
				return err
			}
			// The longest-standing admin, else member (names in order
			// break ties).
			next, best := "", (*memberRecord)(nil)
			for i, name := range names {
				if m := recs[i]; name != user && (best == nil || succeeds(m, best)) {
					next, best = name, m
				}
			}
			if best == nil { // the last member
				e := plugins.GroupEntry{Kind: plugins.EntryDissolved, TS: ts, Actor: user}
				if err := t.appendEntry(g, &e); err != nil {
					return err
				}
				if err := t.dissolve(g, e.Seq); err != nil {
					return err
				}
				continue
			}
			e := plugins.GroupEntry{Kind: plugins.EntryOwner, TS: ts, Actor: user, Target: next}
			if err := t.appendEntry(g, &e); err != nil {
				return err
			}
			if err := t.transfer(g, user, next); err != nil {
				return err
			}
		}
		e := plugins.GroupEntry{Kind: plugins.EntryLeft, TS: ts, Target: user}
		if err := t.appendEntry(g, &e); err != nil {
			return err
		}
		if err := t.removeMember(g, user, e.Seq); err != nil {
			return err
		}
	}
	// Cursors and mentions went with the memberships; join requests:
	prefix := lpPrefix(pJoinReqU, user)
	var reqs []int64
	if err := scan(t.b, prefix, func(k, _ []byte) error {
		reqs = append(reqs, int64(seqSuffix(k)))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range reqs {
		if _, err := t.dropJoinRequest(id, user); err != nil {
			return err
		}
	}
	return nil
}

// succeeds reports whether m comes before best as a deleted owner's
// successor: admins first, then the smaller join seq.
func succeeds(m, best *memberRecord) bool {
	if ma, ba := m.role == plugins.RoleAdmin, best.role == plugins.RoleAdmin; ma != ba {
		return ma
	}
	return m.joinSeq < best.joinSeq
}

// ---- group messages in Write ----------------------------------------------

// senderState is what the checks of a group message read about its
// sender, kept for the rest of the batch.
type senderState struct {
	member *memberRecord // nil: not a member
}

type senderKey struct {
	group int64
	user  string
}

// appendGroup adds to t's batch the group messages of a Write (see
// plugins.Groups) and returns their results. Per message it reads the
// group and the sender's membership once per batch, appends one entry
// (and its de-duplication key), moves the sender's cursor and counts
// the named mentions of members: its cost does not depend on how many
// members the group has. The caller holds s.wmu.
func (s *Store) appendGroup(ctx context.Context, t *gtx, msgs []plugins.NewGroupMessage, limits plugins.GroupLimits) ([]plugins.AppendResult, error) {
	results := make([]plugins.AppendResult, len(msgs))
	if len(msgs) == 0 {
		return results, nil
	}
	senders := make(map[senderKey]*senderState)
	sender := func(id int64, user string) (*senderState, error) {
		k := senderKey{id, user}
		if st, ok := senders[k]; ok {
			return st, nil
		}
		m, err := readMember(t.b, id, user)
		if err != nil {
			return nil, fmt.Errorf("look up member: %w", err)
		}
		st := &senderState{}
		if m != nil && m.current() {
			st.member = m
		}
		senders[k] = st
		return st, nil
	}
	batchTS := s.nextTS()
	bucket := s.writeBucket(batchTS)
	lookupBuckets := s.buckets(batchTS)
	for i := range msgs {
		m := &msgs[i]
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		// A retry of a stored message, of either kind, is answered with
		// it whatever the checks say now.
		if m.CID != "" {
			r, found, err := s.findCID(t.b, m.From, m.CID, lookupBuckets)
			if err != nil {
				return nil, err
			}
			if found {
				results[i] = r
				continue
			}
		}
		g, err := t.group(m.Group)
		if err != nil {
			return nil, err
		}
		var st *senderState
		if g != nil && !g.dissolved {
			if st, err = sender(g.id, m.From); err != nil {
				return nil, err
			}
		}
		ts := batchTS
		if m.TS > 0 {
			ts = m.TS
		}
		if g != nil {
			ts = max(ts, g.lastTS)
		}
		all := slices.Contains(m.Mentions, mentionAll)
		var refused error
		switch {
		case g == nil || g.dissolved:
			refused = fmt.Errorf("pebblestore: group %d: %w", m.Group, plugins.ErrNoGroup)
		case st.member == nil:
			refused = fmt.Errorf("pebblestore: group %d: %q: %w", m.Group, m.From, plugins.ErrNotMember)
		case st.member.mutedUntil > ts:
			refused = fmt.Errorf("pebblestore: group %d: %q is muted: %w", m.Group, m.From, plugins.ErrMuted)
		case g.muteAll && st.member.role == plugins.RoleMember:
			refused = fmt.Errorf("pebblestore: group %d is muted for members: %w", m.Group, plugins.ErrMuted)
		case all && st.member.role == plugins.RoleMember:
			refused = fmt.Errorf("pebblestore: group %d: only admins mention all: %w", m.Group, plugins.ErrNotAllowed)
		case limits.MaxMentions > 0 && len(m.Mentions) > limits.MaxMentions:
			refused = fmt.Errorf("pebblestore: %d mentions, more than %d: %w", len(m.Mentions), limits.MaxMentions, plugins.ErrNotAllowed)
		}
		if refused != nil {
			results[i].Err = refused
			continue
		}

		s.lastSeq++
		e := plugins.GroupEntry{
			Kind: plugins.EntryMsg, TS: ts, From: m.From, Body: m.Body,
			Mentions: slices.Clone(m.Mentions), MsgID: msgID(s.lastSeq), CID: m.CID,
		}
		if err := t.appendEntry(g, &e); err != nil {
			return nil, err
		}
		if m.CID != "" {
			ref := appendSeq(appendSeq([]byte{refGroup}, uint64(g.id)), uint64(e.Seq))
			k := dedupKey(bucket, m.From, m.CID)
			s.cids.add(bucket, k[dedupHeaderLen:])
			if err := t.b.Set(k, ref, nil); err != nil {
				return nil, err
			}
		}
		if all {
			if err := t.b.Set(appendSeq(appendSeq([]byte{pAllMention}, uint64(g.id)), uint64(e.Seq)), nil, nil); err != nil {
				return nil, err
			}
		}
		// The sender has read their own message, and every mention of
		// them before it.
		if err := t.moveCursor(m.From, g.id, e.Seq); err != nil {
			return nil, err
		}
		// Named mentions count for members only, once per message, not
		// for the sender; a message to all counts for everyone when
		// UserGroups reads.
		if !all {
			for j, name := range m.Mentions {
				if name == m.From || slices.Contains(m.Mentions[:j], name) {
					continue
				}
				c, err := readCursor(t.b, name, g.id)
				if err != nil {
					return nil, fmt.Errorf("mention: %w", err)
				}
				if c == nil { // not a member
					continue
				}
				c.mentions++
				if err := t.b.Set(mentionKey(name, g.id, e.Seq), nil, nil); err != nil {
					return nil, err
				}
				if err := t.b.Set(userGroupKey(pGCursor, name, g.id), c.append(nil), nil); err != nil {
					return nil, err
				}
			}
		}
		results[i] = plugins.AppendResult{Group: &e}
	}
	return results, t.flush()
}

// moveCursor moves user's cursor of group id forward to seq (not back;
// nothing without a cursor), passing their mentions up to it.
func (t *gtx) moveCursor(user string, id, seq int64) error {
	c, err := readCursor(t.b, user, id)
	if err != nil {
		return fmt.Errorf("move cursor: %w", err)
	}
	if c == nil || c.readSeq >= seq {
		return nil
	}
	c.readSeq = seq
	if c.mentions > 0 {
		if err := t.passMentions(user, id, seq, c); err != nil {
			return err
		}
	}
	return t.b.Set(userGroupKey(pGCursor, user, id), c.append(nil), nil)
}

// ackGroups moves the cursors of acks forward (never back, never past the
// log's end; acks of non-members change nothing).
func (s *Store) ackGroups(ctx context.Context, t *gtx, acks []plugins.GroupAck) error {
	for i, a := range acks {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		g, err := t.group(a.Group)
		if err != nil {
			return err
		}
		if g == nil {
			continue
		}
		if err := t.moveCursor(a.User, a.Group, min(a.Seq, g.lastSeq)); err != nil {
			return fmt.Errorf("group ack: %w", err)
		}
	}
	return nil
}

// lookupGroupRef reads the entry a group message's de-duplication value
// names, as a Duplicate result.
func lookupGroupRef(r pebble.Reader, v []byte) (plugins.AppendResult, error) {
	if len(v) != 17 {
		return plugins.AppendResult{}, fmt.Errorf("de-duplication record: %w", errCorrupt)
	}
	e, err := readEntry(r, int64(seqSuffix(v[1:9])), int64(seqSuffix(v[9:])))
	if err != nil {
		return plugins.AppendResult{}, err
	}
	return plugins.AppendResult{Duplicate: true, Group: &e}, nil
}

// ---- reads ----------------------------------------------------------------

// Group implements plugins.Groups.
func (s *Store) Group(_ context.Context, id int64) (plugins.GroupInfo, error) {
	v, done, err := s.acquire("group")
	if err != nil {
		return plugins.GroupInfo{}, err
	}
	defer done()
	g, err := readGroup(v.snap, id)
	if err != nil {
		return plugins.GroupInfo{}, fmt.Errorf("pebblestore: group: %w", err)
	}
	if g == nil {
		return plugins.GroupInfo{}, fmt.Errorf("pebblestore: group %d: %w", id, plugins.ErrNoGroup)
	}
	return g.info(), nil
}

// UserGroups implements plugins.Groups, on one read view: per group, its
// record, the user's membership and cursor, and the messages to all after
// the cursor.
func (s *Store) UserGroups(_ context.Context, user string) ([]plugins.UserGroup, error) {
	v, done, err := s.acquire("user groups")
	if err != nil {
		return nil, err
	}
	defer done()
	ids, err := userGroupIDs(v.snap, user)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: user groups: %w", err)
	}
	var out []plugins.UserGroup
	for _, id := range ids {
		g, err := readGroup(v.snap, id)
		if err != nil || g == nil {
			return nil, fmt.Errorf("pebblestore: user groups: group %d: %v", id, cmp.Or(err, fmt.Errorf("missing")))
		}
		m, err := readMember(v.snap, id, user)
		if err != nil || m == nil {
			return nil, fmt.Errorf("pebblestore: user groups: member of %d: %v", id, cmp.Or(err, fmt.Errorf("missing")))
		}
		c, err := readCursor(v.snap, user, id)
		if err != nil || c == nil {
			return nil, fmt.Errorf("pebblestore: user groups: cursor of %d: %v", id, cmp.Or(err, fmt.Errorf("missing")))
		}
		prefix := appendSeq([]byte{pAllMention}, uint64(id))
		var toAll int64
		it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: appendSeq(bytes.Clone(prefix), uint64(c.readSeq)+1), UpperBound: prefixEnd(prefix)})
		if err != nil {
			return nil, fmt.Errorf("pebblestore: user groups: %w", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			toAll++
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("pebblestore: user groups: %w", err)
		}
		out = append(out, plugins.UserGroup{
			GroupInfo: g.info(), Role: m.role, JoinSeq: m.joinSeq, ReadSeq: c.readSeq,
			Unread: max(g.lastSeq-c.readSeq, 0), Mentions: c.mentions + toAll,
		})
	}
	return out, nil
}

// Members implements plugins.Groups.
func (s *Store) Members(_ context.Context, id int64, after string, limit int) ([]plugins.Member, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("pebblestore: members: limit %d is not positive", limit)
	}
	v, done, err := s.acquire("members")
	if err != nil {
		return nil, false, err
	}
	defer done()
	g, err := readGroup(v.snap, id)
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: members: %w", err)
	}
	if g == nil {
		return nil, false, fmt.Errorf("pebblestore: members: group %d: %w", id, plugins.ErrNoGroup)
	}
	prefix := appendSeq([]byte{pMember}, uint64(id))
	lower := append(append(bytes.Clone(prefix), after...), 0) // names after after
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: members: %w", err)
	}
	out := make([]plugins.Member, 0, min(limit, maxPrealloc)+1)
	for ok := it.First(); ok && len(out) <= limit; ok = it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, false, fmt.Errorf("pebblestore: members: %w", err)
		}
		m, err := decodeMember(val)
		if err != nil {
			_ = it.Close()
			return nil, false, fmt.Errorf("pebblestore: members: %w", err)
		}
		if m.current() {
			out = append(out, plugins.Member{User: string(it.Key()[len(prefix):]), Role: m.role, JoinSeq: m.joinSeq, MutedUntil: m.mutedUntil})
		}
	}
	if err := it.Close(); err != nil {
		return nil, false, fmt.Errorf("pebblestore: members: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// JoinRequests implements plugins.Groups.
func (s *Store) JoinRequests(_ context.Context, id int64) ([]plugins.JoinRequest, error) {
	v, done, err := s.acquire("join requests")
	if err != nil {
		return nil, err
	}
	defer done()
	g, err := readGroup(v.snap, id)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: join requests: %w", err)
	}
	if g == nil {
		return nil, fmt.Errorf("pebblestore: join requests: group %d: %w", id, plugins.ErrNoGroup)
	}
	type req struct {
		r   plugins.JoinRequest
		seq uint64
	}
	var reqs []req
	prefix := appendSeq([]byte{pJoinReq}, uint64(id))
	if err := scan(v.snap, prefix, func(k, val []byte) error {
		if len(val) != 16 {
			return fmt.Errorf("join request record: %w", errCorrupt)
		}
		reqs = append(reqs, req{plugins.JoinRequest{User: string(k[len(prefix):]), TS: int64(seqSuffix(val[:8]))}, seqSuffix(val[8:])})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("pebblestore: join requests: %w", err)
	}
	slices.SortFunc(reqs, func(a, b req) int { return cmp.Or(cmp.Compare(a.r.TS, b.r.TS), cmp.Compare(a.seq, b.seq)) })
	var out []plugins.JoinRequest
	for _, r := range reqs {
		out = append(out, r.r)
	}
	return out, nil
}

// Log implements plugins.Groups. The part of the log user may see is
// [joinSeq, leftSeq] of their membership (from 1 with shared history; to
// the log's end while they are a member).
func (s *Store) Log(_ context.Context, id int64, user string, after, before int64, limit int) ([]plugins.GroupEntry, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("pebblestore: group log: limit %d is not positive", limit)
	}
	v, done, err := s.acquire("group log")
	if err != nil {
		return nil, false, err
	}
	defer done()
	g, err := readGroup(v.snap, id)
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: group log: %w", err)
	}
	if g == nil {
		return nil, false, fmt.Errorf("pebblestore: group log: group %d: %w", id, plugins.ErrNoGroup)
	}
	m, err := readMember(v.snap, id, user)
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: group log: %w", err)
	}
	if m == nil {
		return nil, false, fmt.Errorf("pebblestore: group log: group %d: %q: %w", id, user, plugins.ErrNotMember)
	}
	lo, hi := m.joinSeq, g.lastSeq
	if g.history == plugins.HistoryShared {
		lo = 1
	}
	if !m.current() {
		hi = m.leftSeq
	}
	if before > 0 {
		hi = min(hi, before-1)
	} else {
		lo = max(lo, after+1)
	}
	if lo > hi {
		return nil, false, nil
	}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: entryKey(id, lo), UpperBound: entryKey(id, hi+1)})
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: group log: %w", err)
	}
	out := make([]plugins.GroupEntry, 0, min(limit, maxPrealloc)+1)
	first, step := it.First, it.Next
	if before > 0 {
		first, step = it.Last, it.Prev
	}
	for ok := first(); ok && len(out) <= limit; ok = step() {
		val, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, false, fmt.Errorf("pebblestore: group log: %w", err)
		}
		e, err := decodeEntry(id, int64(seqSuffix(it.Key())), val)
		if err != nil {
			_ = it.Close()
			return nil, false, fmt.Errorf("pebblestore: group log: %w", err)
		}
		out = append(out, e)
	}
	if err := it.Close(); err != nil {
		return nil, false, fmt.Errorf("pebblestore: group log: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	if before > 0 {
		slices.Reverse(out)
	}
	return out, more, nil
}
