package storagebench

import (
	"slices"
	"testing"
)

// TestCandidates checks that every candidate does the logical work the
// benchmark times: a retry is answered with the stored message and
// stores nothing, history is the newest first, an ack out of order waits
// until the acks before it let the cursor pass, and what is pending
// follows the acks.
func TestCandidates(t *testing.T) {
	for _, k := range []string{"A", "B", "C"} {
		t.Run(k, func(t *testing.T) {
			s, err := candidates[k](t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := s.close(); err != nil {
					t.Error(err)
				}
			}()
			write := func(msgs []message, acks []ack, sync bool) []result {
				t.Helper()
				res, err := s.write(msgs, acks, sync)
				if err != nil {
					t.Fatal(err)
				}
				if len(res) != len(msgs) {
					t.Fatalf("%d results for %d messages", len(res), len(msgs))
				}
				return res
			}
			ackOf := func(user string, r result) ack { return ack{user: user, id: r.id, seq: r.seq} }
			ids := func(rs ...result) []string {
				var out []string
				for _, r := range rs {
					out = append(out, r.id)
				}
				return out
			}
			check := func(what string, got []string, err error, want []string) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s = %v, want %v", what, got, want)
				}
			}

			r1 := write([]message{
				{from: "u1", to: "u2", body: "one", cid: "x1"},
				{from: "u1", to: "u2", body: "two", cid: "x2"},
				{from: "u3", to: "u2", body: "three", cid: "x3"},
			}, nil, false)
			// A retry of x1, a new message, and u2 acks "two" out of order.
			r2 := write([]message{
				{from: "u1", to: "u2", body: "one", cid: "x1"},
				{from: "u2", to: "u1", body: "four", cid: "x4"},
			}, []ack{ackOf("u2", r1[1])}, true)
			if !r2[0].duplicate || r2[0].id != r1[0].id {
				t.Fatalf("retry: %+v, want a duplicate of %+v", r2[0], r1[0])
			}
			if r2[1].duplicate {
				t.Fatalf("new message: %+v", r2[1])
			}
			for _, r := range append(r1, r2[1]) {
				if r.duplicate {
					t.Fatalf("new message: %+v", r)
				}
			}
			got, err := s.history("u2", "u1", 50)
			check("history(u2, u1)", got, err, ids(r1[0], r1[1], r2[1]))
			got, err = s.history("u1", "u2", 2)
			check("history(u1, u2) page of 2", got, err, ids(r1[1], r2[1]))
			got, err = s.pending("u2", 100)
			check("pending(u2) after the ack of two", got, err, ids(r1[0], r1[2]))

			// u2 acks "one": the cursor passes one and two.
			write(nil, []ack{ackOf("u2", r1[0])}, true)
			got, err = s.pending("u2", 100)
			check("pending(u2) after the ack of one", got, err, ids(r1[2]))
			got, err = s.pending("u1", 1)
			check("pending(u1)", got, err, ids(r2[1]))

			// Acks of all that is pending, one of them twice.
			write(nil, []ack{ackOf("u2", r1[2]), ackOf("u1", r2[1]), ackOf("u2", r1[2])}, true)
			for _, u := range []string{"u1", "u2"} {
				got, err = s.pending(u, 100)
				check("pending("+u+") after all acks", got, err, nil)
			}
			if err := s.settle(); err != nil {
				t.Fatal(err)
			}
			got, err = s.history("u1", "u3", 50)
			check("history(u1, u3)", got, err, nil)
		})
	}
}

// TestWorkload checks the workload's shape: about 1% retries, acks of
// the batch before but for offline users.
func TestWorkload(t *testing.T) {
	w := newWorkload(1)
	var msgs, retries, acked, toOnline int
	for range 100 {
		batch, acks := w.next(256)
		acked += len(acks)
		res := make([]result, len(batch))
		for j, m := range batch {
			if m.from == m.to {
				t.Fatalf("message to oneself: %+v", m)
			}
			if w.n > 1 && slices.Contains(w.prev, m) {
				retries++
				res[j].duplicate = true
				continue
			}
			msgs++
			res[j] = result{id: m.cid}
		}
		if err := w.done(batch, res); err != nil {
			t.Fatal(err)
		}
		toOnline += len(w.acks)
	}
	if retries < 100 || retries > 400 {
		t.Errorf("%d retries in 25,600 messages, want about 1%%", retries)
	}
	if last := len(w.acks); acked != toOnline-last {
		t.Errorf("%d acks sent, want %d", acked, toOnline-last)
	}
	if toOnline < msgs*97/100 || toOnline > msgs*995/1000 {
		t.Errorf("%d of %d new messages acked, want about 99%%", toOnline, msgs)
	}
}
