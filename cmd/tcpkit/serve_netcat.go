package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"tcpkit"
)

// netcat reports whether serve runs as "ncat -l": the argument "-".
func (o *serveOptions) netcat() bool {
	return o.mode != "exec" && len(o.argv) == 1 && o.argv[0] == "-"
}

// serveNetcat is "tcpkit serve -": as ncat -l, it takes one connection,
// writes what arrives to standard output as it is and sends standard
// input, with a FIN at its end, and exits once both directions are done:
// a chat between two terminals, or a file sent across. Standard output
// carries the connection's bytes only; the rest goes to standard error.
func (o *serveOptions) serveNetcat(ctx context.Context, stdout, stderr io.Writer) int {
	// Rejections (a second client, a bad TLS handshake) go to stderr.
	outs := newOutputs(stderr, stderr, func() {})
	defer outs.close(time.Now())
	p := newPrinter(outs, "seed", true, false)
	var tr *tracer
	var err error
	if o.trace {
		if tr, err = newTracer(outs.err, o.traceFormat, "client"); err != nil {
			return usageError(stderr, "serve", "%v", err)
		}
	}
	srv, _, err := o.server(p, tr, nil, stderr)
	if err != nil {
		return usageError(stderr, "serve", "%v", err)
	}
	pp := &pipe{in: os.Stdin, halfClose: true, hex: o.hex}
	conns := make(chan *tcpkit.Conn, 1)
	srv.Events = pp.events(stdout)
	srv.Events.OnConnect = func(c *tcpkit.Conn) { conns <- c }
	srv.MaxConns = 1              // one connection, as ncat -l without -k
	srv.Engine = tcpkit.EngineStd // its callbacks block on standard output
	srv.ReadDuringBacklog = true  // what we send comes from stdin, not from what we read

	ln, err := o.listen(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit serve: %v\n", err)
		return exitFail
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Close(); <-served }()
	outs.err.line("tcpkit serve: listening on ", addrString(ln.Addr()), " (netcat mode: one connection, to standard input and output)")
	select {
	case c := <-conns:
		ln.Close() // no more: a client that comes now is refused
		outs.err.line("tcpkit serve: connection from ", addrString(c.RemoteAddr()))
		return pp.exchange(ctx, c, "serve", "client", stderr)
	case err := <-served:
		outs.err.line("tcpkit serve: ", err.Error())
		return exitFail
	case <-ctx.Done(): // Ctrl-C before anyone came
		return exitOK
	}
}
