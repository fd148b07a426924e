package main

// The exhaustion scenarios (issue 12; docs/operations.md, "Exhaustion"):
// conns, slowloris and regflood attack qqd from many loopback source
// addresses while a probe measures what everyone else gets.
//
//   - conns opens --conns connections (at most --per-addr from each source
//     address 127.1.x.y) that never log in, and holds them for
//     --duration;
//   - slowloris does the same, each connection sending one byte of a
//     login frame per second and never its end;
//   - regflood registers --conns new accounts, at most --per-addr from
//     each source address, --window at a time.
//
// Meanwhile the probe (u0, logged in from 127.0.0.1 before the attack)
// pings and sends to u1 every --probe-every, and once a second a new
// client dials and logs in as u1; the result has their latencies and
// errors, how many attack connections qqd accepted, refused and closed
// (and after how long), and the peak memory (VmHWM) of qqd and of each
// of its plugin processes.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// AttackResult is the figures of conns, slowloris and regflood.
type AttackResult struct {
	Attempts int `json:"attempts"` // connections (conns, slowloris) or registrations (regflood)
	PerAddr  int `json:"per_addr"`
	Addrs    int `json:"source_addrs"`
	// Connections: got a hello; refused by a connection limit; failed to
	// dial (e.g. qqbench's own open-file limit); closed by qqd during the
	// hold, and after how long from the dial.
	Established int     `json:"established"`
	Refused     int     `json:"refused"`
	DialFailed  int     `json:"dial_failed"`
	ClosedByQQD int     `json:"closed_by_qqd"`
	ClosedAfter Latency `json:"closed_after"`
	OpenSeconds float64 `json:"open_s"` // from the first dial to the last
	// BytesSent is what the slowloris connections wrote in all.
	BytesSent int64 `json:"bytes_sent,omitempty"`
	// Registrations by reply (ok, rate_limited, ...) and their latency.
	Registrations   map[string]int64 `json:"registrations,omitempty"`
	RegisterLatency *Latency         `json:"register_latency,omitempty"`
	RegisterSeconds float64          `json:"register_s,omitempty"`
	// The probe: a logged-in user's pings and sends, and new logins, with
	// the errors they met.
	ProbePing   Latency          `json:"probe_ping"`
	ProbeSend   Latency          `json:"probe_send"`
	ProbeLogin  Latency          `json:"probe_login"`
	ProbeErrors map[string]int64 `json:"probe_errors"`
	// Peak memory (VmHWM) of qqd and of each plugin process, and qqd's
	// RSS at the end of the hold.
	Peaks    []ProcPeak `json:"peaks,omitempty"`
	RSSAtEnd int64      `json:"qqd_rss_end_bytes,omitempty"`
}

// ProcPeak is one process's peak resident memory.
type ProcPeak struct {
	PID       int    `json:"pid"`
	Cmd       string `json:"cmd"`
	PeakBytes int64  `json:"vmhwm_bytes"`
}

// attackAddr is the source address of attack connection i: number
// first + i/perAddr of 127.1.0.0, 127.1.0.1, ...
func attackAddr(i, perAddr, first int) net.IP {
	a := first + i/perAddr
	return net.IPv4(127, byte(1+a>>16), byte(a>>8), byte(a))
}

// readPeaks returns VmHWM of pid and its descendants.
func readPeaks(pid int) []ProcPeak {
	ps, err := ReadProcTree(pid)
	if err != nil {
		return nil
	}
	var out []ProcPeak
	for _, p := range ps {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				out = append(out, ProcPeak{PID: p.PID, Cmd: p.Cmd, PeakBytes: kb << 10})
			}
		}
	}
	return out
}

// raiseOpenFiles lifts qqbench's open-file limit to its hard limit (or
// to n when allowed) for the attack connections.
func raiseOpenFiles(n uint64) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	if lim.Max < n {
		lim.Max = n // works as root
	}
	lim.Cur = lim.Max
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// probe measures what a well-behaved client gets during an attack.
type probe struct {
	mu     sync.Mutex
	ping   []time.Duration
	send   []time.Duration
	login  []time.Duration
	errs   map[string]int64
	stop   chan struct{}
	done   sync.WaitGroup
	cfg    Config
	sender *client.Client
	recv   *client.Client
}

