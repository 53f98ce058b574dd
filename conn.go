package tcpkit

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// errPeerEnded is what Write returns once the peer's FIN has ended the
// connection: made once, so the common failure allocates nothing.
var errPeerEnded = fmt.Errorf("%w: %w", ErrPeerEnded, syscall.EPIPE)

var lastConnID atomic.Uint64

// A Conn is one TCP connection, accepted by a Server or opened by a Dialer.
// Its lifecycle is reported through Events; its methods are safe for
// concurrent use, from callbacks and from other goroutines alike.
//
// Writes never block: Write hands the bytes to the kernel if it can take
// them at once and queues the rest, to be written in order. End sends the
// peer a FIN after everything queued (a half-close), and the connection
// closes when the peer's FIN comes back, so both sides see a clean 4-way
// handshake rather than a reset. Close tears the connection down at once.
type Conn struct {
	t   transport // the engine's part: see transport.go
	ev  *Events
	opt *ConnOptions
	srv *Server // the server that accepted it, told when it closes; nil for dialed conns
	id  uint64

	// evMu is held while a callback runs, so the callbacks of one
	// connection never overlap, whichever goroutine delivers them.
	evMu sync.Mutex

	bytesRead    atomic.Int64
	bytesWritten atomic.Int64
	timeout      atomic.Int64 // idle timeout in ns; 0 means none
	lastActive   atomic.Int64 // monotonic ns of the last read or write, kept while timeout > 0
	lastRead     atomic.Int64 // monotonic ns of the last read, kept while ReadTimeout > 0
	flags        connFlags

	mu   sync.Mutex
	mark int64 // while output is queued under a stall limit: when it last moved; once our FIN is out: when it went
	out  []byte
	err  error      // the first error; reported to OnError
	x    *connExtra // made on first need; never replaced once made
}

// The flags of a connection, in one word. The first ones are read
// without Conn.mu on the hot paths; all but the last four are written
// under it, so that a goroutine holding it sees them stay as they are.
const (
	fPaused      = 1 << iota // Pause was called
	fBacklogged              // out went over the high-water mark; OnDrain is due: NeedDrain
	fDead                    // closed: Close, an error, or the end of the 4-way handshake
	fFlushing                // the transport owns the write side until out is empty
	fEnding                  // End was called, or implied by the peer's FIN
	fEndedByPeer             // ending because the peer's FIN arrived
	fFinSent                 // our FIN is being sent or out: only one goroutine sends it
	fFinDone                 // our FIN is out
	fPeerEnded               // the peer's FIN was read
	fFinished                // OnClose has returned
	fWriteBroke              // a write met a reset or a failure: the close that follows is due

	// Not under Conn.mu.
	fTimerArmed // the idle timeout is armed: it has not fired since the last activity
	fDropInput  // Shutdown ended the connection: read input is dropped, not delivered
	fEndOnFirst // Shutdown ends the connection once its first message is handled
	fDelivered  // a first message was handled
	fTraced     // ConnOptions.Trace was set when the connection began: its extra holds traceMu
)

// connFlags holds a connection's flags in one word.
type connFlags struct{ v atomic.Uint32 }

func (f *connFlags) has(b uint32) bool { return f.v.Load()&b != 0 }
func (f *connFlags) set(b uint32)      { f.v.Or(b) }
func (f *connFlags) clear(b uint32)    { f.v.And(^b) }

// take clears b and reports whether it was set: of several goroutines
// taking it, one gets true.
func (f *connFlags) take(b uint32) bool { return f.v.And(^b)&b != 0 }

// setIf sets b if it is clear and reports whether it did.
func (f *connFlags) setIf(b uint32) bool { return f.v.Or(b)&b == 0 }

// connExtra is what few connections need, kept out of Conn so that an
// idle connection stays small. Its fields are under Conn.mu, but for
// traceMu.
type connExtra struct {
	value   any
	done    chan struct{} // closed after OnClose returned; made when Done is called
	drained chan struct{} // closed when the backlog clears or the conn closes; for WaitDrain
	laddr   net.Addr      // the local address, once asked for
	grace   int64         // when Shutdown's first-message grace ends; 0 for none

	// traceMu orders trace events when ConnOptions.Trace is set (the
	// extra is then made with the Conn): it is held while an event is
	// reported, and across a write or FIN and its event. It is taken
	// before Conn.mu, never after.
	traceMu sync.Mutex
}

// extraLocked returns c.x, making it on first use; c.mu is held.
func (c *Conn) extraLocked() *connExtra {
	if c.x == nil {
		c.x = new(connExtra)
	}
	return c.x
}

// init makes c a new connection of srv (nil for a dialed one), served
// by t.
func (c *Conn) init(t transport, ev *Events, opt *ConnOptions, srv *Server) {
	c.t, c.ev, c.opt, c.srv = t, ev, opt, srv
	c.id = lastConnID.Add(1)
	if opt.Trace != nil {
		c.x = new(connExtra) // traceMu, used without c.mu
		c.flags.set(fTraced)
	}
	if opt.IdleTimeout > 0 || opt.ReadTimeout > 0 {
		now := monoNow()
		c.lastRead.Store(now)
		c.lastActive.Store(now)
		c.timeout.Store(int64(opt.IdleTimeout))
		if opt.IdleTimeout > 0 {
			c.flags.set(fTimerArmed)
		}
	}
}

