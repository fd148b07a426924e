package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/daemon/web"
)

// setupTimeout bounds registering and logging in all users.
const setupTimeout = 2 * time.Minute

// setupWorkers is how many registrations/logins run at once (each costs an
// Argon2id hash on the server).
const setupWorkers = 8

// Run runs cfg.Scenario. It returns within roughly setup + warmup +
// duration + settle + drain.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout+cfg.Warmup+cfg.Duration+cfg.Settle+2*cfg.Drain+10*time.Second)
	defer cancel()
	res := newResult(cfg)
	if err := checkPIDs(map[string][]int{"qqd-pid": cfg.QQDPIDs, "pg-pid": cfg.PGPIDs, "nats-pid": cfg.NATSPIDs}); err != nil {
		return nil, err
	}
	var err error
	switch cfg.Scenario {
	case "dm", "fanin":
		err = runTraffic(ctx, cfg, res)
	case "group":
		err = runGroup(ctx, cfg, res)
	case "idle":
		err = runIdle(ctx, cfg, res)
	case "offline":
		err = runOffline(ctx, cfg, res)
	case "history":
		err = runHistory(ctx, cfg, res)
	case "conns", "slowloris", "regflood":
		err = runAttack(ctx, cfg, res)
	case "fill":
		return nil, errors.New("fill is not a load scenario: use Fill")
	case "sweep":
		return nil, errors.New("sweep is a series of dm runs: use RunSweep")
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

func newResult(cfg Config) *Result {
	return &Result{Scenario: cfg.Scenario, Addr: cfg.Addr, RecipientAddr: cfg.RecipientAddr, Transport: transportLabel(cfg), Users: cfg.Users, BodyBytes: cfg.BodyBytes, NoFirst: !cfg.First,
		DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(), Errors: map[string]int64{}}
}

// dialOptions are the client options of every connection: frames large
// enough for offline pages of 1,000 messages of up to
// limits.max_body_bytes each, over TCP or, with --transport ws, over
// qqd's WebSocket gateway (cfg.Addr is then web.listen's address).
func dialOptions(cfg Config) client.Options {
	opts := client.Options{MaxFrameBytes: 64 << 20}
	if cfg.Transport == "ws" {
		opts.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return web.Dial(ctx, "ws://"+addr+web.WSPath, web.DialOptions{})
		}
	}
	return opts
}

// transportLabel is the transport as results name it: "" for TCP (the
// results of earlier versions), else "ws".
func transportLabel(cfg Config) string {
	if cfg.Transport == "tcp" {
		return ""
	}
	return cfg.Transport
}

// runID returns a token that makes the cids of this run unique: qqd
// deduplicates (sender, cid) for storage.config.dedup_window (24 h by
// default), so reused cids would be answered ok but never pushed.
func runID() string { return strconv.FormatInt(time.Now().UnixNano()%(1<<40), 36) }

func userName(i int) string { return fmt.Sprintf("u%d", i) }

// body returns a body of n bytes (or just the cid if longer) that starts
// with cid and a space.
func body(cid string, n int) string {
	if len(cid)+1 >= n {
		return cid
	}
	return cid + " " + strings.Repeat("x", n-len(cid)-1)
}

// forEach runs f(i) for i in [0, n) on setupWorkers goroutines and returns
// the first error.
func forEach(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	return forEachOn(ctx, n, setupWorkers, f)
}

// forEachOn is forEach on the given number of goroutines.
func forEachOn(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// registerUsers registers u<from>..u<to-1>, tolerating user_exists.
func registerUsers(ctx context.Context, cfg Config, n int) error {
	conns := make([]*client.Client, min(setupWorkers, n))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := client.Dial(ctx, cfg.firstAddr(), dialOptions(cfg))
		if err != nil {
			return err
		}
		conns[i] = c
	}
	var mu sync.Mutex
	pool := conns
	return forEach(ctx, n, func(ctx context.Context, i int) error {
		mu.Lock()
		c := pool[0]
		pool = pool[1:]
		mu.Unlock()
		defer func() { mu.Lock(); pool = append(pool, c); mu.Unlock() }()
		err := c.Register(ctx, userName(i), cfg.Password)
		var pe *protocol.Error
		if err != nil && !(errors.As(err, &pe) && pe.Code == protocol.CodeUserExists) {
			return fmt.Errorf("register %s: %w", userName(i), err)
		}
		return nil
	})
}

