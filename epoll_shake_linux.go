package tcpkit

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// Before a connection is served, on the loop: its Preamble, read as it
// comes with no goroutine, then its Handshake, run on a goroutine of its
// own over an epStream the loop feeds. Once Handshake returned, the
// connection is served on the loop like any other, its bytes passing
// through what Handshake returned (TLS) if that is not the epStream
// itself. A connection that fails either is closed unserved, and the
// Server's OnReject is told, as on the std engine.

// An epShake is a connection's state until it is served. It is in the
// Server's list of connections in handshake, as a std connection's
// net.Conn is: Close cuts it.
type epShake struct {
	c       *epConn
	pre     []byte // the preamble read so far; the loop's
	reading bool   // the preamble is being read; the loop's
	due     int64  // when the preamble's time is up; the loop's
	dialed  bool   // a Dial's: no Server to tell

	a   atomic.Pointer[epStream] // what Handshake got, once it runs
	cut atomic.Bool              // Close cut it: it is closed unserved, and OnReject is not told

	// What Handshake returned, written by its goroutine before it posts
	// taskShaken.
	x   net.Conn
	err error
}

// Close cuts the connection, for Server.Close and Shutdown: a Handshake
// running on it sees its connection closed and returns; one reading its
// preamble is closed by its loop.
func (sh *epShake) Close() error {
	sh.cut.Store(true)
	if a := sh.a.Load(); a != nil {
		a.Close()
		return nil
	}
	sh.c.l.post(task{kind: taskAbort, c: sh.c})
	return nil
}

// serveShake takes on an accepted connection of a Server with a Preamble
// or a Handshake: the peer check, then the preamble, then Handshake.
func (l *loop) serveShake(c *epConn) {
	sh := &epShake{c: c}
	c.ext.shake = sh
	l.add(c)
	if !l.s.trackShaking(sh, true) { // shutting down: closed unserved, as on the std engine
		l.closeFD(c, false)
		return
	}
	if errno := rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.fd), connEvents, c.slot+connTag); errno != 0 {
		l.dropShake(c, os.NewSyscallError("epoll_ctl", errno))
		return
	}
	pr := l.s.Preamble
	if pr == nil {
		l.startHandshake(c, sh, nil)
		return
	}
	if pr.Allow != nil {
		if err := pr.Allow(c.RemoteAddr()); err != nil {
			l.dropShake(c, err)
			return
		}
	}
	sh.reading = true
	sh.due = monoNow() + int64(pr.timeout())
	l.schedule(c, sh.due)
	l.readPreamble(c, sh) // a client that sends first has sent it by now
}

// readShake reads for a connection not yet served: its preamble, or the
// input its Handshake waits for.
func (l *loop) readShake(c *epConn, sh *epShake) {
	if sh.reading {
		l.readPreamble(c, sh)
		return
	}
	a := sh.a.Load()
	for a != nil && !a.full() {
		n, errno := rawsys.Read(int(c.fd), l.buf)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return
		case errno != 0:
			a.feedEnd(c.opError("read", "read", errno))
			return
		case n == 0:
			a.feedEnd(io.EOF)
			return
		}
		a.feed(l.buf[:n])
		if n < len(l.buf) && !c.hup {
			return
		}
	}
	// Full: the Handshake has the loop read on once it took some.
}

// readPreamble reads what the socket has and shows Parse all of the
// preamble so far, until Parse has it whole, refuses it, or the socket
// is empty.
func (l *loop) readPreamble(c *epConn, sh *epShake) {
	pr := l.s.Preamble
	for {
		room := l.buf[:min(len(l.buf), MaxPreamble-len(sh.pre))]
		n, errno := rawsys.Read(int(c.fd), room)
		var end error
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return
		case errno != 0:
			end = c.opError("read", "read", errno)
		case n == 0:
			end = io.EOF
		default:
			sh.pre = append(sh.pre, room[:n]...)
		}
		k, remote, local, err := pr.parse(sh.pre, end)
		if err != nil {
			l.dropShake(c, err)
			return
		}
		if k > 0 {
			l.preambleRead(c, sh, k, remote, local)
			return
		}
		if n < len(room) && !c.hup {
			return
		}
	}
}

// preambleRead goes on once the preamble is whole: the first k bytes of
// what was read.
func (l *loop) preambleRead(c *epConn, sh *epShake, k int, remote, local net.Addr) {
	var rest []byte
	if k < len(sh.pre) {
		rest = append([]byte(nil), sh.pre[k:]...)
	}
	sh.pre, sh.reading = nil, false
	l.mu.Lock()
	l.timers.remove(c) // the preamble's timeout is over; the connection's own start with it
	l.mu.Unlock()
	if remote != nil {
		c.ext.remote = remote
	}
	if local != nil {
		c.ext.local = local
	}
	if l.s.Handshake != nil {
		l.startHandshake(c, sh, rest)
		return
	}
	l.serveShaken(c, sh, nil, rest)
}

