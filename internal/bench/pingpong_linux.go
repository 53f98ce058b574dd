package bench

import (
	"bytes"
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
	w      int // the connection's number
	fd     int
	state  uint8
	seq    int64
	start  time.Time // when the exchange in flight was sent
	got    int       // reply bytes so far
	out    []byte    // the unsent rest of the request
	msg    []byte
	retry  time.Time // when to reconnect, while down
	prefix []byte    // Expect's bytes still to match
}

const (
	ppConnecting = iota
	ppWaiting    // request sent, reply awaited
	ppDown       // failed; reconnects at retry
	ppDone
)

// epollLoops reports whether pingpong runs on epoll loops here.
func (r *runner) epollLoops() bool {
	return r.cfg.Mode == PingPong && r.interval == 0 && r.cfg.Prepare == nil
}

// pingpongLoop drives connections l, l+loops, l+2·loops... until the run
// is over.
func (r *runner) pingpongLoop(l, loops int) {
	sa, err := sockaddr(r.cfg.Addr)
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
		c := &ppConn{w: w, fd: -1, msg: r.msg.appendTo(nil, 0, w)}
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
		select {
		case <-r.stop:
			return
		default:
		}
		// Under load events are nearly always ready: look without the
		// scheduler's bookkeeping first, and block (20 ms at most, to see
		// the end of the run) only when nothing is.
		n, errno := rawsys.EpollPoll(ep, events)
		var err error
		if errno != 0 {
			err = errno
		}
		if n == 0 && err == nil {
			n, err = unix.EpollWait(ep, events, 20)
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
		if now.Sub(lastSweep) < 10*time.Millisecond {
			continue
		}
		lastSweep = now
		live := 0
		for _, c := range conns {
			switch {
			case c.state == ppDown && now.After(c.retry):
				r.ppConnect(ep, sa, c, byFD)
			case c.state == ppWaiting && now.Sub(c.start) > r.cfg.replyTimeout():
				r.ppFail(c, c.seq, timeoutError{}, byFD)
			}
			if c.state != ppDone {
				live++
			}
		}
		if live == 0 {
			return
		}
	}
}

// ppEvent handles readiness of c.
func (r *runner) ppEvent(ep int, c *ppConn, ev uint32, buf []byte, byFD map[int]*ppConn) {
	if c.state == ppConnecting {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || errno != 0 {
			if err == nil {
				err = unix.Errno(errno)
			}
			r.ppFail(c, 1, err, byFD) // a failed connect counts while measuring
			return
		}
		r.ppSend(c, byFD)
		return
	}
	if c.state != ppWaiting {
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
			err = io.EOF
		}
		r.ppFail(c, c.seq, err, byFD)
		return
	}
}

// ppReply takes reply bytes; a complete reply ends the exchange, and the
// next is sent at once (a closed loop). It reports whether the reply was
// complete.
func (r *runner) ppReply(c *ppConn, p []byte, byFD map[int]*ppConn) bool {
	want := len(r.cfg.Expect)
	if r.cfg.ExpectLen > 0 {
		want = r.cfg.ExpectLen
	}
	if r.cfg.Expect != nil {
		if len(p) > len(c.prefix) || !bytes.Equal(p, c.prefix[:len(p)]) {
			r.ppFail(c, c.seq, errWrong, byFD)
			return false
		}
		c.prefix = c.prefix[len(p):]
	}
	c.got += len(p)
	switch {
	case want > 0 && c.got > want:
		r.ppFail(c, c.seq, errWrong, byFD)
		return false
	case want > 0 && c.got < want:
		return false
	}
	r.rec.record(c.w, c.seq, time.Since(c.start), 0)
	r.ppSend(c, byFD)
	return true
}

// ppSend starts c's next exchange, or retires c when the run is over.
func (r *runner) ppSend(c *ppConn, byFD map[int]*ppConn) {
	var own int64
	seq, _, ok := r.take(c.w, &own)
	if !ok {
		c.state = ppDone
		delete(byFD, c.fd)
		unix.Close(c.fd)
		c.fd = -1
		return
	}
	if !r.msg.static() {
		c.msg = r.msg.appendTo(c.msg[:0], seq, c.w)
	}
	c.seq, c.got, c.prefix, c.out = seq, 0, r.cfg.Expect, c.msg
	c.state = ppWaiting
	c.start = time.Now()
	r.ppFlush(c, byFD)
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
			r.ppFail(c, c.seq, errno, byFD)
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
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		c.fd = -1
		r.ppFail(c, 1, err, byFD)
		return
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as Go's net does
	c.fd, c.state = fd, ppConnecting
	byFD[fd] = c
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.ppFail(c, 1, err, byFD)
		return
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		r.ppFail(c, 1, err, byFD)
	}
}

// sockaddr resolves a host:port to a socket address, once.
func sockaddr(addr string) (unix.Sockaddr, error) {
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

// timeoutError is the error of a reply that took too long on epoll.
type timeoutError struct{}

func (timeoutError) Error() string   { return "reply timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
