package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/storagedump"
)

var (
	_ storagedump.Exporter = (*Store)(nil)
	_ storagedump.Importer = (*Store)(nil)
)

// ErrNotEmpty is returned (wrapped) by Import into a database that holds
// anything.
var ErrNotEmpty = errors.New("the database is not empty")

// Export implements storagedump.Exporter: it emits everything the
// database holds, in dump order, from one REPEATABLE READ read-only
// transaction (one snapshot). Derived state (conversation keys, seqs,
// mention rows and counters) is left out. Messages come in (ts, id)
// order, the store's total order.
func (s *Store) Export(ctx context.Context, emit func(*storagedump.Record) error) error {
	if s.closed.Load() {
		return fmt.Errorf("pgstore: export: %w", ErrClosed)
	}
	if err := s.export(ctx, emit); err != nil {
		return fmt.Errorf("pgstore: export: %w", err)
	}
	return nil
}

func (s *Store) export(ctx context.Context, emit func(*storagedump.Record) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return err
	}
	var n storagedump.Trailer
	if err := emit(&storagedump.Record{Header: &storagedump.Header{
		Format: storagedump.Format, Source: "postgres", Created: s.now().UnixMilli(),
	}}); err != nil {
		return err
	}
	err = each(ctx, tx, `SELECT name, pw_hash, created_ms, coalesce(deleted_ms, 0) FROM users ORDER BY name`, nil, func(rows pgx.Rows) error {
		u := new(storagedump.User)
		if err := rows.Scan(&u.Name, &u.PasswordHash, &u.Created, &u.Deleted); err != nil {
			return err
		}
		n.Users++
		return emit(&storagedump.Record{User: u})
	})
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	err = each(ctx, tx, `SELECT msg_id, sender, recipient, body, ts, coalesce(cid, ''), status, pending
		FROM messages ORDER BY ts, id`, nil, func(rows pgx.Rows) error {
		m := new(storagedump.Message)
		var (
			status string
			body   []byte
		)
		if err := rows.Scan(&m.ID, &m.From, &m.To, &body, &m.TS, &m.CID, &status, &m.Pending); err != nil {
			return err
		}
		m.Body, m.Status = string(body), protocol.Status(status)
		n.Messages++
		if m.Pending {
			n.Pending++
		}
		return emit(&storagedump.Record{Message: m})
	})
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	err = each(ctx, tx, `SELECT owner, friend, since_ms FROM friends ORDER BY owner, friend`, nil, func(rows pgx.Rows) error {
		f := new(storagedump.Friend)
		if err := rows.Scan(&f.Owner, &f.Friend, &f.Since); err != nil {
			return err
		}
		n.Friends++
		return emit(&storagedump.Record{Friend: f})
	})
	if err != nil {
		return fmt.Errorf("friends: %w", err)
	}
	err = each(ctx, tx, `SELECT sender, recipient, note, ts FROM friend_requests ORDER BY seq`, nil, func(rows pgx.Rows) error {
		r := new(storagedump.FriendRequest)
		var note []byte
		if err := rows.Scan(&r.From, &r.To, &note, &r.TS); err != nil {
			return err
		}
		r.Note = string(note)
		n.FriendRequests++
		return emit(&storagedump.Record{FriendRequest: r})
	})
	if err != nil {
		return fmt.Errorf("friend requests: %w", err)
	}
	err = each(ctx, tx, `SELECT blocker, blocked, ts FROM blocks ORDER BY blocker, blocked`, nil, func(rows pgx.Rows) error {
		b := new(storagedump.Block)
		if err := rows.Scan(&b.Blocker, &b.Blocked, &b.TS); err != nil {
			return err
		}
		n.Blocks++
		return emit(&storagedump.Record{Block: b})
	})
	if err != nil {
		return fmt.Errorf("blocks: %w", err)
	}
	if err := exportGroups(ctx, tx, emit, &n); err != nil {
		return err
	}
	err = each(ctx, tx, `SELECT id, owner, hash, created, last_used, expires FROM tokens ORDER BY id`, nil, func(rows pgx.Rows) error {
		t := new(storagedump.Token)
		if err := rows.Scan(&t.ID, &t.User, &t.Hash, &t.Created, &t.LastUsed, &t.Expires); err != nil {
			return err
		}
		n.Tokens++
		return emit(&storagedump.Record{Token: t})
	})
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	return emit(&storagedump.Record{Trailer: &n})
}

