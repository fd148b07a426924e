package pebblestore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/storagedump"
)

var (
	_ storagedump.Exporter = (*Store)(nil)
	_ storagedump.Importer = (*Store)(nil)
)

// ErrNotEmpty is returned (wrapped) by Import into a store that holds
// anything.
var ErrNotEmpty = errors.New("store is not empty")

const (
	// importChunk is the size of the batches Import commits as it goes
	// (without fsync; the last one is synced and the memtables flushed).
	importChunk = 4 << 20
	// dumpCheckEvery is how many records Export and Import handle between
	// checks of their context.
	dumpCheckEvery = 1024
)

// ---- export -----------------------------------------------------------------

// Export writes everything the store keeps to emit, as the records of a
// dump in the order of package storagedump, from one read view (a Pebble
// snapshot): it may run while the store serves. It streams: what it holds
// in memory grows with the number of users, the out-of-order acks, the
// held-back entries, the pending friend requests and one group's members
// and join requests, not with the messages. A message is Pending when its
// recipient is live and it is held back, or its seq is above the
// recipient's ack cursor without an out-of-order ack.
func (s *Store) Export(ctx context.Context, emit func(*storagedump.Record) error) error {
	v, done, err := s.acquire("export")
	if err != nil {
		return err
	}
	defer done()
	x := &exporter{ctx: ctx, r: v.snap, emit: emit}
	if err := x.run(s.now().UnixMilli()); err != nil {
		return fmt.Errorf("pebblestore: export: %w", err)
	}
	return nil
}

// exporter is one Export: its view, where records go and the counts of
// the Trailer.
type exporter struct {
	ctx  context.Context
	r    pebble.Reader
	emit func(*storagedump.Record) error
	n    int64 // records emitted, for the context checks
	t    storagedump.Trailer
}

func (x *exporter) put(rec *storagedump.Record) error {
	x.n++
	if x.n%dumpCheckEvery == 0 {
		if err := x.ctx.Err(); err != nil {
			return err
		}
	}
	return x.emit(rec)
}

func (x *exporter) run(now int64) error {
	if err := x.put(&storagedump.Record{Header: &storagedump.Header{Format: storagedump.Format, Source: "pebble", Created: now}}); err != nil {
		return err
	}
	names, deleted, err := x.users()
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if err := x.messages(deleted); err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	if err := x.social(names); err != nil {
		return err
	}
	if err := x.groups(); err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	if err := scan(x.r, []byte{pToken}, func(k, v []byte) error {
		t, err := decodeToken(string(k[1:]), v)
		if err != nil {
			return err
		}
		x.t.Tokens++
		return x.put(&storagedump.Record{Token: &storagedump.Token{ID: t.ID, User: t.User, Hash: t.Hash, Created: t.Created, LastUsed: t.LastUsed, Expires: t.Expires}})
	}); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	return x.put(&storagedump.Record{Trailer: &x.t})
}

// users emits every account, by name, and returns the names in that
// order and the set of deleted ones.
func (x *exporter) users() ([]string, map[string]bool, error) {
	var names []string
	deleted := make(map[string]bool)
	err := scan(x.r, []byte{pUser}, func(k, v []byte) error {
		u, err := decodeUser(v)
		if err != nil {
			return err
		}
		name := string(k[1:])
		names = append(names, name)
		rec := &storagedump.User{Name: name, PasswordHash: u.Hash, Created: u.Created}
		if u.Deleted {
			deleted[name] = true
			// A deletion from before the time was kept: still deleted.
			rec.Deleted = max(u.DeletedAt, 1)
		}
		x.t.Users++
		return x.put(&storagedump.Record{User: rec})
	})
	return names, deleted, err
}

