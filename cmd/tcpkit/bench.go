package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"tcpkit/internal/bench"
)

const benchUsage = `Usage: tcpkit bench MODE [flags] [HOST:]PORT
       tcpkit bench merge [--json] RESULT.json...

Load a TCP server and measure it: exchanges per second, latency from an
HDR histogram (min, p50, p90, p99, p99.9, max), errors by kind, and the
change in the kernel's TCP counters (accept-queue overflows, resets,
retransmissions) over the run.

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

With --rate (or --rate-per-conn) the load is an open loop: exchanges are
due on a fixed schedule and latency counts from when each was due, so a
server that stalls shows in the latency instead of slowing the load.

The end of a run is clean: nothing more is sent, the exchanges in flight
get --drain-timeout to finish, and each connection closes with a FIN.
The exit code is 0 when the run passed, 1 when no exchange succeeded or
more failed than --max-errors allows (the summary is printed either way,
and one line on stderr says why), 2 for a wrong flag or argument.

Examples:
  tcpkit bench pingpong -c 50 -d 10s 5000
  tcpkit bench oneshot -c 50 -n 100000 --expect test 127.0.0.1:5000
  tcpkit bench pingpong --rate 20000 -d 30s --report run.html 5000
  tcpkit bench idle -c 10000 -d 5s --server-pid $(pgrep -f 'tcpkit serve') 5000
  tcpkit bench pingpong --json 5000 > a.json; tcpkit bench merge a.json b.json

Flags:
`

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "merge" {
		return benchMerge(args[1:], stdout, stderr)
	}
	fs := newFlagSet("bench", benchUsage, stdout)
	conns := fs.Int("c", 50, "concurrent `connections`")
	duration := fs.Duration("d", 5*time.Second, "how long to measure (0 with -n: until -n exchanges)")
	count := fs.Int64("n", 0, "stop after `N` measured exchanges (0: no limit)")
	warmup := fs.Duration("warmup", 0, "load for this long before measuring")
	rate := fs.Float64("rate", 0, "exchanges per second, all connections together (0: as fast as replies come)")
	ratePerConn := fs.Float64("rate-per-conn", 0, "exchanges per second on each connection")
	message := fs.String("message", "testing~", "what each exchange sends; {seq} and {conn} are replaced by numbers (escapes \\n \\r \\t \\\\ \\0 \\xHH)")
	expect := fs.String("expect", "", "the reply each exchange must get: `bytes` (escapes as --message), or a number for its length; anything else is a wrong_reply error")
	connectTimeout := fs.Duration("connect-timeout", 5*time.Second, "give up a connect after this long (a timeout error)")
	replyTimeout := fs.Duration("reply-timeout", 5*time.Second, "give up waiting for a reply after this long (a timeout error)")
	drainTimeout := fs.Duration("drain-timeout", bench.DefaultDrainTimeout, "at the end, how long exchanges in flight get to finish and the server to close after our FIN; what is still in flight then is a timeout error")
	var maxErr maxErrors
	fs.Var(&maxErr, "max-errors", "the run fails (exit 1) when more exchanges failed than this: a `count` or a share such as 1%")
	chunk := fs.Int("chunk", 16<<10, "stream: `bytes` per write")
	echo := fs.Bool("echo", false, "stream: read the echo back and measure that")
	serverPID := fs.Int("server-pid", 0, "idle: the server's `PID`, to report its memory per connection")
	sendProxy := fs.String("send-proxy", "", "send a PROXY protocol header, `v1` or v2, on each connection first")
	proxySrc := fs.String("proxy-src", "", "the client address the PROXY header claims, `IP:PORT` (default: our own)")
	jsonOut := fs.Bool("json", false, "print the result as JSON, for scripts and merge")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's CPU profile to `file`, for go tool pprof")
	report := fs.String("report", "", "also write a self-contained HTML page with latency charts to `FILE`")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) == 0 {
		return usageError(stderr, "bench", "give a mode: oneshot, pingpong, stream or idle")
	}
	mode, err := bench.ParseMode(pos[0])
	if err != nil {
		return usageError(stderr, "bench", "%v", err)
	}
	addr := "localhost:5000"
	switch {
	case len(pos) > 2:
		return usageError(stderr, "bench", "unexpected argument %q", pos[2])
	case len(pos) == 2:
		if addr, err = parseTarget(pos[1]); err != nil {
			return usageError(stderr, "bench", "%v", err)
		}
	}
	msg, err := unescape(*message)
	if err != nil {
		return usageError(stderr, "bench", "--message: %v", err)
	}
	cfg := bench.Config{
		Mode: mode, Addr: addr, Conns: *conns, Duration: *duration, Exchanges: *count, Warmup: *warmup,
		Rate: *rate, RatePerConn: *ratePerConn, Message: string(msg),
		ConnectTimeout: *connectTimeout, ReplyTimeout: *replyTimeout, DrainTimeout: *drainTimeout,
		ChunkSize: *chunk, Echo: *echo, ServerPID: *serverPID,
	}
	if *expect != "" {
		if n, err := strconv.Atoi(*expect); err == nil {
			cfg.ExpectLen = n
		} else if cfg.ExpectExact, err = unescape(*expect); err != nil {
			return usageError(stderr, "bench", "--expect: %v", err)
		}
	}
	if *sendProxy != "" {
		step, err := proxyHeaderStep(*sendProxy, *proxySrc)
		if err != nil {
			return usageError(stderr, "bench", "%v", err)
		}
		cfg.Prepare = func(nc net.Conn) error { _, err := step(ctx, nc); return err }
	}
	if *conns < 1 || *chunk < 1 {
		return usageError(stderr, "bench", "-c and --chunk must be at least 1")
	}
	if code := checkBenchConfig(&cfg, stderr); code != exitOK {
		return code
	}
	if code := checkServerPID(&cfg, stderr); code != exitOK {
		return code
	}
	return runBenchCmd(ctx, &cfg, benchOutputs{json: *jsonOut, report: *report, cpuProfile: *cpuProfile, maxErr: &maxErr}, stdout, stderr)
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
	if why := benchVerdict(res, cfg, out.maxErr, false); why != "" {
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
