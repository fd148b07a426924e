package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qqchat/qq/daemon/daemontest"
)

// Result lines as qqbench prints them (fields it always prints trimmed
// where the report does not read them).
const (
	dmRun1 = `{"label":"dm-closed-w8-c1000","scenario":"dm","addr":"127.0.0.1:1","users":1000,"mode":"closed","window":8,` +
		`"delivered_per_s":10000,"lost":0,"unanswered":0,"latency":{"count":200000,"p50_ms":60,"p99_ms":90,"p999_ms":100,"max_ms":120},` +
		`"errors":{},"procs":[{"pid":10,"comm":"qqd","cmd":"qqd -config bench.yaml","cpu_s":4},` +
		`{"pid":11,"comm":"qqd","cmd":"qqd plugin sqlite","cpu_s":6}],"cpu_s":10,"cpu_s_per_1000_msgs":0.05}`
	dmRun2 = `{"label":"dm-closed-w8-c1000","scenario":"dm","addr":"127.0.0.1:1","users":1000,"mode":"closed","window":8,` +
		`"delivered_per_s":12000,"lost":2,"unanswered":1,"latency":{"count":240000,"p50_ms":50,"p99_ms":80,"p999_ms":95,"max_ms":150},` +
		`"errors":{"rate_limited":3},"procs":[{"pid":10,"comm":"qqd","cmd":"qqd -config bench.yaml","cpu_s":6},` +
		`{"pid":11,"comm":"qqd","cmd":"qqd plugin sqlite","cpu_s":6}],"cpu_s":12,"cpu_s_per_1000_msgs":0.05}`
	dmRun3 = `{"label":"dm-closed-w8-c1000","scenario":"dm","addr":"127.0.0.1:1","users":1000,"mode":"closed","window":8,` +
		`"delivered_per_s":11000,"lost":1,"unanswered":0,"latency":{"count":220000,"p50_ms":55,"p99_ms":85,"p999_ms":97,"max_ms":130},` +
		`"errors":{},"procs":[{"pid":10,"comm":"qqd","cmd":"qqd -config bench.yaml","cpu_s":5},` +
		`{"pid":11,"comm":"qqd","cmd":"qqd plugin sqlite","cpu_s":5}],"cpu_s":10,"cpu_s_per_1000_msgs":0.04}`
	// No label, no --qqd-pid.
	dmOpen = `{"scenario":"dm","addr":"127.0.0.1:1","users":1000,"mode":"open","rate":20000,"delivered_per_s":19990.4,` +
		`"lost":0,"unanswered":0,"latency":{"count":399808,"p50_ms":3.5,"p99_ms":20.126,"p999_ms":40,"max_ms":55},"errors":{}}`
	// In-process plugins: qqd alone.
	dmInProc = `{"label":"plugins-in","scenario":"dm","users":100,"mode":"closed","window":8,"delivered_per_s":15000,` +
		`"latency":{"count":1,"p50_ms":1,"p99_ms":2,"p999_ms":3,"max_ms":4},"errors":{},` +
		`"procs":[{"pid":10,"comm":"qqd","cmd":"qqd -config in.yaml","cpu_s":9}],"cpu_s":9,"cpu_s_per_1000_msgs":0.03}`
	idleRun = `{"label":"idle-c10000","scenario":"idle","users":10000,"errors":{},"idle":{"connections":10000,` +
		`"rss_before_bytes":20971520,"rss_after_login_bytes":1069547520,"rss_after_settle_bytes":96468992,` +
		`"per_conn_after_login_bytes":104857.6,"per_conn_after_settle_bytes":7549.7,"settle_s":10,"login_s":180.52,"all_alive":true}}`
	histRun = `{"scenario":"history","users":1000,"errors":{"history_timeout":2},"history":{"mode":"open","rate":2000,` +
		`"calls":60000,"calls_per_s":2000,"history":{"count":48000,"p50_ms":1.5,"p99_ms":12.25},"offline":{"count":12000,"p50_ms":1,"p99_ms":8.5},` +
		`"cpu_s_per_1000_calls":0.2},"procs":[{"pid":10,"comm":"qqd","cpu_s":3},{"pid":11,"comm":"qqd","cmd":"qqd plugin sqlite","cpu_s":9}],"cpu_s":12}`
	sweepRun = `{"label":"sweep-c1000","scenario":"sweep","users":1000,"from":1000,"step":1000,"max_steps":20,"steps":[` +
		`{"offered_rate":1000,"delivered_per_s":1000,"p99_ms":5,"cpu_us_per_msg":100},` +
		`{"offered_rate":2000,"delivered_per_s":1990,"p99_ms":7,"cpu_us_per_msg":80},` +
		`{"offered_rate":3000,"delivered_per_s":2500,"p99_ms":1500,"saturated":"p99 1500.0 ms > --max-p99 1s"}],` +
		`"saturated":true,"stop":"saturated at 3,000 msg/s offered"}`
	offlineRun = `{"scenario":"offline","users":2,"lost":0,"errors":{},"offline":{"queued":10000,"fill_s":2.9,"pending_at_login":10000,` +
		`"drained":10000,"pages":10,"drain_s":0.115,"drain_per_s":86956.5}}`
	fillRun = `{"db":"/tmp/qq.db","users":1000,"users_created":1000,"messages":1,"rows_per_s":3000}`
)

