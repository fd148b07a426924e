package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// The call mix of the history scenario.
const (
	historyLimit = 50  // messages asked per history call
	offlineLimit = 100 // messages asked per offline call
	// offlineShare of the calls are offline (no ack, so the queue stays
	// as fill left it), the others history.
	offlineShare = 0.2
	// pageShare of the history calls, when the user's last history page
	// had older messages, fetch the page before it (before = its oldest
	// id) instead of the newest page of a random peer.
	pageShare = 0.25
)

// callKind names a call of the history scenario.
type callKind int

const (
	callHistory callKind = iota
	callOffline
)

func (k callKind) String() string { return [...]string{"history", "offline"}[k] }

// HistoryResult is the history scenario's figures.
type HistoryResult struct {
	Mode   string  `json:"mode"` // open or closed loop
	Rate   float64 `json:"rate,omitempty"`
	Window int     `json:"window,omitempty"`
	// Calls counts the measured calls answered ok, CallsPerSec divides it
	// by the measured duration.
	Calls       int64   `json:"calls"`
	CallsPerSec float64 `json:"calls_per_s"`
	History     Latency `json:"history"`
	Offline     Latency `json:"offline"`
	// Paged counts the measured history calls that paged back (before set).
	Paged int64 `json:"paged"`
	// HistoryMsgs and OfflineMsgs are the mean messages per measured call.
	HistoryMsgs float64 `json:"history_msgs_per_call"`
	OfflineMsgs float64 `json:"offline_msgs_per_call"`
	CPUPer1000  float64 `json:"cpu_s_per_1000_calls,omitempty"`
}

// histUser is one logged-in user of the history scenario.
type histUser struct {
	i int
	c *client.Client

	mu           sync.Mutex
	peer, before string // where the last history page with more ended
}

// histStats collects the calls of a history run.
type histStats struct {
	lat   [2]*tracker // latencies of measured calls (in lat), by callKind
	errs  *tracker    // errors of all calls, as "<call>_<code>"
	msgs  [2]atomic.Int64
	calls [2]atomic.Int64 // measured calls answered ok
	paged atomic.Int64
	done  atomic.Int64 // all calls answered ok, for the progress line
}

// sample records one latency.
func (t *tracker) sample(d time.Duration) {
	t.mu.Lock()
	t.lat = append(t.lat, d)
	t.mu.Unlock()
}

// pick chooses the next call of u.
func (u *histUser) pick(users int, rng *rand.Rand) (k callKind, peer, before string) {
	if rng.Float64() < offlineShare {
		return callOffline, "", ""
	}
	u.mu.Lock()
	peer, before = u.peer, u.before
	u.mu.Unlock()
	if before != "" && rng.Float64() < pageShare {
		return callHistory, peer, before
	}
	j := rng.IntN(users - 1)
	if j >= u.i {
		j++
	}
	return callHistory, userName(j), ""
}

// call makes one call of u; sched is when it was due, counted whether it
// falls in the measured window.
func (u *histUser) call(ctx context.Context, s *histStats, k callKind, peer, before string, sched time.Time, counted bool) {
	var msgs []protocol.Message
	var more bool
	var err error
	if k == callOffline {
		msgs, _, err = u.c.Offline(ctx, offlineLimit)
	} else {
		msgs, more, err = u.c.History(ctx, peer, before, historyLimit)
	}
	lat := time.Since(sched)
	if k == callHistory && err == nil {
		u.mu.Lock()
		if more && len(msgs) > 0 {
			u.peer, u.before = peer, msgs[0].ID // oldest first
		} else if u.peer == peer {
			u.peer, u.before = "", ""
		}
		u.mu.Unlock()
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Not answered by the end of the drain (or interrupted).
		s.errs.errorf(k.String() + "_unanswered")
		return
	case err != nil:
		s.errs.errorf(k.String() + "_" + errorCode(err))
		return
	}
	s.done.Add(1)
	if !counted {
		return
	}
	s.lat[k].sample(lat)
	s.calls[k].Add(1)
	s.msgs[k].Add(int64(len(msgs)))
	if before != "" {
		s.paged.Add(1)
	}
}

