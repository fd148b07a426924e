package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// ---- accounts -----------------------------------------------------------

func runAccounts(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("create and look up", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob")
		tests := []struct {
			name     string
			create   string // user to create, if any
			hash     string
			wantErr  error
			lookup   string
			wantHash string
			wantLErr error
		}{
			{name: "new user", create: "dave", hash: "h1", lookup: "dave", wantHash: "h1"},
			{name: "taken name", create: "alice", hash: "other", wantErr: plugins.ErrUserExists, lookup: "alice", wantHash: "hash-alice"},
			{name: "unknown user", lookup: "nobody", wantLErr: plugins.ErrUnknownUser},
			{name: "names are byte-wise", lookup: "Alice", wantLErr: plugins.ErrUnknownUser},
			{name: "empty hash is stored", create: "erin", lookup: "erin"},
			{name: "hash is opaque", create: "zoë", hash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA", lookup: "zoë", wantHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"},
		}
		for _, tt := range tests { // sequential: accounts accumulate
			t.Run(tt.name, func(t *testing.T) {
				if tt.create != "" {
					if err := h.st.CreateUser(h.ctx(), tt.create, tt.hash); !isErr(err, tt.wantErr) {
						t.Fatalf("CreateUser(%q) = %v, want %v", tt.create, err, tt.wantErr)
					}
				}
				got, err := h.st.PasswordHash(h.ctx(), tt.lookup)
				if !isErr(err, tt.wantLErr) || got != tt.wantHash {
					t.Fatalf("PasswordHash(%q) = %q, %v; want %q, %v", tt.lookup, got, err, tt.wantHash, tt.wantLErr)
				}
			})
		}
		if n := h.countUsers(); n != 5 {
			t.Errorf("CountUsers = %d, want 5", n)
		}
	})

	t.Run("set password hash", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob", "carol")
		h.deleteUser("carol")
		tests := []struct {
			name     string
			user     string
			hash     string
			wantErr  error
			wantHash string
		}{
			{name: "replaces", user: "alice", hash: "new-alice", wantHash: "new-alice"},
			{name: "same hash again", user: "alice", hash: "new-alice", wantHash: "new-alice"},
			{name: "empty hash", user: "bob", hash: "", wantHash: ""},
			{name: "unknown user", user: "ghost", hash: "h", wantErr: plugins.ErrUnknownUser},
			{name: "names are byte-wise", user: "Alice", hash: "h", wantErr: plugins.ErrUnknownUser},
			{name: "deleted user", user: "carol", hash: "h", wantErr: plugins.ErrUnknownUser},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := h.st.SetPasswordHash(h.ctx(), tt.user, tt.hash); !isErr(err, tt.wantErr) {
					t.Fatalf("SetPasswordHash(%q) = %v, want %v", tt.user, err, tt.wantErr)
				}
				if tt.wantErr != nil {
					return
				}
				if got, err := h.st.PasswordHash(h.ctx(), tt.user); err != nil || got != tt.wantHash {
					t.Fatalf("PasswordHash(%q) = %q, %v; want %q", tt.user, got, err, tt.wantHash)
				}
			})
		}
		if _, err := h.st.PasswordHash(h.ctx(), "carol"); !errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("PasswordHash(carol) after SetPasswordHash = %v, want ErrUnknownUser (a deleted user stays deleted)", err)
		}
	})

	t.Run("count users", func(t *testing.T) {
		h := newTester(t, open)
		tests := []struct {
			name string
			op   func() error
			want int64
		}{
			{"empty", func() error { return nil }, 0},
			{"one", func() error { return h.st.CreateUser(h.ctx(), "alice", "h") }, 1},
			{"two", func() error { return h.st.CreateUser(h.ctx(), "bob", "h") }, 2},
			{"taken name", func() error {
				if err := h.st.CreateUser(h.ctx(), "bob", "h"); !errors.Is(err, plugins.ErrUserExists) {
					return fmt.Errorf("CreateUser(bob) again = %v, want ErrUserExists", err)
				}
				return nil
			}, 2},
			{"password change", func() error { return h.st.SetPasswordHash(h.ctx(), "bob", "x") }, 2},
			{"deleted", func() error { _, err := h.st.DeleteUser(h.ctx(), "bob"); return err }, 1},
			{"a deleted name stays taken", func() error {
				if err := h.st.CreateUser(h.ctx(), "bob", "h"); !errors.Is(err, plugins.ErrUserExists) {
					return fmt.Errorf("CreateUser(bob) after DeleteUser = %v, want ErrUserExists", err)
				}
				return nil
			}, 1},
			{"another", func() error { return h.st.CreateUser(h.ctx(), "carol", "h") }, 2},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.op(); err != nil {
					t.Fatal(err)
				}
				if n := h.countUsers(); n != tt.want {
					t.Fatalf("CountUsers = %d, want %d", n, tt.want)
				}
			})
		}
	})

	t.Run("delete user", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob", "carol", "dave")
		// alice->bob a0 a1 a2 (a0 acked), carol->bob c0, bob->alice b0.
		a := h.sendOK(nm("alice", "bob", "a0", "ka0"), nm("alice", "bob", "a1", "ka1"), nm("alice", "bob", "a2", ""))
		h.ack("bob", a[0].ID)
		rest := h.sendOK(nm("carol", "bob", "c0", ""), nm("bob", "alice", "b0", "kb0"))
		c0, b0 := rest[0], rest[1]

		if n := h.deleteUser("bob"); n != 3 {
			t.Errorf("DeleteUser(bob) dropped %d pending messages, want 3", n)
		}
		if _, err := h.st.PasswordHash(h.ctx(), "bob"); !errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("PasswordHash(bob) = %v, want ErrUnknownUser", err)
		}
		if n := h.pendingCount("bob"); n != 0 {
			t.Errorf("PendingCount(bob) = %d, want 0", n)
		}
		if p, more := h.pending("bob", 10); len(p) != 0 || more {
			t.Errorf("Pending(bob) = %+v, %v; want none", p, more)
		}
		// What bob sent stays pending for its recipient.
		if p, _ := h.pending("alice", 10); !equalMessages(p, []protocol.Message{b0}) {
			t.Errorf("Pending(alice) = %+v, want [%+v]", p, b0)
		}
		if n := h.countPending(); n != 1 {
			t.Errorf("CountPending = %d, want 1", n)
		}
		// Neither recipient nor sender; nothing stored.
		res := h.send(nm("alice", "bob", "to the deleted", "new1"), nm("bob", "alice", "from the deleted", "new2"), nm("carol", "alice", "fine", ""))
		for i, wantErr := range []bool{true, true, false} {
			if got := errors.Is(res[i].Err, plugins.ErrUnknownUser); got != wantErr || (wantErr && res[i].Message.ID != "") {
				t.Errorf("send %d = %+v, want ErrUnknownUser %v", i, res[i], wantErr)
			}
		}
		if n := h.pendingCount("bob"); n != 0 {
			t.Errorf("PendingCount(bob) after sends = %d, want 0", n)
		}
		// The other side keeps its history, in both directions, and can
		// page it.
		want := []protocol.Message{a[0], a[1], a[2], b0}
		if got := h.history("alice", "bob"); !equalMessages(got, want) {
			t.Errorf("History(alice, bob) = %+v, want %+v", got, want)
		}
		if got := h.history("bob", "carol"); !equalMessages(got, []protocol.Message{c0}) {
			t.Errorf("History(bob, carol) = %+v, want [%+v]", got, c0)
		}
		if got, more, err := h.st.History(h.ctx(), "alice", "bob", b0.ID, 2); err != nil || !more || !equalMessages(got, want[1:3]) {
			t.Errorf("History(alice, bob) before b0 = %+v, %v, %v; want %+v, more", got, more, err, want[1:3])
		}
		// The name is not free again; the account does not come back.
		if err := h.st.CreateUser(h.ctx(), "bob", "h"); !errors.Is(err, plugins.ErrUserExists) {
			t.Errorf("CreateUser(bob) = %v, want ErrUserExists", err)
		}
		if _, err := h.st.PasswordHash(h.ctx(), "bob"); !errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("PasswordHash(bob) after CreateUser = %v, want ErrUnknownUser", err)
		}
		if err := h.st.SetPasswordHash(h.ctx(), "bob", "h"); !errors.Is(err, plugins.ErrUnknownUser) {
			t.Errorf("SetPasswordHash(bob) = %v, want ErrUnknownUser", err)
		}
		if n, err := h.st.DeleteUser(h.ctx(), "bob"); !errors.Is(err, plugins.ErrUnknownUser) || n != 0 {
			t.Errorf("DeleteUser(bob) again = %d, %v; want ErrUnknownUser", n, err)
		}
		if n, err := h.st.DeleteUser(h.ctx(), "ghost"); !errors.Is(err, plugins.ErrUnknownUser) || n != 0 {
			t.Errorf("DeleteUser(ghost) = %d, %v; want ErrUnknownUser", n, err)
		}
		if n, err := h.st.DeleteUser(h.ctx(), "Dave"); !errors.Is(err, plugins.ErrUnknownUser) || n != 0 {
			t.Errorf("DeleteUser(Dave) = %d, %v; want ErrUnknownUser (names are byte-wise)", n, err)
		}
		if n := h.countUsers(); n != 3 {
			t.Errorf("CountUsers = %d, want 3", n)
		}
		// A user with nothing pending.
		if n := h.deleteUser("dave"); n != 0 {
			t.Errorf("DeleteUser(dave) dropped %d, want 0", n)
		}
		if n := h.countUsers(); n != 2 {
			t.Errorf("CountUsers = %d, want 2", n)
		}
	})
}