// startProbe logs u0 and u1 in and starts the probe loops.
func startProbe(ctx context.Context, cfg Config) (*probe, error) {
	if err := registerUsers(ctx, cfg, 2); err != nil {
		return nil, err
	}
	cs, _, err := loginUsers(ctx, cfg, []string{userName(0), userName(1)})
	if err != nil {
		return nil, err
	}
	p := &probe{errs: map[string]int64{}, stop: make(chan struct{}), cfg: cfg, sender: cs[0], recv: cs[1]}
	p.done.Add(3)
	go func() { // u1 takes its pushes
		defer p.done.Done()
		for {
			select {
			case <-p.recv.Messages():
			case <-p.stop:
				return
			}
		}
	}()
	go p.loop(cfg.ProbeEvery, p.pingAndSend)
	go p.loop(time.Second, p.newLogin)
	return p, nil
}

func (p *probe) loop(every time.Duration, f func(seq int)) {
	defer p.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		f(seq)
	}
}

// timed runs f with a 10 s deadline and records its latency in *into,
// or its error under what.
func (p *probe) timed(what string, into *[]time.Duration, f func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs[what+":"+errorCode(err)]++
		return
	}
	*into = append(*into, time.Since(start))
}

func (p *probe) pingAndSend(seq int) {
	p.timed("ping", &p.ping, p.sender.Ping)
	p.timed("send", &p.send, func(ctx context.Context) error {
		_, err := p.sender.Send(ctx, userName(1), fmt.Sprintf("probe %d", seq))
		return err
	})
}

func (p *probe) newLogin(int) {
	p.timed("login", &p.login, func(ctx context.Context) error {
		c, err := client.Dial(ctx, p.cfg.firstAddr(), dialOptions(p.cfg))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Login(ctx, userName(1), p.cfg.Password)
		return err
	})
}

// finish stops the probe and puts its figures into a.
func (p *probe) finish(a *AttackResult) {
	close(p.stop)
	p.done.Wait()
	p.sender.Close()
	p.recv.Close()
	a.ProbePing = summarize(p.ping, "probe ping round trip")
	a.ProbeSend = summarize(p.send, "probe send until its ok")
	a.ProbeLogin = summarize(p.login, "new connection: dial, hello and login")
	a.ProbeErrors = p.errs
}

// runAttack runs conns, slowloris or regflood.
func runAttack(ctx context.Context, cfg Config, res *Result) error {
	a := &AttackResult{Attempts: cfg.Conns, PerAddr: cfg.PerAddr, Addrs: (cfg.Conns + cfg.PerAddr - 1) / cfg.PerAddr}
	res.Attack = a
	raiseOpenFiles(uint64(cfg.Conns) + 4096)
	p, err := startProbe(ctx, cfg)
	if err != nil {
		return err
	}
	// A few seconds of the probe alone, for comparison in the log.
	sleep(ctx, cfg.Warmup)
	if cfg.Scenario == "regflood" {
		err = regflood(ctx, cfg, a)
	} else {
		err = holdConns(ctx, cfg, a)
	}
	if len(cfg.QQDPIDs) > 0 {
		for _, pid := range cfg.QQDPIDs {
			a.Peaks = append(a.Peaks, readPeaks(pid)...)
		}
		a.RSSAtEnd = rssOf(cfg)
	}
	p.finish(a)
	return err
}

