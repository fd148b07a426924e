package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// TestCrashGroupTraffic kills qqd, its storage plugin, or one of its
// filter plugins (antispam or wordfilter, drawn at random) with SIGKILL
// while the members of a group send to it (every send retried with its
// cid until it gets an answer) and ack what they read. Then it checks:
// every send that got an ok is in the log with the seq and msg_id of that
// ok, once; each member's view of the log is contiguous, in seq order,
// and keeps each sender's order; no read cursor ever moved backwards.
func TestCrashGroupTraffic(t *testing.T) {
	for _, mode := range []string{"qqd", "storage", "filter"} {
		t.Run("kill="+mode, func(t *testing.T) { crashGroup(t, mode) })
	}
}

type groupSent struct {
	from, cid, body string
	seq             int64
	msgID           string
}

func crashGroup(t *testing.T, mode string) {
	const members, perMember, kills = 5, 60, 3
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	conf := writeConfig(t, dir, crashConfigYAML)
	p := startQQD(t, dir, "-config", conf)
	var addr atomic.Pointer[string]
	addr.Store(&p.addr)

	names := make([]string, members)
	for i := range names {
		names[i] = fmt.Sprintf("g%d", i)
	}
	owner := dialClient(t, p.addr, names[0])
	ctx, cancel := context.WithTimeout(context.Background(), crashCallTimeout)
	gid, err := owner.CreateGroup(ctx, "crash crew", "", "")
	cancel()
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	for _, n := range names[1:] {
		c := dialClient(t, p.addr, n)
		ctx, cancel := context.WithTimeout(context.Background(), crashCallTimeout)
		_, _, err := c.GroupJoin(ctx, gid)
		cancel()
		c.Close()
		if err != nil {
			t.Fatalf("%s joins: %v", n, err)
		}
	}
	owner.Close()

	var mu sync.Mutex
	var acked []groupSent
	readSeq := map[string]int64{} // the highest cursor each member saw in its listing
	var oks atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	call := func(c **client.Client, user string, do func(context.Context, *client.Client) error) error {
		return crashRetry(stop, &addr, c, user, do)
	}
	for i, me := range names {
		wg.Go(func() {
			var c *client.Client
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			r := rand.New(rand.NewPCG(seed, uint64(i+2)))
			for k := range perMember {
				cid, body := fmt.Sprintf("%s-%d", me, k), fmt.Sprintf("%s says %d", me, k)
				var f client.GroupSendResult
				err := call(&c, me, func(ctx context.Context, c *client.Client) (err error) {
					f, err = c.GroupSendCID(ctx, gid, body, cid)
					return err
				})
				if err != nil {
					if err.Error() != "stopped" {
						t.Errorf("%s sends %d: %v", me, k, err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, groupSent{from: me, cid: cid, body: body, seq: f.Seq, msgID: f.MsgID})
				mu.Unlock()
				oks.Add(1)
				if r.IntN(5) == 0 { // ack what was stored so far, and watch the cursor
					if err := call(&c, me, func(ctx context.Context, c *client.Client) error {
						return c.GroupAck(ctx, gid, f.Seq)
					}); err != nil {
						return
					}
					var groups []protocol.GroupListing
					if err := call(&c, me, func(ctx context.Context, c *client.Client) (err error) {
						groups, err = c.Groups(ctx)
						return err
					}); err != nil {
						return
					}
					for _, g := range groups {
						if g.Group != gid {
							continue
						}
						mu.Lock()
						if g.ReadSeq < readSeq[me] {
							t.Errorf("%s's cursor moved back: %d after %d", me, g.ReadSeq, readSeq[me])
						}
						readSeq[me] = g.ReadSeq
						mu.Unlock()
					}
				}
			}
		})
	}

	killed := crashKills(t, kills, rng, &oks, 5, 20, 200*time.Millisecond, &wg, stop, "members", func() {
		switch mode {
		case "qqd":
			p.signal(t, syscall.SIGKILL)
			p = startQQD(t, dir, "-config", conf)
			addr.Store(&p.addr)
		case "storage", "filter":
			name := defaultStorage
			if mode == "filter" {
				name = []string{"antispam", "wordfilter"}[rng.IntN(2)]
			}
			p.killPlugin(t, name)
		}
	})

	// Every member's view of the whole log, on a fresh connection.
	mu.Lock()
	defer mu.Unlock()
	for _, m := range names {
		// The others joined before any send: only the owner is sure to
		// see all of them (history joined).
		checkGroupView(t, m, groupView(t, p.addr, gid, m), acked, m == names[0])
	}
	seen := map[string]bool{}
	for _, a := range acked {
		if seen[a.cid] {
			t.Errorf("cid %s acknowledged twice", a.cid)
		}
		seen[a.cid] = true
	}
	t.Logf("kill=%s: %d kills; %d group sends acknowledged, none lost; views contiguous", mode, killed, len(acked))
	if killed < 2 {
		t.Errorf("only %d kills: the load ended too soon to test anything", killed)
	}
}

// groupView returns member's view of group gid's whole log, read on a
// fresh connection to addr.
func groupView(t *testing.T, addr, gid, member string) []protocol.GroupEntry {
	t.Helper()
	c := dialClient(t, addr, member)
	defer c.Close()
	var view []protocol.GroupEntry
	after := int64(0)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), crashCallTimeout)
		es, more, err := c.GroupSync(ctx, gid, after, 500)
		cancel()
		if err != nil {
			t.Fatalf("%s: sync: %v", member, err)
		}
		view = append(view, es...)
		if len(es) > 0 {
			after = es[len(es)-1].Seq
		}
		if !more {
			return view
		}
	}
}

// checkGroupView checks member m's view of a group's log: contiguous
// seqs, each sender's messages ("<from> says <k>") in the order sent,
// and every acknowledged send in it with the seq and msg_id of its ok
// (all: every one; else those from the view's first seq on).
func checkGroupView(t *testing.T, m string, view []protocol.GroupEntry, acked []groupSent, all bool) {
	t.Helper()
	bySeq := map[int64]protocol.GroupEntry{}
	lastBySender := map[string]int{}
	for i, e := range view {
		if i > 0 && e.Seq != view[i-1].Seq+1 {
			t.Fatalf("%s's view: seq %d after %d (a gap or a reorder)", m, e.Seq, view[i-1].Seq)
		}
		bySeq[e.Seq] = e
		if e.Kind == "msg" {
			var k int
			fmt.Sscanf(e.Body[strings.LastIndexByte(e.Body, ' ')+1:], "%d", &k)
			if prev, ok := lastBySender[e.From]; ok && k <= prev {
				t.Errorf("%s's view: %s's message %d after %d", m, e.From, k, prev)
			}
			lastBySender[e.From] = k
		}
	}
	for _, a := range acked {
		e, ok := bySeq[a.seq]
		if !all && !ok {
			continue // before this member joined: not visible (history joined)
		}
		if !ok || e.MsgID != a.msgID || e.Body != a.body || e.From != a.from {
			t.Errorf("LOST: %s's send %s got ok seq %d msg_id %s; %s sees %+v", a.from, a.cid, a.seq, a.msgID, m, e)
		}
	}
}