// ID returns a number that identifies the connection within this process,
// for logs. IDs start at 1 and are never reused.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address: for a Server, the client's.
func (c *Conn) RemoteAddr() net.Addr { return c.t.remoteAddr() }

// LocalAddr returns this side's address.
func (c *Conn) LocalAddr() net.Addr {
	c.mu.Lock()
	var a net.Addr
	if c.x != nil {
		a = c.x.laddr
	}
	c.mu.Unlock()
	if a != nil {
		return a
	}
	a = c.t.localAddr()
	c.mu.Lock()
	c.extraLocked().laddr = a
	c.mu.Unlock()
	return a
}

// BytesRead returns how many bytes have been read from the peer.
func (c *Conn) BytesRead() int64 { return c.bytesRead.Load() }

// BytesWritten returns how many bytes have been handed to the kernel for
// the peer. Bytes still queued (see Buffered) are not counted.
func (c *Conn) BytesWritten() int64 { return c.bytesWritten.Load() }

// Value returns what SetValue stored: per-connection state for callbacks.
func (c *Conn) Value() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.x == nil {
		return nil
	}
	return c.x.value
}

// SetValue stores v with the connection, for callbacks to find with Value.
func (c *Conn) SetValue(v any) {
	c.mu.Lock()
	c.extraLocked().value = v
	c.mu.Unlock()
}

// Done returns a channel that is closed once the connection is closed and
// OnClose has returned.
func (c *Conn) Done() <-chan struct{} {
	// Made only when asked for: most connections never are, and an idle
	// one should cost little.
	c.mu.Lock()
	defer c.mu.Unlock()
	x := c.extraLocked()
	if x.done == nil {
		x.done = make(chan struct{})
		if c.flags.has(fFinished) {
			close(x.done)
		}
	}
	return x.done
}

// Err returns the error that tore the connection down, or nil if it closed
// cleanly or is still open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Write queues p for the peer and returns len(p), or an error if the
// connection can no longer be written to: ErrWriteAfterEnd after End,
// ErrPeerEnded (wrapping syscall.EPIPE) after the peer's FIN ended the
// connection, ErrConnClosed after Close or a failure, or the system's
// error (a reset, say) if the kernel refused the bytes. Write does not
// block and does not keep p. Check NeedDrain to learn whether the peer is
// keeping up.
func (c *Conn) Write(p []byte) (int, error) {
	if !c.flags.has(fTraced) {
		n, _, err := c.write(p)
		return n, err
	}
	// Traced, the write and its events are one step, so that trace lines
	// keep the order of the writes and of what they cause (the reply).
	c.x.traceMu.Lock()
	defer c.x.traceMu.Unlock()
	n, sent, err := c.write(p)
	if sent > 0 {
		c.emitLocked(TraceWrite, sent, nil)
	}
	if err != nil {
		c.emitLocked(TraceWriteFailed, len(p)-sent, err)
	}
	return n, err
}

// write is Write: it returns what Write returns and how many bytes went
// to the kernel at once (the rest is queued).
func (c *Conn) write(p []byte) (n, sent int, err error) {
	c.mu.Lock()
	if c.flags.has(fEnding) || c.flags.has(fDead) {
		err := c.writeErrLocked()
		c.mu.Unlock()
		return 0, 0, err
	}
	if len(p) == 0 {
		c.mu.Unlock()
		return 0, 0, nil
	}
	rest := p
	if !c.flags.has(fFlushing) {
		n, err := c.t.tryWrite(rest)
		if n > 0 {
			c.bytesWritten.Add(int64(n))
			c.touch()
		}
		if err != nil {
			// Said before c.mu is let go: the kernel reports a reset once,
			// and a read on another goroutine that raced this write finds
			// an end that is no FIN (see inputEOF).
			c.flags.set(fWriteBroke)
			c.mu.Unlock()
			laddr := c.LocalAddr()
			err = &net.OpError{Op: "write", Net: networkOf(laddr), Source: laddr, Addr: c.RemoteAddr(), Err: err}
			c.closeWith(err)
			return n, n, err
		}
		sent, rest = n, rest[n:]
		if len(rest) == 0 {
			c.mu.Unlock()
			return len(p), sent, nil
		}
	}
	c.out = append(c.out, rest...)
	if len(c.out) >= c.opt.highWaterMark() {
		c.flags.set(fBacklogged)
	}
	if !c.flags.has(fFlushing) {
		c.flags.set(fFlushing)
		c.queuedLocked()
		c.t.startFlush()
	}
	c.mu.Unlock()
	return len(p), sent, nil
}

