package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Chart geometry in SVG user units: the plot area is [plotL, plotR] ×
// [plotT, plotB] inside a chartW × chartH canvas.
const (
	chartW, chartH = 800, 520
	plotL, plotR   = 84, chartW - 24
	plotT, plotB   = 100, chartH - 70

	// textChars is about how many characters of 12px text fit above the
	// plot.
	textChars = 100
)

// minLatencyMs is the smallest latency drawn; latencies are measured in
// whole µs, and a log scale cannot show 0.
const minLatencyMs = 0.001

// chartSeries is one polyline of the chart.
type chartSeries struct {
	name, color string
	square      bool // markers are squares, else circles
	y           func(SweepStep) float64
}

const thresholdStroke = `stroke="#888" stroke-dasharray="6 4"`

var latencySeries = []chartSeries{
	{name: "p50", color: "#1f77b4", y: func(st SweepStep) float64 { return st.P50 }},
	{name: "p99", color: "#d62728", square: true, y: func(st SweepStep) float64 { return st.P99 }},
}

// WriteSVG draws p50 and p99 one-way latency (log scale, ms) against the
// delivered rate (linear, msg/s) as a standalone SVG document, one marker
// per step with latency samples. The output depends only on r.
func (r *SweepResult) WriteSVG(w io.Writer) error {
	var steps []SweepStep
	for _, st := range r.Steps {
		if st.Samples > 0 {
			steps = append(steps, st)
		}
	}

	// x: 0 to a round number at least 2% above the highest delivered rate.
	maxX := 0.0
	for _, st := range steps {
		maxX = max(maxX, st.DeliveredPerSec)
	}
	if maxX <= 0 {
		maxX = max(r.From, 1)
	}
	xStep := niceStep(maxX / 5)
	xTop := math.Ceil(maxX*1.02/xStep) * xStep
	xPos := func(v float64) float64 { return plotL + v/xTop*(plotR-plotL) }

	// y: whole decades around p50 and p99.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, st := range steps {
		for _, s := range latencySeries {
			v := max(s.y(st), minLatencyMs)
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if len(steps) == 0 {
		lo, hi = 1, 1000
	}
	d0, d1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	yPos := func(v float64) float64 {
		return plotB - (math.Log10(max(v, minLatencyMs))-float64(d0))/float64(d1-d0)*(plotB-plotT)
	}

	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	title := "qqbench sweep: one-way latency against delivered rate"
	p("<title>%s</title>\n", esc(title))
	p(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")
	p(`<text x="%d" y="26" font-size="16" font-weight="bold">%s</text>`+"\n", plotL, esc(title))
	p(`<text x="%d" y="46">%s</text>`+"\n", plotL, esc(r.params()))
	for i, line := range wrap("stopped: "+r.Stop, "; ", textChars, 2) {
		p(`<text x="%d" y="%d">%s</text>`+"\n", plotL, 64+16*i, esc(line))
	}

	// Grid and tick labels.
	p(`<g stroke="#ddd" stroke-width="1">` + "\n")
	for i := 0; float64(i)*xStep <= xTop*(1+1e-9); i++ {
		x := xPos(float64(i) * xStep)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`+"\n", x, plotT, x, plotB)
	}
	for _, t := range logTicks(d0, d1) {
		stroke := ""
		if !t.major {
			stroke = ` stroke="#eee"`
		}
		y := yPos(t.v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"%s/>`+"\n", plotL, y, plotR, y, stroke)
	}
	p("</g>\n")
	p(`<g text-anchor="middle" fill="#333">` + "\n")
	for i := 0; float64(i)*xStep <= xTop*(1+1e-9); i++ {
		v := float64(i) * xStep
		p(`<text x="%.1f" y="%d">%s</text>`+"\n", xPos(v), plotB+18, esc(axisNumber(v, xStep)))
	}
	p("</g>\n")
	p(`<g text-anchor="end" fill="#333">` + "\n")
	for _, t := range logTicks(d0, d1) {
		if t.label != "" {
			p(`<text x="%d" y="%.1f">%s</text>`+"\n", plotL-6, yPos(t.v)+4, esc(t.label))
		}
	}
	p("</g>\n")

	// Axes and their labels.
	p(`<path d="M%d %dV%dH%d" fill="none" stroke="#333" stroke-width="1"/>`+"\n", plotL, plotT, plotB, plotR)
	p(`<text x="%d" y="%d" text-anchor="middle">delivered rate (msg/s)</text>`+"\n", (plotL+plotR)/2, chartH-24)
	p(`<text transform="translate(22 %d) rotate(-90)" text-anchor="middle">one-way latency (ms, log scale)</text>`+"\n", (plotT+plotB)/2)

	// The --max-p99 threshold, if it falls inside the y range; the legend
	// names it.
	threshold := ""
	if m := r.MaxP99Ms; m > 0 && math.Log10(m) >= float64(d0) && math.Log10(m) <= float64(d1) {
		threshold = "--max-p99 " + fmtNum(m) + " ms"
		y := yPos(m)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" %s/>`+"\n", plotL, y, plotR, y, thresholdStroke)
	}

	// The series.
	for _, s := range latencySeries {
		p(`<g id="series-%s" fill="%s">`+"\n", s.name, s.color)
		pts := make([]string, len(steps))
		for i, st := range steps {
			pts[i] = fmt.Sprintf("%.1f,%.1f", xPos(st.DeliveredPerSec), yPos(s.y(st)))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		for _, st := range steps {
			p("%s\n", marker(s, xPos(st.DeliveredPerSec), yPos(s.y(st))))
		}
		p("</g>\n")
	}
	if len(steps) == 0 {
		p(`<text x="%d" y="%d" text-anchor="middle" fill="#666">no latency samples</text>`+"\n", (plotL+plotR)/2, (plotT+plotB)/2)
	}

	// Legend, top left inside the plot.
	lx, ly := plotL+12, plotT+10
	entries, width := len(latencySeries), 84
	if threshold != "" {
		entries, width = entries+1, 52+7*len(threshold)
	}
	p(`<g id="legend">` + "\n")
	p(`<rect x="%d" y="%d" width="%d" height="%d" fill="#fff" stroke="#bbb"/>`+"\n", lx, ly, width, 10+20*entries)
	for i, s := range latencySeries {
		y := float64(ly + 15 + 20*i)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx+8, y, lx+36, y, s.color)
		p(`<g fill="%s">%s</g>`+"\n", s.color, marker(s, float64(lx+22), y))
		p(`<text x="%d" y="%.1f">%s</text>`+"\n", lx+44, y+4, s.name)
	}
	if threshold != "" {
		y := float64(ly + 15 + 20*len(latencySeries))
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" %s/>`+"\n", lx+8, y, lx+36, y, thresholdStroke)
		p(`<text x="%d" y="%.1f">%s</text>`+"\n", lx+44, y+4, esc(threshold))
	}
	p("</g>\n</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// params describes the run for the chart's subtitle.
func (r *SweepResult) params() string {
	steps := "+" + fmtNum(r.Step)
	if r.Factor > 0 {
		steps = "×" + fmtNum(r.Factor)
	}
	return fmt.Sprintf("dm open loop, %d users, %d-byte bodies, %s per step (+%s warm-up), offered %s msg/s %s per step",
		r.Users, r.BodyBytes, seconds(r.DurationS), seconds(r.WarmupS), fmtNum(r.From), steps)
}

// wrap splits s after sep into at most n lines of about width characters;
// the last line takes the rest.
func wrap(s, sep string, width, n int) []string {
	var lines []string
	for len(lines) < n-1 && len([]rune(s)) > width {
		parts := strings.SplitAfter(s, sep)
		line := parts[0]
		for _, p := range parts[1:] {
			if len([]rune(strings.TrimSpace(line+p))) > width {
				break
			}
			line += p
		}
		if line == s {
			break
		}
		lines = append(lines, strings.TrimSpace(line))
		s = s[len(line):]
	}
	return append(lines, s)
}

func marker(s chartSeries, x, y float64) string {
	if s.square {
		return fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="7" height="7"/>`, x-3.5, y-3.5)
	}
	return fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="4"/>`, x, y)
}

// niceStep returns the smallest of 1, 2 or 5 × 10^k that is >= raw (> 0).
func niceStep(raw float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw*(1-1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// logTick is one gridline of the log-scale y axis.
type logTick struct {
	v     float64
	major bool   // a decade
	label string // "" for none
}

// logTicks returns gridlines at 1, 2 and 5 × 10^d for the decades d0 ≤ d
// < d1 and at 10^d1. Decades are always labelled; 2 and 5 only when the
// axis spans at most three decades, so that labels do not crowd.
func logTicks(d0, d1 int) []logTick {
	var out []logTick
	for d := d0; d <= d1; d++ {
		for _, m := range []int{1, 2, 5} {
			if d == d1 && m > 1 {
				break
			}
			t := logTick{v: float64(m) * math.Pow(10, float64(d)), major: m == 1}
			if m == 1 || d1-d0 <= 3 {
				t.label = decimalLabel(m, d)
			}
			out = append(out, t)
		}
	}
	return out
}

// decimalLabel formats m × 10^d without floating-point noise: "0.005",
// "20", "1,000".
func decimalLabel(m, d int) string {
	if d >= 0 {
		n := int64(m)
		for range d {
			n *= 10
		}
		return thousands(n)
	}
	return fmt.Sprintf("%.*f", -d, float64(m)*math.Pow(10, float64(d)))
}

// axisNumber formats v, a multiple of step, with as many decimals as step
// needs.
func axisNumber(v, step float64) string {
	if step >= 1 {
		return thousands(int64(math.Round(v)))
	}
	return fmt.Sprintf("%.*f", int(math.Ceil(-math.Log10(step))), v)
}

// esc escapes s for SVG text and attribute values.
func esc(s string) string { return html.EscapeString(s) }
