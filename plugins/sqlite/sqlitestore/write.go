package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/msgid"
)

// CreateUser stores a new account. It returns an error wrapping
// plugins.ErrUserExists when the name is taken, by an account or by a
// deleted one (names are never reused).
func (s *Store) CreateUser(ctx context.Context, user, passwordHash string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("sqlitestore: create user: %w", ErrClosed)
	}
	if err := s.restoreSync(ctx); err != nil {
		return err
	}
	if err := s.roomForData(); err != nil {
		return fmt.Errorf("sqlitestore: create user %q: %w", user, err)
	}
	res, err := s.stCreateUser.ExecContext(ctx, user, passwordHash, s.now().UnixMilli())
	if err != nil {
		if isFull(err) {
			s.reclaimWAL(ctx)
		}
		return fmt.Errorf("sqlitestore: create user %q: %w", user, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlitestore: create user %q: %w", user, err)
	}
	if n == 0 { // ON CONFLICT DO NOTHING: the name is taken
		return fmt.Errorf("sqlitestore: create user %q: %w", user, plugins.ErrUserExists)
	}
	return nil
}

// SetPasswordHash replaces the password hash of user and, in the same
// transaction, removes every resume token of user (a password change
// logs every remembered session out). It returns an error wrapping
// plugins.ErrUnknownUser when the user does not exist or was deleted.
func (s *Store) SetPasswordHash(ctx context.Context, user, passwordHash string) error {
	return s.writeTx(ctx, "set password hash", func(tx *sql.Tx) error {
		n, err := exec(ctx, tx, s.stSetHash, passwordHash, user)
		if err != nil {
			return fmt.Errorf("user %q: %w", user, err)
		}
		if n == 0 {
			return fmt.Errorf("user %q: %w", user, plugins.ErrUnknownUser)
		}
		if _, err := exec(ctx, tx, s.stDropUserTokens, user); err != nil {
			return fmt.Errorf("user %q: drop tokens: %w", user, err)
		}
		return nil
	})
}

// DeleteUser deletes the account of user in one transaction: the user is
// marked deleted (its password hash erased), the messages pending for it
// are dropped (it returns how many), and so are its friendships, friend
// requests and blocks, in both directions, and its resume tokens; it
// leaves its groups (see plugins.Groups, "Deleted accounts"). The user's
// history rows stay, and
// so does the name: see the package documentation. It returns an error
// wrapping plugins.ErrUnknownUser when the user does not exist or was
// already deleted.
func (s *Store) DeleteUser(ctx context.Context, user string) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return 0, fmt.Errorf("sqlitestore: delete user: %w", ErrClosed)
	}
	if err := s.restoreSync(ctx); err != nil {
		return 0, err
	}
	tx, err := s.writer.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: delete user %q: begin: %w", user, err)
	}
	defer func() { _ = tx.Rollback() }()
	delete(s.users, user) // even if the transaction fails: it is only a cache
	res, err := tx.StmtContext(ctx, s.stDeleteUser).ExecContext(ctx, s.now().UnixMilli(), user)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: delete user %q: %w", user, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("sqlitestore: delete user %q: %w", user, err)
	} else if n == 0 {
		return 0, fmt.Errorf("sqlitestore: delete user: user %q: %w", user, plugins.ErrUnknownUser)
	}
	res, err = tx.StmtContext(ctx, s.stDropPend).ExecContext(ctx, user)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: delete user %q: drop pending: %w", user, err)
	}
	dropped, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: delete user %q: drop pending: %w", user, err)
	}
	for _, st := range []*sql.Stmt{s.stDropFriends, s.stDropRequests, s.stDropBlocks} {
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, user); err != nil {
			return 0, fmt.Errorf("sqlitestore: delete user %q: drop friendships, requests and blocks: %w", user, err)
		}
	}
	if _, err := tx.StmtContext(ctx, s.stDropUserTokens).ExecContext(ctx, user); err != nil {
		return 0, fmt.Errorf("sqlitestore: delete user %q: drop tokens: %w", user, err)
	}
	if err := s.leaveGroups(newTxStmts(ctx, tx), user, s.now().UnixMilli()); err != nil {
		return 0, fmt.Errorf("sqlitestore: delete user %q: leave groups: %w", user, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlitestore: delete user %q: commit: %w", user, err)
	}
	return dropped, nil
}

