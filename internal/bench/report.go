package bench

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
)

// WriteHTML writes a self-contained page (no scripts, nothing fetched)
// with two charts: latency over time, one point a second (p50, p99, max),
// and the latency distribution (latency against percentile). Each chart
// has both axes with tick values and units. The data of both is in the
// page too, as JSON, for tools.
func (res *Result) WriteHTML(w io.Writer) error {
	h, err := decodeHist(res.Histogram)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var dist []distPoint
	for _, q := range []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100} {
		dist = append(dist, distPoint{Percentile: q, LatencyUS: h.ValueAtQuantile(q)})
	}
	data, err := json.Marshal(map[string]any{"series": res.Series, "distribution": dist})
	if err != nil {
		return err
	}
	var summary strings.Builder
	res.WriteText(&summary)
	return reportPage.Execute(w, map[string]any{
		"Title":    fmt.Sprintf("tcpkit bench %s %s", res.Mode, res.Target),
		"Summary":  summary.String(),
		"OverTime": template.HTML(overTimeSVG(res.Series)),
		"Dist":     template.HTML(distributionSVG(dist)),
		"Data":     template.JS(data),
	})
}

type distPoint struct {
	Percentile float64 `json:"percentile"`
	LatencyUS  int64   `json:"latency_us"`
}

// The charts' size and margins: the left margin holds the latency
// labels, the bottom one the x labels and the axis title.
const (
	chartW, chartH                    = 720.0, 280.0
	padLeft, padRight, padTop, padBot = 72.0, 24.0, 28.0, 56.0
)

// overTimeSVG plots p50, p99 and max per second on a log latency scale.
func overTimeSVG(series []Point) string {
	if len(series) == 0 {
		return "<p>No seconds measured.</p>"
	}
	var maxT float64
	var maxV int64 = 1
	for _, p := range series {
		maxT = max(maxT, p.T)
		maxV = max(maxV, p.MaxUS)
	}
	step := niceStep(max(maxT, 1))
	span := max(math.Ceil(maxT/step), 1) * step // the axis ends at a tick past the last point
	x := func(t float64) float64 { return padLeft + (chartW-padLeft-padRight)*t/span }
	y := logScale(maxV)
	var b strings.Builder
	svgStart(&b, "latency over time")
	var xt []tick
	decimals := max(0, int(-math.Floor(math.Log10(step)))) // 0 for steps of 1 s and up
	for i := 0; float64(i)*step <= span*1.0001; i++ {
		t := float64(i) * step
		xt = append(xt, tick{x(t), strconv.FormatFloat(t, 'f', decimals, 64) + " s"})
	}
	axes(&b, xt, latencyTicks(maxV, y), "time since the start (s)", "latency (log scale)")
	for _, line := range []struct {
		color string
		value func(Point) int64
	}{{"#2b7bb9", func(p Point) int64 { return p.P50us }}, {"#e08a1e", func(p Point) int64 { return p.P99us }}, {"#c0392b", func(p Point) int64 { return p.MaxUS }}} {
		var pts []string
		for _, p := range series {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.T), y(line.value(p))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, line.color, strings.Join(pts, " "))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="12"><tspan fill="#2b7bb9">p50</tspan> <tspan fill="#e08a1e">p99</tspan> <tspan fill="#c0392b">max</tspan></text></svg>`, padLeft)
	return b.String()
}

// distributionSVG plots latency against percentile, the x axis stretched
// towards the tail as HdrHistogram's plots are: x = log10(1/(1-q)).
func distributionSVG(dist []distPoint) string {
	var maxV int64 = 1
	for _, d := range dist {
		maxV = max(maxV, d.LatencyUS)
	}
	tail := func(q float64) float64 { return math.Log10(1 / (1 - math.Min(q, 99.99)/100)) } // 0 .. 4
	x := func(q float64) float64 { return padLeft + (chartW-padLeft-padRight)*tail(q)/4 }
	y := logScale(maxV)
	var b strings.Builder
	svgStart(&b, "latency distribution")
	var xt []tick
	for _, q := range []float64{0, 90, 99, 99.9, 99.99} {
		xt = append(xt, tick{x(q), strconv.FormatFloat(q, 'f', -1, 64) + "%"})
	}
	axes(&b, xt, latencyTicks(maxV, y), "percentile (%, stretched towards the tail)", "latency (log scale)")
	var pts []string
	for _, d := range dist {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(d.Percentile), y(d.LatencyUS)))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#2b7bb9" stroke-width="2" points="%s"/></svg>`, strings.Join(pts, " "))
	return b.String()
}

