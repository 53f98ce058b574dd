package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tcpkit"
	"tcpkit/internal/proxy"
)

const serveUsage = `Usage: tcpkit serve [flags] [- | --mode exec -- CMD [ARGS...]]

Listen for TCP connections as the seed's Node.js server does: print each
client's address and each message it sends, reply "test", then end the
connection with a FIN. With --keep-open, reply to every message instead
and leave the connection open.

With "-", act as ncat -l does: take one connection, write its bytes to
standard output as they are, send standard input to it with a FIN at its
end, and exit 0 once both directions are done (a chat between two
terminals, or a file sent across).

Modes:
  reply    the seed: reply --reply to each message (default)
  echo     send each message back
  discard  read and drop everything; print the byte count at the close
  exec     run CMD per connection, its stdin and stdout wired to the
           socket, the peer in TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP,
           TCPLOCALPORT; killed when the connection dies, or when it
           stays silent for --exec-grace after the client's FIN
           (docs/exec.md)

Examples:
  tcpkit serve                          port 5000, every interface, IPv4 and IPv6
  tcpkit serve --port 7000 --keep-open  a reply per message, connections stay
  tcpkit serve --mode echo --frame line --host 127.0.0.1
  tcpkit serve --mode exec --max-conns 10 -- cat
  tcpkit serve --unix /tmp/tcpkit.sock --mode echo
  tcpkit serve --port 7000 - > received.bin   one connection's bytes, as ncat -l

SIGINT or SIGTERM stops accepting, ends open connections cleanly and
exits 0; a second signal exits at once.

Flags:
`

// serveOptions are serve's flags.
type serveOptions struct {
	host, unix, mode, reply, frame, traceFormat, logFormat string
	engine                                                 string
	port, maxMessage, maxConns, maxPerIP                   int
	v4, v6, reuseport, keepOpen, hex, quiet, trace         bool
	idle, readTimeout, writeTimeout, drain, drainDelay     time.Duration
	execGrace                                              time.Duration
	proxy                                                  bool
	proxyTimeout, tlsTimeout                               time.Duration
	proxyFrom, tlsCert, tlsKey, clientCA                   string
	metricsAddr, cpuProfile                                string
	argv                                                   []string        // exec's command
	given                                                  map[string]bool // the flags given, by name
}

