package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/plugins"
)

// mentionAll is the mention that names every member.
const mentionAll = "all"

// The columns of a group_log row, in the order scanEntry reads them.
const (
	entryCols = `group_id, seq, kind, ts, sender, body, mentions, msg_id, cid,
		actor, target, name, role, until_ms, flag, policy, history`
	entryColsL = `l.group_id, l.seq, l.kind, l.ts, l.sender, l.body, l.mentions, l.msg_id, l.cid,
		l.actor, l.target, l.name, l.role, l.until_ms, l.flag, l.policy, l.history`
	groupCols = `name, owner, policy, history, mute_all, members, last_seq, last_ts, dissolved`
)

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

// scanGroup reads a row of groupCols into g (whose id is set).
func scanGroup(row pgx.Row, g *groupRow) (found bool, err error) {
	var policy, history string
	err = row.Scan(&g.name, &g.owner, &policy, &history, &g.muteAll, &g.members, &g.lastSeq, &g.lastTS, &g.dissolved)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	g.policy, g.history = plugins.GroupPolicy(policy), plugins.GroupHistory(history)
	return err == nil, err
}

// lockGroup locks and reads the row of group id.
func lockGroup(ctx context.Context, tx pgx.Tx, id int64) (*groupRow, bool, error) {
	g := &groupRow{id: id}
	found, err := scanGroup(tx.QueryRow(ctx, `SELECT `+groupCols+` FROM groups WHERE id = $1 FOR NO KEY UPDATE`, id), g)
	if err != nil {
		return nil, false, fmt.Errorf("lock group: %w", err)
	}
	return g, found, nil
}