// messages emits every direct message in seq order, with its pending
// state from the ack cursors, out-of-order acks and held-back entries of
// the view.
func (x *exporter) messages(deleted map[string]bool) error {
	cursors := make(map[string]uint64)
	if err := scan(x.r, []byte{pCursor}, func(k, v []byte) error {
		c, err := decodeU64(v)
		if err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
		cursors[string(k[1:])] = c
		return nil
	}); err != nil {
		return err
	}
	// The out-of-order acks (above the cursors) and the held-back
	// entries (below them): both bounded, the first by maxAcked per user,
	// the second by what is pending.
	sets := func(prefix byte) (map[string]map[uint64]struct{}, error) {
		sets := make(map[string]map[uint64]struct{})
		err := scan(x.r, []byte{prefix}, func(k, _ []byte) error {
			user, seq, err := splitUserSeq(k)
			if err != nil {
				return err
			}
			set := sets[user]
			if set == nil {
				set = make(map[uint64]struct{})
				sets[user] = set
			}
			set[seq] = struct{}{}
			return nil
		})
		return sets, err
	}
	acked, err := sets(pAcked)
	if err != nil {
		return err
	}
	held, err := sets(pHeld)
	if err != nil {
		return err
	}
	return scan(x.r, []byte{pMsg}, func(k, v []byte) error {
		if len(k) != 9 {
			return fmt.Errorf("message key %x: %w", k, errCorrupt)
		}
		seq := seqSuffix(k)
		m, err := decodeMsg(v)
		if err != nil {
			return err
		}
		id := m.ID
		if id == "" {
			id = msgID(seq)
		}
		_, ack := acked[m.To][seq]
		_, hold := held[m.To][seq]
		pending := !deleted[m.To] && (seq > cursors[m.To] && !ack || hold)
		x.t.Messages++
		if pending {
			x.t.Pending++
		}
		return x.put(&storagedump.Record{Message: &storagedump.Message{
			ID: id, From: m.From, To: m.To, Body: m.Body, TS: m.TS, CID: m.CID,
			Status: protocol.Status(m.Status), Pending: pending,
		}})
	})
}

// social emits the friendships (by owner, then friend), the friend
// requests (oldest first: the order Friends lists them, which an import
// keeps) and the blocks (by blocker, then blocked).
func (x *exporter) social(names []string) error {
	it, err := x.r.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	// under calls fn with the rest of every key with prefix p.
	under := func(p []byte, fn func(rest, v []byte) error) error {
		for ok := it.SeekGE(p); ok && bytes.HasPrefix(it.Key(), p); ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			if err := fn(it.Key()[len(p):], v); err != nil {
				return err
			}
		}
		return it.Error()
	}
	for _, name := range names {
		if err := under(lpPrefix(pFriend, name), func(rest, v []byte) error {
			since, err := decodeI64(v)
			if err != nil {
				return fmt.Errorf("friendship: %w", err)
			}
			x.t.Friends++
			return x.put(&storagedump.Record{Friend: &storagedump.Friend{Owner: name, Friend: string(rest), Since: since}})
		}); err != nil {
			return fmt.Errorf("friends: %w", err)
		}
	}
	type request struct {
		r   storagedump.FriendRequest
		seq uint64
	}
	var reqs []request
	if err := scan(x.r, []byte{pRequest}, func(k, v []byte) error {
		from, rest, err := splitLP(k[1:])
		if err != nil {
			return err
		}
		rec, err := decodeRequest(v)
		if err != nil {
			return err
		}
		reqs = append(reqs, request{storagedump.FriendRequest{From: from, To: string(rest), Note: rec.Note, TS: rec.TS}, rec.Seq})
		return nil
	}); err != nil {
		return fmt.Errorf("friend requests: %w", err)
	}
	slices.SortFunc(reqs, func(a, b request) int { return cmp.Or(cmp.Compare(a.r.TS, b.r.TS), cmp.Compare(a.seq, b.seq)) })
	for i := range reqs {
		x.t.FriendRequests++
		if err := x.put(&storagedump.Record{FriendRequest: &reqs[i].r}); err != nil {
			return fmt.Errorf("friend requests: %w", err)
		}
	}
	for _, name := range names {
		if err := under(lpPrefix(pBlock, name), func(rest, v []byte) error {
			ts, err := decodeI64(v)
			if err != nil {
				return fmt.Errorf("block: %w", err)
			}
			x.t.Blocks++
			return x.put(&storagedump.Record{Block: &storagedump.Block{Blocker: name, Blocked: string(rest), TS: ts}})
		}); err != nil {
			return fmt.Errorf("blocks: %w", err)
		}
	}
	return nil
}