// exportGroups emits every group with its members, entries, join
// requests and cursors.
func exportGroups(ctx context.Context, tx pgx.Tx, emit func(*storagedump.Record) error, n *storagedump.Trailer) error {
	var groups []*storagedump.Group
	err := each(ctx, tx, `SELECT id, name, owner, policy, history, mute_all, dissolved, members, last_seq, last_ts, created_ms
		FROM groups ORDER BY id`, nil, func(rows pgx.Rows) error {
		g := new(storagedump.Group)
		var policy, history string
		if err := rows.Scan(&g.ID, &g.Name, &g.Owner, &policy, &history, &g.MuteAll, &g.Dissolved,
			&g.Members, &g.LastSeq, &g.LastTS, &g.Created); err != nil {
			return err
		}
		g.Policy, g.History = plugins.GroupPolicy(policy), plugins.GroupHistory(history)
		groups = append(groups, g)
		return nil
	})
	if err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	for _, g := range groups {
		n.Groups++
		if err := emit(&storagedump.Record{Group: g}); err != nil {
			return err
		}
		err := each(ctx, tx, `SELECT member, role, join_seq, coalesce(left_seq, 0), muted_until
			FROM group_members WHERE group_id = $1 ORDER BY member`, []any{g.ID}, func(rows pgx.Rows) error {
			m := &storagedump.GroupMember{Group: g.ID}
			var role string
			if err := rows.Scan(&m.User, &role, &m.JoinSeq, &m.LeftSeq, &m.MutedUntil); err != nil {
				return err
			}
			m.Role = plugins.GroupRole(role)
			n.GroupMembers++
			return emit(&storagedump.Record{GroupMember: m})
		})
		if err != nil {
			return fmt.Errorf("group %d: members: %w", g.ID, err)
		}
		err = each(ctx, tx, `SELECT `+entryCols+` FROM group_log WHERE group_id = $1 ORDER BY seq`, []any{g.ID}, func(rows pgx.Rows) error {
			var e plugins.GroupEntry
			if err := scanEntry(rows, &e); err != nil {
				return err
			}
			n.GroupEntries++
			return emit(&storagedump.Record{GroupEntry: dumpEntry(&e)})
		})
		if err != nil {
			return fmt.Errorf("group %d: entries: %w", g.ID, err)
		}
		err = each(ctx, tx, `SELECT member, ts FROM group_requests WHERE group_id = $1 ORDER BY id`, []any{g.ID}, func(rows pgx.Rows) error {
			r := &storagedump.JoinRequest{Group: g.ID}
			if err := rows.Scan(&r.User, &r.TS); err != nil {
				return err
			}
			n.JoinRequests++
			return emit(&storagedump.Record{JoinRequest: r})
		})
		if err != nil {
			return fmt.Errorf("group %d: join requests: %w", g.ID, err)
		}
		err = each(ctx, tx, `SELECT member, read_seq FROM group_cursors WHERE group_id = $1 ORDER BY member`, []any{g.ID}, func(rows pgx.Rows) error {
			c := &storagedump.GroupCursor{Group: g.ID}
			if err := rows.Scan(&c.User, &c.ReadSeq); err != nil {
				return err
			}
			n.GroupCursors++
			return emit(&storagedump.Record{GroupCursor: c})
		})
		if err != nil {
			return fmt.Errorf("group %d: cursors: %w", g.ID, err)
		}
	}
	return nil
}

// dumpEntry converts a log entry.
func dumpEntry(e *plugins.GroupEntry) *storagedump.GroupEntry {
	return &storagedump.GroupEntry{
		Group: e.Group, Seq: e.Seq, Kind: e.Kind, TS: e.TS, From: e.From, Body: e.Body, Mentions: e.Mentions,
		Actor: e.Actor, Target: e.Target, Name: e.Name, Role: e.Role, Until: e.Until, On: e.On,
		Policy: e.Policy, History: e.History, MsgID: e.MsgID, CID: e.CID,
	}
}

