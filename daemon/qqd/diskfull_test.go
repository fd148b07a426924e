package main

// The data directory's filesystem filling up under load (issue 12): a
// real qqd with its real storage plugin (sqlite, and pebble, the default)
// on a small tmpfs.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins/storagetest"
)

// diskFullYAML lifts the per-IP and rate limits (every client comes from
// 127.0.0.1 and sends as fast as it can) and turns the filters off (the
// storage is under test); diskFull adds the storage, with calls given 2 s.
const diskFullYAML = loadLimitsYAML + `filters: []
`

// Bounds of the disk-full test.
const (
	diskFullSenders  = 4               // sender→receiver pairs
	diskFullInFlight = 4               // sends in flight per sender
	diskFullSlack    = 1 * time.Second // a reply may take storage.timeout plus this
	diskFullFillWait = 60 * time.Second
	diskFullHold     = 2 * time.Second // how long the disk stays full
	diskFullRecover  = 20 * time.Second
)

// freeBytes returns the space left to unprivileged users on dir's
// filesystem.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fillTo grows the file at path until at most free bytes are left on its
// filesystem (or the filesystem is full: qqd may be writing meanwhile).
func fillTo(t *testing.T, path string, free int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		n := freeBytes(t, filepath.Dir(path)) - free
		if n <= 0 {
			return
		}
		if _, err := f.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("fill %s: %v", path, err)
		}
	}
}

// diskFullRun is the record of one run: what every client was told.
type diskFullRun struct {
	t     *testing.T
	bound time.Duration // longest acceptable wait for a reply

	oks         atomic.Int64
	unavailable atomic.Int64
	ackFailed   atomic.Int64
	closing     atomic.Bool // the test closes the connections

	mu       sync.Mutex
	acked    map[string]string   // sender/cid -> msg_id of its ok
	bodies   map[string]string   // sender/cid -> body
	received map[string]int      // receiver/msg_id -> deliveries
	ackedOK  map[string]bool     // receiver/msg_id: an ack of it was answered ok
	again    int                 // deliveries of messages whose ack had failed
	pending  map[string][]string // receiver -> ids whose ack failed
	problems []string
	slowest  time.Duration
	errs     map[string]int // "op:code"
}

func (r *diskFullRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// call runs one request, bounded by r.bound, and records its latency and
// error kind; a request without a reply by then is a problem.
func (r *diskFullRun) call(op string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.bound)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	took := time.Since(start)
	r.mu.Lock()
	r.slowest = max(r.slowest, took)
	if err != nil {
		r.errs[op+":"+errKind(err)]++
	}
	r.mu.Unlock()
	if err != nil && errCode(err) == "" && !r.closing.Load() {
		r.problem("%s: no reply within %v (%v)", op, r.bound, err)
	}
	return err
}

// send sends cid until it is answered ok or stop is closed; an
// unavailable is retried with the same cid.
func (r *diskFullRun) send(c *client.Client, from, to, cid, body string, stop <-chan struct{}) {
	r.mu.Lock()
	r.bodies[from+"/"+cid] = body
	r.mu.Unlock()
	for {
		var res client.SendResult
		err := r.call("send", func(ctx context.Context) (err error) {
			res, err = c.SendCID(ctx, to, body, cid)
			return err
		})
		switch {
		case err == nil:
			r.oks.Add(1)
			r.mu.Lock()
			r.acked[from+"/"+cid] = res.MsgID
			r.mu.Unlock()
			return
		case errCode(err) == protocol.CodeUnavailable:
			r.unavailable.Add(1)
		case errCode(err) != "":
			r.problem("send %s/%s: %v, want ok or unavailable", from, cid, err)
			return
		default:
			return // recorded by call; the connection may be unusable
		}
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// receive records the pushes to c and acknowledges them; failed acks are
// tried again with the next ones.
func (r *diskFullRun) receive(c *client.Client, name string) {
	for m := range c.Messages() {
		ids := []string{m.ID}
	more:
		for len(ids) < 200 {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					break more
				}
				ids = append(ids, m.ID)
			default:
				break more
			}
		}
		r.mu.Lock()
		for _, id := range ids {
			r.delivered(name, id)
		}
		ids = append(ids, r.pending[name]...)
		r.pending[name] = nil
		r.mu.Unlock()
		r.ack(c, name, ids)
	}
}

