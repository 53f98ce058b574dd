package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"tcpkit"
)

const serveUsage = `Usage: tcpkit serve [flags] [--mode exec -- CMD [ARGS...]]

Listen for TCP connections as the seed's Node.js server does: print each
client's address and each message it sends, reply "test", then end the
connection with a FIN. With --keep-open, reply to every message instead
and leave the connection open.

Modes:
  reply    the seed: reply --reply to each message (default)
  echo     send each message back
  discard  read and drop everything; print the byte count at the close
  exec     run CMD per connection, its stdin and stdout wired to the
           socket, the peer in TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP,
           TCPLOCALPORT; killed when the connection dies

Examples:
  tcpkit serve                          port 5000, every interface, IPv4 and IPv6
  tcpkit serve --port 7000 --keep-open  a reply per message, connections stay
  tcpkit serve --mode echo --frame line --host 127.0.0.1
  tcpkit serve --mode exec --max-conns 10 -- cat
  tcpkit serve --unix /tmp/tcpkit.sock --mode echo

SIGINT or SIGTERM stops accepting, ends open connections cleanly and
exits 0; a second signal exits at once.

Flags:
`

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", serveUsage, stdout)
	host := fs.String("host", "", "listen `address`; empty means every interface, IPv4 and IPv6")
	port := fs.Int("port", 5000, "listen `port`; 0 picks a free one")
	unixPath := fs.String("unix", "", "listen on a Unix socket at `path` instead of TCP")
	v4 := fs.Bool("4", false, "IPv4 only")
	v6 := fs.Bool("6", false, "IPv6 only")
	mode := fs.String("mode", "reply", "what to do with messages: reply, echo, discard or exec (see above)")
	reply := fs.String("reply", "test", "the `text` sent back for each message in reply mode")
	keepOpen := fs.Bool("keep-open", false, "reply to every message and keep the connection open, instead of ending it after the first reply")
	frame := fs.String("frame", "raw", "what one message is: raw (each read, as Node), line (up to \\n) or len32 (4-byte big-endian length prefix)")
	maxMessage := fs.Int("max-message", tcpkit.DefaultMaxMessage, "largest message in `bytes` for line and len32 framing; a larger one closes the connection")
	maxConns := fs.Int("max-conns", 0, "most connections open at once; more are closed at once (0: no limit)")
	maxPerIP := fs.Int("max-conns-per-ip", 0, "most connections open at once from one client address (0: no limit)")
	idle := fs.Duration("idle-timeout", 0, "end a connection that sends and receives nothing for this `duration` (0: never)")
	readTimeout := fs.Duration("read-timeout", 0, "close a connection that sends nothing for this `duration`, even while we write (0: never)")
	writeTimeout := fs.Duration("write-timeout", 0, "close a connection whose client takes none of our output for this `duration` (0: never)")
	drain := fs.Duration("drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long open connections get to end cleanly before they are cut")
	hexOut := fs.Bool("hex", false, "print messages as a hex dump instead of text")
	quiet := fs.Bool("quiet", false, "print only the listen line and errors, nothing per connection or message")
	trace := fs.Bool("trace", false, "print each TCP event on stderr, explained: handshake, data in and out, FINs, resets, close")
	traceFormat := fs.String("trace-format", "text", "--trace lines as text or json")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	var tr *tracer
	if *trace {
		if tr, err = newTracer(stderr, *traceFormat, "client"); err != nil {
			return usageError(stderr, "serve", "%v", err)
		}
	}
	framing, err := tcpkit.ParseFraming(*frame)
	if err != nil {
		return usageError(stderr, "serve", "--frame: %v", err)
	}
	network, err := family(*v4, *v6)
	if err != nil {
		return usageError(stderr, "serve", "%v", err)
	}
	switch {
	case *mode == "exec" && len(pos) == 0:
		return usageError(stderr, "serve", "--mode exec needs a command after --, as in: --mode exec -- cat")
	case *mode != "exec" && len(pos) > 0:
		return usageError(stderr, "serve", "unexpected argument %q: give the port with --port", pos[0])
	case *port < 0 || *port > 65535:
		return usageError(stderr, "serve", "--port %d is out of range: use 0 to 65535", *port)
	case *maxMessage <= 0 || *maxConns < 0 || *maxPerIP < 0 || *idle < 0 || *readTimeout < 0 || *writeTimeout < 0 || *drain <= 0:
		return usageError(stderr, "serve", "--max-message and --drain-timeout must be positive; the limits and timeouts not negative")
	}

	out := newLineWriter(stdout)
	defer out.Close()
	p := &printer{out: out, quiet: *quiet, hex: *hexOut}
	srv := &tcpkit.Server{
		ConnOptions: tcpkit.ConnOptions{
			IdleTimeout:  *idle,
			ReadTimeout:  *readTimeout,
			WriteTimeout: *writeTimeout,
			Framing:      framing,
			MaxMessage:   *maxMessage,
		},
		MaxConns:      *maxConns,
		MaxConnsPerIP: *maxPerIP,
		OnReject: func(remote net.Addr, err error) {
			out.line("rejected : ", addrString(remote), " : ", rejectReason(err, *maxConns, *maxPerIP))
		},
	}
	if tr != nil {
		srv.Trace = tr.event
	}
	switch *mode {
	case "reply":
		srv.Events = replyEvents(p, []byte(*reply), *keepOpen)
	case "echo":
		srv.Events = echoEvents(p)
	case "discard":
		srv.Events = discardEvents(p)
	case "exec":
		srv.Events = execEvents(p, pos, stderr)
		srv.AllowHalfOpen = true     // the command may answer after the client's FIN
		srv.ReadDuringBacklog = true // its input is bounded by its own queue
	default:
		return usageError(stderr, "serve", "unknown --mode %q: use reply, echo, discard or exec", *mode)
	}

	var ln net.Listener
	if *unixPath != "" {
		if ln, err = listenUnix(ctx, *unixPath); err != nil {
			fmt.Fprintf(stderr, "tcpkit serve: cannot listen on %s: %v\n", *unixPath, err)
			return exitFail
		}
		out.line("listen on ", *unixPath)
	} else {
		addr := net.JoinHostPort(*host, strconv.Itoa(*port))
		var lc net.ListenConfig
		if ln, err = lc.Listen(ctx, network, addr); err != nil {
			fmt.Fprintf(stderr, "tcpkit serve: %s\n", explainListen(addr, *port, err))
			return exitFail
		}
		out.line(listenLine(ln, *host))
	}
	return runServer(ctx, srv, ln, *drain, stderr)
}

