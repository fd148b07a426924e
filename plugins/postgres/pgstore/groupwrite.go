package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/msgid"
)

// senderState is what the checks of a group message read about its
// sender, kept for the rest of the batch.
type senderState struct {
	member     bool
	role       plugins.GroupRole
	mutedUntil int64
	mentions   int64 // named mentions the sender's cursor holds
}

type senderKey struct {
	group int64
	user  string
}

// appendGroup stores, inside tx, the group messages of a batch (see
// plugins.Groups); groups holds the batch's groups, locked. Each entry
// takes the next seq of its group under that lock.
func (s *Store) appendGroup(ctx context.Context, tx pgx.Tx, msgs []plugins.NewGroupMessage, limits plugins.GroupLimits, groups map[int64]*groupRow, first *firstNew) ([]plugins.AppendResult, error) {
	results := make([]plugins.AppendResult, len(msgs))
	if len(msgs) == 0 {
		return results, nil
	}
	appended := make(map[*groupRow]bool)
	senders := make(map[senderKey]*senderState)
	sender := func(id int64, user string) (*senderState, error) {
		k := senderKey{id, user}
		if st, ok := senders[k]; ok {
			return st, nil
		}
		st := &senderState{}
		var role string
		err := tx.QueryRow(ctx, `SELECT m.role, m.muted_until, coalesce(c.mentions, 0)
			FROM group_members AS m LEFT JOIN group_cursors AS c ON c.member = m.member AND c.group_id = m.group_id
			WHERE m.group_id = $1 AND m.member = $2 AND m.left_seq IS NULL`, id, user).Scan(&role, &st.mutedUntil, &st.mentions)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("look up member: %w", err)
		default:
			st.member, st.role = true, plugins.GroupRole(role)
		}
		senders[k] = st
		return st, nil
	}

	batchTS := s.now().UnixMilli()
	for i := range msgs {
		m := &msgs[i]
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		g := groups[m.Group]
		var st *senderState
		if g != nil && !g.dissolved {
			var err error
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
			refused = fmt.Errorf("pgstore: group %d: %w", m.Group, plugins.ErrNoGroup)
		case !st.member:
			refused = fmt.Errorf("pgstore: group %d: %q: %w", m.Group, m.From, plugins.ErrNotMember)
		case st.mutedUntil > ts:
			refused = fmt.Errorf("pgstore: group %d: %q is muted: %w", m.Group, m.From, plugins.ErrMuted)
		case g.muteAll && st.role == plugins.RoleMember:
			refused = fmt.Errorf("pgstore: group %d is muted for members: %w", m.Group, plugins.ErrMuted)
		case all && st.role == plugins.RoleMember:
			refused = fmt.Errorf("pgstore: group %d: only admins mention all: %w", m.Group, plugins.ErrNotAllowed)
		case limits.MaxMentions > 0 && len(m.Mentions) > limits.MaxMentions:
			refused = fmt.Errorf("pgstore: %d mentions, more than %d: %w", len(m.Mentions), limits.MaxMentions, plugins.ErrNotAllowed)
		}
		if refused != nil {
			if m.CID != "" {
				r, found, err := storedCID(ctx, tx, m.From, m.CID)
				if err != nil {
					return nil, err
				}
				if found {
					results[i] = r
					continue
				}
			}
			results[i].Err = refused
			continue
		}
		if m.CID != "" {
			taken, err := takeCID(ctx, tx, m.From, m.CID, ts)
			if err != nil {
				return nil, err
			}
			if taken {
				r, found, err := storedCID(ctx, tx, m.From, m.CID)
				if err != nil {
					return nil, err
				}
				if !found {
					return nil, fmt.Errorf("the cid %q of %q is taken but names no message", m.CID, m.From)
				}
				results[i] = r
				continue
			}
		}

		e := plugins.GroupEntry{
			Group: g.id, Seq: g.lastSeq + 1, Kind: plugins.EntryMsg, TS: ts,
			From: m.From, Body: m.Body, Mentions: slices.Clone(m.Mentions), MsgID: msgid.New(ts), CID: m.CID,
		}
		var mentions []string // NULL when none
		if len(m.Mentions) > 0 {
			mentions = m.Mentions
		}
		_, err := tx.Exec(ctx, `INSERT INTO group_log (group_id, seq, kind, ts, sender, body, mentions, mention_all, msg_id, cid)
			VALUES ($1, $2, 'msg', $3, $4, $5, $6, $7, $8, $9)`,
			g.id, e.Seq, e.TS, m.From, []byte(m.Body), mentions, all, e.MsgID, nullable(m.CID))
		if err != nil {
			return nil, fmt.Errorf("insert group message: %w", err)
		}
		appended[g] = true
		g.lastSeq, g.lastTS = e.Seq, e.TS
		if first.msgID == "" {
			*first = firstNew{msgID: e.MsgID, group: g.id, seq: e.Seq}
		}

		// The sender has read their own message, and every mention of
		// them before it.
		if _, err := tx.Exec(ctx, `UPDATE group_cursors SET read_seq = $3
			WHERE member = $1 AND group_id = $2 AND read_seq < $3`, m.From, g.id, e.Seq); err != nil {
			return nil, fmt.Errorf("move cursor: %w", err)
		}
		if st.mentions > 0 {
			if err := passMentions(ctx, tx, m.From, g.id, e.Seq); err != nil {
				return nil, err
			}
			st.mentions = 0
		}
		if !all {
			for j, name := range m.Mentions {
				if name == m.From || slices.Contains(m.Mentions[:j], name) {
					continue
				}
				n, err := exec(ctx, tx, `INSERT INTO group_mentions (member, group_id, seq)
					SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM group_cursors WHERE member = $1 AND group_id = $2)
					ON CONFLICT DO NOTHING`, name, g.id, e.Seq)
				if err != nil {
					return nil, fmt.Errorf("mention: %w", err)
				}
				if n == 0 { // not a member
					continue
				}
				if _, err := tx.Exec(ctx, `UPDATE group_cursors SET mentions = mentions + 1 WHERE member = $1 AND group_id = $2`, name, g.id); err != nil {
					return nil, fmt.Errorf("mention: %w", err)
				}
				if other, ok := senders[senderKey{g.id, name}]; ok {
					other.mentions++
				}
			}
		}
		results[i] = plugins.AppendResult{Group: &e}
	}
	for g := range appended {
		if _, err := tx.Exec(ctx, `UPDATE groups SET last_seq = $2, last_ts = $3 WHERE id = $1`, g.id, g.lastSeq, g.lastTS); err != nil {
			return nil, fmt.Errorf("update group: %w", err)
		}
	}
	return results, nil
}

