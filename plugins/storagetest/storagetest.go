// Package storagetest is the conformance suite of plugins.Storage: what qqd
// relies on from a storage, checked through the interface only. A storage
// plugin's tests run it on a fresh storage per subtest:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) plugins.Storage {
//			s, err := mystore.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Run the suite against the storage in process and, to check the wire
// contract too, through a plugin process (plugins.Start or
// plugins.Supervise with the plugin's binary); package sqlitestore's tests
// do both.
//
// The suite covers accounts, direct messages, de-duplication by cid
// (within a few seconds: it never waits for a storage's window to pass),
// pending messages and acks, history paging and order, the atomicity of a
// batch (what a cancelled Write leaves behind), Close, and, when the
// storage has a plugins.Social (found with plugins.SocialOf), friendships,
// friend requests, blocks and the checks Write makes with them, and, when
// it has plugins.Groups (plugins.GroupsOf), groups: every operation and
// the rights it needs, the limits, the log's seq and order, what each
// member may see of it, paging both ways, read cursors with unread and
// mention counts, de-duplication of group messages (in the direct
// messages' key space), the atomicity of a batch with group messages, and
// what deleting an account does to its groups, and, when it has
// plugins.Tokens (plugins.TokensOf), resume tokens: storing and looking
// them up (the hash byte for byte), taken ids, unknown and deleted users,
// the trim to the most recently used, touches that only move forward,
// listing, revoking by id and all, purging by absolute and idle expiry,
// and the revocation of every token of a user by SetPasswordHash and
// DeleteUser. It does not cover what only an implementation can arrange:
// a crash of the process or the machine, a full disk, the clock, the
// length of the de-duplication window, durability across a reopen.
//
// Dump and DumpAcross check a storage's export and import (package
// storagedump): a store filled with every kind of state, dumped and loaded
// into another (of the same kind, or of another: SQLite to Pebble and
// back), must give the same dump again and answer every read alike.
package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// callTimeout bounds every call the suite makes, so that a storage that
// hangs fails the test instead of blocking it.
const callTimeout = 30 * time.Second

// ts0 is the clock of the social calls (2025-11-26T12:00:00Z in ms): the
// suite passes timestamps to them and expects them back.
const ts0 int64 = 1_764_158_400_000

// Run runs the conformance suite as subtests of t. open returns a new,
// empty storage each time it is called, and arranges its own cleanup (for
// example with t.Cleanup); the suite may Close the storage itself first,
// so a second Close must be harmless. Subtests run one after the other.
func Run(t *testing.T, open func(t *testing.T) plugins.Storage) {
	t.Run("accounts", func(t *testing.T) { runAccounts(t, open) })
	t.Run("messages", func(t *testing.T) { runMessages(t, open) })
	t.Run("cid", func(t *testing.T) { runCID(t, open) })
	t.Run("pending", func(t *testing.T) { runPending(t, open) })
	t.Run("history", func(t *testing.T) { runHistory(t, open) })
	t.Run("batch", func(t *testing.T) { runBatch(t, open) })
	t.Run("close", func(t *testing.T) { runClose(t, open) })
	t.Run("social", func(t *testing.T) { runSocial(t, open) })
	t.Run("write checks", func(t *testing.T) { runWriteChecks(t, open) })
	t.Run("groups", func(t *testing.T) { runGroups(t, open) })
	t.Run("tokens", func(t *testing.T) { runTokens(t, open) })
}

// tester wraps a storage under test with helpers that fail the test on
// unexpected errors.
type tester struct {
	t  *testing.T
	st plugins.Storage
}

// newTester opens a storage and creates users (with hash "hash-<name>").
func newTester(t *testing.T, open func(t *testing.T) plugins.Storage, users ...string) *tester {
	t.Helper()
	st := open(t)
	if st == nil {
		t.Fatal("open returned no storage")
	}
	h := &tester{t: t, st: st}
	for _, u := range users {
		if err := st.CreateUser(h.ctx(), u, "hash-"+u); err != nil {
			t.Fatalf("CreateUser(%q): %v", u, err)
		}
	}
	return h
}

// ctx is the context of one call: it ends after callTimeout or with the
// test.
func (h *tester) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	h.t.Cleanup(cancel)
	return ctx
}

// social returns the storage's Social, skipping the test when it has none.
func (h *tester) social() plugins.Social {
	h.t.Helper()
	soc, ok := plugins.SocialOf(h.st)
	if !ok {
		h.t.Skip("the storage has no plugins.Social")
	}
	return soc
}

