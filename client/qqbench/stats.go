package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// CheckLoopback returns an error unless addr is host:port with host an IP
// in 127.0.0.0/8, ::1 or "localhost": qqbench must not load other hosts.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q: qqbench only targets loopback addresses (127.0.0.0/8 or ::1)", addr)
	}
	return nil
}

// errorCode names the error of a failed call for the error counts.
func errorCode(err error) string {
	var pe *protocol.Error
	var ke *client.KickedError
	switch {
	case errors.As(err, &pe):
		return string(pe.Code)
	case errors.As(err, &ke):
		return "kicked_" + string(ke.Reason)
	case errors.Is(err, client.ErrClosed):
		return "closed"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The run ended (its drain too) before the call got an answer,
		// or, in an open loop that qqd cannot keep up with, before the
		// send even left: the backlog of the schedule.
		return "deadline"
	default:
		return "conn_error"
	}
}

// entry is one send being tracked until its push arrives.
type entry struct {
	sched   time.Time // scheduled send time (open loop) or issue time (closed loop)
	ok      bool      // the send was answered ok
	counted bool      // scheduled inside the measured window
	left    int       // pushes still expected
}

// tracker matches pushes to sends by the cid at the start of the body.
// Each send is expected to be pushed fanout times (1 for a direct
// message, the other online members for a group message); deliveries and
// latencies count pushes.
type tracker struct {
	fanout  int
	mu      sync.Mutex
	m       map[string]*entry
	lat     []time.Duration // of counted deliveries
	sent    int64           // counted sends answered ok
	sentAll int64
	deliv   int64 // counted deliveries
	delivAl int64
	dups    int64 // pushes of bench messages not (or no longer) tracked
	errs    map[string]int64
}

func newTracker() *tracker {
	return newFanoutTracker(1)
}

func newFanoutTracker(fanout int) *tracker {
	return &tracker{fanout: fanout, m: make(map[string]*entry), errs: make(map[string]int64)}
}

// track makes user i's seq-th send of run, scheduled at sched: its cid,
// repeated at the start of a body of bodyBytes, go to call, and the send
// and its answer are recorded (counted when scheduled from measureStart
// on).
func (t *tracker) track(run string, i int, seq int64, sched, measureStart time.Time, bodyBytes int, call func(cid, body string) error) {
	cid := fmt.Sprintf("bench-%s-%s-%d", run, userName(i), seq)
	counted := !sched.Before(measureStart)
	t.add(cid, sched, counted)
	t.done(cid, counted, call(cid, body(cid, bodyBytes)))
}

func (t *tracker) add(cid string, sched time.Time, counted bool) {
	t.mu.Lock()
	t.m[cid] = &entry{sched: sched, counted: counted, left: t.fanout}
	t.mu.Unlock()
}

// done records the answer to the send of cid.
func (t *tracker) done(cid string, counted bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		delete(t.m, cid)
		t.errs[errorCode(err)]++
		return
	}
	t.sentAll++
	if counted {
		t.sent++
	}
	if e := t.m[cid]; e != nil {
		e.ok = true
	}
}

func (t *tracker) errorf(code string) {
	t.mu.Lock()
	t.errs[code]++
	t.mu.Unlock()
}

// received records the push of a message with body at now.
func (t *tracker) received(body string, now time.Time) {
	cid, _, _ := strings.Cut(body, " ")
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[cid]
	if e == nil {
		if strings.HasPrefix(cid, "bench-") {
			t.dups++
		}
		return
	}
	if e.left--; e.left <= 0 {
		delete(t.m, cid)
	}
	t.delivAl++
	if e.counted {
		t.deliv++
		t.lat = append(t.lat, now.Sub(e.sched))
	}
}

// outstanding returns how many pushes of sends answered ok have not
// arrived, and how many sends are still unanswered.
func (t *tracker) outstanding() (okd, unanswered int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.m {
		if e.ok {
			okd += e.left
		} else {
			unanswered++
		}
	}
	return okd, unanswered
}

func (t *tracker) snapshot() (sent, deliv int64, errs int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range t.errs {
		errs += n
	}
	return t.sentAll, t.delivAl, errs
}

