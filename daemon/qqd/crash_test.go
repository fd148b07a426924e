package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// crashConfigYAML keeps the default filters (antispam, wordfilter with its
// spam phrases, on_failure reject) and the default storage (pebble), but
// lifts the limits
// that a load of unique messages with retries would trip: antispam's flood
// and repeat rules (a retry repeats its body), the send rate, and the login
// attempt limits (every client logs in again after each qqd restart).
const crashConfigYAML = `
limits:
  send_rate: 100000
  send_burst: 100000
  auth_per_ip_per_minute: 100000
  auth_per_account_per_minute: 100000
  max_connections_per_ip: 1000
filters:
  - plugin: antispam
    config:
      flood: {max_messages: 10000, window: 10s}
      repeat: {max_same_body: 10000, max_recipients: 10000}
  - plugin: wordfilter
    config:
      lists:
        - name: spam-phrases
          action: reject
          reason: message looks like spam
          words: ["buy followers", "free bitcoin", "crypto giveaway"]
`

// Bounds of the crash-recovery test. Every wait is bounded by one of them.
const (
	crashUsers        = 8
	crashMinKills     = 5
	crashMaxKills     = 8
	crashChaos        = 15 * time.Second // kill for at least this long
	crashCallTimeout  = 10 * time.Second // one request
	crashSendDeadline = 60 * time.Second // one send, all its retries
	crashMaxAttempts  = 2000             // one send
	crashReconnect    = 40 * time.Second // one reconnection, all its attempts
	crashProgress     = 30 * time.Second // a new ok after a recovery
	crashRestartWait  = 30 * time.Second // a plugin restart
	crashFinishWait   = 90 * time.Second // senders finishing their last send
)

// crashSend is one message a client sends: one cid, retried until ok.
type crashSend struct {
	cid, to, body string
	// Set by the ok.
	msgID  string
	ts     int64
	status protocol.Status
	okSeq  int // index in the sender's acked list
}

// crashRecv is one delivery of a message to its recipient.
type crashRecv struct {
	m   protocol.Message
	via string // "push" or "offline"
	seq int    // the connection (push) or offline drain (offline) it came in
}

type crashUser struct {
	h    *crashHarness
	name string
	rng  *rand.Rand // sender goroutine only

	// The sender goroutine's (after it ended: the test goroutine's).
	c      *client.Client
	nconn  int
	ndrain int

	needDrain atomic.Bool // an ack failed: fetch offline again

	mu        sync.Mutex
	attempted map[string]*crashSend // by body (bodies are unique)
	acked     []*crashSend          // in the order of their oks
	recv      []crashRecv
}

// refusedStored is a send whose attempts got error replies although one of
// them stored it.
type refusedStored struct{ to, msgID, what string }

type crashHarness struct {
	t       *testing.T
	users   []*crashUser
	stop    chan struct{} // no new sends
	quit    chan struct{} // abort: a violation or the end of the test
	quitter sync.Once
	senders sync.WaitGroup
	readers sync.WaitGroup

	mu       sync.Mutex
	addr     string
	errs     map[string]int // "op:code"
	problems []string
	oks      int
	retries  int // attempts after the first
	retried  int // sends that needed more than one attempt
	// Retried sends stored by an earlier attempt (the ok was lost).
	storedEarlier int
	// Those of them whose earlier attempts all got error replies.
	refusedStored []refusedStored
	rechecks      int // acknowledged cids sent again
	reconns       int
	// What clients met in each fault window (the cluster test's; the
	// single-node test's all fall in "").
	win  string
	wins map[string]*crashCounts
}

// crashCounts counts what the clients met during one kind of fault
// window.
type crashCounts struct {
	faults  int            // windows of this kind
	dur     time.Duration  // their total length
	oks     int            // sends acknowledged
	retried int            // sends that needed more than one attempt
	retries int            // attempts after the first
	earlier int            // retried sends stored by an earlier attempt
	unknown int            // send attempts without an answer (outcome unknown)
	reconns int            // connections made
	pushes  int            // messages received by push
	goks    int            // group sends acknowledged
	gpushes int            // group entries received by push
	errs    map[string]int // "op:code"
}

