package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// runGroup runs the group scenario: u0 creates an invite-only group and
// adds u1..u<Members-1> (the group is set up through qqd, unmeasured);
// u0..u<Users-1> log in (the online members) and every one of them sends
// to the group, Window sends in flight each (closed loop) or at Rate in
// all (open loop). Every online member but the sender gets each message
// pushed; receivers move their read cursor with group_ack every 20 ms,
// as a client that shows what arrives would. Sent counts the sends,
// Delivered the pushes, CPUPer1000 is per 1000 pushes, and latency is per
// push, from the send.
func runGroup(ctx context.Context, cfg Config, res *Result) error {
	if cfg.Register {
		if err := registerUsers(ctx, cfg, cfg.Members); err != nil {
			return err
		}
	}
	opts := dialOptions(cfg)
	opts.Events = true
	owner, err := client.Dial(ctx, cfg.firstAddr(), opts)
	if err != nil {
		return err
	}
	defer owner.Close()
	if _, err := owner.Login(ctx, userName(0), cfg.Password); err != nil {
		return fmt.Errorf("login %s: %w", userName(0), err)
	}
	gid, err := owner.CreateGroup(ctx, "qqbench "+runID(), "invite", "joined")
	if err != nil {
		return fmt.Errorf("create the group: %w (is groups.created_per_day or max_owned used up? a fresh qqd has room)", err)
	}
	for i := 1; i < cfg.Members; i++ {
		if _, err := owner.GroupInvite(ctx, gid, userName(i)); err != nil {
			return fmt.Errorf("add %s to group %s: %w (groups.max_members must allow --members)", userName(i), gid, err)
		}
	}
	owner.Close()

	cs := make([]*client.Client, cfg.Users)
	defer closeAll(cs)
	if err := forEach(ctx, cfg.Users, func(ctx context.Context, i int) error {
		c, err := client.Dial(ctx, cfg.addrOf(i), opts)
		if err != nil {
			return err
		}
		cs[i] = c
		if _, err := c.Login(ctx, userName(i), cfg.Password); err != nil {
			return fmt.Errorf("login %s: %w", userName(i), err)
		}
		return nil
	}); err != nil {
		return err
	}
	// The setup's entries (created, the joins) reach the members logged
	// in while they are made; drop them before the measured traffic.
	for _, c := range cs {
		drainEvents(c)
	}

	t := newFanoutTracker(cfg.Users - 1)
	run := runID()
	stop := make(chan struct{})
	var recvWG, ackWG sync.WaitGroup
	for _, c := range cs {
		recvWG.Go(func() { groupReceiver(ctx, c, gid, t, stop, &ackWG) })
	}
	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	end := measureStart.Add(cfg.Duration)
	sendCtx, cancelSends := context.WithDeadline(ctx, end.Add(cfg.Drain))
	defer cancelSends()

	send := func(i int, seq int64, sched time.Time) {
		t.track(run, i, seq, sched, measureStart, cfg.BodyBytes, func(cid, body string) error {
			var err error
			if cfg.First {
				_, err = cs[i].GroupSendFirst(sendCtx, gid, body, cid)
			} else {
				_, err = cs[i].GroupSendCID(sendCtx, gid, body, cid)
			}
			return err
		})
	}
	win := startCPUWindow(cfg)
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go progress(cfg.Progress, t, start, end, progressDone)
	}
	senders := make([]int, cfg.Users)
	for i := range senders {
		senders[i] = i
	}
	drive(sendCtx, cfg, senders, start, end, func(i int) bool { return cs[i].Err() != nil },
		func(i int, seq int64, _ *rand.Rand) func(time.Time) {
			return func(sched time.Time) { send(i, seq, sched) }
		})
	settle(cfg, t, res, win, end, progressDone, stop, &recvWG, &ackWG)
	g := &GroupResult{Members: cfg.Members, Online: cfg.Users, SendsPerSec: float64(res.Sent) / cfg.Duration.Seconds()}
	if res.Procs != nil && res.Sent > 0 {
		g.CPUPerSendUs = res.CPUSeconds / float64(res.Sent) * 1e6
	}
	res.Group = g
	return nil
}

// drainEvents drops the events c has queued.
func drainEvents(c *client.Client) {
	for {
		select {
		case <-c.Events():
		default:
			return
		}
	}
}

// groupReceiver records the group's message pushes to c and acks the
// highest seq every 20 ms until stop is closed or the connection ends.
func groupReceiver(ctx context.Context, c *client.Client, gid string, t *tracker, stop <-chan struct{}, acks *sync.WaitGroup) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var seen, acked int64
	flush := func() {
		if seen <= acked {
			return
		}
		seq := seen
		acked = seen
		acks.Go(func() {
			if err := c.GroupAck(ctx, gid, seq); err != nil {
				t.errorf("ack_" + errorCode(err))
			}
		})
	}
	defer flush()
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				return
			}
			if e.Type != protocol.TypeGroupEntry || e.Entry == nil || e.Group != gid {
				continue
			}
			if e.Entry.Kind == "msg" {
				t.received(e.Entry.Body, time.Now())
			}
			seen = max(seen, e.Entry.Seq)
		case <-tick.C:
			flush()
		case <-stop:
			return
		}
	}
}
