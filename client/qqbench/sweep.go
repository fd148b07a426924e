package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qqchat/qq/client"
)

// SweepConfig holds the flags of the sweep scenario.
type SweepConfig struct {
	From     float64       // first offered rate, msg/s
	Step     float64       // added to the rate after each step, unless Factor is set
	Factor   float64       // if set (> 1), multiplies the rate after each step instead
	To       float64       // highest rate to try; 0 means until saturation
	MaxSteps int           // at most this many steps
	MaxP99   time.Duration // a step with a higher p99 is saturated
	CSV      string        // file for one CSV row per step; "" for none
	SVG      string        // file for the latency chart; "" for none
}

// DefaultSweepConfig returns the sweep flag defaults.
func DefaultSweepConfig() SweepConfig {
	return SweepConfig{From: 1000, Step: 1000, MaxSteps: 20, MaxP99: time.Second}
}

func registerSweepFlags(fs *flag.FlagSet, s *SweepConfig) {
	fs.Float64Var(&s.From, "from", s.From, "sweep: first offered rate in msg/s")
	fs.Float64Var(&s.Step, "step", s.Step, "sweep: add this to the rate after each step")
	fs.Float64Var(&s.Factor, "factor", s.Factor, "sweep: multiply the rate by this (> 1) after each step instead of adding --step")
	fs.Float64Var(&s.To, "to", s.To, "sweep: highest rate to try in msg/s (0: until saturation)")
	fs.IntVar(&s.MaxSteps, "max-steps", s.MaxSteps, "sweep: at most this many steps")
	fs.DurationVar(&s.MaxP99, "max-p99", s.MaxP99, "sweep: a step whose p99 latency exceeds this is saturated")
	fs.StringVar(&s.CSV, "csv", s.CSV, "sweep: write one CSV row per step to this file")
	fs.StringVar(&s.SVG, "svg", s.SVG, "sweep: draw p50/p99 latency against delivered rate into this SVG file")
}

func (s SweepConfig) validate() error {
	switch {
	case s.From <= 0:
		return errors.New("--from must be > 0")
	case s.Factor != 0 && s.Factor <= 1:
		return errors.New("--factor must be > 1 (or 0 to add --step)")
	case s.Factor == 0 && s.Step <= 0:
		return errors.New("--step must be > 0")
	case s.To != 0 && s.To < s.From:
		return errors.New("--to must be 0 or >= --from")
	case s.MaxSteps < 1:
		return errors.New("--max-steps must be >= 1")
	case s.MaxP99 <= 0:
		return errors.New("--max-p99 must be > 0")
	}
	return nil
}

// rates returns the offered rates of the steps: From, then adding Step
// (or multiplying by Factor, rounded to whole msg/s and at least +1), up
// to To and at most MaxSteps of them.
func (s SweepConfig) rates() []float64 {
	var out []float64
	r := s.From
	for len(out) < s.MaxSteps && (s.To == 0 || r <= s.To) {
		out = append(out, r)
		if s.Factor > 0 {
			r = max(math.Round(r*s.Factor), r+1)
		} else {
			r = s.From + float64(len(out))*s.Step // no accumulated rounding
		}
	}
	return out
}

// toLimited reports whether To, not MaxSteps, ends rates().
func (s SweepConfig) toLimited() bool {
	more := s
	more.MaxSteps++
	return len(more.rates()) == len(s.rates())
}

// The saturation rule: a step is saturated if any of these holds; the
// sweep stops after the first saturated step (docs/performance.md).
const (
	// minDeliveredShare: delivered msg/s below this share of the offered rate.
	minDeliveredShare = 0.90
	// maxFailedShare: errors + unanswered + lost above this share of the
	// messages offered in the step (warm-up included, as errors and lost
	// count warm-up sends too).
	maxFailedShare = 0.001
)