// ---- messages -------------------------------------------------------------

func runMessages(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("append", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob")
		m1 := nm("alice", "bob", "hi bob", "c1")
		m2 := nm("bob", "alice", "hi alice", "c2")
		m2.Status = protocol.StatusSent
		res := h.send(m1, m2)
		var stored []protocol.Message
		for i, want := range []plugins.NewMessage{m1, m2} {
			r := res[i]
			if r.Err != nil || r.Duplicate {
				t.Fatalf("result %d: %+v", i, r)
			}
			got := r.Message
			if got.From != want.From || got.To != want.To || got.Body != want.Body || got.TS <= 0 || r.Status != want.Status {
				t.Errorf("result %d = %+v status %q, want %+v with a timestamp", i, got, r.Status, want)
			}
			stored = append(stored, got)
		}
		checkIDs(t, stored)
		if stored[1].TS < stored[0].TS {
			t.Errorf("timestamps decrease within a batch: %d then %d", stored[0].TS, stored[1].TS)
		}
		// The stored messages read back exactly as the results say.
		if p, more := h.pending("bob", 10); more || !equalMessages(p, stored[:1]) {
			t.Errorf("Pending(bob) = %+v, %v; want [%+v]", p, more, stored[0])
		}
		if p, more := h.pending("alice", 10); more || !equalMessages(p, stored[1:]) {
			t.Errorf("Pending(alice) = %+v, %v; want [%+v]", p, more, stored[1])
		}
		if got := h.history("alice", "bob"); !equalMessages(got, stored) {
			t.Errorf("History(alice, bob) = %+v, want %+v", got, stored)
		}
		if got := h.history("bob", "alice"); !equalMessages(got, stored) {
			t.Errorf("History(bob, alice) = %+v, want %+v", got, stored)
		}
	})

	t.Run("empty batch", func(t *testing.T) {
		h := newTester(t, open, "alice")
		if res, err := h.st.Write(h.ctx(), &plugins.WriteBatch{}); err != nil || len(res) != 0 {
			t.Errorf("Write(empty batch) = %+v, %v; want no results, no error", res, err)
		}
	})

	t.Run("bodies", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob")
		bodies := []string{
			"plain",
			"nul\x00inside",
			"héllo wörld 🌍 中文",
			"  leading and trailing spaces  ",
			"line\nbreaks\r\nand\ttabs",
			strings.Repeat("x", 64<<10),
		}
		var msgs []plugins.NewMessage
		for _, b := range bodies {
			msgs = append(msgs, nm("alice", "bob", b, ""))
		}
		stored := h.sendOK(msgs...)
		p, _ := h.pending("bob", len(bodies))
		if len(p) != len(bodies) {
			t.Fatalf("Pending(bob) = %d messages, want %d", len(p), len(bodies))
		}
		for i, m := range p {
			if m.Body != bodies[i] || stored[i].Body != bodies[i] {
				t.Errorf("body %d = %q (result %q), want %q", i, m.Body, stored[i].Body, bodies[i])
			}
		}
	})

	t.Run("unknown users", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob", "carol", "dave")
		h.deleteUser("dave")
		res := h.send(
			nm("alice", "bob", "1", "c1"),
			nm("alice", "ghost", "2", "c2"),
			nm("ghost", "bob", "3", "c3"),
			nm("alice", "carol", "4", "c4"),
			nm("alice", "Bob", "5", "c5"),
			nm("alice", "dave", "6", "c6"),
			nm("dave", "bob", "7", "c7"),
		)
		for i, wantErr := range []bool{false, true, true, false, true, true, true} {
			if wantErr {
				if !errors.Is(res[i].Err, plugins.ErrUnknownUser) || res[i].Message.ID != "" || res[i].Duplicate {
					t.Errorf("result %d = %+v, want ErrUnknownUser and no message", i, res[i])
				}
			} else if res[i].Err != nil || res[i].Message.ID == "" {
				t.Errorf("result %d = %+v, want stored", i, res[i])
			}
		}
		if b, c := h.pendingCount("bob"), h.pendingCount("carol"); b != 1 || c != 1 {
			t.Errorf("pending bob=%d carol=%d, want 1 and 1", b, c)
		}
		if n := h.countPending(); n != 2 {
			t.Errorf("CountPending = %d, want 2", n)
		}
	})

	t.Run("to self", func(t *testing.T) {
		h := newTester(t, open, "alice")
		m := h.sendOK(nm("alice", "alice", "note to self", ""))[0]
		if p, _ := h.pending("alice", 10); !equalMessages(p, []protocol.Message{m}) {
			t.Errorf("Pending(alice) = %+v, want [%+v]", p, m)
		}
		if got := h.history("alice", "alice"); !equalMessages(got, []protocol.Message{m}) {
			t.Errorf("History(alice, alice) = %+v, want [%+v]", got, m)
		}
	})

	t.Run("order and timestamps", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob")
		var all []protocol.Message
		for i := range 6 {
			var msgs []plugins.NewMessage
			for j := range i + 1 {
				from, to := "alice", "bob"
				if (i+j)%2 == 1 {
					from, to = to, from
				}
				msgs = append(msgs, nm(from, to, fmt.Sprintf("%d/%d", i, j), fmt.Sprintf("k%d-%d", i, j)))
			}
			all = append(all, h.sendOK(msgs...)...)
		}
		checkIDs(t, all)
		for i := 1; i < len(all); i++ {
			if all[i].TS < all[i-1].TS {
				t.Fatalf("timestamp of message %d (%d) is before that of message %d (%d)", i, all[i].TS, i-1, all[i-1].TS)
			}
		}
		if got := h.history("bob", "alice"); !equalMessages(got, all) {
			t.Errorf("History is not in acceptance order:\n got %v\nwant %v", ids(got), ids(all))
		}
		var toBob []protocol.Message
		for _, m := range all {
			if m.To == "bob" {
				toBob = append(toBob, m)
			}
		}
		if p, _ := h.pending("bob", 100); !equalMessages(p, toBob) {
			t.Errorf("Pending(bob) is not in acceptance order:\n got %v\nwant %v", ids(p), ids(toBob))
		}
	})

	t.Run("ids are unique", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob")
		var msgs []plugins.NewMessage
		for range 200 {
			msgs = append(msgs, nm("alice", "bob", "same body", ""))
		}
		all := h.sendOK(msgs...)
		all = append(all, h.sendOK(msgs[:50]...)...)
		checkIDs(t, all)
	})
}

