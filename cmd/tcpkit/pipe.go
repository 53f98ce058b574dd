package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"tcpkit"
)

// A pipe is netcat's mode, connect's and serve's: its input goes to the
// socket and the socket's bytes to the output, unchanged.
type pipe struct {
	in        io.Reader // nil: send only first
	first     []byte    // sent before in (--send)
	halfClose bool      // at the end of the input send a FIN and read on; else close
	hex       bool      // dump received bytes in hex instead
}

// events are the pipe's events: what arrives goes to stdout as it is (or
// as a hex dump).
func (p *pipe) events(stdout io.Writer) tcpkit.Events {
	var outMu sync.Mutex // OnData and the final flush do not overlap anyway; this keeps -race honest
	return tcpkit.Events{OnData: func(c *tcpkit.Conn, b []byte) {
		outMu.Lock()
		defer outMu.Unlock()
		if p.hex {
			io.WriteString(stdout, hex.Dump(b))
			return
		}
		// A blocking write holds up reading the socket: a slow consumer
		// of our output slows the peer down rather than filling memory.
		stdout.Write(b)
	}}
}

func (p *pipe) run(ctx context.Context, d *dialer, network, addr string, stdout, stderr io.Writer) int {
	// What we send comes from our input, not from what we read: reading
	// must go on while our output waits, or an echo server and we would
	// each wait for the other to read.
	d.ReadDuringBacklog = true
	c, err := d.dial(ctx, network, addr, p.events(stdout))
	if err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(stderr, "tcpkit connect: %s\n", explainDial(addr, err))
		return exitFail
	}
	return p.exchange(ctx, c, "connect", "server", stderr)
}

// exchange sends the input on c while its bytes go to the output, until
// the connection closes or ctx is done (Ctrl-C: it ends cleanly), and
// returns the exit code: 0 for a clean end, exitBroken for a reset.
func (p *pipe) exchange(ctx context.Context, c *tcpkit.Conn, cmd, peer string, stderr io.Writer) int {
	go p.send(ctx, c)
	select {
	case <-c.Done():
	case <-ctx.Done(): // Ctrl-C: end cleanly
		finish(c)
	}
	if err := c.Err(); err != nil {
		fmt.Fprintf(stderr, "tcpkit %s: %s\n", cmd, explainBroken(err, peer))
		return exitBroken
	}
	return exitOK
}

// send writes first, then the input, to c no faster than the peer reads,
// and ends or closes the connection at the end of the input.
func (p *pipe) send(ctx context.Context, c *tcpkit.Conn) {
	if len(p.first) > 0 {
		c.Write(p.first)
	}
	if p.in != nil {
		buf := make([]byte, 64<<10)
		for {
			n, err := p.in.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return // the connection is gone; run reports why
				}
				if c.WaitDrain(ctx) != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
	}
	if p.halfClose {
		c.End()
	} else {
		c.Close()
	}
}