// Latency summarizes one-way latencies in milliseconds.
type Latency struct {
	Count  int     `json:"count"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	P999   float64 `json:"p999_ms"`
	Max    float64 `json:"max_ms"`
	Mean   float64 `json:"mean_ms"`
	Source string  `json:"from"`
}

func summarize(samples []time.Duration, from string) Latency {
	l := Latency{Count: len(samples), Source: from}
	if len(samples) == 0 {
		return l
	}
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	q := func(p float64) float64 {
		i := int(p*float64(len(samples))+0.999999) - 1
		return ms(samples[max(0, min(i, len(samples)-1))])
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	l.P50, l.P99, l.P999 = q(0.50), q(0.99), q(0.999)
	l.Max = ms(samples[len(samples)-1])
	l.Mean = ms(sum / time.Duration(len(samples)))
	return l
}

// ProcStat is one process's resource use read from /proc.
type ProcStat struct {
	PID        int     `json:"pid"`
	Comm       string  `json:"comm"`
	Cmd        string  `json:"cmd,omitempty"` // up to three words of the command line
	CPUSeconds float64 `json:"cpu_s"`         // during the measured window
	RSSBytes   int64   `json:"rss_bytes"`
	cpuTotal   float64
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// readProc reads /proc/<pid>/stat.
func readProc(pid int) (ProcStat, int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, 0, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return ProcStat{}, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[end+1:]) // f[0] is field 3 (state)
	if len(f) < 22 {
		return ProcStat{}, 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	ps := ProcStat{PID: pid, Comm: s[open+1 : end], cpuTotal: (ut + st) / clockTicks,
		RSSBytes: rss * int64(os.Getpagesize())}
	if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		args := strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		if len(args) > 0 {
			args[0] = filepath.Base(args[0])
		}
		ps.Cmd = strings.Join(args[:min(3, len(args))], " ")
	}
	return ps, ppid, nil
}

// ReadProcTree reads pid and all its descendants, pid first.
func ReadProcTree(pid int) ([]ProcStat, error) {
	root, _, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil || p == pid {
			continue
		}
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 {
				pp, _ := strconv.Atoi(f[1])
				children[pp] = append(children[pp], p)
			}
		}
	}
	out := []ProcStat{root}
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if ps, _, err := readProc(p); err == nil {
			out = append(out, ps)
			queue = append(queue, children[p]...)
		}
	}
	return out, nil
}

// cpuDelta sets CPUSeconds of every process in after to its use since
// before (processes new since then count from zero).
func cpuDelta(before, after []ProcStat) (total float64) {
	prev := map[int]float64{}
	for _, p := range before {
		prev[p.PID] = p.cpuTotal
	}
	for i := range after {
		after[i].CPUSeconds = after[i].cpuTotal - prev[after[i].PID]
		total += after[i].CPUSeconds
	}
	return total
}

// Result is what one run measured; it is printed as one JSON line.
type Result struct {
	Scenario string `json:"scenario"`
	Addr     string `json:"addr"` // --addr: one address, or a comma-separated list
	// RecipientAddr is --recipient-addr: a split dm run's recipients'.
	RecipientAddr string  `json:"recipient_addr,omitempty"`
	Transport     string  `json:"transport,omitempty"` // "" (TCP) or "ws"
	Users         int     `json:"users"`
	Mode          string  `json:"mode,omitempty"` // open or closed loop
	Rate          float64 `json:"rate,omitempty"`
	Window        int     `json:"window,omitempty"`
	BodyBytes     int     `json:"body_bytes"`
	// NoFirst: the sends were not marked first (--first=false).
	NoFirst   bool    `json:"no_first,omitempty"`
	DurationS float64 `json:"duration_s"`
	WarmupS   float64 `json:"warmup_s"`

	Sent            int64            `json:"sent"`      // measured sends answered ok
	Delivered       int64            `json:"delivered"` // measured pushes received
	DeliveredPerSec float64          `json:"delivered_per_s"`
	Lost            int64            `json:"lost"`       // answered ok, never pushed by the end of the drain
	Unanswered      int64            `json:"unanswered"` // sends without a reply by the end of the drain
	Duplicates      int64            `json:"duplicates"`
	Latency         *Latency         `json:"latency,omitempty"`
	Errors          map[string]int64 `json:"errors"`
	RateLimited     int64            `json:"rate_limited"`
	Hint            string           `json:"hint,omitempty"`

	Procs []ProcStat `json:"procs,omitempty"`
	// BenchCPUSeconds is qqbench's own CPU time in the measured window:
	// close to the window's length, the load generator itself was the
	// limit.
	BenchCPUSeconds float64 `json:"bench_cpu_s,omitempty"`
	CPUSeconds      float64 `json:"cpu_s,omitempty"`
	CPUPer1000      float64 `json:"cpu_s_per_1000_msgs,omitempty"`
	RSSTreeBytes    int64   `json:"rss_tree_bytes,omitempty"`
	// PGCPUSeconds is the CPU of PostgreSQL (--pg-pid: postmaster and
	// backends) in the measured window, NATSCPUSeconds that of the
	// processes of --nats-pid (without descendants); the Per1000 figures
	// are per 1,000 delivered messages, beside CPUPer1000 (qqd's).
	PGCPUSeconds   float64 `json:"pg_cpu_s,omitempty"`
	PGCPUPer1000   float64 `json:"pg_cpu_s_per_1000_msgs,omitempty"`
	NATSCPUSeconds float64 `json:"nats_cpu_s,omitempty"`
	NATSCPUPer1000 float64 `json:"nats_cpu_s_per_1000_msgs,omitempty"`

	Idle    *IdleResult    `json:"idle,omitempty"`
	Offline *OfflineResult `json:"offline,omitempty"`
	History *HistoryResult `json:"history,omitempty"`
	Group   *GroupResult   `json:"group,omitempty"`
	Attack  *AttackResult  `json:"attack,omitempty"`
}

// GroupResult is the group scenario's figures: Sent counts group sends,
// Delivered their pushes (each send is pushed to every online member but
// its sender), and CPUPer1000 is per 1000 pushes, the figure to set beside
// dm's CPU per message.
type GroupResult struct {
	Members int `json:"members"`
	Online  int `json:"online"`
	// CPUPerSendUs is qqd's (and its plugins') CPU per group send, in µs.
	CPUPerSendUs float64 `json:"cpu_us_per_send,omitempty"`
	SendsPerSec  float64 `json:"sends_per_s"`
}

// IdleResult is the idle scenario's memory figures (zero without --qqd-pid).
type IdleResult struct {
	Connections         int     `json:"connections"`
	RSSBefore           int64   `json:"rss_before_bytes"`
	RSSAfterLogin       int64   `json:"rss_after_login_bytes"`
	RSSAfterSettle      int64   `json:"rss_after_settle_bytes"`
	RSSEnd              int64   `json:"rss_end_bytes"`
	PerConnAfterLogin   float64 `json:"per_conn_after_login_bytes"`
	PerConnAfterSettle  float64 `json:"per_conn_after_settle_bytes"`
	SettleS             float64 `json:"settle_s"`
	LoginSeconds        float64 `json:"login_s"`
	AllConnectionsAlive bool    `json:"all_alive"`
	// HoldCPUSeconds is the CPU time of qqd and its plugins while the
	// connections were held (after the settle), HoldCorePercent the same
	// as a percentage of one core.
	HoldCPUSeconds  float64 `json:"hold_cpu_s"`
	HoldCorePercent float64 `json:"hold_core_percent"`
}

// OfflineResult is the offline scenario's figures.
type OfflineResult struct {
	Queued      int     `json:"queued"`
	FillSeconds float64 `json:"fill_s"`
	Pending     int64   `json:"pending_at_login"`
	Drained     int     `json:"drained"`
	Pages       int     `json:"pages"`
	DrainS      float64 `json:"drain_s"`
	DrainPerSec float64 `json:"drain_per_s"`
}

const limitHint = "hint: rate_limited/rejected errors mean the server limits throttled the benchmark; " +
	"raise limits.send_rate, limits.send_burst and the antispam filter's flood/repeat limits for benchmarking (docs/performance.md)"

// selfCPU returns qqbench's own user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *Result) finish(t *tracker) {
	t.mu.Lock()
	r.Errors = maps(t.errs)
	r.Duplicates = t.dups
	t.mu.Unlock()
	r.RateLimited = r.Errors[string(protocol.CodeRateLimited)]
	if r.RateLimited > 0 || r.Errors[string(protocol.CodeRejected)] > 0 {
		r.Hint = limitHint
	}
}

func maps(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// WriteJSON writes r as one JSON line.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteSummary writes a human summary of r.
func (r *Result) WriteSummary(w io.Writer) {
	switch r.Scenario {
	case "dm", "fanin":
		fmt.Fprintf(w, "qqbench %s against %s: %d users, %s measured after %s warm-up\n",
			r.Scenario, r.Addr, r.Users, time.Duration(r.DurationS*float64(time.Second)), time.Duration(r.WarmupS*float64(time.Second)))
	case "group":
		fmt.Fprintf(w, "qqbench group against %s: a group of %d members, %d of them online and sending, %s measured after %s warm-up\n",
			r.Addr, r.Group.Members, r.Users, time.Duration(r.DurationS*float64(time.Second)), time.Duration(r.WarmupS*float64(time.Second)))
	default:
		fmt.Fprintf(w, "qqbench %s against %s: %d users\n", r.Scenario, r.Addr, r.Users)
	}
	if r.Mode != "" {
		if r.Mode == "open" {
			fmt.Fprintf(w, "  open loop at %.0f msg/s total, %d-byte bodies\n", r.Rate, r.BodyBytes)
		} else {
			fmt.Fprintf(w, "  closed loop, window %d per user, %d-byte bodies\n", r.Window, r.BodyBytes)
		}
		fmt.Fprintf(w, "  sent ok %d, delivered %d (%.0f msg/s), lost %d, unanswered %d, duplicates %d\n",
			r.Sent, r.Delivered, r.DeliveredPerSec, r.Lost, r.Unanswered, r.Duplicates)
	}
	if r.BenchCPUSeconds > 0 && r.DurationS > 0 {
		fmt.Fprintf(w, "  qqbench's own CPU: %.2f s in the measured window (%.0f%% of a core: near 100%%, the generator was the limit)\n",
			r.BenchCPUSeconds, 100*r.BenchCPUSeconds/r.DurationS)
	}
	if l := r.Latency; l != nil && l.Count > 0 {
		fmt.Fprintf(w, "  one-way latency (from %s, %d samples): p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, mean %.2f ms\n",
			l.Source, l.Count, l.P50, l.P99, l.P999, l.Max, l.Mean)
	}
	if g := r.Group; g != nil {
		fmt.Fprintf(w, "  group: %.0f sends/s, each pushed to the %d other online members (delivered counts pushes)\n", g.SendsPerSec, g.Online-1)
		if g.CPUPerSendUs > 0 {
			fmt.Fprintf(w, "  qqd + plugins CPU: %.1f µs per send, %.2f µs per push (compare dm's CPU per message)\n", g.CPUPerSendUs, r.CPUPer1000*1000)
		}
	}
	if o := r.Offline; o != nil {
		fmt.Fprintf(w, "  offline: queued %d in %.2f s, pending at login %d, drained %d in %d pages in %.3f s (%.0f msg/s)\n",
			o.Queued, o.FillSeconds, o.Pending, o.Drained, o.Pages, o.DrainS, o.DrainPerSec)
	}
	if h := r.History; h != nil {
		h.writeSummary(w, r)
	}
	if a := r.Attack; a != nil {
		a.writeSummary(w, r.Scenario)
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(w, "  idle: %d connections logged in in %.2f s, all alive at the end: %v\n", i.Connections, i.LoginSeconds, i.AllConnectionsAlive)
		if i.RSSBefore > 0 {
			fmt.Fprintf(w, "  qqd RSS: before %s, after logins %s (%.1f KiB/conn), after %.0f s settle %s (%.1f KiB/conn), end %s\n",
				mib(i.RSSBefore), mib(i.RSSAfterLogin), i.PerConnAfterLogin/1024, i.SettleS, mib(i.RSSAfterSettle), i.PerConnAfterSettle/1024, mib(i.RSSEnd))
			fmt.Fprintf(w, "  note: Argon2id logins leave garbage that inflates RSS right after login; the settled figure is closer to the steady per-connection cost\n")
			fmt.Fprintf(w, "  qqd + plugins CPU while holding: %.3f s (%.2f%% of one core)\n", i.HoldCPUSeconds, i.HoldCorePercent)
		} else {
			fmt.Fprintf(w, "  qqd RSS: not measured (give --qqd-pid)\n")
		}
	}
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "  errors: %s\n", strings.Join(parts, " "))
	}
	if r.Hint != "" {
		fmt.Fprintf(w, "  %s\n", r.Hint)
	}
	if len(r.Procs) > 0 {
		if r.Mode != "" {
			fmt.Fprintf(w, "  qqd + plugins CPU: %.2f s in the measured window, %.3f CPU-s per 1,000 delivered messages\n", r.CPUSeconds, r.CPUPer1000)
		}
		for _, p := range r.Procs {
			fmt.Fprintf(w, "    pid %d %-24s cpu %.2f s  rss %s\n", p.PID, p.Cmd, p.CPUSeconds, mib(p.RSSBytes))
		}
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