// newCrashHarness makes the harness of a run against the service at addr
// with n users u0..u<n-1>, each with its own random stream of seed. Its
// cleanup (registered now: it runs before that of what was started
// earlier) aborts the run and waits for every client goroutine.
func newCrashHarness(t *testing.T, addr string, seed uint64, n int) *crashHarness {
	h := &crashHarness{t: t, addr: addr, stop: make(chan struct{}), quit: make(chan struct{}),
		errs: map[string]int{}, wins: map[string]*crashCounts{}}
	for i := range n {
		h.users = append(h.users, &crashUser{
			h:         h,
			name:      fmt.Sprintf("u%d", i),
			rng:       rand.New(rand.NewPCG(seed, uint64(i+1))),
			attempted: map[string]*crashSend{},
		})
	}
	t.Cleanup(func() {
		h.abort()
		h.senders.Wait()
		for _, u := range h.users {
			u.drop()
		}
		h.readers.Wait()
	})
	return h
}

// register registers every user.
func (h *crashHarness) register() {
	t := h.t
	t.Helper()
	reg := dialClient(t, h.getAddr(), "registrar")
	defer reg.Close()
	for _, u := range h.users {
		ctx, cancel := callCtx()
		err := reg.Register(ctx, u.name, u.name+"-password")
		cancel()
		if err != nil {
			t.Fatalf("register %s: %v", u.name, err)
		}
	}
}

// start starts every user's sender.
func (h *crashHarness) start() {
	for _, u := range h.users {
		h.senders.Add(1)
		go u.run()
	}
}

// window starts a window of the fault kind name; what clients meet from
// now on counts for it. fault tells a fault from a calm window.
func (h *crashHarness) window(name string, fault bool) {
	h.mu.Lock()
	h.win = name
	if fault {
		h.winLocked().faults++
	}
	h.mu.Unlock()
}

// winLocked returns the counts of the current window; h.mu is held.
func (h *crashHarness) winLocked() *crashCounts {
	w := h.wins[h.win]
	if w == nil {
		w = &crashCounts{errs: map[string]int{}}
		h.wins[h.win] = w
	}
	return w
}

func (h *crashHarness) user(name string) *crashUser {
	for _, u := range h.users {
		if u.name == name {
			return u
		}
	}
	return nil
}

func (h *crashHarness) getAddr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addr
}

func (h *crashHarness) setAddr(a string) {
	h.mu.Lock()
	h.addr = a
	h.mu.Unlock()
}

func (h *crashHarness) okCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.oks
}

// fail records a violation and aborts the run.
func (h *crashHarness) fail(format string, args ...any) {
	h.mu.Lock()
	h.problems = append(h.problems, fmt.Sprintf(format, args...))
	h.mu.Unlock()
	h.abort()
}

func (h *crashHarness) abort() { h.quitter.Do(func() { close(h.quit) }) }

func (h *crashHarness) failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.problems) > 0
}

// sleep sleeps d, or less if the run is aborted; it reports whether the
// run goes on.
func (h *crashHarness) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-h.quit:
		return false
	case <-tm.C:
		return true
	}
}

// errKind names err for the error counts: its protocol code, "timeout" or
// "conn" (the connection or the dial failed).
func errKind(err error) string {
	if code := errCode(err); code != "" {
		return string(code)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "conn"
}

func (h *crashHarness) countErr(op string, err error) {
	h.mu.Lock()
	kind := errKind(err)
	h.errs[op+":"+kind]++
	w := h.winLocked()
	w.errs[op+":"+kind]++
	if strings.HasSuffix(op, "send") && (kind == "conn" || kind == "timeout") {
		w.unknown++
	}
	h.mu.Unlock()
}

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), crashCallTimeout)
}