// Write stores the batch's messages and applies its acks in one
// transaction; see the package documentation for the details.
func (s *Store) Write(ctx context.Context, b *plugins.WriteBatch) ([]plugins.AppendResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: write: %w", ErrClosed)}
	}
	if err := ctx.Err(); err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: write: %w", err)}
	}
	if b == nil || len(b.Messages)+len(b.Acks)+len(b.GroupMessages)+len(b.GroupAcks) == 0 {
		return []plugins.AppendResult{}, nil
	}
	if err := s.restoreSync(ctx); err != nil {
		return nil, &plugins.WriteError{Err: err}
	}
	if len(b.Messages)+len(b.GroupMessages) > 0 {
		if err := s.roomForData(); err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: write: %w", err)}
		}
	}
	res, err := s.write(ctx, b)
	if err != nil && isFull(err) {
		// The transaction is over: give the WAL's space back, so that
		// the acks and checkpoints that follow find room.
		s.reclaimWAL(ctx)
	}
	return res, err
}

// write is Write after its checks. The caller holds s.wmu.
func (s *Store) write(ctx context.Context, b *plugins.WriteBatch) ([]plugins.AppendResult, error) {
	if len(b.Messages)+len(b.GroupMessages) == 0 && s.syncLevel == "FULL" {
		// An ack-only batch commits without fsync: see the package
		// documentation (Durability).
		s.syncLowered = true
		if err := s.setSynchronous(ctx, "NORMAL"); err != nil {
			return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: ack commit: %w", err)}
		}
		defer func() { _ = s.restoreSync(context.Background()) }()
	}

	tx, err := s.writer.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: begin: %w", err)}
	}
	// After a successful or failed Commit this is a no-op (sql.ErrTxDone).
	defer func() { _ = tx.Rollback() }()

	if err := s.syncCaches(ctx, tx); err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: %w", err)}
	}
	results, firstID, err := s.append(ctx, tx, b.Messages)
	if err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: append: %w", err)}
	}
	groupResults, firstGroup, err := s.appendGroup(ctx, tx, b.GroupMessages, b.GroupLimits)
	if err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: append group messages: %w", err)}
	}
	if err := s.ack(ctx, tx, b.Acks); err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: ack: %w", err)}
	}
	if err := s.ackGroups(ctx, tx, b.GroupAcks); err != nil {
		return nil, &plugins.WriteError{Err: fmt.Errorf("sqlitestore: group ack: %w", err)}
	}
	results = append(results, groupResults...)
	if err := tx.Commit(); err != nil {
		// A COMMIT that failed may leave the transaction open: then
		// nothing is stored, and it must end before the next write.
		maybe := !s.rollbackAfterFailedCommit() && s.commitMaybeWritten(firstID, firstGroup)
		s.log.Warn("sqlitestore: commit failed", "err", err, "maybe_written", maybe)
		return nil, &plugins.WriteError{MaybeWritten: maybe, Err: fmt.Errorf("sqlitestore: commit: %w", err)}
	}
	return results, nil
}