// loginUsers dials and logs in the given users; on error it closes what it
// opened.
func loginUsers(ctx context.Context, cfg Config, names []string) ([]*client.Client, []int64, error) {
	cs := make([]*client.Client, len(names))
	pending := make([]int64, len(names))
	err := forEach(ctx, len(names), func(ctx context.Context, i int) error {
		c, err := client.Dial(ctx, cfg.addrOfName(names[i]), dialOptions(cfg))
		if err != nil {
			return err
		}
		cs[i] = c
		p, err := c.Login(ctx, names[i], cfg.Password)
		if err != nil {
			return fmt.Errorf("login %s: %w (use --register, or check --password and the server's auth limits)", names[i], err)
		}
		pending[i] = p
		return nil
	})
	if err != nil {
		closeAll(cs)
		return nil, nil, err
	}
	return cs, pending, nil
}

func closeAll(cs []*client.Client) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = userName(i)
	}
	return out
}

// procSnapshot reads every qqd of --qqd-pid with its plugin processes;
// nil without --qqd-pid.
func procSnapshot(cfg Config) []ProcStat {
	if len(cfg.QQDPIDs) == 0 {
		return nil
	}
	return procTrees(cfg.QQDPIDs)
}

// rssOf is the RSS of the qqd processes of --qqd-pid (not their
// plugins'), summed.
func rssOf(cfg Config) int64 {
	var n int64
	for _, p := range procsOnly(cfg.QQDPIDs) {
		n += p.RSSBytes
	}
	return n
}

// receiver records the pushes of c and acks them in batches until stop is
// closed (then it acks what it holds) or the connection ends.
func receiver(ctx context.Context, c *client.Client, t *tracker, stop <-chan struct{}, acks *sync.WaitGroup) {
	const batchMax = 256
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var batch []string
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ids := batch
		batch = nil
		acks.Go(func() {
			if err := c.Ack(ctx, ids...); err != nil {
				t.errorf("ack_" + errorCode(err))
			}
		})
	}
	defer flush()
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return
			}
			t.received(m.Body, time.Now())
			batch = append(batch, m.ID)
			if len(batch) >= batchMax {
				flush()
			}
		case <-tick.C:
			flush()
		case <-stop:
			return
		}
	}
}

// runTraffic runs dm and fanin.
func runTraffic(ctx context.Context, cfg Config, res *Result) error {
	cs, err := loginTraffic(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	return trafficOn(ctx, cfg, cs, res)
}

// loginTraffic registers u0..u<cfg.Users-1> if cfg.Register and logs
// them in.
func loginTraffic(ctx context.Context, cfg Config) ([]*client.Client, error) {
	if cfg.Register {
		if err := registerUsers(ctx, cfg, cfg.Users); err != nil {
			return nil, err
		}
	}
	cs, _, err := loginUsers(ctx, cfg, names(cfg.Users))
	return cs, err
}

// trafficOn runs dm or fanin traffic between the logged-in users cs (cs[i]
// is u<i>) and leaves them open, so that a sweep can run it again on them.
// Pushes that arrive after it returns stay queued in the clients and count
// as duplicates in the next run.
func trafficOn(ctx context.Context, cfg Config, cs []*client.Client, res *Result) error {
	t := newTracker()
	run := runID()
	stop := make(chan struct{})
	var recvWG, ackWG sync.WaitGroup
	for _, c := range cs {
		recvWG.Go(func() { receiver(ctx, c, t, stop, &ackWG) })
	}

	// Sends may run until the end of the drain; then ctx ends them.
	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	end := measureStart.Add(cfg.Duration)
	sendCtx, cancelSends := context.WithDeadline(ctx, end.Add(cfg.Drain))
	defer cancelSends()

	senders := make([]int, 0, cfg.Users)
	for i := range cfg.Users {
		if cfg.Scenario == "fanin" && i == 0 {
			continue
		}
		if cfg.split() && i >= cfg.senders() {
			break
		}
		senders = append(senders, i)
	}
	pick := func(i int, rng *rand.Rand) string {
		if cfg.Scenario == "fanin" {
			return "u0"
		}
		if cfg.split() { // a recipient, on --recipient-addr
			h := cfg.senders()
			return userName(h + rng.IntN(cfg.Users-h))
		}
		j := rng.IntN(cfg.Users - 1)
		if j >= i {
			j++
		}
		return userName(j)
	}
	send := func(i int, seq int64, sched time.Time, to string) {
		t.track(run, i, seq, sched, measureStart, cfg.BodyBytes, func(cid, body string) error {
			var err error
			if cfg.First {
				_, err = cs[i].SendFirst(sendCtx, to, body, cid)
			} else {
				_, err = cs[i].SendCID(sendCtx, to, body, cid)
			}
			return err
		})
	}

	win := startCPUWindow(cfg)

	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go progress(cfg.Progress, t, start, end, progressDone)
	}

	drive(sendCtx, cfg, senders, start, end, func(i int) bool { return cs[i].Err() != nil },
		func(i int, seq int64, rng *rand.Rand) func(time.Time) {
			to := pick(i, rng)
			return func(sched time.Time) { send(i, seq, sched, to) }
		})
	settle(cfg, t, res, win, end, progressDone, stop, &recvWG, &ackWG)
	return nil
}

