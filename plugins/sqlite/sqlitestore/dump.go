package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/storagedump"
)

var (
	_ storagedump.Exporter = (*Store)(nil)
	_ storagedump.Importer = (*Store)(nil)
)

// Export queries, all in one read transaction (one snapshot of the
// database). Each names the index it walks.
const (
	// users primary key: by name, byte-wise (BINARY collation)
	qExportUsers = `SELECT name, pw_hash, created_ms, coalesce(deleted_ms, 0) FROM users ORDER BY name`
	// messages: by seq, the acceptance order
	qExportMessages = `SELECT msg_id, sender, recipient, body, ts, coalesce(cid, ''), status, pending
		FROM messages ORDER BY seq`
	// friends primary key
	qExportFriends = `SELECT owner, friend, since_ms FROM friends ORDER BY owner, friend`
	// friend_requests by seq: the order of requests made in the same
	// millisecond survives (Import gives them new seqs in that order)
	qExportRequests = `SELECT sender, recipient, note, ts FROM friend_requests ORDER BY seq`
	// blocks primary key
	qExportBlocks = `SELECT blocker, blocked, ts FROM blocks ORDER BY blocker, blocked`
	// groups primary key
	qExportGroups = `SELECT id, name, owner, policy, history, mute_all, dissolved, members, last_seq, last_ts, created_ms
		FROM groups ORDER BY id`
	// group_members primary key
	qExportMembers = `SELECT member, role, join_seq, coalesce(left_seq, 0), muted_until
		FROM group_members WHERE group_id = ? ORDER BY member`
	// group_log (group_id, seq) unique index
	qExportEntries = `SELECT ` + entryCols + ` FROM group_log WHERE group_id = ? ORDER BY seq`
	// group_requests (group_id, member) unique index, then by id (the
	// order of requests made in the same millisecond)
	qExportJoinRequests = `SELECT member, ts FROM group_requests WHERE group_id = ? ORDER BY id`
	// group_cursors, sorted once (its key is (member, group_id)): read
	// alongside the groups
	qExportCursors = `SELECT group_id, member, read_seq FROM group_cursors ORDER BY group_id, member`
	// tokens primary key
	qExportTokens = `SELECT id, user, hash, created, last_used, expires FROM tokens ORDER BY id`
)

// Export implements storagedump.Exporter: it emits everything the
// database holds, in dump order, from one read transaction. Derived state
// (conversation keys, mention rows and counters) is left out.
func (s *Store) Export(ctx context.Context, emit func(*storagedump.Record) error) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlitestore: export: %w", ErrClosed)
	}
	if err := s.export(ctx, emit); err != nil {
		return fmt.Errorf("sqlitestore: export: %w", err)
	}
	return nil
}