// saturation returns why st counts as saturated, or "" if it does not.
// window is the step's warm-up plus measured duration.
func (s SweepConfig) saturation(st SweepStep, window time.Duration) string {
	var why []string
	if st.DeliveredPerSec < minDeliveredShare*st.OfferedRate {
		why = append(why, fmt.Sprintf("delivered %s msg/s < 90%% of offered", fmtNum(math.Round(st.DeliveredPerSec))))
	}
	if limit := float64(s.MaxP99.Microseconds()) / 1000; st.P99 > limit {
		why = append(why, fmt.Sprintf("p99 %.1f ms > --max-p99 %s", st.P99, s.MaxP99))
	}
	offered := st.OfferedRate * window.Seconds()
	if failed := st.Errors + st.Lost; float64(failed) > maxFailedShare*offered {
		why = append(why, fmt.Sprintf("errors+lost %d > 0.1%% of %.0f offered", failed, offered))
	}
	if st.ClosedConns > 0 {
		why = append(why, fmt.Sprintf("%d connections closed", st.ClosedConns))
	}
	return strings.Join(why, "; ")
}

// SweepStep is what one step of a sweep measured.
type SweepStep struct {
	OfferedRate     float64 `json:"offered_rate"` // msg/s
	Sent            int64   `json:"sent"`         // measured sends answered ok
	Delivered       int64   `json:"delivered"`    // measured pushes received
	DeliveredPerSec float64 `json:"delivered_per_s"`
	Samples         int     `json:"samples"` // latency samples (= Delivered)
	P50             float64 `json:"p50_ms"`  // one-way, from the scheduled send time
	P99             float64 `json:"p99_ms"`
	P999            float64 `json:"p999_ms"`
	Max             float64 `json:"max_ms"`
	Lost            int64   `json:"lost"`
	// Errors counts failed sends and acks and sends unanswered by the end
	// of the drain (ErrorCodes["unanswered"]).
	Errors      int64            `json:"errors"`
	ErrorCodes  map[string]int64 `json:"error_codes,omitempty"`
	Duplicates  int64            `json:"duplicates"`
	ClosedConns int              `json:"closed_conns,omitempty"` // users whose connection ended
	// CPUUsPerMsg is qqd's and its plugins' CPU time per delivered
	// message in µs; nil without --qqd-pid or deliveries.
	CPUUsPerMsg *float64 `json:"cpu_us_per_msg,omitempty"`
	QQDRSSBytes int64    `json:"qqd_rss_bytes,omitempty"` // qqd's own RSS after the step
	Saturated   string   `json:"saturated,omitempty"`     // why the step is saturated
}

// SweepResult is a whole sweep; it is printed as one JSON line.
type SweepResult struct {
	Scenario  string      `json:"scenario"` // "sweep"
	Addr      string      `json:"addr"`
	Users     int         `json:"users"`
	BodyBytes int         `json:"body_bytes"`
	DurationS float64     `json:"duration_s"` // measured, per step
	WarmupS   float64     `json:"warmup_s"`   // per step
	From      float64     `json:"from"`
	Step      float64     `json:"step,omitempty"`
	Factor    float64     `json:"factor,omitempty"`
	To        float64     `json:"to,omitempty"`
	MaxSteps  int         `json:"max_steps"`
	MaxP99Ms  float64     `json:"max_p99_ms"`
	Steps     []SweepStep `json:"steps"`
	Saturated bool        `json:"saturated"`
	Stop      string      `json:"stop"` // why the sweep ended
	Hint      string      `json:"hint,omitempty"`
}

func newSweepResult(cfg Config) *SweepResult {
	s := cfg.Sweep
	r := &SweepResult{Scenario: "sweep", Addr: cfg.Addr, Users: cfg.Users, BodyBytes: cfg.BodyBytes,
		DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(), From: s.From, Factor: s.Factor,
		To: s.To, MaxSteps: s.MaxSteps, MaxP99Ms: float64(s.MaxP99.Microseconds()) / 1000, Steps: []SweepStep{}}
	if s.Factor == 0 {
		r.Step = s.Step
	}
	return r
}

