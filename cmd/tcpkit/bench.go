package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"tcpkit/internal/bench"
)

const benchUsage = `Usage: tcpkit bench MODE [flags] [HOST:]PORT
       tcpkit bench merge [--json] RESULT.json...

Load a TCP server and measure it: exchanges per second, latency from an
HDR histogram (min, p50, p90, p99, p99.9, max), errors by kind, and the
change in the kernel's TCP counters (accept-queue overflows, resets,
retransmissions) over the run. docs/bench.md tells the whole of it.

Modes:
  oneshot   a connection per exchange: connect, send, read to the
            server's FIN, close (the seed's server). Connect time is
            reported apart.
  pingpong  -c persistent connections, one request outstanding on each
            (the seed's --keep-open server)
  stream    send chunks as fast as the server takes them (--echo: read
            the echo back); throughput in bytes/s
  idle      open -c connections and hold them until -d has passed; with
            --server-pid, the server's memory per connection

A run lasts -d (5s by default), or with -n alone until N exchanges (at
most 10m). With --rate the load is an open loop: exchanges are due on a
schedule, and latency counts from when each was due, so a server that
stalls shows in the latency instead of slowing the load. --rate
START:END ramps the rate up (or down) over --ramp.

The end of a run is clean: nothing more is sent, the exchanges in flight
get --drain-timeout to finish, and each connection closes with a FIN.
The exit code is 0 when the run passed, 1 when no exchange succeeded or
more failed than --max-errors allows (the summary is printed either way,
and one line on stderr says why), 2 for a wrong flag or argument.

Examples:
  tcpkit bench pingpong -c 50 -d 2s 5000
  tcpkit bench oneshot -c 50 -n 2000 --expect test 5001
  tcpkit bench pingpong -c 4 --rate 200:2000 --ramp 2s -d 3s 5000
  tcpkit bench pingpong --rate 2000 -d 2s --report run.html 5000
  tcpkit bench pingpong -c 10 -d 1s --json 5000 > a.json
  tcpkit bench merge a.json b.json

Flags:
`