// lockGroups locks the rows of groups ids (sorted) in id order and
// returns those that exist.
func lockGroups(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64]*groupRow, error) {
	out := make(map[int64]*groupRow, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT id, `+groupCols+` FROM groups WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE`, ids)
	if err != nil {
		return nil, fmt.Errorf("lock groups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		g := new(groupRow)
		var policy, history string
		if err := rows.Scan(&g.id, &g.name, &g.owner, &policy, &history, &g.muteAll, &g.members, &g.lastSeq, &g.lastTS, &g.dissolved); err != nil {
			return nil, fmt.Errorf("lock groups: %w", err)
		}
		g.policy, g.history = plugins.GroupPolicy(policy), plugins.GroupHistory(history)
		out[g.id] = g
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock groups: %w", err)
	}
	return out, nil
}

// memberRow is a row of group_members.
type memberRow struct {
	role       plugins.GroupRole
	joinSeq    int64
	leftSeq    *int64
	mutedUntil int64
}

// current reports whether the row is a member now.
func (m *memberRow) current() bool { return m.leftSeq == nil }

func (m *memberRow) admin() bool { return m.role == plugins.RoleAdmin || m.role == plugins.RoleOwner }

// scanEntry reads the entryCols of a row into e, after extra.
func scanEntry(row pgx.Row, e *plugins.GroupEntry, extra ...any) error {
	var (
		kind                                               string
		sender, msgID, cid, actor, target, name, role, pol *string
		hist                                               *string
		body                                               []byte
		until                                              *int64
		flag                                               *bool
	)
	dest := append(extra, &e.Group, &e.Seq, &kind, &e.TS, &sender, &body, &e.Mentions, &msgID, &cid,
		&actor, &target, &name, &role, &until, &flag, &pol, &hist)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	e.Kind = plugins.EntryKind(kind)
	e.From, e.Body, e.MsgID, e.CID = str(sender), string(body), str(msgID), str(cid)
	e.Actor, e.Target, e.Name, e.Role = str(actor), str(target), str(name), plugins.GroupRole(str(role))
	e.Policy, e.History = plugins.GroupPolicy(str(pol)), plugins.GroupHistory(str(hist))
	if until != nil {
		e.Until = *until
	}
	e.On = flag != nil && *flag
	if len(e.Mentions) == 0 {
		e.Mentions = nil
	}
	return nil
}

// ---- operations ---------------------------------------------------------

// CreateGroup implements plugins.Groups.
func (s *Store) CreateGroup(ctx context.Context, owner, name string, policy plugins.GroupPolicy, history plugins.GroupHistory, ts int64, limits plugins.GroupLimits) (plugins.GroupInfo, error) {
	var info plugins.GroupInfo
	if policy == "" {
		policy = plugins.PolicyApproval
	}
	if history == "" {
		history = plugins.HistoryJoined
	}
	err := s.writeTx(ctx, "create group", func(tx pgx.Tx) error {
		// The owner's row lock serializes the checks of their limits.
		users, err := lockUsers(ctx, tx, []string{owner})
		if err != nil {
			return err
		}
		if u := users[owner]; u == nil || !u.live {
			return fmt.Errorf("user %q: %w", owner, plugins.ErrUnknownUser)
		}
		if err := checkSettings(policy, history); err != nil {
			return err
		}
		if err := canOwn(ctx, tx, owner, limits); err != nil {
			return err
		}
		if err := canJoin(ctx, tx, owner, limits); err != nil {
			return err
		}
		g := groupRow{name: name, owner: owner, policy: policy, history: history, lastTS: ts}
		err = tx.QueryRow(ctx, `INSERT INTO groups (name, owner, policy, history, members, last_seq, last_ts, created_ms)
			VALUES ($1, $2, $3, $4, 0, 0, $5, $6) RETURNING id`, name, owner, string(policy), string(history), ts, s.now().UnixMilli()).Scan(&g.id)
		if err != nil {
			return err
		}
		e := plugins.GroupEntry{Kind: plugins.EntryCreated, TS: ts, Actor: owner, Name: name}
		if err := appendEntry(ctx, tx, &g, &e); err != nil {
			return err
		}
		if err := addMember(ctx, tx, &g, owner, plugins.RoleOwner, e.Seq); err != nil {
			return err
		}
		if err := putGroup(ctx, tx, &g); err != nil {
			return err
		}
		info = g.info()
		return nil
	})
	return info, err
}

// GroupOp implements plugins.Groups. It locks the rows of the users it
// names (by name), then the group's.
func (s *Store) GroupOp(ctx context.Context, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	var res plugins.GroupOpResult
	err := s.writeTx(ctx, "group "+string(op.Kind), func(tx pgx.Tx) error {
		names := []string{op.Actor}
		if op.Target != "" {
			names = append(names, op.Target)
		}
		slices.Sort(names)
		if _, err := lockUsers(ctx, tx, slices.Compact(names)); err != nil {
			return err
		}
		g, found, err := lockGroup(ctx, tx, op.Group)
		if err != nil {
			return err
		}
		if !found || g.dissolved {
			return fmt.Errorf("group %d: %w", op.Group, plugins.ErrNoGroup)
		}
		res, err = groupOp(ctx, tx, g, op)
		if err != nil {
			return err
		}
		return putGroup(ctx, tx, g)
	})
	return res, err
}

// groupOp applies op to the live group g inside a transaction, and leaves
// the new state of g for the caller to store.
func groupOp(ctx context.Context, tx pgx.Tx, g *groupRow, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	e := plugins.GroupEntry{TS: op.TS, Actor: op.Actor, Target: op.Target}
	if op.Kind == plugins.OpJoin {
		return join(ctx, tx, g, op)
	}
	actor, err := currentMember(ctx, tx, g.id, op.Actor)
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
		if err := live(ctx, tx, op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if err := notMember(ctx, tx, g.id, op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if err := room(ctx, tx, g, op.Target, op.Limits); err != nil {
			return plugins.GroupOpResult{}, err
		}
		if _, err := exec(ctx, tx, qDeleteJoinRequest, g.id, op.Target); err != nil {
			return plugins.GroupOpResult{}, err
		}
		e.Kind = plugins.EntryJoined
		if err := appendEntry(ctx, tx, g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, addMember(ctx, tx, g, op.Target, plugins.RoleMember, e.Seq)

	case plugins.OpApprove, plugins.OpReject:
		n, err := exec(ctx, tx, qDeleteJoinRequest, g.id, op.Target)
		if err != nil {
			return plugins.GroupOpResult{}, err
		}
		if n == 0 {
			return plugins.GroupOpResult{}, fmt.Errorf("group %d: request of %q to join: %w", g.id, op.Target, plugins.ErrNoRequest)
		}
		if op.Kind == plugins.OpReject {
			return plugins.GroupOpResult{}, nil
		}
		if err := room(ctx, tx, g, op.Target, op.Limits); err != nil {
			return plugins.GroupOpResult{}, err
		}
		e.Kind = plugins.EntryJoined
		if err := appendEntry(ctx, tx, g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, addMember(ctx, tx, g, op.Target, plugins.RoleMember, e.Seq)

	case plugins.OpLeave:
		if isOwner {
			return notAllowed("the owner must transfer the group before leaving")
		}
		e = plugins.GroupEntry{Kind: plugins.EntryLeft, TS: op.TS, Target: op.Actor}
		if err := appendEntry(ctx, tx, g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, removeMember(ctx, tx, g, op.Actor, e.Seq)

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
		target, err := currentMember(ctx, tx, g.id, op.Target)
		if err != nil {
			return plugins.GroupOpResult{}, err
		}
		if target.role == plugins.RoleOwner || target.role == plugins.RoleAdmin && !isOwner {
			return notAllowed(fmt.Sprintf("%s of %s %s", op.Kind, target.role, op.Target))
		}
		switch op.Kind {
		case plugins.OpKick:
			e = plugins.GroupEntry{Kind: plugins.EntryKicked, TS: op.TS, Actor: op.Actor, Target: op.Target}
			if err := appendEntry(ctx, tx, g, &e); err != nil {
				return plugins.GroupOpResult{}, err
			}
			return plugins.GroupOpResult{Entry: &e}, removeMember(ctx, tx, g, op.Target, e.Seq)
		case plugins.OpRole:
			e.Kind, e.Role = plugins.EntryRole, op.Role
			if _, err := exec(ctx, tx, qSetRole, g.id, op.Target, string(op.Role)); err != nil {
				return plugins.GroupOpResult{}, err
			}
		case plugins.OpTransfer:
			if err := canOwn(ctx, tx, op.Target, op.Limits); err != nil {
				return plugins.GroupOpResult{}, err
			}
			e.Kind = plugins.EntryOwner
			if err := transfer(ctx, tx, g, op.Actor, op.Target); err != nil {
				return plugins.GroupOpResult{}, err
			}
		case plugins.OpMute:
			e.Kind, e.Until = plugins.EntryMuted, max(op.Until, 0)
			if _, err := exec(ctx, tx, `UPDATE group_members SET muted_until = $3 WHERE group_id = $1 AND member = $2`, g.id, op.Target, e.Until); err != nil {
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
		if err := appendEntry(ctx, tx, g, &e); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Entry: &e}, dissolve(ctx, tx, g, e.Seq)

	default:
		return plugins.GroupOpResult{}, fmt.Errorf("unknown group operation %q", op.Kind)
	}
	if err := appendEntry(ctx, tx, g, &e); err != nil {
		return plugins.GroupOpResult{}, err
	}
	return plugins.GroupOpResult{Entry: &e}, nil
}

// orDefault is v, or def when v is empty.
func orDefault[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

// join is OpJoin: the actor joins an open group, or asks to join an
// approval group.
func join(ctx context.Context, tx pgx.Tx, g *groupRow, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	if err := live(ctx, tx, op.Actor); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if err := notMember(ctx, tx, g.id, op.Actor); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if g.policy == plugins.PolicyInvite {
		return plugins.GroupOpResult{}, fmt.Errorf("group %d: joins by invitation only: %w", g.id, plugins.ErrNotAllowed)
	}
	if err := room(ctx, tx, g, op.Actor, op.Limits); err != nil {
		return plugins.GroupOpResult{}, err
	}
	if g.policy == plugins.PolicyApproval {
		if _, err := exec(ctx, tx, `INSERT INTO group_requests (group_id, member, ts) VALUES ($1, $2, $3)
			ON CONFLICT (group_id, member) DO NOTHING`, g.id, op.Actor, op.TS); err != nil {
			return plugins.GroupOpResult{}, err
		}
		return plugins.GroupOpResult{Requested: true}, nil
	}
	if _, err := exec(ctx, tx, qDeleteJoinRequest, g.id, op.Actor); err != nil {
		return plugins.GroupOpResult{}, err
	}
	e := plugins.GroupEntry{Kind: plugins.EntryJoined, TS: op.TS, Actor: op.Actor, Target: op.Actor}
	if err := appendEntry(ctx, tx, g, &e); err != nil {
		return plugins.GroupOpResult{}, err
	}
	return plugins.GroupOpResult{Entry: &e}, addMember(ctx, tx, g, op.Actor, plugins.RoleMember, e.Seq)
}

// Group statements used in several places.
const (
	qDeleteJoinRequest = `DELETE FROM group_requests WHERE group_id = $1 AND member = $2`
	qSetRole           = `UPDATE group_members SET role = $3 WHERE group_id = $1 AND member = $2`
	qDropCursor        = `DELETE FROM group_cursors WHERE member = $1 AND group_id = $2`
	qDropMentions      = `DELETE FROM group_mentions WHERE member = $1 AND group_id = $2`
	qMember            = `SELECT role, join_seq, left_seq, muted_until FROM group_members WHERE group_id = $1 AND member = $2`
)

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

// member reads user's row of group id, if there is one.
func member(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id int64, user string) (memberRow, bool, error) {
	var m memberRow
	var role string
	err := q.QueryRow(ctx, qMember, id, user).Scan(&role, &m.joinSeq, &m.leftSeq, &m.mutedUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("look up member: %w", err)
	}
	m.role = plugins.GroupRole(role)
	return m, true, nil
}

// currentMember reads user's row of group id, or fails with ErrNotMember.
func currentMember(ctx context.Context, tx pgx.Tx, id int64, user string) (memberRow, error) {
	m, found, err := member(ctx, tx, id, user)
	if err != nil {
		return m, err
	}
	if !found || !m.current() {
		return m, fmt.Errorf("group %d: %q: %w", id, user, plugins.ErrNotMember)
	}
	return m, nil
}

// notMember fails with ErrAlreadyMember when user is a member of group id.
func notMember(ctx context.Context, tx pgx.Tx, id int64, user string) error {
	m, found, err := member(ctx, tx, id, user)
	if err != nil {
		return err
	}
	if found && m.current() {
		return fmt.Errorf("group %d: %q: %w", id, user, plugins.ErrAlreadyMember)
	}
	return nil
}

// room fails when user may not join g.
func room(ctx context.Context, tx pgx.Tx, g *groupRow, user string, limits plugins.GroupLimits) error {
	if limits.MaxMembers > 0 && g.members >= int64(limits.MaxMembers) {
		return fmt.Errorf("group %d has %d members: %w", g.id, g.members, plugins.ErrGroupFull)
	}
	return canJoin(ctx, tx, user, limits)
}

// canJoin fails with ErrGroupLimit when user belongs to limits.MaxJoined
// groups.
func canJoin(ctx context.Context, tx pgx.Tx, user string, limits plugins.GroupLimits) error {
	if limits.MaxJoined <= 0 {
		return nil
	}
	var n int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM group_members WHERE member = $1 AND left_seq IS NULL`, user).Scan(&n); err != nil {
		return fmt.Errorf("count groups: %w", err)
	}
	if n >= int64(limits.MaxJoined) {
		return fmt.Errorf("%q belongs to %d groups: %w", user, n, plugins.ErrGroupLimit)
	}
	return nil
}