// RunSweep runs open-loop dm traffic at each rate of cfg.Sweep.rates() on
// users logged in once, until a step is saturated, and rewrites the CSV
// and SVG files after every step. It writes one line per step to
// progress (if not nil). If ctx ends, it drops the unfinished step and
// returns what it has with Stop "interrupted".
func RunSweep(ctx context.Context, cfg Config, progress io.Writer) (*SweepResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkPIDs(map[string][]int{"qqd-pid": cfg.QQDPIDs, "pg-pid": cfg.PGPIDs, "nats-pid": cfg.NATSPIDs}); err != nil {
		return nil, err
	}
	r := newSweepResult(cfg)
	if err := r.writeFiles(cfg.Sweep); err != nil { // fail on bad paths before the run
		return nil, err
	}
	setupCtx, cancel := context.WithTimeout(ctx, setupTimeout)
	cs, err := loginTraffic(setupCtx, cfg)
	cancel()
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)

	rates := cfg.Sweep.rates()
	for i, rate := range rates {
		st, res, err := sweepStep(ctx, cfg, cs, rate)
		if ctx.Err() != nil {
			r.Stop = "interrupted"
			break
		}
		if err != nil {
			return nil, fmt.Errorf("step at %s msg/s: %w", fmtNum(rate), err)
		}
		r.Steps = append(r.Steps, st)
		if res.Hint != "" {
			r.Hint = res.Hint
		}
		if progress != nil {
			fmt.Fprintf(progress, "qqbench: sweep step %d/%d: %s\n", i+1, len(rates), st.line())
		}
		if st.Saturated != "" {
			r.Saturated = true
			r.Stop = fmt.Sprintf("saturated at %s msg/s offered: %s", fmtNum(rate), st.Saturated)
		} else if i == len(rates)-1 {
			if cfg.Sweep.toLimited() {
				r.Stop = fmt.Sprintf("reached --to %s msg/s without saturating", fmtNum(cfg.Sweep.To))
			} else {
				r.Stop = fmt.Sprintf("reached --max-steps %d without saturating", cfg.Sweep.MaxSteps)
			}
		}
		if err := r.writeFiles(cfg.Sweep); err != nil {
			return nil, err
		}
		if r.Saturated {
			break
		}
	}
	return r, r.writeFiles(cfg.Sweep)
}

// sweepStep runs one step of open-loop dm traffic at rate on cs.
func sweepStep(ctx context.Context, cfg Config, cs []*client.Client, rate float64) (SweepStep, *Result, error) {
	c := cfg
	c.Scenario, c.Rate, c.Progress = "dm", rate, nil
	ctx, cancel := context.WithTimeout(ctx, c.Warmup+c.Duration+2*c.Drain+10*time.Second)
	defer cancel()
	res := newResult(c)
	if err := trafficOn(ctx, c, cs, res); err != nil {
		return SweepStep{}, nil, err
	}
	closed := 0
	for _, cl := range cs {
		if cl.Err() != nil {
			closed++
		}
	}
	st := stepOf(rate, res, closed)
	st.Saturated = cfg.Sweep.saturation(st, c.Warmup+c.Duration)
	return st, res, nil
}

// stepOf extracts a sweep step from the result of one open-loop run.
func stepOf(rate float64, res *Result, closed int) SweepStep {
	st := SweepStep{OfferedRate: rate, Sent: res.Sent, Delivered: res.Delivered, DeliveredPerSec: res.DeliveredPerSec,
		Lost: res.Lost, Duplicates: res.Duplicates, ClosedConns: closed, ErrorCodes: maps(res.Errors)}
	if res.Unanswered > 0 {
		st.ErrorCodes["unanswered"] += res.Unanswered
	}
	for _, n := range st.ErrorCodes {
		st.Errors += n
	}
	if len(st.ErrorCodes) == 0 {
		st.ErrorCodes = nil
	}
	if l := res.Latency; l != nil {
		st.Samples, st.P50, st.P99, st.P999, st.Max = l.Count, l.P50, l.P99, l.P999, l.Max
	}
	if len(res.Procs) > 0 {
		st.QQDRSSBytes = res.Procs[0].RSSBytes // ReadProcTree puts qqd first
		if res.Delivered > 0 {
			us := res.CPUSeconds / float64(res.Delivered) * 1e6
			st.CPUUsPerMsg = &us
		}
	}
	return st
}

// line is the one-line human summary of st.
func (st SweepStep) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "offered %s msg/s, delivered %s msg/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, lost %d, errors %d",
		fmtNum(st.OfferedRate), fmtNum(math.Round(st.DeliveredPerSec)), st.P50, st.P99, st.P999, st.Max, st.Lost, st.Errors)
	if st.Errors > 0 {
		fmt.Fprintf(&b, " (%s)", st.errorCodes())
	}
	if st.CPUUsPerMsg != nil {
		fmt.Fprintf(&b, ", CPU %.0f µs/msg", *st.CPUUsPerMsg)
	}
	if st.QQDRSSBytes > 0 {
		fmt.Fprintf(&b, ", qqd RSS %s", mib(st.QQDRSSBytes))
	}
	if st.Saturated != "" {
		fmt.Fprintf(&b, ": saturated (%s)", st.Saturated)
	}
	return b.String()
}

