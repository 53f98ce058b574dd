package tcpkit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// A PanicError is the error of a connection whose callback panicked. The
// panic is contained to that connection: it is closed, OnError and OnClose
// report it, and the server goes on.
type PanicError struct {
	Value any    // what the callback panicked with
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("tcpkit: panic in callback: %v", e.Value) }

// run is the connection's goroutine: it delivers OnConnect, reads and
// delivers OnData, OnEnd and OnTimeout, and after the connection closed
// delivers OnError and OnClose. This goroutine-per-connection loop is the
// standard-library engine; the Conn API does not depend on it.
func (c *Conn) run() {
	c.call(c.ev.OnConnect)
	c.readLoop()
	c.idleTimerStart() // a half-open connection may stay up long after reading ended
	<-c.closing
	c.idleTimerStop()
	c.flushWG.Wait()
	c.mu.Lock()
	if c.linger != nil {
		c.linger.Stop()
	}
	err := c.err
	c.mu.Unlock()
	if err != nil {
		c.traceFailure(err)
	}
	c.trace(TraceClosed, 0, err)
	if err != nil && c.ev.OnError != nil {
		c.evMu.Lock()
		c.guard(func() { c.ev.OnError(c, err) })
		c.evMu.Unlock()
	}
	if c.ev.OnClose != nil {
		c.evMu.Lock()
		c.guard(func() { c.ev.OnClose(c, err != nil) })
		c.evMu.Unlock()
	}
	close(c.done)
	if c.onDone != nil {
		c.onDone(c)
	}
}

func (c *Conn) readLoop() {
	if c.opt.Framing != Raw {
		c.readMessages()
		return
	}
	buf := make([]byte, DefaultReadBufferSize)
	for {
		if c.mustWait() && !c.waitResumed() {
			return
		}
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.gotBytes(n)
			c.deliver(buf[:n])
			if n == len(buf) && len(buf) < MaxReadBufferSize {
				buf = make([]byte, 2*len(buf))
			}
		}
		if err != nil && !c.readFailed(err) {
			return
		}
	}
}

// readMessages is readLoop for Lines and Len32 framing: it reads into a
// buffer that holds the unfinished message, and delivers each complete one.
// A callback that pauses the connection (Pause, Offload) stops delivery
// between messages too, not only reading: the messages after it wait.
func (c *Conn) readMessages() {
	max := c.opt.maxMessage()
	buf := make([]byte, DefaultReadBufferSize)
	start, end := 0, 0 // buf[start:end] is read but not delivered
	var rerr error     // the read error, acted on once what came before it is delivered
	for {
		for start < end && !c.mustWait() {
			msg, used, serr := c.opt.Framing.split(buf[start:end], max)
			if serr != nil {
				c.closeWith(serr)
				return
			}
			if used == 0 {
				break
			}
			start += used
			c.deliver(msg)
		}
		if start == end {
			start, end = 0, 0
		}
		if c.mustWait() {
			if !c.waitResumed() {
				return
			}
			continue
		}
		if rerr != nil {
			if rerr == io.EOF && start < end { // the peer ended inside a message
				if c.opt.Framing != Lines {
					c.closeWith(ErrTruncatedMessage)
					return
				}
				c.deliver(buf[start:end]) // a last line without its '\n'
				start, end = 0, 0
			}
			if !c.readFailed(rerr) {
				return
			}
			rerr = nil
			continue
		}
		if end == len(buf) { // make room: move the unfinished message down, or grow
			if start > 0 {
				end = copy(buf, buf[start:end])
				start = 0
			} else {
				buf = append(buf, make([]byte, len(buf))...)
			}
		}
		n, err := c.nc.Read(buf[end:])
		if n > 0 {
			c.gotBytes(n)
			end += n
		}
		rerr = err
	}
}

// readFailed handles a read error and reports whether to read on.
func (c *Conn) readFailed(err error) bool {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return false
	case errors.Is(err, os.ErrDeadlineExceeded):
		return c.deadlinePassed()
	case err == io.EOF:
		c.peerFIN()
		return false
	default:
		c.closeWith(err)
		return false
	}
}

// peerFIN handles the peer's FIN: OnEnd, then End unless half-open
// connections are allowed, and close if our FIN is already out.
func (c *Conn) peerFIN() {
	c.mu.Lock()
	c.peerEnded = true
	c.mu.Unlock()
	c.trace(TracePeerFIN, 0, nil)
	c.call(c.ev.OnEnd)
	c.mu.Lock()
	if !c.opt.AllowHalfOpen && !c.ending {
		c.endedByPeer = true
	}
	finDone, ending := c.finDone, c.ending
	c.mu.Unlock()
	switch {
	case finDone:
		c.closeWith(nil) // 4-way handshake complete
	case !c.opt.AllowHalfOpen && !ending:
		c.End()
	}
}

// gotBytes accounts for n bytes read.
func (c *Conn) gotBytes(n int) {
	c.bytesRead.Add(int64(n))
	if c.opt.ReadTimeout > 0 {
		c.lastRead.Store(monoNow())
	}
	c.touch()
	c.trace(TraceRead, n, nil)
}

// mustWait reports, without a lock, whether reading should stop for now:
// the connection is paused, or its output is backlogged.
func (c *Conn) mustWait() bool {
	return c.paused.Load() || c.backlogged.Load() && !c.opt.ReadDuringBacklog
}

// waitResumed blocks while the connection is paused or its output is
// backlogged; false means it closed.
func (c *Conn) waitResumed() bool {
	c.idleTimerStart()
	defer c.idleTimerStop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for (c.pausedLock || c.needDrain && !c.opt.ReadDuringBacklog) && !c.closed {
		c.cond.Wait()
	}
	return !c.closed
}

func (c *Conn) deliver(p []byte) {
	if c.ev.OnData != nil {
		c.callData(p)
	}
	if !c.delivered { // Shutdown may be waiting for the first message to be handled
		c.delivered = true
		close(c.firstData)
	}
}

func (c *Conn) callData(p []byte) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.dropInput.Load() { // checked under evMu: Shutdown sets it under evMu
		return
	}
	defer c.recoverPanic()
	c.ev.OnData(c, p)
}

// call runs a callback of the form func(*Conn), if set, as the only
// callback of the connection running.
func (c *Conn) call(f func(*Conn)) {
	if f == nil {
		return
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	defer c.recoverPanic()
	f(c)
}

// guard runs OnError or OnClose, dropping a panic: no later event is left
// to report it in, and the connection is already closed.
func (c *Conn) guard(f func()) {
	defer func() { recover() }()
	f()
}

func (c *Conn) recoverPanic() {
	if r := recover(); r != nil {
		c.closeWith(&PanicError{Value: r, Stack: debug.Stack()})
	}
}
