package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// The report command: `qqbench report [--format md|csv] FILE...` reads the
// JSON result lines of many runs (as printed by qqbench --json, possibly
// with other output around them) and prints, per run label, the median
// and the min–max spread of each figure over the runs. docs/performance.md
// ("Reproduce everything: make perf") shows it in use.

// labelWriter passes lines through to w and makes "label" the first key of
// every line that is a JSON object. run wraps stdout in it for --label, so
// that every result line (dm, idle, sweep, fill, ...) carries the label
// without each result type having a field for it.
type labelWriter struct {
	w   io.Writer
	key []byte // `"label":"..."`, to insert after the "{"
	buf []byte // an incomplete line
}

func newLabelWriter(w io.Writer, label string) *labelWriter {
	k, _ := json.Marshal(label) // a string always marshals
	return &labelWriter{w: w, key: append([]byte(`"label":`), k...)}
}

// Write writes the complete lines of p (and earlier writes) to w.
func (lw *labelWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := lw.w.Write(lw.labeled(lw.buf[:i+1])); err != nil {
			return len(p), err
		}
		lw.buf = append(lw.buf[:0], lw.buf[i+1:]...)
	}
}

// Flush writes what is left of an incomplete last line.
func (lw *labelWriter) Flush() error {
	if len(lw.buf) == 0 {
		return nil
	}
	_, err := lw.w.Write(lw.labeled(lw.buf))
	lw.buf = lw.buf[:0]
	return err
}

// labeled returns line with the label added if it is a JSON object.
func (lw *labelWriter) labeled(line []byte) []byte {
	obj := bytes.TrimSpace(line)
	if len(obj) < 2 || obj[0] != '{' || !json.Valid(obj) {
		return line
	}
	lead := len(line) - len(bytes.TrimLeftFunc(line, unicode.IsSpace))
	out := make([]byte, 0, len(line)+len(lw.key)+1)
	out = append(out, line[:lead]...)
	out = append(out, '{')
	out = append(out, lw.key...)
	if rest := bytes.TrimSpace(obj[1:]); rest[0] != '}' { // not {}
		out = append(out, ',')
	}
	out = append(out, obj[1:]...)
	return append(out, line[lead+len(obj):]...) // the line end
}

// runReport runs `qqbench report`.
func runReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("qqbench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "md", "output format: md (Markdown tables) or csv (label,scenario,metric,runs,median,min,max)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: qqbench report [--format md|csv] FILE... (- for stdin)\n\n"+
			"Reads qqbench JSON result lines and prints, per --label (or, without one, per\n"+
			"scenario, mode and users), the median and min–max over the runs.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "md" && *format != "csv" {
		return fmt.Errorf("report: --format %q: want md or csv", *format)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("report: no files")
	}
	var runs []reportRun
	for _, name := range fs.Args() {
		rs, err := readReportFile(name, stderr)
		if err != nil {
			return err
		}
		runs = append(runs, rs...)
	}
	if len(runs) == 0 {
		return errors.New("report: no result lines in the input")
	}
	groups := groupRuns(runs)
	if *format == "csv" {
		return writeReportCSV(stdout, groups)
	}
	writeReportMarkdown(stdout, groups)
	return nil
}

