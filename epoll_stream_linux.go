package tcpkit

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// An epStream is the net.Conn a Handshake gets on the epoll engine, and
// once Handshake returned, the loop's end of the connection it returned
// (a tls.Conn): the loop reads the socket into it, and it writes to the
// socket without waiting.
//
// crypto/tls reads and writes through a net.Conn: it cannot be fed
// bytes, and its handshake cannot be resumed once a read failed. So the
// handshake runs on a goroutine of its own (as Conn.Offload runs slow
// work), its reads waiting for what the loop feeds. Once it is done the
// loop reads the socket into the epStream and calls the tls.Conn's Read
// until the epStream has nothing left, when its Read returns
// errWouldBlock: an error whose Timeout and Temporary methods report
// true, which crypto/tls passes on without keeping it, as it does a read
// deadline's; what it read of a record so far stays in its buffer for
// the next call. Its writes encrypt into records and hand them to Write,
// which writes what the socket takes and queues the rest, and never
// fails for want of room (crypto/tls keeps any write error for good).
// The lifecycle's queue stays plaintext: records are made from it as the
// socket takes them, at most streamChunk ahead of the kernel.
type epStream struct {
	c *epConn
	x net.Conn // what Handshake returned, once served; under Conn.mu

	mu       sync.Mutex
	in       []byte      // read from the socket, not yet taken by Read
	borrowed bool        // in is the loop's buffer: it must be copied before the loop reads for another connection
	end      error       // what Read returns once in is empty: io.EOF, a read error
	closed   bool        // Close was called
	stalled  bool        // the loop stopped reading for the Handshake: in is full
	wait     *streamWait // while Handshake runs: Read waits; nil once served
	hooked   atomic.Bool // Handshake runs: Write has the loop watch for room

	wmu      sync.Mutex
	fd       int32 // the socket, for writes; -1 once the loop closed it
	out      []byte
	werr     syscall.Errno // the write error that broke the connection
	laddr    net.Addr      // the socket's local address, once asked for
	ahead    int           // plaintext at the head of Conn.out whose records are in out; under Conn.mu
	finAfter bool          // the FIN goes out once out is written; under Conn.mu
}

// streamWait is what a Read that waits needs, while Handshake runs.
type streamWait struct {
	cond     sync.Cond
	deadline time.Time
	timer    *time.Timer
}

// stallInput is how much input a running Handshake may leave unread
// before the loop stops reading for it.
const stallInput = MaxReadBufferSize

// errWouldBlock is what an epStream's Read returns, once its connection
// is served, when nothing is left to read: the loop reads the socket
// again when it has more.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tcpkit: nothing to read yet" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

func newEpStream(c *epConn, rest []byte) *epStream {
	s := &epStream{c: c, in: rest, fd: c.fd, wait: new(streamWait)}
	s.wait.cond.L = &s.mu
	s.hooked.Store(true)
	return s
}

// Read returns what the loop read for it. While Handshake runs it waits
// for input, the peer's FIN, Close or the read deadline; once the
// connection is served it returns errWouldBlock instead of waiting.
func (s *epStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.closed:
			return 0, net.ErrClosed
		case len(s.in) > 0:
			n := copy(p, s.in)
			s.in = s.in[n:]
			if len(s.in) == 0 {
				s.in = nil
			}
			if s.stalled && len(s.in) < stallInput/2 {
				s.stalled = false
				s.c.l.post(task{kind: taskRead, c: s.c})
			}
			return n, nil
		case s.end != nil:
			return 0, s.end
		case s.wait == nil:
			return 0, errWouldBlock
		case !s.wait.deadline.IsZero() && !time.Now().Before(s.wait.deadline):
			return 0, os.ErrDeadlineExceeded
		}
		s.wait.cond.Wait()
	}
}

