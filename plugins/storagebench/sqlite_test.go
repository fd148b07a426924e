package storagebench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// sqliteStore is candidate A: sqlitestore itself, through its Write,
// History and Pending. It is opened with synchronous off for the preload
// and reopened with synchronous full (the default) for the first synced
// write.
type sqliteStore struct {
	path string
	s    *sqlitestore.Store
	sync bool
}

func openSQLiteStore(dir string) (candidate, error) {
	c := &sqliteStore{path: filepath.Join(dir, "qq.db")}
	if err := c.reopen(false); err != nil {
		return nil, err
	}
	ctx := context.Background()
	for u := range users {
		if err := c.s.CreateUser(ctx, userName(u), "hash"); err != nil && !errors.Is(err, plugins.ErrUserExists) {
			return nil, fmt.Errorf("create user: %w", err)
		}
	}
	return c, nil
}

func (c *sqliteStore) reopen(sync bool) error {
	if c.s != nil {
		if err := c.s.Close(); err != nil {
			return err
		}
		c.s = nil
	}
	opts := sqlitestore.Options{Path: c.path, DedupWindow: 24 * time.Hour, Synchronous: "full"}
	if !sync {
		opts.Synchronous = "off"
	}
	s, err := sqlitestore.Open(context.Background(), opts)
	if err != nil {
		return fmt.Errorf("open sqlitestore: %w", err)
	}
	c.s, c.sync = s, sync
	return nil
}

func (c *sqliteStore) write(msgs []message, acks []ack, sync bool) ([]result, error) {
	if sync != c.sync {
		if err := c.reopen(sync); err != nil {
			return nil, err
		}
	}
	b := &plugins.WriteBatch{Messages: make([]plugins.NewMessage, len(msgs)), Acks: make([]plugins.Ack, len(acks))}
	for i, m := range msgs {
		b.Messages[i] = plugins.NewMessage{From: m.from, To: m.to, Body: m.body, CID: m.cid, Status: protocol.StatusQueued}
	}
	for i, a := range acks {
		b.Acks[i] = plugins.Ack{User: a.user, MsgIDs: []string{a.id}}
	}
	res, err := c.s.Write(context.Background(), b)
	if err != nil {
		return nil, err
	}
	out := make([]result, len(res))
	for i, r := range res {
		if r.Err != nil {
			return nil, fmt.Errorf("message %d: %w", i, r.Err)
		}
		out[i] = result{id: r.Message.ID, duplicate: r.Duplicate}
	}
	return out, nil
}

func (c *sqliteStore) history(a, b string, limit int) ([]string, error) {
	msgs, _, err := c.s.History(context.Background(), a, b, "", limit)
	return messageIDs(msgs), err
}

func (c *sqliteStore) pending(user string, limit int) ([]string, error) {
	msgs, _, err := c.s.Pending(context.Background(), user, limit)
	return messageIDs(msgs), err
}