// groups emits every group by id, each followed by its members, log,
// join requests (oldest first) and the cursors of its members.
func (x *exporter) groups() error {
	var ids []int64
	if err := scan(x.r, []byte{pGroup}, func(k, _ []byte) error {
		ids = append(ids, int64(seqSuffix(k)))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		if err := x.group(id); err != nil {
			return fmt.Errorf("group %d: %w", id, err)
		}
	}
	return nil
}

func (x *exporter) group(id int64) error {
	g, err := readGroup(x.r, id)
	if err != nil {
		return err
	}
	if g == nil {
		return errors.New("missing")
	}
	created := g.created
	if created == 0 { // a group from before the time was kept: its first entry's
		if first, err := readEntry(x.r, id, 1); err == nil {
			created = first.TS
		}
	}
	x.t.Groups++
	if err := x.put(&storagedump.Record{Group: &storagedump.Group{
		ID: id, Name: g.name, Owner: g.owner, Policy: g.policy, History: g.history,
		MuteAll: g.muteAll, Dissolved: g.dissolved, Members: g.members,
		LastSeq: g.lastSeq, LastTS: g.lastTS, Created: created,
	}}); err != nil {
		return err
	}
	var current []string
	prefix := appendSeq([]byte{pMember}, uint64(id))
	if err := scan(x.r, prefix, func(k, v []byte) error {
		m, err := decodeMember(v)
		if err != nil {
			return err
		}
		user := string(k[len(prefix):])
		if m.current() {
			current = append(current, user)
		}
		x.t.GroupMembers++
		return x.put(&storagedump.Record{GroupMember: &storagedump.GroupMember{
			Group: id, User: user, Role: m.role, JoinSeq: m.joinSeq, LeftSeq: m.leftSeq, MutedUntil: m.mutedUntil,
		}})
	}); err != nil {
		return fmt.Errorf("members: %w", err)
	}
	prefix = appendSeq([]byte{pEntry}, uint64(id))
	if err := scan(x.r, prefix, func(k, v []byte) error {
		e, err := decodeEntry(id, int64(seqSuffix(k)), v)
		if err != nil {
			return err
		}
		x.t.GroupEntries++
		return x.put(&storagedump.Record{GroupEntry: &storagedump.GroupEntry{
			Group: id, Seq: e.Seq, Kind: e.Kind, TS: e.TS, From: e.From, Body: e.Body,
			Mentions: e.Mentions, Actor: e.Actor, Target: e.Target, Name: e.Name, Role: e.Role,
			Until: e.Until, On: e.On, Policy: e.Policy, History: e.History, MsgID: e.MsgID, CID: e.CID,
		}})
	}); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	type request struct {
		r   storagedump.JoinRequest
		seq uint64
	}
	var reqs []request
	prefix = appendSeq([]byte{pJoinReq}, uint64(id))
	if err := scan(x.r, prefix, func(k, v []byte) error {
		if len(v) != 16 {
			return fmt.Errorf("join request record: %w", errCorrupt)
		}
		reqs = append(reqs, request{storagedump.JoinRequest{Group: id, User: string(k[len(prefix):]), TS: int64(seqSuffix(v[:8]))}, seqSuffix(v[8:])})
		return nil
	}); err != nil {
		return fmt.Errorf("join requests: %w", err)
	}
	slices.SortFunc(reqs, func(a, b request) int { return cmp.Or(cmp.Compare(a.r.TS, b.r.TS), cmp.Compare(a.seq, b.seq)) })
	for i := range reqs {
		x.t.JoinRequests++
		if err := x.put(&storagedump.Record{JoinRequest: &reqs[i].r}); err != nil {
			return err
		}
	}
	for _, user := range current {
		c, err := readCursor(x.r, user, id)
		if err != nil {
			return fmt.Errorf("cursor of %q: %w", user, err)
		}
		if c == nil {
			continue
		}
		x.t.GroupCursors++
		if err := x.put(&storagedump.Record{GroupCursor: &storagedump.GroupCursor{User: user, Group: id, ReadSeq: c.readSeq}}); err != nil {
			return err
		}
	}
	return nil
}

// ---- import -----------------------------------------------------------------

// Import loads a dump into the store, which must be empty (else
// ErrNotEmpty): see storagedump.Importer. Every id is kept: a message id
// of this store's form keeps its seq (ids must then ascend in dump
// order); any other (a SQLite ULID) is a foreign id, given the next seq
// and an x key, so that acks, History cursors and de-duplication answers
// use it. Derived state is rebuilt: inbox, history and de-duplication
// keys (only for messages within the de-duplication window), ack cursors
// and held-back entries from the Pending flags, group mentions, user
// lists and cursors, and then the in-memory counts and filters as Open
// builds them. It commits in batches of a few MB without fsync, then
// syncs and flushes: memory stays bounded whatever the number of
// messages. It holds the write lock throughout; readers see the empty
// store until it returns. A failed import leaves a partial store, which
// refuses writes from then on: throw it away.
func (s *Store) Import(ctx context.Context, next func() (*storagedump.Record, error)) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writable(ctx); err != nil {
		return fmt.Errorf("pebblestore: import: %w", err)
	}
	if err := s.checkEmpty(); err != nil {
		return fmt.Errorf("pebblestore: import: %w", err)
	}
	start := time.Now()
	im := &importer{s: s, ctx: ctx, users: make(map[string]bool), inboxes: make(map[string]*inboxState)}
	if s.window > 0 {
		im.dedupFrom = dayBucket(s.now().UnixMilli() - s.window.Milliseconds())
	}
	err := im.run(next)
	if err == nil {
		err = im.finish()
	}
	if err != nil {
		if im.committed {
			s.broken = fmt.Errorf("a failed import left the store partial: %w", err)
		}
		return fmt.Errorf("pebblestore: import: %w", err)
	}
	d := time.Since(start)
	s.log.Info("pebblestore: import done", "messages", im.t.Messages, "group_entries", im.t.GroupEntries,
		"users", im.t.Users, "seconds", d.Seconds(), "messages_per_second", float64(im.t.Messages)/max(d.Seconds(), 1e-9))
	return nil
}