func (s *Store) export(ctx context.Context, emit func(*storagedump.Record) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var n storagedump.Trailer
	if err := emit(&storagedump.Record{Header: &storagedump.Header{
		Format: storagedump.Format, Source: "sqlite", Created: s.now().UnixMilli(),
	}}); err != nil {
		return err
	}

	err = each(ctx, tx, qExportUsers, nil, func(rows *sql.Rows) error {
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
	err = each(ctx, tx, qExportMessages, nil, func(rows *sql.Rows) error {
		m := new(storagedump.Message)
		var status string
		if err := rows.Scan(&m.ID, &m.From, &m.To, &m.Body, &m.TS, &m.CID, &status, &m.Pending); err != nil {
			return err
		}
		m.Status = protocol.Status(status)
		n.Messages++
		if m.Pending {
			n.Pending++
		}
		return emit(&storagedump.Record{Message: m})
	})
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	err = each(ctx, tx, qExportFriends, nil, func(rows *sql.Rows) error {
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
	err = each(ctx, tx, qExportRequests, nil, func(rows *sql.Rows) error {
		r := new(storagedump.FriendRequest)
		if err := rows.Scan(&r.From, &r.To, &r.Note, &r.TS); err != nil {
			return err
		}
		n.FriendRequests++
		return emit(&storagedump.Record{FriendRequest: r})
	})
	if err != nil {
		return fmt.Errorf("friend requests: %w", err)
	}
	err = each(ctx, tx, qExportBlocks, nil, func(rows *sql.Rows) error {
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
	if err := s.exportGroups(ctx, tx, emit, &n); err != nil {
		return err
	}
	err = each(ctx, tx, qExportTokens, nil, func(rows *sql.Rows) error {
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
// requests and cursors. The groups are read first (a few rows each), then
// each group's parts; the cursors come from one sorted query read along.
func (s *Store) exportGroups(ctx context.Context, tx *sql.Tx, emit func(*storagedump.Record) error, n *storagedump.Trailer) error {
	var groups []*storagedump.Group
	err := each(ctx, tx, qExportGroups, nil, func(rows *sql.Rows) error {
		g := new(storagedump.Group)
		if err := rows.Scan(&g.ID, &g.Name, &g.Owner, &g.Policy, &g.History, &g.MuteAll, &g.Dissolved,
			&g.Members, &g.LastSeq, &g.LastTS, &g.Created); err != nil {
			return err
		}
		groups = append(groups, g)
		return nil
	})
	if err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	cursors, err := tx.QueryContext(ctx, qExportCursors)
	if err != nil {
		return fmt.Errorf("group cursors: %w", err)
	}
	defer cursors.Close()
	var next *storagedump.GroupCursor // read from cursors, not yet emitted
	readCursor := func() error {
		next = nil
		if !cursors.Next() {
			return cursors.Err()
		}
		c := new(storagedump.GroupCursor)
		if err := cursors.Scan(&c.Group, &c.User, &c.ReadSeq); err != nil {
			return err
		}
		next = c
		return nil
	}
	if err := readCursor(); err != nil {
		return fmt.Errorf("group cursors: %w", err)
	}
	members, err := tx.PrepareContext(ctx, qExportMembers)
	if err != nil {
		return err
	}
	defer members.Close()
	entries, err := tx.PrepareContext(ctx, qExportEntries)
	if err != nil {
		return err
	}
	defer entries.Close()
	requests, err := tx.PrepareContext(ctx, qExportJoinRequests)
	if err != nil {
		return err
	}
	defer requests.Close()

	for _, g := range groups {
		if next != nil && next.Group < g.ID {
			return fmt.Errorf("group cursors: a cursor of %q in group %d, which does not exist", next.User, next.Group)
		}
		n.Groups++
		if err := emit(&storagedump.Record{Group: g}); err != nil {
			return err
		}
		err := eachStmt(ctx, members, g.ID, func(rows *sql.Rows) error {
			m := &storagedump.GroupMember{Group: g.ID}
			if err := rows.Scan(&m.User, &m.Role, &m.JoinSeq, &m.LeftSeq, &m.MutedUntil); err != nil {
				return err
			}
			n.GroupMembers++
			return emit(&storagedump.Record{GroupMember: m})
		})
		if err != nil {
			return fmt.Errorf("group %d: members: %w", g.ID, err)
		}
		err = eachStmt(ctx, entries, g.ID, func(rows *sql.Rows) error {
			var e plugins.GroupEntry
			if err := scanEntry(rows.Scan, &e); err != nil {
				return err
			}
			n.GroupEntries++
			return emit(&storagedump.Record{GroupEntry: dumpEntry(&e)})
		})
		if err != nil {
			return fmt.Errorf("group %d: entries: %w", g.ID, err)
		}
		err = eachStmt(ctx, requests, g.ID, func(rows *sql.Rows) error {
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
		for next != nil && next.Group == g.ID {
			n.GroupCursors++
			if err := emit(&storagedump.Record{GroupCursor: next}); err != nil {
				return err
			}
			if err := readCursor(); err != nil {
				return fmt.Errorf("group cursors: %w", err)
			}
		}
	}
	if next != nil {
		return fmt.Errorf("group cursors: a cursor of %q in group %d, which does not exist", next.User, next.Group)
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

// each runs query in tx and calls f on every row.
func each(ctx context.Context, tx *sql.Tx, query string, args []any, f func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	return eachRow(ctx, rows, f)
}

// eachStmt runs st with arg and calls f on every row.
func eachStmt(ctx context.Context, st *sql.Stmt, arg any, f func(*sql.Rows) error) error {
	rows, err := st.QueryContext(ctx, arg)
	if err != nil {
		return err
	}
	return eachRow(ctx, rows, f)
}

func eachRow(ctx context.Context, rows *sql.Rows, f func(*sql.Rows) error) error {
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
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// Import statements, on the writer, inside the import's transactions.
const (
	qImportUser = `INSERT INTO users (name, pw_hash, created_ms, deleted_ms) VALUES (?, ?, ?, ?)`
	// seq is assigned in the order of the dump: the acceptance order
	qImportMessage = `INSERT INTO messages (msg_id, sender, recipient, conv, body, ts, cid, status, pending)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qImportFriend  = `INSERT INTO friends (owner, friend, since_ms) VALUES (?, ?, ?)`
	qImportRequest = `INSERT INTO friend_requests (sender, recipient, note, ts) VALUES (?, ?, ?, ?)`
	qImportBlock   = `INSERT INTO blocks (blocker, blocked, ts) VALUES (?, ?, ?)`
	qImportGroup   = `INSERT INTO groups (id, name, owner, policy, history, mute_all, members, last_seq, last_ts, dissolved, created_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qImportMember = `INSERT INTO group_members (group_id, member, role, join_seq, left_seq, muted_until)
		VALUES (?, ?, ?, ?, ?, ?)`
	qImportEntry = `INSERT INTO group_log (group_id, seq, kind, ts, sender, body, mentions, mention_all, msg_id, cid,
		actor, target, name, role, until_ms, flag, policy, history)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qImportJoinRequest = `INSERT INTO group_requests (group_id, member, ts) VALUES (?, ?, ?)`
	qImportCursor      = `INSERT INTO group_cursors (member, group_id, read_seq) VALUES (?, ?, ?)`
	qImportToken       = `INSERT INTO tokens (id, user, hash, created, last_used, expires) VALUES (?, ?, ?, ?, ?, ?)`

	// The derived mention rows: the named mentions (not in a message to
	// all, not of the sender) of a member with a cursor, after it. This is
	// what Write, GroupAck and the removals keep (see qMention,
	// qPassMentions, qDropMentions).
	qImportMentions = `INSERT OR IGNORE INTO group_mentions (member, group_id, seq)
		SELECT j.value, l.group_id, l.seq
		FROM group_log AS l, json_each(l.mentions) AS j
			JOIN group_cursors AS c ON c.member = j.value AND c.group_id = l.group_id
		WHERE l.mentions IS NOT NULL AND l.mention_all = 0 AND j.value != l.sender AND l.seq > c.read_seq`
	qImportMentionCounts = `UPDATE group_cursors SET mentions =
		(SELECT count(*) FROM group_mentions AS m WHERE m.member = group_cursors.member AND m.group_id = group_cursors.group_id)`
	// messages_sender_cid: a (sender, cid) of a group message that a
	// direct message has too (one key space; Write never makes such a
	// pair)
	qImportCIDClash = `SELECT l.sender, l.cid FROM group_log AS l JOIN messages AS m ON m.sender = l.sender AND m.cid = l.cid
		WHERE l.cid IS NOT NULL LIMIT 1`
	qImportEmpty = `SELECT NOT EXISTS (SELECT 1 FROM users) AND NOT EXISTS (SELECT 1 FROM messages)
		AND NOT EXISTS (SELECT 1 FROM groups) AND NOT EXISTS (SELECT 1 FROM tokens)`
)

// importChunk is how many records one import transaction holds: big
// enough that commits cost little, small enough that the WAL is
// checkpointed along the way.
const importChunk = 100_000

// ErrNotEmpty is returned (wrapped) by Import into a database that holds
// anything.
var ErrNotEmpty = errors.New("the database is not empty")

// Import implements storagedump.Importer: it loads a dump into this
// store, which must be empty (ErrNotEmpty otherwise), in transactions of
// importChunk records, with synchronous=off until the last commit (a
// failed import leaves a database to throw away; the tools remove it).
// Then it rebuilds what is derived: the mention rows and counters of the
// cursors, and the store's caches and last timestamp. Messages keep
// their ids as they are (another store's form too: History pages by any
// id), and get new seqs in the dump's order.
func (s *Store) Import(ctx context.Context, next func() (*storagedump.Record, error)) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlitestore: import: %w", ErrClosed)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.imp(ctx, next); err != nil {
		return fmt.Errorf("sqlitestore: import: %w", err)
	}
	return nil
}

// importer is the state of one Import.
type importer struct {
	s    *Store
	ctx  context.Context
	tx   *sql.Tx
	st   map[string]*sql.Stmt // by query, prepared on tx
	rows int
	// lastTS is the timestamp of the last message.
	lastTS int64
}

func (s *Store) imp(ctx context.Context, next func() (*storagedump.Record, error)) (err error) {
	if err := s.restoreSync(ctx); err != nil {
		return err
	}
	var empty bool
	if err := s.writer.QueryRowContext(ctx, qImportEmpty).Scan(&empty); err != nil {
		return err
	}
	if !empty {
		return ErrNotEmpty
	}
	if err := s.setSynchronous(ctx, "OFF"); err != nil {
		return err
	}
	// The secondary indexes of the big tables are built once at the end
	// (a sort) rather than row by row (a random insert each): their
	// definitions are read back from the schema and dropped here.
	indexes, err := dropIndexes(ctx, s.writer)
	if err != nil {
		return err
	}
	im := &importer{s: s, ctx: ctx}
	defer func() {
		if im.tx != nil {
			_ = im.tx.Rollback()
		}
		// Whatever happened, the caches are loaded afresh and the
		// configured synchronous level is back.
		if e := s.setSynchronous(context.WithoutCancel(ctx), s.syncLevel); e != nil && err == nil {
			err = e
		}
		if e := s.loadCaches(context.WithoutCancel(ctx), s.writer); e != nil && err == nil {
			err = e
		}
	}()
	for {
		r, err := next()
		if err != nil {
			return err
		}
		if r.Trailer != nil {
			break
		}
		if err := im.add(r); err != nil {
			return fmt.Errorf("%s: %w", r.Kind(), err)
		}
	}
	if err := im.begin(); err != nil {
		return err
	}
	for _, ix := range indexes {
		if _, err := im.tx.ExecContext(ctx, ix.sql); err != nil {
			return fmt.Errorf("build index %s: %w", ix.name, err)
		}
	}
	var sender, cid string
	switch err := im.tx.QueryRowContext(ctx, qImportCIDClash).Scan(&sender, &cid); {
	case err == nil:
		return fmt.Errorf("the cid %q of %q names both a direct and a group message", cid, sender)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("check cids: %w", err)
	}
	if _, err := im.tx.ExecContext(ctx, qImportMentions); err != nil {
		return fmt.Errorf("rebuild mentions: %w", err)
	}
	if _, err := im.tx.ExecContext(ctx, qImportMentionCounts); err != nil {
		return fmt.Errorf("rebuild mention counts: %w", err)
	}
	if err := im.commit(); err != nil {
		return err
	}
	// The last commit, and the whole WAL, made durable: synchronous back
	// to the configured level, then a checkpoint (which syncs).
	if err := s.setSynchronous(ctx, s.syncLevel); err != nil {
		return err
	}
	if _, err := s.writer.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	s.lastTS = max(s.lastTS, im.lastTS)
	return nil
}

// index is a secondary index: its name and its CREATE INDEX statement.
type index struct{ name, sql string }

// dropIndexes drops the secondary indexes of the big tables, messages and
// group_log (those created
// with CREATE INDEX; not the primary keys and UNIQUE constraints) and
// returns their definitions.
func dropIndexes(ctx context.Context, db *sql.DB) ([]index, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var out []index
	for _, table := range []string{"messages", "group_log"} {
		err := each(ctx, tx, `SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name`,
			[]any{table}, func(rows *sql.Rows) error {
				var ix index
				if err := rows.Scan(&ix.name, &ix.sql); err != nil {
					return err
				}
				out = append(out, ix)
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("read indexes: %w", err)
		}
	}
	for _, ix := range out {
		if _, err := tx.ExecContext(ctx, `DROP INDEX "`+ix.name+`"`); err != nil {
			return nil, fmt.Errorf("drop index %s: %w", ix.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return out, nil
}

// begin starts a transaction if none is open.
func (im *importer) begin() error {
	if im.tx != nil {
		return nil
	}
	tx, err := im.s.writer.BeginTx(im.ctx, nil)
	if err != nil {
		return err
	}
	im.tx, im.st, im.rows = tx, make(map[string]*sql.Stmt), 0
	return nil
}

// commit commits the open transaction.
func (im *importer) commit() error {
	tx := im.tx
	im.tx = nil
	for _, st := range im.st {
		_ = st.Close()
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// exec runs query (prepared once per transaction) with args.
func (im *importer) exec(query string, args ...any) error {
	st, ok := im.st[query]
	if !ok {
		var err error
		if st, err = im.tx.PrepareContext(im.ctx, query); err != nil {
			return err
		}
		im.st[query] = st
	}
	_, err := st.ExecContext(statementContext(im.ctx), args...)
	return err
}

// add inserts one record, committing every importChunk records.
func (im *importer) add(r *storagedump.Record) error {
	if err := im.begin(); err != nil {
		return err
	}
	if im.rows%ctxCheckEvery == 0 {
		if err := im.ctx.Err(); err != nil {
			return err
		}
	}
	var err error
	switch {
	case r.Header != nil:
	case r.User != nil:
		u := r.User
		var deleted any
		if u.Deleted != 0 {
			deleted = u.Deleted
		}
		err = im.exec(qImportUser, u.Name, u.PasswordHash, u.Created, deleted)
	case r.Message != nil:
		m := r.Message
		if m.ID == "" {
			return errors.New("a message without an id")
		}
		err = im.exec(qImportMessage, m.ID, m.From, m.To, convKey(m.From, m.To), m.Body, m.TS, nullable(m.CID), string(m.Status), m.Pending)
		im.lastTS = m.TS
	case r.Friend != nil:
		err = im.exec(qImportFriend, r.Friend.Owner, r.Friend.Friend, r.Friend.Since)
	case r.FriendRequest != nil:
		q := r.FriendRequest
		err = im.exec(qImportRequest, q.From, q.To, q.Note, q.TS)
	case r.Block != nil:
		err = im.exec(qImportBlock, r.Block.Blocker, r.Block.Blocked, r.Block.TS)
	case r.Group != nil:
		g := r.Group
		err = im.exec(qImportGroup, g.ID, g.Name, g.Owner, string(g.Policy), string(g.History), g.MuteAll,
			g.Members, g.LastSeq, g.LastTS, g.Dissolved, g.Created)
	case r.GroupMember != nil:
		m := r.GroupMember
		var left any
		if m.LeftSeq != 0 {
			left = m.LeftSeq
		}
		err = im.exec(qImportMember, m.Group, m.User, string(m.Role), m.JoinSeq, left, m.MutedUntil)
	case r.GroupEntry != nil:
		err = im.addEntry(r.GroupEntry)
	case r.JoinRequest != nil:
		j := r.JoinRequest
		err = im.exec(qImportJoinRequest, j.Group, j.User, j.TS)
	case r.GroupCursor != nil:
		c := r.GroupCursor
		err = im.exec(qImportCursor, c.User, c.Group, c.ReadSeq)
	case r.Token != nil:
		t := r.Token
		err = im.exec(qImportToken, t.ID, t.User, t.Hash, t.Created, t.LastUsed, t.Expires)
	}
	if err != nil {
		return err
	}
	im.rows++
	if im.rows >= importChunk {
		return im.commit()
	}
	return nil
}

// addEntry inserts a log entry with the columns its kind uses, as
// appendEntry and appendGroup store them.
func (im *importer) addEntry(e *storagedump.GroupEntry) error {
	var mentions any
	if len(e.Mentions) > 0 {
		b, err := json.Marshal(e.Mentions)
		if err != nil {
			return err
		}
		mentions = string(b)
	}
	var until, flag any
	switch e.Kind {
	case plugins.EntryMuted:
		until = e.Until
	case plugins.EntryMuteAll:
		flag = e.On
	}
	var body any
	if e.Kind == plugins.EntryMsg {
		body = e.Body // an empty body is a body
	}
	return im.exec(qImportEntry, e.Group, e.Seq, string(e.Kind), e.TS, nullable(e.From), body, mentions,
		slices.Contains(e.Mentions, mentionAll), nullable(e.MsgID), nullable(e.CID),
		nullable(e.Actor), nullable(e.Target), nullable(e.Name), nullable(string(e.Role)), until, flag,
		nullable(string(e.Policy)), nullable(string(e.History)))
}
