package tcpkit

import (
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// The epoll engine's transport: a connection's fd on its loop. The loop
// reads it and flushes its queue; other goroutines write to it inline
// under Conn.mu and post to the loop what only the loop may do.

// epConn is a Conn served by the epoll engine. An idle one owns no
// buffer and no goroutine.
type epConn struct {
	Conn
	l     *loop
	ext   *epExt     // never nil, never replaced: a plain TCP connection shares its listener's
	raddr netip.Addr // the peer's IP address (and rport its port), as accept gave it; invalid for a Unix socket
	due   int64      // when the loop looks at this connection's timers next; under loop.mu
	held  []byte     // an unfinished framed message, and messages a pause held back; the loop's
	fd    int32      // -1 once the loop closed it; under Conn.mu for other goroutines
	hidx  int32      // index in the loop's timer heap, -1 when not in it; under loop.mu
	slot  int32      // index in the loop's table; under loop.mu
	rport uint16

	// Owned by the loop.
	hup     bool // epoll reported the peer's FIN or an error
	waiting bool // reading stopped (paused, backlogged) with input maybe pending
}

// An epExt is what a connection's transport knows beyond a TCP socket
// accepted with nothing before its data: the network, addresses of its
// own, the state of its preamble or Handshake, and the connection its
// bytes pass through (TLS). The plain connections of a listener share
// its one, which is never written; a connection that needs more has its
// own.
type epExt struct {
	ln      *epListener // the listener that accepted it; nil for a dialed one
	network string      // "tcp" or "unix", for errors

	// Addresses of the connection's own: a preamble's, a Handshake's
	// connection's, a dialed connection's, a Unix peer's name. Written
	// before the connection is served; nil means the socket's.
	remote, local net.Addr

	// While the connection reads its preamble or runs Handshake; set to
	// nil under loop.mu once it is served.
	shake *epShake

	// The connection its bytes pass through, once Handshake returned one
	// (TLS); nil for a socket's bytes as they are. Written before the
	// connection is served, under Conn.mu.
	st *epStream
}

func newEpConn(l *loop, fd int, raddr netip.AddrPort, ext *epExt) *epConn {
	c := &epConn{l: l, ext: ext, raddr: raddr.Addr(), rport: raddr.Port(), fd: int32(fd), hidx: -1}
	c.init(c, &l.s.Events, &l.s.ConnOptions, l.s)
	return c
}

// released reports whether the loop closed the fd.
func (c *epConn) released() bool { return c.fd < 0 }

// read reads what the peer sent and delivers it, until a short read says
// the socket is empty (the edge is consumed), or until the connection
// must stop reading (paused, backlogged: the next Resume or drain reads
// again). Once the peer's FIN was reported, a short read is not the end:
// the FIN's edge came already, so it reads on to EOF.
func (l *loop) read(c *epConn) {
	if c.flags.has(fPeerEnded | fDead) { // the peer's FIN was read: nothing more to read
		return
	}
	if sh := c.ext.shake; sh != nil {
		l.readShake(c, sh)
		return
	}
	if !c.deliverHeld0() {
		return
	}
	if c.ext.st != nil {
		l.readStream(c, c.ext.st)
		return
	}
	for i := 0; ; i++ {
		if c.mustWait() {
			c.waiting = true
			return
		}
		c.waiting = false
		if c.flags.has(fDead) { // closed from another goroutine: its close is queued to this loop
			return
		}
		if i == maxReadsPerEvent {
			l.pending = append(l.pending, c)
			return
		}
		n, errno := rawsys.Read(int(c.fd), l.buf)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return
		case errno != 0:
			c.closeWith(c.opError("read", "read", errno))
			return
		case n == 0:
			rest := c.held
			c.held = nil
			c.inputEOF(rest)
			return
		}
		c.gotBytes(n)
		if c.opt.Framing == Raw {
			c.deliver(l.buf[:n])
		} else if !c.deliverHeld(l.buf[:n]) {
			c.waiting = c.mustWait()
			return
		}
		if c.flags.has(fDead) || n < len(l.buf) && !c.hup {
			return
		}
	}
}