func (o *serveOptions) define(fs *flagSet) {
	fs.StringVar(&o.host, "host", "", "listen `address`; empty means every interface, IPv4 and IPv6")
	fs.IntVar(&o.port, "port", 5000, "listen `port`; 0 picks a free one")
	fs.StringVar(&o.unix, "unix", "", "listen on a Unix socket at `path` instead of TCP")
	fs.BoolVar(&o.v4, "4", false, "IPv4 only")
	fs.BoolVar(&o.v6, "6", false, "IPv6 only")
	fs.StringVar(&o.engine, "engine", "auto", "what serves connections: epoll (event loops, one per core; Linux), std (a goroutine per connection), or auto: epoll on Linux, std elsewhere")
	fs.BoolVar(&o.reuseport, "reuseport", false, "let several processes listen on the port (SO_REUSEPORT): the kernel spreads connections over them")
	fs.StringVar(&o.mode, "mode", "reply", "what to do with messages: reply, echo, discard or exec (see above)")
	fs.DurationVar(&o.execGrace, "exec-grace", defaultExecGrace, "in exec mode, how long CMD may stay silent (write nothing) after the client's FIN before it is killed and the connection ends")
	fs.StringVar(&o.reply, "reply", "test", "the `text` sent back for each message in reply mode")
	fs.BoolVar(&o.keepOpen, "keep-open", false, "reply to every message and keep the connection open, instead of ending it after the first reply")
	fs.StringVar(&o.frame, "frame", "raw", "what one message is: raw (each read, as Node), line (up to \\n) or len32 (4-byte big-endian length prefix)")
	fs.IntVar(&o.maxMessage, "max-message", tcpkit.DefaultMaxMessage, "largest message in `bytes` for line and len32 framing; a larger one closes the connection")
	fs.IntVar(&o.maxConns, "max-conns", 0, "most connections open at once; more are closed at once (0: no limit)")
	fs.IntVar(&o.maxPerIP, "max-conns-per-ip", 0, "most connections open at once from one client address (0: no limit)")
	fs.DurationVar(&o.idle, "idle-timeout", 0, "end a connection that sends and receives nothing for this `duration`, and cut one that has not finished ending one more such period later (0: never)")
	fs.DurationVar(&o.readTimeout, "read-timeout", 0, "close a connection that sends nothing for this `duration`, even while we write (0: never)")
	fs.DurationVar(&o.writeTimeout, "write-timeout", 0, "close a connection whose client takes none of our output for this `duration` (0: never)")
	fs.DurationVar(&o.drain, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long open connections get to end cleanly before they are cut")
	fs.DurationVar(&o.drainDelay, "drain-delay", 0, "on SIGINT/SIGTERM, keep accepting for this `duration` while /healthz says 503, so a load balancer's health checks take the server out first (0: stop at once)")
	fs.BoolVar(&o.proxy, "proxy-protocol", false, "every connection must start with a PROXY protocol header (v1 or v2) from a load balancer; the client's address is taken from it")
	fs.StringVar(&o.proxyFrom, "proxy-protocol-from", "", "with --proxy-protocol, the balancers' addresses: comma-separated `CIDRs`; others are rejected (not given: any peer; an empty entry is an error)")
	fs.DurationVar(&o.proxyTimeout, "proxy-protocol-timeout", proxy.DefaultTimeout, "with --proxy-protocol, how long a connection has to send its whole header, in as many pieces as it likes")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve TLS with this certificate `file` (PEM); with --tls-key")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the TLS certificate's key `file` (PEM)")
	fs.StringVar(&o.clientCA, "client-ca", "", "with --tls-cert, require each client to present a certificate signed by one in this PEM `file` (as made by 'tcpkit cert')")
	fs.DurationVar(&o.tlsTimeout, "tls-handshake-timeout", tlsHandshakeTimeout, "with --tls-cert, how long a client has to complete the TLS handshake")
	fs.StringVar(&o.metricsAddr, "metrics", "", "serve Prometheus metrics on /metrics and health on /healthz at this `address` (host:port)")
	fs.StringVar(&o.logFormat, "log-format", "seed", "per-connection lines: seed (the tutorial's), or text or json (log/slog records with the connection id)")
	fs.BoolVar(&o.hex, "hex", false, "print messages as a hex dump instead of text")
	fs.BoolVar(&o.quiet, "quiet", false, "print only the listen line and errors, nothing per connection or message")
	fs.BoolVar(&o.trace, "trace", false, "print each TCP event on stderr, explained: handshake, data in and out, FINs, resets, close")
	fs.StringVar(&o.traceFormat, "trace-format", "text", "--trace lines as text or json")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to `file` until the server stops, for go tool pprof")
}