// settle ends a traffic run (dm, fanin, group) once its sends are done:
// it waits, until the end of the drain, for the pushes of the sends
// answered ok, ends the CPU window and the progress lines, stops the
// receivers (stop) and waits for them and their acks (wait), and records
// the run's mode and the tracker's figures in res.
func settle(cfg Config, t *tracker, res *Result, win *cpuWindow, end time.Time, progressDone, stop chan struct{}, wait ...*sync.WaitGroup) {
	for time.Now().Before(end.Add(cfg.Drain)) {
		if okd, unanswered := t.outstanding(); okd == 0 && unanswered == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(progressDone)
	win.end(res)
	close(stop)
	for _, wg := range wait {
		wg.Wait()
	}
	if cfg.Rate > 0 {
		res.Mode, res.Rate = "open", cfg.Rate
	} else {
		res.Mode, res.Window = "closed", cfg.Window
	}
	okd, unanswered := t.outstanding()
	t.mu.Lock()
	res.Sent, res.Delivered = t.sent, t.deliv
	lat := summarize(t.lat, map[bool]string{true: "scheduled send time", false: "send call"}[cfg.Rate > 0])
	t.mu.Unlock()
	res.Lost, res.Unanswered = int64(okd), int64(unanswered)
	res.Latency = &lat
	res.DeliveredPerSec = float64(res.Delivered) / cfg.Duration.Seconds()
	res.finish(t)
	if res.Procs != nil && res.Delivered > 0 {
		res.CPUPer1000 = res.CPUSeconds / float64(res.Delivered) * 1000
	}
	if res.Delivered > 0 {
		res.PGCPUPer1000 = res.PGCPUSeconds / float64(res.Delivered) * 1000
		res.NATSCPUPer1000 = res.NATSCPUSeconds / float64(res.Delivered) * 1000
	}
}

// drive runs the calls of a traffic scenario for users ids until end, then
// waits for the calls in flight. With cfg.Rate > 0 it is an open loop:
// each user's calls are scheduled every len(ids)/Rate seconds from a
// random phase and started at their scheduled time, whatever the answers
// to earlier ones (up to 512 in flight per user), so that latency measured
// from the scheduled time shows a stalled server. Otherwise it is a closed
// loop: cfg.Window calls in flight per user, each started when the one
// before it ends, scheduled "now". A user stops when ctx ends or stopped
// says so. next draws a call's arguments with the user's own rng, in the
// user's goroutine, and returns the call; seq counts the user's calls.
func drive(ctx context.Context, cfg Config, ids []int, start, end time.Time, stopped func(i int) bool,
	next func(i int, seq int64, rng *rand.Rand) func(sched time.Time)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) * float64(len(ids)) / cfg.Rate)
		for _, i := range ids {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
				sem := make(chan struct{}, 512)
				var inflight sync.WaitGroup
				defer inflight.Wait()
				phase := time.Duration(rng.Int64N(int64(interval) + 1))
				for k := int64(0); ; k++ {
					sched := start.Add(phase + time.Duration(k)*interval)
					if !sched.Before(end) || ctx.Err() != nil || stopped(i) {
						return
					}
					if d := time.Until(sched); d > 0 {
						time.Sleep(d)
					}
					call := next(i, k, rng)
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					if ctx.Err() != nil { // both were ready
						return
					}
					inflight.Go(func() {
						defer func() { <-sem }()
						call(sched)
					})
				}
			})
		}
		return
	}
	for _, i := range ids {
		var seq atomic.Int64
		for w := range cfg.Window {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)<<16|uint64(w)))
				for {
					now := time.Now()
					if !now.Before(end) || ctx.Err() != nil || stopped(i) {
						return
					}
					next(i, seq.Add(1), rng)(now)
				}
			})
		}
	}
}