// canOwn fails with ErrGroupLimit when user owns limits.MaxOwned groups.
func canOwn(ctx context.Context, tx pgx.Tx, user string, limits plugins.GroupLimits) error {
	if limits.MaxOwned <= 0 {
		return nil
	}
	var n int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM groups WHERE owner = $1 AND NOT dissolved`, user).Scan(&n); err != nil {
		return fmt.Errorf("count owned groups: %w", err)
	}
	if n >= int64(limits.MaxOwned) {
		return fmt.Errorf("%q owns %d groups: %w", user, n, plugins.ErrGroupLimit)
	}
	return nil
}

// appendEntry appends e to g's log, under g's row lock: e gets the next
// seq and a timestamp no earlier than the log's last.
func appendEntry(ctx context.Context, tx pgx.Tx, g *groupRow, e *plugins.GroupEntry) error {
	e.Group, e.Seq, e.TS = g.id, g.lastSeq+1, max(e.TS, g.lastTS)
	var until, flag any
	switch e.Kind {
	case plugins.EntryMuted:
		until = e.Until
	case plugins.EntryMuteAll:
		flag = e.On
	}
	_, err := tx.Exec(ctx, `INSERT INTO group_log (group_id, seq, kind, ts, actor, target, name, role, until_ms, flag, policy, history)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		g.id, e.Seq, string(e.Kind), e.TS, nullable(e.Actor), nullable(e.Target),
		nullable(e.Name), nullable(string(e.Role)), until, flag, nullable(string(e.Policy)), nullable(string(e.History)))
	if err != nil {
		return fmt.Errorf("append %s entry: %w", e.Kind, err)
	}
	g.lastSeq, g.lastTS = e.Seq, e.TS
	return nil
}

