package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/msgid"
)

// firstGroupEntry names the first group message a Write stored, for
// commitMaybeWritten.
type firstGroupEntry struct {
	group, seq int64
	msgID      string
}

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
// plugins.Groups) and returns their results and the first one it stored.
//
// Per message it reads the group's row and the sender's membership once
// per batch, inserts one log row (which also settles de-duplication),
// moves the sender's cursor and counts the named mentions of members: its
// cost does not depend on how many members the group has. The groups'
// last seq and ts are written once per batch, at the end.
func (s *Store) appendGroup(ctx context.Context, tx *sql.Tx, msgs []plugins.NewGroupMessage, limits plugins.GroupLimits) ([]plugins.AppendResult, firstGroupEntry, error) {
	var first firstGroupEntry
	results := make([]plugins.AppendResult, len(msgs))
	if len(msgs) == 0 {
		return results, first, nil
	}
	t := newTxStmts(statementContext(ctx), tx)
	groups := make(map[int64]*groupRow)
	appended := make(map[*groupRow]bool) // groups whose last seq moved
	senders := make(map[senderKey]*senderState)

	group := func(id int64) (*groupRow, error) {
		if g, ok := groups[id]; ok {
			return g, nil
		}
		g := &groupRow{id: id}
		found, err := scanGroup(t.row(s.stGroupW, id), g)
		if err != nil {
			return nil, fmt.Errorf("look up group: %w", err)
		}
		if !found {
			g = nil
		}
		groups[id] = g
		return g, nil
	}
	sender := func(id int64, user string) (*senderState, error) {
		k := senderKey{id, user}
		if st, ok := senders[k]; ok {
			return st, nil
		}
		st := &senderState{}
		err := t.row(s.stSender, id, user).Scan(&st.role, &st.mutedUntil, &st.mentions)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("look up member: %w", err)
		default:
			st.member = true
		}
		senders[k] = st
		return st, nil
	}

	batchTS := s.nextTS()
	for i := range msgs {
		m := &msgs[i]
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, first, err
			}
		}
		g, err := group(m.Group)
		if err != nil {
			return nil, first, err
		}
		var st *senderState
		if g != nil && !g.dissolved {
			if st, err = sender(g.id, m.From); err != nil {
				return nil, first, err
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
			refused = fmt.Errorf("sqlitestore: group %d: %w", m.Group, plugins.ErrNoGroup)
		case !st.member:
			refused = fmt.Errorf("sqlitestore: group %d: %q: %w", m.Group, m.From, plugins.ErrNotMember)
		case st.mutedUntil > ts:
			refused = fmt.Errorf("sqlitestore: group %d: %q is muted: %w", m.Group, m.From, plugins.ErrMuted)
		case g.muteAll && st.role == plugins.RoleMember:
			refused = fmt.Errorf("sqlitestore: group %d is muted for members: %w", m.Group, plugins.ErrMuted)
		case all && st.role == plugins.RoleMember:
			refused = fmt.Errorf("sqlitestore: group %d: only admins mention all: %w", m.Group, plugins.ErrNotAllowed)
		case limits.MaxMentions > 0 && len(m.Mentions) > limits.MaxMentions:
			refused = fmt.Errorf("sqlitestore: %d mentions, more than %d: %w", len(m.Mentions), limits.MaxMentions, plugins.ErrNotAllowed)
		}
		if refused != nil {
			// A retry of a message stored before is answered with it,
			// whatever the checks say now.
			if m.CID != "" {
				if r, found, err := s.storedCID(t, m.From, m.CID); err != nil {
					return nil, first, err
				} else if found {
					results[i] = r
					continue
				}
			}
			results[i].Err = refused
			continue
		}

		e := plugins.GroupEntry{
			Group: g.id, Seq: g.lastSeq + 1, Kind: plugins.EntryMsg, TS: ts,
			From: m.From, Body: m.Body, Mentions: slices.Clone(m.Mentions), MsgID: msgid.New(ts), CID: m.CID,
		}
		var mentions any // NULL when none
		if len(m.Mentions) > 0 {
			b, err := json.Marshal(m.Mentions)
			if err != nil {
				return nil, first, fmt.Errorf("mentions: %w", err)
			}
			mentions = string(b)
		}
		n, err := t.exec(s.stGroupInsert, g.id, e.Seq, e.TS, m.From, m.Body, mentions, all, e.MsgID, nullable(m.CID))
		if err != nil {
			return nil, first, fmt.Errorf("insert group message: %w", err)
		}
		if n == 0 { // the (sender, cid) is taken, by a message of either kind
			r, found, err := s.storedCID(t, m.From, m.CID)
			if err != nil {
				return nil, first, err
			}
			if !found {
				return nil, first, fmt.Errorf("insert: group message from %q was not stored, for no known reason", m.From)
			}
			results[i] = r
			continue
		}
		appended[g] = true
		g.lastSeq, g.lastTS = e.Seq, e.TS
		if first.msgID == "" {
			first = firstGroupEntry{g.id, e.Seq, e.MsgID}
		}

		// The sender has read their own message, and every mention of
		// them before it.
		if _, err := t.exec(s.stSenderCursor, m.From, g.id, e.Seq); err != nil {
			return nil, first, fmt.Errorf("move cursor: %w", err)
		}
		if st.mentions > 0 {
			if err := s.passMentions(t, m.From, g.id, e.Seq); err != nil {
				return nil, first, err
			}
			st.mentions = 0
		}
		// Named mentions count for members only, once per message, not
		// for the sender; a message to all counts for everyone at read
		// time (qUserGroups).
		if !all {
			for j, name := range m.Mentions {
				if name == m.From || slices.Contains(m.Mentions[:j], name) {
					continue
				}
				n, err := t.exec(s.stMention, name, g.id, e.Seq)
				if err != nil {
					return nil, first, fmt.Errorf("mention: %w", err)
				}
				if n == 0 { // not a member
					continue
				}
				if _, err := t.exec(s.stCountMention, name, g.id); err != nil {
					return nil, first, fmt.Errorf("mention: %w", err)
				}
				if other, ok := senders[senderKey{g.id, name}]; ok {
					other.mentions++
				}
			}
		}
		results[i] = plugins.AppendResult{Group: &e}
	}
	for g := range appended {
		if _, err := t.exec(s.stGroupSeq, g.id, g.lastSeq, g.lastTS); err != nil {
			return nil, first, fmt.Errorf("update group: %w", err)
		}
	}
	return results, first, nil
}