// Write writes p to the socket as far as it takes it now, and queues the
// rest for the loop to write: it never waits, and fails only once the
// socket did.
func (s *epStream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.werr != 0 {
		return 0, s.opError(s.werr)
	}
	if s.fd < 0 {
		return 0, net.ErrClosed
	}
	n := 0
	if len(s.out) == 0 {
		for n < len(p) {
			m, errno := rawsys.Write(int(s.fd), p[n:])
			if errno == unix.EINTR {
				continue
			}
			if errno == unix.EAGAIN {
				break
			}
			if errno != 0 {
				s.werr = errno
				return n, s.opError(errno)
			}
			n += m
		}
		if n == len(p) {
			return n, nil
		}
		if s.hooked.Load() { // Handshake's: the loop watches for room
			s.c.l.post(task{kind: taskWatch, c: s.c})
		}
	}
	s.out = append(s.out, p[n:]...)
	return len(p), nil
}

func (s *epStream) opError(errno syscall.Errno) error {
	return &net.OpError{Op: "write", Net: s.c.ext.network, Source: s.laddr, Addr: s.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
}

// Close makes Read and Write fail from now on. It does not close the
// socket: the loop does, once the connection is done with.
func (s *epStream) Close() error {
	s.mu.Lock()
	s.closed = true
	if w := s.wait; w != nil {
		w.cond.Broadcast()
	}
	s.mu.Unlock()
	return nil
}

func (s *epStream) RemoteAddr() net.Addr { return s.c.remoteAddr() }

// LocalAddr asks the kernel once, without Conn.mu: Write may be called
// with it held.
func (s *epStream) LocalAddr() net.Addr {
	x := s.c.ext
	switch {
	case x.local != nil:
		return x.local
	case x.network == "unix" && x.ln != nil:
		return x.ln.ln.Addr()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.laddr == nil && s.fd >= 0 {
		if sa, err := unix.Getsockname(int(s.fd)); err == nil {
			if ap := sockaddrToAddrPort(sa); ap.IsValid() {
				s.laddr = net.TCPAddrFromAddrPort(ap)
			}
		}
	}
	return s.laddr
}

// SetDeadline sets the read deadline: writes never wait.
func (s *epStream) SetDeadline(t time.Time) error { return s.SetReadDeadline(t) }

// SetReadDeadline bounds the Reads of a running Handshake; once the
// connection is served Reads do not wait, and it does nothing.
func (s *epStream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wait
	if w == nil {
		return nil
	}
	w.deadline = t
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if !t.IsZero() {
		w.timer = time.AfterFunc(time.Until(t), func() {
			s.mu.Lock()
			w.cond.Broadcast()
			s.mu.Unlock()
		})
	}
	w.cond.Broadcast()
	return nil
}

// SetWriteDeadline does nothing: writes never wait.
func (s *epStream) SetWriteDeadline(time.Time) error { return nil }

// The loop's side, while Handshake runs.

// feed adds what the loop read to the input, and wakes a waiting Read.
func (s *epStream) feed(p []byte) {
	s.mu.Lock()
	s.in = append(s.in, p...)
	if s.wait != nil {
		s.wait.cond.Broadcast()
	}
	s.mu.Unlock()
}

// feedEnd records the end of the input: io.EOF, or the read error.
func (s *epStream) feedEnd(err error) {
	s.mu.Lock()
	if s.end == nil {
		s.end = err
	}
	if s.wait != nil {
		s.wait.cond.Broadcast()
	}
	s.mu.Unlock()
}

// full reports whether the input waiting for Handshake is as much as it
// may hold; if so, Read has the loop read on once it took some.
func (s *epStream) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalled = len(s.in) >= stallInput
	return s.stalled
}

// served turns the stream to the loop's use: Read stops waiting.
func (s *epStream) served() {
	s.hooked.Store(false)
	s.mu.Lock()
	if w := s.wait; w != nil && w.timer != nil {
		w.timer.Stop()
	}
	s.wait, s.stalled = nil, false
	s.mu.Unlock()
}

// takeInput returns the input not read, for a connection served on its
// socket as it is; false if an error ended it, which the stream must
// report.
func (s *epStream) takeInput() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end != nil && s.end != io.EOF {
		return nil, false
	}
	in := s.in
	s.in = nil
	return in, true
}

