package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"time"

	"tcpkit"
	"tcpkit/internal/proxy"
)

const connectUsage = `Usage: tcpkit connect [flags] [HOST:PORT | PORT | -]

Connect as the seed's Node.js client does (default localhost:5000): print
"connect to server!", send "testing~" every second, print each chunk that
comes back as "receive: ...", "disconnected." when the server ends the
connection, and the error when a later send fails.

With "-" or --stdin, or when standard input is a pipe or a file, act as
netcat does instead: standard input goes to the socket and the socket to
standard output, byte for byte; at the end of standard input send a FIN
and print the rest until the server ends.

With --expect or --expect-re, check a server: send --send, and exit 0 once
the expected bytes arrive within --within, or 1 with the reason.

Examples:
  tcpkit connect                        localhost:5000, until Ctrl-C or an error
  tcpkit connect 7000 --count 3         three messages, then end and exit 0
  tcpkit connect [::1]:5000 --message ping --interval 100ms --hex
  echo testing~ | tcpkit connect 5000   prints the server's reply: test
  tcpkit connect 6379 --send 'PING\r\n' --expect '+PONG' --within 2s
  tcpkit connect --unix /tmp/tcpkit.sock -
  tcpkit connect -z 5000-5010           which ports accept connections, as nc -z

Exit codes: 0 done (--count reached: N sends and a reply after the
last; the server ended after standard input; the check matched; or
Ctrl-C); 1 could not connect, or the check failed; 2 bad flag or
argument; 3 the connection broke (a send failed after the server ended
it, a reset, or the server ended it before the reply to the last
--count send); 4 --timeout passed with nothing received.

Flags:
`

// closeWait bounds how long connect waits, after ending the connection
// itself, for the server's FIN before it closes anyway.
const closeWait = 2 * time.Second

func connectCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("connect", connectUsage, stdout)
	message := fs.String("message", "testing~", "the `text` to send each time")
	interval := fs.Duration("interval", time.Second, "time between sends; the first goes at once")
	count := fs.Int("count", 0, "stop after `N` sends, once a reply to the last arrived; exit 3 if the server ends before it (0: never stop)")
	timeout := fs.Duration("timeout", 0, "print \"connection timeout.\" and exit 4 after this `duration` with nothing received (0: wait forever)")
	useStdin := fs.Bool("stdin", false, "send standard input and print what comes back, byte for byte (as the argument -)")
	noHalfClose := fs.Bool("no-half-close", false, "at the end of standard input close at once, instead of sending a FIN and reading on")
	send := fs.String("send", "", "`bytes` to send (escapes \\n \\r \\t \\\\ \\0 \\xHH); with no --expect, print what comes back")
	expect := fs.String("expect", "", "succeed once the received bytes contain these `bytes` (same escapes); not with --expect-re")
	expectRe := fs.String("expect-re", "", "succeed once the received bytes match this `regexp`; not with --expect")
	within := fs.Duration("within", 5*time.Second, "how long --expect and --expect-re wait, from the start")
	connectTimeout := fs.Duration("connect-timeout", 10*time.Second, "give up connecting after this `duration`, the TLS handshake included")
	unixPath := fs.String("unix", "", "connect to the Unix socket at `path` instead of TCP")
	v4 := fs.Bool("4", false, "IPv4 only")
	v6 := fs.Bool("6", false, "IPv6 only")
	hexOut := fs.Bool("hex", false, "print received bytes as a hex dump instead of text")
	var tlsFlags tlsClientFlags
	tlsFlags.define(fs)
	sendProxy := fs.String("send-proxy", "", "first send a PROXY protocol header, `v1` or v2, as a load balancer would")
	proxySrc := fs.String("proxy-src", "", "the client address the PROXY header claims, `IP:PORT` (default: our own)")
	trace := fs.Bool("trace", false, "print each TCP event on stderr, explained: handshake, data in and out, FINs, resets, close")
	traceFormat := fs.String("trace-format", "text", "--trace lines as text or json")
	zero := fs.Bool("z", false, "only check whether the port accepts a connection, or which of a range (5000-5010) do, as nc -z; send nothing; exit 0 if one does")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if *zero {
		return scanCmd(ctx, fs, pos, *connectTimeout, *v4, *v6, stdout, stderr)
	}
	var tr *tracer
	if *trace {
		if tr, err = newTracer(stderr, *traceFormat, "server"); err != nil {
			return usageError(stderr, "connect", "%v", err)
		}
	}
	if len(pos) > 0 && pos[len(pos)-1] == "-" {
		*useStdin, pos = true, pos[:len(pos)-1]
	}
	network, err := family(*v4, *v6)
	if err != nil {
		return usageError(stderr, "connect", "%v", err)
	}
	addr := "localhost:5000"
	switch {
	case len(pos) > 1:
		return usageError(stderr, "connect", "unexpected argument %q: give one HOST:PORT or PORT", pos[1])
	case *unixPath != "" && len(pos) > 0:
		return usageError(stderr, "connect", "give either --unix or HOST:PORT, not both")
	case *unixPath != "":
		if err := checkUnixPath(*unixPath); err != nil {
			return usageError(stderr, "connect", "%v", err)
		}
		network, addr = "unix", *unixPath
	case len(pos) == 1:
		if addr, err = parseTarget(pos[0]); err != nil {
			return usageError(stderr, "connect", "%v", err)
		}
	}
	switch {
	case *interval <= 0 || *count < 0 || *timeout < 0 || *within <= 0:
		return usageError(stderr, "connect", "--interval and --within must be positive, --count and --timeout not negative")
	case *message == "":
		return usageError(stderr, "connect", "--message is empty: an empty send sends nothing, so no reply would come; give at least one byte")
	case *expect != "" && *expectRe != "":
		return usageError(stderr, "connect", "give --expect or --expect-re, not both")
	}
	sendBytes, err := unescape(*send)
	if err != nil {
		return usageError(stderr, "connect", "--send: %v", err)
	}

	d := &dialer{Dialer: tcpkit.Dialer{Timeout: *connectTimeout}, tr: tr}
	if tr != nil {
		d.Trace = tr.event
	}
	if err := tlsFlags.check(fs); err != nil {
		return usageError(stderr, "connect", "%v", err)
	}
	tlsCfg, err := tlsFlags.config(addr)
	if err != nil {
		return usageError(stderr, "connect", "%v", err)
	}
	var negotiated func(tls.ConnectionState)
	if tlsCfg != nil && len(tlsCfg.NextProtos) > 0 {
		negotiated = func(st tls.ConnectionState) { fmt.Fprintf(stderr, "tcpkit connect: %s\n", alpnLine(tlsCfg, st)) }
	}
	if d.Handshake, err = clientHandshake(*sendProxy, *proxySrc, tlsCfg, negotiated); err != nil {
		return usageError(stderr, "connect", "%v", err)
	}
	switch {
	case *expect != "" || *expectRe != "":
		chk := &check{send: sendBytes, within: *within}
		if *expectRe != "" {
			if chk.re, err = regexp.Compile(*expectRe); err != nil {
				return usageError(stderr, "connect", "--expect-re: %v", err)
			}
		} else if chk.want, err = unescape(*expect); err != nil {
			return usageError(stderr, "connect", "--expect: %v", err)
		}
		return chk.run(ctx, d, network, addr, stdout, stderr)
	case *send != "":
		p := &pipe{in: nil, first: sendBytes, halfClose: !*noHalfClose, hex: *hexOut}
		return p.run(ctx, d, network, addr, stdout, stderr)
	case *useStdin || (stdinIsData() && !seedFlagsSet(fs)):
		p := &pipe{in: os.Stdin, halfClose: !*noHalfClose, hex: *hexOut}
		return p.run(ctx, d, network, addr, stdout, stderr)
	}

	// The seed's client waits for its output rather than drop it: a
	// slow terminal slows the exchange down. Only exiting is bounded.
	out := newLineWriter(stdout, lineOptions{escape: isTerminal(stdout)})
	defer out.Close(closeWait)
	cl := &client{out: out, hex: *hexOut, data: make(chan struct{}, 1)}
	c, err := d.dial(ctx, network, addr, cl.events())
	if err != nil {
		if ctx.Err() != nil {
			return exitOK // interrupted while connecting
		}
		fmt.Fprintf(stderr, "tcpkit connect: %s\n", explainDial(addr, err))
		return exitFail
	}
	return cl.loop(ctx, c, []byte(*message), *interval, *count, *timeout, stderr)
}

