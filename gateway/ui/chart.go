package ui

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Charts are inline SVG drawn on the server: they need no script, no build step and nothing from outside
// mlgate, and a test (or a screen reader) can read their points.

// chartSeries is one line: points in x order.
type chartSeries struct {
	Name string
	X, Y []float64
}

// chart is a rendered chart: SVG markup built from numbers only (names go through html escaping).
type chart struct {
	Title  string
	SVG    template.HTML
	Legend []legendEntry
}

type legendEntry struct{ Name, Color string }

var palette = []string{"#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0a7e8c", "#bc4c00", "#57606a"}

// maxChartPoints bounds the points drawn per line; longer histories are thinned evenly, keeping the ends.
const maxChartPoints = 1000

// renderChart draws series on shared axes. Non-finite values are skipped (a NaN loss would otherwise blank
// the line). xLabel names the x axis.
func renderChart(title, xLabel string, series []chartSeries) *chart {
	const w, h, left, right, top, bottom = 640.0, 240.0, 64.0, 12.0, 10.0, 34.0
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for i := range s.X {
			if !finite(s.X[i]) || !finite(s.Y[i]) {
				continue
			}
			minX, maxX = math.Min(minX, s.X[i]), math.Max(maxX, s.X[i])
			minY, maxY = math.Min(minY, s.Y[i]), math.Max(maxY, s.Y[i])
		}
	}
	if math.IsInf(minX, 1) {
		return &chart{Title: title, SVG: template.HTML(`<p class="muted">No finite values to plot.</p>`)}
	}
	if maxX == minX {
		minX, maxX = minX-1, maxX+1
	}
	if maxY == minY {
		pad := math.Max(math.Abs(minY)*0.05, 1e-9)
		minY, maxY = minY-pad, maxY+pad
	}
	// Round axes to readable ticks (1, 2 or 5 times a power of ten); steps and row numbers are whole.
	var xTicks, yTicks []float64
	xTicks, minX, maxX = niceTicks(minX, maxX, 5, allWhole(series))
	yTicks, minY, maxY = niceTicks(minY, maxY, 4, false)
	px := func(x float64) float64 { return left + (x-minX)/(maxX-minX)*(w-left-right) }
	py := func(y float64) float64 { return top + (maxY-y)/(maxY-minY)*(h-top-bottom) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		w, h, template.HTMLEscapeString(title))
	// Axes with their rounded ticks.
	fmt.Fprintf(&b, `<g class="axis"><line x1="%g" y1="%g" x2="%g" y2="%g"/><line x1="%g" y1="%g" x2="%g" y2="%g"/>`,
		left, top, left, h-bottom, left, h-bottom, w-right, h-bottom)
	for _, y := range yTicks {
		fmt.Fprintf(&b, `<line class="grid" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/><text x="%g" y="%.1f" text-anchor="end">%s</text>`,
			left, py(y), w-right, py(y), left-4, py(y)+3, template.HTMLEscapeString(tick(y)))
	}
	for _, x := range xTicks {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, px(x), h-bottom+14, template.HTMLEscapeString(tick(x)))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" class="label">%s</text></g>`, (left+w-right)/2, h-4, template.HTMLEscapeString(xLabel))
	var legend []legendEntry
	for si, s := range series {
		color := palette[si%len(palette)]
		legend = append(legend, legendEntry{Name: s.Name, Color: color})
		idx := thin(len(s.X))
		var pts []string
		fmt.Fprintf(&b, `<g class="series" data-name="%s" style="stroke:%s;fill:%s">`, template.HTMLEscapeString(s.Name), color, color)
		for _, i := range idx {
			if !finite(s.X[i]) || !finite(s.Y[i]) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.X[i]), py(s.Y[i])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" points="%s"/>`, strings.Join(pts, " "))
		if len(idx) <= 200 {
			for _, i := range idx {
				if !finite(s.X[i]) || !finite(s.Y[i]) {
					continue
				}
				fmt.Fprintf(&b, `<circle class="pt" r="2.5" cx="%.1f" cy="%.1f" data-x="%s" data-y="%s"><title>%s: %s = %s</title></circle>`,
					px(s.X[i]), py(s.Y[i]), formatNum(s.X[i]), formatNum(s.Y[i]), template.HTMLEscapeString(s.Name),
					template.HTMLEscapeString(formatNum(s.X[i])), template.HTMLEscapeString(formatNum(s.Y[i])))
			}
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	// Every interpolated string above is a number or HTML-escaped, so the markup is safe to emit as is.
	return &chart{Title: title, SVG: template.HTML(b.String()), Legend: legend}
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// thin picks at most maxChartPoints indices of n, evenly, always keeping the first and the last.
func thin(n int) []int {
	out := make([]int, 0, min(n, maxChartPoints))
	if n <= maxChartPoints {
		for i := range n {
			out = append(out, i)
		}
		return out
	}
	for i := range maxChartPoints {
		out = append(out, i*(n-1)/(maxChartPoints-1))
	}
	return slices.Compact(out)
}

// chart builds the model page's performance chart: one line per chosen metric across the page's
// candidates, in the table's order. ?chart=<key> chooses (repeatable); by default the first three.
func (d *modelData) chart(q url.Values) {
	d.ChartKeys = d.MetricKeys
	d.ChartChosen = map[string]bool{}
	chosen := q["chart"]
	if len(chosen) == 0 {
		chosen = d.MetricKeys[:min(3, len(d.MetricKeys))]
	}
	var series []chartSeries
	for _, k := range chosen {
		if !slices.Contains(d.MetricKeys, k) {
			continue
		}
		d.ChartChosen[k] = true
		s := chartSeries{Name: k}
		for i, r := range d.Rows {
			if v, ok := r.Metrics[k]; ok {
				s.X = append(s.X, float64(i+1))
				s.Y = append(s.Y, v)
			}
		}
		series = append(series, s)
	}
	if len(series) > 0 && len(d.Rows) > 1 {
		d.Chart = renderChart("Metrics across candidates", "row in the table above", series)
	}
}

// tick formats an axis label: 4 significant digits are enough to read a scale.
func tick(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

// niceTicks spreads about n intervals over [lo, hi] at a step of 1, 2 or 5 times a power of ten (at
// least 1 when whole is set) and returns the ticks with the axis widened to the outer ones.
func niceTicks(lo, hi float64, n int, whole bool) (ticks []float64, axisLo, axisHi float64) {
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if whole && step < 1 {
		step = 1
	}
	axisLo, axisHi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	for i := 0; ; i++ {
		v := axisLo + float64(i)*step
		if v > axisHi+step/2 {
			break
		}
		ticks = append(ticks, v)
	}
	return ticks, axisLo, axisHi
}

// allWhole reports whether every finite x of every series is a whole number (steps, row numbers).
func allWhole(series []chartSeries) bool {
	for _, s := range series {
		for _, x := range s.X {
			if finite(x) && x != math.Trunc(x) {
				return false
			}
		}
	}
	return true
}