// cpuWindow bounds a measured window with snapshots of qqd's process tree
// and of qqbench's own CPU: the first once the warm-up is over, the last
// at end.
type cpuWindow struct {
	cfg    Config
	once   sync.Once
	before []ProcStat
	self   time.Duration
	// PostgreSQL's (--pg-pid) and NATS's (--nats-pid) processes
	pg, nats []ProcStat
}

func startCPUWindow(cfg Config) *cpuWindow {
	w := &cpuWindow{cfg: cfg}
	if cfg.Warmup == 0 {
		w.begin()
	} else {
		time.AfterFunc(cfg.Warmup, w.begin)
	}
	return w
}

func (w *cpuWindow) begin() {
	w.once.Do(func() {
		w.before, w.self = procSnapshot(w.cfg), selfCPU()
		w.pg, w.nats = procTrees(w.cfg.PGPIDs), procsOnly(w.cfg.NATSPIDs)
	})
}

// end takes the last snapshot and records the window's CPU in res: Procs
// (as at the end), CPUSeconds, RSSTreeBytes and BenchCPUSeconds.
func (w *cpuWindow) end(res *Result) {
	w.begin() // a window shorter than the warm-up
	after := procSnapshot(w.cfg)
	res.BenchCPUSeconds = (selfCPU() - w.self).Seconds()
	if len(w.cfg.PGPIDs) > 0 {
		res.PGCPUSeconds = cpuDelta(w.pg, procTrees(w.cfg.PGPIDs))
	}
	if len(w.cfg.NATSPIDs) > 0 {
		res.NATSCPUSeconds = cpuDelta(w.nats, procsOnly(w.cfg.NATSPIDs))
	}
	if after == nil {
		return
	}
	res.CPUSeconds = cpuDelta(w.before, after)
	res.Procs = after
	for _, p := range after {
		res.RSSTreeBytes += p.RSSBytes
	}
}

func progress(w io.Writer, t *tracker, start, end time.Time, done <-chan struct{}) {
	every5s(w, start, done, func() int64 { _, deliv, _ := t.snapshot(); return deliv },
		func(now time.Time, deliv int64, rate float64) string {
			sent, _, errs := t.snapshot()
			return fmt.Sprintf("qqbench: t=%4.0fs/%.0fs sent=%d delivered=%d (%.0f msg/s) errors=%d",
				now.Sub(start).Seconds(), end.Sub(start).Seconds(), sent, deliv, rate, errs)
		})
}

// every5s writes a progress line to w every 5 s until done is closed:
// line gets the time, the count now and its rate since the line before.
func every5s(w io.Writer, start time.Time, done <-chan struct{}, count func() int64,
	line func(now time.Time, n int64, rate float64) string) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var last int64
	lastT := start
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			n := count()
			fmt.Fprintln(w, line(now, n, float64(n-last)/now.Sub(lastT).Seconds()))
			last, lastT = n, now
		}
	}
}

// runIdle holds cfg.Users logged-in connections.
func runIdle(ctx context.Context, cfg Config, res *Result) error {
	if cfg.Register {
		if err := registerUsers(ctx, cfg, cfg.Users); err != nil {
			return err
		}
	}
	ir := &IdleResult{Connections: cfg.Users, SettleS: cfg.Settle.Seconds()}
	res.Idle = ir
	if cfg.Register {
		sleep(ctx, cfg.Settle) // let registration's Argon2id garbage be collected too
	}
	ir.RSSBefore = rssOf(cfg)
	t0 := time.Now()
	cs, _, err := loginUsers(ctx, cfg, names(cfg.Users))
	if err != nil {
		return err
	}
	defer closeAll(cs)
	ir.LoginSeconds = time.Since(t0).Seconds()
	ir.RSSAfterLogin = rssOf(cfg)
	sleep(ctx, cfg.Settle)
	ir.RSSAfterSettle = rssOf(cfg)
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "qqbench: %d connections logged in, holding for %s\n", cfg.Users, cfg.Duration)
	}
	holdStart, holdBefore := time.Now(), procSnapshot(cfg)
	sleep(ctx, cfg.Duration)
	if after := procSnapshot(cfg); after != nil {
		ir.HoldCPUSeconds = cpuDelta(holdBefore, after)
		ir.HoldCorePercent = 100 * ir.HoldCPUSeconds / time.Since(holdStart).Seconds()
	}
	ir.RSSEnd = rssOf(cfg)
	ir.AllConnectionsAlive = true
	for _, c := range cs {
		if c.Err() != nil {
			ir.AllConnectionsAlive = false
			res.Errors[errorCode(c.Err())]++
		}
	}
	if ir.RSSBefore > 0 {
		ir.PerConnAfterLogin = float64(ir.RSSAfterLogin-ir.RSSBefore) / float64(cfg.Users)
		ir.PerConnAfterSettle = float64(ir.RSSAfterSettle-ir.RSSBefore) / float64(cfg.Users)
		res.Procs = procSnapshot(cfg)
	}
	return ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// drainOffline fetches and acks every pending message of c; it returns how
