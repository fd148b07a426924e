package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/qqchat/qq/plugins"
)

// mentionAll is the mention that names every member.
const mentionAll = "all"

// groupRow is a row of groups.
type groupRow struct {
	id              int64
	name, owner     string
	policy          plugins.GroupPolicy
	history         plugins.GroupHistory
	muteAll         bool
	members         int64
	lastSeq, lastTS int64
	dissolved       bool
}

func (g *groupRow) info() plugins.GroupInfo {
	return plugins.GroupInfo{
		ID: g.id, Name: g.name, Owner: g.owner, Policy: g.policy, History: g.history,
		MuteAll: g.muteAll, Members: int(g.members), LastSeq: g.lastSeq, Dissolved: g.dissolved,
	}
}

// scanGroup reads a row of qGroup into g (whose id is set).
func scanGroup(row *sql.Row, g *groupRow) (found bool, err error) {
	err = row.Scan(&g.name, &g.owner, &g.policy, &g.history, &g.muteAll, &g.members, &g.lastSeq, &g.lastTS, &g.dissolved)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// memberRow is a row of group_members.
type memberRow struct {
	role       plugins.GroupRole
	joinSeq    int64
	leftSeq    sql.NullInt64
	mutedUntil int64
}

// current reports whether the row is a member now.
func (m *memberRow) current() bool { return !m.leftSeq.Valid }

func (m *memberRow) admin() bool { return m.role == plugins.RoleAdmin || m.role == plugins.RoleOwner }

// txStmts binds the writer's prepared statements to one transaction,
// each once.
type txStmts struct {
	ctx context.Context
	tx  *sql.Tx
	m   map[*sql.Stmt]*sql.Stmt
}

func newTxStmts(ctx context.Context, tx *sql.Tx) *txStmts {
	return &txStmts{ctx: ctx, tx: tx, m: make(map[*sql.Stmt]*sql.Stmt)}
}

func (t *txStmts) get(st *sql.Stmt) *sql.Stmt {
	if b, ok := t.m[st]; ok {
		return b
	}
	b := t.tx.StmtContext(t.ctx, st)
	t.m[st] = b
	return b
}

// exec runs st and returns how many rows it changed.
func (t *txStmts) exec(st *sql.Stmt, args ...any) (int64, error) {
	res, err := t.get(st).ExecContext(t.ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *txStmts) row(st *sql.Stmt, args ...any) *sql.Row {
	return t.get(st).QueryRowContext(t.ctx, args...)
}

// nullable is s, or NULL when s is empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// entryFields are the columns of a group_log row other than its place.
type entryFields struct {
	sender, body, mentions, msgID, cid      sql.NullString
	actor, target, name, role, policy, hist sql.NullString
	until, flag                             sql.NullInt64
}

// scanEntry reads the entryCols of a row into e.
func scanEntry(scan func(dest ...any) error, e *plugins.GroupEntry, extra ...any) error {
	var f entryFields
	dest := append(extra, &e.Group, &e.Seq, &e.Kind, &e.TS, &f.sender, &f.body, &f.mentions, &f.msgID, &f.cid,
		&f.actor, &f.target, &f.name, &f.role, &f.until, &f.flag, &f.policy, &f.hist)
	if err := scan(dest...); err != nil {
		return err
	}
	e.From, e.Body, e.MsgID, e.CID = f.sender.String, f.body.String, f.msgID.String, f.cid.String
	e.Actor, e.Target, e.Name, e.Role = f.actor.String, f.target.String, f.name.String, plugins.GroupRole(f.role.String)
	e.Policy, e.History = plugins.GroupPolicy(f.policy.String), plugins.GroupHistory(f.hist.String)
	e.Until, e.On = f.until.Int64, f.flag.Int64 != 0
	if f.mentions.Valid {
		if err := json.Unmarshal([]byte(f.mentions.String), &e.Mentions); err != nil {
			return fmt.Errorf("entry %d of group %d: mentions: %w", e.Seq, e.Group, err)
		}
	}
	return nil
}

// ---- operations ---------------------------------------------------------

// CreateGroup implements plugins.Groups.
func (s *Store) CreateGroup(ctx context.Context, owner, name string, policy plugins.GroupPolicy, history plugins.GroupHistory, ts int64, limits plugins.GroupLimits) (plugins.GroupInfo, error) {
	var info plugins.GroupInfo
	err := s.writeTx(ctx, "create group", func(tx *sql.Tx) error {
		t := newTxStmts(ctx, tx)
		if err := s.live(ctx, tx, owner); err != nil {
			return err
		}
		if policy == "" {
			policy = plugins.PolicyApproval
		}
		if history == "" {
			history = plugins.HistoryJoined
		}
		if err := checkSettings(policy, history); err != nil {
			return err
		}
		if err := s.canOwn(t, owner, limits); err != nil {
			return err
		}
		if err := s.canJoin(t, owner, limits); err != nil {
			return err
		}
		res, err := t.get(s.stCreateGroup).ExecContext(ctx, name, owner, string(policy), string(history), ts, s.now().UnixMilli())
		if err != nil {
			return err
		}
		g := groupRow{name: name, owner: owner, policy: policy, history: history, lastTS: ts}
		if g.id, err = res.LastInsertId(); err != nil {
			return err
		}
		e := plugins.GroupEntry{Kind: plugins.EntryCreated, TS: ts, Actor: owner, Name: name}
		if err := s.appendEntry(t, &g, &e); err != nil {
			return err
		}
		if err := s.addMember(t, &g, owner, plugins.RoleOwner, e.Seq); err != nil {
			return err
		}
		if err := s.putGroup(t, &g); err != nil {
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
	err := s.writeTx(ctx, "group "+string(op.Kind), func(tx *sql.Tx) error {
		t := newTxStmts(ctx, tx)
		var g groupRow
		g.id = op.Group
		found, err := scanGroup(t.row(s.stGroupW, op.Group), &g)
		if err != nil {
			return err
		}
		if !found || g.dissolved {
			return fmt.Errorf("group %d: %w", op.Group, plugins.ErrNoGroup)
		}
		res, err = s.groupOp(t, &g, op)
		if err != nil {
			return err
		}
		return s.putGroup(t, &g)
	})
	return res, err
}

// groupOp applies op to the live group g inside a transaction, and leaves
// the new state of g for the caller to store.
func (s *Store) groupOp(t *txStmts, g *groupRow, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	e := plugins.GroupEntry{TS: op.TS, Actor: op.Actor, Target: op.Target}
	if op.Kind == plugins.OpJoin {
		return s.join(t, g, op)
	}
	actor, err := s.currentMember(t, g.id, op.Actor)
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
		if err := s.live(t.ctx, t.tx, op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if _, err := s.notMember(t, g.id, op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if err := s.room(t, g, op.Target, op.Limits); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if _, err := t.exec(s.stDelJoinRequest, g.id, op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		e.Kind = plugins.EntryJoined
		if err := s.appendEntry(t, g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, s.addMember(t, g, op.Target, plugins.RoleMember, e.Seq)

	case plugins.OpApprove, plugins.OpReject:
		n, err := t.exec(s.stDelJoinRequest, g.id, op.Target)
		if err != nil {
			return plugins.GroupOpResult{}, err
		}
		if n == 0 {
			return plugins.GroupOpResult{}, fmt.Errorf("group %d: request of %q to join: %w", g.id, op.Target, plugins.ErrNoRequest)
		}
		if op.Kind == plugins.OpReject {
			return plugins.GroupOpResult{}, nil
		}
		// A pending request means the user is live and not a member:
		// DeleteUser and every way of joining drop requests.
		if err := s.room(t, g, op.Target, op.Limits); err != nil {
			return plugins.GroupOpResult{}, err
		}
		e.Kind = plugins.EntryJoined
		if err := s.appendEntry(t, g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, s.addMember(t, g, op.Target, plugins.RoleMember, e.Seq)

	case plugins.OpLeave:
		if isOwner {
			return notAllowed("the owner must transfer the group before leaving")
		}
		e = plugins.GroupEntry{Kind: plugins.EntryLeft, TS: op.TS, Target: op.Actor}
		if err := s.appendEntry(t, g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, s.removeMember(t, g, op.Actor, e.Seq)

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
		target, err := s.currentMember(t, g.id, op.Target)
		if err != nil {
			return plugins.GroupOpResult{}, err
		}
		if target.role == plugins.RoleOwner || target.role == plugins.RoleAdmin && !isOwner {
			return notAllowed(fmt.Sprintf("%s of %s %s", op.Kind, target.role, op.Target))
		}
		switch op.Kind {
		case plugins.OpKick:
			e = plugins.GroupEntry{Kind: plugins.EntryKicked, TS: op.TS, Actor: op.Actor, Target: op.Target}
			if err := s.appendEntry(t, g, &e); err != nil {
				return plugins.GroupOpResult{}, err
			}
			return plugins.GroupOpResult{Entry: &e}, s.removeMember(t, g, op.Target, e.Seq)
		case plugins.OpRole:
			e.Kind, e.Role = plugins.EntryRole, op.Role
			if _, err := t.exec(s.stSetRole, g.id, op.Target, string(op.Role)); err != nil {
				return plugins.GroupOpResult{}, err
			}
		case plugins.OpTransfer:
			if err := s.canOwn(t, op.Target, op.Limits); err != nil {
				return plugins.GroupOpResult{}, err
			}
			e.Kind = plugins.EntryOwner
			if err := s.transfer(t, g, op.Actor, op.Target); err != nil {
				return plugins.GroupOpResult{}, err
			}
		case plugins.OpMute:
			e.Kind, e.Until = plugins.EntryMuted, max(op.Until, 0)
			if _, err := t.exec(s.stSetMuted, g.id, op.Target, e.Until); err != nil {
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
		policy, history := cmp(op.Policy, g.policy), cmp(op.History, g.history)
		if err := checkSettings(policy, history); err != nil {
			return plugins.GroupOpResult{}, err
		}
		e = plugins.GroupEntry{Kind: plugins.EntrySettings, TS: op.TS, Actor: op.Actor, Policy: policy, History: history}
		g.policy, g.history = policy, history

	case plugins.OpDissolve:
		e = plugins.GroupEntry{Kind: plugins.EntryDissolved, TS: op.TS, Actor: op.Actor}
		if err := s.appendEntry(t, g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, s.dissolve(t, g, e.Seq)

	default:
		return plugins.GroupOpResult{}, fmt.Errorf("unknown group operation %q", op.Kind)
	}
	if err := s.appendEntry(t, g, &e); err != nil {
		return plugins.GroupOpResult{}, err
	}
	return plugins.GroupOpResult{Entry: &e}, nil
}

// cmp is v, or def when v is empty.
func cmp[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

// join is OpJoin: the actor joins an open group, or asks to join an
// approval group.
func (s *Store) join(t *txStmts, g *groupRow, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	if err := s.live(t.ctx, t.tx, op.Actor); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if _, err := s.notMember(t, g.id, op.Actor); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if g.policy == plugins.PolicyInvite {
		return plugins.GroupOpResult{}, fmt.Errorf("group %d: joins by invitation only: %w", g.id, plugins.ErrNotAllowed)
	}
	if err := s.room(t, g, op.Actor, op.Limits); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if g.policy == plugins.PolicyApproval {
		if _, err := t.exec(s.stPutJoinRequest, g.id, op.Actor, op.TS); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Requested: true}, nil
	}
	if _, err := t.exec(s.stDelJoinRequest, g.id, op.Actor); err != nil { // asked before the group opened
		return plugins.GroupOpResult{}, err
	}
	e := plugins.GroupEntry{Kind: plugins.EntryJoined, TS: op.TS, Actor: op.Actor, Target: op.Actor}
	if err := s.appendEntry(t, g, &e); err != nil {
		return plugins.GroupOpResult{}, err
	}
	return plugins.GroupOpResult{Entry: &e}, s.addMember(t, g, op.Actor, plugins.RoleMember, e.Seq)
}

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

// member reads user's row of group id, if there is one (a former
// member's too).
func (s *Store) member(t *txStmts, id int64, user string) (memberRow, bool, error) {
	var m memberRow
	err := t.row(s.stMemberW, id, user).Scan(&m.role, &m.joinSeq, &m.leftSeq, &m.mutedUntil)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("look up member: %w", err)
	}
	return m, true, nil
}

// currentMember reads user's row of group id, or fails with ErrNotMember
// when they are not a member now.
func (s *Store) currentMember(t *txStmts, id int64, user string) (memberRow, error) {
	m, found, err := s.member(t, id, user)
	if err != nil {
		return m, err
	}
	if !found || !m.current() {
		return m, fmt.Errorf("group %d: %q: %w", id, user, plugins.ErrNotMember)
	}
	return m, nil
}

// notMember fails with ErrAlreadyMember when user is a member of group
// id now.
func (s *Store) notMember(t *txStmts, id int64, user string) (memberRow, error) {
	m, found, err := s.member(t, id, user)
	if err != nil {
		return m, err
	}
	if found && m.current() {
		return m, fmt.Errorf("group %d: %q: %w", id, user, plugins.ErrAlreadyMember)
	}
	return m, nil
}

// room fails when user may not join g: ErrGroupFull at limits.MaxMembers,
// ErrGroupLimit at the user's MaxJoined.
func (s *Store) room(t *txStmts, g *groupRow, user string, limits plugins.GroupLimits) error {
	if limits.MaxMembers > 0 && g.members >= int64(limits.MaxMembers) {
		return fmt.Errorf("group %d has %d members: %w", g.id, g.members, plugins.ErrGroupFull)
	}
	return s.canJoin(t, user, limits)
}

// canJoin fails with ErrGroupLimit when user belongs to limits.MaxJoined
// groups.
func (s *Store) canJoin(t *txStmts, user string, limits plugins.GroupLimits) error {
	if limits.MaxJoined <= 0 {
		return nil
	}
	var n int64
	if err := t.row(s.stJoinedGroups, user).Scan(&n); err != nil {
		return fmt.Errorf("count groups: %w", err)
	}
	if n >= int64(limits.MaxJoined) {
		return fmt.Errorf("%q belongs to %d groups: %w", user, n, plugins.ErrGroupLimit)
	}
	return nil
}

// canOwn fails with ErrGroupLimit when user owns limits.MaxOwned groups.
func (s *Store) canOwn(t *txStmts, user string, limits plugins.GroupLimits) error {
	if limits.MaxOwned <= 0 {
		return nil
	}
	var n int64
	if err := t.row(s.stOwnedGroups, user).Scan(&n); err != nil {
		return fmt.Errorf("count owned groups: %w", err)
	}
	if n >= int64(limits.MaxOwned) {
		return fmt.Errorf("%q owns %d groups: %w", user, n, plugins.ErrGroupLimit)
	}
	return nil
}

// appendEntry appends e to g's log: e gets the next seq and a timestamp
// no earlier than the log's last. g is updated; the caller stores it
// (putGroup).
func (s *Store) appendEntry(t *txStmts, g *groupRow, e *plugins.GroupEntry) error {
	e.Group, e.Seq, e.TS = g.id, g.lastSeq+1, max(e.TS, g.lastTS)
	var until, flag any
	switch e.Kind {
	case plugins.EntryMuted:
		until = e.Until
	case plugins.EntryMuteAll:
		flag = e.On
	}
	_, err := t.exec(s.stAppendEntry, g.id, e.Seq, string(e.Kind), e.TS, nullable(e.Actor), nullable(e.Target),
		nullable(e.Name), nullable(string(e.Role)), until, flag, nullable(string(e.Policy)), nullable(string(e.History)))
	if err != nil {
		return fmt.Errorf("append %s entry: %w", e.Kind, err)
	}
	g.lastSeq, g.lastTS = e.Seq, e.TS
	return nil
}

// putGroup stores g.
func (s *Store) putGroup(t *txStmts, g *groupRow) error {
	_, err := t.exec(s.stPutGroup, g.id, g.name, g.owner, string(g.policy), string(g.history), g.muteAll,
		g.members, g.lastSeq, g.lastTS, g.dissolved)
	return err
}

// addMember makes user a member of g with role, since its entry joinSeq,
// with a cursor just before that entry.
func (s *Store) addMember(t *txStmts, g *groupRow, user string, role plugins.GroupRole, joinSeq int64) error {
	if _, err := t.exec(s.stAddMember, g.id, user, string(role), joinSeq); err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	if _, err := t.exec(s.stAddCursor, user, g.id, joinSeq-1); err != nil {
		return fmt.Errorf("add cursor: %w", err)
	}
	g.members++
	return nil
}

// removeMember ends user's membership of g at entry seq and drops their
// cursor and mentions.
func (s *Store) removeMember(t *txStmts, g *groupRow, user string, seq int64) error {
	n, err := t.exec(s.stRemoveMember, g.id, user, seq)
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("remove member: %q is not a member of group %d", user, g.id)
	}
	for _, st := range []*sql.Stmt{s.stDropCursor, s.stDropMentions} {
		if _, err := t.exec(st, user, g.id); err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
	}
	g.members--
	return nil
}

// transfer makes to the owner of g, and from (the owner) an admin.
func (s *Store) transfer(t *txStmts, g *groupRow, from, to string) error {
	if _, err := t.exec(s.stSetRole, g.id, from, string(plugins.RoleAdmin)); err != nil {
		return err
	}
	if _, err := t.exec(s.stSetRole, g.id, to, string(plugins.RoleOwner)); err != nil {
		return err
	}
	g.owner = to
	return nil
}

// dissolve ends g at its dissolved entry seq: every member is removed at
// seq (without entries of their own), their cursors and mentions and the
// pending requests dropped.
func (s *Store) dissolve(t *txStmts, g *groupRow, seq int64) error {
	rows, err := t.get(s.stMembersW).QueryContext(t.ctx, g.id, "", int64(-1))
	if err != nil {
		return fmt.Errorf("dissolve: %w", err)
	}
	var members []string
	for rows.Next() {
		var m memberRow
		var name string
		if err := rows.Scan(&name, &m.role, &m.joinSeq, &m.mutedUntil); err != nil {
			rows.Close()
			return fmt.Errorf("dissolve: %w", err)
		}
		members = append(members, name)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("dissolve: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("dissolve: %w", err)
	}
	for _, name := range members {
		for _, st := range []*sql.Stmt{s.stDropCursor, s.stDropMentions} {
			if _, err := t.exec(st, name, g.id); err != nil {
				return fmt.Errorf("dissolve: %w", err)
			}
		}
	}
	if _, err := t.exec(s.stDissolveMembers, g.id, seq); err != nil {
		return fmt.Errorf("dissolve: %w", err)
	}
	if _, err := t.exec(s.stDropGroupRequests, g.id); err != nil {
		return fmt.Errorf("dissolve: %w", err)
	}
	g.members, g.dissolved = 0, true
	return nil
}

// leaveGroups, inside DeleteUser's transaction, removes user from every
// group they belong to (see plugins.Groups, "Deleted accounts") and drops
// their cursors, mentions and join requests.
func (s *Store) leaveGroups(t *txStmts, user string, ts int64) error {
	rows, err := t.get(s.stUserMemberships).QueryContext(t.ctx, user)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		g := groupRow{id: id}
		if _, err := scanGroup(t.row(s.stGroupW, id), &g); err != nil {
			return fmt.Errorf("group %d: %w", id, err)
		}
		if g.owner == user {
			var next string
			err := t.row(s.stSuccessor, id, user).Scan(&next)
			switch {
			case errors.Is(err, sql.ErrNoRows): // the last member
				e := plugins.GroupEntry{Kind: plugins.EntryDissolved, TS: ts, Actor: user}
				if err := s.appendEntry(t, &g, &e); err != nil {
					return err
				}
				if err := s.dissolve(t, &g, e.Seq); err != nil {
					return err
				}
				if err := s.putGroup(t, &g); err != nil {
					return err
				}
				continue
			case err != nil:
				return fmt.Errorf("group %d: successor: %w", id, err)
			}
			e := plugins.GroupEntry{Kind: plugins.EntryOwner, TS: ts, Actor: user, Target: next}
			if err := s.appendEntry(t, &g, &e); err != nil {
				return err
			}
			if err := s.transfer(t, &g, user, next); err != nil {
				return err
			}
		}
		e := plugins.GroupEntry{Kind: plugins.EntryLeft, TS: ts, Target: user}
		if err := s.appendEntry(t, &g, &e); err != nil {
			return err
		}
		if err := s.removeMember(t, &g, user, e.Seq); err != nil {
			return err
		}
		if err := s.putGroup(t, &g); err != nil {
			return err
		}
	}
	for _, st := range []*sql.Stmt{s.stDropUserCursors, s.stDropUserMentions, s.stDropUserRequests} {
		if _, err := t.exec(st, user); err != nil {
			return err
		}
	}
	return nil
}

// ---- reads --------------------------------------------------------------

// Group implements plugins.Groups.
func (s *Store) Group(ctx context.Context, id int64) (plugins.GroupInfo, error) {
	if s.closed.Load() {
		return plugins.GroupInfo{}, fmt.Errorf("sqlitestore: group: %w", ErrClosed)
	}
	g := groupRow{id: id}
	found, err := scanGroup(s.stGroupR.QueryRowContext(ctx, id), &g)
	if err != nil {
		return plugins.GroupInfo{}, fmt.Errorf("sqlitestore: group: %w", err)
	}
	if !found {
		return plugins.GroupInfo{}, fmt.Errorf("sqlitestore: group %d: %w", id, plugins.ErrNoGroup)
	}
	return g.info(), nil
}

// UserGroups implements plugins.Groups: one statement, so one snapshot.
func (s *Store) UserGroups(ctx context.Context, user string) ([]plugins.UserGroup, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlitestore: user groups: %w", ErrClosed)
	}
	rows, err := s.stUserGroups.QueryContext(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: user groups: %w", err)
	}
	defer rows.Close()
	var out []plugins.UserGroup
	for rows.Next() {
		var (
			ug        plugins.UserGroup
			g         groupRow
			named, to int64
		)
		if err := rows.Scan(&g.id, &g.name, &g.owner, &g.policy, &g.history, &g.muteAll, &g.members, &g.lastSeq, &g.dissolved,
			&ug.Role, &ug.JoinSeq, &ug.ReadSeq, &named, &to); err != nil {
			return nil, fmt.Errorf("sqlitestore: user groups: %w", err)
		}
		ug.GroupInfo = g.info()
		ug.Unread = max(g.lastSeq-ug.ReadSeq, 0)
		ug.Mentions = named + to
		out = append(out, ug)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: user groups: %w", err)
	}
	return out, nil
}

// Members implements plugins.Groups.
func (s *Store) Members(ctx context.Context, id int64, after string, limit int) ([]plugins.Member, bool, error) {
	if s.closed.Load() {
		return nil, false, fmt.Errorf("sqlitestore: members: %w", ErrClosed)
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("sqlitestore: members: limit %d is not positive", limit)
	}
	if _, err := s.Group(ctx, id); err != nil {
		return nil, false, err
	}
	rows, err := s.stMembersR.QueryContext(ctx, id, after, pageLimit(limit))
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: members: %w", err)
	}
	defer rows.Close()
	out := make([]plugins.Member, 0, min(limit, maxPrealloc)+1)
	for rows.Next() {
		var m plugins.Member
		if err := rows.Scan(&m.User, &m.Role, &m.JoinSeq, &m.MutedUntil); err != nil {
			return nil, false, fmt.Errorf("sqlitestore: members: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("sqlitestore: members: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// JoinRequests implements plugins.Groups.
func (s *Store) JoinRequests(ctx context.Context, id int64) ([]plugins.JoinRequest, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlitestore: join requests: %w", ErrClosed)
	}
	if _, err := s.Group(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.stGroupRequests.QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: join requests: %w", err)
	}
	defer rows.Close()
	var out []plugins.JoinRequest
	for rows.Next() {
		var r plugins.JoinRequest
		if err := rows.Scan(&r.User, &r.TS); err != nil {
			return nil, fmt.Errorf("sqlitestore: join requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: join requests: %w", err)
	}
	return out, nil
}

// Log implements plugins.Groups. The part of the log user may see is
// [join_seq, left_seq] of their membership row (from 1 with shared
// history; to the log's end while they are a member); entries never
// change once appended, so the row and the page need not be read in one
// snapshot.
func (s *Store) Log(ctx context.Context, id int64, user string, after, before int64, limit int) ([]plugins.GroupEntry, bool, error) {
	if s.closed.Load() {
		return nil, false, fmt.Errorf("sqlitestore: group log: %w", ErrClosed)
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("sqlitestore: group log: limit %d is not positive", limit)
	}
	g := groupRow{id: id}
	found, err := scanGroup(s.stGroupR.QueryRowContext(ctx, id), &g)
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: group log: %w", err)
	}
	if !found {
		return nil, false, fmt.Errorf("sqlitestore: group log: group %d: %w", id, plugins.ErrNoGroup)
	}
	var m memberRow
	err = s.stMemberR.QueryRowContext(ctx, id, user).Scan(&m.role, &m.joinSeq, &m.leftSeq, &m.mutedUntil)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, fmt.Errorf("sqlitestore: group log: group %d: %q: %w", id, user, plugins.ErrNotMember)
	case err != nil:
		return nil, false, fmt.Errorf("sqlitestore: group log: %w", err)
	}
	lo, hi := m.joinSeq, g.lastSeq
	if g.history == plugins.HistoryShared {
		lo = 1
	}
	if m.leftSeq.Valid {
		hi = m.leftSeq.Int64
	}
	st := s.stLogAfter
	if before > 0 {
		st, hi = s.stLogBefore, min(hi, before-1)
	} else {
		lo = max(lo, after+1)
	}
	if lo > hi {
		return nil, false, nil
	}
	rows, err := st.QueryContext(ctx, id, lo, hi, pageLimit(limit))
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: group log: %w", err)
	}
	defer rows.Close()
	out := make([]plugins.GroupEntry, 0, min(limit, maxPrealloc)+1)
	for rows.Next() {
		var e plugins.GroupEntry
		if err := scanEntry(rows.Scan, &e); err != nil {
			return nil, false, fmt.Errorf("sqlitestore: group log: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("sqlitestore: group log: %w", err)
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
