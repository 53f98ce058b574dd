package bench

import (
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The report's charts have axes with tick values and units, as chromium
// renders the page (issue 17): time in seconds and percentiles across,
// latency in µs, ms or s up, values in order along their axis, inside
// the chart, and the latencies measured inside the range the ticks span.
func TestReportAxesInChromium(t *testing.T) {
	var n atomic.Int64
	addr := serve(t, counting(&n))
	res := run(t, Config{Mode: PingPong, Addr: addr, Conns: 2, Duration: 2100 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "run.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.WriteHTML(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	dom := chromiumDOM(t, path)
	svgs := regexp.MustCompile(`(?s)<svg\b.*?</svg>`).FindAllString(dom, -1)
	if len(svgs) != 2 {
		t.Fatalf("the rendered page has %d charts, want 2:\n%s", len(svgs), dom)
	}
	maxUS := float64(res.LatencyUS.Max)
	for i, c := range []struct {
		label  string
		xLabel *regexp.Regexp
		xTitle string
	}{
		{"latency over time", regexp.MustCompile(`^(\d+(\.\d+)?) s$`), "(s)"},
		{"latency distribution", regexp.MustCompile(`^(\d+(\.\d+)?)%$`), "percentile"},
	} {
		var svg node
		if err := xml.Unmarshal([]byte(svgs[i]), &svg); err != nil {
			t.Fatalf("chart %d: %v", i, err)
		}
		if got := svg.attr("aria-label"); got != c.label {
			t.Errorf("chart %d is %q, want %q", i, got, c.label)
		}
		width, _ := strconv.ParseFloat(svg.attr("width"), 64)
		height, _ := strconv.ParseFloat(svg.attr("height"), 64)

		x := svg.find("axis x")
		xs := checkTicks(t, c.label+" x axis", x, c.xLabel, "x", width, 1)
		if title := x.title(); !strings.Contains(title, c.xTitle) {
			t.Errorf("%s: x axis title %q lacks %q", c.label, title, c.xTitle)
		}
		if c.label == "latency over time" && xs[len(xs)-1] < res.Series[len(res.Series)-1].T {
			t.Errorf("%s: the x ticks end at %v s, before the last point at %v s", c.label, xs[len(xs)-1], res.Series[len(res.Series)-1].T)
		}
		if c.label == "latency distribution" && (xs[0] != 0 || xs[len(xs)-1] != 99.99) {
			t.Errorf("%s: x ticks %v, want 0%% to 99.99%%", c.label, xs)
		}

		y := svg.find("axis y")
		ys := checkTicks(t, c.label+" y axis", y, regexp.MustCompile(`^(\d+) (µs|ms|s)$`), "y", height, -1)
		if title := y.title(); !strings.Contains(title, "latency") {
			t.Errorf("%s: y axis title %q", c.label, title)
		}
		if top := ys[len(ys)-1]; top*10 <= maxUS || ys[0] > 1 {
			t.Errorf("%s: y ticks from %v µs to %v µs do not span the latencies measured, up to %v µs", c.label, ys[0], top, maxUS)
		}
	}
}

// checkTicks checks an axis's ticks: labels of the form re (value, then
// unit), values increasing, and positions (attribute pos of the text)
// inside 0..size, moving the way dir says as the values grow. It returns
// the values, in µs for latencies.
func checkTicks(t *testing.T, what string, axis *node, re *regexp.Regexp, pos string, size float64, dir float64) []float64 {
	t.Helper()
	if axis == nil {
		t.Fatalf("%s: none in the rendered chart", what)
	}
	var values []float64
	last := math.Inf(-int(dir))
	for _, g := range axis.Children {
		if g.attr("class") != "tick" {
			continue
		}
		text := g.child("text")
		m := re.FindStringSubmatch(strings.TrimSpace(text.Text))
		if m == nil {
			t.Errorf("%s: tick label %q, want a value and its unit", what, text.Text)
			continue
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		if unit, ok := map[string]float64{"µs": 1, "ms": 1e3, "s": 1e6}[m[len(m)-1]]; ok {
			v *= unit // a latency, in µs
		}
		p, _ := strconv.ParseFloat(text.attr(pos), 64)
		if p < 0 || p > size {
			t.Errorf("%s: tick %q at %s=%v, outside the chart (0..%v)", what, text.Text, pos, p, size)
		}
		if len(values) > 0 && (v <= values[len(values)-1] || (p-last)*dir <= 0) {
			t.Errorf("%s: tick %q (%s=%v) out of order after %v", what, text.Text, pos, p, values[len(values)-1])
		}
		values, last = append(values, v), p
	}
	if len(values) < 2 {
		t.Fatalf("%s: %d ticks, want 2 or more", what, len(values))
	}
	return values
}

// A node is an element of the rendered SVG.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []node     `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n *node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// find returns the first element below n with class class, or nil.
func (n *node) find(class string) *node {
	for i := range n.Children {
		c := &n.Children[i]
		if c.attr("class") == class {
			return c
		}
		if f := c.find(class); f != nil {
			return f
		}
	}
	return nil
}

func (n *node) child(name string) *node {
	for i := range n.Children {
		if n.Children[i].XMLName.Local == name {
			return &n.Children[i]
		}
	}
	return &node{}
}

// title is the text of an axis's title.
func (n *node) title() string { return n.find("title").Text }