// runHistory times history and offline calls of cfg.Users logged-in
// users, on the data already stored (see fill).
func runHistory(ctx context.Context, cfg Config, res *Result) error {
	if cfg.Register {
		if err := registerUsers(ctx, cfg, cfg.Users); err != nil {
			return err
		}
	}
	cs, _, err := loginUsers(ctx, cfg, names(cfg.Users))
	if err != nil {
		return err
	}
	defer closeAll(cs)
	users := make([]*histUser, len(cs))
	for i, c := range cs {
		users[i] = &histUser{i: i, c: c}
	}
	s := &histStats{lat: [2]*tracker{newTracker(), newTracker()}, errs: newTracker()}
	hr := &HistoryResult{}
	res.History = hr

	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	end := measureStart.Add(cfg.Duration)
	callCtx, cancelCalls := context.WithDeadline(ctx, end.Add(cfg.Drain))
	defer cancelCalls()

	win := startCPUWindow(cfg)
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go histProgress(cfg.Progress, s, start, end, progressDone)
	}

	if cfg.Rate > 0 {
		hr.Mode, hr.Rate = "open", cfg.Rate
	} else {
		hr.Mode, hr.Window = "closed", cfg.Window
	}
	ids := make([]int, len(users))
	for i := range ids {
		ids[i] = i
	}
	drive(callCtx, cfg, ids, start, end, func(i int) bool { return users[i].c.Err() != nil },
		func(i int, _ int64, rng *rand.Rand) func(time.Time) {
			u := users[i]
			k, peer, bef := u.pick(len(users), rng)
			return func(sched time.Time) {
				u.call(callCtx, s, k, peer, bef, sched, !sched.Before(measureStart))
			}
		})
	close(progressDone)
	win.end(res)

	for k, l := range []*Latency{&hr.History, &hr.Offline} {
		t := s.lat[k]
		t.mu.Lock()
		*l = summarize(t.lat, map[bool]string{true: "scheduled call time", false: "call"}[cfg.Rate > 0])
		t.mu.Unlock()
	}
	nh, no := s.calls[callHistory].Load(), s.calls[callOffline].Load()
	hr.Calls = nh + no
	hr.CallsPerSec = float64(hr.Calls) / cfg.Duration.Seconds()
	hr.Paged = s.paged.Load()
	if nh > 0 {
		hr.HistoryMsgs = float64(s.msgs[callHistory].Load()) / float64(nh)
	}
	if no > 0 {
		hr.OfflineMsgs = float64(s.msgs[callOffline].Load()) / float64(no)
	}
	res.finish(s.errs)
	if res.Procs != nil && hr.Calls > 0 {
		hr.CPUPer1000 = res.CPUSeconds / float64(hr.Calls) * 1000
	}
	return nil
}

// histProgress prints a progress line every 5 s until done is closed.
func histProgress(w io.Writer, s *histStats, start, end time.Time, done <-chan struct{}) {
	every5s(w, start, done, s.done.Load, func(now time.Time, n int64, rate float64) string {
		_, _, errs := s.errs.snapshot()
		return fmt.Sprintf("qqbench: t=%4.0fs/%.0fs calls=%d (%.0f calls/s) errors=%d",
			now.Sub(start).Seconds(), end.Sub(start).Seconds(), n, rate, errs)
	})
}

// writeSummary writes the history lines of a summary.
func (h *HistoryResult) writeSummary(w io.Writer, r *Result) {
	if h.Mode == "open" {
		fmt.Fprintf(w, "  open loop at %.0f calls/s total", h.Rate)
	} else {
		fmt.Fprintf(w, "  closed loop, window %d per user", h.Window)
	}
	fmt.Fprintf(w, "; %.0f%% offline (limit %d), the rest history (limit %d, %.0f%% paging back when older messages exist)\n",
		offlineShare*100, offlineLimit, historyLimit, pageShare*100)
	fmt.Fprintf(w, "  calls answered ok: %d (%.0f calls/s); history %d (%d paged, %.1f msgs/call), offline %d (%.1f msgs/call)\n",
		h.Calls, h.CallsPerSec, h.History.Count, h.Paged, h.HistoryMsgs, h.Offline.Count, h.OfflineMsgs)
	for _, l := range []struct {
		name string
		l    Latency
	}{{"history", h.History}, {"offline", h.Offline}} {
		if l.l.Count > 0 {
			fmt.Fprintf(w, "  %s latency (from %s): p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, mean %.2f ms\n",
				l.name, l.l.Source, l.l.P50, l.l.P99, l.l.P999, l.l.Max, l.l.Mean)
		}
	}
	if len(r.Procs) > 0 {
		fmt.Fprintf(w, "  qqd + plugins CPU: %.2f s in the measured window, %.3f CPU-s per 1,000 calls\n", r.CPUSeconds, h.CPUPer1000)
	}
}
