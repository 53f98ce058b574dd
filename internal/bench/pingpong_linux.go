package bench

import (
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// On Linux, pingpong in a closed loop runs on epoll: a few goroutines
// (one per core) each drive their share of the connections with
// nonblocking system calls, as a C generator would. A goroutine per
// connection spends most of each exchange parking and waking through
// Go's netpoller, and the generator must outrun the servers it measures.

// ppConn is one connection of an epoll loop.
type ppConn struct {
	w       int // the connection's number
	fd      int
	state   uint8
	seq     int64
	start   time.Time // when the exchange in flight was sent, or the connect began
	out     []byte    // the unsent rest of the request
	msg     []byte
	header  []byte    // Config.Header's, sent with the first request
	retry   time.Time // when to reconnect, while down
	closeBy time.Time // closing: when to stop waiting for the server's FIN
	rep     reply
}

const (
	ppConnecting = iota
	ppWaiting    // request sent, reply awaited
	ppDown       // failed; reconnects at retry
	ppClosing    // our FIN sent; reading to the server's FIN
	ppDone
)

// epollLoops reports whether pingpong runs on epoll loops here.
func (r *runner) epollLoops() bool {
	return r.cfg.Mode == PingPong && r.sched == nil && r.cfg.Prepare == nil
}

// pingpongLoop drives connections l, l+loops, l+2·loops... until the run
// is over and each has ended: after the window, a connection whose
// reply is in flight waits for it until the drain's end, then sends a
// FIN and reads to the server's FIN before it closes.
func (r *runner) pingpongLoop(l, loops int) {
	sa, err := sockaddr(r.cfg.network(), r.cfg.Addr)
	ep, eerr := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil || eerr != nil { // fall back to a goroutine per connection
		if eerr == nil {
			unix.Close(ep)
		}
		r.goroutineWorkers(l, loops)
		return
	}
	defer unix.Close(ep)
	byFD := map[int]*ppConn{}
	var conns []*ppConn
	for w := l; w < r.cfg.conns(); w += loops {
		c := &ppConn{w: w, fd: -1, msg: r.msg.appendTo(nil, 0, w), rep: newReply(r.cfg)}
		conns = append(conns, c)
		r.ppConnect(ep, sa, c, byFD)
	}
	defer func() {
		for _, c := range conns {
			if c.fd >= 0 {
				unix.Close(c.fd)
			}
		}
	}()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	lastSweep := time.Now()
	for {
		stopped := r.stopped()
		// Under load events are nearly always ready: look without the
		// scheduler's bookkeeping first, and block (20 ms at most, 5 ms
		// once the window has ended, to see the drain's end) only when
		// nothing is.
		n, errno := rawsys.EpollPoll(ep, events)
		var err error
		if errno != 0 {
			err = errno
		}
		if n == 0 && err == nil {
			wait := 20
			if stopped {
				wait = 5
			}
			n, err = unix.EpollWait(ep, events, wait)
		}
		if err != nil && err != unix.EINTR {
			return
		}
		for i := range n {
			c := byFD[int(events[i].Fd)]
			if c == nil {
				continue
			}
			r.ppEvent(ep, c, events[i].Events, buf, byFD)
		}
		now := time.Now()
		if !stopped && now.Sub(lastSweep) < 10*time.Millisecond {
			continue
		}
		lastSweep = now
		if r.ppSweep(ep, sa, conns, now, stopped, buf, byFD) == 0 {
			return
		}
	}
}

// ppSweep handles the timers of the loop's connections: reconnects,
// connect and reply timeouts, the end of the run. It returns how many
// connections have not ended.
func (r *runner) ppSweep(ep int, sa unix.Sockaddr, conns []*ppConn, now time.Time, stopped bool, buf []byte, byFD map[int]*ppConn) int {
	hard := r.hardEnd()
	past := !hard.IsZero() && !now.Before(hard) // the drain is over
	live := 0
	for _, c := range conns {
		switch c.state {
		case ppDown:
			if stopped {
				c.state = ppDone
			} else if now.After(c.retry) {
				r.ppConnect(ep, sa, c, byFD)
			}
		case ppConnecting:
			switch {
			case past: // begun in the window, and never done
				r.rec.fail(c.w, 1, &OpError{Op: "end", Err: &OpError{Op: "connect", Err: errTimedOut}})
				r.ppClose(c, buf, byFD)
			case now.Sub(c.start) > r.cfg.connectTimeout():
				r.ppFail(c, r.rec.connectSeq(), &OpError{Op: "connect", Err: errTimedOut}, byFD)
			}
		case ppWaiting:
			switch {
			case past:
				r.ppLate(c, "end", byFD)
			case now.Sub(c.start) > r.cfg.replyTimeout():
				r.ppLate(c, "reply", byFD)
			}
		case ppClosing:
			if past || now.After(c.closeBy) {
				r.ppClose(c, buf, byFD)
			}
		}
		if c.state == ppDown && stopped {
			c.state = ppDone
		}
		if c.state != ppDone {
			live++
		}
	}
	return live
}

// ppLate fails c's exchange, which took too long (op "reply" or "end").
func (r *runner) ppLate(c *ppConn, op string, byFD map[int]*ppConn) {
	var err error = errTimedOut
	if wrong := c.rep.lateWrong(); wrong != nil {
		op, err = "reply", wrong
	}
	r.ppFail(c, c.seq, &OpError{Op: op, Err: err}, byFD)
}

// ppEvent handles readiness of c.
func (r *runner) ppEvent(ep int, c *ppConn, ev uint32, buf []byte, byFD map[int]*ppConn) {
	switch c.state {
	case ppConnecting:
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || errno != 0 {
			if err == nil {
				err = unix.Errno(errno)
			}
			r.ppFail(c, r.rec.connectSeq(), &OpError{Op: "connect", Err: err}, byFD)
			return
		}
		if r.cfg.Header != nil {
			c.header = r.cfg.Header(sockAddr(unix.Getsockname(c.fd)), sockAddr(unix.Getpeername(c.fd)))
		}
		r.ppSend(c, buf, byFD)
		return
	case ppClosing:
		r.ppDrain(c, buf, byFD)
		return
	case ppWaiting:
	default:
		return
	}
	if len(c.out) > 0 && ev&unix.EPOLLOUT != 0 {
		r.ppFlush(c, byFD)
	}
	for c.state == ppWaiting {
		n, errno := rawsys.Read(c.fd, buf)
		var err error
		if errno != 0 {
			err = errno
		}
		switch {
		case n > 0:
			if r.ppReply(c, buf[:n], byFD) {
				// Done, and the next request is out: its reply will raise
				// a new edge, so there is no need to read on to EAGAIN
				// (a system call per exchange saved).
				return
			}
			continue
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
			continue
		case n == 0 && err == nil:
			err = io.ErrUnexpectedEOF // the server closed before the reply was complete
		}
		r.ppFail(c, c.seq, &OpError{Op: "reply", Err: err}, byFD)
		return
	}
}

// ppReply takes reply bytes; a complete reply ends the exchange, and the
// next is sent at once (a closed loop). It reports whether the reply was
// complete.
func (r *runner) ppReply(c *ppConn, p []byte, byFD map[int]*ppConn) bool {
	done, wrong := c.rep.feed(p)
	switch {
	case wrong != nil:
		r.ppFail(c, c.seq, &OpError{Op: "reply", Err: wrong}, byFD)
		return false
	case !done:
		return false
	}
	r.rec.record(c.w, c.seq, time.Since(c.start), 0)
	r.ppSend(c, nil, byFD)
	return true
}

// ppSend starts c's next exchange, or ends c when the run is over.
func (r *runner) ppSend(c *ppConn, buf []byte, byFD map[int]*ppConn) {
	var own int64
	seq, _, ok := r.take(c.w, &own)
	if !ok {
		r.ppFinish(c, buf, byFD)
		return
	}
	if !r.msg.static() {
		c.msg = r.msg.appendTo(c.msg[:0], seq, c.w)
	}
	c.seq, c.out = seq, c.msg
	if c.header != nil { // the connection's first request: in the header's write
		c.out, c.header = append(c.header, c.msg...), nil
	}
	c.rep.reset()
	c.state = ppWaiting
	c.start = time.Now()
	r.ppFlush(c, byFD)
}

// ppFinish sends c's FIN; c then reads to the server's FIN, or until the
// drain timeout, and closes.
func (r *runner) ppFinish(c *ppConn, buf []byte, byFD map[int]*ppConn) {
	unix.Shutdown(c.fd, unix.SHUT_WR)
	c.state = ppClosing
	c.closeBy = time.Now().Add(r.cfg.drainTimeout())
	if buf == nil { // called from ppReply, whose caller's buffer is in use: drain on the next event
		return
	}
	r.ppDrain(c, buf, byFD)
}

// ppDrain reads and drops what is there on a closing c; at the server's
// FIN, or an error, c is closed.
func (r *runner) ppDrain(c *ppConn, buf []byte, byFD map[int]*ppConn) {
	for {
		n, errno := rawsys.Read(c.fd, buf)
		switch {
		case n > 0 || errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return
		}
		r.ppClose(c, nil, byFD) // the server's FIN, or an error
		return
	}
}

// ppClose closes c for good, reading first what is unread (when buf is
// given), since unread bytes make the close send a RST.
func (r *runner) ppClose(c *ppConn, buf []byte, byFD map[int]*ppConn) {
	if buf != nil {
		for {
			n, errno := rawsys.Read(c.fd, buf)
			if n <= 0 && errno != unix.EINTR {
				break
			}
		}
	}
	delete(byFD, c.fd)
	unix.Close(c.fd)
	c.fd = -1
	c.state = ppDone
}

// ppFlush writes what is left of the request; the rest waits for EPOLLOUT.
func (r *runner) ppFlush(c *ppConn, byFD map[int]*ppConn) {
	for len(c.out) > 0 {
		// write(2), the cheapest send: Go programs ignore the SIGPIPE a
		// write to a reset socket raises (it fails with EPIPE instead).
		n, errno := rawsys.Write(c.fd, c.out)
		switch errno {
		case 0:
		case unix.EAGAIN:
			return
		case unix.EINTR:
			continue
		default:
			r.ppFail(c, c.seq, &OpError{Op: "send", Err: errno}, byFD)
			return
		}
		c.out = c.out[n:]
	}
}

// ppFail counts a failed exchange and closes c, to reconnect shortly: a
// refused or full server must not make the loop spin.
func (r *runner) ppFail(c *ppConn, seq int64, err error, byFD map[int]*ppConn) {
	r.rec.fail(c.w, seq, err)
	delete(byFD, c.fd)
	unix.Close(c.fd)
	c.fd = -1
	c.state = ppDown
	c.retry = time.Now().Add(10 * time.Millisecond)
}

// ppConnect starts a nonblocking connect for c.
func (r *runner) ppConnect(ep int, sa unix.Sockaddr, c *ppConn, byFD map[int]*ppConn) {
	domain := unix.AF_INET
	switch sa.(type) {
	case *unix.SockaddrInet6:
		domain = unix.AF_INET6
	case *unix.SockaddrUnix:
		domain = unix.AF_UNIX
	}
	c.start = time.Now()
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		c.fd = -1
		r.rec.fail(c.w, r.rec.connectSeq(), &OpError{Op: "connect", Err: err})
		c.state, c.retry = ppDown, time.Now().Add(10*time.Millisecond)
		return
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as Go's net does
	c.fd, c.state = fd, ppConnecting
	byFD[fd] = c
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.ppFail(c, r.rec.connectSeq(), &OpError{Op: "connect", Err: err}, byFD)
		return
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		r.ppFail(c, r.rec.connectSeq(), &OpError{Op: "connect", Err: err}, byFD)
	}
}

// sockaddr resolves a host:port, or a Unix socket's path, to a socket
// address, once.
func sockaddr(network, addr string) (unix.Sockaddr, error) {
	if network == "unix" {
		return &unix.SockaddrUnix{Name: addr}, nil
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ip4)
		return sa, nil
	}
	if len(ta.IP) != net.IPv6len {
		return nil, errors.New("no IP address")
	}
	sa := &unix.SockaddrInet6{Port: ta.Port}
	copy(sa.Addr[:], ta.IP)
	return sa, nil
}

// sockAddr turns a socket's address as the kernel gives it into a
// net.Addr, for Config.Header; nil if it cannot.
func sockAddr(sa unix.Sockaddr, err error) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}