// ---- de-duplication -------------------------------------------------------

func runCID(t *testing.T, open func(*testing.T) plugins.Storage) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *tester)
	}{
		{"same batch", func(t *testing.T, h *tester) {
			res := h.send(nm("alice", "bob", "one", "x"), nm("alice", "bob", "two", "x"))
			if res[0].Duplicate || res[0].Err != nil || !res[1].Duplicate || res[1].Err != nil || res[1].Message != res[0].Message {
				t.Errorf("results = %+v, want the second a duplicate of the first", res)
			}
			if n := h.pendingCount("bob"); n != 1 {
				t.Errorf("PendingCount(bob) = %d, want 1", n)
			}
		}},
		{"later batch with other to and body", func(t *testing.T, h *tester) {
			first := h.send(nm("alice", "bob", "one", "x"))[0]
			r := h.send(nm("alice", "carol", "other", "x"))[0]
			if !r.Duplicate || r.Message != first.Message || r.Status != protocol.StatusQueued || r.Err != nil {
				t.Errorf("retry = %+v, want a duplicate of %+v", r, first)
			}
			if n := h.pendingCount("carol"); n != 0 {
				t.Errorf("PendingCount(carol) = %d, want 0", n)
			}
			if got := h.history("alice", "carol"); len(got) != 0 {
				t.Errorf("History(alice, carol) = %+v, want none", got)
			}
		}},
		{"after ack, with the first status", func(t *testing.T, h *tester) {
			m := nm("alice", "bob", "one", "x")
			m.Status = protocol.StatusSent
			first := h.send(m)[0]
			h.ack("bob", first.Message.ID)
			r := h.send(nm("alice", "bob", "again", "x"))[0]
			if !r.Duplicate || r.Message != first.Message || r.Status != protocol.StatusSent {
				t.Errorf("retry = %+v, want a duplicate of %+v with status sent", r, first)
			}
			if n := h.pendingCount("bob"); n != 0 {
				t.Errorf("PendingCount(bob) = %d, want 0 (not delivered again)", n)
			}
		}},
		{"scoped per sender", func(t *testing.T, h *tester) {
			res := h.send(nm("alice", "bob", "a", "x"), nm("carol", "bob", "c", "x"))
			if res[0].Duplicate || res[1].Duplicate || res[0].Message.ID == res[1].Message.ID {
				t.Errorf("results = %+v, want two messages", res)
			}
			if n := h.pendingCount("bob"); n != 2 {
				t.Errorf("PendingCount(bob) = %d, want 2", n)
			}
		}},
		{"no cid is never a duplicate", func(t *testing.T, h *tester) {
			res := h.send(nm("alice", "bob", "a", ""), nm("alice", "bob", "a", ""))
			if res[0].Duplicate || res[1].Duplicate || res[0].Message.ID == res[1].Message.ID {
				t.Errorf("results = %+v, want two messages", res)
			}
		}},
		{"a refused send does not claim its cid", func(t *testing.T, h *tester) {
			res := h.send(nm("alice", "ghost", "a", "x"), nm("alice", "bob", "b", "x"))
			if !errors.Is(res[0].Err, plugins.ErrUnknownUser) || res[1].Err != nil || res[1].Duplicate {
				t.Errorf("results = %+v, want ErrUnknownUser, then a stored message", res)
			}
		}},
		{"cids are byte-wise", func(t *testing.T, h *tester) {
			res := h.send(nm("alice", "bob", "a", "x"), nm("alice", "bob", "b", "X"), nm("alice", "bob", "c", "x "))
			for i, r := range res {
				if r.Duplicate || r.Err != nil {
					t.Errorf("result %d = %+v, want a new message", i, r)
				}
			}
		}},
		{"lookup", func(t *testing.T, h *tester) {
			m := nm("alice", "bob", "one", "k1")
			m.Status = protocol.StatusSent
			first := h.send(m, nm("bob", "alice", "two", "k2"))
			retry := h.send(nm("alice", "carol", "retry", "k1"))[0]
			got := h.lookup(
				plugins.CIDKey{From: "alice", CID: "k1"},
				plugins.CIDKey{From: "alice", CID: "k2"}, // another sender's key
				plugins.CIDKey{From: "bob", CID: "k2"},
				plugins.CIDKey{From: "alice", CID: ""},
				plugins.CIDKey{From: "ghost", CID: "k1"},
				plugins.CIDKey{From: "alice", CID: "k1"}, // twice
			)
			want := []plugins.AppendResult{
				retry, {}, {Message: first[1].Message, Status: protocol.StatusQueued, Duplicate: true}, {}, {}, retry,
			}
			for i := range want {
				if got[i].Message != want[i].Message || got[i].Status != want[i].Status || got[i].Duplicate != want[i].Duplicate || got[i].Err != nil {
					t.Errorf("LookupCIDs result %d = %+v, want %+v", i, got[i], want[i])
				}
			}
			if got := h.lookup(); len(got) != 0 {
				t.Errorf("LookupCIDs() = %+v, want no results", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newTester(t, open, "alice", "bob", "carol"))
		})
	}
}

