package tcpkit

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// The connection's lifecycle, for every engine: the steps an engine calls
// as things happen (see transport.go), and the ones they lead to.

// A PanicError is the error of a connection whose callback panicked. The
// panic is contained to that connection: it is closed, OnError and OnClose
// report it, and the server goes on.
type PanicError struct {
	Value any    // what the callback panicked with
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("tcpkit: panic in callback: %v", e.Value) }

// start reports the connection established: OnConnect runs, then the
// timers start (counting from the connection's start: a timeout that
// came due meanwhile fires at once), and a connection accepted during a
// Shutdown is ended gracefully. The timers start after OnConnect so that
// no timeout fires before it: the std engine's timer fires on a
// goroutine of its own, which could take evMu first.
func (c *Conn) start() {
	c.call(c.ev.OnConnect)
	c.rearm(monoNow())
	if c.srv != nil && c.srv.inShutdown.Load() {
		c.t.shutdown()
	}
}

// Input.

// gotBytes accounts for n bytes read.
func (c *Conn) gotBytes(n int) {
	c.bytesRead.Add(int64(n))
	if c.opt.ReadTimeout > 0 {
		c.lastRead.Store(monoNow())
	}
	c.touch()
	c.trace(TraceRead, n, nil)
}

// deliver hands p, a chunk (Raw) or a message, to OnData.
func (c *Conn) deliver(p []byte) {
	if c.ev.OnData != nil {
		c.callData(p)
	}
	if !c.flags.has(fDelivered) {
		c.flags.set(fDelivered)
		if c.flags.take(fEndOnFirst) {
			c.endNow() // Shutdown was waiting for this first message
		}
	}
}

// deliverMessages delivers the complete messages at the start of data,
// in the connection's framing, for as long as reading may go on, and
// returns how many bytes they took. ok is false once the connection is
// closed: the peer broke the framing, or a callback closed it.
func (c *Conn) deliverMessages(data []byte) (used int, ok bool) {
	max := c.opt.maxMessage()
	for used < len(data) && !c.mustWait() {
		msg, n, err := c.opt.Framing.split(data[used:], max)
		if err != nil {
			c.closeWith(err)
			return used, false
		}
		if n == 0 {
			break
		}
		used += n
		c.deliver(msg)
		if c.flags.has(fDead) {
			return used, false
		}
	}
	return used, true
}

// inputEOF handles the peer's FIN, read after rest: the start of a
// message that did not complete. A last line without its '\n' is
// delivered; any other unfinished message is an error.
func (c *Conn) inputEOF(rest []byte) {
	// Closed meanwhile, or a write on another goroutine met the peer's
	// reset: the kernel reports a reset once, to whichever call comes
	// first, and the read that raced it finds an end that is no FIN of
	// the peer's. The write's close reports the reset. c.mu orders this
	// after such a write (it holds c.mu through its system call).
	c.mu.Lock()
	broken := c.flags.has(fDead) || c.flags.has(fWriteBroke)
	c.mu.Unlock()
	if broken {
		return
	}
	if len(rest) > 0 {
		if c.opt.Framing != Lines {
			c.closeWith(ErrTruncatedMessage)
			return
		}
		c.deliver(rest)
		if c.flags.has(fDead) {
			return
		}
	}
	c.peerFIN()
	c.rearm(monoNow()) // the read timeout stops; the idle one may go on
}

// peerFIN handles the peer's FIN: OnEnd, then End unless half-open
// connections are allowed, and close if our FIN is already out.
func (c *Conn) peerFIN() {
	c.mu.Lock()
	c.flags.set(fPeerEnded)
	c.mu.Unlock()
	c.trace(TracePeerFIN, 0, nil)
	c.call(c.ev.OnEnd)
	c.mu.Lock()
	if !c.opt.AllowHalfOpen && !c.flags.has(fEnding) {
		c.flags.set(fEndedByPeer)
	}
	finDone, ending := c.flags.has(fFinDone), c.flags.has(fEnding)
	c.mu.Unlock()
	switch {
	case finDone:
		c.closeWith(nil) // 4-way handshake complete
	case !c.opt.AllowHalfOpen && !ending:
		c.End()
	}
}

// readingResumed is told that reading goes on after a pause or a
// backlog: the read timeout counts from now.
func (c *Conn) readingResumed() {
	c.lastRead.Store(monoNow())
	c.rearm(monoNow())
}

// Output.

// queuedLocked starts the stall limit of output just queued.
func (c *Conn) queuedLocked() {
	if limit := c.stallLimitLocked(); limit > 0 {
		c.mark = monoNow()
		c.t.schedule(c.mark + int64(limit))
	}
}

// endingWhileQueuedLocked starts the stall limit of the output queued
// when End is called: the clock starts now, unless WriteTimeout already
// runs it.
func (c *Conn) endingWhileQueuedLocked() {
	if c.opt.WriteTimeout == 0 {
		c.mark = monoNow()
	}
	c.t.schedule(c.mark + int64(c.stallLimitLocked()))
}

// wroteLocked accounts for n bytes of the queue written.
func (c *Conn) wroteLocked(n int) {
	if n <= 0 {
		return
	}
	c.bytesWritten.Add(int64(n))
	c.touch()
	if c.stallLimitLocked() > 0 {
		c.mark = monoNow()
	}
}

