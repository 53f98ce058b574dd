package tcpkit

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// The standard engine's transport: a connection on the net package, with
// a goroutine of its own that reads and delivers its events, a goroutine
// that writes queued output while there is some, and a timer.

// stdConn is a Conn served by the standard engine.
type stdConn struct {
	Conn
	nc      net.Conn
	tw      *tryWriter    // nonblocking writes on nc's fd; nil where it has none (TLS)
	st      *stdStream    // nc is TLS over a stdSock: records go out as plain bytes do; nil otherwise
	cond    *sync.Cond    // on Conn.mu: reading may resume, or the connection closed
	closing chan struct{} // closed by close
	flushWG sync.WaitGroup

	tmu     sync.Mutex // guards the timer
	timer   *time.Timer
	due     int64 // when the timer fires; 0 while it is not set
	stopped bool  // the connection is finished: no more timers
	timerWG sync.WaitGroup
}

func newStdConn(nc net.Conn, ev *Events, opt *ConnOptions, srv *Server) *stdConn {
	s := &stdConn{nc: nc, closing: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	s.tw = newTryWriter(nc)
	s.init(s, ev, opt, srv)
	return s
}

// run is the connection's goroutine: it delivers OnConnect, reads and
// delivers input, and once the connection closed and its other
// goroutines are done, reports the close.
func (s *stdConn) run() {
	if _, ok := s.nc.(*net.TCPConn); !ok {
		s.nc.SetDeadline(time.Time{}) // a Handshake may have left one; timeouts are the lifecycle's
	}
	s.start()
	if s.opt.Framing == Raw {
		s.readRaw()
	} else {
		s.readFramed()
	}
	<-s.closing
	s.stopTimer()
	s.flushWG.Wait()
	s.finish()
}

func (s *stdConn) readRaw() {
	buf := make([]byte, DefaultReadBufferSize)
	for {
		if s.mustWait() && !s.waitReading() {
			return
		}
		n, err := s.nc.Read(buf)
		if n > 0 {
			s.gotBytes(n)
			s.deliver(buf[:n])
			if s.flags.has(fDead) {
				return
			}
			if n == len(buf) && len(buf) < MaxReadBufferSize {
				buf = make([]byte, 2*len(buf))
			}
		}
		if err != nil {
			s.readFailed(err, nil)
			return
		}
	}
}

// readFramed is readRaw for Lines and Len32 framing: it reads into a
// buffer that holds the unfinished message, and the messages a pause
// (Pause, Offload) held back.
func (s *stdConn) readFramed() {
	buf := make([]byte, DefaultReadBufferSize)
	start, end := 0, 0 // buf[start:end] is read but not delivered
	var rerr error     // the read error, acted on once what came before it is delivered
	for {
		if start < end {
			used, ok := s.deliverMessages(buf[start:end])
			if !ok {
				return
			}
			start += used
		}
		if start == end {
			start, end = 0, 0
		}
		if s.mustWait() {
			if !s.waitReading() {
				return
			}
			continue
		}
		if rerr != nil {
			s.readFailed(rerr, buf[start:end])
			return
		}
		if end == len(buf) { // make room: move the unfinished message down, or grow
			if start > 0 {
				end = copy(buf, buf[start:end])
				start = 0
			} else {
				buf = append(buf, make([]byte, len(buf))...)
			}
		}
		n, err := s.nc.Read(buf[end:])
		if n > 0 {
			s.gotBytes(n)
			end += n
		}
		rerr = err
	}
}

// readFailed ends reading on err, after rest, an unfinished message.
func (s *stdConn) readFailed(err error, rest []byte) {
	switch {
	case s.flags.has(fDead): // closed: the error is the close's
	case err == io.EOF:
		s.inputEOF(rest)
	default:
		s.closeWith(err)
	}
}

// waitReading blocks while reading must wait (paused, backlogged);
// false means the connection closed.
func (s *stdConn) waitReading() bool {
	s.mu.Lock()
	for s.mustWait() && !s.flags.has(fDead) {
		s.cond.Wait()
	}
	ok := !s.flags.has(fDead)
	s.mu.Unlock()
	if ok {
		s.readingResumed()
	}
	return ok
}

func (s *stdConn) tryWrite(p []byte) (int, error) {
	if s.st != nil {
		return s.st.tryWrite(p)
	}
	if s.tw == nil {
		return 0, nil
	}
	return s.tw.write(p)
}

func (s *stdConn) startFlush() {
	s.flushWG.Add(1)
	go s.flush()
}

// flush writes the queued output until none is left, blocking, then ends
// the flush (flushedLocked).
func (s *stdConn) flush() {
	defer s.flushWG.Done()
	var first []byte // the queue's buffer, kept for the next queue
	for {
		s.mu.Lock()
		if len(s.out) == 0 || s.flags.has(fDead) {
			break
		}
		buf, limit := s.out, s.stallLimitLocked()
		if first == nil {
			first = buf
		}
		s.mu.Unlock()
		// Write only appends to s.out: buf's bytes stay as they are.
		n, err := s.writeOut(buf, limit)
		s.mu.Lock()
		s.out = s.out[n:]
		s.wroteLocked(n)
		s.mu.Unlock()
		if n > 0 {
			s.trace(TraceWrite, n, nil)
		}
		if err != nil {
			s.closeWith(err)
		}
	}
	if len(s.out) == 0 && cap(first) <= MaxReadBufferSize {
		s.out = first[:0] // all of it is written: nobody else holds it
	}
	fin, drain := s.flushedLocked()
	s.mu.Unlock()
	s.cond.Broadcast() // a reader stopped by the backlog may go on
	s.afterFlush(fin, drain)
}

// streamChunk is how much plaintext is made into TLS records at once,
// ahead of the kernel, and how much flush hands a connection without an
// fd in one blocking write under a stall limit: progress is seen per
// chunk.
const streamChunk = 16 << 10

// writeOut writes from buf, blocking until some of it is written or the
// write fails, and returns how much was written.
func (s *stdConn) writeOut(buf []byte, limit time.Duration) (int, error) {
	if s.st != nil {
		return s.st.writeOut(buf)
	}
	if s.tw != nil {
		n, err := s.tw.writeWait(buf)
		if err != nil {
			if errno, ok := err.(syscall.Errno); ok {
				err = &net.OpError{Op: "write", Net: "tcp", Source: s.nc.LocalAddr(), Addr: s.nc.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
			}
		}
		return n, err
	}
	if limit > 0 && len(buf) > streamChunk {
		buf = buf[:streamChunk]
	}
	return s.nc.Write(buf)
}

// errNoHalfClose is closeWrite's error on a connection that cannot send a
// FIN and stay open: it is closed instead.
var errNoHalfClose = errors.New("tcpkit: the connection cannot half-close")

func (s *stdConn) closeWrite() error {
	if s.st != nil {
		return s.st.closeWrite()
	}
	return closeWriteAll(s.nc)
}

// closeWriteAll half-closes nc: for TLS, a close_notify alert, then the
// FIN of the connection beneath, as on plain TCP (tls.Conn's CloseWrite
// sends only the alert).
func closeWriteAll(nc net.Conn) error {
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok {
		return errNoHalfClose
	}
	if err := cw.CloseWrite(); err != nil && !peerGone(err) {
		return err
	}
	if tc, ok := nc.(*tls.Conn); ok {
		return closeWriteAll(tc.NetConn())
	}
	return nil
}

// schedule sets the timer to fire by due, if it is not set to fire
// earlier: firing early costs only a look.
func (s *stdConn) schedule(due int64) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if s.stopped || s.due != 0 && s.due <= due {
		return
	}
	s.due = due
	d := time.Duration(due - monoNow())
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.fire)
	} else {
		s.timer.Reset(d)
	}
}

