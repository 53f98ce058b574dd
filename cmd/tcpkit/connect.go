package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"tcpkit"
)

const connectUsage = `Usage: tcpkit connect [flags] [HOST:PORT | PORT]

Connect as the seed's Node.js client does (default localhost:5000): print
"connect to server!", send "testing~" every second, print each chunk that
comes back as "receive: ...", "disconnected." when the server ends the
connection, and the error when a later send fails.

Examples:
  tcpkit connect                        localhost:5000, until Ctrl-C or an error
  tcpkit connect 7000 --count 3         three messages, then end and exit 0
  tcpkit connect [::1]:5000 --message ping --interval 100ms --hex

Exit codes: 0 done (--count reached, or Ctrl-C); 1 could not connect;
2 bad flag or argument; 3 the connection broke (a send failed after the
server ended it, or a reset); 4 --timeout passed with nothing received.

Flags:
`

// closeWait bounds how long connect waits, after ending the connection
// itself, for the server's FIN before it closes anyway.
const closeWait = 2 * time.Second

func connectCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("connect", connectUsage, stdout)
	message := fs.String("message", "testing~", "the `text` to send each time")
	interval := fs.Duration("interval", time.Second, "time between sends; the first goes at once")
	count := fs.Int("count", 0, "stop after `N` sends, once the last reply arrived or the server ended (0: never stop)")
	timeout := fs.Duration("timeout", 0, "print \"connection timeout.\" and exit 4 after this `duration` with nothing received (0: wait forever)")
	connectTimeout := fs.Duration("connect-timeout", 10*time.Second, "give up connecting after this `duration`")
	hexOut := fs.Bool("hex", false, "print received bytes as hex instead of text")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 1 {
		return usageError(stderr, "connect", "unexpected argument %q: give one HOST:PORT or PORT", pos[1])
	}
	addr := "localhost:5000"
	if len(pos) == 1 {
		if addr, err = parseTarget(pos[0]); err != nil {
			return usageError(stderr, "connect", "%v", err)
		}
	}
	if *interval <= 0 || *count < 0 || *timeout < 0 {
		return usageError(stderr, "connect", "--interval must be positive, --count and --timeout not negative")
	}

	out := newLineWriter(stdout)
	defer out.Close()
	cl := &client{out: out, hex: *hexOut, data: make(chan struct{}, 1)}
	d := tcpkit.Dialer{Timeout: *connectTimeout}
	c, err := d.Dial(ctx, "tcp", addr, cl.events())
	if err != nil {
		if ctx.Err() != nil {
			return exitOK // interrupted while connecting
		}
		fmt.Fprintf(stderr, "tcpkit connect: %s\n", explainDial(addr, err))
		return exitFail
	}
	return cl.loop(ctx, c, []byte(*message), *interval, *count, *timeout, stderr)
}

// parseTarget turns "PORT" or "HOST:PORT" into a dialable address.
func parseTarget(s string) (string, error) {
	host, port := "localhost", s
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("%q is not a PORT or HOST:PORT", s)
	}
	if n < 1 || n > 65535 {
		return "", fmt.Errorf("port %d is out of range: use 1 to 65535", n)
	}
	return net.JoinHostPort(host, port), nil
}

// client prints what the seed's client prints and tells loop that data
// arrived.
type client struct {
	out  *lineWriter
	hex  bool
	data chan struct{} // a token per burst of received data
}

func (cl *client) events() tcpkit.Events {
	return tcpkit.Events{
		OnConnect: func(c *tcpkit.Conn) { cl.out.line("connect to server!") },
		OnData: func(c *tcpkit.Conn, p []byte) {
			if cl.hex {
				cl.out.line("receive: ", hexBytes(p))
			} else {
				cl.out.text("receive: ", p)
			}
			select {
			case cl.data <- struct{}{}:
			default:
			}
		},
		OnEnd: func(c *tcpkit.Conn) { cl.out.line("disconnected.") },
	}
}

// hexBytes formats p as Node prints a Buffer's bytes: "74 65 73 74".
func hexBytes(p []byte) string {
	b := make([]byte, 0, 3*len(p))
	for i, v := range p {
		if i > 0 {
			b = append(b, ' ')
		}
		b = hex.AppendEncode(b, []byte{v})
	}
	return string(b)
}

// loop sends msg every interval, as the seed's setInterval does, until
// count is reached, a send fails, the server falls silent for timeout, or
// ctx is done.
func (cl *client) loop(ctx context.Context, c *tcpkit.Conn, msg []byte, interval time.Duration, count int, timeout time.Duration, stderr io.Writer) int {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var silence <-chan time.Time
	var silenceTimer *time.Timer
	if timeout > 0 {
		silenceTimer = time.NewTimer(timeout)
		defer silenceTimer.Stop()
		silence = silenceTimer.C
	}
	closed := c.Done()
	sent := 0
	send := func() bool {
		if _, err := c.Write(msg); err != nil {
			cl.out.Close() // the lines before the error come first
			fmt.Fprintf(stderr, "tcpkit connect: cannot send %q: %s\n", msg, explainBroken(err, "server"))
			return false
		}
		sent++
		return true
	}
	done := func() bool { return count > 0 && sent >= count }
	if !send() {
		return exitBroken
	}
	for {
		select {
		case <-ctx.Done(): // Ctrl-C: end cleanly
			return finish(c)
		case <-tick.C:
			if done() {
				continue // waiting for the last reply
			}
			if !send() {
				return exitBroken
			}
		case <-cl.data:
			if silenceTimer != nil {
				silenceTimer.Reset(timeout)
			}
			if done() { // the reply to the last send
				return finish(c)
			}
		case <-closed:
			if err := c.Err(); err != nil {
				cl.out.Close()
				fmt.Fprintf(stderr, "tcpkit connect: %s\n", explainBroken(err, "server"))
				return exitBroken
			}
			if done() {
				return exitOK // the server ended after the last send
			}
			// As in the seed: the server has ended the connection, and
			// the next send will fail and say so.
			closed = nil
		case <-silence:
			cl.out.line("connection timeout.")
			c.Close()
			return exitTimeout
		}
	}
}

// finish ends the connection and waits, briefly, for it to close.
func finish(c *tcpkit.Conn) int {
	c.End()
	select {
	case <-c.Done():
	case <-time.After(closeWait):
		c.Close()
		<-c.Done()
	}
	return exitOK
}