// check reports a usage error in o.
func (o *serveOptions) check() error {
	if o.netcat() {
		for _, name := range []string{"mode", "reply", "keep-open", "frame", "max-message", "max-conns", "max-conns-per-ip", "metrics", "log-format", "quiet", "reuseport", "drain-delay", "exec-grace"} {
			if o.given[name] {
				return fmt.Errorf("--%s does not go with -: serve - takes one connection and passes its bytes to standard output and standard input's to it, as ncat -l does", name)
			}
		}
	}
	switch {
	case o.mode == "exec" && len(o.argv) == 0:
		return errors.New("--mode exec needs a command after --, as in: --mode exec -- cat")
	case o.mode != "exec" && len(o.argv) > 0 && !o.netcat():
		return fmt.Errorf("unexpected argument %q: give the port with --port", o.argv[0])
	case o.mode != "exec" && o.execGrace != defaultExecGrace:
		return errors.New("--exec-grace goes with --mode exec")
	case o.execGrace <= 0:
		return errors.New("--exec-grace must be positive: a client that left would hold its command and its slot for ever")
	case o.port < 0 || o.port > 65535:
		return fmt.Errorf("--port %d is out of range: use 0 to 65535", o.port)
	case o.maxMessage <= 0 || o.maxConns < 0 || o.maxPerIP < 0 || o.idle < 0 || o.readTimeout < 0 || o.writeTimeout < 0 || o.drain <= 0 || o.drainDelay < 0:
		return errors.New("--max-message and --drain-timeout must be positive; the limits and timeouts not negative")
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return errors.New("give both --tls-cert and --tls-key, or neither")
	case o.tlsTimeout <= 0:
		return errors.New("--tls-handshake-timeout must be positive")
	case (o.given["tls-handshake-timeout"] || o.clientCA != "") && o.tlsCert == "":
		return errors.New("--tls-handshake-timeout and --client-ca go with --tls-cert and --tls-key")
	case (o.proxyFrom != "" || o.given["proxy-protocol-from"] || o.given["proxy-protocol-timeout"]) && !o.proxy:
		return errors.New("--proxy-protocol-from and --proxy-protocol-timeout go with --proxy-protocol")
	case o.proxyTimeout <= 0:
		return errors.New("--proxy-protocol-timeout must be positive")
	case o.v4 && o.v6:
		return errors.New("-4 and -6 exclude each other")
	case o.logFormat != "seed" && o.logFormat != "text" && o.logFormat != "json":
		return fmt.Errorf("--log-format %q: use seed, text or json", o.logFormat)
	case o.metricsAddr != "" && !validHostPort(o.metricsAddr):
		return fmt.Errorf("--metrics %q: want HOST:PORT, such as 127.0.0.1:9100", o.metricsAddr)
	case o.unix != "" && (o.reuseport || o.proxy):
		return errors.New("--unix does not go with --reuseport or --proxy-protocol")
	case o.unix != "":
		return checkUnixPath(o.unix)
	}
	return nil
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", serveUsage, stdout)
	var o serveOptions
	o.define(fs)
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	o.argv = pos
	o.given = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { o.given[f.Name] = true })
	if err := o.check(); err != nil {
		return usageError(stderr, "serve", "%v", err)
	}
	if o.netcat() {
		return o.serveNetcat(ctx, stdout, stderr)
	}

	// Output never holds the server up: what its readers cannot take is
	// dropped and counted, and a reader that went away stops the server
	// as SIGTERM does (see newOutputs).
	ctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	// Asked for, SIGPIPE no longer kills the process when standard output
	// or error is a pipe whose reader left: the write fails with EPIPE.
	// The other commands keep the default, as pipeline tools do.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	outs := newOutputs(stdout, stderr, stopServing)
	var tr *tracer
	if o.trace {
		if tr, err = newTracer(outs.err, o.traceFormat, "client"); err != nil {
			return usageError(stderr, "serve", "%v", err)
		}
	}
	p := newPrinter(outs, o.logFormat, o.quiet, o.hex)
	var m *metrics
	if o.metricsAddr != "" {
		m = newMetrics(outs.out.Dropped)
	}
	srv, children, err := o.server(p, tr, m, stderr)
	if err != nil {
		return usageError(stderr, "serve", "%v", err)
	}
	if children != nil {
		// However serving ends, no command outlives the server.
		defer stopChildren(children, stderr)
	}

	ln, err := o.listen(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit serve: %v\n", err)
		return exitFail
	}
	engine, err := srv.EngineFor(ln)
	if err != nil {
		ln.Close()
		return usageError(stderr, "serve", "--engine %s: %v", o.engine, strings.TrimPrefix(err.Error(), "tcpkit: "))
	}
	var metricsURL string
	if m != nil {
		mln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "tcpkit serve: --metrics: %s\n", explainListen(o.metricsAddr, "--metrics", err))
			return exitFail
		}
		mctx, stop := context.WithCancel(context.Background())
		defer stop()
		go m.serve(mctx, mln)
		metricsURL = "http://" + mln.Addr().String() + "/metrics"
	}
	stopProfile, ok := startCPUProfile(o.cpuProfile, stderr)
	if !ok {
		ln.Close()
		return exitFail
	}
	defer stopProfile()
	// SIGUSR1 is caught before anyone can know our port and send it.
	status, stopStatus := statusSignal()
	defer stopStatus()
	p.listening(listenLine(ln), addrString(ln.Addr()), engine.String(), metricsURL)
	return runServer(ctx, srv, ln, o.drain, o.drainDelay, m, status, outs)
}