// holdConns opens cfg.Conns connections that never log in (slowloris:
// that send a login frame one byte a second), holds them for
// cfg.Duration and records when qqd closes them.
func holdConns(ctx context.Context, cfg Config, a *AttackResult) error {
	var (
		mu      sync.Mutex
		closed  []time.Duration
		sent    atomic.Int64
		conns   = make([]net.Conn, cfg.Conns)
		readers sync.WaitGroup
	)
	stop := make(chan struct{})
	frame := []byte(`{"type":"login","id":1,"user":"u0","password":"` + strings.Repeat("x", 1<<20))
	start := time.Now()
	forEachOn(ctx, cfg.Conns, 256, func(ctx context.Context, i int) error {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: attackAddr(i, cfg.PerAddr, cfg.FirstAddr)}}
		c, err := d.DialContext(ctx, "tcp", cfg.firstAddr())
		if err != nil {
			mu.Lock()
			a.DialFailed++
			mu.Unlock()
			return nil
		}
		dialed := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		c.SetReadDeadline(time.Time{})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && strings.Contains(line, `"type":"hello"`):
			a.Established++
		case strings.Contains(line, string(protocol.TypeKicked)):
			a.Refused++
			c.Close()
			return nil
		default:
			a.DialFailed++
			c.Close()
			return nil
		}
		conns[i] = c
		readers.Add(1)
		go func() { // qqd's close ends the read
			defer readers.Done()
			io.Copy(io.Discard, br)
			mu.Lock()
			select {
			case <-stop:
			default:
				a.ClosedByQQD++
				closed = append(closed, time.Since(dialed))
			}
			mu.Unlock()
		}()
		if cfg.Scenario == "slowloris" {
			readers.Add(1)
			go func() {
				defer readers.Done()
				t := time.NewTicker(time.Second)
				defer t.Stop()
				for k := 0; k < len(frame); k++ {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write(frame[k : k+1]); err != nil {
						return
					}
					sent.Add(1)
				}
			}()
		}
		return nil
	})
	a.OpenSeconds = time.Since(start).Seconds()
	sleep(ctx, cfg.Duration)
	mu.Lock()
	close(stop)
	mu.Unlock()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	readers.Wait()
	a.ClosedAfter = summarize(closed, "dial until qqd closed the connection")
	a.BytesSent = sent.Load()
	return nil
}

// regflood registers cfg.Conns accounts flood-<run>-<i>, cfg.PerAddr
// from each source address, cfg.Window at a time.
func regflood(ctx context.Context, cfg Config, a *AttackResult) error {
	var mu sync.Mutex
	var lat []time.Duration
	a.Registrations = map[string]int64{}
	run := runID()
	start := time.Now()
	forEachOn(ctx, cfg.Conns, cfg.Window, func(ctx context.Context, i int) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		t0 := time.Now()
		code := "ok"
		opts := dialOptions(cfg)
		opts.Dialer = &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: attackAddr(i, cfg.PerAddr, cfg.FirstAddr)}}
		c, err := client.Dial(cctx, cfg.firstAddr(), opts)
		if err == nil {
			err = c.Register(cctx, fmt.Sprintf("flood-%s-%d", run, i), cfg.Password)
			c.Close()
		}
		if err != nil {
			code = errorCode(err)
		}
		mu.Lock()
		a.Registrations[code]++
		if err == nil {
			lat = append(lat, time.Since(t0))
		}
		mu.Unlock()
		return nil
	})
	a.RegisterSeconds = time.Since(start).Seconds()
	l := summarize(lat, "dial, hello and register, ok ones")
	a.RegisterLatency = &l
	return nil
}

// writeSummary writes a's figures for a person.
func (a *AttackResult) writeSummary(w io.Writer, scenario string) {
	if scenario == "regflood" {
		fmt.Fprintf(w, "  %d registrations from %d source addresses (%d each) in %.1f s: %v\n",
			a.Attempts, a.Addrs, a.PerAddr, a.RegisterSeconds, a.Registrations)
		if l := a.RegisterLatency; l != nil && l.Count > 0 {
			fmt.Fprintf(w, "  ok registrations: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", l.P50, l.P99, l.Max)
		}
	} else {
		fmt.Fprintf(w, "  %d connections from %d source addresses (%d each) opened in %.1f s: %d established, %d refused by a limit, %d failed\n",
			a.Attempts, a.Addrs, a.PerAddr, a.OpenSeconds, a.Established, a.Refused, a.DialFailed)
		fmt.Fprintf(w, "  closed by qqd during the hold: %d, after p50 %.1f s, max %.1f s; bytes sent %d\n",
			a.ClosedByQQD, a.ClosedAfter.P50/1000, a.ClosedAfter.Max/1000, a.BytesSent)
	}
	for _, l := range []Latency{a.ProbePing, a.ProbeSend, a.ProbeLogin} {
		fmt.Fprintf(w, "  %s: %d ok, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", l.Source, l.Count, l.P50, l.P99, l.Max)
	}
	if len(a.ProbeErrors) > 0 {
		fmt.Fprintf(w, "  probe errors: %v\n", a.ProbeErrors)
	}
	for _, p := range a.Peaks {
		fmt.Fprintf(w, "  peak memory (VmHWM) pid %d %-24s %s\n", p.PID, p.Cmd, mib(p.PeakBytes))
	}
	if a.RSSAtEnd > 0 {
		fmt.Fprintf(w, "  qqd RSS at the end of the attack: %s\n", mib(a.RSSAtEnd))
	}
}