func msgIDs(ms []protocol.Message) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func (u *crashUser) record(ms []protocol.Message, via string, seq int) {
	u.mu.Lock()
	for _, m := range ms {
		u.recv = append(u.recv, crashRecv{m: m, via: via, seq: seq})
	}
	u.mu.Unlock()
}

// dialLogin opens a logged-in connection to the current qqd.
func (u *crashUser) dialLogin() (*client.Client, int64, error) {
	ctx, cancel := callCtx()
	defer cancel()
	c, err := client.Dial(ctx, u.h.getAddr(), client.Options{})
	if err != nil {
		return nil, 0, err
	}
	pending, err := c.Login(ctx, u.name, u.name+"-password")
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, pending, nil
}

// drop closes the current connection; its reader then ends.
func (u *crashUser) drop() {
	if u.c != nil {
		u.c.Close()
		u.c = nil
	}
}

// conn returns a live logged-in connection, reconnecting (and fetching
// offline messages) if the current one ended. fresh reports a new one; c is
// nil when the run was aborted.
func (u *crashUser) conn() (c *client.Client, fresh bool) {
	if u.c != nil && u.c.Err() == nil {
		return u.c, false
	}
	u.drop()
	h := u.h
	deadline := time.Now().Add(crashReconnect)
	for {
		select {
		case <-h.quit:
			return nil, false
		default:
		}
		c, _, err := u.dialLogin()
		if err == nil {
			u.c = c
			u.nconn++
			h.mu.Lock()
			h.reconns++
			h.winLocked().reconns++
			h.mu.Unlock()
			h.readers.Add(1)
			go u.read(c, u.nconn)
			u.drainOffline(c)
			return c, true
		}
		h.countErr("connect", err)
		if time.Now().After(deadline) {
			h.fail("%s: no connection to qqd within %v: %v", u.name, crashReconnect, err)
			return nil, false
		}
		h.sleep(time.Duration(20+u.rng.IntN(60)) * time.Millisecond)
	}
}