// passMentions drops user's named mentions in group up to seq, which
// their cursor passed, and recounts the rest.
func (s *Store) passMentions(t *txStmts, user string, group, seq int64) error {
	if _, err := t.exec(s.stPassMentions, user, group, seq); err != nil {
		return fmt.Errorf("pass mentions: %w", err)
	}
	if _, err := t.exec(s.stRecountMentions, user, group); err != nil {
		return fmt.Errorf("pass mentions: %w", err)
	}
	return nil
}

// ackGroups moves, inside tx, the cursors of acks forward (never back,
// never past the log's end; acks of non-members change nothing).
func (s *Store) ackGroups(ctx context.Context, tx *sql.Tx, acks []plugins.GroupAck) error {
	if len(acks) == 0 {
		return nil
	}
	t := newTxStmts(statementContext(ctx), tx)
	for i, a := range acks {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var readSeq, mentions int64
		err := t.row(s.stAckGroup, a.User, a.Group, a.Seq).Scan(&readSeq, &mentions)
		switch {
		case errors.Is(err, sql.ErrNoRows): // not forward, or not a member
			continue
		case err != nil:
			return fmt.Errorf("group ack: %w", err)
		}
		if mentions > 0 {
			if err := s.passMentions(t, a.User, a.Group, readSeq); err != nil {
				return err
			}
		}
	}
	return nil
}

// storedCID looks up, inside a write transaction, the message stored
// under (from, cid), of either kind, as a Duplicate result.
func (s *Store) storedCID(t *txStmts, from, cid string) (plugins.AppendResult, bool, error) {
	r := plugins.AppendResult{Duplicate: true}
	var e plugins.GroupEntry
	err := scanEntry(t.row(s.stGroupLookupCID, from, cid).Scan, &e)
	switch {
	case err == nil:
		r.Group = &e
		return r, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return r, false, fmt.Errorf("look up cid: %w", err)
	}
	r.Message.From = from
	err = t.row(s.stLookupCID, from, cid).Scan(&r.Message.ID, &r.Message.To, &r.Message.Body, &r.Message.TS, &r.Status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return plugins.AppendResult{}, false, nil
	case err != nil:
		return r, false, fmt.Errorf("look up cid: %w", err)
	}
	return r, true, nil
}

// lookupGroupCIDs fills, for the keys with no result yet, the group
// message stored under them (see LookupCIDs).
func (s *Store) lookupGroupCIDs(ctx context.Context, keys []plugins.CIDKey, results []plugins.AppendResult) error {
	arg := make([]any, 0, len(keys))
	for i, k := range keys {
		if k.CID != "" && !results[i].Duplicate {
			arg = append(arg, [3]any{i, k.From, k.CID})
		}
	}
	if len(arg) == 0 {
		return nil
	}
	keyJSON, err := json.Marshal(arg)
	if err != nil {
		return err
	}
	rows, err := s.stGroupLookupCIDs.QueryContext(ctx, string(keyJSON))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			i int
			e plugins.GroupEntry
		)
		if err := scanEntry(rows.Scan, &e, &i); err != nil {
			return err
		}
		if i < 0 || i >= len(keys) {
			return fmt.Errorf("key index %d out of range", i)
		}
		results[i] = plugins.AppendResult{Duplicate: true, Group: &e}
	}
	return rows.Err()
}