func TestReportMarkdown(t *testing.T) {
	input := strings.Join([]string{
		"qqbench dm against 127.0.0.1:1: 1000 users, 20s measured after 1s warm-up", // a human summary line
		dmRun1, dmRun2, "", dmOpen, dmRun3, dmInProc, idleRun, histRun, sweepRun, offlineRun, fillRun,
	}, "\n")
	var out, errOut bytes.Buffer
	runs, err := readReport(strings.NewReader(input), "in.jsonl", &errOut)
	if err != nil {
		t.Fatal(err)
	}
	writeReportMarkdown(&out, groupRuns(runs))
	got := out.String()
	for _, want := range []string{
		"### Message traffic (dm, fanin)\n\n| label | runs | load | delivered msg/s | p50 ms | p99 ms | p99.9 ms | max ms | lost | errors | CPU µs/msg | qqbench core % | CPU share |\n",
		"| dm-closed-w8-c1000 | 3 | closed w8, C=1,000 | 11,000 (10,000–12,000) | 55.00 (50.00–60.00) | 85.00 (80.00–90.00) | " +
			"97.00 (95.00–100.00) | 130.00 (120.00–150.00) | 1 (0–2) | 0 (0–4) | 50.0 (40.0–50.0) | – | qqd 50% (40%–50%), sqlite 50% (50%–60%) |\n",
		"| dm-open-r20000-c1000 | 1 | open 20,000 msg/s, C=1,000 | 19,990 | 3.50 | 20.13 | 40.00 | 55.00 | 0 | 0 | – | – | – |\n",
		"| plugins-in | 1 | closed w8, C=100 | 15,000 | 1.00 | 2.00 | 3.00 | 4.00 | 0 | 0 | 30.0 | – | qqd 100% |\n",
		"### Idle connections (idle)\n",
		"| idle-c10000 | 1 | 10,000 | 7.4 | 102.4 | 92.0 | 180.5 | 0.00 | 0 |\n",
		"| history-open-r2000-c1000 | 1 | open 2,000 calls/s, C=1,000 | 2,000 | 1.50 | 12.25 | 8.50 | 2 | 200.0 | qqd 25%, sqlite 75% |\n",
		"| sweep-c1000 | 1 | 3 | 1,990 | 7.00 | 80.0 | 3,000 |\n",
		"| offline-m10000 | 1 | 10,000 | 86,957 | 0.12 | 0 | 0 | – |\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks\n%s\ngot:\n%s", want, got)
		}
	}
	if !strings.Contains(errOut.String(), "in.jsonl:12: skipped: no scenario") {
		t.Errorf("stderr = %q, want a note on the fill line", errOut.String())
	}
	// Sections follow the order of the sections table, not of the input.
	if i, j := strings.Index(got, "### Offline"), strings.Index(got, "### Idle"); i > j {
		t.Errorf("offline section after idle:\n%s", got)
	}
}