// append inserts msgs inside tx and returns their results and the id of
// the first message it inserted ("" if none).
//
// A message whose (sender, cid) is stored already inserts nothing (the
// insert's ON CONFLICT) and is answered with the stored one; so the common
// case, a new cid, costs one statement, not a lookup and an insert.
func (s *Store) append(ctx context.Context, tx *sql.Tx, msgs []plugins.NewMessage) (_ []plugins.AppendResult, firstID string, _ error) {
	results := make([]plugins.AppendResult, len(msgs))
	if len(msgs) == 0 {
		return results, "", nil
	}
	sctx := statementContext(ctx)
	t := newTxStmts(sctx, tx)
	userExists := t.get(s.stUserExists)
	insert := t.get(s.stInsert)
	var insertChecked *sql.Stmt // prepared on the tx at first use

	// stored looks up the message stored under m's (sender, cid), of
	// either kind.
	stored := func(m plugins.NewMessage) (plugins.AppendResult, bool, error) {
		return s.storedCID(t, m.From, m.CID)
	}
	// Names found missing in this batch. CreateUser and DeleteUser wait
	// for s.wmu, so what a batch learns about a name holds for the whole
	// batch; names that exist are remembered across batches in s.users.
	missing := make(map[string]bool)
	registered := func(name string) (bool, error) {
		if _, ok := s.users[name]; ok {
			return true, nil
		}
		if missing[name] {
			return false, nil
		}
		var ok bool
		if err := userExists.QueryRowContext(sctx, name).Scan(&ok); err != nil {
			return false, fmt.Errorf("look up user: %w", err)
		}
		if !ok {
			missing[name] = true
			return false, nil
		}
		if len(s.users) >= maxKnownUsers {
			clear(s.users)
		}
		s.users[name] = struct{}{}
		return true, nil
	}

	ts := s.nextTS()
	for i, m := range msgs {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, "", err
			}
		}
		for _, name := range []string{m.To, m.From} {
			ok, err := registered(name)
			if err != nil {
				return nil, "", err
			}
			if !ok {
				results[i].Err = fmt.Errorf("sqlitestore: user %q: %w", name, plugins.ErrUnknownUser)
				break
			}
		}
		if results[i].Err != nil {
			// A retry of a message stored before its recipient was
			// deleted is still answered with the stored message.
			if m.CID != "" {
				if r, found, err := stored(m); err != nil {
					return nil, "", err
				} else if found {
					results[i] = r
				}
			}
			continue
		}
		id := msgid.New(ts)
		var cid any // NULL when empty
		if m.CID != "" {
			cid = m.CID
		}
		// A message to a user who blocks no one, not friends-only, needs
		// no check: the plain insert. Otherwise the insert makes the
		// checks itself (one primary-key probe each).
		var (
			res sql.Result
			err error
		)
		if checked := m.FriendsOnly || s.mayBlock(m.To); !checked {
			res, err = insert.ExecContext(sctx, id, m.From, m.To, convKey(m.From, m.To), m.Body, ts, cid, string(m.Status))
		} else {
			if insertChecked == nil {
				insertChecked = tx.StmtContext(sctx, s.stInsertChk)
			}
			res, err = insertChecked.ExecContext(sctx, id, m.From, m.To, convKey(m.From, m.To), m.Body, ts, cid, string(m.Status), m.FriendsOnly)
		}
		if err != nil {
			return nil, "", fmt.Errorf("insert: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, "", fmt.Errorf("insert: %w", err)
		}
		if n == 0 {
			// The (sender, cid) is stored already (a duplicate, whatever
			// the users' relation is now), or (checked insert) the
			// recipient blocks the sender, or the message is friends-only
			// and they are not.
			if m.CID != "" {
				r, found, err := stored(m)
				if err != nil {
					return nil, "", err
				}
				if found {
					results[i] = r
					continue
				}
			}
			refused, err := s.refusal(sctx, tx, m)
			if err != nil {
				return nil, "", err
			}
			results[i].Err = refused
			continue
		}
		if firstID == "" {
			firstID = id
		}
		results[i] = plugins.AppendResult{
			Message: protocol.Message{ID: id, From: m.From, To: m.To, Body: m.Body, TS: ts},
			Status:  m.Status,
		}
	}
	return results, firstID, nil
}

// refusal says, inside tx, why the insert of m stored nothing although its
// (sender, cid) is not stored: the result's error (ErrBlocked or
// ErrNotFriends), or a failure of the lookup.
func (s *Store) refusal(ctx context.Context, tx *sql.Tx, m plugins.NewMessage) (refused, err error) {
	var blocked, friends bool
	if err := tx.StmtContext(ctx, s.stWriteRel).QueryRowContext(ctx, m.From, m.To).Scan(&blocked, &friends); err != nil {
		return nil, fmt.Errorf("look up relation: %w", err)
	}
	switch {
	case blocked:
		return fmt.Errorf("sqlitestore: %q blocks %q: %w", m.To, m.From, plugins.ErrBlocked), nil
	case m.FriendsOnly && !friends && m.From != m.To:
		return fmt.Errorf("sqlitestore: %q and %q: %w", m.From, m.To, plugins.ErrNotFriends), nil
	}
	return nil, fmt.Errorf("insert: message from %q to %q was not stored, for no known reason", m.From, m.To)
}