// ---- pending and acks -------------------------------------------------------

func runPending(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("acks", func(t *testing.T) {
		// Each case starts with alice->bob m0, m1 and bob->alice m2 pending.
		tests := []struct {
			name        string
			acks        func(m []string) []plugins.Ack
			wantPending map[string]int64
		}{
			{"own pending", func(m []string) []plugins.Ack {
				return []plugins.Ack{{User: "bob", MsgIDs: []string{m[0]}}}
			}, map[string]int64{"bob": 1, "alice": 1}},
			{"several users in one batch", func(m []string) []plugins.Ack {
				return []plugins.Ack{{User: "bob", MsgIDs: []string{m[0], m[1]}}, {User: "alice", MsgIDs: []string{m[2]}}}
			}, map[string]int64{"bob": 0, "alice": 0}},
			{"ids of another user are ignored", func(m []string) []plugins.Ack {
				return []plugins.Ack{{User: "alice", MsgIDs: []string{m[0], m[1]}}, {User: "carol", MsgIDs: m}}
			}, map[string]int64{"bob": 2, "alice": 1}},
			{"unknown ids and users are ignored", func(m []string) []plugins.Ack {
				return []plugins.Ack{{User: "bob", MsgIDs: []string{"nope", "", m[1]}}, {User: "ghost", MsgIDs: []string{m[0]}}}
			}, map[string]int64{"bob": 1, "alice": 1}},
			{"already acked is ignored", func(m []string) []plugins.Ack {
				return []plugins.Ack{{User: "bob", MsgIDs: []string{m[0], m[0]}}, {User: "bob", MsgIDs: []string{m[0]}}}
			}, map[string]int64{"bob": 1, "alice": 1}},
			{"no ids", func(m []string) []plugins.Ack {
				return []plugins.Ack{{User: "bob"}}
			}, map[string]int64{"bob": 2, "alice": 1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := newTester(t, open, "alice", "bob", "carol")
				m := ids(h.sendOK(nm("alice", "bob", "0", ""), nm("alice", "bob", "1", ""), nm("bob", "alice", "2", "")))
				h.write(&plugins.WriteBatch{Acks: tt.acks(m)})
				var sum int64
				for u, want := range tt.wantPending {
					got := h.pendingCount(u)
					if got != want {
						t.Errorf("PendingCount(%s) = %d, want %d", u, got, want)
					}
					sum += got
				}
				if n := h.countPending(); n != sum {
					t.Errorf("CountPending = %d, want %d", n, sum)
				}
				// Acks settle pending state only: history keeps everything.
				if got := h.history("alice", "bob"); len(got) != 3 {
					t.Errorf("History(alice, bob) = %d messages, want 3", len(got))
				}
			})
		}
	})

	t.Run("ack in the batch that appends", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob")
		old := h.sendOK(nm("alice", "bob", "old", ""))[0]
		res := h.write(&plugins.WriteBatch{
			Messages: []plugins.NewMessage{nm("bob", "alice", "reply", "")},
			Acks:     []plugins.Ack{{User: "bob", MsgIDs: []string{old.ID}}},
		})
		if res[0].Err != nil || res[0].Message.ID == "" {
			t.Fatalf("result = %+v", res[0])
		}
		if b, a := h.pendingCount("bob"), h.pendingCount("alice"); b != 0 || a != 1 {
			t.Errorf("pending bob=%d alice=%d, want 0 and 1", b, a)
		}
	})

	t.Run("pages", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob", "carol")
		var msgs []plugins.NewMessage
		for i := range 5 {
			msgs = append(msgs, nm("alice", "bob", fmt.Sprint(i), ""))
		}
		m := ids(h.sendOK(msgs...))
		h.sendOK(nm("bob", "alice", "not bob's", ""))
		tests := []struct {
			name     string
			user     string
			limit    int
			acked    []string // acked before the call (cumulative)
			wantIDs  []string
			wantMore bool
		}{
			{name: "first page", user: "bob", limit: 2, wantIDs: m[:2], wantMore: true},
			{name: "exact fit", user: "bob", limit: 5, wantIDs: m},
			{name: "larger limit", user: "bob", limit: 100, wantIDs: m},
			{name: "one short", user: "bob", limit: 4, wantIDs: m[:4], wantMore: true},
			{name: "after acks", user: "bob", limit: 2, acked: m[:2], wantIDs: m[2:4], wantMore: true},
			{name: "after more acks", user: "bob", limit: 2, acked: m[1:4], wantIDs: m[4:]},
			{name: "nothing pending", user: "carol", limit: 3, wantIDs: []string{}},
			{name: "unknown user", user: "ghost", limit: 3, wantIDs: []string{}},
		}
		for _, tt := range tests { // sequential: acks accumulate
			t.Run(tt.name, func(t *testing.T) {
				if len(tt.acked) > 0 {
					h.ack("bob", tt.acked...)
				}
				got, more := h.pending(tt.user, tt.limit)
				if !slices.Equal(ids(got), tt.wantIDs) || more != tt.wantMore {
					t.Fatalf("Pending(%s, %d) = %v, %v; want %v, %v", tt.user, tt.limit, ids(got), more, tt.wantIDs, tt.wantMore)
				}
				if n, want := h.pendingCount(tt.user), int64(len(tt.wantIDs)); !tt.wantMore && n != want {
					t.Errorf("PendingCount(%s) = %d, want %d", tt.user, n, want)
				}
			})
		}
	})
}

