package pebblestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
)

// TestHeldBack: acks in every order against a model of what is pending.
// An old message left unacked while later ones are acked (a client that
// never fetches it) must not grow the out-of-order ack set past its bound:
// the cursor moves on and holds the pending entries back. Pending, the
// counts and the sets agree with the model after every batch, across
// reopens, and after DeleteUser.
func TestHeldBack(t *testing.T) {
	s, path, c := newStore(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 11))
	var order []string           // bob's messages, oldest first
	pending := map[string]bool{} // the model
	modelPending := func() []string {
		var out []string
		for _, id := range order {
			if pending[id] {
				out = append(out, id)
			}
		}
		return out
	}
	check := func(step string) {
		t.Helper()
		want := modelPending()
		page, more, err := s.Pending(ctx, "bob", len(want)+1)
		if err != nil || more {
			t.Fatalf("%s: Pending(bob) more %v, %v", step, more, err)
		}
		got := make([]string, len(page))
		for i, m := range page {
			got[i] = m.ID
		}
		if first, _, err := s.Pending(ctx, "bob", 37); err != nil || len(first) != min(37, len(want)) {
			t.Fatalf("%s: Pending(bob, 37) has %d messages (%v), want %d", step, len(first), err, min(37, len(want)))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: Pending(bob) has %d messages, want %d (first difference at %d)", step, len(got), len(want), firstDiff(got, want))
		}
		if n, all := counts(t, s, "bob"); n != int64(len(want)) || all != n {
			t.Fatalf("%s: PendingCount(bob) = %d, CountPending = %d; want %d", step, n, all, len(want))
		}
		mem, stored, err := pebblestore.OutOfOrderAcks(s, "bob")
		if err != nil || mem != stored || mem > pebblestore.MaxAcked {
			t.Fatalf("%s: out-of-order acks %d in memory, %d stored (%v); want equal and at most %d", step, mem, stored, err, pebblestore.MaxAcked)
		}
		hm, hs, err := pebblestore.HeldBack(s, "bob")
		if err != nil || hm != int64(hs) || hm > int64(len(want)) {
			t.Fatalf("%s: held back %d in memory, %d stored (%v); want equal and at most %d pending", step, hm, hs, err, len(want))
		}
	}
	var heldSeen bool
	for round := range 60 {
		// New messages, a few of which stay unacked for a long time.
		var msgs []plugins.NewMessage
		for i := range 1 + r.IntN(40) {
			msgs = append(msgs, nm("alice", "bob", fmt.Sprint(round, i), ""))
		}
		for _, id := range ids(send(t, s, msgs...)) {
			order = append(order, id)
			pending[id] = true
		}
		// Ack a random subset in a random order: mostly the newest (live
		// pushes), sometimes old ones, sometimes ids acked before.
		var ack []string
		for _, id := range order {
			p := 0.9
			if id < order[max(0, len(order)-50)] {
				p = 0.03
			}
			if r.Float64() < p {
				ack = append(ack, id)
			}
		}
		r.Shuffle(len(ack), func(i, j int) { ack[i], ack[j] = ack[j], ack[i] })
		for len(ack) > 0 {
			n := min(len(ack), 1+r.IntN(30))
			write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: ack[:n]}}})
			for _, id := range ack[:n] {
				pending[id] = false
			}
			ack = ack[n:]
			check(fmt.Sprintf("round %d", round))
		}
		if hm, _, _ := pebblestore.HeldBack(s, "bob"); hm > 0 {
			heldSeen = true
		}
		if round%15 == 14 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openAt(t, path, c)
			check(fmt.Sprintf("reopened after round %d", round))
		}
	}
	if !heldSeen {
		t.Fatal("no entry was ever held back: the test did not exercise holding back")
	}
	// An export carries what is held back as pending, and an import of it
	// holds the same messages pending, with no out-of-order acks.
	dump := exportAll(t, s)
	imported, _ := importInto(t, c, dump)
	sameRecords(t, dump, exportAll(t, imported))
	if got, want := pendingIDs(t, imported, "bob"), modelPending(); !slices.Equal(got, want) {
		t.Fatalf("imported: Pending(bob) has %d messages, want %d", len(got), len(want))
	}
	if mem, stored, err := pebblestore.OutOfOrderAcks(imported, "bob"); err != nil || mem != 0 || stored != 0 {
		t.Fatalf("imported: out-of-order acks %d in memory, %d stored (%v); want none", mem, stored, err)
	}
	// Ack every held-back entry, oldest first in small batches.
	rest := modelPending()
	for len(rest) > 0 {
		n := min(len(rest), 7)
		write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: rest[:n]}}})
		for _, id := range rest[:n] {
			pending[id] = false
		}
		rest = rest[n:]
		check("acking the rest")
	}

	// DeleteUser drops what is held back.
	send(t, s, nm("alice", "bob", "old", ""))
	var live []string
	for i := range pebblestore.MaxAcked + 10 {
		live = append(live, ids(send(t, s, nm("alice", "bob", fmt.Sprint("live", i), "")))...)
	}
	write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: live}}})
	if hm, _, _ := pebblestore.HeldBack(s, "bob"); hm != 1 {
		t.Fatalf("held back %d after one old message and %d acks past it; want 1", hm, len(live))
	}
	if n, err := s.DeleteUser(ctx, "bob"); err != nil || n != 1 {
		t.Fatalf("DeleteUser(bob) = %d, %v; want 1", n, err)
	}
	if hm, hs, err := pebblestore.HeldBack(s, "bob"); err != nil || hm != 0 || hs != 0 {
		t.Fatalf("after DeleteUser: held back %d in memory, %d stored (%v); want none", hm, hs, err)
	}
	if _, all := counts(t, s, "alice"); all != 0 {
		t.Fatalf("after DeleteUser: CountPending = %d, want 0", all)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestHeldBackAtOpen: a store with an out-of-order ack set larger than the
// bound (written before held-back entries existed) is brought within it
// at Open, losing nothing that is pending.
func TestHeldBackAtOpen(t *testing.T) {
	s, path, c := newStore(t)
	var msgs []plugins.NewMessage
	for i := range 3 * pebblestore.MaxAcked {
		msgs = append(msgs, nm("alice", "bob", fmt.Sprint(i), ""))
	}
	m := ids(send(t, s, msgs...))
	// m[0] and every tenth message stay pending; the rest were acked.
	var acked, want []string
	for i, id := range m {
		if i%10 == 0 {
			want = append(want, id)
		} else {
			acked = append(acked, id)
		}
	}
	if err := pebblestore.PutLegacyAcks(s, "bob", acked); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, c)
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, want) {
		t.Fatalf("Pending(bob) after reopen = %d messages, want %d", len(got), len(want))
	}
	if n, all := counts(t, s, "bob"); n != int64(len(want)) || all != n {
		t.Fatalf("PendingCount(bob) = %d, CountPending = %d; want %d", n, all, len(want))
	}
	mem, stored, err := pebblestore.OutOfOrderAcks(s, "bob")
	if err != nil || mem != 0 || stored != 0 {
		t.Fatalf("out-of-order acks after Open: %d in memory, %d stored (%v); want none", mem, stored, err)
	}
	// Every pending message is below the newest ack (m[191]): all are
	// held back.
	if hm, hs, err := pebblestore.HeldBack(s, "bob"); err != nil || hm != int64(len(want)) || hs != len(want) {
		t.Fatalf("held back %d in memory, %d stored (%v); want %d", hm, hs, err, len(want))
	}
	write(t, s, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: want}}})
	if n, all := counts(t, s, "bob"); n != 0 || all != 0 {
		t.Fatalf("after acking the rest: PendingCount(bob) = %d, CountPending = %d; want 0", n, all)
	}
}