// read records the pushes of connection number n and acknowledges them.
func (u *crashUser) read(c *client.Client, n int) {
	defer u.h.readers.Done()
	for m := range c.Messages() {
		batch := []protocol.Message{m}
	more:
		for len(batch) < 500 {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		u.record(batch, "push", n)
		u.h.mu.Lock()
		u.h.winLocked().pushes += len(batch)
		u.h.mu.Unlock()
		ctx, cancel := callCtx()
		err := c.Ack(ctx, msgIDs(batch)...)
		cancel()
		if err != nil {
			u.h.countErr("ack", err)
			u.needDrain.Store(true)
		}
	}
}

// drainOffline fetches and acknowledges offline pages until none is left.
// It reports whether it got to the end.
func (u *crashUser) drainOffline(c *client.Client) bool {
	u.needDrain.Store(false)
	u.ndrain++
	for range 1000 {
		ctx, cancel := callCtx()
		msgs, more, err := c.Offline(ctx, 500)
		if err == nil {
			u.record(msgs, "offline", u.ndrain)
			if len(msgs) > 0 {
				err = c.Ack(ctx, msgIDs(msgs)...)
			}
		}
		cancel()
		if err != nil {
			u.h.countErr("offline", err)
			u.needDrain.Store(true)
			return false
		}
		if !more {
			return true
		}
	}
	u.h.fail("%s: offline pages do not end", u.name)
	return false
}

// sendUntilOK sends s with its cid until it gets an ok. recheck tells a
// send of an acknowledged cid from a new one.
func (u *crashUser) sendUntilOK(s *crashSend, recheck bool) (client.SendResult, bool) {
	h := u.h
	deadline := time.Now().Add(crashSendDeadline)
	firstAt := time.Now().UnixMilli()
	var refusals []string // error replies to earlier attempts
	onlyReplies := true   // every earlier attempt got an error reply
	for attempt := 1; ; attempt++ {
		c, _ := u.conn()
		if c == nil {
			return client.SendResult{}, false
		}
		ctx, cancel := callCtx()
		sentAt := time.Now().UnixMilli()
		r, err := c.SendCID(ctx, s.to, s.body, s.cid)
		cancel()
		if err == nil && recheck {
			return r, true
		}
		if err == nil {
			h.mu.Lock()
			h.retries += attempt - 1
			w := h.winLocked()
			w.retries += attempt - 1
			if attempt > 1 {
				h.retried++
				w.retried++
				if r.TS < sentAt {
					// Stored by an earlier attempt whose ok was lost.
					h.storedEarlier++
					w.earlier++
					if onlyReplies {
						// Every earlier attempt was answered with an
						// error, yet one of them stored the message.
						h.refusedStored = append(h.refusedStored, refusedStored{s.to, r.MsgID, fmt.Sprintf(
							"%s's cid %s to %s: %d attempts from %d answered %s, then a retry sent at %d returned msg_id %s with ts %d and status %s",
							u.name, s.cid, s.to, attempt-1, firstAt, strings.Join(slices.Compact(refusals), ", "), sentAt, r.MsgID, r.TS, r.Status)})
					}
				}
			}
			h.mu.Unlock()
			return r, true
		}
		h.countErr("send", err)
		if errCode(err) != "" {
			refusals = append(refusals, fmt.Sprintf("%q", err.Error()))
		} else {
			onlyReplies = false
		}
		wait := time.Duration(min(attempt, 20)*5+u.rng.IntN(10)) * time.Millisecond
		switch code := errCode(err); code {
		case protocol.CodeRejected, protocol.CodeBadRequest, protocol.CodeUnknownUser,
			protocol.CodeTooLarge, protocol.CodeNotLoggedIn, protocol.CodeUnknownType:
			h.fail("%s: send cid %s to %s: %v (a send that cannot succeed)", u.name, s.cid, s.to, err)
			return client.SendResult{}, false
		case protocol.CodeRateLimited:
			var pe *protocol.Error
			errors.As(err, &pe)
			wait = time.Duration(pe.RetryAfterMS) * time.Millisecond
		}
		if c.Err() != nil {
			u.drop()
		}
		if attempt >= crashMaxAttempts || time.Now().After(deadline) {
			h.fail("%s: send cid %s to %s: no ok after %d attempts in %v; last error: %v",
				u.name, s.cid, s.to, attempt, crashSendDeadline, err)
			return client.SendResult{}, false
		}
		if !h.sleep(wait) {
			return client.SendResult{}, false
		}
	}
}

// recheck sends an acknowledged cid again: it must get the first result.
func (u *crashUser) recheck(s *crashSend) bool {
	r, ok := u.sendUntilOK(s, true)
	if !ok {
		return false
	}
	u.h.mu.Lock()
	u.h.rechecks++
	u.h.mu.Unlock()
	if r.MsgID != s.msgID || r.TS != s.ts || r.Status != s.status {
		u.h.fail("%s: cid %s sent again returned msg_id %s ts %d status %s; the first ok was msg_id %s ts %d status %s",
			u.name, s.cid, r.MsgID, r.TS, r.Status, s.msgID, s.ts, s.status)
		return false
	}
	return true
}

// run sends to random other users until stop, each send retried until ok.
func (u *crashUser) run() {
	h := u.h
	defer h.senders.Done()
	for seq := 0; ; seq++ {
		select {
		case <-h.stop:
			return
		case <-h.quit:
			return
		default:
		}
		c, fresh := u.conn()
		if c == nil {
			return
		}
		u.mu.Lock()
		nacked := len(u.acked)
		u.mu.Unlock()
		// After a reconnection, and now and then, an acknowledged cid is
		// sent again.
		if nacked > 0 && (fresh && u.nconn > 1 || u.rng.IntN(40) == 0) {
			u.mu.Lock()
			s := u.acked[nacked-1]
			if !fresh {
				s = u.acked[u.rng.IntN(nacked)]
			}
			u.mu.Unlock()
			if !u.recheck(s) {
				return
			}
		}
		if u.needDrain.Load() {
			u.drainOffline(c)
		}
		to := u.h.users[u.rng.IntN(len(h.users))].name
		for to == u.name {
			to = u.h.users[u.rng.IntN(len(h.users))].name
		}
		s := &crashSend{
			cid:  fmt.Sprintf("%s-%d", u.name, seq),
			to:   to,
			body: fmt.Sprintf("%s says %d to %s %08x", u.name, seq, to, u.rng.Uint32()),
		}
		u.mu.Lock()
		u.attempted[s.body] = s
		u.mu.Unlock()
		r, ok := u.sendUntilOK(s, false)
		if !ok {
			return
		}
		if r.Body != "" {
			h.fail("%s: cid %s: the ok carries body %q, sent %q (no filter rewrites these)", u.name, s.cid, r.Body, s.body)
			return
		}
		u.mu.Lock()
		s.msgID, s.ts, s.status, s.okSeq = r.MsgID, r.TS, r.Status, len(u.acked)
		u.acked = append(u.acked, s)
		u.mu.Unlock()
		h.mu.Lock()
		h.oks++
		h.winLocked().oks++
		h.mu.Unlock()
		if !h.sleep(time.Duration(u.rng.IntN(4)) * time.Millisecond) {
			return
		}
	}
}

// TestCrashRecovery kills qqd, its storage plugin or a filter plugin with
// SIGKILL at random moments while clients send to each other, reconnect,
// fetch offline messages and retry every send without an ok with its cid.
// Then it checks the promise: an ok means stored; a stored message reaches
// its recipient at least once and is shown once after de-duplication by
// msg_id; no message appears that was never sent; per-sender order holds;
// a cid always answers with its first msg_id.
//
// It runs on each built-in storage: pebble, the default, with each kind of
// kill, and sqlite (chosen in qq.yaml) with qqd or itself killed.
//
// QQ_CRASH_SEED=<n> replays a kill schedule and traffic pattern (timing
// still varies).
func TestCrashRecovery(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QQ_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("QQ_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (QQ_CRASH_SEED=%d replays it)", seed, seed)
	for i, run := range []struct{ storage, mode string }{
		{defaultStorage, "qqd"}, {defaultStorage, "storage"}, {defaultStorage, "filter"},
		{"sqlite", "qqd"}, {"sqlite", "storage"},
	} {
		t.Run(run.storage+"/kill="+run.mode, func(t *testing.T) {
			crashRecovery(t, run.storage, run.mode, seed+uint64(i))
		})
	}
}

func crashRecovery(t *testing.T, storage, mode string, seed uint64) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	yaml := crashConfigYAML
	if storage != defaultStorage {
		yaml += "storage: {plugin: " + storage + "}\n"
	}
	conf := writeConfig(t, dir, yaml)
	p := startQQD(t, dir, "-config", conf)
	if pids := pluginPIDs(t, p.cmd.Process.Pid); pids[storage] == 0 {
		t.Fatalf("not on the %s storage: plugin processes %v", storage, pids)
	}

	// After startQQD: its cleanup runs before the qqd processes are
	// killed.
	h := newCrashHarness(t, p.addr, seed, crashUsers)
	h.register()
	h.start()

	// The killer.
	kills := 0
	chaosEnd := time.Now().Add(crashChaos)
	for kills < crashMinKills || kills < crashMaxKills && time.Now().Before(chaosEnd) {
		// Traffic flows again since the last recovery: wait for new oks,
		// then a random moment.
		want := h.okCount() + 1 + rng.IntN(20)
		progressBy := time.Now().Add(crashProgress)
		for h.okCount() < want && !h.failed() {
			if time.Now().After(progressBy) {
				h.fail("kill=%s: no send acknowledged within %v after recovery %d", mode, crashProgress, kills)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if h.failed() || !h.sleep(time.Duration(100+rng.IntN(1200))*time.Millisecond) {
			break
		}
		switch mode {
		case "qqd":
			if err := p.signal(t, syscall.SIGKILL); err == nil {
				t.Fatal("qqd exited cleanly after SIGKILL")
			}
			p = startQQD(t, dir, "-config", conf)
			h.setAddr(p.addr)
		case "storage", "filter":
			name := storage
			if mode == "filter" {
				name = []string{"antispam", "wordfilter"}[rng.IntN(2)]
			}
			restartRE := regexp.MustCompile(`plugin restarted.* plugin=` + name + ` `)
			countRestarts := func() (n int) {
				for _, l := range p.logLines() {
					if restartRE.MatchString(l) {
						n++
					}
				}
				return n
			}
			before := countRestarts()
			pid := pluginPIDs(t, p.cmd.Process.Pid)[name]
			if pid == 0 {
				t.Fatalf("kill %d: no %s plugin process", kills+1, name)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill %s (pid %d): %v", name, pid, err)
			}
			// Back when restarted and running as another process.
			waitBy := time.Now().Add(crashRestartWait)
			for {
				if countRestarts() > before {
					if now := pluginPIDs(t, p.cmd.Process.Pid)[name]; now != 0 && now != pid {
						break
					}
				}
				if time.Now().After(waitBy) {
					t.Fatalf("plugin %s not restarted within %v after kill %d", name, crashRestartWait, kills+1)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		kills++
	}
	chaos := time.Since(start)

	st := h.finish("kill="+mode, kills)
	h.mu.Lock()
	t.Logf("kill=%s: %d kills in %v, total %v; sends acked %d, retried %d (%d retry attempts; %d had been stored before), cid rechecks %d, connections %d; "+
		"messages delivered %d (%d deliveries: %d pushed, %d offline); lost %d, shown twice after de-dup %d, never sent %d; errors %v",
		mode, kills, chaos.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), h.oks, h.retried, h.retries, h.storedEarlier, h.rechecks, h.reconns,
		st.delivered, st.pushed+st.offline, st.pushed, st.offline, st.lost, st.twice, st.neverSent, h.errs)
	if n := len(h.refusedStored); n > 0 {
		t.Errorf("CONTRACT: %d sends answered with errors only were stored; QQP/1 says unavailable means \"nothing was accepted\"", n)
	}
	for _, e := range h.refusedStored[:min(5, len(h.refusedStored))] {
		var via []string
		for _, d := range h.user(e.to).recv {
			if d.m.ID == e.msgID {
				via = append(via, d.via)
			}
		}
		t.Logf("CONTRACT: a send answered with an error was stored: %s; %s got it by %v", e.what, e.to, via)
	}
	h.mu.Unlock()
	if kills < crashMinKills {
		t.Errorf("only %d kills", kills)
	}
}

// finish ends a run after faults faults (what names the run in a
// failure): every client finishes its send in progress, every user drains
// its offline messages, and the histories, read on fresh connections on
// which nothing may be pending, are checked against what the clients
// recorded (checkCrashRun).
func (h *crashHarness) finish(what string, faults int) crashStats {
	// Stop: every client finishes its send in progress, then drains.
	t := h.t
	t.Helper()
	close(h.stop)
	done := make(chan struct{})
	go func() { h.senders.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(crashFinishWait):
		h.fail("senders did not finish within %v", crashFinishWait)
		<-done // they all stop at once after quit
	}
	h.mu.Lock()
	problems := slices.Clone(h.problems)
	h.mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("%s after %d faults:\n%s", what, faults, strings.Join(problems, "\n"))
	}
	for _, u := range h.users {
		drained := false
		for range 20 {
			c, _ := u.conn()
			if c == nil {
				break
			}
			if u.drainOffline(c) {
				drained = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !drained {
			t.Fatalf("%s: could not drain offline messages", u.name)
		}
	}
	for _, u := range h.users {
		u.drop()
	}
	h.readers.Wait()

	// History, both directions, on fresh connections: nothing pending.
	hist := map[[2]string][]protocol.Message{} // [viewer, with]
	for _, u := range h.users {
		c, pending, err := u.dialLogin()
		if err != nil {
			t.Fatalf("%s: login for the history check: %v", u.name, err)
		}
		if pending != 0 {
			t.Errorf("%s: %d messages still pending after everything was acknowledged", u.name, pending)
		}
		for _, v := range h.users {
			if v != u {
				hist[[2]string{u.name, v.name}] = fetchHistory(t, c, v.name)
			}
		}
		c.Close()
	}
	return checkCrashRun(t, h, hist)
}

// fetchHistory returns the whole conversation with with, oldest first.
func fetchHistory(t *testing.T, c *client.Client, with string) []protocol.Message {
	t.Helper()
	var all []protocol.Message
	before := ""
	for range 10000 {
		ctx, cancel := callCtx()
		msgs, more, err := c.History(ctx, with, before, 500)
		cancel()
		if err != nil {
			t.Fatalf("history with %s: %v", with, err)
		}
		all = append(slices.Clone(msgs), all...)
		if !more {
			return all
		}
		if len(msgs) == 0 {
			t.Fatalf("history with %s: an empty page with more", with)
		}
		before = msgs[0].ID
	}
	t.Fatalf("history with %s does not end", with)
	return nil
}

type crashStats struct {
	delivered, pushed, offline, lost, twice, neverSent int
}

// checkCrashRun checks the run's records against the histories.
func checkCrashRun(t *testing.T, h *crashHarness, hist map[[2]string][]protocol.Message) (st crashStats) {
	t.Helper()
	const maxReports = 20
	reports := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		if reports++; reports <= maxReports {
			t.Errorf(format, args...)
		} else if reports == maxReports+1 {
			t.Error("... more violations")
		}
	}
	byName := map[string]*crashUser{}
	for _, u := range h.users {
		byName[u.name] = u
	}
	// sent finds the send of from with body.
	sent := func(from, body string) *crashSend {
		if u := byName[from]; u != nil {
			return u.attempted[body]
		}
		return nil
	}
	stored := map[string]protocol.Message{} // msg_id -> message, from history

	// History: both views of a conversation agree; every message was sent
	// to that recipient; one msg_id per cid; acknowledged ones exactly
	// once, with their ok's ts, in the order of their oks.
	for key, msgs := range hist {
		viewer, with := key[0], key[1]
		if other := hist[[2]string{with, viewer}]; !slices.Equal(msgIDs(msgs), msgIDs(other)) {
			errorf("history of %s with %s (%d messages) differs from the other side's (%d)", viewer, with, len(msgs), len(other))
		}
		seen := map[string]bool{}
		for i, m := range msgs {
			if seen[m.ID] {
				errorf("history of %s with %s: msg_id %s twice", viewer, with, m.ID)
			}
			seen[m.ID] = true
			if i > 0 && m.TS < msgs[i-1].TS {
				errorf("history of %s with %s: ts decreases at %s (%d after %d)", viewer, with, m.ID, m.TS, msgs[i-1].TS)
			}
			if !(m.From == viewer && m.To == with || m.From == with && m.To == viewer) {
				errorf("history of %s with %s holds %+v", viewer, with, m)
			}
			s := sent(m.From, m.Body)
			if s == nil || s.to != m.To {
				st.neverSent++
				errorf("history of %s with %s holds a message never sent: %+v", viewer, with, m)
				continue
			}
			if s.msgID != m.ID {
				errorf("history of %s with %s: cid %s is stored as %s, but its ok said %q", viewer, with, s.cid, m.ID, s.msgID)
			}
			if m.TS != s.ts {
				errorf("history: %s has ts %d, its ok said %d", m.ID, m.TS, s.ts)
			}
			if prev, ok := stored[m.ID]; ok && prev != m {
				errorf("msg_id %s is %+v in one history and %+v in another", m.ID, prev, m)
			}
			stored[m.ID] = m
		}
	}
	for _, u := range h.users {
		for _, v := range h.users {
			if u == v {
				continue
			}
			// u's sends to v, in v's history, in the order of their oks.
			pos := map[string]int{}
			for i, m := range hist[[2]string{v.name, u.name}] {
				if m.From == u.name {
					pos[m.ID] = i
				}
			}
			last, lastCID := -1, ""
			for _, s := range u.acked {
				if s.to != v.name {
					continue
				}
				i, ok := pos[s.msgID]
				if !ok {
					st.lost++
					errorf("lost: %s's cid %s to %s was acknowledged as %s but is not in the history", u.name, s.cid, v.name, s.msgID)
					continue
				}
				if i < last {
					errorf("order: %s's cid %s to %s (%s) was acknowledged after cid %s but comes before it in the history", u.name, s.cid, v.name, s.msgID, lastCID)
				}
				last, lastCID = i, s.cid
			}
		}
	}

	// Deliveries: every acknowledged message reached its recipient; after
	// de-duplication by msg_id each is shown once; nothing unsent; pushes
	// and offline pages keep each sender's order.
	for _, r := range h.users {
		got := map[string]protocol.Message{}
		shown := map[[2]string]string{} // from, body -> msg_id
		lastSeq := map[string]int{}     // via/seq/from -> last okSeq
		for _, d := range r.recv {
			m := d.m
			if d.via == "push" {
				st.pushed++
			} else {
				st.offline++
			}
			if prev, ok := got[m.ID]; ok {
				if prev != m {
					errorf("%s got msg_id %s as %+v and as %+v", r.name, m.ID, prev, m)
				}
				continue
			}
			got[m.ID] = m
			s := sent(m.From, m.Body)
			if m.To != r.name || s == nil || s.to != r.name {
				st.neverSent++
				errorf("%s received a message never sent to it: %+v", r.name, m)
				continue
			}
			if id, ok := shown[[2]string{m.From, m.Body}]; ok {
				st.twice++
				errorf("%s is shown %s's cid %s twice: as %s and as %s", r.name, m.From, s.cid, id, m.ID)
			}
			shown[[2]string{m.From, m.Body}] = m.ID
			if s.msgID != m.ID {
				errorf("%s received cid %s of %s as %s, but its ok said %q", r.name, s.cid, m.From, m.ID, s.msgID)
			}
			if sm, ok := stored[m.ID]; !ok || sm != m {
				errorf("%s received %+v; history has %+v", r.name, m, sm)
			}
			k := fmt.Sprintf("%s/%d/%s", d.via, d.seq, m.From)
			if prev, ok := lastSeq[k]; ok && s.okSeq < prev {
				errorf("order: %s got %s's cid %s (%s) by %s after a later message of the same sender", r.name, m.From, s.cid, m.ID, d.via)
			}
			lastSeq[k] = s.okSeq
		}
		st.delivered += len(got)
		for _, u := range h.users {
			for _, s := range u.acked {
				if s.to == r.name {
					if _, ok := got[s.msgID]; !ok {
						st.lost++
						errorf("lost: %s never received %s's cid %s (%s)", r.name, u.name, s.cid, s.msgID)
					}
				}
			}
		}
	}

	// One msg_id per cid in the stored messages (a retry that stored a
	// second copy would also show as twice above).
	perCID := map[string][]string{}
	for id, m := range stored {
		if s := sent(m.From, m.Body); s != nil {
			perCID[m.From+"/"+s.cid] = append(perCID[m.From+"/"+s.cid], id)
		}
	}
	keys := make([]string, 0, len(perCID))
	for k := range perCID {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(perCID[k]) > 1 {
			errorf("cid %s is stored as %d messages: %v", k, len(perCID[k]), perCID[k])
		}
	}
	return st
}
