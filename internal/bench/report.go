package bench

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// WriteHTML writes a self-contained page (no scripts, nothing fetched)
// with two charts: latency over time, one point a second (p50, p99, max),
// and the latency distribution (latency against percentile). The data of
// both is in the page too, as JSON, for tools.
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

const chartW, chartH, pad = 720.0, 260.0, 48.0

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
	x := func(t float64) float64 { return pad + (chartW-2*pad)*t/max(maxT, 1) }
	y := logScale(maxV)
	var b strings.Builder
	svgStart(&b, "latency over time")
	axes(&b, "seconds", fmt.Sprintf("µs (log, max %d)", maxV))
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
	b.WriteString(`<text x="60" y="20" font-size="12"><tspan fill="#2b7bb9">p50</tspan> <tspan fill="#e08a1e">p99</tspan> <tspan fill="#c0392b">max</tspan></text></svg>`)
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
	x := func(q float64) float64 { return pad + (chartW-2*pad)*tail(q)/4 }
	y := logScale(maxV)
	var b strings.Builder
	svgStart(&b, "latency distribution")
	axes(&b, "percentile (0, 90, 99, 99.9, 99.99)", fmt.Sprintf("µs (log, max %d)", maxV))
	var pts []string
	for _, d := range dist {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(d.Percentile), y(d.LatencyUS)))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#2b7bb9" stroke-width="2" points="%s"/></svg>`, strings.Join(pts, " "))
	return b.String()
}

func logScale(maxV int64) func(int64) float64 {
	top := math.Log10(float64(maxV) * 1.2)
	return func(v int64) float64 {
		return chartH - pad - (chartH-2*pad)*math.Log10(float64(max(v, 1)))/top
	}
}

func svgStart(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" role="img" aria-label="%s">`, chartW, chartH, label)
}

func axes(b *strings.Builder, xLabel, yLabel string) {
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#555"/>`, pad, chartH-pad, chartW-pad, chartH-pad)
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#555"/>`, pad, pad/2, pad, chartH-pad)
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle">%s</text>`, chartW/2, chartH-12, template.HTMLEscapeString(xLabel))
	fmt.Fprintf(b, `<text x="12" y="%.0f" font-size="12" transform="rotate(-90 12 %.0f)" text-anchor="middle">%s</text>`, chartH/2, chartH/2, template.HTMLEscapeString(yLabel))
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