// clientHandshake returns what connect does on a new connection before
// using it: send a PROXY header, then speak TLS (tlsCfg not nil); nil if
// neither. negotiated, if not nil, gets the TLS session's state.
func clientHandshake(sendProxy, proxySrc string, tlsCfg *tls.Config, negotiated func(tls.ConnectionState)) (func(context.Context, net.Conn) (net.Conn, error), error) {
	var steps []func(context.Context, net.Conn) (net.Conn, error)
	if sendProxy != "" {
		step, err := proxyHeaderStep(sendProxy, proxySrc)
		if err != nil {
			return nil, err
		}
		steps = append(steps, step)
	}
	if tlsCfg != nil {
		steps = append(steps, tlsClientHandshake(tlsCfg, negotiated))
	}
	if proxySrc != "" && sendProxy == "" {
		return nil, errors.New("--proxy-src goes with --send-proxy")
	}
	if len(steps) == 0 {
		return nil, nil
	}
	return func(ctx context.Context, nc net.Conn) (net.Conn, error) {
		for _, step := range steps {
			var err error
			if nc, err = step(ctx, nc); err != nil {
				return nil, err
			}
		}
		return nc, nil
	}, nil
}

// proxyHeaderStep returns a handshake step that writes a PROXY header of
// version "v1" or "v2", claiming src ("" for the connection's own).
func proxyHeaderStep(version, src string) (func(context.Context, net.Conn) (net.Conn, error), error) {
	header, err := proxyHeader(version, src)
	if err != nil {
		return nil, err
	}
	return func(_ context.Context, nc net.Conn) (net.Conn, error) {
		if _, err := nc.Write(header(nc.LocalAddr(), nc.RemoteAddr())); err != nil {
			return nil, fmt.Errorf("sending the PROXY header: %w", err)
		}
		return nc, nil
	}, nil
}

// proxyHeader returns what makes the PROXY header of version "v1" or
// "v2" for a connection from local to remote, claiming src ("" for
// local).
func proxyHeader(version, src string) (func(local, remote net.Addr) []byte, error) {
	v, err := proxyVersion(version)
	if err != nil {
		return nil, err
	}
	var claimed net.Addr
	if src != "" {
		ap, err := netip.ParseAddrPort(src)
		if err != nil {
			return nil, fmt.Errorf("--proxy-src %q: want IP:PORT", src)
		}
		claimed = net.TCPAddrFromAddrPort(ap)
	}
	return func(local, remote net.Addr) []byte {
		if claimed != nil {
			local = claimed
		}
		var b bytes.Buffer
		proxy.WriteHeader(&b, v, local, remote) // the version was checked: it cannot fail
		return b.Bytes()
	}, nil
}

func proxyVersion(s string) (int, error) {
	switch s {
	case "v1", "1":
		return 1, nil
	case "v2", "2":
		return 2, nil
	}
	return 0, fmt.Errorf("--send-proxy %q: use v1 or v2", s)
}

// A dialer is a tcpkit.Dialer whose failures --trace reports too: a
// connection that never came to be has no events of its own.
type dialer struct {
	tcpkit.Dialer
	tr *tracer // nil without --trace
}

// dial connects; the Timeout bounds all of it, TCP's handshake and the
// Handshake after it (TLS) together.
func (d *dialer) dial(ctx context.Context, network, addr string, ev tcpkit.Events) (*tcpkit.Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel() // Dial's ctx bounds only the connecting
	}
	c, err := d.Dial(ctx, network, addr, ev)
	if err != nil && d.tr != nil {
		d.tr.dialFailed(addr, err)
	}
	return c, err
}

// stdinIsData reports whether standard input is a pipe or a file, as in
// "echo testing~ | tcpkit connect 5000", rather than a terminal or
// /dev/null: then connect sends it, as netcat does.
func stdinIsData() bool {
	fi, err := os.Stdin.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeNamedPipe != 0 || fi.Mode().IsRegular()
}

// seedFlagsSet reports whether a flag of the seed's client mode was given,
// which keeps that mode even with data on standard input.
func seedFlagsSet(fs *flagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "message", "interval", "count", "timeout":
			set = true
		}
	})
	return set
}

// parseTarget turns "PORT" or "HOST:PORT" into a dialable address.
func parseTarget(s string) (string, error) {
	return hostPort(s, "localhost", 1)
}

// hostPort turns "PORT" or "HOST:PORT" into an address: host defaults
// to defHost, and the port must be from lo to 65535.
func hostPort(s, defHost string, lo int) (string, error) {
	host, port := defHost, s
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("%q is not a PORT or HOST:PORT", s)
	}
	if n < lo || n > 65535 {
		return "", fmt.Errorf("port %d is out of range: use %d to 65535", n, lo)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}