func TestReportCSV(t *testing.T) {
	var out bytes.Buffer
	runs, err := readReport(strings.NewReader(dmRun1+"\n"+dmRun2+"\n"), "in", &out)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeReportCSV(&out, groupRuns(runs)); err != nil {
		t.Fatal(err)
	}
	want := `label,scenario,metric,runs,median,min,max
dm-closed-w8-c1000,dm,delivered_per_s,2,11000,10000,12000
dm-closed-w8-c1000,dm,p50_ms,2,55,50,60
dm-closed-w8-c1000,dm,p99_ms,2,85,80,90
dm-closed-w8-c1000,dm,p999_ms,2,97.5,95,100
dm-closed-w8-c1000,dm,max_ms,2,135,120,150
dm-closed-w8-c1000,dm,lost,2,1,0,2
dm-closed-w8-c1000,dm,errors,2,2,0,4
dm-closed-w8-c1000,dm,cpu_us_per_msg,2,50,50,50
dm-closed-w8-c1000,dm,cpu_share_qqd,2,0.45,0.4,0.5
dm-closed-w8-c1000,dm,cpu_share_sqlite,2,0.55,0.5,0.6
`
	if got := out.String(); got != want {
		t.Errorf("CSV =\n%s\nwant\n%s", got, want)
	}
}

func TestReadReportErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"truncated JSON", dmRun1 + "\n" + dmRun2[:40] + "\n", "in:2:"},
		{"idle without figures", `{"scenario":"idle","users":3}`, `idle result without its "idle" figures`},
		{"history without figures", `{"scenario":"history","users":3}`, `without its "history" figures`},
		{"wrong type", `{"scenario":"dm","users":"many"}`, "in:1:"},
	}
	for _, tt := range tests {
		_, err := readReport(strings.NewReader(tt.input), "in", &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: readReport = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestRunReport(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	os.WriteFile(a, []byte(dmRun1+"\n"+dmRun2+"\n"), 0o644)
	os.WriteFile(b, []byte(dmRun3+"\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("no results here\n"), 0o644)
	tests := []struct {
		args    []string
		want    string // in stdout
		wantErr string
	}{
		{args: []string{a, b}, want: "| dm-closed-w8-c1000 | 3 |"},
		{args: []string{"--format", "csv", a, b}, want: "dm-closed-w8-c1000,dm,delivered_per_s,3,11000,10000,12000\n"},
		{args: []string{"--format", "html", a}, wantErr: `--format "html"`},
		{args: nil, wantErr: "no files"},
		{args: []string{filepath.Join(dir, "missing")}, wantErr: "missing"},
		{args: []string{dir}, wantErr: "report:"}, // a directory
		{args: []string{empty}, wantErr: "no result lines"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := run(append([]string{"report"}, tt.args...), &out, &errOut)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("report %q = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("report %q: %v", tt.args, err)
		case !strings.Contains(out.String(), tt.want):
			t.Errorf("report %q printed\n%s\nwant it to contain %q", tt.args, out.String(), tt.want)
		}
	}
}

func TestSpreadCell(t *testing.T) {
	tests := []struct {
		vs   []float64
		want spread
		cell string
	}{
		{nil, spread{}, "–"},
		{[]float64{3}, spread{1, 3, 3, 3}, "3"},
		{[]float64{1, 3, 2}, spread{3, 2, 1, 3}, "2 (1–3)"},
		{[]float64{4, 1, 3, 2}, spread{4, 2.5, 1, 4}, "3 (1–4)"},
		{[]float64{7, 7.25}, spread{2, 7.125, 7, 7.25}, "7"}, // alike once formatted: no spread
	}
	for _, tt := range tests {
		got := spreadOf(tt.vs)
		if got != tt.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tt.vs, got, tt.want)
		}
		if c := got.cell(fmtCount); c != tt.cell {
			t.Errorf("spreadOf(%v).cell = %q, want %q", tt.vs, c, tt.cell)
		}
	}
}

func TestDefaultLabel(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{`{"scenario":"dm","users":1000,"mode":"closed","window":8}`, "dm-closed-w8-c1000"},
		{`{"scenario":"fanin","users":50,"mode":"open","rate":2500.5}`, "fanin-open-r2500.5-c50"},
		{`{"scenario":"idle","users":10000,"idle":{}}`, "idle-c10000"},
		{`{"scenario":"offline","users":2,"offline":{"queued":500}}`, "offline-m500"},
		{`{"scenario":"history","users":10,"history":{"mode":"closed","window":4}}`, "history-closed-w4-c10"},
		{`{"scenario":"sweep","users":100,"from":1000}`, "sweep-from1000-c100"},
		{`{"label":"mine","scenario":"dm","users":2}`, "mine"},
	}
	for _, tt := range tests {
		runs, err := readReport(strings.NewReader(tt.line), "in", &bytes.Buffer{})
		if err != nil || len(runs) != 1 {
			t.Fatalf("readReport(%s) = %v, %v", tt.line, runs, err)
		}
		if runs[0].Label != tt.want {
			t.Errorf("label of %s = %q, want %q", tt.line, runs[0].Label, tt.want)
		}
	}
}

func TestLabelWriter(t *testing.T) {
	tests := []struct {
		name   string
		label  string
		writes []string
		want   string
	}{
		{"object", "dm-a", []string{`{"scenario":"dm"}` + "\n"}, `{"label":"dm-a","scenario":"dm"}` + "\n"},
		{"empty object", "x", []string{"{}\n"}, `{"label":"x"}` + "\n"},
		{"summary lines pass", "x", []string{"qqbench dm: 2 users\n  {not json\n"}, "qqbench dm: 2 users\n  {not json\n"},
		{"split writes", "x", []string{"summary\n{\"a\"", ":1}", "\n"}, "summary\n" + `{"label":"x","a":1}` + "\n"},
		{"quoted label", `a"b`, []string{"{\"a\":1}\n"}, `{"label":"a\"b","a":1}` + "\n"},
		{"indent and CRLF kept", "x", []string{" {\"a\":1}\r\n"}, ` {"label":"x","a":1}` + "\r\n"},
		{"unterminated last line", "x", []string{`{"a":1}`}, `{"label":"x","a":1}`},
		{"array untouched", "x", []string{"[1]\n"}, "[1]\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		lw := newLabelWriter(&b, tt.label)
		for _, w := range tt.writes {
			if n, err := lw.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", tt.name, n, err)
			}
		}
		if err := lw.Flush(); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("%s: wrote %q, want %q", tt.name, b.String(), tt.want)
		}
	}
}

// TestLabelEndToEnd runs dm with --label against a test server and
// reports its JSON line.
func TestLabelEndToEnd(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	var out bytes.Buffer
	args := []string{"--addr", s.Addr, "--register", "--password", "password1", "--users", "3",
		"--label", "tiny-dm", "dm", "--duration", "300ms", "--warmup", "0s", "--drain", "2s", "--json"}
	if err := run(args, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Label    string `json:"label"`
		Scenario string `json:"scenario"`
	}
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || line.Label != "tiny-dm" || line.Scenario != "dm" {
		t.Fatalf("JSON line %q: %+v, %v", out.String(), line, err)
	}
	runs, err := readReport(&out, "out", &bytes.Buffer{})
	if err != nil || len(runs) != 1 || runs[0].Label != "tiny-dm" || runs[0].Result.Users != 3 {
		t.Fatalf("readReport = %+v, %v", runs, err)
	}
}
