package daemon

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// answerBatch is the size of the batches of the answer benchmarks: twice
// the default storage.batch_max, the most that two overlapping writes
// answer back to back.
const answerBatch = 512

// benchBatch returns a batch of answerBatch sends that storage stored,
// from senders logged-in sessions (round-robin) to one recipient each
// ("r<i>" for sender i), as the store stage leaves it: results and epoch
// set. With online, every recipient has a session, so each send is
// answered sent and pushed; otherwise queued and not pushed. Sessions are
// on connections from newConn. It also returns how many requests each
// sender has in the batch.
func benchBatch(b *testing.B, srv *Server, senders int, online bool, newConn func() net.Conn) (*batch, map[*session]int) {
	b.Helper()
	body := strings.Repeat("x", 100)
	from := make([]*session, senders)
	for i := range from {
		from[i] = benchLoginOn(srv, fmt.Sprintf("s%d", i), newConn())
		if online {
			benchLoginOn(srv, fmt.Sprintf("r%d", i), newConn())
		}
	}
	status := protocol.StatusQueued
	if online {
		status = protocol.StatusSent
	}
	bt := &batch{epoch: srv.router.Advance()}
	per := make(map[*session]int)
	now := time.Now()
	for i := range answerBatch {
		s := from[i%senders]
		to := fmt.Sprintf("r%d", i%senders)
		bt.reqs = append(bt.reqs, &writeReq{
			sess:     s,
			id:       json.RawMessage(fmt.Sprintf(`"c-%d"`, i)),
			start:    now,
			kind:     reqSend,
			msg:      plugins.NewMessage{From: s.user, To: to, Body: body, CID: fmt.Sprintf("%s-%d", s.user, i), Status: status},
			sentBody: body,
		})
		bt.reqs[len(bt.reqs)-1].result = &plugins.AppendResult{
			Message: protocol.Message{ID: fmt.Sprintf("01m8c670vr839tn6mrwv%06d", i), From: s.user, To: to, Body: body,
				TS: now.UnixMilli()},
			Status: status,
		}
		per[s]++
	}
	return bt, per
}

// BenchmarkAnswer measures pipeline.answer on a stored batch of 512 sends,
// one batch per op, reported per message: the ok to each send (encoded
// and queued on its sender's connection), the metrics and counters, the
// inflight release, and for online recipients the push (router lookup,
// encoding, queuing on the recipient's connection), and the writes.
// senders=8 is 8 connections at the default max_inflight of 64 each;
// senders=512, one send per connection. conn=tcp: the sessions are on
// loopback TCP connections (as Serve gives them; a goroutine per
// connection reads the client side, and its CPU counts too);
// conn=discard: on benchConns, which take every write at once and are
// not *net.TCPConn (as TLS connections are not). Writer goroutines run
// concurrently, as in qqd.
func BenchmarkAnswer(b *testing.B) {
	type answerCase struct {
		senders int
		online  bool
		tcp     bool
	}
	var cases []answerCase
	for _, tcp := range []bool{true, false} {
		for _, senders := range []int{8, 512} {
			for _, online := range []bool{true, false} {
				cases = append(cases, answerCase{senders, online, tcp})
			}
		}
	}
	for _, tc := range cases {
		rcpt := "offline"
		if tc.online {
			rcpt = "online"
		}
		conn := "discard"
		if tc.tcp {
			conn = "tcp"
		}
		b.Run(fmt.Sprintf("conn=%s/senders=%d/recipients=%s", conn, tc.senders, rcpt), func(b *testing.B) {
			srv := newBenchServer(b)
			newConn := func() net.Conn { return &benchConn{} }
			if tc.tcp {
				newConn = benchTCP(b)
			}
			bt, per := benchBatch(b, srv, tc.senders, tc.online, newConn)
			p := srv.pipe
			b.ReportAllocs()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			ops := 0
			for b.Loop() {
				// The slots the reader took in acquireInflight, which
				// answer gives back.
				for s, k := range per {
					s.ifMu.Lock()
					s.inflight += k
					s.ifMu.Unlock()
				}
				p.answer(bt)
				ops++
			}
			benchPerUnit(b, &before, ops, answerBatch, "msg")
			srv.writers.Wait()
			for s := range per {
				if s.isClosing() {
					b.Fatal("a sender's session was closed")
				}
				if benchWritten(s) == 0 {
					b.Fatal("a sender got no ok")
				}
			}
		})
	}
}