// benchSafetyBound is how long -n alone may run.
const benchSafetyBound = 10 * time.Minute

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "merge" {
		return benchMerge(args[1:], stdout, stderr)
	}
	fs := newFlagSet("bench", benchUsage, stdout)
	var conns int
	var duration time.Duration
	var count int64
	const durationHelp = "how long to load: 5s if not given; with -n alone, until N exchanges, at most 10m"
	const countHelp = "stop after `N` exchanges; with -d too, at whichever comes first"
	fs.IntVar(&conns, "c", 50, "concurrent `connections` (long form --connections)")
	fs.IntVar(&conns, "connections", 50, "concurrent `connections` (short form -c)")
	fs.DurationVar(&duration, "d", 0, durationHelp+" (long form --duration)")
	fs.DurationVar(&duration, "duration", 0, durationHelp+" (short form -d)")
	fs.Int64Var(&count, "n", 0, countHelp+" (long form --requests)")
	fs.Int64Var(&count, "requests", 0, countHelp+" (short form -n)")
	warmup := fs.Duration("warmup", 0, "load for this long before measuring")
	var rate rateFlag
	fs.Var(&rate, "rate", "exchanges per second, all connections together: `RATE`, or START:END for a ramp over --ramp (0: as fast as replies come)")
	ramp := fs.Duration("ramp", 0, "with --rate START:END, how long the rate takes to go from START to END, then stays at END (default: all of -d)")
	ratePerConn := fs.Float64("rate-per-conn", 0, "exchanges per second on each connection")
	message := fs.String("message", bench.DefaultMessage, "what each exchange sends; {seq} and {conn} are replaced by numbers (escapes \\n \\r \\t \\\\ \\0 \\xHH)")
	messageFile := fs.String("message-file", "", "send this `file`'s bytes as they are, instead of --message ({seq} and {conn} are replaced too)")
	expect := fs.String("expect", "", "each reply must contain these `bytes` (escapes as --message), as connect's --expect; else it is a wrong_reply error")
	expectExact := fs.String("expect-exact", "", "each reply must be exactly these `bytes` (escapes as --message)")
	expectLen := fs.Int("expect-len", 0, "each reply must be `N` bytes long")
	connectTimeout := fs.Duration("connect-timeout", bench.DefaultConnectTimeout, "give up a connect after this long (a timeout error)")
	replyTimeout := fs.Duration("reply-timeout", bench.DefaultReplyTimeout, "give up waiting for a reply after this long (a timeout error)")
	drainTimeout := fs.Duration("drain-timeout", bench.DefaultDrainTimeout, "at the end, how long exchanges in flight get to finish and the server to close after our FIN; what is still in flight then is a timeout error")
	var maxErr maxErrors
	fs.Var(&maxErr, "max-errors", "the run fails (exit 1) when more exchanges failed than this: a `count` or a share such as 1%")
	chunk := fs.Int("chunk", 16<<10, "stream: `bytes` per write")
	echo := fs.Bool("echo", false, "stream: read the echo back and measure that")
	serverPID := fs.Int("server-pid", 0, "idle: the server's `PID`, to report its memory per connection")
	unixPath := fs.String("unix", "", "load the server on the Unix socket at `path` instead of TCP")
	sendProxy := fs.String("send-proxy", "", "send a PROXY protocol header, `v1` or v2, on each connection first")
	proxySrc := fs.String("proxy-src", "", "the client address the PROXY header claims, `IP:PORT` (default: our own)")
	var tlsFlags tlsClientFlags // as connect's
	tlsFlags.define(fs)
	jsonOut := fs.Bool("json", false, "print the result as JSON, for scripts and merge")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's CPU profile to `file`, for go tool pprof")
	report := fs.String("report", "", "also write a self-contained HTML page with latency charts to `FILE`")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(pos) == 0 {
		return usageError(stderr, "bench", "give a mode: oneshot, pingpong, stream or idle")
	}
	mode, err := bench.ParseMode(pos[0])
	if err != nil {
		return usageError(stderr, "bench", "%v", err)
	}
	network, addr := "tcp", "localhost:5000"
	switch {
	case len(pos) > 2:
		return usageError(stderr, "bench", "unexpected argument %q", pos[2])
	case *unixPath != "" && len(pos) == 2:
		return usageError(stderr, "bench", "give either --unix or HOST:PORT, not both")
	case *unixPath != "":
		if err := checkUnixPath(*unixPath); err != nil {
			return usageError(stderr, "bench", "%v", err)
		}
		network, addr = "unix", *unixPath
	case len(pos) == 2:
		if addr, err = parseTarget(pos[1]); err != nil {
			return usageError(stderr, "bench", "%v", err)
		}
	}
	if why := benchFlagConflict(mode, set, rate); why != "" {
		return usageError(stderr, "bench", "%s", why)
	}
	msg, why := benchMessage(*message, *messageFile)
	if why != "" {
		return usageError(stderr, "bench", "%s", why)
	}
	cfg := bench.Config{
		Mode: mode, Network: network, Addr: addr, Conns: conns, Duration: duration, Exchanges: count, Warmup: *warmup,
		Rate: rate.start, RateEnd: rate.end, Ramp: *ramp, RatePerConn: *ratePerConn, Message: msg,
		ExpectLen: *expectLen, ConnectTimeout: *connectTimeout, ReplyTimeout: *replyTimeout, DrainTimeout: *drainTimeout,
		ChunkSize: *chunk, Echo: *echo, ServerPID: *serverPID,
	}
	untilCount := count > 0 && duration == 0
	switch {
	case untilCount && rate.end > 0 && *ramp == 0:
		return usageError(stderr, "bench", "with -n alone a ramp needs its length: give --ramp")
	case untilCount:
		cfg.Duration = benchSafetyBound
	case duration == 0:
		cfg.Duration = 5 * time.Second
	}
	for _, e := range []struct {
		flag string
		text string
		into *[]byte
	}{{"--expect", *expect, &cfg.Expect}, {"--expect-exact", *expectExact, &cfg.ExpectExact}} {
		if e.text == "" {
			continue
		}
		if *e.into, err = unescape(e.text); err != nil {
			return usageError(stderr, "bench", "%s: %v", e.flag, err)
		}
	}
	if err := tlsFlags.check(fs); err != nil {
		return usageError(stderr, "bench", "%v", err)
	}
	tlsCfg, err := tlsFlags.config(addr)
	if err != nil {
		return usageError(stderr, "bench", "%v", err)
	}
	// Each connection first sends the PROXY header, then speaks TLS, as
	// connect's do. The header alone goes with the first request, and
	// pingpong keeps its fast generator.
	handshake, err := clientHandshake(*sendProxy, *proxySrc, tlsCfg, nil)
	if err != nil {
		return usageError(stderr, "bench", "%v", err)
	}
	switch {
	case handshake == nil:
	case tlsCfg == nil:
		cfg.Header, _ = proxyHeader(*sendProxy, *proxySrc) // checked by clientHandshake
	default:
		cfg.Prepare = func(nc net.Conn) (net.Conn, error) { return handshake(ctx, nc) }
	}
	if conns < 1 || *chunk < 1 {
		return usageError(stderr, "bench", "-c and --chunk must be at least 1")
	}
	if code := checkBenchConfig(&cfg, stderr); code != exitOK {
		return code
	}
	if code := checkServerPID(&cfg, stderr); code != exitOK {
		return code
	}
	return runBenchCmd(ctx, &cfg, benchOutputs{json: *jsonOut, report: *report, cpuProfile: *cpuProfile, maxErr: &maxErr, untilCount: untilCount}, stdout, stderr)
}