// delivered records a delivery of id to name. A message delivered again
// after an ack of it was answered ok is a problem. The caller holds r.mu.
func (r *diskFullRun) delivered(name, id string) {
	key := name + "/" + id
	if r.ackedOK[key] {
		if len(r.problems) < 20 {
			r.problems = append(r.problems, fmt.Sprintf("%s got %s again after its ack was answered ok", name, id))
		}
	} else if r.received[key] > 0 {
		r.again++
	}
	r.received[key]++
}

func (r *diskFullRun) ack(c *client.Client, name string, ids []string) bool {
	err := r.call("ack", func(ctx context.Context) error { return c.Ack(ctx, ids...) })
	if err == nil {
		r.mu.Lock()
		for _, id := range ids {
			r.ackedOK[name+"/"+id] = true
		}
		r.mu.Unlock()
	}
	if err != nil {
		r.ackFailed.Add(1)
		r.mu.Lock()
		r.pending[name] = append(r.pending[name], ids...)
		r.mu.Unlock()
	}
	return err == nil
}

// historyPages returns the whole conversation with with, oldest first,
// read in pages of limit.
func historyPages(t *testing.T, c *client.Client, with string, limit int) []protocol.Message {
	t.Helper()
	var pages [][]protocol.Message
	before := ""
	for range 100000 {
		ctx, cancel := callCtx()
		msgs, more, err := c.History(ctx, with, before, limit)
		cancel()
		if err != nil {
			t.Fatalf("history with %s: %v", with, err)
		}
		pages = append(pages, msgs)
		if !more || len(msgs) == 0 {
			slices.Reverse(pages)
			return slices.Concat(pages...)
		}
		before = msgs[0].ID
	}
	t.Fatalf("history with %s does not end", with)
	return nil
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestDiskFull fills the data directory's filesystem, a 64 MiB tmpfs
// (smaller than the WAL's default checkpoint size), while senders send
// with cids (retrying every unavailable) and receivers acknowledge what
// they get: either the load fills it, or a ballast file takes all but a
// few KiB at once. Every request gets a reply within storage.timeout;
// sends get ok or unavailable; pings, history, logins and offline pages
// work while it is full; once the ballast is deleted, sends succeed again
// by themselves; at the end every ok'd message is stored once with its
// msg_id, nothing answered unavailable only is stored, and every
// receiver's acks went through (nothing left pending).
//
// It runs on each built-in storage. With pebble, when something else takes
// the last bytes at once, an ack's commit fails with ENOSPC, which Pebble
// treats as fatal: the plugin exits and cannot reopen its store (replaying
// its WAL writes files) until space returns, so reads are answered
// unavailable too while the disk is full (readsPass false); everything
// else is checked as for sqlite.
func TestDiskFull(t *testing.T) {
	for _, tc := range []struct {
		storage string
		name    string
		size    int64 // of the tmpfs
		// leave is what the ballast leaves free: the load fills the rest.
		leave int64
		// acksPass: every ack must be answered ok. When the ballast takes
		// (nearly) all the space, acks fail too until it is deleted: the
		// WAL has no room to grow and its checkpoint none to copy into.
		acksPass bool
		// readsPass: history, logins and offline pages must be answered
		// while the disk is full; else they may get unavailable.
		readsPass bool
	}{
		{"sqlite", "load fills 64MiB", 64 << 20, 7 << 20, true, true},
		{"sqlite", "sudden fill of 64MiB", 64 << 20, 64 << 10, false, true},
		{defaultStorage, "load fills 64MiB", 64 << 20, 7 << 20, true, true},
		{defaultStorage, "sudden fill of 64MiB", 64 << 20, 64 << 10, false, false},
	} {
		t.Run(tc.storage+"/"+tc.name, func(t *testing.T) {
			diskFull(t, tc.storage, tc.size, tc.leave, tc.acksPass, tc.readsPass)
		})
	}
}

func diskFull(t *testing.T, storage string, size, leave int64, acksPass, readsPass bool) {
	fs := storagetest.MountTmpfs(t, size)
	data := filepath.Join(fs, "data")
	conf := writeConfig(t, t.TempDir(), diskFullYAML+"storage: {timeout: 2s, plugin: "+storage+"}\n")
	p := startQQD(t, data, "-config", conf)
	r := &diskFullRun{
		t:        t,
		bound:    2*time.Second + diskFullSlack,
		acked:    map[string]string{},
		bodies:   map[string]string{},
		received: map[string]int{},
		ackedOK:  map[string]bool{},
		pending:  map[string][]string{},
		errs:     map[string]int{},
	}

	var senders, readers sync.WaitGroup
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopSenders := func() { stopOnce.Do(func() { close(stop) }); senders.Wait() }
	t.Cleanup(stopSenders)
	var sconns, rconns []*client.Client
	pad := strings.Repeat("x", 3000)
	for i := range diskFullSenders {
		from, to := fmt.Sprintf("s%d", i), fmt.Sprintf("r%d", i)
		sc, rc := dialClient(t, p.addr, from), dialClient(t, p.addr, to)
		sconns, rconns = append(sconns, sc), append(rconns, rc)
		readers.Add(1)
		go func() { defer readers.Done(); r.receive(rc, to) }()
		for k := range diskFullInFlight {
			senders.Add(1)
			go func() {
				defer senders.Done()
				for seq := 0; ; seq++ {
					select {
					case <-stop:
						return
					default:
					}
					cid := fmt.Sprintf("%d-%d", k, seq)
					r.send(sc, from, to, cid, fmt.Sprintf("%s %s %s", from, cid, pad), stop)
				}
			}()
		}
	}
	probe := dialClient(t, p.addr, "probe")

	if !waitFor(diskFullFillWait, func() bool { return r.oks.Load() >= 200 }) {
		t.Fatalf("only %d sends ok before the fill", r.oks.Load())
	}
	ballast := filepath.Join(fs, "ballast")
	fillTo(t, ballast, leave)
	t.Logf("ballast in place: %d KiB free of %d MiB", freeBytes(t, fs)>>10, size>>20)

	// Full: sends are refused and none succeeds for a while.
	full := waitFor(diskFullFillWait, func() bool {
		u, ok := r.unavailable.Load(), r.oks.Load()
		time.Sleep(300 * time.Millisecond)
		return r.unavailable.Load() > u+10 && r.oks.Load() == ok
	})
	if !full {
		t.Fatalf("the disk did not fill within %v: %d ok, %d unavailable, %d KiB free",
			diskFullFillWait, r.oks.Load(), r.unavailable.Load(), freeBytes(t, fs)>>10)
	}
	fullOKs := r.oks.Load()
	t.Logf("full after %d oks, %d unavailable; %d KiB free", fullOKs, r.unavailable.Load(), freeBytes(t, fs)>>10)

	// While it is full, everyone else is served: pings, history, logins,
	// offline pages (or, !readsPass, the reads answered unavailable).
	readFailed := func(err error) bool {
		return err != nil && (readsPass || errCode(err) != protocol.CodeUnavailable)
	}
	for end := time.Now().Add(diskFullHold); time.Now().Before(end); {
		if err := r.call("ping", probe.Ping); err != nil {
			t.Errorf("ping while the disk is full: %v", err)
		}
		if err := r.call("history", func(ctx context.Context) error {
			_, _, err := probe.History(ctx, "s0", "", 10)
			return err
		}); readFailed(err) {
			t.Errorf("history while the disk is full: %v", err)
		}
		if err := r.call("login", func(ctx context.Context) error {
			c, err := client.Dial(ctx, p.addr, client.Options{})
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Login(ctx, "r1", "r1-password"); err != nil {
				return err
			}
			_, _, err = c.Offline(ctx, 10)
			return err
		}); readFailed(err) {
			t.Errorf("login and offline while the disk is full: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !alive(p.cmd.Process.Pid) {
		t.Fatal("qqd died while the disk was full")
	}

	// Space returns: sends succeed again by themselves.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	if !waitFor(diskFullRecover, func() bool { return r.oks.Load() > fullOKs }) {
		t.Fatalf("no recovery within %v of freeing the space: %d unavailable in all", diskFullRecover, r.unavailable.Load())
	}
	t.Logf("first ok %v after the ballast was deleted", time.Since(freed).Round(time.Millisecond))
	if !waitFor(diskFullRecover, func() bool { return r.oks.Load() >= fullOKs+100 }) {
		t.Fatalf("no recovery within %v of freeing the space: %d oks since full, %d unavailable in all",
			diskFullRecover, r.oks.Load()-fullOKs, r.unavailable.Load())
	}
	stopSenders()

	// The receivers log in again and get the rest by offline pages, on
	// connections of their own: an offline page then follows every ack
	// answered before it, and must not repeat what that ack settled.
	r.closing.Store(true)
	for _, c := range append(sconns, rconns...) {
		c.Close()
	}
	readers.Wait()
	r.closing.Store(false)
	for i := range diskFullSenders {
		name := fmt.Sprintf("r%d", i)
		rc := dialClient(t, p.addr, name)
		drained := waitFor(diskFullRecover, func() bool {
			r.mu.Lock()
			retry := r.pending[name]
			r.pending[name] = nil
			r.mu.Unlock()
			if len(retry) > 0 && !r.ack(rc, name, retry) {
				return false
			}
			var msgs []protocol.Message
			if r.call("offline", func(ctx context.Context) (err error) {
				msgs, _, err = rc.Offline(ctx, 15)
				return err
			}) != nil {
				return false
			}
			if len(msgs) == 0 {
				return true
			}
			ids := make([]string, len(msgs))
			r.mu.Lock()
			for j, m := range msgs {
				ids[j] = m.ID
				r.delivered(name, m.ID)
			}
			r.mu.Unlock()
			r.ack(rc, name, ids)
			return false
		})
		if !drained {
			t.Errorf("%s: pending messages not drained within %v", name, diskFullRecover)
		}
		rc.Close()
	}

	// History: every ok'd message once, with its msg_id; nothing else.
	stored := 0
	for i := range diskFullSenders {
		from, to := fmt.Sprintf("s%d", i), fmt.Sprintf("r%d", i)
		c := dialClient(t, p.addr, to)
		hist := historyPages(t, c, from, 15)
		stored += len(hist)
		seen := map[string]string{} // cid -> msg_id
		for _, m := range hist {
			f := strings.Fields(m.Body)
			if len(f) != 3 || f[0] != from || r.bodies[from+"/"+f[1]] != m.Body {
				t.Errorf("%s's history with %s holds a message never sent: %.60q", to, from, m.Body)
				continue
			}
			cid := f[1]
			if prev, ok := seen[cid]; ok {
				t.Errorf("%s/%s is stored twice: %s and %s", from, cid, prev, m.ID)
			}
			seen[cid] = m.ID
			if id, ok := r.acked[from+"/"+cid]; !ok {
				t.Errorf("%s/%s is stored as %s but was never answered ok", from, cid, m.ID)
			} else if id != m.ID {
				t.Errorf("%s/%s is stored as %s, its ok said %s", from, cid, m.ID, id)
			}
		}
		for key, id := range r.acked {
			if cid, ok := strings.CutPrefix(key, from+"/"); ok {
				if _, ok := seen[cid]; !ok {
					t.Errorf("lost: %s was answered ok as %s but is not stored", key, id)
				}
			}
		}
		c.Close()
	}
	r.mu.Lock()
	problems := slices.Clone(r.problems)
	t.Logf("%d oks (%d stored), %d unavailable, %d failed acks, %d deliveries again (after a failed ack, or before the ack was answered); slowest reply %v; errors %v",
		r.oks.Load(), stored, r.unavailable.Load(), r.ackFailed.Load(), r.again, r.slowest.Round(time.Millisecond), r.errs)
	r.mu.Unlock()
	for _, pr := range problems {
		t.Error(pr)
	}
	if n := r.errs["ack:"+string(protocol.CodeUnavailable)]; acksPass && n > 0 {
		t.Errorf("%d acks were answered unavailable while the disk was full, want none", n)
	}
	if !alive(p.cmd.Process.Pid) {
		t.Fatal("qqd died")
	}
	peaks := []string{fmt.Sprintf("qqd %d KiB", vmHWM(t, p.cmd.Process.Pid))}
	for name, pid := range pluginPIDs(t, p.cmd.Process.Pid) {
		peaks = append(peaks, fmt.Sprintf("%s %d KiB", name, vmHWM(t, pid)))
	}
	t.Logf("peak memory (VmHWM): %s", strings.Join(peaks, ", "))
}

// vmHWM returns the peak resident memory of process pid in KiB.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kib int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib)
			return kib
		}
	}
	t.Fatalf("/proc/%d/status has no VmHWM", pid)
	return 0
}