// ---- history ----------------------------------------------------------------

func runHistory(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTester(t, open, "alice", "bob", "carol")
	// Conversation alice<->bob: m0..m4 in both directions, interleaved with
	// other conversations.
	var m []string
	var other, self string
	for i := range 5 {
		from, to := "alice", "bob"
		if i%2 == 1 {
			from, to = to, from
		}
		res := h.sendOK(nm(from, to, fmt.Sprint(i), ""), nm("alice", "carol", "c", ""), nm("alice", "alice", "note", ""))
		m = append(m, res[0].ID)
		other, self = res[1].ID, res[2].ID
	}
	tests := []struct {
		name       string
		user, with string
		before     string
		limit      int
		wantIDs    []string
		wantMore   bool
		wantErr    error
	}{
		{name: "newest page", user: "alice", with: "bob", limit: 2, wantIDs: m[3:], wantMore: true},
		{name: "newest page from the other side", user: "bob", with: "alice", limit: 2, wantIDs: m[3:], wantMore: true},
		{name: "page before", user: "alice", with: "bob", before: m[3], limit: 2, wantIDs: m[1:3], wantMore: true},
		{name: "last page short", user: "bob", with: "alice", before: m[1], limit: 2, wantIDs: m[:1]},
		{name: "last page exact", user: "alice", with: "bob", before: m[2], limit: 2, wantIDs: m[:2]},
		{name: "before the first", user: "alice", with: "bob", before: m[0], limit: 2, wantIDs: []string{}},
		{name: "all", user: "alice", with: "bob", limit: 50, wantIDs: m},
		{name: "exact limit", user: "alice", with: "bob", limit: 5, wantIDs: m},
		{name: "no messages", user: "bob", with: "carol", limit: 5, wantIDs: []string{}},
		{name: "cursor from another conversation", user: "alice", with: "bob", before: other, limit: 2, wantErr: plugins.ErrBadCursor},
		{name: "cursor of the self conversation", user: "alice", with: "bob", before: self, limit: 2, wantErr: plugins.ErrBadCursor},
		{name: "unknown cursor", user: "alice", with: "bob", before: "nope", limit: 2, wantErr: plugins.ErrBadCursor},
		{name: "unknown with", user: "alice", with: "ghost", limit: 2, wantErr: plugins.ErrUnknownUser},
		{name: "unknown with and bad cursor", user: "alice", with: "ghost", before: "nope", limit: 2, wantErr: plugins.ErrUnknownUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more, err := h.st.History(h.ctx(), tt.user, tt.with, tt.before, tt.limit)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("History = %v, %v, error %v; want error %v", ids(got), more, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(ids(got), tt.wantIDs) || more != tt.wantMore {
				t.Fatalf("History = %v, %v, %v; want %v, %v", ids(got), more, err, tt.wantIDs, tt.wantMore)
			}
		})
	}
	t.Run("self conversation", func(t *testing.T) {
		got, more, err := h.st.History(h.ctx(), "alice", "alice", "", 3)
		if err != nil || !more || len(got) != 3 || got[2].ID != self {
			t.Fatalf("History(alice, alice) = %+v, %v, %v; want 3 notes ending with %s, more", got, more, err, self)
		}
		for _, msg := range got {
			if msg.From != "alice" || msg.To != "alice" {
				t.Fatalf("self conversation has %+v", msg)
			}
		}
	})
	t.Run("walk back through every page", func(t *testing.T) {
		for limit := 1; limit <= 6; limit++ {
			var all []string
			before, pages := "", 0
			for {
				page, more, err := h.st.History(h.ctx(), "bob", "alice", before, limit)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				all = append(ids(page), all...)
				if !more {
					break
				}
				if len(page) == 0 || pages > 10 {
					t.Fatalf("limit %d: page %d is empty or paging does not end", limit, pages)
				}
				before = page[0].ID
			}
			if !slices.Equal(all, m) || pages != (len(m)+limit-1)/limit {
				t.Errorf("limit %d: walked %v in %d pages, want %v", limit, all, pages, m)
			}
		}
	})
}

