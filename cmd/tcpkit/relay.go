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
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tcpkit/internal/proxy"
	"tcpkit/internal/relay"
)

const relayUsage = `Usage: tcpkit relay [flags] LISTEN TARGET

Relay each connection made to LISTEN to TARGET, byte for byte both ways,
as socat TCP-LISTEN:PORT,fork TCP:HOST:PORT does, and exactly: a FIN
goes on as a FIN while the other direction keeps flowing, a reset goes
on as a reset, and a target that refuses or does not answer in time
resets the client at once, the reason on the log. A side that does not
read stops the relay reading from the other.

LISTEN is [HOST:]PORT (no HOST: every interface, IPv4 and IPv6), or
--unix PATH alone; TARGET is HOST:PORT, PORT (on localhost), or the path
of a Unix socket. TARGET's host is looked up once, at start.

Where nothing inspects the bytes, they move by splice(2), in the kernel
(Linux); --hex, --trace, --proxy-protocol, the faults and --control copy
them through the relay's event loop instead.

Faults, as toxiproxy's toxics: each flag takes an optional direction,
up: (client to target) or down: (target to client), else both; the
control API (--control) lists, adds and removes them while it runs
(docs/relay.md):
  --latency 50ms,jitter=10ms   delay each chunk
  --bandwidth 1048576           at most this many bytes a second
  --slice 64,delay=1ms          cut the bytes into 64-byte segments
  --reset-after 1000 | 2s       reset both sides after N bytes or a time
  --stall 5s                    hold the bytes; end both sides after 5s (0: never)
  --limit-data 1000             end both sides after N bytes
  --slow-close 1s               hold the FIN for a while

Examples:
  tcpkit relay 6000 localhost:5000          port 6000, every interface, to port 5000
  tcpkit relay --hex 127.0.0.1:6000 5000    both directions dumped, as socat -v -x
  tcpkit relay --latency 50ms 6000 5000     50 ms each way: 100 ms more per round trip
  tcpkit relay --bandwidth down:1048576 6000 5000
  tcpkit relay --control 127.0.0.1:6001 6000 5000
  tcpkit relay --unix /tmp/relay.sock 5000

SIGINT or SIGTERM stops accepting and lets the open pairs end by
themselves for --drain-timeout, then resets those left and exits 1; a
second signal resets them at once.

Flags:
`

// relayOptions are relay's flags and arguments.
type relayOptions struct {
	unix, traceFormat, proxyFrom, sendProxy, control string
	maxConns                                         int
	connectTimeout, idle, drain, proxyTimeout        time.Duration
	noSplice, hex, quiet, trace, proxy               bool
	toxics                                           []relay.Toxic   // from the fault flags, in order
	given                                            map[string]bool // the flags given, by name

	listen          string // LISTEN as net.Listen takes it; "" with --unix
	network, target string // TARGET as given, made dialable
}

// toxicFlag is a fault flag: each use adds a toxic of its type.
type toxicFlag struct {
	typ string
	o   *relayOptions
}

func (f toxicFlag) String() string { return "" }

func (f toxicFlag) Set(s string) error {
	t, err := relay.ParseFlag(f.typ, s)
	if err != nil {
		return err
	}
	for _, x := range f.o.toxics {
		if x.Name == t.Name {
			if t.Direction == "both" {
				return errors.New("given twice for both directions: give it once")
			}
			return fmt.Errorf("given twice for the %s direction: give it once", t.Direction)
		}
	}
	f.o.toxics = append(f.o.toxics, t)
	return nil
}