// queued reports whether output waits in the stream's own queue.
func (s *epStream) queued() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return len(s.out) > 0
}

// dropFD forgets the socket, which the loop closes: writes fail.
func (s *epStream) dropFD() {
	s.wmu.Lock()
	s.fd = -1
	s.out = nil
	s.wmu.Unlock()
}

// flushOut writes the stream's queue as far as the socket takes it.
func (s *epStream) flushOut() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for len(s.out) > 0 && s.fd >= 0 {
		m, errno := rawsys.Write(int(s.fd), s.out)
		switch errno {
		case 0:
			s.out = s.out[m:]
		case unix.EINTR:
		case unix.EAGAIN:
			return nil
		default:
			s.werr = errno
			return s.opError(errno)
		}
	}
	s.out = nil
	return nil
}

// The loop's side, once served: the transport's part of a connection
// whose bytes pass through x.

// tryWrite hands x what the socket takes at once, streamChunk at a time
// (what is encrypted ahead of the kernel); Conn.mu is held and
// nothing is queued. The chunk whose records the socket did not take
// whole is reported as not written (ahead marks it): the lifecycle
// queues it, and the flush drops it once its records are out.
func (s *epStream) tryWrite(p []byte) (int, error) {
	if s.queued() { // Handshake's or x's own records go first
		return 0, nil
	}
	n := 0
	for n < len(p) {
		k := min(streamChunk, len(p)-n)
		if _, err := s.x.Write(p[n : n+k]); err != nil {
			return n, s.writeErr(err)
		}
		if s.queued() {
			s.ahead = k
			return n, nil
		}
		n += k
	}
	return n, nil
}

// writeErr is the error of a failed write through x: the socket's, for
// the lifecycle to wrap as it does a plain socket's.
func (s *epStream) writeErr(err error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.werr != 0 {
		return s.werr
	}
	return err
}