// listenLine is the seed's "listen on port 5000", naming the host when
// one was given.
func listenLine(ln net.Listener, host string) string {
	line := "listen on port " + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if host != "" {
		line += " at " + host
	}
	return line
}

func rejectReason(err error, maxConns, maxPerIP int) string {
	if err == tcpkit.ErrTooManyConnsFromIP {
		return "too many connections from this address (--max-conns-per-ip " + strconv.Itoa(maxPerIP) + ")"
	}
	return "too many connections (--max-conns " + strconv.Itoa(maxConns) + ")"
}

// runServer serves ln until ctx is done, then shuts down gracefully,
// giving open connections drain to end.
func runServer(ctx context.Context, srv *tcpkit.Server, ln net.Listener, drain time.Duration, stderr io.Writer) int {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	status, stopStatus := statusSignal()
	defer stopStatus()
	for ctx.Err() == nil {
		select {
		case err := <-served: // the listener failed for good
			fmt.Fprintf(stderr, "tcpkit serve: %v\n", err)
			return exitFail
		case <-status:
			fmt.Fprintf(stderr, "tcpkit serve: status: %s\n", statusLine(srv))
		case <-ctx.Done():
		}
	}

	// Stop accepting at once, then give the open connections --drain-timeout
	// to end cleanly; a second signal cuts them at once.
	open := srv.Conns()
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(dctx) }()
	var err error
	select {
	case err = <-shut:
	case <-forced(ctx):
		err = errors.New("a second signal")
		cancel()
		<-shut
	}
	if err != nil {
		cut := srv.Conns()
		srv.Close()
		<-served
		why := "did not end within --drain-timeout " + drain.String()
		if !errors.Is(err, context.DeadlineExceeded) {
			why = "were still open at a second signal"
		}
		fmt.Fprintf(stderr, "tcpkit serve: stopped; %d of %d open connections %s and were cut\n", cut, open, why)
		return exitFail
	}
	<-served
	fmt.Fprintf(stderr, "tcpkit serve: stopped; %s ended cleanly\n", plural(open, "open connection"))
	return exitOK
}

func plural(n int, noun string) string {
	s := strconv.Itoa(n) + " " + noun
	if n != 1 {
		s += "s"
	}
	return s
}