// logScale maps a latency in µs to y, 1 µs at the bottom of the plot and
// a little above maxV at its top.
func logScale(maxV int64) func(int64) float64 {
	top := math.Log10(float64(maxV) * 1.2)
	return func(v int64) float64 {
		return chartH - padBot - (chartH-padTop-padBot)*math.Log10(float64(max(v, 1)))/top
	}
}

// A tick is a labelled mark on an axis, at pos (x or y, in the SVG).
type tick struct {
	pos   float64
	label string
}

// latencyTicks returns a tick per power of ten from 1 µs up to the top
// of the scale, labelled with its unit.
func latencyTicks(maxV int64, y func(int64) float64) []tick {
	var ts []tick
	for v := int64(1); float64(v) <= float64(maxV)*1.2; v *= 10 {
		ts = append(ts, tick{y(v), latencyLabel(v)})
	}
	return ts
}

// latencyLabel writes a power of ten of µs with its unit: "100 µs", "1 ms".
func latencyLabel(us int64) string {
	switch {
	case us >= 1_000_000:
		return strconv.FormatInt(us/1_000_000, 10) + " s"
	case us >= 1000:
		return strconv.FormatInt(us/1000, 10) + " ms"
	}
	return strconv.FormatInt(us, 10) + " µs"
}

// niceStep returns a step of 1, 2 or 5 times a power of ten that cuts
// span into at most 10 parts.
func niceStep(span float64) float64 {
	step := math.Pow(10, math.Floor(math.Log10(span/10)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 10 {
			return step * m
		}
	}
	return step * 10
}

func svgStart(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, chartW, chartH, chartW, chartH, label)
}

// axes draws the two axes with their ticks, tick labels and titles.
func axes(b *strings.Builder, xTicks, yTicks []tick, xTitle, yTitle string) {
	x0, y0, x1, y1 := padLeft, chartH-padBot, chartW-padRight, padTop
	fmt.Fprintf(b, `<g class="axis x"><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#555"/>`, x0, y0, x1, y0)
	for _, t := range xTicks {
		fmt.Fprintf(b, `<g class="tick"><line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#555"/><text x="%.1f" y="%.0f" font-size="11" text-anchor="middle">%s</text></g>`,
			t.pos, y0, t.pos, y0+5, t.pos, y0+18, template.HTMLEscapeString(t.label))
	}
	fmt.Fprintf(b, `<text class="title" x="%.0f" y="%.0f" font-size="12" text-anchor="middle">%s</text></g>`, (x0+x1)/2, chartH-10, template.HTMLEscapeString(xTitle))
	fmt.Fprintf(b, `<g class="axis y"><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#555"/>`, x0, y1, x0, y0)
	for _, t := range yTicks {
		fmt.Fprintf(b, `<g class="tick"><line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" font-size="11" text-anchor="end" dominant-baseline="middle">%s</text></g>`,
			x0, t.pos, x1, t.pos, x0-6, t.pos, template.HTMLEscapeString(t.label))
	}
	fmt.Fprintf(b, `<text class="title" x="14" y="%.0f" font-size="12" transform="rotate(-90 14 %.0f)" text-anchor="middle">%s</text></g>`, (y0+y1)/2, (y0+y1)/2, template.HTMLEscapeString(yTitle))
}

var reportPage = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}pre{background:#f4f4f4;padding:1em}</style>
</head><body>
<h1>{{.Title}}</h1>
<pre>{{.Summary}}</pre>
<h2>Latency over time</h2>
{{.OverTime}}
<h2>Latency distribution</h2>
{{.Dist}}
<script type="application/json" id="data">{{.Data}}</script>
</body></html>
`))