// server builds the tcpkit.Server that o describes, and in exec mode
// the commands' keeper, which must be stopped once serving ends.
func (o *serveOptions) server(p *printer, tr *tracer, m *metrics, stderr io.Writer) (*tcpkit.Server, *execMode, error) {
	framing, err := tcpkit.ParseFraming(o.frame)
	if err != nil {
		return nil, nil, fmt.Errorf("--frame: %w", err)
	}
	engine, err := tcpkit.ParseEngine(o.engine)
	if err != nil {
		return nil, nil, fmt.Errorf("--engine: %w", err)
	}
	var children *execMode
	srv := &tcpkit.Server{
		Engine: engine,
		ConnOptions: tcpkit.ConnOptions{
			IdleTimeout: o.idle,
			// An ended connection gets one more idle period to finish:
			// to take the rest of our output and send its FIN.
			LingerTimeout: o.idle,
			ReadTimeout:   o.readTimeout,
			WriteTimeout:  o.writeTimeout,
			Framing:       framing,
			MaxMessage:    o.maxMessage,
		},
		MaxConns:      o.maxConns,
		MaxConnsPerIP: o.maxPerIP,
		OnReject: func(remote net.Addr, err error) {
			p.rejected(remote, rejectReason(err, o.maxConns, o.maxPerIP))
			if m != nil {
				m.reject(err)
			}
		},
	}
	if tr != nil {
		srv.Trace = tr.event
	}
	switch o.mode {
	case "reply":
		srv.Events = replyEvents(p, []byte(o.reply), o.keepOpen)
	case "echo":
		srv.Events = echoEvents(p, framing)
	case "discard":
		srv.Events = discardEvents(p)
	case "exec":
		if children, err = newExecMode(p, o.argv, o.execGrace, stderr); err != nil {
			return nil, nil, err
		}
		srv.Events = children.events()
		srv.AllowHalfOpen = true     // the command may answer after the client's FIN
		srv.ReadDuringBacklog = true // its input is bounded by its own queue
	default:
		return nil, nil, fmt.Errorf("unknown --mode %q: use reply, echo, discard or exec", o.mode)
	}
	if m != nil {
		srv.Events = m.wrap(srv.Events)
	}

	// Before a connection is served: its PROXY header, then TLS.
	if o.proxy {
		var from []netip.Prefix // none given: any peer
		if o.proxyFrom != "" || o.given["proxy-protocol-from"] {
			if from, err = proxy.ParseFrom(o.proxyFrom); err != nil {
				return nil, nil, fmt.Errorf("--proxy-protocol-from: %w", err)
			}
		}
		srv.Preamble = proxyPreamble(&proxy.Policy{From: from, Timeout: o.proxyTimeout})
	}
	if o.tlsCert != "" {
		cfg, err := serverTLS(o.tlsCert, o.tlsKey, o.clientCA)
		if err != nil {
			return nil, nil, err
		}
		srv.Handshake = tlsServerHandshake(cfg, o.tlsTimeout)
	}
	return srv, children, nil
}

// validHostPort reports whether s is HOST:PORT with a port number (0 to
// 65535); HOST may be empty, for every interface.
func validHostPort(s string) bool {
	_, p, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(p)
	return err == nil && perr == nil && n >= 0 && n <= 65535
}

// proxyPreamble reads p's PROXY headers as the server's Preamble, on
// either engine; the slow-header error names the flag that sets the time
// allowed.
func proxyPreamble(p *proxy.Policy) *tcpkit.Preamble {
	return &tcpkit.Preamble{
		Allow: p.Allow,
		Parse: func(b []byte, end error) (int, net.Addr, net.Addr, error) {
			n, remote, local, err := p.Parse(b, end)
			if errors.Is(err, proxy.ErrSlowHeader) {
				err = fmt.Errorf("%w (--proxy-protocol-timeout)", err)
			}
			return n, remote, local, err
		},
		Timeout: p.Timeout,
	}
}

// listen opens o's listener.
func (o *serveOptions) listen(ctx context.Context) (net.Listener, error) {
	if o.unix != "" {
		return listenUnix(ctx, o.unix) // its errors say "cannot listen on PATH: why"
	}
	network, err := family(o.v4, o.v6)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(o.host, strconv.Itoa(o.port))
	var lc net.ListenConfig
	if o.reuseport {
		lc.Control = reusePort
	}
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, errors.New(explainListen(addr, "--port", err))
	}
	return ln, nil
}

