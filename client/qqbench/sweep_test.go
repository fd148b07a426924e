package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
)

func ptr(v float64) *float64 { return &v }

// fixedSweep is a made-up sweep that saturates at its last step.
func fixedSweep() *SweepResult {
	cfg := DefaultConfig()
	cfg.Users, cfg.Duration = 100, 5*time.Second
	r := newSweepResult(cfg)
	r.Steps = []SweepStep{
		{OfferedRate: 1000, DeliveredPerSec: 1000, Samples: 5000, P50: 0.42, P99: 1.9, P999: 3.1, Max: 4.2,
			CPUUsPerMsg: ptr(265.25), QQDRSSBytes: 31 << 20},
		{OfferedRate: 2000, DeliveredPerSec: 1999.4, Samples: 9997, P50: 0.61, P99: 3.5, P999: 6, Max: 9.75,
			CPUUsPerMsg: ptr(201), QQDRSSBytes: 33 << 20},
		{OfferedRate: 3000, DeliveredPerSec: 2100.5, Samples: 10502, P50: 310, P99: 1450.125, P999: 1700, Max: 1800,
			Lost: 3, Errors: 7, ErrorCodes: map[string]int64{"unanswered": 7}, CPUUsPerMsg: ptr(190), QQDRSSBytes: 40 << 20,
			Saturated: "delivered 2,101 msg/s < 90% of offered; p99 1450.1 ms > --max-p99 1s"},
	}
	r.Saturated = true
	r.Stop = "saturated at 3,000 msg/s offered: " + r.Steps[2].Saturated
	return r
}

func TestSweepSVG(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     *SweepResult
		marks int // markers per series
	}{
		{"saturated", fixedSweep(), 3},
		{"no steps", newSweepResult(DefaultConfig()), 0},
		{"one step, factor", func() *SweepResult {
			r := fixedSweep()
			r.Steps, r.Factor, r.Step = r.Steps[:1], 1.5, 0
			return r
		}(), 1},
		{"no samples", func() *SweepResult {
			r := fixedSweep()
			r.Steps = []SweepStep{{OfferedRate: 1000, Errors: 5000}}
			return r
		}(), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a, b bytes.Buffer
			if err := tc.r.WriteSVG(&a); err != nil {
				t.Fatal(err)
			}
			tc.r.WriteSVG(&b)
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("WriteSVG is not deterministic")
			}
			root, series := parseSVG(t, a.Bytes())
			if root.Name.Space != "http://www.w3.org/2000/svg" || root.Name.Local != "svg" {
				t.Fatalf("root element %v, want svg in the SVG namespace", root.Name)
			}
			for _, name := range []string{"p50", "p99"} {
				s, ok := series["series-"+name]
				if !ok {
					t.Fatalf("no series %s in\n%s", name, a.String())
				}
				if s.polylines != 1 || s.markers != tc.marks || s.points != tc.marks {
					t.Errorf("series %s: %d polylines, %d markers, %d points; want 1, %d, %d",
						name, s.polylines, s.markers, s.points, tc.marks, tc.marks)
				}
			}
		})
	}
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		s     string
		width int
		want  []string
	}{
		{"short", 10, []string{"short"}},
		{"aaaa; bbbb; cccc", 11, []string{"aaaa; bbbb;", "cccc"}},
		{"aaaa; bbbb; cccc; dddd", 6, []string{"aaaa;", "bbbb; cccc; dddd"}}, // at most 2 lines
		{"no separator but long", 5, []string{"no separator but long"}},
	} {
		if got := wrap(tc.s, "; ", tc.width, 2); !slices.Equal(got, tc.want) {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.s, tc.width, got, tc.want)
		}
	}
}

type svgSeries struct{ polylines, points, markers int }

// parseSVG parses doc as XML and counts the polylines, their points and
// the markers in each <g id="series-...">.
func parseSVG(t *testing.T, doc []byte) (xml.StartElement, map[string]*svgSeries) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	var root xml.StartElement
	series := map[string]*svgSeries{}
	var cur *svgSeries
	depth, curDepth := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse as XML: %v\n%s", err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				root = e
			}
			attr := func(name string) string {
				for _, a := range e.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			switch {
			case e.Name.Local == "g" && strings.HasPrefix(attr("id"), "series-"):
				cur, curDepth = &svgSeries{}, depth
				series[attr("id")] = cur
			case cur != nil && e.Name.Local == "polyline":
				cur.polylines++
				cur.points += len(strings.Fields(attr("points")))
			case cur != nil && (e.Name.Local == "circle" || e.Name.Local == "rect"):
				cur.markers++
			}
		case xml.EndElement:
			if depth == curDepth {
				cur, curDepth = nil, 0
			}
			depth--
		}
	}
	return root, series
}