// flushedLocked ends a flush: the queue is empty, or the connection
// closed. It reports what afterFlush must do once c.mu is released: send
// the FIN that End left to the flush, fire OnDrain.
func (c *Conn) flushedLocked() (fin, drain bool) {
	c.flags.clear(fFlushing)
	closed := c.flags.has(fDead)
	drain = c.flags.has(fBacklogged) && !closed
	c.flags.clear(fBacklogged)
	c.wakeDrainWaitersLocked()
	fin = c.flags.has(fEnding) && !c.flags.has(fFinSent) && !closed
	if fin {
		c.flags.set(fFinSent)
	}
	return fin, drain
}

// afterFlush does what flushedLocked said.
func (c *Conn) afterFlush(fin, drain bool) {
	if fin {
		c.sendFIN()
	}
	if drain {
		c.call(c.ev.OnDrain)
	}
}

// sendFIN shuts down the write side. If the peer's FIN is already in, the
// 4-way handshake is complete and the connection closes; otherwise it waits
// for that FIN, at most the linger timeout.
func (c *Conn) sendFIN() {
	if c.flags.has(fTraced) {
		c.x.traceMu.Lock() // the FIN and its trace line are one step, as for writes
	}
	err := c.t.closeWrite()
	c.mu.Lock()
	c.flags.set(fFinDone)
	closeNow := err != nil || c.flags.has(fPeerEnded) // read with finDone set: peerFIN sees one or the other
	if !closeNow && !c.flags.has(fDead) {
		c.mark = monoNow()
		c.t.schedule(c.mark + int64(c.opt.lingerTimeout()))
	}
	c.mu.Unlock()
	if c.flags.has(fTraced) {
		if err == nil {
			c.emitLocked(TraceFIN, 0, nil)
		}
		c.x.traceMu.Unlock()
	}
	if closeNow {
		c.closeWith(nil)
	}
}

// The end.

// closeWith closes the connection, keeping err as its error unless an
// earlier one is already kept. Only the first call does anything: the
// transport tears the connection down, and reports it with finish.
func (c *Conn) closeWith(err error) {
	c.mu.Lock()
	if c.flags.has(fDead) {
		c.mu.Unlock()
		return
	}
	c.flags.set(fDead)
	if err != nil && c.err == nil {
		c.err = err
	}
	c.wakeDrainWaitersLocked()
	c.mu.Unlock()
	c.t.close(cutsOnClose(err))
}

// cutsOnClose reports whether err is one that cuts the connection: its
// close resets it, rather than leave the kernel trying to deliver output
// the peer does not take.
func cutsOnClose(err error) bool {
	return errors.Is(err, ErrWriteTimeout) || errors.Is(err, ErrEndTimeout)
}

// finish reports the close, once the transport released the connection:
// OnError if it broke, then OnClose, then Done and the server's count.
// Its place under the server's per-IP limit is given back first.
func (c *Conn) finish() {
	if c.srv != nil {
		c.srv.releaseIP(c)
	}
	c.mu.Lock()
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
	c.mu.Lock()
	c.flags.set(fFinished)
	if c.x != nil && c.x.done != nil {
		close(c.x.done)
	}
	c.mu.Unlock()
	if c.srv != nil {
		c.srv.untrackConn(c)
	}
}

// Shutdown.

// gracefulEnd ends the connection for Server.Shutdown, between callbacks
// (the transport's shutdown runs it): once the callback running returns,
// or, if no message has been handled yet, once the first one has been or
// FirstMessageGrace has passed. Handled, not read: on the std engine the
// reading goroutine may have read a request that OnData has not seen yet,
// and ending then would drop it unanswered.
func (c *Conn) gracefulEnd() {
	if c.flags.has(fDead) {
		return
	}
	if c.flags.has(fDelivered) {
		c.endNow()
		return
	}
	c.mu.Lock()
	x := c.extraLocked()
	x.grace = monoNow() + int64(FirstMessageGrace)
	c.t.schedule(x.grace)
	c.mu.Unlock()
	c.flags.set(fEndOnFirst)
	if c.flags.has(fDelivered) && c.flags.take(fEndOnFirst) {
		c.endNow() // the first message was handled meanwhile
	}
}

// endNow ends the connection for Shutdown, between callbacks, so that a
// reply in progress goes out first. What arrives from now on is read and
// dropped, not delivered: no request is taken that can no longer be
// answered.
func (c *Conn) endNow() {
	c.evMu.Lock()
	c.flags.set(fDropInput)
	c.End()
	c.evMu.Unlock()
}

// Callbacks.

func (c *Conn) callData(p []byte) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.flags.has(fDropInput) { // checked under evMu: endNow sets it under evMu
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

// guardHook runs a hook that is not one of a connection's callbacks (a
// Handshake): a panic in it is returned as a *PanicError, which refuses
// only its connection, as a panic in a callback closes only its own.
func guardHook[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return f()
}

func (c *Conn) recoverPanic() {
	if r := recover(); r != nil {
		c.closeWith(&PanicError{Value: r, Stack: debug.Stack()})
	}
}
