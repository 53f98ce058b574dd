package tcpkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	nc  net.Conn
	ev  *Events
	opt *ConnOptions
	id  uint64
	tw  *tryWriter // nonblocking write attempts; nil where the transport has no fd
	ep  *epConn    // the epoll engine's side; nil on the standard engine

	// evMu is held while a callback runs, so the callbacks of one
	// connection never overlap, whichever goroutine delivers them.
	evMu sync.Mutex

	bytesRead    atomic.Int64
	bytesWritten atomic.Int64
	paused       atomic.Bool  // mirrors pausedLocked for the reader's fast path
	timeout      atomic.Int64 // idle timeout in ns; 0 means none
	lastActive   atomic.Int64 // monotonic ns of the last read or write, kept while timeout > 0
	lastRead     atomic.Int64 // monotonic ns of the last read, kept while ReadTimeout > 0
	timerArmed   atomic.Bool  // the idle timeout is armed: it has not fired since the last activity
	backlogged   atomic.Bool  // mirrors needDrain for the reader's fast path
	dropInput    atomic.Bool  // Shutdown ended the connection: read input is dropped, not delivered
	dead         atomic.Bool  // mirrors closed, for the epoll loop's fast path

	mu          sync.Mutex
	cond        *sync.Cond // on mu: reading may resume, or the conn closed
	out         []byte     // queued output not yet handed to the kernel
	spare       []byte     // the other half of the output double buffer
	inflight    int        // bytes flush took from out and has not written yet
	flushing    bool       // a flush goroutine owns the write side until out is empty
	needDrain   bool       // out went over the high-water mark; OnDrain is due
	ending      bool       // End was called, or implied by the peer's FIN
	endedByPeer bool       // ending because the peer's FIN arrived
	finSent     bool       // our FIN is being sent or out: only one goroutine sends it
	finDone     bool       // our FIN is out (CloseWrite returned)
	peerEnded   bool       // the peer's FIN was read
	pausedLock  bool       // Pause was called
	closed      bool
	err         error // the first error; reported to OnError
	linger      *time.Timer
	idleTimer   *time.Timer   // drives the idle timeout while the connection does not read
	drained     chan struct{} // closed when needDrain clears or the conn closes; for WaitDrain
	value       any

	msgMu  sync.Mutex // serializes WriteMessage, which frames into msgBuf
	msgBuf []byte

	// traceMu orders trace events when ConnOptions.Trace is set: it is
	// held while an event is reported, and across a write or FIN and its
	// event. It is taken before mu, never after.
	traceMu sync.Mutex

	closing   chan struct{} // closed when closed becomes true
	done      chan struct{} // closed after OnClose returned
	firstData chan struct{} // closed after the first OnData returned
	delivered bool          // firstData is closed; used by the reading goroutine only
	flushWG   sync.WaitGroup
	onDone    func(*Conn) // the Server's bookkeeping; nil for dialed conns

	dialTime time.Duration // how long Dial took to connect; 0 for accepted conns
}

func newConn(nc net.Conn, ev *Events, opt *ConnOptions) *Conn {
	c := &Conn{
		nc:        nc,
		ev:        ev,
		opt:       opt,
		id:        lastConnID.Add(1),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		firstData: make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	c.tw = newTryWriter(nc)
	if opt.IdleTimeout > 0 || opt.ReadTimeout > 0 {
		c.lastRead.Store(monoNow())
		c.SetTimeout(opt.IdleTimeout)
	}
	return c
}

// ID returns a number that identifies the connection within this process,
// for logs. IDs start at 1 and are never reused.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address: for a Server, the client's.
func (c *Conn) RemoteAddr() net.Addr {
	if c.ep != nil {
		return c.ep.remoteAddr()
	}
	return c.nc.RemoteAddr()
}

// LocalAddr returns this side's address.
func (c *Conn) LocalAddr() net.Addr {
	if c.ep != nil {
		return c.epLocalAddr()
	}
	return c.nc.LocalAddr()
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
	return c.value
}

// SetValue stores v with the connection, for callbacks to find with Value.
func (c *Conn) SetValue(v any) {
	c.mu.Lock()
	c.value = v
	c.mu.Unlock()
}

// Done returns a channel that is closed once the connection is closed and
// OnClose has returned.
func (c *Conn) Done() <-chan struct{} {
	if c.ep == nil {
		return c.done
	}
	// The epoll engine makes the channel only when asked for: most
	// connections never are, and an idle one should cost little.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.ep.finished {
			close(c.done)
		}
	}
	return c.done
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
	if c.opt.Trace == nil {
		n, _, err := c.write(p)
		return n, err
	}
	// Traced, the write and its events are one step, so that trace lines
	// keep the order of the writes and of what they cause (the reply).
	c.traceMu.Lock()
	defer c.traceMu.Unlock()
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
	if c.ending || c.closed {
		err := c.writeErrLocked()
		c.mu.Unlock()
		return 0, 0, err
	}
	if len(p) == 0 {
		c.mu.Unlock()
		return 0, 0, nil
	}
	rest := p
	if !c.flushing && (c.tw != nil || c.ep != nil) {
		var n int
		var err error
		if c.ep != nil {
			n, err = c.epTryWrite(rest)
		} else {
			n, err = c.tw.write(rest)
		}
		if n > 0 {
			c.bytesWritten.Add(int64(n))
			c.touch()
		}
		if err != nil {
			c.mu.Unlock()
			err = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
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
		c.needDrain = true
		c.backlogged.Store(true)
	}
	if !c.flushing {
		c.flushing = true
		if c.ep != nil {
			c.epQueuedLocked() // the loop flushes when the socket is writable
		} else {
			c.flushWG.Add(1)
			go c.flush()
		}
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
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	msg, err := c.opt.Framing.appendMessage(c.msgBuf[:0], p)
	if err != nil {
		return err
	}
	_, err = c.Write(msg)
	if cap(msg) <= MaxReadBufferSize {
		c.msgBuf = msg[:0]
	}
	return err
}

// WaitDrain blocks until the queued output is written, if NeedDrain
// reports true, and returns at once otherwise: a producer outside the
// callbacks calls it to write no faster than the peer reads. It returns
// an error if the connection closes first or ctx is done.
func (c *Conn) WaitDrain(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		err := c.writeErrLocked()
		c.mu.Unlock()
		return err
	}
	if !c.needDrain {
		c.mu.Unlock()
		return nil
	}
	if c.drained == nil {
		c.drained = make(chan struct{})
	}
	drained := c.drained
	c.mu.Unlock()
	select {
	case <-drained:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.writeErrLocked()
	}
	return nil
}