// closeWrite half-closes: x's own end (TLS's close_notify), then the
// socket's FIN, once the stream's queue is written.
func (s *epStream) closeWrite() error {
	c := s.c
	c.mu.Lock()
	x := s.x
	c.mu.Unlock()
	if x != net.Conn(s) {
		cw, ok := x.(interface{ CloseWrite() error })
		if !ok {
			return errNoHalfClose
		}
		if err := cw.CloseWrite(); err != nil && !peerGone(s.writeErr(err)) {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released() {
		return net.ErrClosed
	}
	if s.queued() {
		s.finAfter = true
		c.watchOutputLocked(true)
		return nil
	}
	if errno := rawsys.Shutdown(int(c.fd), unix.SHUT_WR); errno != 0 && !peerGone(errno) {
		return errno
	}
	return nil
}

// close ends x on a close that is not a cut: TLS's close_notify, if the
// socket takes it at once, as the std engine's close sends it.
func (s *epStream) close() {
	s.c.mu.Lock()
	x := s.x
	s.c.mu.Unlock()
	if x != net.Conn(s) {
		x.Close()
	}
}

// readStream is read for a connection whose bytes pass through s.x: it
// reads the socket into s, and delivers what s.x makes of it, until the
// socket is empty and s.x has nothing more, or the connection must stop
// reading.
func (l *loop) readStream(c *epConn, s *epStream) {
	if l.plain == nil {
		l.plain = make([]byte, loopBufferSize)
	}
	defer s.keepInput()
	defer l.watchStreamOut(c, s) // x may have written, reading (a TLS key update)
	short := false               // the last read of the socket was short: it is empty
	for reads := 0; ; {
		if c.mustWait() {
			c.waiting = true
			return
		}
		c.waiting = false
		if c.flags.has(fDead) { // closed from another goroutine: its close is queued to this loop
			return
		}
		n, err := s.x.Read(l.plain)
		if n > 0 {
			c.gotBytes(n)
			if c.opt.Framing == Raw {
				c.deliver(l.plain[:n])
			} else if !c.deliverHeld(l.plain[:n]) {
				c.waiting = c.mustWait()
				return
			}
			if c.flags.has(fDead) {
				return
			}
			if err == nil {
				continue
			}
		}
		switch {
		case err == nil || errors.Is(err, errWouldBlock):
			if short {
				return
			}
			if reads == maxReadsPerEvent {
				l.pending = append(l.pending, c)
				return
			}
			reads++
			m, eagain := s.fill(c, l.buf)
			if eagain {
				return
			}
			short = m < len(l.buf) && !c.hup
		case err == io.EOF:
			rest := c.held
			c.held = nil
			c.inputEOF(rest)
			return
		default:
			c.closeWith(err)
			return
		}
	}
}

// fill reads the socket into buf, for s to read from; eagain reports
// that it had nothing. The peer's FIN or an error becomes s's end.
func (s *epStream) fill(c *epConn, buf []byte) (n int, eagain bool) {
	for {
		m, errno := rawsys.Read(int(c.fd), buf)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return 0, true
		case errno != 0:
			s.feedEnd(c.opError("read", "read", errno))
			return 0, false
		case m == 0:
			s.feedEnd(io.EOF)
			return 0, false
		}
		s.mu.Lock()
		s.in, s.borrowed = buf[:m], true
		s.mu.Unlock()
		return m, false
	}
}

// keepInput copies what is left of the loop's buffer in s, which the
// loop reuses for other connections.
func (s *epStream) keepInput() {
	s.mu.Lock()
	if s.borrowed && len(s.in) > 0 {
		s.in = append([]byte(nil), s.in...)
	}
	s.borrowed = false
	s.mu.Unlock()
}

// watchStreamOut watches for room once x queued records of its own while
// the lifecycle writes nothing.
func (l *loop) watchStreamOut(c *epConn, s *epStream) {
	if !s.queued() {
		return
	}
	c.mu.Lock()
	if !c.released() && !c.flags.has(fFlushing) {
		c.watchOutputLocked(true)
	}
	c.mu.Unlock()
}

// flushStream writes, when the socket has room, the stream's queue
// (records already made, a Handshake's output), then the lifecycle's
// queue through x, a chunk at a time, and sends a FIN that waited.
func (l *loop) flushStream(c *epConn) {
	s := c.ext.st
	if sh := c.ext.shake; sh != nil {
		s = sh.a.Load()
	}
	if s == nil {
		return
	}
	c.mu.Lock()
	if c.flags.has(fDead) || c.released() {
		c.mu.Unlock()
		return
	}
	if err := s.flushOut(); err != nil {
		c.mu.Unlock()
		if c.ext.shake == nil {
			c.closeWith(err)
		}
		return
	}
	if s.queued() {
		c.mu.Unlock()
		return
	}
	if s.finAfter {
		s.finAfter = false
		rawsys.Shutdown(int(c.fd), unix.SHUT_WR)
	}
	if c.ext.shake != nil || !c.flags.has(fFlushing) {
		c.watchOutputLocked(false)
		c.mu.Unlock()
		return
	}
	wrote := s.ahead // its records are out
	c.out = c.out[s.ahead:]
	s.ahead = 0
	for len(c.out) > 0 {
		k := min(streamChunk, len(c.out))
		if _, err := s.x.Write(c.out[:k]); err != nil {
			c.wroteLocked(wrote)
			c.mu.Unlock()
			c.traceWrote(wrote)
			c.closeWith(c.wrapWriteErr(s.writeErr(err)))
			return
		}
		if s.queued() {
			s.ahead = k
			break
		}
		c.out = c.out[k:]
		wrote += k
	}
	c.wroteLocked(wrote)
	if len(c.out) > 0 {
		c.mu.Unlock()
		c.traceWrote(wrote)
		return
	}
	c.out = nil
	c.watchOutputLocked(false)
	l.flushed(c, wrote)
}

// wrapWriteErr wraps a socket's write error as the net package does.
func (c *epConn) wrapWriteErr(err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		return c.opError("write", "write", errno)
	}
	return err
}