// nm is a new message with status queued.
func nm(from, to, body, cid string) plugins.NewMessage {
	return plugins.NewMessage{From: from, To: to, Body: body, CID: cid, Status: protocol.StatusQueued}
}

// write runs a batch that must succeed, with one result per message.
func (h *tester) write(b *plugins.WriteBatch) []plugins.AppendResult {
	h.t.Helper()
	res, err := h.st.Write(h.ctx(), b)
	if err != nil {
		h.t.Fatalf("Write: %v", err)
	}
	if n := len(b.Messages) + len(b.GroupMessages); len(res) != n {
		h.t.Fatalf("Write: %d results for %d messages", len(res), n)
	}
	return res
}

// send writes msgs in one batch.
func (h *tester) send(msgs ...plugins.NewMessage) []plugins.AppendResult {
	h.t.Helper()
	return h.write(&plugins.WriteBatch{Messages: msgs})
}

// sendOK writes msgs in one batch; every one must be stored (not a
// duplicate, no error). It returns the stored messages.
func (h *tester) sendOK(msgs ...plugins.NewMessage) []protocol.Message {
	h.t.Helper()
	res := h.send(msgs...)
	out := make([]protocol.Message, len(res))
	for i, r := range res {
		if r.Err != nil || r.Duplicate || r.Message.ID == "" {
			h.t.Fatalf("Write: message %d (%+v) not stored: %+v", i, msgs[i], r)
		}
		out[i] = r.Message
	}
	return out
}

func (h *tester) ack(user string, ids ...string) {
	h.t.Helper()
	h.write(&plugins.WriteBatch{Acks: []plugins.Ack{{User: user, MsgIDs: ids}}})
}

func (h *tester) pendingCount(user string) int64 {
	h.t.Helper()
	n, err := h.st.PendingCount(h.ctx(), user)
	if err != nil {
		h.t.Fatalf("PendingCount(%q): %v", user, err)
	}
	return n
}

func (h *tester) pending(user string, limit int) ([]protocol.Message, bool) {
	h.t.Helper()
	msgs, more, err := h.st.Pending(h.ctx(), user, limit)
	if err != nil {
		h.t.Fatalf("Pending(%q, %d): %v", user, limit, err)
	}
	return msgs, more
}

func (h *tester) history(user, with string) []protocol.Message {
	h.t.Helper()
	msgs, more, err := h.st.History(h.ctx(), user, with, "", 10000)
	if err != nil || more {
		h.t.Fatalf("History(%q, %q) = %d messages, more %v, %v", user, with, len(msgs), more, err)
	}
	return msgs
}

func (h *tester) countUsers() int64 {
	h.t.Helper()
	n, err := h.st.CountUsers(h.ctx())
	if err != nil {
		h.t.Fatalf("CountUsers: %v", err)
	}
	return n
}

func (h *tester) countPending() int64 {
	h.t.Helper()
	n, err := h.st.CountPending(h.ctx())
	if err != nil {
		h.t.Fatalf("CountPending: %v", err)
	}
	return n
}

func (h *tester) deleteUser(user string) int64 {
	h.t.Helper()
	n, err := h.st.DeleteUser(h.ctx(), user)
	if err != nil {
		h.t.Fatalf("DeleteUser(%q): %v", user, err)
	}
	return n
}

// lookup returns LookupCIDs of keys, one result per key.
func (h *tester) lookup(keys ...plugins.CIDKey) []plugins.AppendResult {
	h.t.Helper()
	res, err := h.st.LookupCIDs(h.ctx(), keys)
	if err != nil {
		h.t.Fatalf("LookupCIDs: %v", err)
	}
	if len(res) != len(keys) {
		h.t.Fatalf("LookupCIDs: %d results for %d keys", len(res), len(keys))
	}
	return res
}

func ids(msgs []protocol.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// checkIDs fails unless every message has a valid, distinct id.
func checkIDs(t *testing.T, msgs []protocol.Message) {
	t.Helper()
	seen := make(map[string]bool, len(msgs))
	for i, m := range msgs {
		if m.ID == "" || !utf8.ValidString(m.ID) || seen[m.ID] {
			t.Fatalf("message %d: id %q is empty, not UTF-8 or repeated", i, m.ID)
		}
		seen[m.ID] = true
	}
}

// isErr reports whether err is target (errors.Is), with nil matching nil.
func isErr(err, target error) bool {
	if target == nil {
		return err == nil
	}
	return errors.Is(err, target)
}

// equalMessages compares two message lists.
func equalMessages(a, b []protocol.Message) bool { return slices.Equal(a, b) }
