package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/msgid"
)

// probeTimeout bounds the lookup that settles the outcome of a failed
// COMMIT.
const probeTimeout = 5 * time.Second

// firstNew names the first message a Write stored (direct: msgID; group:
// group, seq and msgID), for settling a failed commit.
type firstNew struct {
	msgID      string
	group, seq int64
}

// Write stores the batch's messages and applies its acks in one
// transaction; see the package documentation for the locks it takes and
// the seqs it assigns.
func (s *Store) Write(ctx context.Context, b *plugins.WriteBatch) ([]plugins.AppendResult, error) {
	if s.closed.Load() {
		return nil, &plugins.WriteError{Err: fmt.Errorf("pgstore: write: %w", ErrClosed)}
	}
	if err := ctx.Err(); err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("pgstore: write: %w", err)}
	}
	if b == nil || len(b.Messages)+len(b.Acks)+len(b.GroupMessages)+len(b.GroupAcks) == 0 {
		return []plugins.AppendResult{}, nil
	}
	var (
		results []plugins.AppendResult
		first   firstNew
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		results, first, err = s.write(ctx, tx, b)
		return err
	})
	if err == nil {
		return results, nil
	}
	var te *txError
	maybe := errors.As(err, &te) && te.commit
	if maybe {
		maybe = s.probe(first)
		s.log.Warn("pgstore: commit failed", "err", err, "maybe_written", maybe)
	}
	return nil, &plugins.WriteError{MaybeWritten: maybe, Err: fmt.Errorf("pgstore: write: %w", err)}
}

// probe settles, after COMMIT failed, whether the batch may be stored: it
// looks for the batch's first new message. It answers true when it cannot
// tell (the batch stored no new message, or the lookup failed).
func (s *Store) probe(first firstNew) bool {
	if first.msgID == "" {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	q, args := `SELECT EXISTS (SELECT 1 FROM messages WHERE msg_id = $1)`, []any{first.msgID}
	if first.group != 0 {
		q, args = `SELECT EXISTS (SELECT 1 FROM group_log WHERE group_id = $1 AND seq = $2 AND msg_id = $3)`,
			[]any{first.group, first.seq, first.msgID}
	}
	var found bool
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&found); err != nil {
		s.log.Warn("pgstore: cannot settle the outcome of a failed commit", "err", err)
		return true
	}
	return found
}

// pair is an ordered pair of users.
type pair struct{ a, b string }

// write is one attempt of Write, inside tx.
func (s *Store) write(ctx context.Context, tx pgx.Tx, b *plugins.WriteBatch) ([]plugins.AppendResult, firstNew, error) {
	var first firstNew
	// Every user row the batch reads or changes, locked in name order;
	// then every group row, in id order. Every transaction of the store
	// locks users before groups.
	names := make([]string, 0, 2*len(b.Messages)+len(b.Acks))
	for _, m := range b.Messages {
		names = append(names, m.From, m.To)
	}
	for _, a := range b.Acks {
		names = append(names, a.User)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var users map[string]*userRow
	if len(names) > 0 {
		var err error
		if users, err = lockUsers(ctx, tx, names); err != nil {
			return nil, first, err
		}
	}
	var groupIDs []int64
	for _, m := range b.GroupMessages {
		groupIDs = append(groupIDs, m.Group)
	}
	for _, a := range b.GroupAcks {
		groupIDs = append(groupIDs, a.Group)
	}
	slices.Sort(groupIDs)
	groupIDs = slices.Compact(groupIDs)
	groups, err := lockGroups(ctx, tx, groupIDs)
	if err != nil {
		return nil, first, err
	}

	results, err := s.appendDirect(ctx, tx, b.Messages, users, &first)
	if err != nil {
		return nil, first, fmt.Errorf("append: %w", err)
	}
	groupResults, err := s.appendGroup(ctx, tx, b.GroupMessages, b.GroupLimits, groups, &first)
	if err != nil {
		return nil, first, fmt.Errorf("append group messages: %w", err)
	}
	var ackUsers, ackIDs []string
	for _, a := range b.Acks {
		for _, id := range a.MsgIDs {
			ackUsers, ackIDs = append(ackUsers, a.User), append(ackIDs, id)
		}
	}
	if len(ackIDs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE messages AS m SET pending = false
			FROM unnest($1::text[], $2::text[]) AS a(recipient, msg_id)
			WHERE m.msg_id = a.msg_id AND m.recipient = a.recipient AND m.pending`, ackUsers, ackIDs); err != nil {
			return nil, first, fmt.Errorf("ack: %w", err)
		}
	}
	if err := s.ackGroups(ctx, tx, b.GroupAcks); err != nil {
		return nil, first, fmt.Errorf("group ack: %w", err)
	}
	// The counters of the recipients, once per batch.
	var (
		cn       []string
		cseq, ct []int64
	)
	for name, u := range users {
		if u.changed {
			cn, cseq, ct = append(cn, name), append(cseq, u.seq), append(ct, u.lastTS)
		}
	}
	if len(cn) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE users AS u SET msg_seq = v.seq, last_ts = v.ts
			FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(name, seq, ts) WHERE u.name = v.name`, cn, cseq, ct); err != nil {
			return nil, first, fmt.Errorf("update counters: %w", err)
		}
	}
	return append(results, groupResults...), first, nil
}