// TestWriteSVGFile writes the fixed sweep's chart to $QQBENCH_SVG, to look
// at it: QQBENCH_SVG=/tmp/sweep.svg go test -run WriteSVGFile ./client/qqbench.
func TestWriteSVGFile(t *testing.T) {
	path := os.Getenv("QQBENCH_SVG")
	if path == "" {
		t.Skip("QQBENCH_SVG not set")
	}
	if err := fixedSweep().writeFiles(SweepConfig{SVG: path}); err != nil {
		t.Fatal(err)
	}
}

func TestSweepCSV(t *testing.T) {
	header := strings.Join(sweepCSVHeader, ",")
	for _, tc := range []struct {
		name string
		r    *SweepResult
		want []string
	}{
		{"no steps", newSweepResult(DefaultConfig()), []string{header}},
		{"three steps", fixedSweep(), []string{
			header,
			"1000,1000.0,0.420,1.900,3.100,4.200,0,0,265.2,32505856",
			"2000,1999.4,0.610,3.500,6.000,9.750,0,0,201.0,34603008",
			"3000,2100.5,310.000,1450.125,1700.000,1800.000,3,7,190.0,41943040",
		}},
		{"not measured", &SweepResult{Steps: []SweepStep{{OfferedRate: 1500.5, DeliveredPerSec: 1500.04, P50: 1, P99: 2, P999: 3, Max: 4}}},
			[]string{header, "1500.5,1500.0,1.000,2.000,3.000,4.000,0,0,,"}},
	} {
		var b bytes.Buffer
		if err := tc.r.WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		if got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"); !slices.Equal(got, tc.want) {
			t.Errorf("%s: WriteCSV =\n%s\nwant\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
		recs, err := csv.NewReader(&b).ReadAll()
		if err != nil || len(recs) != len(tc.want) {
			t.Errorf("%s: CSV reads back as %d records, %v", tc.name, len(recs), err)
		}
	}
}

func TestSweepSaturation(t *testing.T) {
	s := DefaultSweepConfig() // --max-p99 1s
	window := 5 * time.Second // 1,000 msg/s: 5,000 offered, so 5 errors+lost are allowed
	ok := SweepStep{OfferedRate: 1000, DeliveredPerSec: 1000, P50: 1, P99: 10}
	for _, tc := range []struct {
		name   string
		change func(*SweepStep)
		want   string // substring of the reason; "" for not saturated
	}{
		{"healthy", func(*SweepStep) {}, ""},
		{"delivered 90%", func(st *SweepStep) { st.DeliveredPerSec = 900 }, ""},
		{"delivered below 90%", func(st *SweepStep) { st.DeliveredPerSec = 899 }, "< 90% of offered"},
		{"nothing delivered", func(st *SweepStep) { st.DeliveredPerSec, st.P50, st.P99 = 0, 0, 0 }, "delivered 0 msg/s"},
		{"p99 at the limit", func(st *SweepStep) { st.P99 = 1000 }, ""},
		{"p99 above the limit", func(st *SweepStep) { st.P99 = 1000.5 }, "p99 1000.5 ms > --max-p99 1s"},
		{"errors within 0.1%", func(st *SweepStep) { st.Errors, st.Lost = 3, 2 }, ""},
		{"errors above 0.1%", func(st *SweepStep) { st.Errors = 6 }, "errors+lost 6 > 0.1% of 5000 offered"},
		{"lost above 0.1%", func(st *SweepStep) { st.Lost = 6 }, "errors+lost 6"},
		{"connection closed", func(st *SweepStep) { st.ClosedConns = 1 }, "1 connections closed"},
		{"two reasons", func(st *SweepStep) { st.DeliveredPerSec, st.P99 = 500, 2000 },
			"delivered 500 msg/s < 90% of offered; p99 2000.0 ms"},
	} {
		st := ok
		tc.change(&st)
		got := s.saturation(st, window)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: saturation(%+v) = %q, want %q", tc.name, st, got, tc.want)
		}
	}
}

func TestSweepRates(t *testing.T) {
	for _, tc := range []struct {
		s         SweepConfig
		want      []float64
		toLimited bool
	}{
		{SweepConfig{From: 1000, Step: 1000, MaxSteps: 4}, []float64{1000, 2000, 3000, 4000}, false},
		{SweepConfig{From: 200, Step: 200, To: 600, MaxSteps: 20}, []float64{200, 400, 600}, true},
		{SweepConfig{From: 200, Step: 200, To: 700, MaxSteps: 20}, []float64{200, 400, 600}, true},
		{SweepConfig{From: 200, Step: 200, To: 600, MaxSteps: 3}, []float64{200, 400, 600}, true},
		{SweepConfig{From: 200, Step: 200, To: 600, MaxSteps: 2}, []float64{200, 400}, false},
		{SweepConfig{From: 1000, Step: 1000, Factor: 1.5, MaxSteps: 5}, []float64{1000, 1500, 2250, 3375, 5063}, false},
		{SweepConfig{From: 1, Factor: 1.1, MaxSteps: 4}, []float64{1, 2, 3, 4}, false},
	} {
		if got := tc.s.rates(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v.rates() = %v, want %v", tc.s, got, tc.want)
		}
		if got := tc.s.toLimited(); got != tc.toLimited {
			t.Errorf("%+v.toLimited() = %v, want %v", tc.s, got, tc.toLimited)
		}
	}
}

