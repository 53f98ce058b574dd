package tcpkit

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// How a loop takes connections on: accepting, the server's limits, and
// shedding connections at the process's fd limit.

// accept takes the connections waiting on el, a bounded number per event
// so the loop's other connections are served too (the listener is
// level-triggered: the rest are reported again).
func (l *loop) accept(el *epListener) {
	if l.backoff > 0 {
		return
	}
	ep := l.s.ep
	for i := 0; ; i++ {
		if i == 64 {
			l.more = true // the listener is level-triggered: what is left is ready without a new wakeup
			return
		}
		var fd int
		var raddr netip.AddrPort
		var name string
		var err syscall.Errno
		locked := ep.reserve.Lock()
		fd, raddr, name, err = el.accept()
		ep.reserve.Unlock(locked)
		switch err {
		case 0:
			l.open++ // before serve: release may follow at once
			l.serve(fd, raddr, name, el)
			continue
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EMFILE, unix.ENFILE:
			if l.shed(el, err) {
				continue
			}
		}
		// ENOBUFS, ENOMEM, EINVAL after Shutdown, or a shed that found
		// no fd to spare: stop accepting on this loop for a moment.
		l.pauseAccepting()
		return
	}
}

// pauseAccepting takes the listeners out of this loop's epoll set for a
// moment: they are level-triggered, so while a connection waits that
// cannot be accepted, epoll_wait would report them again at once, and
// the loop would spin.
func (l *loop) pauseAccepting() {
	l.backoff = monoNow() + int64(10*time.Millisecond)
	for _, el := range l.listeners {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, el.fd, nil)
	}
}

// resumeAccepting puts them back, and accepts what waits.
func (l *loop) resumeAccepting() {
	l.backoff = 0
	for _, el := range l.listeners {
		l.register(el)
	}
	for _, el := range l.listeners {
		l.accept(el)
	}
}

// register adds a listener to this loop's epoll set.
func (l *loop) register(el *epListener) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(el.fd), Pad: listenerTag}
	return unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, el.fd, &ev)
}

// shed accepts one connection and closes it at once, using the reserve
// fd, when the process is out of fds: the client learns at once, instead
// of waiting in the backlog, and the server keeps serving the rest.
func (l *loop) shed(el *epListener, cause syscall.Errno) bool {
	var raddr netip.AddrPort
	var name string
	var err syscall.Errno
	shed := func() { // closed before the reserve is taken back, which needs its number
		var fd int
		if fd, raddr, name, err = el.accept(); err == 0 {
			unix.Close(fd)
		}
	}
	if !l.s.ep.reserve.Shed(shed) {
		return false
	}
	if err == 0 {
		var remote net.Addr = net.TCPAddrFromAddrPort(raddr)
		if el.ext.network == "unix" {
			remote = &net.UnixAddr{Name: name, Net: "unix"}
		}
		l.s.reject(remote, &net.OpError{Op: "accept", Net: el.ext.network, Addr: el.ln.Addr(), Err: os.NewSyscallError("accept4", cause)})
	}
	// EAGAIN: another loop took it; the caller's next accept says so.
	return err == 0 || err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNABORTED
}

// accept accepts a connection from el: the peer's IP address and port
// for TCP, its name for a Unix socket ("@" if it bound none).
func (el *epListener) accept() (fd int, raddr netip.AddrPort, name string, errno syscall.Errno) {
	if el.ext.network != "unix" {
		fd, raddr, errno = rawsys.Accept(el.fd)
		return fd, raddr, "", errno
	}
	fd, sa, err := unix.Accept4(el.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		errno, _ = err.(syscall.Errno)
		if errno == 0 {
			errno = unix.EINVAL
		}
		return -1, raddr, "", errno
	}
	if su, ok := sa.(*unix.SockaddrUnix); ok {
		name = su.Name
	}
	return fd, raddr, name, 0
}

// serve takes on an accepted socket: the limits, the registration, and
// OnConnect; or, for a Server with a Preamble or a Handshake, those
// first. The connection joins the loop's table before the limits are
// checked: see Server.trackConn.
func (l *loop) serve(fd int, raddr netip.AddrPort, name string, el *epListener) {
	ext := el.ext
	if name != "" && name != unnamedPeer.Name || l.s.Preamble != nil || l.s.Handshake != nil {
		ext = &epExt{ln: el, network: ext.network}
		if name != "" && name != unnamedPeer.Name {
			ext.remote = &net.UnixAddr{Name: name, Net: "unix"}
		}
	}
	c := newEpConn(l, fd, raddr, ext)
	if l.s.Preamble != nil || l.s.Handshake != nil {
		l.serveShake(c)
		return
	}
	l.add(c)
	if err := l.s.trackConn(&c.Conn, false); err != nil {
		l.refuse(c, err)
		return
	}
	if errno := rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, connEvents, c.slot+connTag); errno != 0 {
		c.closeWith(os.NewSyscallError("epoll_ctl", errno))
		return
	}
	c.traceConnected(0)
	c.start() // OnConnect, and a graceful end if Shutdown has begun
	if l.eagerRead() {
		l.read(c)
		l.eagerHit(c.BytesRead() > 0 || c.flags.has(fPeerEnded|fDead))
	}
}

// refuse closes c, in the loop's table and not served, because err (a
// limit) says it may not be.
func (l *loop) refuse(c *epConn, err error) {
	remote := c.RemoteAddr()
	l.closeFD(c, false) // never served: a Close or Shutdown that found it leaves it be
	if err != ErrServerClosed {
		l.s.reject(remote, err)
	}
}

// A client usually sends its request right after connecting, and on a
// busy server it is in the socket by the time the loop has accepted it:
// reading at once saves a round through the poller (park, wake, poll)
// for it. Where clients wait to be spoken to first, the read finds
// nothing (EAGAIN), so the loop keeps score and stops trying when most
// of these reads miss, trying again one accept in eagerProbe to notice
// when that changes.
const (
	eagerMax   = 16 // the score's ceiling: how many misses in a row it takes to stop
	eagerProbe = 32
)

func (l *loop) eagerRead() bool {
	l.accepted++
	return l.eager > 0 || l.accepted%eagerProbe == 0
}

func (l *loop) eagerHit(hit bool) {
	switch {
	case hit && l.eager < eagerMax:
		l.eager++
	case !hit && l.eager > 0:
		l.eager--
	}
}
