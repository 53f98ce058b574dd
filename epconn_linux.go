package tcpkit

import (
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// epConn is what a Conn served by the epoll engine adds: its fd and loop,
// and the loop's bookkeeping. An idle connection owns no buffer here.
type epConn struct {
	l     *loop
	fd    int // -1 once the loop closed it; under Conn.mu for other goroutines
	raddr netip.AddrPort
	laddr netip.AddrPort // filled in on first use (getsockname)
	ln    *epListener

	// Under Conn.mu.
	finAt    int64 // when our FIN went out, for the linger timeout
	progress int64 // when queued output last moved; kept only under a stall limit
	finished bool  // OnClose has returned

	// Under loop.mu.
	hidx int   // index in the loop's timer heap; -1 when not in it
	due  int64 // when the loop looks at this connection's timers next

	// Owned by the loop.
	eof        bool   // the peer's FIN was read
	hup        bool   // epoll reported the peer's FIN or an error
	waiting    bool   // reading stopped (paused, backlogged) with input maybe pending
	partial    []byte // an unfinished framed message
	endOnFirst bool   // Shutdown ends the connection after its first message
	grace      int64  // ... or at this time, whichever comes first
}

func newEpConn(l *loop, fd int, raddr netip.AddrPort, el *epListener) *Conn {
	c := &Conn{
		ev:  &l.s.Events,
		opt: &l.s.ConnOptions,
		id:  lastConnID.Add(1),
		ep:  &epConn{l: l, fd: fd, raddr: raddr, ln: el, hidx: -1},
	}
	if c.opt.IdleTimeout > 0 || c.opt.ReadTimeout > 0 {
		now := monoNow()
		c.lastRead.Store(now)
		c.lastActive.Store(now)
		c.timeout.Store(int64(c.opt.IdleTimeout))
		c.timerArmed.Store(c.opt.IdleTimeout > 0)
	}
	return c
}

// released reports whether the loop closed the fd.
func (ep *epConn) released() bool { return ep.fd < 0 }

func (ep *epConn) remoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(ep.raddr)
}

// localAddr asks the kernel once; after the fd is gone it falls back to
// the listener's address.
func (c *Conn) epLocalAddr() net.Addr {
	ep := c.ep
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ep.laddr.IsValid() && !ep.released() {
		if sa, err := unix.Getsockname(ep.fd); err == nil {
			ep.laddr = sockaddrToAddrPort(sa)
		}
	}
	if ep.laddr.IsValid() {
		return net.TCPAddrFromAddrPort(ep.laddr)
	}
	return ep.ln.ln.Addr()
}

// epTryWrite writes what the socket takes at once; c.mu is held.
func (c *Conn) epTryWrite(p []byte) (int, error) {
	if c.ep.released() {
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(p) {
		m, errno := rawsys.Write(c.ep.fd, p[n:])
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

// epQueuedLocked notes that output is queued: the fd is watched for
// output until it is written, and the stall limit starts.
func (c *Conn) epQueuedLocked() {
	c.ep.watchOutputLocked(true)
	if limit := c.stallLimitLocked(); limit > 0 {
		c.ep.progress = monoNow()
		c.ep.l.schedule(c, c.ep.progress+int64(limit))
	}
}

// epEndingLocked starts the stall limit of output queued when End is
// called: the clock starts now, unless WriteTimeout already runs it.
func (c *Conn) epEndingLocked() {
	if c.opt.WriteTimeout == 0 {
		c.ep.progress = monoNow()
	}
	c.ep.l.schedule(c, c.ep.progress+int64(c.stallLimitLocked()))
}

// watchOutputLocked adds output to the events the fd is watched for, or
// removes it; Conn.mu is held. Adding it reports the socket at once if it
// is writable already, so no edge is missed.
func (ep *epConn) watchOutputLocked(on bool) {
	if ep.released() {
		return
	}
	events := uint32(connEvents)
	if on {
		events |= unix.EPOLLOUT
	}
	rawsys.EpollCtl(ep.l.epfd, unix.EPOLL_CTL_MOD, ep.fd, events)
}

// epSendFIN is sendFIN on the epoll engine.
func (c *Conn) epSendFIN() {
	if c.opt.Trace != nil {
		c.traceMu.Lock()
	}
	c.mu.Lock()
	err := error(net.ErrClosed)
	if !c.ep.released() {
		if errno := rawsys.Shutdown(c.ep.fd, unix.SHUT_WR); errno != 0 {
			err = errno
		} else {
			err = nil
		}
	}
	c.finDone = true
	closeNow := err != nil || c.peerEnded
	if !closeNow && !c.closed {
		c.ep.finAt = monoNow()
		c.ep.l.schedule(c, c.ep.finAt+int64(c.opt.lingerTimeout()))
	}
	c.mu.Unlock()
	if c.opt.Trace != nil {
		if err == nil {
			c.emitLocked(TraceFIN, 0, nil)
		}
		c.traceMu.Unlock()
	}
	if closeNow {
		c.closeWith(nil)
	}
}

// epTCPInfo reads TCP_INFO from the fd, while it is open.
func (c *Conn) epTCPInfo() *unix.TCPInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep.released() {
		return nil
	}
	ti, err := unix.GetsockoptTCPInfo(c.ep.fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return nil
	}
	return ti
}

// opError wraps a system call's error as the net package does, so both
// engines report failures alike.
func (c *Conn) opError(op, syscallName string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(syscallName, errno)}
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

// A timerHeap orders connections by when their timers are next due. It
// is the loop's one timer: a connection is in it at most once, however
// many of its timeouts run.
type timerHeap []*Conn

// set puts c in the heap by due, or moves it earlier; a later due leaves
// it where it is (it is looked at early, and rescheduled then).
func (h *timerHeap) set(c *Conn, due int64) {
	ep := c.ep
	if ep.hidx >= 0 {
		if due < ep.due {
			ep.due = due
			h.up(ep.hidx)
		}
		return
	}
	ep.due = due
	ep.hidx = len(*h)
	*h = append(*h, c)
	h.up(ep.hidx)
}

func (h *timerHeap) pop() *Conn {
	c := (*h)[0]
	h.removeAt(0)
	return c
}

func (h *timerHeap) remove(c *Conn) {
	if c.ep.hidx >= 0 {
		h.removeAt(c.ep.hidx)
	}
}

func (h *timerHeap) removeAt(i int) {
	s := *h
	last := len(s) - 1
	c := s[i]
	if i != last {
		s.swap(i, last)
	}
	s[last] = nil
	*h = s[:last]
	c.ep.hidx = -1
	if i != last {
		h.down(i)
		h.up(i)
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].ep.hidx = i
	h[j].ep.hidx = j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].ep.due <= h[i].ep.due {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].ep.due < h[l].ep.due {
			m = r
		}
		if h[i].ep.due <= h[m].ep.due {
			return
		}
		h.swap(i, m)
		i = m
	}
}
