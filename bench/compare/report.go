package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// noisy flags a run whose server process used less than this share of
// its core's busy time. On a quiet machine it uses nearly all of it (the
// softirq work done in its context is charged to it).
const noisy = 0.8

// row is one line of a scenario's table: every round's result for an entry.
type row struct {
	e    entry
	runs []result
}

// table is a scenario with its rows, in the order of servers().
type table struct {
	sc   scenario
	rows []*row
}

// ok returns the runs that succeeded.
func (r *row) ok() []result {
	var rs []result
	for _, x := range r.runs {
		if x.err == nil {
			rs = append(rs, x)
		}
	}
	return rs
}

// median of f over the successful runs; NaN when there are none or f
// reports nothing (NaN) for all of them.
func (r *row) median(f func(result) float64) float64 {
	var v []float64
	for _, x := range r.ok() {
		if y := f(x); !math.IsNaN(y) {
			v = append(v, y)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func perBusy(x result) float64  { return x.perBusy }
func perOwn(x result) float64   { return x.perOwn }
func rawRate(x result) float64  { return x.gen.RatePerS }
func busyFrac(x result) float64 { return x.busyFrac }
func ownFrac(x result) float64  { return x.ownFrac }
func latency(q string) func(result) float64 {
	return func(x result) float64 {
		if v, ok := x.gen.LatencyUS[q]; ok {
			return v
		}
		return math.NaN()
	}
}

// held is the number of idle connections the generator held.
func held(x result) float64 {
	if x.gen.Held != nil {
		return *x.gen.Held
	}
	return float64(x.gen.Connections)
}

// kibPerConn is the server's RSS growth per held connection.
func kibPerConn(x result) float64 {
	if h := held(x); h > 0 && x.rssPeak > 0 {
		return float64(x.rssPeak-x.rssStart) / h
	}
	return math.NaN()
}

func benchKiBPerConn(x result) float64 {
	if x.gen.KiBPerConn != nil {
		return *x.gen.KiBPerConn
	}
	return math.NaN()
}

// find returns the row for server key loaded by gen, or nil.
func (t *table) find(key, gen string) *row {
	for _, r := range t.rows {
		if r.e.srv.key == key && r.e.gen == gen {
			return r
		}
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// writeTable writes a scenario's markdown table, then the failed runs.
func writeTable(w io.Writer, t *table, gen string) {
	fmt.Fprintf(w, "## %s\n\n", t.sc.title)
	c, node := t.find("c", gen), t.find("node", gen)
	ref := func(r *row, f func(result) float64) float64 {
		if r == nil {
			return math.NaN()
		}
		return r.median(f)
	}
	if t.sc.mode == "idle" {
		fmt.Fprintln(w, "| server | held | RSS at start | RSS held (peak) | KiB/conn | × C | × Node | bench's KiB/conn | errors |")
		fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
		cK, nK := ref(c, kibPerConn), ref(node, kibPerConn)
		for _, r := range t.rows {
			k := r.median(kibPerConn)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.e.label(gen)+okNote(r),
				num(r.median(held)), mib(r.median(func(x result) float64 { return float64(x.rssStart) })),
				mib(r.median(func(x result) float64 { return float64(x.rssPeak) })),
				dec(k, 2), dec(ratio(k, cK), 2), dec(ratio(k, nK), 2), dec(r.median(benchKiBPerConn), 2),
				num(r.median(result.errorCount)))
		}
	} else {
		fmt.Fprintln(w, "| server | per busy core (ex/s) | × C | × Node | raw rate (ex/s) | server core busy | server process CPU | p50 µs | p99 µs | errors | RSTs sent |")
		fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		cB, nB := ref(c, perBusy), ref(node, perBusy)
		for _, r := range t.rows {
			b := r.median(perBusy)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.e.label(gen)+okNote(r),
				num(b), dec(ratio(b, cB), 2), dec(ratio(b, nB), 2), num(r.median(rawRate)),
				pct(r.median(busyFrac)), pct(r.median(ownFrac)), dec(r.median(latency("p50")), 0), dec(r.median(latency("p99")), 0),
				num(r.median(result.errorCount)), num(r.median(func(x result) float64 { return float64(x.rsts) })))
		}
	}
	fmt.Fprintln(w)
	for _, r := range t.rows {
		for i, x := range r.runs {
			switch {
			case x.err != nil:
				fmt.Fprintf(w, "- %s, round %d failed: %s\n", r.e.label(gen), i+1, oneLine(x.err.Error()))
			case t.sc.mode == "idle" && held(x) < float64(t.sc.conns):
				fmt.Fprintf(w, "- %s, round %d: held only %s of %s connections\n",
					r.e.label(gen), i+1, num(held(x)), num(float64(t.sc.conns)))
			case t.sc.mode != "idle" && x.noisy():
				fmt.Fprintf(w, "- %s, round %d: noisy, the server process had only %s of its core's %s busy time: something else ran there\n",
					r.e.label(gen), i+1, pct(x.ownFrac), pct(x.busyFrac))
			}
		}
	}
	if slices.ContainsFunc(t.rows, func(r *row) bool {
		return slices.ContainsFunc(r.ok(), func(x result) bool { return x.approx })
	}) {
		fmt.Fprintln(w, "- The generator reported no measured window: the server core's busy time is over the last `duration_s` before it exited (teardown included).")
	}
	fmt.Fprintln(w)
}

// target is one of the issues' performance targets. A ratio of two
// servers is judged on the median of the ratios of each round, in which
// both were measured seconds apart (rounds); anything else on the
// median over the rounds.
type target struct {
	what   string
	value  float64
	min    float64
	atMost bool      // min is a ceiling: value must not exceed it
	rounds []float64 // a paired ratio's value in each round
	noisy  []bool    // by round: one of its two runs was noisy (see noisy)
	clean  float64   // the median of the rounds that were not noisy, NaN if none or all were
}

// paired is the target that a's figure is at least least times b's, in
// scenario sc, round by round.
func paired(tables map[string]*table, what, sc, a, ga, b, gb string, f func(result) float64, least float64) target {
	t := target{what: what, value: math.NaN(), clean: math.NaN(), min: least}
	tb := tables[sc]
	if tb == nil {
		return t
	}
	ra, rb := tb.find(a, ga), tb.find(b, gb)
	if ra == nil || rb == nil {
		return t
	}
	var ok, clean []float64
	for i := range min(len(ra.runs), len(rb.runs)) {
		x, y := ra.runs[i], rb.runs[i]
		v := math.NaN()
		if x.err == nil && y.err == nil {
			v = ratio(f(x), f(y))
		}
		isNoisy := x.noisy() || y.noisy()
		t.rounds, t.noisy = append(t.rounds, v), append(t.noisy, isNoisy)
		if !math.IsNaN(v) {
			ok = append(ok, v)
			if !isNoisy {
				clean = append(clean, v)
			}
		}
	}
	// Every round counts toward the verdict: leaving noisy rounds out
	// would choose which rounds to believe. Their median is shown beside
	// it, for the reader to weigh.
	t.value, t.clean = medianOf(ok), math.NaN()
	if len(clean) > 0 && len(clean) < len(ok) {
		t.clean = medianOf(clean)
	}
	return t
}

// noisy reports whether something else ran on the server's core during
// a load run: the server process had much less of it than it was busy.
func (x result) noisy() bool {
	return x.busyFrac > 0 && x.ownFrac < noisy*x.busyFrac
}

// medianOf is the median of v, NaN when it is empty.
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func targets(tables map[string]*table, gen string) []target {
	var ts []target
	med := func(sc, key, g string, f func(result) float64) float64 {
		if t := tables[sc]; t != nil {
			if r := t.find(key, g); r != nil {
				return r.median(f)
			}
		}
		return math.NaN()
	}
	// Issue 8's targets for the epoll engine, per busy server core.
	if tables["oneshot"] == nil && tables["pingpong50"] == nil && tables["pingpong1000"] == nil && tables["idle"] == nil && tables["pingpong500"] == nil {
		return nil // a run of the relays alone
	}
	for _, sc := range [][3]any{{"oneshot", "oneshot c=50", 0.90}, {"pingpong50", "pingpong c=50", 0.97}, {"pingpong1000", "pingpong c=1000", 0.97}} {
		sc, title, vsC := sc[0].(string), sc[1].(string), sc[2].(float64)
		ts = append(ts, paired(tables, "tcpkit epoll --quiet ÷ C, per busy core, "+title, sc, "tcpkit-quiet", gen, "c", gen, perBusy, vsC))
		if sc != "oneshot" {
			ts = append(ts, paired(tables, "tcpkit epoll --quiet ÷ gnet, per busy core, "+title, sc, "tcpkit-quiet", gen, "gnet", gen, perBusy, 1))
		}
		ts = append(ts, paired(tables, "tcpkit epoll (output to /dev/null) ÷ tcpkit epoll --quiet, per busy core, "+title,
			sc, "tcpkit", gen, "tcpkit-quiet", gen, perBusy, 0.9))
	}
	// KiB of RSS per idle connection: issue 8's for plain TCP, issue 14's
	// for what the epoll engine took over.
	for _, k := range []struct {
		key, what string
		most      float64
	}{
		{"tcpkit-quiet", "tcpkit epoll", 1},
		{"tcpkit-proxy", "tcpkit epoll, PROXY v2", 1},
		{"tcpkit-tls", "tcpkit epoll, TLS", 1.5},
		{"tcpkit-unix", "tcpkit epoll, Unix socket", 1},
	} {
		if v := med("idle", k.key, gen, kibPerConn); !math.IsNaN(v) {
			ts = append(ts, target{what: k.what + ": KiB of RSS per idle connection", value: v, min: k.most, atMost: true})
		}
	}
	// Issue 14's: the PROXY protocol and TLS on the loop, per server
	// CPU-second as it says, and per busy core as above. On a machine
	// others share the process's own CPU time is the steadier of the
	// two: another process on the server's core adds to its busy time.
	if tables["pingpong500"] != nil {
		for _, per := range []struct {
			what string
			f    func(result) float64
		}{{"per server process CPU-second", perOwn}, {"per busy core", perBusy}} {
			ts = append(ts,
				paired(tables, "tcpkit epoll, PROXY v2 ÷ plain, "+per.what+", pingpong c=500", "pingpong500", "tcpkit-proxy", gen, "tcpkit-quiet", gen, per.f, 0.95),
				paired(tables, "tcpkit TLS, epoll ÷ std engine, "+per.what+", pingpong c=500", "pingpong500", "tcpkit-tls", gen, "tcpkit-std-tls", gen, per.f, 1.15))
		}
	}
	ts = append(ts, target{what: "C server core busy under the generator, pingpong c=50", value: med("pingpong50", "c", gen, busyFrac), min: 0.85})
	if gen != "c" {
		ts = append(ts, paired(tables, "generator efficiency: tcpkit bench ÷ C generator, raw rate against the C server, pingpong c=50",
			"pingpong50", "c", gen, "c", "c", rawRate, 0.9))
	}
	return ts
}

func writeTargets(w io.Writer, ts []target) {
	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "A ratio is the median of each round's ratio, both servers measured seconds apart in the round. "+
		"A round marked * was noisy (one of its runs shared the server core with another process): "+
		"it counts like any other, and the median of the other rounds is shown beside the figure.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | rounds | measured | needed | |")
	fmt.Fprintln(w, "|---|---|--:|--:|---|")
	for _, t := range ts {
		if math.IsNaN(t.value) && len(t.rounds) == 0 {
			continue // its scenario was not run
		}
		verdict := "n/a"
		if !math.IsNaN(t.value) {
			verdict = "FAIL"
			if t.value >= t.min && !t.atMost || t.value <= t.min && t.atMost {
				verdict = "ok"
			}
		}
		need := "≥ " + dec(t.min, 2)
		if t.atMost {
			need = "≤ " + dec(t.min, 2)
		}
		var rounds []string
		for i, v := range t.rounds {
			r := dec(v, 2)
			if t.noisy[i] {
				r += "*"
			}
			rounds = append(rounds, r)
		}
		value := dec(t.value, 2)
		if len(t.rounds) > 0 && !math.IsNaN(t.clean) {
			value += " (without *: " + dec(t.clean, 2) + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.what, strings.Join(rounds, ", "), value, need, verdict)
	}
	fmt.Fprintln(w)
}

func okNote(r *row) string {
	if n := len(r.ok()); n < len(r.runs) {
		return fmt.Sprintf(" (%d of %d runs)", n, len(r.runs))
	}
	return ""
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// num formats a count with thousands separators.
func num(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func dec(v float64, places int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', places, 64)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*v)
}

func mib(kib float64) string {
	if math.IsNaN(kib) || kib <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", kib/1024)
}
