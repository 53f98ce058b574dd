package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"tcpkit"
)

const serveUsage = `Usage: tcpkit serve [flags]

Listen for TCP connections as the seed's Node.js server does: print each
client's address and each message it sends, reply "test", then end the
connection with a FIN. With --keep-open, reply to every message instead
and leave the connection open.

Examples:
  tcpkit serve                          port 5000, every interface, IPv4 and IPv6
  tcpkit serve --port 7000 --keep-open  a reply per message, connections stay
  tcpkit serve --host 127.0.0.1 --reply pong --quiet

SIGINT or SIGTERM stops accepting, ends open connections cleanly and
exits 0; a second signal exits at once.

Flags:
`

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", serveUsage, stdout)
	host := fs.String("host", "", "listen `address`; empty means every interface, IPv4 and IPv6")
	port := fs.Int("port", 5000, "listen `port`; 0 picks a free one")
	reply := fs.String("reply", "test", "the `text` sent back for each message")
	keepOpen := fs.Bool("keep-open", false, "reply to every message and keep the connection open, instead of ending it after the first reply")
	idle := fs.Duration("idle-timeout", 0, "end a connection that sends and receives nothing for this `duration` (0: never)")
	drain := fs.Duration("drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long open connections get to end cleanly before they are cut")
	quiet := fs.Bool("quiet", false, "print only the listen line and errors, nothing per connection or message")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 {
		return usageError(stderr, "serve", "unexpected argument %q: give the port with --port", pos[0])
	}
	if *port < 0 || *port > 65535 {
		return usageError(stderr, "serve", "--port %d is out of range: use 0 to 65535", *port)
	}

	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit serve: %s\n", explainListen(addr, *port, err))
		return exitFail
	}
	out := newLineWriter(stdout)
	defer out.Close()
	bound := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if *host == "" {
		out.line("listen on port ", bound)
	} else {
		out.line("listen on port ", bound, " at ", *host)
	}

	srv := &tcpkit.Server{
		Events:      seedServer(out, []byte(*reply), *keepOpen, *quiet),
		ConnOptions: tcpkit.ConnOptions{IdleTimeout: *idle},
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served: // the listener failed for good
		fmt.Fprintf(stderr, "tcpkit serve: %v\n", err)
		return exitFail
	case <-ctx.Done():
	}

	open := srv.Conns()
	dctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		cut := srv.Conns()
		srv.Close()
		fmt.Fprintf(stderr, "tcpkit serve: stopped; %d of %d open connections did not end within --drain-timeout %v and were cut\n", cut, open, *drain)
		return exitFail
	}
	<-served
	fmt.Fprintf(stderr, "tcpkit serve: stopped; %d open connections ended cleanly\n", open)
	return exitOK
}

// seedServer returns the events of the seed's server: print the client's
// address and each message, reply, and end unless keepOpen.
func seedServer(out *lineWriter, reply []byte, keepOpen, quiet bool) tcpkit.Events {
	ev := tcpkit.Events{
		OnData: func(c *tcpkit.Conn, p []byte) {
			if !quiet {
				out.text("", p)
			}
			// After End, a late message gets no reply: Write says
			// ErrWriteAfterEnd, which is expected here.
			c.Write(reply)
			if !keepOpen {
				c.End()
			}
		},
	}
	ev.OnError = func(c *tcpkit.Conn, err error) { // errors show even when quiet
		out.line("error : ", c.RemoteAddr().String(), " : ", explainBroken(err, "client"))
	}
	if quiet {
		return ev
	}
	ev.OnConnect = func(c *tcpkit.Conn) {
		out.line("connect address : ", c.RemoteAddr().String())
	}
	ev.OnTimeout = func(c *tcpkit.Conn) {
		out.line("idle timeout : ", c.RemoteAddr().String())
		c.End()
	}
	return ev
}