func (o *relayOptions) define(fs *flagSet) {
	fs.StringVar(&o.unix, "unix", "", "listen on a Unix socket at `path` instead of TCP (then TARGET is the only argument)")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "give up connecting to TARGET after this `duration`, and reset the client")
	fs.IntVar(&o.maxConns, "max-conns", 0, "most pairs open at once; a client past it is closed at once (0: no limit)")
	fs.DurationVar(&o.idle, "idle-timeout", 0, "end a pair that relays nothing either way for this `duration` (a FIN to both sides), and cut it if it has not ended one more such period later (0: never)")
	fs.DurationVar(&o.drain, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long open pairs get to end by themselves before they are reset")
	fs.BoolVar(&o.noSplice, "no-splice", false, "copy the bytes through the relay's event loop even where splice(2) could move them in the kernel")
	fs.BoolVar(&o.proxy, "proxy-protocol", false, "every client must start with a PROXY protocol header (v1 or v2) from a load balancer; the client's address is taken from it")
	fs.StringVar(&o.proxyFrom, "proxy-protocol-from", "", "with --proxy-protocol, the balancers' addresses: comma-separated `CIDRs`; others are rejected (not given: any peer)")
	fs.DurationVar(&o.proxyTimeout, "proxy-protocol-timeout", proxy.DefaultTimeout, "with --proxy-protocol, how long a client has to send its whole header")
	fs.StringVar(&o.sendProxy, "send-proxy", "", "send TARGET a PROXY protocol header, `v1` or v2, with the client's address, before its bytes")
	fs.BoolVar(&o.hex, "hex", false, "dump both directions as they arrive, with the time and a direction mark (> to the target, < to the client), as socat -v -x")
	fs.BoolVar(&o.quiet, "quiet", false, "print only the listen line and the pairs that failed")
	fs.BoolVar(&o.trace, "trace", false, "print each TCP event of both legs on stderr, explained, under the pair's number")
	fs.StringVar(&o.traceFormat, "trace-format", "text", "--trace lines as text or json")
	fs.StringVar(&o.control, "control", "", "serve the HTTP control API (list, add and remove faults) at this `address` (host:port)")
	for _, f := range []struct{ name, typ, help string }{
		{"latency", relay.Latency, "delay each chunk: `[DIR:]D[,jitter=J]`, each delay D ± up to J"},
		{"bandwidth", relay.Bandwidth, "at most this many bytes a second: `[DIR:]RATE` (1048576, 64KiB)"},
		{"slice", relay.Slice, "cut the bytes into segments of SIZE bytes, written apart: `[DIR:]SIZE[,delay=D]`"},
		{"reset-after", relay.ResetAt, "reset both sides once N bytes went through, or D after the pair opened: `[DIR:]N|D`"},
		{"stall", relay.Stall, "hold the bytes (stop reading) and end both sides after D; 0 holds them for ever: `[DIR:]D`"},
		{"limit-data", relay.LimitData, "end both sides (a FIN) once N bytes went through: `[DIR:]N`"},
		{"slow-close", relay.SlowClose, "hold each FIN for D before it goes on: `[DIR:]D`"},
	} {
		fs.Var(toxicFlag{typ: f.typ, o: o}, f.name, f.help)
	}
}

// check reports a usage error in o, given the positional arguments.
func (o *relayOptions) check(pos []string) error {
	want := 2
	if o.unix != "" {
		want = 1
	}
	switch {
	case len(pos) < want && o.unix != "":
		return errors.New("give TARGET: HOST:PORT, PORT or a Unix socket path")
	case len(pos) < want:
		return errors.New("give LISTEN and TARGET, as in: tcpkit relay 6000 localhost:5000")
	case len(pos) > want:
		return fmt.Errorf("unexpected argument %q: give LISTEN and TARGET (or --unix PATH and TARGET)", pos[want])
	case o.connectTimeout <= 0 || o.drain <= 0:
		return errors.New("--connect-timeout and --drain-timeout must be positive")
	case o.idle < 0 || o.maxConns < 0:
		return errors.New("--idle-timeout and --max-conns must not be negative")
	case (o.given["proxy-protocol-from"] || o.given["proxy-protocol-timeout"]) && !o.proxy:
		return errors.New("--proxy-protocol-from and --proxy-protocol-timeout go with --proxy-protocol")
	case o.proxyTimeout <= 0:
		return errors.New("--proxy-protocol-timeout must be positive")
	case o.unix != "" && o.proxy:
		return errors.New("--unix does not go with --proxy-protocol")
	case o.control != "" && !validHostPort(o.control):
		return fmt.Errorf("--control %q: want HOST:PORT, such as 127.0.0.1:6001", o.control)
	}
	if o.sendProxy != "" {
		if _, err := proxyVersion(o.sendProxy); err != nil {
			return err
		}
	}
	if o.unix != "" {
		if err := checkUnixPath(o.unix); err != nil {
			return err
		}
	} else {
		l, err := parseListen(pos[0])
		if err != nil {
			return err
		}
		o.listen = l
	}
	t := pos[want-1]
	if strings.Contains(t, "/") {
		if len(t) > maxUnixPath {
			return fmt.Errorf("TARGET %s is %d bytes, over the %d-byte limit of a Unix socket path", t, len(t), maxUnixPath)
		}
		if o.unix != "" && filepath.Clean(o.unix) == filepath.Clean(t) {
			return fmt.Errorf("TARGET %s is the relay's own socket: %s", t, errItself)
		}
		o.network, o.target = "unix", t
		return nil
	}
	addr, err := parseTarget(t)
	if err != nil {
		return fmt.Errorf("TARGET: %w, or the path of a Unix socket", err)
	}
	if o.unix == "" && relaysToItself(o.listen, addr) {
		return fmt.Errorf("TARGET %s is the relay's own LISTEN address: %s", addr, errItself)
	}
	o.network, o.target = "tcp", addr
	return nil
}

const errItself = "each client would be relayed back to the relay, and again, until it ran out of file descriptors"