// deliverHeld0 delivers what is held before anything is read: messages
// a pause held back, or the bytes that came after a preamble or a
// Handshake in the same reads. It reports whether to read on.
func (c *epConn) deliverHeld0() bool {
	if len(c.held) == 0 || c.mustWait() {
		return true
	}
	if c.opt.Framing == Raw {
		p := c.held
		c.held = nil
		c.deliver(p)
		return !c.flags.has(fDead)
	}
	if !c.deliverHeld(nil) {
		c.waiting = c.mustWait()
		return false
	}
	return true
}

// deliverHeld delivers the framed messages in what is held and p, p being
// in the loop's buffer, and holds what is left (in a buffer of its own, so
// an idle connection between messages holds none). It reports whether to
// read on.
func (c *epConn) deliverHeld(p []byte) bool {
	data := p
	if len(c.held) > 0 {
		c.held = append(c.held, p...)
		data = c.held
	}
	used, ok := c.deliverMessages(data)
	if !ok {
		return false
	}
	if rest := data[used:]; len(rest) == 0 {
		c.held = nil
	} else {
		c.held = append(c.held[:0], rest...) // copy handles the overlap
	}
	return !c.mustWait()
}

// flush writes queued output when the socket takes more; when it is all
// out, the flush ends (a pending FIN, OnDrain), and reading resumes.
func (l *loop) flush(c *epConn) {
	if c.ext.shake != nil || c.ext.st != nil {
		l.flushStream(c)
		return
	}
	c.mu.Lock()
	if c.flags.has(fDead) || !c.flags.has(fFlushing) {
		c.mu.Unlock()
		return
	}
	wrote := 0
	for len(c.out) > 0 {
		n, errno := rawsys.Write(int(c.fd), c.out)
		if errno == unix.EINTR {
			continue
		}
		if errno == unix.EAGAIN {
			break
		}
		if errno != 0 {
			c.mu.Unlock()
			c.traceWrote(wrote)
			c.closeWith(c.opError("write", "write", errno))
			return
		}
		c.out = c.out[n:]
		wrote += n
	}
	c.wroteLocked(wrote)
	if len(c.out) > 0 {
		c.mu.Unlock()
		c.traceWrote(wrote)
		return
	}
	c.out = nil // an idle connection keeps no buffer
	c.watchOutputLocked(false)
	l.flushed(c, wrote)
}

// flushed ends a flush whose queue is empty: the FIN End left to it,
// OnDrain, and reading again if the backlog stopped it. c.mu is held,
// and released.
func (l *loop) flushed(c *epConn, wrote int) {
	fin, drain := c.flushedLocked()
	c.mu.Unlock()
	c.traceWrote(wrote)
	c.afterFlush(fin, drain)
	if c.waiting {
		c.readingResumed()
		l.read(c)
	}
}

func (c *Conn) traceWrote(n int) {
	if n > 0 {
		c.trace(TraceWrite, n, nil)
	}
}

// release closes c's fd and reports the close: the last of a connection,
// run on its loop once it was closed.
func (l *loop) release(c *epConn) {
	if c.ext.shake != nil { // closed before it was served: only its Handshake may be running
		l.abortShake(c)
		return
	}
	c.mu.Lock()
	if c.released() {
		c.mu.Unlock()
		return
	}
	err := c.err
	c.mu.Unlock()
	if st := c.ext.st; st != nil && !cutsOnClose(err) {
		st.close() // TLS's close_notify, if the kernel takes it at once
	}
	l.closeFD(c, cutsOnClose(err))
	c.finish()
}