// cidKey is a de-duplication key.
type cidKey struct{ from, cid string }

// appendDirect stores, inside tx, the direct messages of a batch, whose
// users are locked (users: those that exist). Its cost in round trips
// does not grow with the batch: one statement claims every new cid, one
// looks up the messages of the cids found taken, one COPY stores the
// messages.
func (s *Store) appendDirect(ctx context.Context, tx pgx.Tx, msgs []plugins.NewMessage, users map[string]*userRow, first *firstNew) ([]plugins.AppendResult, error) {
	results := make([]plugins.AppendResult, len(msgs))
	if len(msgs) == 0 {
		return results, nil
	}
	// One timestamp for the batch: now, but no earlier than the last
	// message any of its users sent or received, so that timestamps never
	// decrease along a recipient's seq nor along a conversation, whatever
	// the clocks of the nodes.
	ts := s.now().UnixMilli()
	var blockQ, friendQ [2][]string
	for _, m := range msgs {
		for _, name := range []string{m.To, m.From} {
			if u := users[name]; u != nil {
				ts = max(ts, u.lastTS)
			}
		}
		blockQ[0], blockQ[1] = append(blockQ[0], m.To), append(blockQ[1], m.From)
		if m.FriendsOnly {
			friendQ[0], friendQ[1] = append(friendQ[0], m.From), append(friendQ[1], m.To)
		}
	}
	blocked, err := pairsIn(ctx, tx, `SELECT blocker, blocked FROM blocks
		WHERE (blocker, blocked) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, blockQ)
	if err != nil {
		return nil, fmt.Errorf("look up blocks: %w", err)
	}
	friends := map[pair]bool{}
	if len(friendQ[0]) > 0 {
		if friends, err = pairsIn(ctx, tx, `SELECT owner, friend FROM friends
			WHERE (owner, friend) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, friendQ); err != nil {
			return nil, fmt.Errorf("look up friends: %w", err)
		}
	}

	// The checks, message by message: refused[i] is why message i is
	// not stored (unless its cid names a stored message).
	refused := make([]error, len(msgs))
	for i, m := range msgs {
		for _, name := range []string{m.To, m.From} {
			if u := users[name]; u == nil || !u.live {
				refused[i] = fmt.Errorf("pgstore: user %q: %w", name, plugins.ErrUnknownUser)
				break
			}
		}
		if refused[i] == nil {
			switch {
			case blocked[pair{m.To, m.From}]:
				refused[i] = fmt.Errorf("pgstore: %q blocks %q: %w", m.To, m.From, plugins.ErrBlocked)
			case m.FriendsOnly && m.From != m.To && !friends[pair{m.From, m.To}]:
				refused[i] = fmt.Errorf("pgstore: %q and %q: %w", m.From, m.To, plugins.ErrNotFriends)
			}
		}
	}
	// Claim the cids of the messages that passed (each key once): a key
	// not claimed is taken, by a message stored before (perhaps by a
	// transaction on another node that the claim waited for). Look up
	// the messages of the taken keys, and of the refused messages' keys.
	var claim [2][]string
	claiming := map[cidKey]bool{}
	for i, m := range msgs {
		k := cidKey{m.From, m.CID}
		if m.CID != "" && refused[i] == nil && !claiming[k] {
			claiming[k] = true
			claim[0], claim[1] = append(claim[0], m.From), append(claim[1], m.CID)
		}
	}
	claimed := map[pair]bool{}
	if len(claim[0]) > 0 {
		rows, err := tx.Query(ctx, `INSERT INTO cids (sender, cid, ts)
			SELECT sender, cid, $3 FROM unnest($1::text[], $2::text[]) AS k(sender, cid)
			ON CONFLICT DO NOTHING RETURNING sender, cid`, claim[0], claim[1], ts)
		if err != nil {
			return nil, fmt.Errorf("claim cids: %w", err)
		}
		a, b, err := collectPairs(rows)
		if err != nil {
			return nil, fmt.Errorf("claim cids: %w", err)
		}
		for i := range a {
			claimed[pair{a[i], b[i]}] = true
		}
	}
	var look []plugins.CIDKey
	for i, m := range msgs {
		if m.CID != "" && (refused[i] != nil || !claimed[pair{m.From, m.CID}]) {
			look = append(look, plugins.CIDKey{From: m.From, CID: m.CID})
		}
	}
	existing := map[cidKey]plugins.AppendResult{}
	if len(look) > 0 {
		found, err := lookupCIDs(ctx, tx, look)
		if err != nil {
			return nil, fmt.Errorf("look up cids: %w", err)
		}
		for i, k := range look {
			if found[i].Duplicate {
				existing[cidKey{k.From, k.CID}] = found[i]
			}
		}
	}

	// In order, as if one by one: a retry of a message stored before (in
	// an earlier batch or earlier in this one) is answered with it,
	// whatever the checks say now; the others are stored or refused.
	inBatch := map[cidKey]plugins.AppendResult{}
	var rows [][]any
	for i, m := range msgs {
		k := cidKey{m.From, m.CID}
		if m.CID != "" {
			if r, ok := inBatch[k]; ok {
				results[i] = r
				continue
			}
			if r, ok := existing[k]; ok {
				results[i] = r
				continue
			}
		}
		if refused[i] != nil {
			results[i].Err = refused[i]
			continue
		}
		if m.CID != "" && !claimed[pair{m.From, m.CID}] {
			return nil, fmt.Errorf("the cid %q of %q is taken but names no message", m.CID, m.From)
		}
		u := users[m.To]
		u.seq++
		u.lastTS, u.changed = ts, true
		sender := users[m.From]
		sender.lastTS, sender.changed = ts, true
		id := msgid.New(ts)
		rows = append(rows, []any{id, m.From, m.To, convKey(m.From, m.To), []byte(m.Body), ts, nullable(m.CID), string(m.Status), u.seq})
		if first.msgID == "" {
			*first = firstNew{msgID: id}
		}
		results[i] = plugins.AppendResult{
			Message: protocol.Message{ID: id, From: m.From, To: m.To, Body: m.Body, TS: ts, Seq: u.seq},
			Status:  m.Status,
		}
		if m.CID != "" {
			dup := results[i]
			dup.Duplicate = true
			inBatch[k] = dup
		}
	}
	if len(rows) > 0 {
		// COPY keeps the rows' order: their ids (the total order) follow
		// the batch.
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"},
			[]string{"msg_id", "sender", "recipient", "conv", "body", "ts", "cid", "status", "seq"}, pgx.CopyFromRows(rows)); err != nil {
			return nil, fmt.Errorf("insert: %w", err)
		}
	}
	return results, nil
}