// passMentions drops user's named mentions in group up to seq, which
// their cursor passed, and recounts the rest.
func passMentions(ctx context.Context, tx pgx.Tx, user string, group, seq int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM group_mentions WHERE member = $1 AND group_id = $2 AND seq <= $3`, user, group, seq); err != nil {
		return fmt.Errorf("pass mentions: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE group_cursors SET mentions =
		(SELECT count(*) FROM group_mentions WHERE member = $1 AND group_id = $2)
		WHERE member = $1 AND group_id = $2`, user, group); err != nil {
		return fmt.Errorf("pass mentions: %w", err)
	}
	return nil
}

// ackGroups moves, inside tx, the cursors of acks forward (never back,
// never past the log's end; acks of non-members change nothing). The
// acks' groups are locked.
func (s *Store) ackGroups(ctx context.Context, tx pgx.Tx, acks []plugins.GroupAck) error {
	for i, a := range acks {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var readSeq, mentions int64
		err := tx.QueryRow(ctx, `UPDATE group_cursors SET read_seq = LEAST($3, (SELECT last_seq FROM groups WHERE id = $2))
			WHERE member = $1 AND group_id = $2 AND read_seq < LEAST($3, (SELECT last_seq FROM groups WHERE id = $2))
			RETURNING read_seq, mentions`, a.User, a.Group, a.Seq).Scan(&readSeq, &mentions)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			continue
		case err != nil:
			return fmt.Errorf("group ack: %w", err)
		}
		if mentions > 0 {
			if err := passMentions(ctx, tx, a.User, a.Group, readSeq); err != nil {
				return err
			}
		}
	}
	return nil
}