// closeFD closes c's fd, with a reset if abort is set, and takes c off
// the loop: the end of a connection, served or not.
func (l *loop) closeFD(c *epConn, abort bool) {
	c.mu.Lock()
	fd := int(c.fd)
	c.fd = -1
	c.mu.Unlock()
	if sh := c.ext.shake; sh != nil && sh.a.Load() != nil {
		sh.a.Load().dropFD() // its writes see the fd gone
	} else if st := c.ext.st; st != nil {
		st.dropFD()
	}
	if fd < 0 {
		return
	}
	if abort { // cut: a reset, as abortOnClose does
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	rawsys.Close(fd)
	if l.s != nil {
		l.s.ep.reserve.Refill() // if it was lost at the limit, this fd's number makes a new one
	}
	l.mu.Lock()
	l.timers.remove(c)
	l.dropLocked(c)
	l.mu.Unlock()
	l.open--
}

// The transport.

// tryWrite writes what the socket takes at once; c.mu is held.
func (c *epConn) tryWrite(p []byte) (int, error) {
	if c.released() {
		return 0, net.ErrClosed
	}
	if st := c.ext.st; st != nil {
		return st.tryWrite(p)
	}
	n := 0
	for n < len(p) {
		m, errno := rawsys.Write(int(c.fd), p[n:])
		switch errno {
		case 0:
			n += m
		case unix.EINTR:
		case unix.EAGAIN:
			return n, nil
		default:
			return n, errno
		}
	}
	return n, nil
}

// startFlush watches the fd for output until the queue is written.
func (c *epConn) startFlush() { c.watchOutputLocked(true) }

// watchOutputLocked adds output to the events the fd is watched for, or
// removes it; Conn.mu is held. Adding it reports the socket at once if it
// is writable already, so no edge is missed.
func (c *epConn) watchOutputLocked(on bool) {
	if c.released() {
		return
	}
	events := uint32(connEvents)
	if on {
		events |= unix.EPOLLOUT
	}
	rawsys.EpollCtl(c.l.epfd, unix.EPOLL_CTL_MOD, int(c.fd), events, c.slot+connTag)
}

func (c *epConn) closeWrite() error {
	if st := c.ext.st; st != nil {
		return st.closeWrite()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released() {
		return net.ErrClosed
	}
	if errno := rawsys.Shutdown(int(c.fd), unix.SHUT_WR); errno != 0 && !peerGone(errno) {
		return errno
	}
	return nil
}

func (c *epConn) schedule(due int64) { c.l.schedule(c, due) }

// resume has the loop read: input may be waiting, with no edge to come.
func (c *epConn) resume() { c.l.post(task{kind: taskRead, c: c}) }

// shutdown has the loop end the connection, between callbacks.
func (c *epConn) shutdown() { c.l.post(task{kind: taskShutdown, c: c}) }

// close has the loop release the fd: the loop owns it. A cut
// (abort) is seen there in c.err.
func (c *epConn) close(abort bool) { c.l.post(task{kind: taskClose, c: c}) }

func (c *epConn) control(f func(fd uintptr)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released() {
		return false
	}
	f(uintptr(c.fd))
	return true
}

// remoteIP is the peer's address without building a net.Addr, for
// Server.MaxConnsPerIP: the socket's, or the one a preamble or Handshake
// gave.
func (c *epConn) remoteIP() netip.Addr {
	if r := c.ext.remote; r != nil {
		if ta, ok := r.(*net.TCPAddr); ok {
			ip, _ := netip.AddrFromSlice(ta.IP)
			return ip
		}
		return netip.Addr{}
	}
	return c.raddr
}

func (c *epConn) remoteAddr() net.Addr {
	switch {
	case c.ext.remote != nil:
		return c.ext.remote
	case c.raddr.IsValid():
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(c.raddr, c.rport))
	}
	return unnamedPeer // a Unix socket's peer that bound no name, as the net package names it
}

// unnamedPeer is the address of a Unix socket's peer that bound no name.
var unnamedPeer = &net.UnixAddr{Name: "@", Net: "unix"}

// localAddr asks the kernel; once the fd is gone it falls back to the
// listener's address. A Unix socket's is its listener's.
func (c *epConn) localAddr() net.Addr {
	x := c.ext
	switch {
	case x.local != nil:
		return x.local
	case x.network == "unix" && x.ln != nil:
		return x.ln.ln.Addr()
	}
	var ap netip.AddrPort
	c.control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			ap = sockaddrToAddrPort(sa)
		}
	})
	if ap.IsValid() {
		return net.TCPAddrFromAddrPort(ap)
	}
	if x.ln != nil {
		return x.ln.ln.Addr()
	}
	return nil
}

// opError wraps a system call's error as the net package does, so both
// engines report failures alike.
func (c *epConn) opError(op, syscallName string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.ext.network, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(syscallName, errno)}
}

func sockaddrToAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				ip = ip.WithZone(ifi.Name)
			}
		}
		return netip.AddrPortFrom(ip, uint16(sa.Port))
	}
	return netip.AddrPort{}
}