// takeCID claims the de-duplication key (from, cid) inside tx; taken
// reports that a message (of either kind, of this transaction or of one
// that committed, perhaps on another node) has it already. A concurrent
// transaction holding the same key makes it wait for that one's end.
func takeCID(ctx context.Context, tx pgx.Tx, from, cid string, ts int64) (taken bool, err error) {
	n, err := exec(ctx, tx, `INSERT INTO cids (sender, cid, ts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, from, cid, ts)
	if err != nil {
		return false, fmt.Errorf("claim cid: %w", err)
	}
	return n == 0, nil
}

// pairsIn runs q, which selects pairs among those of the two arrays in q2.
func pairsIn(ctx context.Context, tx pgx.Tx, q string, q2 [2][]string) (map[pair]bool, error) {
	rows, err := tx.Query(ctx, q, q2[0], q2[1])
	if err != nil {
		return nil, err
	}
	a, b, err := collectPairs(rows)
	if err != nil {
		return nil, err
	}
	out := make(map[pair]bool, len(a))
	for i := range a {
		out[pair{a[i], b[i]}] = true
	}
	return out, nil
}

// ctxCheckEvery is how many messages a write handles between checks of
// its context (the statements watch it too).
const ctxCheckEvery = 64

// nullable is s, or NULL when s is empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// storedCID looks up, inside a write transaction, the message stored
// under (from, cid), of either kind, as a Duplicate result.
func storedCID(ctx context.Context, tx pgx.Tx, from, cid string) (plugins.AppendResult, bool, error) {
	r := plugins.AppendResult{Duplicate: true}
	var e plugins.GroupEntry
	err := scanEntry(tx.QueryRow(ctx, `SELECT `+entryCols+` FROM group_log WHERE sender = $1 AND cid = $2`, from, cid), &e)
	switch {
	case err == nil:
		r.Group = &e
		return r, true, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return r, false, fmt.Errorf("look up cid: %w", err)
	}
	var status string
	err = scanMessage(tx.QueryRow(ctx, `SELECT status, `+msgCols+` FROM messages WHERE sender = $1 AND cid = $2`, from, cid), &r.Message, &status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return plugins.AppendResult{}, false, nil
	case err != nil:
		return r, false, fmt.Errorf("look up cid: %w", err)
	}
	r.Status = protocol.Status(status)
	return r, true, nil
}

// LookupCIDs returns, for each key, the message stored under its
// (From, CID) as a Duplicate result (with Group set for a group message),
// or a zero result when there is none (or the key's CID is empty).
func (s *Store) LookupCIDs(ctx context.Context, keys []plugins.CIDKey) ([]plugins.AppendResult, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("pgstore: lookup cids: %w", ErrClosed)
	}
	// One snapshot for both kinds.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("pgstore: lookup cids: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	results, err := lookupCIDs(ctx, tx, keys)
	if err != nil {
		return nil, fmt.Errorf("pgstore: lookup cids: %w", err)
	}
	return results, nil
}

// lookupCIDs is LookupCIDs inside tx: two statements, whatever the number
// of keys.
func lookupCIDs(ctx context.Context, tx pgx.Tx, keys []plugins.CIDKey) ([]plugins.AppendResult, error) {
	results := make([]plugins.AppendResult, len(keys))
	var (
		idx         []int32
		froms, cids []string
	)
	for i, k := range keys {
		if k.CID != "" {
			idx, froms, cids = append(idx, int32(i)), append(froms, k.From), append(cids, k.CID)
		}
	}
	if len(idx) == 0 {
		return results, nil
	}
	rows, err := tx.Query(ctx, `SELECT k.i, m.status, m.msg_id, m.sender, m.recipient, m.body, m.ts, m.seq
		FROM unnest($1::int[], $2::text[], $3::text[]) AS k(i, sender, cid)
		JOIN messages AS m ON m.sender = k.sender AND m.cid = k.cid`, idx, froms, cids)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var (
			i      int32
			status string
			r      = plugins.AppendResult{Duplicate: true}
		)
		if err := scanMessage(rows, &r.Message, &i, &status); err != nil {
			rows.Close()
			return nil, err
		}
		r.Status = protocol.Status(status)
		results[i] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, `SELECT k.i, `+entryColsL+`
		FROM unnest($1::int[], $2::text[], $3::text[]) AS k(i, sender, cid)
		JOIN group_log AS l ON l.sender = k.sender AND l.cid = k.cid`, idx, froms, cids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			i int32
			e plugins.GroupEntry
		)
		if err := scanEntry(rows, &e, &i); err != nil {
			return nil, err
		}
		if !results[i].Duplicate {
			results[i] = plugins.AppendResult{Duplicate: true, Group: &e}
		}
	}
	return results, rows.Err()
}