func readReportFile(name string, stderr io.Writer) ([]reportRun, error) {
	if name == "-" {
		return readReport(os.Stdin, "stdin", stderr)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	return readReport(f, name, stderr)
}

// reportRun is one result line.
type reportRun struct {
	Label    string
	Scenario string
	Result   *Result      // every scenario but sweep
	Sweep    *SweepResult // sweep
}

// readReport reads the result lines of r. Lines that do not start with
// "{" (human summaries, progress) are skipped; JSON objects without a
// scenario (fill results) are skipped with a note on stderr; a line that
// starts with "{" but is not valid JSON is an error.
func readReport(r io.Reader, name string, stderr io.Writer) ([]reportRun, error) {
	var runs []reportRun
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<20) // a sweep line holds every step
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var head struct {
			Label    string `json:"label"`
			Scenario string `json:"scenario"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return nil, fmt.Errorf("report: %s:%d: %w", name, n, err)
		}
		run := reportRun{Label: head.Label, Scenario: head.Scenario}
		var err error
		switch head.Scenario {
		case "":
			fmt.Fprintf(stderr, "qqbench report: %s:%d: skipped: no scenario (a fill result?)\n", name, n)
			continue
		case "sweep":
			run.Sweep = &SweepResult{}
			err = json.Unmarshal(line, run.Sweep)
		default:
			run.Result = &Result{}
			if err = json.Unmarshal(line, run.Result); err == nil {
				err = run.Result.checkFigures()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("report: %s:%d: %w", name, n, err)
		}
		if run.Label == "" {
			run.Label = defaultLabel(run)
		}
		runs = append(runs, run)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("report: %s: %w", name, err)
	}
	return runs, nil
}

// checkFigures returns an error if r lacks the figures its scenario has.
func (r *Result) checkFigures() error {
	missing := ""
	switch {
	case r.Scenario == "idle" && r.Idle == nil:
		missing = "idle"
	case r.Scenario == "group" && r.Group == nil:
		missing = "group"
	case r.Scenario == "offline" && r.Offline == nil:
		missing = "offline"
	case r.Scenario == "history" && r.History == nil:
		missing = "history"
	}
	if missing != "" {
		return fmt.Errorf("%s result without its %q figures", r.Scenario, missing)
	}
	return nil
}

// defaultLabel names a run without --label by its scenario, mode and
// users, e.g. "dm-closed-w8-c1000" or "dm-open-r20000-c1000", with "-ws"
// after it for a run over the WebSocket gateway.
func defaultLabel(r reportRun) string {
	if s := r.Sweep; s != nil {
		return fmt.Sprintf("sweep-from%g-c%d", s.From, s.Users)
	}
	if t := r.Result.Transport; t != "" {
		return defaultResultLabel(r.Result) + "-" + t
	}
	return defaultResultLabel(r.Result)
}

func defaultResultLabel(rr *Result) string {
	loop := func(mode string, rate float64, window int) string {
		if mode == "open" {
			return fmt.Sprintf("%s-open-r%g-c%d", rr.Scenario, rate, rr.Users)
		}
		return fmt.Sprintf("%s-closed-w%d-c%d", rr.Scenario, window, rr.Users)
	}
	switch {
	case rr.Idle != nil:
		return fmt.Sprintf("idle-c%d", rr.Users)
	case rr.Offline != nil:
		return fmt.Sprintf("offline-m%d", rr.Offline.Queued)
	case rr.History != nil:
		return loop(rr.History.Mode, rr.History.Rate, rr.History.Window)
	case rr.Group != nil:
		return fmt.Sprintf("group-m%d-", rr.Group.Members) + loop(rr.Mode, rr.Rate, rr.Window)[len("group-"):]
	case rr.Mode != "":
		return loop(rr.Mode, rr.Rate, rr.Window)
	}
	return fmt.Sprintf("%s-c%d", rr.Scenario, rr.Users)
}

// reportGroup is the runs of one label and scenario, in input order.
type reportGroup struct {
	Label    string
	Scenario string
	Runs     []reportRun
}

// groupRuns groups runs by label and scenario, in the order of first
// appearance.
func groupRuns(runs []reportRun) []*reportGroup {
	var out []*reportGroup
	idx := map[[2]string]*reportGroup{}
	for _, r := range runs {
		k := [2]string{r.Label, r.Scenario}
		g := idx[k]
		if g == nil {
			g = &reportGroup{Label: r.Label, Scenario: r.Scenario}
			idx[k] = g
			out = append(out, g)
		}
		g.Runs = append(g.Runs, r)
	}
	return out
}

// spread is the median, minimum and maximum of one figure over runs.
type spread struct {
	N             int
	Med, Min, Max float64
}

func spreadOf(vs []float64) spread {
	if len(vs) == 0 {
		return spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{N: len(s), Med: m, Min: s[0], Max: s[len(s)-1]}
}

// metric is one figure of the report: a name for CSV, a column title and
// cell format for Markdown, and how to read it from a run (ok false: not
// measured in that run).
type metric struct {
	name  string
	title string
	unit  func(float64) string
	get   func(reportRun) (float64, bool)
}

// section is one Markdown table: the scenarios it holds and its metrics.
type section struct {
	title     string
	scenarios []string
	load      func(reportRun) string // the "load" column; nil: none
	metrics   []metric
	note      string
	extra     func(g *reportGroup) []metric // metrics that depend on the runs (CPU share)
}

// Cell formats of the Markdown tables.
func fmtCount(v float64) string { return fmtNum(math.Round(v)) }
func fmtMs(v float64) string    { return strconv.FormatFloat(v, 'f', 2, 64) }
func fmtUs(v float64) string    { return strconv.FormatFloat(v, 'f', 1, 64) }
func fmtKiB(v float64) string   { return strconv.FormatFloat(v/1024, 'f', 1, 64) }
func fmtMiB(v float64) string   { return strconv.FormatFloat(v/(1<<20), 'f', 1, 64) }
func fmtS(v float64) string     { return strconv.FormatFloat(v, 'f', 1, 64) }
func fmtPct(v float64) string   { return strconv.FormatFloat(v*100, 'f', 0, 64) + "%" }

// fromResult reads a metric from the Result of a run that has one.
func fromResult(f func(*Result) (float64, bool)) func(reportRun) (float64, bool) {
	return func(r reportRun) (float64, bool) {
		if r.Result == nil {
			return 0, false
		}
		return f(r.Result)
	}
}

func latencyMetric(name, title string, pick func(*Latency) float64) metric {
	return metric{name, title, fmtMs, fromResult(func(r *Result) (float64, bool) {
		if r.Latency == nil || r.Latency.Count == 0 {
			return 0, false
		}
		return pick(r.Latency), true
	})}
}

// errorsOf counts failed calls (every error code) and sends without a
// reply by the end of the drain.
func errorsOf(r *Result) float64 {
	n := r.Unanswered
	for _, v := range r.Errors {
		n += v
	}
	return float64(n)
}

var (
	lostMetric   = metric{"lost", "lost", fmtCount, fromResult(func(r *Result) (float64, bool) { return float64(r.Lost), true })}
	errorsMetric = metric{"errors", "errors", fmtCount, fromResult(func(r *Result) (float64, bool) { return errorsOf(r), true })}
)

// cpuUsPerMsg is qqd's and its plugins' CPU per delivered message in µs
// (cpu_s_per_1000_msgs × 1000); not measured without --qqd-pid.
func cpuUsPerMsg(r *Result) (float64, bool) {
	if len(r.Procs) == 0 || r.CPUPer1000 == 0 {
		return 0, false
	}
	return r.CPUPer1000 * 1000, true
}

// procName names a process of a run: "qqd" for the first (ReadProcTree
// puts qqd first) and for every other qqd (one per node of --qqd-pid),
// the plugin name for "qqd plugin <name>", else its comm.
func procName(i int, p ProcStat) string {
	if i == 0 {
		return "qqd"
	}
	f := strings.Fields(p.Cmd)
	if len(f) > 2 && f[1] == "plugin" {
		return f[len(f)-1]
	}
	if p.Comm == "qqd" {
		return "qqd"
	}
	if len(f) > 1 {
		return f[len(f)-1]
	}
	return p.Comm
}

// cpuShares returns one metric per process name seen in g's runs: the
// share of qqd's and its plugins' CPU seconds that process used.
func cpuShares(g *reportGroup) []metric {
	var names []string
	for _, r := range g.Runs {
		if r.Result == nil {
			continue
		}
		for i, p := range r.Result.Procs {
			if n := procName(i, p); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	out := make([]metric, len(names))
	for k, name := range names {
		out[k] = metric{"cpu_share_" + name, name, fmtPct, fromResult(func(r *Result) (float64, bool) {
			if r.CPUSeconds <= 0 {
				return 0, false
			}
			var sum float64 // over the nodes, with several qqd
			for i, p := range r.Procs {
				if procName(i, p) == name {
					sum += p.CPUSeconds
				}
			}
			return sum / r.CPUSeconds, true // 0: not running in this run (e.g. in-process plugins)
		})}
	}
	return out
}

// loopLoad describes the load of a dm/fanin/history run.
func loopLoad(mode string, rate float64, window, users int, unit string) string {
	if mode == "open" {
		return fmt.Sprintf("open %s %s, C=%s", fmtNum(rate), unit, thousands(int64(users)))
	}
	return fmt.Sprintf("closed w%d, C=%s", window, thousands(int64(users)))
}

// lastUnsaturated returns the last step of s that is not saturated.
func lastUnsaturated(s *SweepResult) (SweepStep, bool) {
	for i := len(s.Steps) - 1; i >= 0; i-- {
		if s.Steps[i].Saturated == "" {
			return s.Steps[i], true
		}
	}
	return SweepStep{}, false
}

func sweepMetric(name, title string, unit func(float64) string, f func(*SweepResult) (float64, bool)) metric {
	return metric{name, title, unit, func(r reportRun) (float64, bool) {
		if r.Sweep == nil {
			return 0, false
		}
		return f(r.Sweep)
	}}
}

// sections are the tables of the report, in order.
var sections = []section{
	{
		title:     "Message traffic (dm, fanin)",
		scenarios: []string{"dm", "fanin"},
		load: func(r reportRun) string {
			return loopLoad(r.Result.Mode, r.Result.Rate, r.Result.Window, r.Result.Users, "msg/s")
		},
		metrics: []metric{
			{"delivered_per_s", "delivered msg/s", fmtCount, fromResult(func(r *Result) (float64, bool) { return r.DeliveredPerSec, true })},
			latencyMetric("p50_ms", "p50 ms", func(l *Latency) float64 { return l.P50 }),
			latencyMetric("p99_ms", "p99 ms", func(l *Latency) float64 { return l.P99 }),
			latencyMetric("p999_ms", "p99.9 ms", func(l *Latency) float64 { return l.P999 }),
			latencyMetric("max_ms", "max ms", func(l *Latency) float64 { return l.Max }),
			lostMetric,
			errorsMetric,
			{"cpu_us_per_msg", "CPU µs/msg", fmtUs, fromResult(cpuUsPerMsg)},
			{"pg_cpu_us_per_msg", "postgres CPU µs/msg", fmtUs, fromResult(func(r *Result) (float64, bool) {
				return r.PGCPUPer1000 * 1000, r.PGCPUSeconds > 0
			})},
			{"nats_cpu_us_per_msg", "NATS CPU µs/msg", fmtUs, fromResult(func(r *Result) (float64, bool) {
				return r.NATSCPUPer1000 * 1000, r.NATSCPUSeconds > 0
			})},
			{"bench_core_pct", "qqbench core %", fmtS, fromResult(func(r *Result) (float64, bool) {
				return 100 * r.BenchCPUSeconds / r.DurationS, r.BenchCPUSeconds > 0 && r.DurationS > 0
			})},
		},
		extra: cpuShares,
		note: "Latency is one-way, from the scheduled send time (open loop) or the send call (closed loop). " +
			"CPU is qqd's and its plugin processes' per delivered message (summed over the nodes of --qqd-pid); the share columns split it by process. " +
			"postgres CPU (--pg-pid: postmaster and backends) and NATS CPU (--nats-pid) are apart from it, shown only when measured. " +
			"qqbench core % is the load generator's own CPU: near 100, the generator was the limit.",
	},
	{
		title:     "Group traffic (group)",
		scenarios: []string{"group"},
		load: func(r reportRun) string {
			return fmt.Sprintf("%d members, %s", r.Result.Group.Members,
				loopLoad(r.Result.Mode, r.Result.Rate, r.Result.Window, r.Result.Users, "sends/s"))
		},
		metrics: []metric{
			{"sends_per_s", "sends/s", fmtCount, fromResult(func(r *Result) (float64, bool) { return r.Group.SendsPerSec, true })},
			{"delivered_per_s", "pushes/s", fmtCount, fromResult(func(r *Result) (float64, bool) { return r.DeliveredPerSec, true })},
			latencyMetric("p50_ms", "p50 ms", func(l *Latency) float64 { return l.P50 }),
			latencyMetric("p99_ms", "p99 ms", func(l *Latency) float64 { return l.P99 }),
			lostMetric,
			errorsMetric,
			{"cpu_us_per_send", "CPU µs/send", fmtUs, fromResult(func(r *Result) (float64, bool) {
				return r.Group.CPUPerSendUs, r.Group.CPUPerSendUs > 0
			})},
			{"cpu_us_per_msg", "CPU µs/push", fmtUs, fromResult(cpuUsPerMsg)},
			{"bench_core_pct", "qqbench core %", fmtS, fromResult(func(r *Result) (float64, bool) {
				return 100 * r.BenchCPUSeconds / r.DurationS, r.BenchCPUSeconds > 0 && r.DurationS > 0
			})},
		},
		extra: cpuShares,
		note: "Each send is pushed to every online member but its sender: pushes/s and CPU µs/push are per push, " +
			"the figures to set beside dm's delivered msg/s and CPU µs/msg (one push each). Latency is per push, from the send.",
	},
	{
		title:     "Offline drain (offline)",
		scenarios: []string{"offline"},
		metrics: []metric{
			{"queued", "queued", fmtCount, fromResult(func(r *Result) (float64, bool) { return float64(r.Offline.Queued), true })},
			{"drain_per_s", "drain msg/s", fmtCount, fromResult(func(r *Result) (float64, bool) { return r.Offline.DrainPerSec, true })},
			{"drain_s", "drain s", fmtMs, fromResult(func(r *Result) (float64, bool) { return r.Offline.DrainS, true })},
			lostMetric,
			errorsMetric,
			{"cpu_us_per_msg", "CPU µs/msg", fmtUs, fromResult(cpuUsPerMsg)},
		},
	},
	{
		title:     "Idle connections (idle)",
		scenarios: []string{"idle"},
		metrics: []metric{
			{"connections", "connections", fmtCount, fromResult(func(r *Result) (float64, bool) { return float64(r.Idle.Connections), true })},
			{"rss_per_conn_settled_bytes", "qqd RSS/conn KiB (settled)", fmtKiB, fromResult(func(r *Result) (float64, bool) {
				return r.Idle.PerConnAfterSettle, r.Idle.RSSBefore > 0
			})},
			{"rss_per_conn_after_login_bytes", "RSS/conn KiB (after logins)", fmtKiB, fromResult(func(r *Result) (float64, bool) {
				return r.Idle.PerConnAfterLogin, r.Idle.RSSBefore > 0
			})},
			{"rss_settled_bytes", "qqd RSS MiB (settled)", fmtMiB, fromResult(func(r *Result) (float64, bool) {
				return float64(r.Idle.RSSAfterSettle), r.Idle.RSSBefore > 0
			})},
			{"login_s", "logins s", fmtS, fromResult(func(r *Result) (float64, bool) { return r.Idle.LoginSeconds, true })},
			{"hold_core_pct", "CPU % of a core (holding)", fmtMs, fromResult(func(r *Result) (float64, bool) {
				return r.Idle.HoldCorePercent, r.Idle.RSSBefore > 0
			})},
			errorsMetric,
		},
		note: "RSS per connection is qqd's own RSS (not its plugins') after the settle time, less before the logins, " +
			"divided by the connections.",
	},
	{
		title:     "History reads (history)",
		scenarios: []string{"history"},
		load: func(r reportRun) string {
			h := r.Result.History
			return loopLoad(h.Mode, h.Rate, h.Window, r.Result.Users, "calls/s")
		},
		metrics: []metric{
			{"calls_per_s", "calls/s", fmtCount, fromResult(func(r *Result) (float64, bool) { return r.History.CallsPerSec, true })},
			{"history_p50_ms", "history p50 ms", fmtMs, fromResult(func(r *Result) (float64, bool) {
				return r.History.History.P50, r.History.History.Count > 0
			})},
			{"history_p99_ms", "history p99 ms", fmtMs, fromResult(func(r *Result) (float64, bool) {
				return r.History.History.P99, r.History.History.Count > 0
			})},
			{"offline_p99_ms", "offline p99 ms", fmtMs, fromResult(func(r *Result) (float64, bool) {
				return r.History.Offline.P99, r.History.Offline.Count > 0
			})},
			errorsMetric,
			{"cpu_us_per_call", "CPU µs/call", fmtUs, fromResult(func(r *Result) (float64, bool) {
				return r.History.CPUPer1000 * 1000, len(r.Procs) > 0 && r.History.CPUPer1000 > 0
			})},
		},
		extra: cpuShares,
	},
	{
		title:     "Sweep (open-loop dm at a rising rate)",
		scenarios: []string{"sweep"},
		metrics: []metric{
			sweepMetric("steps", "steps", fmtCount, func(s *SweepResult) (float64, bool) { return float64(len(s.Steps)), true }),
			sweepMetric("max_unsaturated_delivered_per_s", "highest unsaturated msg/s", fmtCount, func(s *SweepResult) (float64, bool) {
				st, ok := lastUnsaturated(s)
				return st.DeliveredPerSec, ok
			}),
			sweepMetric("max_unsaturated_p99_ms", "its p99 ms", fmtMs, func(s *SweepResult) (float64, bool) {
				st, ok := lastUnsaturated(s)
				return st.P99, ok
			}),
			sweepMetric("max_unsaturated_cpu_us_per_msg", "its CPU µs/msg", fmtUs, func(s *SweepResult) (float64, bool) {
				st, ok := lastUnsaturated(s)
				if !ok || st.CPUUsPerMsg == nil {
					return 0, false
				}
				return *st.CPUUsPerMsg, true
			}),
			sweepMetric("saturated_at_offered", "saturated at offered msg/s", fmtCount, func(s *SweepResult) (float64, bool) {
				if !s.Saturated || len(s.Steps) == 0 {
					return 0, false
				}
				return s.Steps[len(s.Steps)-1].OfferedRate, true
			}),
		},
		note: "A step is saturated when delivered < 90% of offered, p99 > --max-p99, errors+lost > 0.1% " +
			"or a connection closed; the per-step table is in the sweep CSV.",
	},
}

// sectionOf returns the section that holds scenario, or nil.
func sectionOf(scenario string) *section {
	for i := range sections {
		if slices.Contains(sections[i].scenarios, scenario) {
			return &sections[i]
		}
	}
	return nil
}

// optionalMetrics are columns of the Markdown tables shown only when a
// run measured them (the figures of several processes, issue 15), so
// that reports of single-node runs keep their columns.
var optionalMetrics = map[string]bool{"pg_cpu_us_per_msg": true, "nats_cpu_us_per_msg": true}

// measuredOptional returns ms without the optional metrics that no run of
// gs measured.
func measuredOptional(ms []metric, gs []*reportGroup) []metric {
	out := make([]metric, 0, len(ms))
	for _, m := range ms {
		if optionalMetrics[m.name] && !slices.ContainsFunc(gs, func(g *reportGroup) bool { return m.spreadOver(g).N > 0 }) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// metricsOf returns the metrics of g: its section's and the extra ones.
func (s *section) metricsOf(g *reportGroup) []metric {
	ms := s.metrics
	if s.extra != nil {
		ms = append(slices.Clip(ms), s.extra(g)...)
	}
	return ms
}

// spreadOver reads m from every run of g that measured it.
func (m metric) spreadOver(g *reportGroup) spread {
	var vs []float64
	for _, r := range g.Runs {
		if v, ok := m.get(r); ok {
			vs = append(vs, v)
		}
	}
	return spreadOf(vs)
}

// cell formats s as "median (min–max)", just the median if all runs
// agree, or "–" if no run measured it.
func (s spread) cell(unit func(float64) string) string {
	if s.N == 0 {
		return "–"
	}
	med, lo, hi := unit(s.Med), unit(s.Min), unit(s.Max)
	if lo == hi {
		return med
	}
	return fmt.Sprintf("%s (%s–%s)", med, lo, hi)
}

// writeReportMarkdown writes one table per section that has groups.
func writeReportMarkdown(w io.Writer, groups []*reportGroup) {
	first := true
	for i := range sections {
		s := &sections[i]
		var gs []*reportGroup
		for _, g := range groups {
			if sectionOf(g.Scenario) == s {
				gs = append(gs, g)
			}
		}
		if len(gs) == 0 {
			continue
		}
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		fmt.Fprintf(w, "### %s\n\n", s.title)
		cols := measuredOptional(s.metrics, gs)
		if s.extra == nil {
			writeTable(w, s, gs, cols)
		} else {
			// The per-process columns differ between groups (in-process
			// plugins have none), so each group lists its own in one cell.
			writeTable(w, s, gs, append(cols, metric{title: "CPU share"}))
		}
		if s.note != "" {
			fmt.Fprintf(w, "\n%s Cells: median (min–max) over the runs.\n", s.note)
		} else {
			fmt.Fprintf(w, "\nCells: median (min–max) over the runs.\n")
		}
	}
	var unknown []string
	for _, g := range groups {
		if sectionOf(g.Scenario) == nil {
			unknown = append(unknown, fmt.Sprintf("%s (%s, %d runs)", g.Label, g.Scenario, len(g.Runs)))
		}
	}
	if len(unknown) > 0 {
		fmt.Fprintf(w, "\nNot reported (unknown scenario): %s\n", strings.Join(unknown, ", "))
	}
}

func writeTable(w io.Writer, s *section, gs []*reportGroup, cols []metric) {
	head := []string{"label", "runs"}
	if s.load != nil {
		head = append(head, "load")
	}
	for _, m := range cols {
		head = append(head, m.title)
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(head)))
	for _, g := range gs {
		row := []string{mdEscape(g.Label), strconv.Itoa(len(g.Runs))}
		if s.load != nil {
			row = append(row, s.load(g.Runs[0]))
		}
		for _, m := range cols {
			if m.get == nil { // the CPU share column
				var parts []string
				for _, sm := range s.extra(g) {
					if sp := sm.spreadOver(g); sp.N > 0 {
						parts = append(parts, sm.title+" "+sp.cell(sm.unit))
					}
				}
				row = append(row, cellOr(strings.Join(parts, ", ")))
				continue
			}
			row = append(row, m.spreadOver(g).cell(m.unit))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

func cellOr(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// mdEscape keeps a label from breaking the table.
func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// writeReportCSV writes one row per group and metric measured in at least
// one run: label, scenario, metric, runs (that measured it), median, min,
// max, in the units the metric name gives (µs, ms, bytes, per second;
// cpu_share_* as a fraction).
func writeReportCSV(w io.Writer, groups []*reportGroup) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"label", "scenario", "metric", "runs", "median", "min", "max"})
	num := func(v float64) string { return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64) }
	for _, g := range groups {
		s := sectionOf(g.Scenario)
		if s == nil {
			continue
		}
		for _, m := range s.metricsOf(g) {
			sp := m.spreadOver(g)
			if sp.N == 0 {
				continue
			}
			cw.Write([]string{g.Label, g.Scenario, m.name, strconv.Itoa(sp.N), num(sp.Med), num(sp.Min), num(sp.Max)})
		}
	}
	cw.Flush()
	return cw.Error()
}