// checkEmpty fails with ErrNotEmpty when the database holds any key.
// The caller holds s.wmu.
func (s *Store) checkEmpty() error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return err
	}
	if found || s.lastSeq != 0 || s.lastGroup != 0 {
		return ErrNotEmpty
	}
	return nil
}

// importer is one Import.
type importer struct {
	s   *Store
	ctx context.Context
	// w collects the writes of a chunk, applied to a batch in key order
	// (see stagedWrites: it makes the memtable inserts several times
	// cheaper than the dump's order, which interleaves the kinds of keys).
	w         stagedWrites
	committed bool   // a chunk was committed
	n         int64  // records read
	dedupFrom uint32 // the oldest bucket that gets de-duplication keys (window > 0)
	t         storagedump.Trailer
	stage     int // the dump section of the last record (see stageOf)

	// users: every account, true when deleted.
	users map[string]bool
	// lastSeq is the last seq given a message; maxSeq the largest seq
	// of an id of this store's form (group messages' too); lastTS the
	// latest message timestamp.
	lastSeq, maxSeq uint64
	lastTS          int64
	inboxes         map[string]*inboxState
	reqSeq          uint64
	// g is the group whose records are being read.
	g *groupImport
}

// inboxState is what an import knows of a recipient's inbox: the ack
// cursor so far (the last settled message), and the pending messages
// after it. A settled message after pending ones moves the cursor past
// them and holds them back (p keys, as holdBack leaves them); those
// still after the last settled message stay above the cursor. So an
// import writes no out-of-order acks, however the dump interleaves.
type inboxState struct {
	cursor uint64
	after  []heldEntry
}

// heldEntry is a pending message of an import that may be held back: its
// seq and record (a p value carries it, as holdBack writes them). An
// import holds the records of each recipient's pending messages after
// their last settled one in memory until the next settled one.
type heldEntry struct {
	seq uint64
	rec []byte
}

// groupImport is the group being imported.
type groupImport struct {
	rec       *groupRecord
	members   map[string]*memberRecord // current ones
	count     int64
	lastEntry int64
	// mentions: per member, the seqs of the messages naming them
	// (not to all, not their own).
	mentions map[string][]int64
	cursors  map[string]bool // members whose cursor came
}