// putGroup stores g.
func putGroup(ctx context.Context, tx pgx.Tx, g *groupRow) error {
	_, err := tx.Exec(ctx, `UPDATE groups SET name = $2, owner = $3, policy = $4, history = $5, mute_all = $6,
		members = $7, last_seq = $8, last_ts = $9, dissolved = $10 WHERE id = $1`,
		g.id, g.name, g.owner, string(g.policy), string(g.history), g.muteAll, g.members, g.lastSeq, g.lastTS, g.dissolved)
	return err
}

// addMember makes user a member of g with role, since its entry joinSeq,
// with a cursor just before that entry.
func addMember(ctx context.Context, tx pgx.Tx, g *groupRow, user string, role plugins.GroupRole, joinSeq int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO group_members (group_id, member, role, join_seq) VALUES ($1, $2, $3, $4)
		ON CONFLICT (group_id, member) DO UPDATE SET role = $3, join_seq = $4, left_seq = NULL`, g.id, user, string(role), joinSeq); err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO group_cursors (member, group_id, read_seq) VALUES ($1, $2, $3)
		ON CONFLICT (member, group_id) DO UPDATE SET read_seq = GREATEST(group_cursors.read_seq, $3)`, user, g.id, joinSeq-1); err != nil {
		return fmt.Errorf("add cursor: %w", err)
	}
	g.members++
	return nil
}