// shakeExpired refuses a connection whose preamble did not come whole
// in time.
func (l *loop) shakeExpired(c *epConn, sh *epShake, now int64) {
	if !sh.reading {
		return
	}
	if now < sh.due {
		l.schedule(c, sh.due)
		return
	}
	k, remote, local, err := l.s.Preamble.parse(sh.pre, ErrPreambleTimeout)
	if err != nil {
		l.dropShake(c, err)
		return
	}
	l.preambleRead(c, sh, k, remote, local)
}

// startHandshake runs the Server's Handshake on a goroutine of its own,
// over an epStream holding rest, what came after the preamble.
func (l *loop) startHandshake(c *epConn, sh *epShake, rest []byte) {
	a := newEpStream(c, rest)
	sh.a.Store(a)
	if sh.cut.Load() { // Close came while the preamble was read
		a.Close()
	}
	hook := l.s.Handshake
	go func() {
		x, err := guardHook(func() (net.Conn, error) { return hook(a) })
		sh.x, sh.err = x, err
		l.post(task{kind: taskShaken, c: c})
	}()
	l.readShake(c, sh) // what came already: its edge is spent
}

// shaken serves a connection whose Handshake returned, or closes it if
// the Handshake failed or Close cut it. done, for a Dial waiting, is
// closed once it knows which.
func (l *loop) shaken(c *epConn, done chan struct{}) {
	sh := c.ext.shake
	a := sh.a.Load()
	x, err := sh.x, sh.err
	if err == nil && x == nil {
		err = errors.New("tcpkit: Handshake returned no connection and no error")
	}
	if err == nil && sh.cut.Load() {
		err = net.ErrClosed
	}
	if err != nil {
		a.Close()
		if sh.dialed {
			sh.err = err
		}
		l.dropShake(c, err)
		if done != nil {
			close(done)
		}
		return
	}
	c.mu.Lock()
	a.served()
	rest, plain := []byte(nil), false
	if x == net.Conn(a) && !a.queued() {
		rest, plain = a.takeInput()
	}
	if plain {
		a.dropFD() // not used from here on: a stray write through it fails
	} else {
		c.ext.st = a
		a.x = x
	}
	c.mu.Unlock()
	if tc, ok := x.(*tls.Conn); !ok || tc.NetConn() != net.Conn(a) { // a tls.Conn's are a's
		if ra := x.RemoteAddr(); !sameAddr(ra, a.RemoteAddr()) {
			c.ext.remote = ra // a connection of its own, with the peer it names
		}
		if la := x.LocalAddr(); !sameAddr(la, a.LocalAddr()) {
			c.ext.local = la
		}
	}
	l.serveShaken(c, sh, done, rest)
}

// serveShaken serves a connection whose preamble and Handshake are done:
// the limits, then OnConnect and what came already, rest first.
func (l *loop) serveShaken(c *epConn, sh *epShake, done chan struct{}, rest []byte) {
	if !sh.dialed && !l.s.trackShaking(sh, false) { // Close cut it meanwhile
		l.closeFD(c, false)
		return
	}
	l.mu.Lock()
	c.ext.shake = nil // a Close from now on finds it among the served (see trackConn)
	l.mu.Unlock()
	if !sh.dialed {
		// Accepted before any Shutdown: served even during one, as a
		// balancer may have passed on a request already.
		if err := l.s.trackConn(&c.Conn, true); err != nil {
			l.refuse(c, err)
			return
		}
		c.traceConnected(0)
	}
	c.held = rest
	if done != nil {
		close(done) // Dial returns: the connection is the lifecycle's
	}
	c.start()
	l.read(c) // input the Handshake's connection holds, or that came already
}

// dropShake closes a connection that is not to be served, telling the
// Server's OnReject why (err) unless Close cut it or it was dialed.
func (l *loop) dropShake(c *epConn, err error) {
	sh := c.ext.shake
	if !sh.dialed {
		if err != nil && !sh.cut.Load() {
			l.s.reject(c.socketRemote(), err)
		}
		l.s.trackShaking(sh, false)
	}
	l.closeFD(c, false)
}

// abortShake handles the close of a connection in handshake: it can only
// come from the loop's own failures, which dropShake handles, so this is
// a Dial's connection whose Handshake has not returned; it is left for
// taskShaken.
func (l *loop) abortShake(c *epConn) {
	if a := c.ext.shake.a.Load(); a != nil {
		a.Close()
	}
}

// watchShake watches for room to write what a Handshake queued.
func (l *loop) watchShake(c *epConn) {
	c.mu.Lock()
	if !c.released() {
		c.watchOutputLocked(true)
	}
	c.mu.Unlock()
}

// socketRemote is the peer's address as the socket gives it, whatever a
// preamble said: where a refused connection came from.
func (c *epConn) socketRemote() net.Addr {
	if c.raddr.IsValid() {
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(c.raddr, c.rport))
	}
	if r, ok := c.ext.remote.(*net.UnixAddr); ok {
		return r
	}
	return unnamedPeer
}

// sameAddr reports whether a and b name the same address.
func sameAddr(a, b net.Addr) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a == b || a.Network() == b.Network() && a.String() == b.String()
}