// WriteMessage writes p as one message of the connection's Framing: as it
// is for Raw, with a '\n' for Lines, after its length for Len32. It is
// Write otherwise, and safe for concurrent use: messages never interleave.
func (c *Conn) WriteMessage(p []byte) error {
	if c.opt.Framing == Raw {
		_, err := c.Write(p)
		return err
	}
	bp := msgBufs.Get().(*[]byte)
	msg, err := c.opt.Framing.appendMessage((*bp)[:0], p)
	if err == nil {
		_, err = c.Write(msg) // one Write: messages never interleave
	}
	if cap(msg) <= MaxReadBufferSize {
		*bp = msg[:0]
		msgBufs.Put(bp)
	}
	return err
}

// msgBufs holds the buffers WriteMessage frames messages in: no
// connection keeps one.
var msgBufs = sync.Pool{New: func() any { return new([]byte) }}

// WaitDrain blocks until the queued output is written, if NeedDrain
// reports true, and returns at once otherwise: a producer outside the
// callbacks calls it to write no faster than the peer reads. It returns
// an error if the connection closes first or ctx is done.
func (c *Conn) WaitDrain(ctx context.Context) error {
	c.mu.Lock()
	if c.flags.has(fDead) {
		err := c.writeErrLocked()
		c.mu.Unlock()
		return err
	}
	if !c.flags.has(fBacklogged) {
		c.mu.Unlock()
		return nil
	}
	x := c.extraLocked()
	if x.drained == nil {
		x.drained = make(chan struct{})
	}
	drained := x.drained
	c.mu.Unlock()
	select {
	case <-drained:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flags.has(fDead) {
		return c.writeErrLocked()
	}
	return nil
}

// writeErrLocked says why the connection cannot be written to.
func (c *Conn) writeErrLocked() error {
	switch {
	case c.err != nil:
		return fmt.Errorf("%w: %w", ErrConnClosed, c.err)
	case c.flags.has(fEndedByPeer):
		return errPeerEnded
	case c.flags.has(fEnding):
		return ErrWriteAfterEnd
	default:
		return ErrConnClosed
	}
}

func (c *Conn) wakeDrainWaitersLocked() {
	if c.x != nil && c.x.drained != nil {
		close(c.x.drained)
		c.x.drained = nil
	}
}

// Buffered returns how many bytes Write has queued that the kernel has not
// taken yet (Node's writableLength).
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out)
}

// NeedDrain reports whether the queued output went over the high-water
// mark and has not emptied since (Node's write() returning false). OnDrain
// fires when it empties.
func (c *Conn) NeedDrain() bool {
	c.mu.Lock() // a Write in progress on another goroutine counts once it returns
	defer c.mu.Unlock()
	return c.flags.has(fBacklogged)
}

// End half-closes the connection: once everything queued has been written
// it sends a FIN, and the connection closes when the peer's FIN arrives or
// after ConnOptions.LingerTimeout. Reading goes on meanwhile: OnData still
// sees what the peer sends. End is idempotent.
func (c *Conn) End() error {
	c.mu.Lock()
	if c.flags.has(fDead) || c.flags.has(fEnding) {
		c.mu.Unlock()
		return nil
	}
	c.flags.set(fEnding)
	if c.flags.has(fFlushing) { // the flush sends the FIN when it is done
		c.endingWhileQueuedLocked()
		c.mu.Unlock()
		return nil
	}
	c.flags.set(fFinSent)
	c.mu.Unlock()
	c.sendFIN()
	return nil
}

// Close tears the connection down at once, dropping queued output (Node's
// destroy). OnClose follows from the goroutine that delivers the
// connection's events. Close is idempotent.
func (c *Conn) Close() error {
	c.closeWith(nil)
	return nil
}

// Pause stops reading from the peer until Resume: the kernel's buffers fill
// and TCP flow control slows the peer down.
func (c *Conn) Pause() {
	c.mu.Lock()
	c.flags.set(fPaused)
	c.mu.Unlock()
}

// Resume undoes Pause.
func (c *Conn) Resume() {
	c.mu.Lock()
	c.flags.clear(fPaused)
	c.mu.Unlock()
	c.t.resume() // input may be waiting, with no event to come for it
}

// Offload runs f on a goroutine of its own with the connection paused,
// and resumes it when f returns: the way for a callback to do slow work (a
// database call, a file, a subprocess) without holding up the connections
// that share its event loop on the epoll engine. Input that arrives
// meanwhile waits in the kernel, so messages are still handled in order.
// f may call Write, End and Close; a panic in f closes the connection
// with a PanicError, as one in a callback does.
func (c *Conn) Offload(f func()) {
	c.Pause()
	go func() {
		defer c.Resume()
		defer c.recoverPanic()
		f()
	}()
}

// mustWait reports, without a lock, whether reading should stop for now:
// the connection is paused, or its output is backlogged.
func (c *Conn) mustWait() bool {
	f := c.flags.v.Load()
	return f&fPaused != 0 || f&fBacklogged != 0 && !c.opt.ReadDuringBacklog
}

// networkOf is the network of a, "tcp" or "unix", for errors.
func networkOf(a net.Addr) string {
	if a == nil {
		return "tcp"
	}
	return a.Network()
}
