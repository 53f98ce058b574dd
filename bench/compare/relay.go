package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// The relays compared: tcpkit relay (splice, and copying through its
// event loop), HAProxy in tcp mode on one thread, and socat forking a
// process per connection. Each is alone on the server core; behind it,
// on the generator's core, a backend: a sink for the stream (tcpkit
// serve --mode discard), the C server in reply mode for oneshot.

func relays() []server {
	tcpkit := func(extra ...string) func(*binaries, int, int) []string {
		return func(b *binaries, port, backend int) []string {
			return append(append([]string{b.tcpkit, "relay", "--quiet"}, extra...), "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(backend))
		}
	}
	return []server{
		{key: "relay", label: "tcpkit relay (splice)", goRT: true, relay: tcpkit()},
		{key: "relay-copy", label: "tcpkit relay --no-splice", goRT: true, relay: tcpkit("--no-splice")},
		{key: "haproxy", label: "HAProxy (tcp mode, 1 thread)", relay: haproxyArgs},
		{key: "socat", label: "socat (fork)", relay: func(b *binaries, port, backend int) []string {
			socat, err := exec.LookPath("socat")
			if err != nil {
				return nil
			}
			return []string{socat, fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,backlog=1024", port), "TCP:127.0.0.1:" + strconv.Itoa(backend)}
		}},
	}
}

// haproxyArgs writes a configuration for one HAProxy relay and returns
// its command line: tcp mode, one thread, no logging (tcpkit relay runs
// --quiet beside it), HAProxy's defaults otherwise (no splice).
func haproxyArgs(b *binaries, port, backend int) []string {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		return nil
	}
	cfg := filepath.Join(b.dir, fmt.Sprintf("haproxy-%d.cfg", port))
	text := fmt.Sprintf(`global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen relay
    bind 127.0.0.1:%d
    server backend 127.0.0.1:%d
`, port, backend)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil
	}
	return []string{haproxy, "-f", cfg, "-db"}
}

// startBackend starts the backend of a relay scenario on the generator's
// core and waits until it accepts.
func startBackend(b *binaries, st settings, sc scenario, stop <-chan struct{}) (int, func(), error) {
	port, err := freePort()
	if err != nil {
		return 0, nil, err
	}
	args := []string{"taskset", "-c", strconv.Itoa(st.genCPU)}
	var env []string
	if sc.mode == "stream" {
		args = append(args, b.tcpkit, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--mode", "discard", "--quiet")
		env = []string{"GOMAXPROCS=1"}
	} else {
		args = append(args, b.cServer, strconv.Itoa(port), "reply")
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, nil, err
	}
	p, err := startProc("backend", args, env, devnull)
	devnull.Close()
	if err != nil {
		return 0, nil, err
	}
	if err := waitAccepting(p, "tcp", "127.0.0.1:"+strconv.Itoa(port), 10*time.Second, stop); err != nil {
		p.stop(time.Second)
		return 0, nil, err
	}
	return port, func() { p.stop(3 * time.Second) }, nil
}

// mibPerS is a stream's raw throughput; mibPerBusy the same per second
// of the relay core's busy time.
func mibPerS(x result) float64 { return x.gen.BytesPerS / (1 << 20) }
func mibPerBusy(x result) float64 {
	if x.busyS <= 0 {
		return math.NaN()
	}
	return x.gen.BytesPerS * x.gen.DurationS / x.busyS / (1 << 20)
}

// writeRelayTable writes a relay scenario: each relay's medians, then
// tcpkit relay against HAProxy round by round. The two run seconds apart
// in each round, so their ratio within a round cancels most of what a
// shared machine does to both; the median of those ratios is the
// comparison.
func writeRelayTable(w io.Writer, t *table) {
	fmt.Fprintf(w, "## %s\n\n", t.sc.title)
	stream := t.sc.mode == "stream"
	if stream {
		fmt.Fprintln(w, "| relay | MiB/s | MiB per busy relay core-second | relay core busy | relay process CPU | errors |")
		fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
	} else {
		fmt.Fprintln(w, "| relay | per busy relay core (conn/s) | raw rate (conn/s) | relay core busy | relay process CPU | p50 µs | p99 µs | errors | RSTs sent |")
		fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	}
	for _, r := range t.rows {
		if stream {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.e.srv.label+okNote(r), num(r.median(mibPerS)), num(r.median(mibPerBusy)),
				pct(r.median(busyFrac)), pct(r.median(ownFrac)), num(r.median(result.errorCount)))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.e.srv.label+okNote(r), num(r.median(perBusy)), num(r.median(rawRate)),
			pct(r.median(busyFrac)), pct(r.median(ownFrac)), dec(r.median(latency("p50")), 0), dec(r.median(latency("p99")), 0),
			num(r.median(result.errorCount)), num(r.median(func(x result) float64 { return float64(x.rsts) })))
	}
	fmt.Fprintln(w)
	for _, p := range relayRatios(t) {
		fmt.Fprintf(w, "%s, %s ÷ %s, round by round: ", p.what, p.a, p.b)
		for i, v := range p.rounds {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprint(w, dec(v, 2))
		}
		fmt.Fprintf(w, "; median **%s**.\n\n", dec(p.median, 2))
	}
	for _, r := range t.rows {
		for i, x := range r.runs {
			if x.err != nil {
				fmt.Fprintf(w, "- %s, round %d failed: %s\n", r.e.srv.label, i+1, oneLine(x.err.Error()))
			} else if x.ownFrac < noisy*x.busyFrac {
				fmt.Fprintf(w, "- %s, round %d: noisy, the relay process had only %s of its core's %s busy time\n", r.e.srv.label, i+1, pct(x.ownFrac), pct(x.busyFrac))
			}
		}
	}
	fmt.Fprintln(w)
}