// WriteSummary writes a human summary of r: a header and a table with one
// row per step.
func (r *SweepResult) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "qqbench sweep against %s: dm open loop, %d users, %d-byte bodies, %s measured per step after %s warm-up\n",
		r.Addr, r.Users, r.BodyBytes, seconds(r.DurationS), seconds(r.WarmupS))
	fmt.Fprintf(w, "  %d steps; stopped: %s\n", len(r.Steps), r.Stop)
	if len(r.Steps) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "offered/s\tdelivered/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tlost\terrors\tCPU µs/msg\tqqd RSS\t")
		for _, st := range r.Steps {
			cpu, rss := "-", "-"
			if st.CPUUsPerMsg != nil {
				cpu = fmt.Sprintf("%.0f", *st.CPUUsPerMsg)
			}
			if st.QQDRSSBytes > 0 {
				rss = mib(st.QQDRSSBytes)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t%s\t\n", fmtNum(st.OfferedRate),
				fmtNum(math.Round(st.DeliveredPerSec)), st.P50, st.P99, st.P999, st.Max, st.Lost, st.Errors, cpu, rss)
		}
		tw.Flush()
	}
	if r.Hint != "" {
		fmt.Fprintf(w, "  %s\n", r.Hint)
	}
}

// WriteJSON writes r as one JSON line.
func (r *SweepResult) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// sweepCSVHeader is the header line of the CSV; its order is the contract
// of the file.
var sweepCSVHeader = []string{"offered_rate", "delivered_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms",
	"lost", "errors", "cpu_us_per_msg", "qqd_rss_bytes"}

// WriteCSV writes a header line and one row per step. cpu_us_per_msg and
// qqd_rss_bytes are empty when not measured (no --qqd-pid).
func (r *SweepResult) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(sweepCSVHeader)
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	for _, st := range r.Steps {
		cpu, rss := "", ""
		if st.CPUUsPerMsg != nil {
			cpu = f(*st.CPUUsPerMsg, 1)
		}
		if st.QQDRSSBytes > 0 {
			rss = strconv.FormatInt(st.QQDRSSBytes, 10)
		}
		cw.Write([]string{f(st.OfferedRate, -1), f(st.DeliveredPerSec, 1), f(st.P50, 3), f(st.P99, 3), f(st.P999, 3),
			f(st.Max, 3), strconv.FormatInt(st.Lost, 10), strconv.FormatInt(st.Errors, 10), cpu, rss})
	}
	cw.Flush()
	return cw.Error()
}

// writeFiles (re)writes the CSV and SVG files that s names.
func (r *SweepResult) writeFiles(s SweepConfig) error {
	for _, o := range []struct {
		flag, path string
		write      func(io.Writer) error
	}{{"--csv", s.CSV, r.WriteCSV}, {"--svg", s.SVG, r.WriteSVG}} {
		if o.path == "" {
			continue
		}
		var b bytes.Buffer
		if err := o.write(&b); err != nil {
			return fmt.Errorf("%s: %w", o.flag, err)
		}
		if err := os.WriteFile(o.path, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("%s: %w", o.flag, err)
		}
	}
	return nil
}

// runSweepCmd runs the sweep scenario for run: progress lines on stderr,
// then the table (unless cfg.JSON) and the JSON line on stdout.
func runSweepCmd(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	r, err := RunSweep(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if !cfg.JSON {
		r.WriteSummary(stdout)
	}
	if err := r.WriteJSON(stdout); err != nil {
		return err
	}
	if r.Stop == "interrupted" {
		return fmt.Errorf("sweep interrupted after %d steps", len(r.Steps))
	}
	return nil
}

// fmtNum formats v for people: whole numbers with thousands separators
// ("12,500"), others as they are.
func fmtNum(v float64) string {
	if v != math.Trunc(v) || math.Abs(v) >= 1e15 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return thousands(int64(v))
}

// thousands formats n with a comma every three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// errorCodes returns the error codes of st in order, as "code=n".
func (st SweepStep) errorCodes() string {
	keys := make([]string, 0, len(st.ErrorCodes))
	for k := range st.ErrorCodes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, st.ErrorCodes[k])
	}
	return strings.Join(parts, " ")
}