// each runs q in tx and calls f on every row.
func each(ctx context.Context, tx pgx.Tx, q string, args []any, f func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for i := 0; rows.Next(); i++ {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// importChunk is how many rows the importer buffers before it copies
// them in.
const importChunk = 10_000

// The tables the importer fills, in the order it copies them (parents
// before children), with their columns.
var importTables = []struct {
	name string
	cols []string
}{
	{"users", []string{"name", "pw_hash", "created_ms", "deleted_ms"}},
	{"messages", []string{"msg_id", "sender", "recipient", "conv", "body", "ts", "cid", "status", "pending", "seq"}},
	{"friends", []string{"owner", "friend", "since_ms"}},
	{"friend_requests", []string{"sender", "recipient", "note", "ts"}},
	{"blocks", []string{"blocker", "blocked", "ts"}},
	{"groups", []string{"id", "name", "owner", "policy", "history", "mute_all", "members", "last_seq", "last_ts", "dissolved", "created_ms"}},
	{"group_members", []string{"group_id", "member", "role", "join_seq", "left_seq", "muted_until"}},
	{"group_log", []string{"group_id", "seq", "kind", "ts", "sender", "body", "mentions", "mention_all", "msg_id", "cid",
		"actor", "target", "name", "role", "until_ms", "flag", "policy", "history"}},
	{"group_requests", []string{"group_id", "member", "ts"}},
	{"group_cursors", []string{"member", "group_id", "read_seq"}},
	{"tokens", []string{"id", "owner", "hash", "created", "last_used", "expires"}},
}

// Statements that finish an import: what is derived.
var importFinish = []struct{ what, q string }{
	{"cids", `INSERT INTO cids (sender, cid, ts) SELECT sender, cid, ts FROM messages WHERE cid IS NOT NULL`},
	// A key of both kinds fails here: one key space.
	{"group cids", `INSERT INTO cids (sender, cid, ts) SELECT sender, cid, ts FROM group_log WHERE cid IS NOT NULL`},
	{"counters", `UPDATE users AS u SET msg_seq = m.seq
		FROM (SELECT recipient, max(seq) AS seq FROM messages GROUP BY recipient) AS m
		WHERE u.name = m.recipient`},
	{"last timestamps", `UPDATE users AS u SET last_ts = m.ts
		FROM (SELECT name, max(ts) AS ts FROM (
			SELECT recipient AS name, ts FROM messages UNION ALL SELECT sender, ts FROM messages) AS a GROUP BY name) AS m
		WHERE u.name = m.name`},
	{"group ids", `SELECT setval('groups_id_seq', greatest((SELECT max(id) FROM groups), 1))`},
	{"mentions", `INSERT INTO group_mentions (member, group_id, seq)
		SELECT DISTINCT j.m, l.group_id, l.seq
		FROM group_log AS l CROSS JOIN LATERAL unnest(l.mentions) AS j(m)
			JOIN group_cursors AS c ON c.member = j.m AND c.group_id = l.group_id
		WHERE l.mentions IS NOT NULL AND NOT l.mention_all AND j.m != l.sender AND l.seq > c.read_seq`},
	{"mention counts", `UPDATE group_cursors AS c SET mentions = m.n
		FROM (SELECT member, group_id, count(*) AS n FROM group_mentions GROUP BY member, group_id) AS m
		WHERE c.member = m.member AND c.group_id = m.group_id`},
}

// Import implements storagedump.Importer: it loads a dump into this
// store, which must be empty (ErrNotEmpty otherwise), in one transaction
// (COPY in chunks), and rebuilds what is derived: the messages' seqs per
// recipient (in the dump's order) and the users' counters, the
// de-duplication keys, the mention rows and counters. Messages keep their
// ids.
func (s *Store) Import(ctx context.Context, next func() (*storagedump.Record, error)) error {
	if s.closed.Load() {
		return fmt.Errorf("pgstore: import: %w", ErrClosed)
	}
	// Not retried: next cannot be rewound.
	err := s.tryTx(ctx, func(tx pgx.Tx) error { return s.imp(ctx, tx, next) })
	if err != nil {
		return fmt.Errorf("pgstore: import: %w", err)
	}
	return nil
}

func (s *Store) imp(ctx context.Context, tx pgx.Tx, next func() (*storagedump.Record, error)) error {
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return err
	}
	var empty bool
	if err := tx.QueryRow(ctx, qEmpty).Scan(&empty); err != nil {
		return err
	}
	if !empty {
		return ErrNotEmpty
	}
	bufs := make([][][]any, len(importTables))
	buffered := 0
	flush := func() error {
		for i, t := range importTables {
			if len(bufs[i]) == 0 {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(bufs[i])); err != nil {
				return fmt.Errorf("copy into %s: %w", t.name, err)
			}
			bufs[i] = bufs[i][:0]
		}
		buffered = 0
		return nil
	}
	add := func(table int, row ...any) error {
		bufs[table] = append(bufs[table], row)
		buffered++
		if buffered >= importChunk {
			return flush()
		}
		return nil
	}
	seqs := make(map[string]int64)
	for i := 0; ; i++ {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r, err := next()
		if err != nil {
			return err
		}
		if r.Trailer != nil {
			break
		}
		switch {
		case r.Header != nil:
		case r.User != nil:
			u := r.User
			var deleted any
			if u.Deleted != 0 {
				deleted = u.Deleted
			}
			err = add(0, u.Name, u.PasswordHash, u.Created, deleted)
		case r.Message != nil:
			m := r.Message
			if m.ID == "" {
				return errors.New("message: a message without an id")
			}
			seqs[m.To]++
			err = add(1, m.ID, m.From, m.To, convKey(m.From, m.To), []byte(m.Body), m.TS, nullable(m.CID), string(m.Status), m.Pending, seqs[m.To])
		case r.Friend != nil:
			err = add(2, r.Friend.Owner, r.Friend.Friend, r.Friend.Since)
		case r.FriendRequest != nil:
			q := r.FriendRequest
			err = add(3, q.From, q.To, []byte(q.Note), q.TS)
		case r.Block != nil:
			err = add(4, r.Block.Blocker, r.Block.Blocked, r.Block.TS)
		case r.Group != nil:
			g := r.Group
			err = add(5, g.ID, g.Name, g.Owner, string(g.Policy), string(g.History), g.MuteAll,
				g.Members, g.LastSeq, g.LastTS, g.Dissolved, g.Created)
		case r.GroupMember != nil:
			m := r.GroupMember
			var left any
			if m.LeftSeq != 0 {
				left = m.LeftSeq
			}
			err = add(6, m.Group, m.User, string(m.Role), m.JoinSeq, left, m.MutedUntil)
		case r.GroupEntry != nil:
			err = add(7, entryRow(r.GroupEntry)...)
		case r.JoinRequest != nil:
			j := r.JoinRequest
			err = add(8, j.Group, j.User, j.TS)
		case r.GroupCursor != nil:
			c := r.GroupCursor
			err = add(9, c.User, c.Group, c.ReadSeq)
		case r.Token != nil:
			t := r.Token
			hash := t.Hash
			if hash == nil {
				hash = []byte{}
			}
			err = add(10, t.ID, t.User, hash, t.Created, t.LastUsed, t.Expires)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r.Kind(), err)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	for _, f := range importFinish {
		if _, err := tx.Exec(ctx, f.q); err != nil {
			return fmt.Errorf("rebuild %s: %w", f.what, err)
		}
	}
	return nil
}

// entryRow is the group_log row of a log entry, with the columns its kind
// uses, as appendEntry and appendGroup store them.
func entryRow(e *storagedump.GroupEntry) []any {
	var mentions []string
	if len(e.Mentions) > 0 {
		mentions = e.Mentions
	}
	var until, flag any
	switch e.Kind {
	case plugins.EntryMuted:
		until = e.Until
	case plugins.EntryMuteAll:
		flag = e.On
	}
	var body []byte
	if e.Kind == plugins.EntryMsg {
		body = append([]byte{}, e.Body...) // an empty body is a body
	}
	return []any{e.Group, e.Seq, string(e.Kind), e.TS, nullable(e.From), body, mentions,
		slices.Contains(e.Mentions, mentionAll), nullable(e.MsgID), nullable(e.CID),
		nullable(e.Actor), nullable(e.Target), nullable(e.Name), nullable(string(e.Role)), until, flag,
		nullable(string(e.Policy)), nullable(string(e.History))}
}