// writeErrLocked says why the connection cannot be written to.
func (c *Conn) writeErrLocked() error {
	switch {
	case c.err != nil:
		return fmt.Errorf("%w: %w", ErrConnClosed, c.err)
	case c.endedByPeer:
		return errPeerEnded
	case c.ending:
		return ErrWriteAfterEnd
	default:
		return ErrConnClosed
	}
}

// Buffered returns how many bytes Write has queued that the kernel has not
// taken yet (Node's writableLength).
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) + c.inflight
}

// NeedDrain reports whether the queued output went over the high-water
// mark and has not emptied since (Node's write() returning false). OnDrain
// fires when it empties.
func (c *Conn) NeedDrain() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.needDrain
}

// End half-closes the connection: once everything queued has been written
// it sends a FIN, and the connection closes when the peer's FIN arrives or
// after ConnOptions.LingerTimeout. Reading goes on meanwhile: OnData still
// sees what the peer sends. End is idempotent.
func (c *Conn) End() error {
	c.mu.Lock()
	if c.closed || c.ending {
		c.mu.Unlock()
		return nil
	}
	c.ending = true
	if c.flushing { // the flush sends the FIN when it is done
		c.endingWhileQueuedLocked()
		c.mu.Unlock()
		return nil
	}
	c.finSent = true
	c.mu.Unlock()
	c.sendFIN()
	return nil
}

// Close tears the connection down at once, dropping queued output (Node's
// destroy). OnClose follows from the connection's own goroutine. Close is
// idempotent.
func (c *Conn) Close() error {
	c.closeWith(nil)
	return nil
}

// Pause stops reading from the peer until Resume: the kernel's buffers fill
// and TCP flow control slows the peer down.
func (c *Conn) Pause() {
	c.mu.Lock()
	c.pausedLock = true
	c.paused.Store(true)
	c.mu.Unlock()
}

// Resume undoes Pause.
func (c *Conn) Resume() {
	c.mu.Lock()
	c.pausedLock = false
	c.paused.Store(false)
	if c.ep != nil {
		c.mu.Unlock()
		c.ep.l.post(task{kind: taskRead, c: c}) // input may be waiting, with no edge to come
		return
	}
	c.cond.Broadcast()
	c.mu.Unlock()
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

// flush writes the queued output, blocking, until none is left; then it
// sends a pending FIN and fires OnDrain if it is due.
func (c *Conn) flush() {
	defer c.flushWG.Done()
	c.mu.Lock()
	for len(c.out) > 0 && !c.closed {
		buf := c.out
		c.out, c.spare = c.spare[:0], nil
		c.inflight = len(buf)
		c.mu.Unlock()
		c.writeOut(buf)
		c.mu.Lock()
		c.inflight = 0
		if cap(buf) <= MaxReadBufferSize { // keep a modest buffer for next time
			c.spare = buf[:0]
		}
	}
	c.flushing = false
	drain := c.needDrain && !c.closed
	c.needDrain = false
	c.backlogged.Store(false)
	c.cond.Broadcast() // a reader paused by the backlog may go on
	c.wakeDrainWaitersLocked()
	fin := c.ending && !c.finSent && !c.closed
	if fin {
		c.finSent = true
	}
	c.mu.Unlock()
	if fin {
		c.sendFIN()
	}
	if drain {
		c.call(c.ev.OnDrain)
	}
}

// stallLimitLocked is how long queued output may make no progress before
// the connection is cut: WriteTimeout, and once the connection is ending,
// at most LingerTimeout, so that a FIN waiting behind output the peer
// never takes cannot keep the connection open for ever. Zero means no
// limit.
func (c *Conn) stallLimitLocked() time.Duration {
	d := c.opt.WriteTimeout
	if c.ending {
		if lt := c.opt.lingerTimeout(); d == 0 || lt < d {
			d = lt
		}
	}
	return d
}

// stallErrorLocked is the error of a connection cut because its output
// made no progress for its stall limit d.
func (c *Conn) stallErrorLocked(d time.Duration) error {
	if c.ending && d != c.opt.WriteTimeout {
		return fmt.Errorf("%w: the peer took none of the remaining output for %v", ErrEndTimeout, d)
	}
	return fmt.Errorf("%w: the peer took nothing for %v", ErrWriteTimeout, d)
}

// cutsOnClose reports whether err is one that cuts the connection: its
// close resets it (see abortOnClose).
func cutsOnClose(err error) bool {
	return errors.Is(err, ErrWriteTimeout) || errors.Is(err, ErrEndTimeout)
}

// endingWhileQueuedLocked starts the stall limit of the output queued
// when End is called, if WriteTimeout did not already.
func (c *Conn) endingWhileQueuedLocked() {
	if c.ep != nil {
		c.epEndingLocked()
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.stallLimitLocked())) // the write in progress, if any
}