// many bench messages it saw, all messages and the number of pages.
func drainOffline(ctx context.Context, c *client.Client, t *tracker) (n, pages int, err error) {
	for {
		msgs, more, err := c.Offline(ctx, 1000)
		if err != nil {
			return n, pages, err
		}
		pages++
		if len(msgs) == 0 {
			return n, pages, nil
		}
		ids := make([]string, len(msgs))
		now := time.Now()
		for i, m := range msgs {
			ids[i] = m.ID
			if t != nil {
				t.received(m.Body, now)
			}
		}
		if err := c.Ack(ctx, ids...); err != nil {
			return n, pages, err
		}
		n += len(msgs)
		if !more {
			return n, pages, nil
		}
	}
}

// runOffline queues cfg.Messages for u0 while it is offline (sent by u1)
// and times draining them.
func runOffline(ctx context.Context, cfg Config, res *Result) error {
	res.Users = 2
	if cfg.Register {
		if err := registerUsers(ctx, cfg, 2); err != nil {
			return err
		}
	}
	// Start from an empty queue.
	cs, _, err := loginUsers(ctx, cfg, []string{"u0"})
	if err != nil {
		return err
	}
	_, _, err = drainOffline(ctx, cs[0], nil)
	cs[0].Logout(ctx)
	cs[0].Close()
	if err != nil {
		return fmt.Errorf("pre-drain of u0: %w", err)
	}
	// Wait until u0 is offline so the fill is queued, not pushed.
	time.Sleep(100 * time.Millisecond)

	snd, _, err := loginUsers(ctx, cfg, []string{"u1"})
	if err != nil {
		return err
	}
	defer closeAll(snd)
	t := newTracker()
	run := runID()
	or := &OfflineResult{Queued: cfg.Messages}
	res.Offline = or
	res.Mode, res.Window = "", cfg.Window
	fillCtx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.Drain)
	defer cancel()
	before := procSnapshot(cfg)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Window {
		wg.Go(func() {
			for {
				seq := next.Add(1) - 1
				if seq >= int64(cfg.Messages) || fillCtx.Err() != nil {
					return
				}
				cid := fmt.Sprintf("bench-%s-u1-%d", run, seq)
				now := time.Now()
				t.add(cid, now, true)
				_, err := snd[0].SendCID(fillCtx, "u0", body(cid, cfg.BodyBytes), cid)
				t.done(cid, true, err)
			}
		})
	}
	wg.Wait()
	or.FillSeconds = time.Since(t0).Seconds()

	rcv, pending, err := loginUsers(ctx, cfg, []string{"u0"})
	if err != nil {
		return err
	}
	defer closeAll(rcv)
	or.Pending = pending[0]
	t1 := time.Now()
	n, pages, err := drainOffline(ctx, rcv[0], t)
	or.DrainS = time.Since(t1).Seconds()
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	or.Drained, or.Pages = n, pages
	if or.DrainS > 0 {
		or.DrainPerSec = float64(n) / or.DrainS
	}
	okd, unanswered := t.outstanding()
	t.mu.Lock()
	res.Sent, res.Delivered = t.sent, t.deliv
	lat := summarize(t.lat, "send call (queue time until drained)")
	t.mu.Unlock()
	res.Latency = &lat
	res.Lost, res.Unanswered = int64(okd), int64(unanswered)
	res.finish(t)
	if after := procSnapshot(cfg); after != nil {
		res.CPUSeconds = cpuDelta(before, after)
		res.Procs = after
		if res.Delivered > 0 {
			res.CPUPer1000 = res.CPUSeconds / float64(res.Delivered) * 1000
		}
	}
	return nil
}