// ---- batch atomicity ----------------------------------------------------------

// runBatch checks what the API can show of a batch's atomicity: a Write
// stores all of its messages and acks or none; one that fails with
// MaybeWritten false stored nothing, one that succeeds stored all.
func runBatch(t *testing.T, open func(*testing.T) plugins.Storage) {
	// batch i has 8 messages with cids b<i>-<j>, the even ones to bob and
	// the odd ones to alice, and acks target (pending for bob).
	batch := func(i int, target string) *plugins.WriteBatch {
		b := &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{target}}}}
		for j := range 8 {
			from, to := "alice", "bob"
			if j%2 == 1 {
				from, to = to, from
			}
			b.Messages = append(b.Messages, nm(from, to, fmt.Sprintf("batch %d message %d", i, j), fmt.Sprintf("b%d-%d", i, j)))
		}
		return b
	}
	// lookedUp counts the batch's messages LookupCIDs finds.
	lookedUp := func(h *tester, b *plugins.WriteBatch) int {
		keys := make([]plugins.CIDKey, len(b.Messages))
		for j, m := range b.Messages {
			keys[j] = plugins.CIDKey{From: m.From, CID: m.CID}
		}
		n := 0
		for _, r := range h.lookup(keys...) {
			if r.Duplicate {
				n++
			}
		}
		return n
	}
	// inPending reads bob's pending messages once (one snapshot) and
	// returns how many of batch i's messages to bob are among them (they
	// are never acked) and whether target is still pending.
	inPending := func(h *tester, i int, target string) (n int, targetPending bool) {
		prefix := fmt.Sprintf("batch %d message ", i)
		for _, m := range h.pendingAll("bob") {
			switch {
			case m.ID == target:
				targetPending = true
			case strings.HasPrefix(m.Body, prefix):
				n++
			}
		}
		return n, targetPending
	}

	t.Run("cancelled", func(t *testing.T) {
		h := newTester(t, open, "alice", "bob")
		target := h.sendOK(nm("alice", "bob", "target", ""))[0]
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		b := batch(0, target.ID)
		res, err := h.st.Write(ctx, b)
		var we *plugins.WriteError
		if !errors.As(err, &we) || we.MaybeWritten || !errors.Is(err, context.Canceled) || res != nil {
			t.Fatalf("Write with a cancelled context = %+v, %v; want a *WriteError{MaybeWritten: false} wrapping context.Canceled", res, err)
		}
		if n := lookedUp(h, b); n != 0 {
			t.Errorf("%d messages of the failed batch are stored", n)
		}
		if p, _ := h.pending("bob", 10); !equalMessages(p, []protocol.Message{target}) {
			t.Errorf("Pending(bob) = %+v, want only %+v", p, target)
		}
		if n := h.pendingCount("alice"); n != 0 {
			t.Errorf("PendingCount(alice) = %d, want 0", n)
		}
		// The cids were not taken.
		for i, r := range h.send(b.Messages...) {
			if r.Duplicate || r.Err != nil {
				t.Errorf("message %d after the failed batch = %+v, want stored anew", i, r)
			}
		}
	})

	t.Run("cancelled while running", func(t *testing.T) {
		// Cancel each Write after a growing delay: whatever the moment,
		// the batch is stored whole (its messages and its ack) or not at
		// all, as its outcome says. Each batch acks a message of its own,
		// so a batch whose outcome is unknown (and that may still commit)
		// does not disturb the checks of the others.
		const batches = 24
		h := newTester(t, open, "alice", "bob")
		var targetMsgs []plugins.NewMessage
		for i := range batches {
			targetMsgs = append(targetMsgs, nm("alice", "bob", fmt.Sprintf("target %d", i), ""))
		}
		targets := ids(h.sendOK(targetMsgs...))
		var outcomes [3]int // nothing stored, unknown, stored
		unknown := make([]bool, batches)
		delay := time.Microsecond // growing to 50ms, for fast and slow storages
		for i := range batches {
			b := batch(i, targets[i])
			ctx, cancel := context.WithCancel(context.Background())
			delay = delay * 8 / 5
			timer := time.AfterFunc(delay, cancel)
			_, err := h.st.Write(ctx, b)
			timer.Stop()
			cancel()
			n, targetPending := inPending(h, i, targets[i])
			if n != 0 && n != 4 || (n == 4) == targetPending {
				t.Fatalf("batch %d (Write: %v): %d of its 4 messages to bob are pending and its ack applied %v: a torn batch", i, err, n, !targetPending)
			}
			var we *plugins.WriteError
			switch {
			case err == nil:
				outcomes[2]++
				if all := lookedUp(h, b); n != 4 || all != 8 {
					t.Fatalf("batch %d: Write succeeded but %d of its 4 messages to bob are pending, %d of 8 found by LookupCIDs", i, n, all)
				}
			case !errors.As(err, &we):
				t.Fatalf("batch %d: Write = %v, want nil or a *WriteError", i, err)
			case !we.MaybeWritten:
				outcomes[0]++
				if all := lookedUp(h, b); n != 0 || all != 0 {
					t.Fatalf("batch %d: Write failed with MaybeWritten false (%v) but %d of its messages are stored", i, err, max(n, all))
				}
			default:
				outcomes[1]++
				unknown[i] = true
			}
		}
		// Batches of unknown outcome may have committed since; still
		// whole or nothing.
		for i := range batches {
			if !unknown[i] {
				continue
			}
			n, targetPending := inPending(h, i, targets[i])
			if n != 0 && n != 4 || (n == 4) == targetPending {
				t.Errorf("batch %d: %d of its 4 messages to bob are pending and its ack applied %v: a torn batch", i, n, !targetPending)
			}
		}
		t.Logf("outcomes: %d nothing stored, %d unknown, %d stored", outcomes[0], outcomes[1], outcomes[2])
	})
}

// pendingAll returns every message pending for user.
func (h *tester) pendingAll(user string) []protocol.Message {
	h.t.Helper()
	msgs, _ := h.pending(user, 100000)
	return msgs
}

// ---- close ------------------------------------------------------------------

func runClose(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTester(t, open, "alice", "bob")
	h.sendOK(nm("alice", "bob", "x", ""))
	if err := h.st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := h.st.Write(h.ctx(), &plugins.WriteBatch{Messages: []plugins.NewMessage{nm("alice", "bob", "after close", "")}})
	var we *plugins.WriteError
	if !errors.As(err, &we) {
		t.Errorf("Write after Close = %v, want a *WriteError", err)
	}
	if _, err := h.st.PasswordHash(h.ctx(), "alice"); err == nil {
		t.Error("PasswordHash after Close succeeded")
	}
	if _, _, err := h.st.Pending(h.ctx(), "bob", 10); err == nil {
		t.Error("Pending after Close succeeded")
	}
	if err := h.st.CreateUser(h.ctx(), "carol", "h"); err == nil {
		t.Error("CreateUser after Close succeeded")
	}
}