// listenLine is the seed's line, "listen on port 5000", exactly; for a
// Unix socket, "listen on PATH". Where exactly, and on which engine, goes
// on a line of its own (see printer.listening).
func listenLine(ln net.Listener) string {
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		return "listen on port " + strconv.Itoa(ta.Port)
	}
	return "listen on " + ln.Addr().String()
}

func rejectReason(err error, maxConns, maxPerIP int) string {
	switch {
	case errors.Is(err, tcpkit.ErrTooManyConnsFromIP):
		return "too many connections from this address (--max-conns-per-ip " + strconv.Itoa(maxPerIP) + ")"
	case errors.Is(err, tcpkit.ErrTooManyConns):
		return "too many connections (--max-conns " + strconv.Itoa(maxConns) + ")"
	}
	return err.Error()
}

// runServer serves ln until ctx is done, then shuts down gracefully,
// giving open connections drain to end; a second signal cuts them at
// once. The output gets what is left of drain, and at least
// outputGrace, to be written before the process exits.
func runServer(ctx context.Context, srv *tcpkit.Server, ln net.Listener, drain, delay time.Duration, m *metrics, status <-chan os.Signal, outs *outputs) int {
	// SIGUSR1 is answered in every phase: how many are left is what an
	// operator wants to know during a drain.
	report := func() { outs.err.line("tcpkit serve: status: ", statusLine(srv)) }
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	for ctx.Err() == nil {
		select {
		case err := <-served: // the listener failed for good
			outs.err.line("tcpkit serve: ", err.Error())
			outs.close(time.Now().Add(outputGrace))
			return exitFail
		case <-status:
			report()
		case <-ctx.Done():
		}
	}

	// Stop accepting at once, then give the open connections --drain-timeout
	// to end cleanly; a second signal cuts them at once.
	if m != nil {
		m.draining.Store(true) // /healthz says so from now on
	}
	if delay > 0 { // let the balancer see /healthz fail before the port closes
		t := time.NewTimer(delay)
		if _, forcedOut := awaitOr(ctx, t.C, status, report); forcedOut {
			t.Stop()
		}
	}
	deadline := time.Now().Add(drain)
	open := srv.Conns()
	dctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(dctx) }()
	err, forcedOut := awaitOr(ctx, shut, status, report)
	if forcedOut {
		err = errSecondSignal
		deadline = time.Now() // and the output gets no more than outputGrace
		cancel()
		<-shut
	}
	code, summary := exitOK, plural(open, "open connection")+" ended cleanly"
	if err != nil {
		cut := srv.Conns()
		srv.Close()
		if cut > 0 {
			why := "did not end within --drain-timeout " + drain.String()
			if err == errSecondSignal {
				why = "were still open at a second signal"
			}
			code, summary = exitFail, fmt.Sprintf("%d of %d open connections %s and were cut", cut, open, why)
		}
	}
	<-served
	if n := outs.out.Dropped(); n > 0 {
		summary += "; " + plural(int(n), "output line") + " dropped"
	}
	// The per-connection lines are written before the last line, so that
	// on a shared stream none lands after it.
	outs.out.Close(max(time.Until(deadline), outputGrace))
	outs.err.line("tcpkit serve: stopped; ", summary)
	outs.err.Close(outputGrace)
	return code
}

var errSecondSignal = errors.New("a second signal")

// awaitOr waits for done, or for a second signal (see forced), answering
// status meanwhile with report; it returns what done gave, and whether
// the signal came first.
func awaitOr[T any](ctx context.Context, done <-chan T, status <-chan os.Signal, report func()) (v T, forcedOut bool) {
	for {
		select {
		case v = <-done:
			return v, false
		case <-forced(ctx):
			return v, true
		case <-status:
			report()
		}
	}
}

// stopChildren kills and reaps exec mode's commands once serving ended,
// and says so if some could not be reaped in time.
func stopChildren(x *execMode, stderr io.Writer) {
	if n := x.stop(killDelay); n > 0 {
		fmt.Fprintf(stderr, "tcpkit serve: %d killed commands had not exited %v after SIGKILL; exiting without reaping them\n", n, killDelay)
	}
}

func plural(n int, noun string) string {
	s := strconv.Itoa(n) + " " + noun
	if n != 1 {
		s += "s"
	}
	return s
}
