package daemon_test

// Faults below the protocol: clients on real TCP connections to a real
// in-process qqd, wrapped in daemontest.FaultConn to add latency, stall,
// split writes into tiny pieces and reset mid-frame; and a storage that
// fails one group commit in the middle of a pipelined burst.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// canarySeq makes each stillServing message distinct.
var canarySeq atomic.Int64

// stillServing checks that the server still carries a message from one
// fresh, well-behaved client to another.
func stillServing(t *testing.T, s *daemontest.Server) {
	t.Helper()
	a := s.User(t, "canary-a")
	b := s.User(t, "canary-b")
	body := fmt.Sprintf("canary %d", canarySeq.Add(1))
	a.Send(`{"type":"send","id":"canary","to":"canary-b","body":"` + body + `"}`)
	a.Expect(`{"type":"ok","id":"canary","status":"sent"}`)
	b.Expect(`{"type":"msg","from":"canary-a","body":"` + body + `"}`)
	a.C.Close()
	b.C.Close()
}

// closedAs returns qqd_connections_closed_total{reason=reason}.
func closedAs(t *testing.T, g prometheus.Gatherer, reason string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "qqd_connections_closed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestFaultShortWrites: requests that arrive in 1-byte (or random small)
// pieces, multi-byte UTF-8 and CRLF split anywhere, pipelined, get the
// same replies as whole ones.
func TestFaultShortWrites(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	bob := s.User(t, "bob")
	for i, max := range []int{1, 7} {
		t.Run(fmt.Sprintf("pieces of 1..%d bytes", max), func(t *testing.T) {
			c, fc := s.DialFault(t, uint64(i))
			fc.SetShortWrites(max, 50*time.Microsecond)
			user := fmt.Sprintf("split%d", max)
			c.Register(user, "password1")
			body := "héllo 中文 😀 \u0000 \"q\" \\ end"
			var sb strings.Builder
			fmt.Fprintf(&sb, `{"type":"login","id":"l","user":%q,"password":"password1"}`+"\r\n", user)
			fmt.Fprintf(&sb, `{"type":"send","id":"s","to":"bob","body":%s,"cid":"c-%d"}`+"\n", jsonString(body), max)
			sb.WriteString("   \r\n\n")
			sb.WriteString(`{"type":"ping","id":"p"}` + "\r\n")
			sb.WriteString(`{"type":"history","id":"h","with":"bob"}` + "\n")
			c.SendRaw([]byte(sb.String()))
			c.Expect(`{"type":"ok","id":"l","user":"` + user + `","pending":0}`)
			ok := c.Expect(`{"type":"ok","id":"s","status":"sent"}`)
			c.Expect(`{"type":"ok","id":"p"}`)
			h := c.Expect(`{"type":"ok","id":"h","more":false}`)
			if len(h.Messages) != 1 || h.Messages[0].Body != body || h.Messages[0].ID != ok.MsgID {
				t.Fatalf("history = %+v, want the one message %s %q", h.Messages, ok.MsgID, body)
			}
			push := bob.Expect(`{"type":"msg","from":"` + user + `"}`)
			if push.Body != body || push.MsgID != ok.MsgID {
				t.Fatalf("push = %+v, want %s %q", push, ok.MsgID, body)
			}
			c.ExpectSilence(50 * time.Millisecond)
		})
	}
	stillServing(t, s)
}

// TestFaultStalledReader: a client that stops reading while messages
// are pushed to it delays neither its sender nor anyone else, is kicked
// slow_consumer once its unsent output passes outbound_queue_bytes, and
// keeps every message pending. What it had received before the kick is
// every message in order from the first, then possibly the kicked push.
func TestFaultStalledReader(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := daemontest.Config(t)
	cfg.Limits.OutboundQueueBytes = 2 * cfg.Limits.MaxFrameBytes // the smallest valid
	cfg.Limits.WriteTimeout = time.Second
	s := daemontest.StartDeps(t, cfg, daemon.Deps{Registry: reg})

	sender := s.User(t, "sender")
	fast := s.User(t, "fast")
	s.User(t, "stalled").C.Close()
	stalled, fc := s.DialFault(t, 1)
	stalled.Login("stalled", "password1")
	fc.StallReads(0)

	// Bursts of window messages of 1 KB stay well below the queue limit:
	// the kick must come from not reading, not from one burst.
	const window = 20
	const bound = 2 * time.Second
	pad := strings.Repeat("z", 1000)
	sent := 0
	for kicked := false; !kicked; {
		if sent > 100000 {
			t.Fatalf("still not kicked after %d messages of 1 KB", sent)
		}
		var sb strings.Builder
		for i := range window {
			fmt.Fprintf(&sb, `{"type":"send","id":%d,"to":"stalled","body":"%06d %s"}`+"\n", sent+i, sent+i, pad)
		}
		start := time.Now()
		sender.SendRaw([]byte(sb.String()))
		for i := range window {
			sender.Expect(fmt.Sprintf(`{"type":"ok","id":%d}`, sent+i))
		}
		sent += window
		if d := time.Since(start); d > bound {
			t.Fatalf("%d sends to a stalled reader took %v", window, d)
		}
		start = time.Now()
		sender.Send(`{"type":"send","id":"f","to":"fast","body":"quick"}`)
		sender.Expect(`{"type":"ok","id":"f","status":"sent"}`)
		fast.Expect(`{"type":"msg","body":"quick"}`)
		if d := time.Since(start); d > bound {
			t.Fatalf("delivery to another client took %v while a reader is stalled", d)
		}
		fast.Send(`{"type":"users","id":"u"}`)
		kicked = !contains(fast.Expect(`{"type":"ok","id":"u"}`).Users, "stalled")
	}
	t.Logf("kicked after %d messages of 1 KB", sent)
	if sent*1000 < cfg.Limits.OutboundQueueBytes {
		t.Fatalf("kicked after %d messages of 1 KB: before its queue could be full", sent)
	}

	// Every message is still pending.
	if n, err := s.Store.PendingCount(t.Context(), "stalled"); err != nil || n != int64(sent) {
		t.Fatalf("stalled has %d pending (%v), want %d", n, err, sent)
	}
	// Read what got through: messages in order from the first, then
	// perhaps the kicked push (if the blocked write finished before
	// write_timeout), then the close.
	fc.Resume()
	next, sawKick := 0, false
	for {
		line, err := stalled.TryRead()
		if err != nil {
			if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "connection reset") {
				t.Fatalf("after %d messages: %v, want the connection closed", next, err)
			}
			break
		}
		var f protocol.ServerFrame
		if err := daemontest.Match(line, `{"type":"msg"}`); err == nil {
			want := fmt.Sprintf("%06d ", next)
			if err := daemontest.Match(line, `{"from":"sender","to":"stalled"}`); err != nil || !strings.HasPrefix(msgBody(t, line, &f), want) {
				t.Fatalf("message %d: %.80s…", next, line)
			}
			next++
			continue
		}
		if err := daemontest.Match(line, `{"type":"kicked","reason":"slow_consumer"}`); err != nil {
			t.Fatal(err)
		}
		sawKick = true
		stalled.ExpectClosed()
		break
	}
	t.Logf("the stalled client got %d messages, kicked push: %v", next, sawKick)
	if next >= sent {
		t.Fatalf("the stalled client received all %d messages; the test did not stall it", sent)
	}
	// The server counts the close as slow_consumer, not write_timeout.
	deadline := time.Now().Add(daemontest.Timeout)
	for closedAs(t, reg, "slow_consumer") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("closed as slow_consumer: %v, write_timeout: %v; want 1, 0",
				closedAs(t, reg, "slow_consumer"), closedAs(t, reg, "write_timeout"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stillServing(t, s)
}

func msgBody(t *testing.T, line string, f *protocol.ServerFrame) string {
	t.Helper()
	if err := json.Unmarshal([]byte(line), f); err != nil {
		t.Fatal(err)
	}
	return f.Body
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestFaultResetMidFrame: a client whose connection is reset (RST) in the
// middle of a request leaves no trace: nothing is stored or delivered, no
// account is created, it leaves the online set, and the server goes on.
func TestFaultResetMidFrame(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	bob := s.User(t, "bob")
	s.User(t, "alice").C.Close()
	for _, tc := range []struct {
		name, login, frame string
		cut                int // bytes of frame written before the reset; -1: all but the newline
	}{
		{"half a send", "alice", `{"type":"send","id":1,"to":"bob","body":"ghost 1"}`, 25},
		{"a send without its newline", "alice", `{"type":"send","id":2,"to":"bob","body":"ghost 2"}`, -1},
		{"a send cut inside a UTF-8 sequence", "alice", `{"type":"send","id":3,"to":"bob","body":"ghost 3 😀"}`, 51},
		{"half a register", "", `{"type":"register","id":4,"user":"ghost","password":"password1"}`, 40},
		{"a register without its newline", "", `{"type":"register","id":5,"user":"ghost","password":"password1"}`, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fc := s.DialFault(t, 7)
			if tc.login != "" {
				c.Login(tc.login, "password1")
			}
			cut := tc.cut
			if cut < 0 {
				cut = len(tc.frame)
			}
			fc.SetShortWrites(3, 100*time.Microsecond)
			c.SendRaw([]byte(tc.frame[:cut]))
			time.Sleep(20 * time.Millisecond) // let the server read the part
			if err := fc.Reset(); err != nil {
				t.Fatal(err)
			}
			bob.ExpectSilence(200 * time.Millisecond)
			if n, err := s.Store.PendingCount(t.Context(), "bob"); err != nil || n != 0 {
				t.Fatalf("bob has %d pending (%v), want 0", n, err)
			}
			if h, _, err := s.Store.History(t.Context(), "bob", "alice", "", 10); err != nil || len(h) != 0 {
				t.Fatalf("history bob-alice = %+v (%v), want empty", h, err)
			}
			// The reset session leaves the online set within 1 s.
			deadline := time.Now().Add(time.Second)
			for {
				bob.Send(`{"type":"users","id":"u"}`)
				users := bob.Expect(`{"type":"ok","id":"u"}`).Users
				if !contains(users, "alice") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("users = %v a second after the reset", users)
				}
				time.Sleep(10 * time.Millisecond)
			}
			stillServing(t, s)
		})
	}
	// "ghost" was never registered: the name is free.
	c := s.Dial(t)
	c.Register("ghost", "password1")
}

// TestFaultLatency: latency on one client's link does not slow down
// anyone else's round trips, not even a sender whose messages go to the
// slow client.
func TestFaultLatency(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	const lat = 250 * time.Millisecond
	s.User(t, "far").C.Close()
	far, fc := s.DialFault(t, 3)
	far.Login("far", "password1")
	near := s.User(t, "near")
	fc.SetLatency(lat)

	// far does round trips the whole time, and collects the messages
	// pushed to it meanwhile.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var farRTT time.Duration
	farDone := 0
	var farGot []string
	var farErr error
	wg.Add(1)
	go func() { // no t.Fatal here: errors go to farErr
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			fc.SetWriteDeadline(time.Now().Add(daemontest.Timeout))
			if _, farErr = fmt.Fprintf(fc, `{"type":"ping","id":%d}`+"\n", i); farErr != nil {
				return
			}
			for {
				var line string
				if line, farErr = far.TryRead(); farErr != nil {
					return
				}
				var f protocol.ServerFrame
				if farErr = json.Unmarshal([]byte(line), &f); farErr != nil {
					return
				}
				if f.Type == protocol.TypeOK {
					break
				}
				farGot = append(farGot, f.Body)
			}
			farRTT = max(farRTT, time.Since(start))
			farDone++
		}
	}()

	const n = 20
	var worst time.Duration
	var took []time.Duration
	for i := range n {
		start := time.Now()
		near.Send(fmt.Sprintf(`{"type":"ping","id":%d}`, i))
		near.Expect(fmt.Sprintf(`{"type":"ok","id":%d}`, i))
		near.Send(fmt.Sprintf(`{"type":"send","id":"s%d","to":"far","body":"to far %d"}`, i, i))
		near.Expect(fmt.Sprintf(`{"type":"ok","id":"s%d","status":"sent"}`, i))
		worst = max(worst, time.Since(start))
		took = append(took, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if farErr != nil {
		t.Fatalf("far: %v", farErr)
	}
	slices.Sort(took)
	median := took[len(took)/2]
	t.Logf("near: median ping+send %v, worst %v; far: %d round trips, worst %v", median, worst, farDone, farRTT)
	// Were the near link held up by the far one, every near round would
	// take at least lat; the median ignores a loaded machine's outliers.
	if median >= lat {
		t.Errorf("a ping and a send on a fast link took %v (median) while another link has %v latency", median, lat)
	}
	if farDone == 0 || farRTT < 2*lat {
		t.Errorf("far: %d round trips, worst %v; the latency was not applied", farDone, farRTT)
	}
	// far gets every message, late, in order.
	fc.SetLatency(0)
	for len(farGot) < n {
		farGot = append(farGot, far.Expect(`{"type":"msg"}`).Body)
	}
	for i, b := range farGot {
		if want := fmt.Sprintf("to far %d", i); b != want {
			t.Fatalf("far got %q as message %d, want %q", b, i, want)
		}
	}
}

// batchFaultStore is the real SQLite store whose Write fails exactly once,
// on call number failAt (counted from 1 after arming), as a rolled-back
// transaction; every Write takes at least delay, so that pipelined sends
// form several batches.
type batchFaultStore struct {
	plugins.Storage
	delay      time.Duration
	failAt     atomic.Int64
	calls      atomic.Int64
	failedMsgs atomic.Int64
}

func (b *batchFaultStore) Write(ctx context.Context, wb *plugins.WriteBatch) ([]plugins.AppendResult, error) {
	time.Sleep(b.delay)
	if n := b.calls.Add(1); n == b.failAt.Load() {
		b.failedMsgs.Store(int64(len(wb.Messages)))
		return nil, &plugins.WriteError{Err: errors.New("injected failure of one batch")}
	}
	return b.Storage.Write(ctx, wb)
}

// TestFaultStorageFailsOneBatch: one group commit in the middle of a
// pipelined burst from two senders fails. Every send gets exactly one
// reply, in order; the ok'd sends are exactly the stored messages, in the
// same order, and exactly those are pushed; the failed ones are answered
// unavailable.
func TestFaultStorageFailsOneBatch(t *testing.T) {
	cfg := daemontest.Config(t)
	real := daemontest.OpenStore(t, cfg)
	fs := &batchFaultStore{Storage: real, delay: 3 * time.Millisecond}
	s := daemontest.StartWith(t, cfg, fs)

	senders := []*daemontest.Conn{s.User(t, "alice"), s.User(t, "carol")}
	bob := s.User(t, "bob")
	fs.calls.Store(0)
	fs.failAt.Store(3)

	const n = 300
	type sent struct {
		id, body string
	}
	oks := make([][]sent, len(senders))
	fails := make([]int, len(senders))
	var wg sync.WaitGroup
	for k, c := range senders {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, `{"type":"send","id":%d,"to":"bob","body":"%d-%03d"}`+"\n", i, k, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SendRaw([]byte(sb.String()))
		}()
	}
	for k, c := range senders {
		for i := range n {
			f := c.Read()
			if string(f.ID) != fmt.Sprint(i) {
				t.Fatalf("sender %d: reply %d has id %s: %+v", k, i, f.ID, f)
			}
			switch {
			case f.Type == protocol.TypeOK:
				oks[k] = append(oks[k], sent{f.MsgID, fmt.Sprintf("%d-%03d", k, i)})
			case f.Type == protocol.TypeError && f.Code == protocol.CodeUnavailable:
				fails[k]++
			default:
				t.Fatalf("sender %d: reply %d = %+v", k, i, f)
			}
		}
		c.ExpectSilence(100 * time.Millisecond) // one reply each, no more
	}
	wg.Wait()
	if fs.calls.Load() < 4 {
		t.Fatalf("only %d Writes: the failed one was not in the middle", fs.calls.Load())
	}
	if got := int64(fails[0] + fails[1]); got == 0 || got != fs.failedMsgs.Load() {
		t.Fatalf("%v sends failed, the failed batch held %d", fails, fs.failedMsgs.Load())
	}
	t.Logf("%d Writes; sends failed per sender: %v", fs.calls.Load(), fails)

	// Storage holds exactly the ok'd messages, in each sender's order.
	stored, more, err := real.Pending(t.Context(), "bob", 2*n)
	if err != nil || more {
		t.Fatal(err, more)
	}
	got := make([][]sent, len(senders))
	for _, m := range stored {
		k := map[string]int{"alice": 0, "carol": 1}[m.From]
		got[k] = append(got[k], sent{m.ID, m.Body})
	}
	for k := range senders {
		if fmt.Sprint(got[k]) != fmt.Sprint(oks[k]) {
			t.Fatalf("sender %d: stored %v\nok'd %v", k, got[k], oks[k])
		}
	}
	// And exactly those were pushed, in acceptance order.
	for i := range stored {
		f := bob.Expect(`{"type":"msg"}`)
		if f.MsgID != stored[i].ID || f.Body != stored[i].Body {
			t.Fatalf("push %d = %s %q, want %s %q", i, f.MsgID, f.Body, stored[i].ID, stored[i].Body)
		}
	}
	bob.ExpectSilence(100 * time.Millisecond)
	stillServing(t, s)
}
