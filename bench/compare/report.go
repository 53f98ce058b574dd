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
			case t.sc.mode != "idle" && x.ownFrac < noisy*x.busyFrac:
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

// target is one of the performance targets, checked on medians.
type target struct {
	what  string
	value float64
	min   float64
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
	if tables["oneshot"] == nil && tables["pingpong50"] == nil && tables["pingpong1000"] == nil && tables["idle"] == nil {
		return nil // a run of the relays alone
	}
	for _, sc := range [][3]any{{"oneshot", "oneshot c=50", 0.90}, {"pingpong50", "pingpong c=50", 0.97}, {"pingpong1000", "pingpong c=1000", 0.97}} {
		sc, title, vsC := sc[0].(string), sc[1].(string), sc[2].(float64)
		q := med(sc, "tcpkit-quiet", gen, perBusy)
		ts = append(ts, target{"tcpkit epoll --quiet ÷ C, per busy core, " + title, ratio(q, med(sc, "c", gen, perBusy)), vsC})
		if sc != "oneshot" {
			ts = append(ts, target{"tcpkit epoll --quiet ÷ gnet, per busy core, " + title, ratio(q, med(sc, "gnet", gen, perBusy)), 1})
		}
		ts = append(ts, target{"tcpkit epoll (output to /dev/null) ÷ tcpkit epoll --quiet, per busy core, " + title,
			ratio(med(sc, "tcpkit", gen, perBusy), q), 0.9})
	}
	if k := med("idle", "tcpkit-quiet", gen, kibPerConn); !math.IsNaN(k) {
		ts = append(ts, target{"tcpkit epoll: 1 ÷ KiB of RSS per idle connection (≤ 1 KiB)", 1 / k, 1})
	}
	ts = append(ts, target{"C server core busy under the generator, pingpong c=50", med("pingpong50", "c", gen, busyFrac), 0.85})
	if gen != "c" {
		ts = append(ts, target{"generator efficiency: tcpkit bench ÷ C generator, raw rate against the C server, pingpong c=50",
			ratio(med("pingpong50", "c", gen, rawRate), med("pingpong50", "c", "c", rawRate)), 0.9})
	}
	return ts
}

func writeTargets(w io.Writer, ts []target) {
	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | needed | |")
	fmt.Fprintln(w, "|---|--:|--:|---|")
	for _, t := range ts {
		verdict := "n/a"
		if !math.IsNaN(t.value) {
			verdict = "FAIL"
			if t.value >= t.min {
				verdict = "ok"
			}
		}
		fmt.Fprintf(w, "| %s | %s | ≥ %s | %s |\n", t.what, dec(t.value, 2), dec(t.min, 2), verdict)
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