// A relayRatio is one ratio of tcpkit relay to HAProxy, per round.
type relayRatio struct {
	what, a, b string
	rounds     []float64
	median     float64
}

func relayRatios(t *table) []relayRatio {
	a, b := t.find("relay", "tcpkit"), t.find("haproxy", "tcpkit")
	if a == nil || b == nil {
		return nil
	}
	figs := []struct {
		what string
		f    func(result) float64
	}{{"per busy relay core", perBusy}, {"raw rate", rawRate}}
	if t.sc.mode == "stream" {
		figs = []struct {
			what string
			f    func(result) float64
		}{{"throughput", mibPerS}, {"throughput per busy relay core", mibPerBusy}}
	}
	var out []relayRatio
	for _, fg := range figs {
		p := relayRatio{what: fg.what, a: a.e.srv.label, b: b.e.srv.label}
		for i := range min(len(a.runs), len(b.runs)) {
			if a.runs[i].err == nil && b.runs[i].err == nil {
				if v := ratio(fg.f(a.runs[i]), fg.f(b.runs[i])); !math.IsNaN(v) {
					p.rounds = append(p.rounds, v)
				}
			}
		}
		p.median = medianOf(p.rounds)
		out = append(out, p)
	}
	return out
}

// relayTargets are issue 15's: one stream at least 0.95 of HAProxy's,
// oneshot connections per busy relay core at least 1.0 of HAProxy's,
// each the median of the rounds' paired ratios.
func relayTargets(tables map[string]*table) []target {
	var ts []target
	if tables["relay-stream"] != nil {
		ts = append(ts, paired(tables, "tcpkit relay ÷ HAProxy, one stream's throughput", "relay-stream",
			"relay", "tcpkit", "haproxy", "tcpkit", mibPerS, 0.95))
	}
	if tables["relay-oneshot"] != nil {
		ts = append(ts, paired(tables, "tcpkit relay ÷ HAProxy, oneshot connections per busy relay core", "relay-oneshot",
			"relay", "tcpkit", "haproxy", "tcpkit", perBusy, 1.0))
	}
	return ts
}