// ack settles, inside tx, the acked ids that are pending for their user.
func (s *Store) ack(ctx context.Context, tx *sql.Tx, acks []plugins.Ack) error {
	if len(acks) == 0 {
		return nil
	}
	sctx := statementContext(ctx)
	st := tx.StmtContext(sctx, s.stAck)
	n := 0
	for _, a := range acks {
		for _, id := range a.MsgIDs {
			if n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			n++
			if _, err := st.ExecContext(sctx, id, a.User); err != nil {
				return err
			}
		}
	}
	return nil
}

// statementContext returns the context for the statements inside a write
// transaction: ctx without its cancellation. With a cancelable context,
// database/sql and the driver start a watcher goroutine for every
// statement, which costs more than a small statement itself. The
// transaction still watches ctx (BeginTx rolls it back when ctx ends), and
// the loops check ctx every ctxCheckEvery statements.
func statementContext(ctx context.Context) context.Context {
	return context.WithoutCancel(ctx)
}

// ctxCheckEvery is how many statements a write runs between checks of its
// context.
const ctxCheckEvery = 64

// setSynchronous sets PRAGMA synchronous on the writer connection (the
// only one: SetMaxOpenConns(1)). The caller holds s.wmu.
func (s *Store) setSynchronous(ctx context.Context, level string) error {
	_, err := s.writer.ExecContext(ctx, "PRAGMA synchronous = "+level)
	return err
}

// restoreSync sets the writer's synchronous level back to the configured
// one after an ack-only Write lowered it. Every write method calls it
// first and fails if it fails: nothing else commits with the lowered
// level. The caller holds s.wmu.
func (s *Store) restoreSync(ctx context.Context) error {
	if !s.syncLowered {
		return nil
	}
	if err := s.setSynchronous(ctx, s.syncLevel); err != nil {
		return fmt.Errorf("sqlitestore: restore synchronous=%s: %w", s.syncLevel, err)
	}
	s.syncLowered = false
	return nil
}

// nextTS returns the timestamp of a new batch: now, but never less than
// the last one assigned. The caller holds s.wmu. lastTS advances even if
// the batch then fails, which keeps timestamps monotonic when a failed
// commit did in fact commit.
func (s *Store) nextTS() int64 {
	ts := s.now().UnixMilli()
	if ts < s.lastTS {
		ts = s.lastTS
	}
	s.lastTS = ts
	return ts
}

// commitMaybeWritten settles, after COMMIT failed, whether the batch may be
// stored: it looks for the batch's first new message (or, with none,
// its first new group message) on the writer connection (which sees its
// own last commit). The caller holds s.wmu.
func (s *Store) commitMaybeWritten(firstID string, firstGroup firstGroupEntry) bool {
	if firstID == "" && firstGroup.msgID == "" {
		return true // nothing to look for; acks alone are idempotent
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	query, args := qProbe, []any{firstID}
	if firstID == "" {
		query, args = qGroupProbe, []any{firstGroup.group, firstGroup.seq, firstGroup.msgID}
	}
	var found bool
	if err := s.writer.QueryRowContext(ctx, query, args...).Scan(&found); err != nil {
		s.log.Warn("sqlitestore: cannot settle the outcome of a failed commit", "err", err)
		return true
	}
	return found
}

// PruneCIDs forgets the de-duplication keys of messages older than the
// window (a later message with such a key is stored anew) and returns how
// many it forgot. It works in small transactions, so writes interleave.
// With a zero window it does nothing.
func (s *Store) PruneCIDs(ctx context.Context) (int64, error) {
	var total int64
	for _, st := range []*sql.Stmt{s.stPrune, s.stGroupPrune} { // direct messages', group messages'
		for {
			n, err := s.pruneBatch(ctx, st)
			total += n
			if err != nil {
				return total, fmt.Errorf("sqlitestore: prune cids: %w", err)
			}
			if n < pruneBatch {
				break
			}
		}
	}
	return total, nil
}

func (s *Store) pruneBatch(ctx context.Context, st *sql.Stmt) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if s.window <= 0 {
		return 0, nil
	}
	cutoff := s.now().Add(-s.window).UnixMilli()
	res, err := st.ExecContext(ctx, cutoff, pruneBatch)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