// relaysToItself reports whether target is an address of this machine
// that the listener at listen accepts on: a typo such as "tcpkit relay
// 5000 5000". Only IP literals and localhost are looked at, so that no
// name is resolved at startup.
func relaysToItself(listen, target string) bool {
	lh, lp, err := net.SplitHostPort(listen)
	th, tp, err2 := net.SplitHostPort(target)
	if err != nil || err2 != nil || lp != tp {
		return false
	}
	ips := func(h string) []net.IP {
		if h == "localhost" {
			return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		if ip := net.ParseIP(h); ip != nil {
			return []net.IP{ip}
		}
		return nil
	}
	local := func(ip net.IP) bool {
		if ip.IsLoopback() {
			return true
		}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
		return false
	}
	for _, tip := range ips(th) {
		if !local(tip) {
			continue
		}
		if lh == "" {
			return true // every interface
		}
		for _, lip := range ips(lh) {
			if lip.IsUnspecified() || lip.Equal(tip) {
				return true
			}
		}
	}
	return false
}

// parseListen turns LISTEN, [HOST:]PORT, into an address to listen on.
func parseListen(s string) (string, error) {
	addr, err := hostPort(s, "", 0)
	if err != nil {
		return "", errors.New("LISTEN " + err.Error())
	}
	return addr, nil
}

// copyReason says why the bytes are copied through the event loop
// rather than spliced, or "" if they may be spliced.
func (o *relayOptions) copyReason() string {
	switch {
	case !relay.SpliceBuilt:
		return "splice(2) is Linux's"
	case o.noSplice:
		return "as --no-splice asks"
	case o.hex:
		return "for --hex"
	case o.trace:
		return "for --trace"
	case len(o.toxics) > 0:
		return "for the faults"
	case o.control != "":
		return "for --control"
	case o.proxy:
		return "for --proxy-protocol"
	}
	return ""
}

func relayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("relay", relayUsage, stdout)
	var o relayOptions
	o.define(fs)
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	o.given = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { o.given[f.Name] = true })
	if err := o.check(pos); err != nil {
		return usageError(stderr, "relay", "%v", err)
	}
	var tr *tracer
	if o.trace {
		if tr, err = newTracer(stderr, o.traceFormat, "client"); err != nil {
			return usageError(stderr, "relay", "%v", err)
		}
	}
	if o.network == "tcp" {
		if o.target, err = resolveOnce(ctx, o.target); err != nil {
			fmt.Fprintf(stderr, "tcpkit relay: %v\n", err)
			return exitFail
		}
	}

	// Output never holds the relay up, as for serve (see newOutputs).
	ctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	outs := newOutputsOf("relay", stdout, stderr, stopServing)
	if tr != nil {
		tr.w = outs.err
	}
	log := &relayLog{out: outs.out, quiet: o.quiet, target: targetString(o.network, o.target)}

	var ln net.Listener
	if o.unix != "" {
		ln, err = listenUnix(ctx, o.unix)
	} else if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", o.listen); err != nil {
		err = errors.New(explainListen(o.listen, "LISTEN", err))
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit relay: %v\n", err)
		return exitFail
	}
	eng, how, err := o.engine(ln, log, tr)
	if err != nil {
		ln.Close()
		return usageError(stderr, "relay", "%v", err)
	}
	if o.control != "" {
		cln, err := net.Listen("tcp", o.control)
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "tcpkit relay: --control: %s\n", explainListen(o.control, "--control", err))
			return exitFail
		}
		stop := serveControl(cln, eng.toxics())
		defer stop()
		how += "; control API on http://" + cln.Addr().String() + "/toxics"
	}
	outs.err.line("tcpkit relay: listening on ", addrString(ln.Addr()), ", relaying to ", log.target, " (", how, ")")
	return runRelay(ctx, eng, ln, o.drain, outs)
}

// resolveOnce looks TARGET's host up, once, and returns IP:PORT: the
// first IPv4 address, else the first IPv6 one.
func resolveOnce(ctx context.Context, target string) (string, error) {
	host, port, _ := net.SplitHostPort(target)
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip, mustPort(port)).String(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return "", fmt.Errorf("cannot relay to %s: unknown host %q", target, host)
		}
		return "", fmt.Errorf("cannot relay to %s: cannot look up %q: %v", target, host, err)
	}
	pick := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			pick = ip.Unmap()
			break
		}
	}
	return netip.AddrPortFrom(pick, mustPort(port)).String(), nil
}

func mustPort(s string) uint16 {
	n, _ := strconv.Atoi(s)
	return uint16(n)
}

// targetString shows TARGET in logs and messages.
func targetString(network, target string) string {
	if network == "unix" {
		return "unix:" + target
	}
	return target
}