// writeOut writes buf, blocking, for flush. Under a stall limit (see
// stallLimitLocked) it writes in chunks, each of which must make progress
// within it: a peer that reads slowly but steadily is fine, one that
// stopped reading is cut off.
func (c *Conn) writeOut(buf []byte) {
	for len(buf) > 0 {
		c.mu.Lock()
		limit := c.stallLimitLocked()
		c.mu.Unlock()
		chunk := buf
		if limit > 0 {
			chunk = buf[:min(len(buf), writeChunk)]
			c.nc.SetWriteDeadline(time.Now().Add(limit))
		}
		n, err := c.nc.Write(chunk)
		if n > 0 {
			c.mu.Lock()
			c.inflight -= n
			c.mu.Unlock()
			c.bytesWritten.Add(int64(n))
			c.touch()
			c.trace(TraceWrite, n, nil)
		}
		buf = buf[n:]
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if n > 0 { // progress, only slow: the next chunk gets its own deadline
				continue
			}
			c.mu.Lock() // End may have set the deadline since limit was read
			err = c.stallErrorLocked(c.stallLimitLocked())
			c.mu.Unlock()
		}
		if err != nil {
			c.closeWith(err)
			return
		}
	}
}

// writeChunk is how much writeOut hands the kernel per deadline.
const writeChunk = 64 << 10

// sendFIN shuts down the write side. If the peer's FIN is already in, the
// 4-way handshake is complete and the connection closes; otherwise it waits
// for that FIN, at most the linger timeout.
func (c *Conn) sendFIN() {
	if c.ep != nil {
		c.epSendFIN()
		return
	}
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		c.closeWith(nil)
		return
	}
	if c.opt.Trace != nil {
		c.traceMu.Lock() // the FIN and its trace line are one step, as for writes
	}
	err := cw.CloseWrite()
	if c.opt.Trace != nil {
		if err == nil {
			c.emitLocked(TraceFIN, 0, nil)
		}
		c.traceMu.Unlock()
	}
	c.mu.Lock()
	c.finDone = true
	closeNow := err != nil || c.peerEnded // read with finDone set: peerFIN sees one or the other
	if !closeNow && !c.closed {
		c.linger = time.AfterFunc(c.opt.lingerTimeout(), func() { c.closeWith(nil) })
	}
	c.mu.Unlock()
	if closeNow {
		c.closeWith(nil)
	}
}

// closeWith closes the connection, keeping err as its error unless an
// earlier one is already kept. Only the first call does anything.
func (c *Conn) closeWith(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.dead.Store(true)
	if err != nil && c.err == nil {
		c.err = err
	}
	c.wakeDrainWaitersLocked()
	if c.ep != nil {
		c.mu.Unlock()
		c.ep.l.post(task{kind: taskClose, c: c}) // the loop owns the fd
		return
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	if cutsOnClose(err) {
		abortOnClose(c.nc)
	}
	c.nc.Close()
	close(c.closing)
}

// abortOnClose makes closing nc reset the connection (SO_LINGER 0) rather
// than leave the kernel trying to deliver output the peer does not take.
func abortOnClose(nc net.Conn) {
	for nc != nil {
		if tc, ok := nc.(interface{ SetLinger(int) error }); ok {
			tc.SetLinger(0)
			return
		}
		inner, ok := nc.(interface{ NetConn() net.Conn }) // TLS
		if !ok {
			return
		}
		nc = inner.NetConn()
	}
}

func (c *Conn) wakeDrainWaitersLocked() {
	if c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
}

// monoNow returns a monotonic clock reading in nanoseconds.
func monoNow() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()