func messageIDs(msgs []protocol.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

// settle checkpoints the WAL from a connection of its own (the store's
// writer is not reachable from outside its package).
func (c *sqliteStore) settle() error {
	db, err := sql.Open("sqlite", sqliteDSN(c.path, nil, fmt.Sprintf("busy_timeout(%d)", 5000)))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
	return err
}

func (c *sqliteStore) close() error { return c.s.Close() }

// sqliteDSN is a modernc.org/sqlite data source name, as sqlitestore
// builds it.
func sqliteDSN(path string, params []string, pragmas ...string) string {
	q := slices.Clone(params)
	for _, pr := range pragmas {
		q = append(q, "_pragma="+url.QueryEscape(pr))
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: strings.Join(q, "&")}
	return u.String()
}

// appendSchema is candidate B's schema: the keys of messages append (a
// global seq, the rowid); the side tables are keyed by conversation, by
// recipient, by (day, sender, cid): history and inbox land at random
// pages like today's indexes do, de-dup keys too but in a table purged
// by day (DELETE FROM dedup WHERE day < ?, a range at the front), and
// acks move a cursor per user instead of updating a row per message.
// An ack whose user has older messages not yet acked goes to ack_ooo
// until the cursor passes it.
const appendSchema = `
CREATE TABLE IF NOT EXISTS users (
	name TEXT NOT NULL PRIMARY KEY
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
	seq       INTEGER PRIMARY KEY,
	sender    TEXT NOT NULL REFERENCES users (name),
	recipient TEXT NOT NULL REFERENCES users (name),
	body      TEXT NOT NULL,
	ts        INTEGER NOT NULL,
	status    TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS history (
	conv TEXT NOT NULL,
	seq  INTEGER NOT NULL,
	PRIMARY KEY (conv, seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
	recipient TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	PRIMARY KEY (recipient, seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (
	day    INTEGER NOT NULL,
	sender TEXT NOT NULL,
	cid    TEXT NOT NULL,
	seq    INTEGER NOT NULL,
	PRIMARY KEY (day, sender, cid)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ack_cursor (
	user TEXT NOT NULL PRIMARY KEY,
	seq  INTEGER NOT NULL,
	ooo  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ack_ooo (
	user TEXT NOT NULL,
	seq  INTEGER NOT NULL,
	PRIMARY KEY (user, seq)
) STRICT, WITHOUT ROWID;
`

const (
	// A new (day, sender, cid), unless yesterday's bucket has it: one
	// statement for the common miss, like sqlitestore's qInsert.
	qaDedup = `INSERT INTO dedup (day, sender, cid, seq)
		SELECT ?1, ?2, ?3, ?4
		WHERE NOT EXISTS (SELECT 1 FROM dedup WHERE day = ?1 - 1 AND sender = ?2 AND cid = ?3)
		ON CONFLICT DO NOTHING`
	qaDedupLookup = `SELECT seq FROM dedup WHERE day IN (?1, ?1 - 1) AND sender = ?2 AND cid = ?3`
	qaStored      = `SELECT sender, recipient, body, ts FROM messages WHERE seq = ?`
	qaInsert      = `INSERT INTO messages (seq, sender, recipient, body, ts, status) VALUES (?, ?, ?, ?, ?, ?)`
	qaHistoryKey  = `INSERT INTO history (conv, seq) VALUES (?, ?)`
	qaInboxKey    = `INSERT INTO inbox (recipient, seq) VALUES (?, ?)`
	qaCursor      = `SELECT seq, ooo FROM ack_cursor WHERE user = ?`
	qaOOO         = `SELECT seq FROM ack_ooo WHERE user = ?`
	qaInboxAfter  = `SELECT seq FROM inbox WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?`
	qaSetCursor   = `INSERT INTO ack_cursor (user, seq, ooo) VALUES (?, ?, ?)
		ON CONFLICT (user) DO UPDATE SET seq = excluded.seq, ooo = excluded.ooo`
	qaDropOOO = `DELETE FROM ack_ooo WHERE user = ? AND seq <= ?`
	qaAddOOO  = `INSERT INTO ack_ooo (user, seq) VALUES (?, ?) ON CONFLICT DO NOTHING`
	qaHistory = `SELECT m.seq, m.sender, m.recipient, m.body, m.ts FROM history AS h JOIN messages AS m ON m.seq = h.seq
		WHERE h.conv = ? ORDER BY h.seq DESC LIMIT ?`
	qaPending = `SELECT m.seq, m.sender, m.recipient, m.body, m.ts FROM inbox AS i JOIN messages AS m ON m.seq = i.seq
		WHERE i.recipient = ?1 AND i.seq > coalesce((SELECT seq FROM ack_cursor WHERE user = ?1), 0)
			AND NOT EXISTS (SELECT 1 FROM ack_ooo AS o WHERE o.user = ?1 AND o.seq = i.seq)
		ORDER BY i.seq LIMIT ?2`
)

// sqliteAppend is candidate B: appendSchema with sqlitestore's driver and
// pragmas (WAL, synchronous full, a 64 MiB writer cache, checkpoints every
// 32,000 pages, foreign keys).
type sqliteAppend struct {
	writer, reader *sql.DB
	st             map[string]*sql.Stmt
	seq            int64
	sync           bool
}

func openSQLiteAppend(dir string) (candidate, error) {
	path := filepath.Join(dir, "qq.db")
	c := &sqliteAppend{st: make(map[string]*sql.Stmt), sync: true}
	var err error
	c.writer, err = sql.Open("sqlite", sqliteDSN(path, []string{"_txlock=immediate"},
		"busy_timeout(5000)",
		"foreign_keys(1)",
		"journal_mode(WAL)",
		fmt.Sprintf("journal_size_limit(%d)", 32000*4096),
		"synchronous(FULL)",
		fmt.Sprintf("cache_size(%d)", -(64<<10)),
		"wal_autocheckpoint(32000)",
	))
	if err != nil {
		return nil, err
	}
	c.writer.SetMaxOpenConns(1)
	if _, err := c.writer.Exec(appendSchema); err != nil {
		c.writer.Close()
		return nil, fmt.Errorf("create schema: %w", err)
	}
	var vals strings.Builder
	for u := range users {
		fmt.Fprintf(&vals, "('%s'),", userName(u))
	}
	if _, err := c.writer.Exec("INSERT INTO users (name) VALUES " + strings.TrimSuffix(vals.String(), ",") + " ON CONFLICT DO NOTHING"); err != nil {
		c.writer.Close()
		return nil, fmt.Errorf("create users: %w", err)
	}
	if err := c.writer.QueryRow("SELECT coalesce(max(seq), 0) FROM messages").Scan(&c.seq); err != nil {
		c.writer.Close()
		return nil, err
	}
	c.reader, err = sql.Open("sqlite", sqliteDSN(path, nil, "busy_timeout(5000)", "query_only(1)", fmt.Sprintf("cache_size(%d)", -(16<<10))))
	if err != nil {
		c.writer.Close()
		return nil, err
	}
	c.reader.SetMaxOpenConns(4)
	c.reader.SetMaxIdleConns(4)
	for _, q := range []string{qaDedup, qaDedupLookup, qaStored, qaInsert, qaHistoryKey, qaInboxKey, qaCursor, qaOOO, qaInboxAfter, qaSetCursor, qaDropOOO, qaAddOOO} {
		if c.st[q], err = c.writer.Prepare(q); err != nil {
			_ = c.close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	for _, q := range []string{qaHistory, qaPending} {
		if c.st[q], err = c.reader.Prepare(q); err != nil {
			_ = c.close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return c, nil
}

func (c *sqliteAppend) write(msgs []message, acks []ack, sync bool) (_ []result, err error) {
	if sync != c.sync {
		level := "OFF"
		if sync {
			level = "FULL"
		}
		if _, err := c.writer.Exec("PRAGMA synchronous = " + level); err != nil {
			return nil, err
		}
		c.sync = sync
	}
	tx, err := c.writer.Begin() // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	stmts := make(map[string]*sql.Stmt, len(c.st))
	st := func(q string) *sql.Stmt {
		s, ok := stmts[q]
		if !ok {
			s = tx.Stmt(c.st[q])
			stmts[q] = s
		}
		return s
	}
	seq := c.seq
	ts := time.Now().UnixMilli()
	day := ts / (24 * 3600 * 1000)
	out := make([]result, len(msgs))
	for i, m := range msgs {
		res, err := st(qaDedup).Exec(day, m.from, m.cid, seq+1)
		if err != nil {
			return nil, fmt.Errorf("de-dup key: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n == 0 {
			var old int64
			if err := st(qaDedupLookup).QueryRow(day, m.from, m.cid).Scan(&old); err != nil {
				return nil, fmt.Errorf("de-dup lookup: %w", err)
			}
			var from, to, body string
			var ots int64
			if err := st(qaStored).QueryRow(old).Scan(&from, &to, &body, &ots); err != nil {
				return nil, fmt.Errorf("stored message: %w", err)
			}
			out[i] = result{id: strconv.FormatInt(old, 10), seq: uint64(old), duplicate: true}
			continue
		}
		seq++
		if _, err := st(qaInsert).Exec(seq, m.from, m.to, m.body, ts, string(protocol.StatusQueued)); err != nil {
			return nil, fmt.Errorf("insert: %w", err)
		}
		if _, err := st(qaHistoryKey).Exec(convKey(m.from, m.to), seq); err != nil {
			return nil, fmt.Errorf("history key: %w", err)
		}
		if _, err := st(qaInboxKey).Exec(m.to, seq); err != nil {
			return nil, fmt.Errorf("inbox key: %w", err)
		}
		out[i] = result{id: strconv.FormatInt(seq, 10), seq: uint64(seq)}
	}
	for _, ua := range acksByUser(acks) {
		if err := c.ack(st, ua.user, ua.seqs); err != nil {
			return nil, fmt.Errorf("ack %s: %w", ua.user, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	c.seq = seq
	return out, nil
}

// ack applies user's acks of seqs (sorted): the cursor moves over the
// inbox entries that follow it while they are acked (now or before, out
// of order); the acks it does not reach wait in ack_ooo.
func (c *sqliteAppend) ack(st func(string) *sql.Stmt, user string, seqs []uint64) error {
	var cursor, ooo int64
	if err := st(qaCursor).QueryRow(user).Scan(&cursor, &ooo); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	acked := make(map[int64]bool, len(seqs)+int(ooo))
	for _, s := range seqs {
		if int64(s) > cursor {
			acked[int64(s)] = true
		}
	}
	if ooo > 0 {
		rows, err := st(qaOOO).Query(user)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s int64
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			acked[s] = true
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	if len(acked) == 0 {
		return nil
	}
	rows, err := st(qaInboxAfter).Query(user, cursor, len(acked))
	if err != nil {
		return err
	}
	next := cursor
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		if !acked[s] {
			break
		}
		next = s
	}
	if err := rows.Close(); err != nil {
		return err
	}
	var left int64
	for s := range acked {
		if s > next {
			left++
		}
	}
	if ooo > 0 {
		if _, err := st(qaDropOOO).Exec(user, next); err != nil {
			return err
		}
	}
	if left > 0 {
		for s := range acked {
			if s > next {
				if _, err := st(qaAddOOO).Exec(user, s); err != nil {
					return err
				}
			}
		}
	}
	if next != cursor || left != ooo {
		if _, err := st(qaSetCursor).Exec(user, next, left); err != nil {
			return err
		}
	}
	return nil
}

func (c *sqliteAppend) history(a, b string, limit int) ([]string, error) {
	ids, err := c.seqs(c.st[qaHistory], convKey(a, b), limit)
	slices.Reverse(ids)
	return ids, err
}

func (c *sqliteAppend) pending(user string, limit int) ([]string, error) {
	return c.seqs(c.st[qaPending], user, limit)
}

// seqs runs st, a query of messages (seq, sender, recipient, body, ts),
// and returns their ids.
func (c *sqliteAppend) seqs(st *sql.Stmt, args ...any) ([]string, error) {
	rows, err := st.Query(args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var seq, ts int64
		var from, to, body string
		if err := rows.Scan(&seq, &from, &to, &body, &ts); err != nil {
			return nil, err
		}
		ids = append(ids, strconv.FormatInt(seq, 10))
	}
	return ids, rows.Err()
}

func (c *sqliteAppend) settle() error {
	_, err := c.writer.Exec("PRAGMA wal_checkpoint(PASSIVE)")
	return err
}

func (c *sqliteAppend) close() error {
	var errs []error
	for _, s := range c.st {
		errs = append(errs, s.Close())
	}
	if c.reader != nil {
		errs = append(errs, c.reader.Close())
	}
	errs = append(errs, c.writer.Close())
	return errors.Join(errs...)
}

// userAcks are one user's acked seqs, sorted.
type userAcks struct {
	user string
	seqs []uint64
}

// acksByUser groups acks by user, in the order of the users' names.
func acksByUser(acks []ack) []userAcks {
	by := make(map[string][]uint64)
	for _, a := range acks {
		by[a.user] = append(by[a.user], a.seq)
	}
	out := make([]userAcks, 0, len(by))
	for u, s := range by {
		slices.Sort(s)
		out = append(out, userAcks{u, s})
	}
	slices.SortFunc(out, func(a, b userAcks) int { return strings.Compare(a.user, b.user) })
	return out
}

// convKey is sqlitestore's conversation key of a and b.
func convKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return strconv.Itoa(len(a)) + ":" + a + " " + b
}
