package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"tcpkit"
)

// killDelay is how long a command gets after its connection died before
// it is killed outright, and how long Wait waits for its output after.
const killDelay = 2 * time.Second

// stdinMark is how much input may wait for a command to read it before
// the connection stops reading from the client.
const stdinMark = 64 << 10

// A child is the command serving one connection in exec mode.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	cancel context.CancelFunc // kills the command

	mu      sync.Mutex
	wake    *sync.Cond // on mu: input queued, or closing
	queue   [][]byte   // input for the command's stdin, in order
	queued  int        // bytes in queue
	closing bool       // the peer's FIN: close stdin once queue is written
}

// feed queues a message for the command's stdin. Reading from the client
// pauses while too much waits, so a command that reads slowly, or not at
// all, slows the client down instead of growing memory or blocking
// the connection's events.
func (ch *child) feed(c *tcpkit.Conn, msg []byte) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.queue = append(ch.queue, bytes.Clone(msg))
	ch.queued += len(msg)
	if ch.queued > stdinMark {
		c.Pause()
	}
	ch.wake.Signal()
}

// closeStdin closes the command's stdin once the queued input is written.
func (ch *child) closeStdin() {
	ch.mu.Lock()
	ch.closing = true
	ch.wake.Signal()
	ch.mu.Unlock()
}

// writeStdin is the goroutine that writes queued input to the command.
func (ch *child) writeStdin(c *tcpkit.Conn) {
	defer ch.stdin.Close()
	ch.mu.Lock()
	for {
		for len(ch.queue) == 0 && !ch.closing {
			ch.wake.Wait()
		}
		if len(ch.queue) == 0 {
			ch.mu.Unlock()
			return
		}
		msg := ch.queue[0]
		ch.queue = ch.queue[1:]
		ch.mu.Unlock()
		_, err := ch.stdin.Write(msg)
		ch.mu.Lock()
		ch.queued -= len(msg)
		if ch.queued <= stdinMark {
			c.Resume()
		}
		if err != nil { // the command stopped reading; drop its input
			ch.queue, ch.queued = nil, 0
			c.Resume()
		}
	}
}

// execEvents runs argv for each connection, as ucspi-tcp's tcpserver
// does: the socket's bytes go to its stdin and its stdout goes to the
// socket; the peer's FIN closes its stdin; its stdout's end ends the
// connection; and the connection's close kills it. The peer's address is
// in its environment: TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP,
// TCPLOCALPORT, and PROTO=TCP.
func execEvents(p *printer, argv []string, stderr io.Writer) tcpkit.Events {
	ev := p.baseEvents()
	ev.OnConnect = func(c *tcpkit.Conn) {
		p.connected(c)
		ch, err := startChild(c, argv, stderr)
		if err != nil {
			p.failed(c, fmt.Errorf("cannot run %s: %w", argv[0], err))
			c.Close()
			return
		}
		c.SetValue(ch)
	}
	ev.OnData = func(c *tcpkit.Conn, msg []byte) { // the command's business: not printed
		if ch, ok := c.Value().(*child); ok {
			ch.feed(c, msg)
		}
	}
	ev.OnEnd = func(c *tcpkit.Conn) {
		if ch, ok := c.Value().(*child); ok {
			ch.closeStdin()
		}
	}
	ev.OnClose = func(c *tcpkit.Conn, hadError bool) {
		if ch, ok := c.Value().(*child); ok {
			ch.cancel()
			ch.closeStdin()
		}
	}
	return ev
}

func startChild(c *tcpkit.Conn, argv []string, stderr io.Writer) (*child, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), peerEnv(c)...)
	cmd.Stderr = stderr
	setProcessGroup(cmd) // so that killing it kills what it started too
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	cmd.WaitDelay = killDelay
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	ch := &child{cmd: cmd, stdin: stdin, cancel: cancel}
	ch.wake = sync.NewCond(&ch.mu)
	go ch.writeStdin(c)
	go func() {
		pump(c, stdout)
		c.End() // the command closed its stdout: end the connection
		cmd.Wait()
		cancel()
		ch.closeStdin()
	}()
	return ch, nil
}

// pump copies r to the connection, no faster than the peer reads.
func pump(c *tcpkit.Conn, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			if c.WaitDrain(context.Background()) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// peerEnv describes the connection in tcpserver's environment variables.
func peerEnv(c *tcpkit.Conn) []string {
	env := []string{"PROTO=TCP"}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		env = append(env, "TCPREMOTEIP="+ra.IP.String(), "TCPREMOTEPORT="+strconv.Itoa(ra.Port))
	}
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
		env = append(env, "TCPLOCALIP="+la.IP.String(), "TCPLOCALPORT="+strconv.Itoa(la.Port))
	}
	return env
}