// stageOf is the section of the dump a record belongs to (see package
// storagedump), and its kind in errors; records must come in
// non-decreasing sections (the records of a group are checked against
// the group they follow).
func stageOf(r *storagedump.Record) (int, string) {
	switch {
	case r.Header != nil:
		return 1, "header"
	case r.User != nil:
		return 2, "user"
	case r.Message != nil:
		return 3, "message"
	case r.Friend != nil:
		return 4, "friend"
	case r.FriendRequest != nil:
		return 4, "friend request"
	case r.Block != nil:
		return 4, "block"
	case r.Group != nil, r.GroupMember != nil, r.GroupEntry != nil, r.JoinRequest != nil, r.GroupCursor != nil:
		return 5, "group"
	case r.Token != nil:
		return 6, "token"
	case r.Trailer != nil:
		return 7, "trailer"
	}
	return 0, "empty"
}

func (im *importer) run(next func() (*storagedump.Record, error)) error {
	for {
		rec, err := next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("record %d: the dump ends without a trailer (%w): %w", im.n+1, io.ErrUnexpectedEOF, err)
		}
		if err != nil {
			return fmt.Errorf("record %d: %w", im.n+1, err)
		}
		im.n++
		if im.n%dumpCheckEvery == 0 {
			if err := im.ctx.Err(); err != nil {
				return err
			}
		}
		if rec == nil {
			return fmt.Errorf("record %d: nil", im.n)
		}
		stage, what := stageOf(rec)
		switch {
		case stage == 0:
			return fmt.Errorf("record %d: empty", im.n)
		case im.n == 1 && stage != 1:
			return fmt.Errorf("record 1: a %s, not the header", what)
		case stage < im.stage || stage == 1 && im.n != 1:
			return fmt.Errorf("record %d: a %s out of order", im.n, what)
		}
		if im.stage == 3 && stage > 3 {
			if err := im.endMessages(); err != nil {
				return err
			}
		}
		im.stage = stage
		if err := im.record(rec); err != nil {
			return fmt.Errorf("record %d (%s): %w", im.n, what, err)
		}
		if rec.Trailer != nil {
			return nil
		}
		if len(im.w.buf) >= importChunk {
			if err := im.commit(pebble.NoSync); err != nil {
				return err
			}
		}
	}
}

// set adds k = v to the chunk.
func (im *importer) set(k, v []byte) error { return im.w.Set(k, v, nil) }

// commit commits the chunk with opts.
func (im *importer) commit(opts *pebble.WriteOptions) error {
	b := im.s.db.NewBatch()
	defer b.Close()
	if err := im.w.apply(b); err != nil {
		return err
	}
	im.w.reset()
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	im.committed = true
	return nil
}

// user fails unless name is an account of the dump.
func (im *importer) user(name string) error {
	if _, ok := im.users[name]; !ok {
		return fmt.Errorf("user %q: %w", name, plugins.ErrUnknownUser)
	}
	return nil
}

func (im *importer) record(rec *storagedump.Record) error {
	switch {
	case rec.Header != nil:
		if rec.Header.Format != storagedump.Format {
			return fmt.Errorf("format %q, want %q", rec.Header.Format, storagedump.Format)
		}
	case rec.User != nil:
		return im.userRecord(rec.User)
	case rec.Message != nil:
		return im.message(rec.Message)
	case rec.Friend != nil:
		f := rec.Friend
		if err := cmp.Or(im.user(f.Owner), im.user(f.Friend)); err != nil {
			return err
		}
		im.t.Friends++
		return im.set(key(pFriend, f.Owner, f.Friend), i64(f.Since))
	case rec.FriendRequest != nil:
		r := rec.FriendRequest
		if err := cmp.Or(im.user(r.From), im.user(r.To)); err != nil {
			return err
		}
		im.t.FriendRequests++
		im.reqSeq++ // the dump's order is the order of requests of the same ms
		if err := im.set(key(pRequest, r.From, r.To), requestRecord{Note: r.Note, TS: r.TS, Seq: im.reqSeq}.append(nil)); err != nil {
			return err
		}
		return im.set(key(pRequestR, r.To, r.From), nil)
	case rec.Block != nil:
		bl := rec.Block
		if err := cmp.Or(im.user(bl.Blocker), im.user(bl.Blocked)); err != nil {
			return err
		}
		im.t.Blocks++
		if err := im.set(key(pBlock, bl.Blocker, bl.Blocked), i64(bl.TS)); err != nil {
			return err
		}
		return im.set(key(pBlockR, bl.Blocked, bl.Blocker), nil)
	case rec.Group != nil:
		return im.group(rec.Group)
	case rec.GroupMember != nil:
		return im.member(rec.GroupMember)
	case rec.GroupEntry != nil:
		return im.entry(rec.GroupEntry)
	case rec.JoinRequest != nil:
		r := rec.JoinRequest
		if err := cmp.Or(im.inGroup(r.Group), im.user(r.User)); err != nil {
			return err
		}
		im.t.JoinRequests++
		im.reqSeq++
		if err := im.set(joinReqKey(r.Group, r.User), appendJoinRequest(r.TS, im.reqSeq)); err != nil {
			return err
		}
		return im.set(userGroupKey(pJoinReqU, r.User, r.Group), nil)
	case rec.GroupCursor != nil:
		return im.cursor(rec.GroupCursor)
	case rec.Token != nil:
		t := rec.Token
		if err := im.user(t.User); err != nil {
			return err
		}
		im.t.Tokens++
		if err := im.set(key(pToken, t.ID), appendToken(nil, plugins.Token{ID: t.ID, User: t.User, Hash: t.Hash, Created: t.Created, LastUsed: t.LastUsed, Expires: t.Expires})); err != nil {
			return err
		}
		return im.set(key(pTokenU, t.User, t.ID), nil)
	case rec.Trailer != nil:
		if err := im.endGroup(); err != nil {
			return err
		}
		if got := im.t; got != *rec.Trailer {
			return fmt.Errorf("the trailer counts %+v, the dump holds %+v", *rec.Trailer, got)
		}
	}
	return nil
}

