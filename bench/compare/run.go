package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// server is one of the servers compared, or one of the relays (relay
// set: then args gets the backend's port in keepOpen's stead, see
// relay.go).
type server struct {
	key   string // its name in -servers
	label string // its name in the tables
	goRT  bool   // a Go program: runs with GOMAXPROCS=1
	args  func(b *binaries, port int, keepOpen bool) []string
	relay func(b *binaries, port, backend int) []string // a relay: its command line, relaying port to backend
}

func servers() []server {
	tcpkit := func(engine string, quiet bool) func(*binaries, int, bool) []string {
		return func(b *binaries, port int, keepOpen bool) []string {
			a := []string{b.tcpkit, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--engine", engine}
			if quiet {
				a = append(a, "--quiet")
			}
			if keepOpen {
				a = append(a, "--keep-open")
			}
			return a
		}
	}
	goFlags := func(bin func(*binaries) string) func(*binaries, int, bool) []string {
		return func(b *binaries, port int, keepOpen bool) []string {
			a := []string{bin(b), "-port", strconv.Itoa(port)}
			if keepOpen {
				a = append(a, "-keep-open")
			}
			return a
		}
	}
	return append([]server{
		{"c", "C epoll", false, func(b *binaries, port int, keepOpen bool) []string {
			mode := "reply"
			if keepOpen {
				mode = "keep-open"
			}
			return []string{b.cServer, strconv.Itoa(port), mode}
		}, nil},
		{"tcpkit-quiet", "tcpkit epoll --quiet", true, tcpkit("epoll", true), nil},
		{"tcpkit", "tcpkit epoll (output to /dev/null)", true, tcpkit("epoll", false), nil},
		{"tcpkit-std", "tcpkit std --quiet", true, tcpkit("std", true), nil},
		{"naive", "naive Go", true, goFlags(func(b *binaries) string { return b.naive }), nil},
		{"gnet", "gnet v2", true, goFlags(func(b *binaries) string { return b.gnet }), nil},
		{"node", "Node (seed)", false, func(b *binaries, port int, keepOpen bool) []string {
			a := []string{b.node, b.nodeScript, strconv.Itoa(port)}
			if keepOpen {
				a = append(a, "--keep-open")
			}
			return a
		}, nil},
	}, relays()...)
}

// scenario is one load shape, run against every server (or, for a
// relay scenario, every relay, in front of a backend).
type scenario struct {
	key      string // its name in -scenarios
	title    string
	mode     string // the generator's mode
	conns    int
	keepOpen bool // the servers' mode: keep-open, or reply (the seed)
	relay    bool // the relays are measured, with a backend behind them on the generator's core
}

func scenarios(idleConns int) []scenario {
	return []scenario{
		{"oneshot", "oneshot c=50", "oneshot", 50, false, false},
		{"pingpong50", "pingpong c=50", "pingpong", 50, true, false},
		{"pingpong1000", "pingpong c=1000", "pingpong", 1000, true, false},
		{"idle", fmt.Sprintf("idle %d connections", idleConns), "idle", idleConns, true, false},
		{"relay-stream", "relay, one stream", "stream", 1, false, true},
		{"relay-oneshot", "relay, oneshot c=50", "oneshot", 50, false, true},
	}
}

// entry is one line of a scenario's table: a server and the generator
// that loads it.
type entry struct {
	srv server
	gen string // "tcpkit" or "c"
}

func (e entry) label(defaultGen string) string {
	if e.gen != defaultGen {
		return e.srv.label + ", C generator"
	}
	return e.srv.label
}

// settings are the flags every run shares.
type settings struct {
	d, warmup          time.Duration
	idleHold           time.Duration
	serverCPU, genCPU  int
	samplePeriod       time.Duration
	generatorBenchArgs []string // extra arguments for tcpkit bench
}

// genResult is the generator's JSON line. Fields a generator does not
// report stay at their zero value.
type genResult struct {
	Mode        string             `json:"mode"`
	Connections int                `json:"connections"`
	DurationS   float64            `json:"duration_s"`
	Exchanges   float64            `json:"exchanges"`
	RatePerS    float64            `json:"rate_per_s"`
	LatencyUS   map[string]float64 `json:"latency_us"`
	Errors      map[string]float64 `json:"errors"`
	WindowStart int64              `json:"window_start_unix_ns"`
	WindowEnd   int64              `json:"window_end_unix_ns"`
	Held        *float64           `json:"held"`
	KiBPerConn  *float64           `json:"server_kib_per_conn"`
	BytesPerS   float64            `json:"bytes_per_s"` // stream
}

// result is what one run measured.
type result struct {
	err      error
	gen      genResult
	busyS    float64 // the server core's busy seconds over the window: not idle
	busyFrac float64 // of the window's time on that core
	ownFrac  float64 // the server process's own CPU time, of the window's
	perBusy  float64 // exchanges per busy-core second
	approx   bool    // the window was inferred, not reported by the generator
	rsts     int64   // RSTs sent, machine-wide, over the whole run
	rssStart int64   // server VmRSS, KiB, before the generator starts
	rssPeak  int64   // server VmRSS, KiB, peak while the generator ran
}

func (r result) errorCount() float64 {
	var n float64
	for _, v := range r.gen.Errors {
		n += v
	}
	return n
}

// freePort picks a port outside the ephemeral range (so that the
// generator's own connections never take it) that nothing listens on.
func freePort() (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port in 20000-32000")
}

// runOne starts the server pinned to the server core, loads it with the
// generator pinned to the other, measures, and stops the server.
func runOne(b *binaries, st settings, sc scenario, e entry, stop <-chan struct{}) (res result) {
	port, err := freePort()
	if err != nil {
		return result{err: err}
	}
	var under []string // the program under test: a server, or a relay in front of a backend
	if sc.relay {
		backend, stopBackend, err := startBackend(b, st, sc, stop)
		if err != nil {
			return result{err: err}
		}
		defer stopBackend()
		if under = e.srv.relay(b, port, backend); under == nil {
			return result{err: fmt.Errorf("%s is not installed", e.srv.label)}
		}
	} else {
		under = e.srv.args(b, port, sc.keepOpen)
	}
	args := append([]string{"taskset", "-c", strconv.Itoa(st.serverCPU)}, under...)
	var env []string
	if e.srv.goRT {
		env = append(env, "GOMAXPROCS=1")
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return result{err: err}
	}
	defer devnull.Close()
	srv, err := startProc(e.srv.label, args, env, devnull)
	if err != nil {
		return result{err: err}
	}
	defer srv.stop(3 * time.Second)
	if err := waitAccepting(srv, port, 10*time.Second, stop); err != nil {
		return result{err: err}
	}

	res.rssStart, _ = vmRSSKiB(srv.pid())
	rsts0, _ := tcpOutRsts()
	smp := startSampler(st.serverCPU, srv.pid(), st.samplePeriod)
	begin := time.Now()
	res.gen, err = runGenerator(b, st, sc, e.gen, port, srv.pid(), stop)
	end := time.Now()
	smp.stop()
	rsts1, _ := tcpOutRsts()
	res.rsts = rsts1 - rsts0
	res.rssPeak = smp.peakRSS()
	if err != nil {
		res.err = err
		return res
	}
	if srv.exited() {
		res.err = fmt.Errorf("server died during the run: %s", srv.describe())
		return res
	}
	if sc.mode == "idle" {
		return res
	}

	// The server core's busy time over the generator's measured window.
	var from, to time.Time
	if res.gen.WindowStart > 0 && res.gen.WindowEnd > res.gen.WindowStart {
		from, to = time.Unix(0, res.gen.WindowStart), time.Unix(0, res.gen.WindowEnd)
	} else {
		// No window reported: take the last duration_s (or -d) before
		// the generator exited, which includes its teardown.
		res.approx = true
		d := st.d
		if res.gen.DurationS > 0 {
			d = time.Duration(res.gen.DurationS * float64(time.Second))
		}
		from, to = end.Add(-d), end
		if from.Before(begin) {
			from = begin
		}
	}
	sp, err := smp.between(from, to)
	if err != nil {
		res.err = err
		return res
	}
	window := to.Sub(from).Seconds()
	res.busyS = max(window-sp.idle/userHZ, 0)
	if window > 0 {
		res.busyFrac = res.busyS / window
		res.ownFrac = sp.own / userHZ / window
	}
	if res.busyS > 0 {
		res.perBusy = res.gen.Exchanges / res.busyS
	}
	return res
}

// waitAccepting dials the server until a connection succeeds.
func waitAccepting(p *proc, port int, timeout time.Duration, stop <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return errors.New(p.describe())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept on %s within %v: %v", p.name, addr, timeout, err)
		}
		select {
		case <-stop:
			return errInterrupted
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// genArgs is the generator's command line, pinned to the generator core.
func genArgs(b *binaries, st settings, sc scenario, gen string, port, serverPID int) []string {
	args := []string{"taskset", "-c", strconv.Itoa(st.genCPU)}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := strconv.Itoa(sc.conns)
	d := st.d
	if sc.mode == "idle" {
		d = st.idleHold
	}
	if gen == "c" {
		secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
		return append(args, b.cGen, "-m", sc.mode, "-c", c, "-d", secs(d), "-w", secs(st.warmup), addr)
	}
	// --max-errors: a few failed exchanges are reported in the JSON, not
	// a failed run (tcpkit bench exits 1 past the limit, which is 0 by
	// default).
	args = append(args, b.tcpkit, "bench", sc.mode, "-c", c, "-d", d.String(), "--json", "--max-errors", "1%")
	switch sc.mode {
	case "idle":
		args = append(args, "--server-pid", strconv.Itoa(serverPID))
	case "stream":
		args = append(args, "--warmup", st.warmup.String())
	default:
		args = append(args, "--warmup", st.warmup.String(), "--expect", "test")
	}
	args = append(args, st.generatorBenchArgs...)
	return append(args, addr)
}

// runGenerator runs the generator to completion and parses its JSON line.
func runGenerator(b *binaries, st settings, sc scenario, gen string, port, serverPID int, stop <-chan struct{}) (genResult, error) {
	var out bytes.Buffer
	args := genArgs(b, st, sc, gen, port, serverPID)
	p, err := startProc("generator", args, nil, &out)
	if err != nil {
		return genResult{}, err
	}
	timeout := st.warmup + max(st.d, st.idleHold) + 60*time.Second
	if err := waitProc(p, timeout, stop); err != nil {
		return genResult{}, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	// One JSON object, on one line (the C generator) or pretty-printed
	// (tcpkit bench), after anything else the generator printed.
	var res genResult
	text := out.String()
	i := strings.Index(text, "{")
	if i < 0 {
		return res, fmt.Errorf("no JSON from %s; stdout: %q; stderr: %q",
			strings.Join(args, " "), text, p.stderr.String())
	}
	if err := json.NewDecoder(strings.NewReader(text[i:])).Decode(&res); err != nil {
		return res, fmt.Errorf("the generator's JSON: %w; stdout: %q", err, text)
	}
	return res, nil
}