func TestSweepArgs(t *testing.T) {
	c, err := parseArgs(strings.Fields("--users 5 sweep --from 200 --factor 2 --to 800 --max-steps 3 --max-p99 250ms --csv a.csv --svg a.svg"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := SweepConfig{From: 200, Step: 1000, Factor: 2, To: 800, MaxSteps: 3, MaxP99: 250 * time.Millisecond, CSV: "a.csv", SVG: "a.svg"}
	if c.Scenario != "sweep" || c.Users != 5 || c.Sweep != want {
		t.Fatalf("parseArgs = %+v, want sweep with %+v", c, want)
	}
	for _, bad := range []string{"sweep --from 0", "sweep --factor 1", "sweep --step 0", "sweep --from 500 --to 400",
		"sweep --max-steps 0", "sweep --max-p99 0s", "sweep --rate 100", "--users 1 sweep"} {
		if _, err := parseArgs(strings.Fields(bad), &bytes.Buffer{}); err == nil {
			t.Errorf("parseArgs(%q) = nil error, want one", bad)
		}
	}
}

// TestSweep sweeps a real in-process qqd from 200 to 600 msg/s through the
// command line, as a user would.
func TestSweep(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	dir := t.TempDir()
	csvPath, svgPath := filepath.Join(dir, "sweep.csv"), filepath.Join(dir, "sweep.svg")
	var stdout bytes.Buffer
	stderr := &daemontest.SyncBuffer{}
	args := []string{"--addr", s.Addr, "--register", "--password", "password1", "--users", "10",
		"sweep", "--from", "200", "--step", "200", "--to", "600", "--duration", "700ms", "--warmup", "200ms",
		"--drain", "3s", "--qqd-pid", strconv.Itoa(os.Getpid()), "--csv", csvPath, "--svg", svgPath}
	if err := run(args, &stdout, stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var r SweepResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	// A loaded machine (-race, parallel tests) may saturate qqd early;
	// then the sweep must stop at that step.
	if len(r.Steps) == 0 || len(r.Steps) > 3 || r.Steps[0].OfferedRate != 200 {
		t.Fatalf("steps %+v", r.Steps)
	}
	for i, st := range r.Steps {
		if st.OfferedRate != float64(200*(i+1)) {
			t.Errorf("step %d offered %v, want %d", i, st.OfferedRate, 200*(i+1))
		}
		if st.Saturated != "" && i != len(r.Steps)-1 {
			t.Errorf("step %d saturated (%s) but the sweep went on", i, st.Saturated)
		}
		if st.CPUUsPerMsg == nil || st.QQDRSSBytes == 0 {
			t.Errorf("step %d: no CPU or RSS with --qqd-pid: %+v", i, st)
		}
	}
	if last := r.Steps[len(r.Steps)-1]; r.Saturated != (last.Saturated != "") {
		t.Errorf("saturated %v, last step %+v", r.Saturated, last)
	}
	if !r.Saturated && (len(r.Steps) != 3 || r.Stop != "reached --to 600 msg/s without saturating") {
		t.Errorf("%d steps, stop %q", len(r.Steps), r.Stop)
	}
	if st := r.Steps[0]; st.Saturated != "" || st.Delivered == 0 || st.Lost != 0 || st.Errors != 0 {
		t.Errorf("first step (200 msg/s) %+v", st)
	}
	if got := strings.Count(stderr.String(), "qqbench: sweep step "); got != len(r.Steps) {
		t.Errorf("%d progress lines for %d steps:\n%s", got, len(r.Steps), stderr.String())
	}
	if !strings.Contains(stdout.String(), "offered/s") {
		t.Errorf("no table in\n%s", stdout.String())
	}

	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) != len(r.Steps)+1 || !slices.Equal(recs[0], sweepCSVHeader) || recs[1][0] != "200" {
		t.Errorf("CSV %q: %v", recs, err)
	}
	doc, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, series := parseSVG(t, doc); series["series-p50"] == nil || series["series-p50"].markers != len(r.Steps) {
		t.Errorf("SVG series %+v", series)
	}
}