func (im *importer) userRecord(u *storagedump.User) error {
	if u.Name == "" {
		return errors.New("empty name")
	}
	if _, ok := im.users[u.Name]; ok {
		return fmt.Errorf("user %q: %w", u.Name, plugins.ErrUserExists)
	}
	deleted := u.Deleted != 0
	im.users[u.Name] = deleted
	im.t.Users++
	rec := userRecord{Deleted: deleted, Hash: u.PasswordHash, Created: u.Created, DeletedAt: u.Deleted}
	if deleted {
		rec.Hash = ""
	}
	return im.set(userKey(u.Name), rec.append(nil))
}

func (im *importer) message(m *storagedump.Message) error {
	if err := cmp.Or(im.user(m.From), im.user(m.To)); err != nil {
		return err
	}
	seq, own := parseMsgID(m.ID)
	switch {
	case m.ID == "":
		return errors.New("message without an id")
	case own && seq <= im.lastSeq:
		return fmt.Errorf("message %q: its seq %d does not follow %d (ids of this store's form must ascend)", m.ID, seq, im.lastSeq)
	case !own:
		seq = im.lastSeq + 1
	}
	im.lastSeq = seq
	im.maxSeq = max(im.maxSeq, seq)
	im.lastTS = max(im.lastTS, m.TS)
	im.t.Messages++
	if m.Pending {
		im.t.Pending++
	}
	rec := msgRecord{TS: m.TS, From: m.From, To: m.To, Body: m.Body, CID: m.CID, Status: string(m.Status)}
	if !own {
		rec.ID = m.ID
		if err := im.set(key(pAlias, m.ID), u64(seq)); err != nil {
			return err
		}
	}
	val := rec.append(nil)
	if err := im.set(msgKey(seq), val); err != nil {
		return err
	}
	if err := im.set(appendSeq(convPrefix(m.From, m.To), seq), val); err != nil {
		return err
	}
	if err := im.set(seqKey(pInbox, m.To, seq), nil); err != nil {
		return err
	}
	if m.CID != "" {
		if bucket, ok := im.dedupBucket(m.TS); ok {
			if err := im.set(dedupKey(bucket, m.From, m.CID), appendDedupRef(nil, seq)); err != nil {
				return err
			}
		}
	}
	in := im.inboxes[m.To]
	if in == nil {
		in = &inboxState{}
		im.inboxes[m.To] = in
	}
	// A deleted recipient has nothing pending, whatever the dump says.
	pending := m.Pending && !im.users[m.To]
	if pending {
		in.after = append(in.after, heldEntry{seq, val})
		return nil
	}
	for _, h := range in.after {
		if err := im.set(seqKey(pHeld, m.To, h.seq), h.rec); err != nil {
			return err
		}
	}
	in.after = in.after[:0]
	in.cursor = seq
	return nil
}

