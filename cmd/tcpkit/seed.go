package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"tcpkit"
)

// client prints what the seed's client prints and tells loop that data
// arrived.
type client struct {
	out    *lineWriter
	hex    bool
	data   chan struct{} // a token per burst of received data
	chunks atomic.Int64  // chunks received so far
}

func (cl *client) events() tcpkit.Events {
	return tcpkit.Events{
		OnConnect: func(c *tcpkit.Conn) { cl.out.line("connect to server!") },
		OnData: func(c *tcpkit.Conn, p []byte) {
			cl.chunks.Add(1) // before the token: loop may look at once
			if cl.hex {
				cl.out.line("receive: ", strconv.Itoa(len(p)), " bytes")
				cl.out.hexDump(p)
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

// loop sends msg every interval, as the seed's setInterval does, until
// count is reached, a send fails, the server falls silent for timeout, or
// ctx is done. The count is reached when count messages were sent and
// data came after the last (a reply): a server that ends the connection
// before that is a broken exchange, exitBroken.
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
	var before int64 // chunks received before the last send
	send := func() bool {
		before = cl.chunks.Load()
		if _, err := c.Write(msg); err != nil {
			cl.out.Close(closeWait) // the lines before the error come first
			why := fmt.Sprintf("cannot send %q: %s", msg, explainBroken(err, "server"))
			if alert := tlsAlert(err); alert != "" {
				why = alert // the server refused the session: the same line whether a send or a read saw it first
			}
			fmt.Fprintf(stderr, "tcpkit connect: %s\n", why)
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
				cl.out.Close(closeWait)
				fmt.Fprintf(stderr, "tcpkit connect: %s\n", explainBroken(err, "server"))
				return exitBroken
			}
			if done() && cl.chunks.Load() > before {
				return exitOK // the server ended after its reply to the last send
			}
			if done() { // --count is not reached: the last send got no reply
				cl.out.Close(closeWait)
				fmt.Fprintf(stderr, "tcpkit connect: the server ended the connection without replying to send %d of --count %d\n", sent, count)
				return exitBroken
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

// finish ends the connection and waits, briefly, for it to close: for
// the server's FIN, then for the close itself, each at most closeWait (a
// callback stuck on a blocked output can hold the close up).
func finish(c *tcpkit.Conn) int {
	c.End()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-c.Done():
		return exitOK
	case <-t.C:
	}
	c.Close()
	t.Reset(closeWait)
	select {
	case <-c.Done():
	case <-t.C:
	}
	return exitOK
}