func (s *stdConn) fire() {
	s.tmu.Lock()
	if s.stopped {
		s.tmu.Unlock()
		return
	}
	s.due = 0
	s.timerWG.Add(1)
	s.tmu.Unlock()
	defer s.timerWG.Done()
	s.expire(monoNow())
}

// stopTimer stops the timer, and waits for a firing that is under way.
func (s *stdConn) stopTimer() {
	s.tmu.Lock()
	s.stopped = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.tmu.Unlock()
	s.timerWG.Wait()
}

func (s *stdConn) resume() { s.cond.Broadcast() }

// shutdown ends the connection from a goroutine of its own: endNow waits
// for the callback running to return.
func (s *stdConn) shutdown() { go s.gracefulEnd() }

func (s *stdConn) close(abort bool) {
	s.cond.Broadcast() // a reader waiting to resume learns of the close
	if abort {
		abortOnClose(s.nc)
	}
	s.nc.Close()
	close(s.closing) // run reports the close
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

func (s *stdConn) control(f func(fd uintptr)) bool {
	var nc net.Conn = s.nc
	if s.st != nil {
		nc = s.st.k
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	return raw.Control(f) == nil
}

func (s *stdConn) remoteAddr() net.Addr { return s.nc.RemoteAddr() }
func (s *stdConn) localAddr() net.Addr  { return s.nc.LocalAddr() }
