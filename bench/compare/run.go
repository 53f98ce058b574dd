package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
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

	// A variant of tcpkit's, for what the epoll engine took over from
	// the std engine: the flags tcpkit bench needs to load it, whether it
	// listens on the Unix socket rather than the port, how much longer
	// than -idle-hold the idle scenario needs to open its connections (a
	// TLS handshake each), and the scenarios it runs in (see scenario).
	gen       func(b *binaries) []string
	unix      bool
	idleExtra time.Duration
	only      []string
	relay     func(b *binaries, port, backend int) []string // a relay: its command line, relaying port to backend
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
	variant := func(engine string, more func(b *binaries) []string) func(*binaries, int, bool) []string {
		return func(b *binaries, port int, keepOpen bool) []string {
			return append(tcpkit(engine, true)(b, port, keepOpen), more(b)...)
		}
	}
	tlsFlags := func(b *binaries) []string { return []string{"--tls-cert", b.cert, "--tls-key", b.key} }
	tlsGen := func(*binaries) []string { return []string{"--tls", "--insecure"} }
	variants := []server{
		{key: "tcpkit-proxy", label: "tcpkit epoll, PROXY v2", goRT: true,
			args: variant("epoll", func(*binaries) []string { return []string{"--proxy-protocol"} }),
			gen:  func(*binaries) []string { return []string{"--send-proxy", "v2"} }, only: []string{"idle", "pingpong500"}},
		{key: "tcpkit-tls", label: "tcpkit epoll, TLS", goRT: true, args: variant("epoll", tlsFlags), gen: tlsGen,
			idleExtra: 15 * time.Second, only: []string{"idle", "pingpong500"}},
		{key: "tcpkit-std-tls", label: "tcpkit std, TLS", goRT: true, args: variant("std", tlsFlags), gen: tlsGen,
			idleExtra: 15 * time.Second, only: []string{"idle", "pingpong500"}},
		{key: "tcpkit-unix", label: "tcpkit epoll, Unix socket", goRT: true, unix: true,
			args: variant("epoll", func(b *binaries) []string { return []string{"--unix", b.sock} }),
			gen:  func(b *binaries) []string { return []string{"--unix", b.sock} }, only: []string{"idle"}},
	}
	return append([]server{
		{key: "c", label: "C epoll", args: func(b *binaries, port int, keepOpen bool) []string {
			mode := "reply"
			if keepOpen {
				mode = "keep-open"
			}
			return []string{b.cServer, strconv.Itoa(port), mode}
		}},
		{key: "tcpkit-quiet", label: "tcpkit epoll --quiet", goRT: true, args: tcpkit("epoll", true)},
		{key: "tcpkit", label: "tcpkit epoll (output to /dev/null)", goRT: true, args: tcpkit("epoll", false)},
		{key: "tcpkit-std", label: "tcpkit std --quiet", goRT: true, args: tcpkit("std", true)},
		{key: "naive", label: "naive Go", goRT: true, args: goFlags(func(b *binaries) string { return b.naive })},
		{key: "gnet", label: "gnet v2", goRT: true, args: goFlags(func(b *binaries) string { return b.gnet })},
		{key: "node", label: "Node (seed)", args: func(b *binaries, port int, keepOpen bool) []string {
			a := []string{b.node, b.nodeScript, strconv.Itoa(port)}
			if keepOpen {
				a = append(a, "--keep-open")
			}
			return a
		}},
	}, append(variants, relays()...)...)
}

// scenario is one load shape, run against the servers (or, for a
// relay scenario, the relays, in front of a backend).
type scenario struct {
	key      string // its name in -scenarios
	title    string
	mode     string // the generator's mode
	conns    int
	keepOpen bool // the servers' mode: keep-open, or reply (the seed)

	// servers, if set, are the only servers it runs; otherwise every
	// server with no only list, and those whose list names it.
	servers []string
	relay   bool // the relays are measured, with a backend behind them on the generator's core
}

func scenarios(idleConns int) []scenario {
	return []scenario{
		{key: "oneshot", title: "oneshot c=50", mode: "oneshot", conns: 50},
		{key: "pingpong50", title: "pingpong c=50", mode: "pingpong", conns: 50, keepOpen: true},
		{key: "pingpong1000", title: "pingpong c=1000", mode: "pingpong", conns: 1000, keepOpen: true},
		{key: "idle", title: fmt.Sprintf("idle %d connections", idleConns), mode: "idle", conns: idleConns, keepOpen: true},
		// What the epoll engine took over: PROXY protocol and TLS, each
		// beside its reference, plain TCP and the std engine.
		{key: "pingpong500", title: "pingpong c=500: PROXY protocol and TLS", mode: "pingpong", conns: 500, keepOpen: true,
			servers: []string{"tcpkit-quiet", "tcpkit-proxy", "tcpkit-tls", "tcpkit-std-tls"}},
		{key: "relay-stream", title: "relay, one stream", mode: "stream", conns: 1, relay: true},
		{key: "relay-oneshot", title: "relay, oneshot c=50", mode: "oneshot", conns: 50, relay: true},
	}
}

// runs reports whether the scenario runs s.
func (sc scenario) runs(s server) bool {
	if sc.servers != nil {
		return slices.Contains(sc.servers, s.key)
	}
	return s.only == nil || slices.Contains(s.only, sc.key)
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
	perOwn   float64 // exchanges per second of the server process's own CPU time
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
	network, target := "tcp", fmt.Sprintf("127.0.0.1:%d", port)
	if e.srv.unix {
		network, target = "unix", b.sock
	}
	if err := waitAccepting(srv, network, target, 10*time.Second, stop); err != nil {
		return result{err: err}
	}

	res.rssStart, _ = vmRSSKiB(srv.pid())
	rsts0, _ := tcpOutRsts()
	smp := startSampler(st.serverCPU, srv.pid(), st.samplePeriod)
	begin := time.Now()
	res.gen, err = runGenerator(b, st, sc, e, port, srv.pid(), stop)
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
	if own := sp.own / userHZ; own > 0 {
		res.perOwn = res.gen.Exchanges / own
	}
	if res.busyS > 0 {
		res.perBusy = res.gen.Exchanges / res.busyS
	}
	return res
}

// waitAccepting dials the server until a connection succeeds.
func waitAccepting(p *proc, network, addr string, timeout time.Duration, stop <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout(network, addr, 200*time.Millisecond)
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
func genArgs(b *binaries, st settings, sc scenario, e entry, port, serverPID int) []string {
	args := []string{"taskset", "-c", strconv.Itoa(st.genCPU)}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := strconv.Itoa(sc.conns)
	d := st.d
	if sc.mode == "idle" {
		d = st.idleHold + e.srv.idleExtra
	}
	if e.gen == "c" {
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
	if e.srv.gen != nil {
		args = append(args, e.srv.gen(b)...)
	}
	if e.srv.unix {
		return args // the socket is in its flags
	}
	return append(args, addr)
}

// runGenerator runs the generator to completion and parses its JSON line.
func runGenerator(b *binaries, st settings, sc scenario, e entry, port, serverPID int, stop <-chan struct{}) (genResult, error) {
	var out bytes.Buffer
	args := genArgs(b, st, sc, e, port, serverPID)
	p, err := startProc("generator", args, nil, &out)
	if err != nil {
		return genResult{}, err
	}
	timeout := st.warmup + max(st.d, st.idleHold+e.srv.idleExtra) + 60*time.Second
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