// dedupBucket is the de-duplication bucket of a message stored at ts,
// and false when the window has passed it (it gets no key).
func (im *importer) dedupBucket(ts int64) (uint32, bool) {
	if im.s.window == 0 {
		return foreverBucket, true
	}
	b := dayBucket(ts)
	return b, b >= im.dedupFrom
}

// endMessages stores the ack cursors once the messages are read.
func (im *importer) endMessages() error {
	for user, in := range im.inboxes {
		if in.cursor == 0 || im.users[user] {
			continue // deleted users get theirs at the end
		}
		if err := im.set(key(pCursor, user), u64(in.cursor)); err != nil {
			return err
		}
	}
	im.inboxes = nil
	return nil
}

func (im *importer) inGroup(id int64) error {
	if im.g == nil || im.g.rec.id != id {
		return fmt.Errorf("group %d: not the group being read", id)
	}
	return nil
}

func (im *importer) group(g *storagedump.Group) error {
	if err := im.endGroup(); err != nil {
		return err
	}
	last := int64(0)
	if im.g != nil {
		last = im.g.rec.id
	}
	if g.ID <= last {
		return fmt.Errorf("group %d after group %d: ids must ascend", g.ID, last)
	}
	if err := im.user(g.Owner); err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	im.t.Groups++
	im.g = &groupImport{
		rec: &groupRecord{
			id: g.ID, name: g.Name, owner: g.Owner, policy: g.Policy, history: g.History,
			muteAll: g.MuteAll, dissolved: g.Dissolved, members: g.Members,
			lastSeq: g.LastSeq, lastTS: g.LastTS, created: g.Created,
		},
		members:  make(map[string]*memberRecord),
		mentions: make(map[string][]int64),
		cursors:  make(map[string]bool),
	}
	return im.set(groupKey(g.ID), im.g.rec.append(nil))
}

func (im *importer) member(m *storagedump.GroupMember) error {
	if err := cmp.Or(im.inGroup(m.Group), im.user(m.User)); err != nil {
		return err
	}
	g := im.g
	if g.lastEntry > 0 {
		return fmt.Errorf("member %q of group %d after its log", m.User, m.Group)
	}
	im.t.GroupMembers++
	rec := &memberRecord{role: m.Role, joinSeq: m.JoinSeq, leftSeq: m.LeftSeq, mutedUntil: m.MutedUntil}
	if rec.current() {
		if im.users[m.User] {
			return fmt.Errorf("group %d: deleted user %q is a member", m.Group, m.User)
		}
		g.members[m.User] = rec
		g.count++
		if err := im.set(userGroupKey(pUserGroup, m.User, m.Group), nil); err != nil {
			return err
		}
	}
	return im.set(memberKey(m.Group, m.User), rec.append(nil))
}

func (im *importer) entry(de *storagedump.GroupEntry) error {
	if err := im.inGroup(de.Group); err != nil {
		return err
	}
	g := im.g
	if de.Seq <= g.lastEntry {
		return fmt.Errorf("entry %d of group %d after entry %d: seqs must ascend", de.Seq, de.Group, g.lastEntry)
	}
	g.lastEntry = de.Seq
	im.t.GroupEntries++
	e := plugins.GroupEntry{
		Group: de.Group, Seq: de.Seq, Kind: de.Kind, TS: de.TS, From: de.From, Body: de.Body,
		Mentions: de.Mentions, Actor: de.Actor, Target: de.Target, Name: de.Name, Role: de.Role,
		Until: de.Until, On: de.On, Policy: de.Policy, History: de.History, MsgID: de.MsgID, CID: de.CID,
	}
	if err := im.set(entryKey(de.Group, de.Seq), appendEntryRecord(nil, &e)); err != nil {
		return err
	}
	if e.Kind != plugins.EntryMsg {
		return nil
	}
	if seq, ok := parseMsgID(e.MsgID); ok {
		im.maxSeq = max(im.maxSeq, seq)
	}
	im.lastTS = max(im.lastTS, e.TS)
	if e.CID != "" {
		if bucket, ok := im.dedupBucket(e.TS); ok {
			ref := appendSeq(appendSeq([]byte{refGroup}, uint64(e.Group)), uint64(e.Seq))
			if err := im.set(dedupKey(bucket, e.From, e.CID), ref); err != nil {
				return err
			}
		}
	}
	if slices.Contains(e.Mentions, mentionAll) {
		return im.set(appendSeq(appendSeq([]byte{pAllMention}, uint64(e.Group)), uint64(e.Seq)), nil)
	}
	for j, name := range e.Mentions {
		if name == e.From || slices.Contains(e.Mentions[:j], name) {
			continue
		}
		if _, ok := g.members[name]; ok { // only current members keep mentions
			g.mentions[name] = append(g.mentions[name], e.Seq)
		}
	}
	return nil
}