// removeMember ends user's membership of g at entry seq and drops their
// cursor and mentions.
func removeMember(ctx context.Context, tx pgx.Tx, g *groupRow, user string, seq int64) error {
	n, err := exec(ctx, tx, `UPDATE group_members SET left_seq = $3 WHERE group_id = $1 AND member = $2 AND left_seq IS NULL`, g.id, user, seq)
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("remove member: %q is not a member of group %d", user, g.id)
	}
	for _, q := range []string{qDropCursor, qDropMentions} {
		if _, err := tx.Exec(ctx, q, user, g.id); err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
	}
	g.members--
	return nil
}

// transfer makes to the owner of g, and from (the owner) an admin.
func transfer(ctx context.Context, tx pgx.Tx, g *groupRow, from, to string) error {
	if _, err := tx.Exec(ctx, qSetRole, g.id, from, string(plugins.RoleAdmin)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, qSetRole, g.id, to, string(plugins.RoleOwner)); err != nil {
		return err
	}
	g.owner = to
	return nil
}

// dissolve ends g at its dissolved entry seq: every member is removed at
// seq (without entries of their own), their cursors and mentions and the
// pending requests dropped.
func dissolve(ctx context.Context, tx pgx.Tx, g *groupRow, seq int64) error {
	for _, q := range []string{
		`DELETE FROM group_cursors AS c USING group_members AS m
			WHERE m.group_id = $1 AND m.left_seq IS NULL AND c.member = m.member AND c.group_id = m.group_id`,
		`DELETE FROM group_mentions AS c USING group_members AS m
			WHERE m.group_id = $1 AND m.left_seq IS NULL AND c.member = m.member AND c.group_id = m.group_id`,
		`DELETE FROM group_requests WHERE group_id = $1`,
	} {
		if _, err := tx.Exec(ctx, q, g.id); err != nil {
			return fmt.Errorf("dissolve: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE group_members SET left_seq = $2 WHERE group_id = $1 AND left_seq IS NULL`, g.id, seq); err != nil {
		return fmt.Errorf("dissolve: %w", err)
	}
	g.members, g.dissolved = 0, true
	return nil
}

// leaveGroups, inside DeleteUser's transaction (which holds user's row
// lock), removes user from every group they belong to, locking the groups
// in id order, and drops their cursors, mentions and join requests.
func (s *Store) leaveGroups(ctx context.Context, tx pgx.Tx, user string, ts int64) error {
	rows, err := tx.Query(ctx, `SELECT group_id FROM group_members WHERE member = $1 AND left_seq IS NULL ORDER BY group_id`, user)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	groups, err := lockGroups(ctx, tx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		g := groups[id]
		if g == nil {
			return fmt.Errorf("group %d: gone", id)
		}
		if g.owner == user {
			var next string
			err := tx.QueryRow(ctx, `SELECT member FROM group_members
				WHERE group_id = $1 AND member != $2 AND left_seq IS NULL
				ORDER BY (role = 'admin') DESC, join_seq, member LIMIT 1`, id, user).Scan(&next)
			switch {
			case errors.Is(err, pgx.ErrNoRows): // the last member
				e := plugins.GroupEntry{Kind: plugins.EntryDissolved, TS: ts, Actor: user}
				if err := appendEntry(ctx, tx, g, &e); err != nil {
					return err
				}
				if err := dissolve(ctx, tx, g, e.Seq); err != nil {
					return err
				}
				if err := putGroup(ctx, tx, g); err != nil {
					return err
				}
				continue
			case err != nil:
				return fmt.Errorf("group %d: successor: %w", id, err)
			}
			e := plugins.GroupEntry{Kind: plugins.EntryOwner, TS: ts, Actor: user, Target: next}
			if err := appendEntry(ctx, tx, g, &e); err != nil {
				return err
			}
			if err := transfer(ctx, tx, g, user, next); err != nil {
				return err
			}
		}
		e := plugins.GroupEntry{Kind: plugins.EntryLeft, TS: ts, Target: user}
		if err := appendEntry(ctx, tx, g, &e); err != nil {
			return err
		}
		if err := removeMember(ctx, tx, g, user, e.Seq); err != nil {
			return err
		}
		if err := putGroup(ctx, tx, g); err != nil {
			return err
		}
	}
	for _, q := range []string{
		`DELETE FROM group_cursors WHERE member = $1`,
		`DELETE FROM group_mentions WHERE member = $1`,
		`DELETE FROM group_requests WHERE member = $1`,
	} {
		if _, err := tx.Exec(ctx, q, user); err != nil {
			return err
		}
	}
	return nil
}

// ---- reads --------------------------------------------------------------

// Group implements plugins.Groups.
func (s *Store) Group(ctx context.Context, id int64) (plugins.GroupInfo, error) {
	if s.closed.Load() {
		return plugins.GroupInfo{}, fmt.Errorf("pgstore: group: %w", ErrClosed)
	}
	g := groupRow{id: id}
	found, err := scanGroup(s.pool.QueryRow(ctx, `SELECT `+groupCols+` FROM groups WHERE id = $1`, id), &g)
	if err != nil {
		return plugins.GroupInfo{}, fmt.Errorf("pgstore: group: %w", err)
	}
	if !found {
		return plugins.GroupInfo{}, fmt.Errorf("pgstore: group %d: %w", id, plugins.ErrNoGroup)
	}
	return g.info(), nil
}

// UserGroups implements plugins.Groups: one statement, so one snapshot.
func (s *Store) UserGroups(ctx context.Context, user string) ([]plugins.UserGroup, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("pgstore: user groups: %w", ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT g.id, g.name, g.owner, g.policy, g.history, g.mute_all, g.members, g.last_seq, g.dissolved,
			m.role, m.join_seq, c.read_seq, c.mentions,
			(SELECT count(*) FROM group_log AS l WHERE l.group_id = g.id AND l.mention_all AND l.seq > c.read_seq)
		FROM group_members AS m
			JOIN groups AS g ON g.id = m.group_id
			JOIN group_cursors AS c ON c.member = m.member AND c.group_id = m.group_id
		WHERE m.member = $1 AND m.left_seq IS NULL
		ORDER BY m.group_id`, user)
	if err != nil {
		return nil, fmt.Errorf("pgstore: user groups: %w", err)
	}
	defer rows.Close()
	var out []plugins.UserGroup
	for rows.Next() {
		var (
			ug                    plugins.UserGroup
			g                     groupRow
			named, to             int64
			policy, history, role string
		)
		if err := rows.Scan(&g.id, &g.name, &g.owner, &policy, &history, &g.muteAll, &g.members, &g.lastSeq, &g.dissolved,
			&role, &ug.JoinSeq, &ug.ReadSeq, &named, &to); err != nil {
			return nil, fmt.Errorf("pgstore: user groups: %w", err)
		}
		g.policy, g.history, ug.Role = plugins.GroupPolicy(policy), plugins.GroupHistory(history), plugins.GroupRole(role)
		ug.GroupInfo = g.info()
		ug.Unread = max(g.lastSeq-ug.ReadSeq, 0)
		ug.Mentions = named + to
		out = append(out, ug)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: user groups: %w", err)
	}
	return out, nil
}

// Members implements plugins.Groups.
func (s *Store) Members(ctx context.Context, id int64, after string, limit int) ([]plugins.Member, bool, error) {
	if s.closed.Load() {
		return nil, false, fmt.Errorf("pgstore: members: %w", ErrClosed)
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("pgstore: members: limit %d is not positive", limit)
	}
	if _, err := s.Group(ctx, id); err != nil {
		return nil, false, err
	}
	rows, err := s.pool.Query(ctx, `SELECT member, role, join_seq, muted_until FROM group_members
		WHERE group_id = $1 AND member > $2 AND left_seq IS NULL ORDER BY member LIMIT $3`, id, after, pageLimit(limit))
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: members: %w", err)
	}
	defer rows.Close()
	out := make([]plugins.Member, 0, min(limit, maxPrealloc)+1)
	for rows.Next() {
		var m plugins.Member
		var role string
		if err := rows.Scan(&m.User, &role, &m.JoinSeq, &m.MutedUntil); err != nil {
			return nil, false, fmt.Errorf("pgstore: members: %w", err)
		}
		m.Role = plugins.GroupRole(role)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("pgstore: members: %w", err)
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
		return nil, fmt.Errorf("pgstore: join requests: %w", ErrClosed)
	}
	if _, err := s.Group(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT member, ts FROM group_requests WHERE group_id = $1 ORDER BY ts, id`, id)
	if err != nil {
		return nil, fmt.Errorf("pgstore: join requests: %w", err)
	}
	defer rows.Close()
	var out []plugins.JoinRequest
	for rows.Next() {
		var r plugins.JoinRequest
		if err := rows.Scan(&r.User, &r.TS); err != nil {
			return nil, fmt.Errorf("pgstore: join requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: join requests: %w", err)
	}
	return out, nil
}

// Log implements plugins.Groups (see sqlitestore's: entries never change
// once appended, so the membership row and the page need not be read in
// one snapshot).
func (s *Store) Log(ctx context.Context, id int64, user string, after, before int64, limit int) ([]plugins.GroupEntry, bool, error) {
	if s.closed.Load() {
		return nil, false, fmt.Errorf("pgstore: group log: %w", ErrClosed)
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("pgstore: group log: limit %d is not positive", limit)
	}
	g := groupRow{id: id}
	found, err := scanGroup(s.pool.QueryRow(ctx, `SELECT `+groupCols+` FROM groups WHERE id = $1`, id), &g)
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: group log: %w", err)
	}
	if !found {
		return nil, false, fmt.Errorf("pgstore: group log: group %d: %w", id, plugins.ErrNoGroup)
	}
	m, found, err := member(ctx, s.pool, id, user)
	switch {
	case err != nil:
		return nil, false, fmt.Errorf("pgstore: group log: %w", err)
	case !found:
		return nil, false, fmt.Errorf("pgstore: group log: group %d: %q: %w", id, user, plugins.ErrNotMember)
	}
	lo, hi := m.joinSeq, g.lastSeq
	if g.history == plugins.HistoryShared {
		lo = 1
	}
	if m.leftSeq != nil {
		hi = *m.leftSeq
	}
	q := `SELECT ` + entryCols + ` FROM group_log WHERE group_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4`
	if before > 0 {
		q = `SELECT ` + entryCols + ` FROM group_log WHERE group_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq DESC LIMIT $4`
		hi = min(hi, before-1)
	} else {
		lo = max(lo, after+1)
	}
	if lo > hi {
		return nil, false, nil
	}
	rows, err := s.pool.Query(ctx, q, id, lo, hi, pageLimit(limit))
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: group log: %w", err)
	}
	defer rows.Close()
	out := make([]plugins.GroupEntry, 0, min(limit, maxPrealloc)+1)
	for rows.Next() {
		var e plugins.GroupEntry
		if err := scanEntry(rows, &e); err != nil {
			return nil, false, fmt.Errorf("pgstore: group log: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("pgstore: group log: %w", err)
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