// benchFlagConflict says which flags given do not go together, or with
// the mode; "" if none.
func benchFlagConflict(mode bench.Mode, set map[string]bool, rate rateFlag) string {
	switch {
	case set["message"] && set["message-file"]:
		return "give --message or --message-file, not both"
	case set["expect-exact"] && (set["expect"] || set["expect-len"]):
		return "--expect-exact goes alone: the reply is exactly those bytes (drop --expect and --expect-len)"
	case set["ramp"] && rate.end == 0:
		return "--ramp goes with --rate START:END"
	case (set["rate"] || set["rate-per-conn"]) && mode == bench.Idle:
		return "idle holds connections: --rate does not apply to it"
	case (set["n"] || set["requests"]) && mode == bench.Idle:
		return "idle holds connections for -d: -n does not apply to it"
	case (set["echo"] || set["chunk"]) && mode != bench.Stream:
		return "--echo and --chunk go with stream"
	case set["proxy-src"] && !set["send-proxy"]:
		return "--proxy-src goes with --send-proxy"
	}
	return ""
}

// benchMessage returns the message to send: --message with its escapes,
// or --message-file's bytes; or why it cannot be sent.
func benchMessage(message, file string) (msg string, why string) {
	if file == "" {
		b, err := unescape(message)
		switch {
		case err != nil:
			return "", "--message: " + err.Error()
		case len(b) == 0:
			return "", "--message is empty: an exchange must send something"
		}
		return string(b), ""
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Sprintf("cannot read --message-file %s: %s", file, explainOpen(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, bench.MaxMessageSize+1))
	switch {
	case err != nil:
		return "", fmt.Sprintf("cannot read --message-file %s: %s", file, explainOpen(err))
	case len(b) == 0:
		return "", fmt.Sprintf("--message-file %s is empty: an exchange must send something", file)
	case len(b) > bench.MaxMessageSize:
		return "", fmt.Sprintf("--message-file %s is over %d MiB, the most a message may be", file, bench.MaxMessageSize>>20)
	}
	return string(b), ""
}

// checkBenchConfig reports a configuration bench.Run would refuse, in
// terms of the flags.
func checkBenchConfig(cfg *bench.Config, stderr io.Writer) int {
	err := cfg.Check()
	var fdErr *bench.FDLimitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &fdErr):
		return usageError(stderr, "bench", "-c %d needs about %d file descriptors, but the limit is %d (ulimit -n): past it every connect fails with EMFILE; raise the limit (ulimit -n %d) or lower -c to %d",
			fdErr.Conns, fdErr.Need, fdErr.Limit, (fdErr.Need+1023)/1024*1024, fdErr.MaxConns())
	}
	return usageError(stderr, "bench", "%v", err)
}

// benchOutputs is where a run's results go.
type benchOutputs struct {
	json               bool
	report, cpuProfile string
	maxErr             *maxErrors
	untilCount         bool // -n alone: stopping at the safety bound fails the run
}

// runBenchCmd runs cfg and reports it: the summary (or JSON) on stdout
// always, the report file, and the verdict as the exit code.
func runBenchCmd(ctx context.Context, cfg *bench.Config, out benchOutputs, stdout, stderr io.Writer) int {
	var report *benchOutput
	if out.report != "" {
		var err error
		if report, err = createOutput("--report", out.report); err != nil {
			fmt.Fprintf(stderr, "tcpkit bench: %v\n", err)
			return exitFail
		}
		defer report.discard() // after a commit, there is nothing left to discard
	}
	stopProfile, err := startProfile(out.cpuProfile)
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit bench: %v\n", err)
		return exitFail
	}
	progress := progressLine(stderr)
	res, err := bench.Run(ctx, *cfg, progress)
	stopProfile()
	if progress != nil {
		fmt.Fprint(stderr, "\r\033[K") // clear the progress line
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit bench: %v\n", err)
		return exitFail
	}
	if out.json { // the summary first: a report that fails to write must not lose it
		res.WriteJSON(stdout)
	} else {
		res.WriteText(stdout)
	}
	code := exitOK
	if report != nil {
		if err := report.commit(res.WriteHTML); err != nil {
			fmt.Fprintf(stderr, "tcpkit bench: %v\n", err)
			code = exitFail
		}
	}
	if why := benchVerdict(res, cfg, out.maxErr, out.untilCount); why != "" {
		fmt.Fprintf(stderr, "tcpkit bench: %s\n", why)
		code = exitFail
	}
	return code
}

// progressLine returns a callback that rewrites one status line on a
// terminal each second, or nil when stderr is not a terminal.
func progressLine(stderr io.Writer) func(bench.Point) {
	f, ok := stderr.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return func(p bench.Point) {
		fmt.Fprintf(stderr, "\r\033[K%6.1fs  %10d/s  errors %d  p99 %v", p.T, p.Exchanges, p.Errors, time.Duration(p.P99us)*time.Microsecond)
	}
}