func (im *importer) cursor(c *storagedump.GroupCursor) error {
	if err := cmp.Or(im.inGroup(c.Group), im.user(c.User)); err != nil {
		return err
	}
	im.t.GroupCursors++
	if _, ok := im.g.members[c.User]; !ok {
		return nil // a former member's: they have none here
	}
	return im.putCursor(c.User, c.ReadSeq)
}

// putCursor stores the cursor of user, a current member of the group
// being read, with the named mentions after it.
func (im *importer) putCursor(user string, readSeq int64) error {
	g := im.g
	if g.cursors[user] {
		return fmt.Errorf("a second cursor of %q", user)
	}
	g.cursors[user] = true
	var n int64
	for _, seq := range g.mentions[user] {
		if seq <= readSeq {
			continue
		}
		n++
		if err := im.set(mentionKey(user, g.rec.id, seq), nil); err != nil {
			return err
		}
	}
	delete(g.mentions, user)
	return im.set(userGroupKey(pGCursor, user, g.rec.id), cursorRecord{readSeq: readSeq, mentions: n}.append(nil))
}

// endGroup checks the group being read against its members and log and
// gives a cursor to every member who came without one (just before
// their join, as joining does).
func (im *importer) endGroup() error {
	g := im.g
	if g == nil || g.members == nil {
		return nil
	}
	id := g.rec.id
	if g.count != g.rec.members {
		return fmt.Errorf("group %d: %d members, its record says %d", id, g.count, g.rec.members)
	}
	// LastTS is kept as the record gives it (later entries take no
	// earlier ts), not checked.
	if g.lastEntry != g.rec.lastSeq {
		return fmt.Errorf("group %d: its log ends at %d, its record says %d", id, g.lastEntry, g.rec.lastSeq)
	}
	if g.rec.dissolved && g.count > 0 {
		return fmt.Errorf("group %d: dissolved with %d members", id, g.count)
	}
	var missing []string
	for user := range g.members {
		if !g.cursors[user] {
			missing = append(missing, user)
		}
	}
	slices.Sort(missing)
	for _, user := range missing {
		if err := im.putCursor(user, g.members[user].joinSeq-1); err != nil {
			return err
		}
	}
	// Done with it; keep the id for the order check.
	im.g = &groupImport{rec: &groupRecord{id: id}}
	return nil
}

// finish stores what follows from the whole dump (the deleted users'
// cursors, the last seq and ts), commits with fsync, flushes, and
// rebuilds the in-memory state from the database. The caller holds
// s.wmu.
func (im *importer) finish() error {
	if im.inboxes != nil { // a dump without records after its messages
		if err := im.endMessages(); err != nil {
			return err
		}
	}
	last := max(im.lastSeq, im.maxSeq)
	// A deleted user's cursor passes everything, as DeleteUser leaves it.
	for user, deleted := range im.users {
		if deleted && last > 0 {
			if err := im.set(key(pCursor, user), u64(last)); err != nil {
				return err
			}
		}
	}
	s := im.s
	lastTS := max(im.lastTS, s.lastTS.Load())
	if last > 0 {
		if err := im.set(metaKey, appendSeqMeta(nil, last, lastTS)); err != nil {
			return err
		}
	}
	if err := im.commit(pebble.Sync); err != nil {
		return err
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	s.vmu.Lock()
	err := s.load()
	s.vmu.Unlock()
	if err != nil {
		return fmt.Errorf("load the imported state: %w", err)
	}
	buckets, err := s.dedupBuckets()
	if err != nil {
		return fmt.Errorf("load de-duplication buckets: %w", err)
	}
	s.cids = newCIDFilters()
	if err := s.cids.load(s.db, buckets); err != nil {
		return fmt.Errorf("load de-duplication filters: %w", err)
	}
	s.publish(nil)
	return nil
}
