package relay

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// An spair is a pair on the splice path: the client's socket and the
// target's, and a direction (a pipe while bytes are in it) each way.
type spair struct {
	id       uint64
	slot     int32
	state    uint8
	fd       [2]int // by side (Client, Target); -1 once closed
	ready    [2]uint8
	dirs     [2]sdir // by Dir: Up reads the client and writes the target
	client   netip.AddrPort
	opened   int64 // monoNow when accepted
	active   int64 // monoNow of the last bytes moved
	deadline int64 // connecting: give up then; open, after an idle end: close then; 0: none

	// How it ended.
	err     error
	errLeg  Leg
	cause   string
	dialErr error
}

// The states of an spair.
const (
	connecting = iota + 1
	open
)

// What a side is ready for, as epoll last said: set by its events,
// cleared when a call finds it not so (EAGAIN, or a short read). hup
// says its FIN or an error came: no short read means the socket is empty
// any more, as the FIN's edge was already reported.
const (
	canRead = 1 << iota
	canWrite
	hup
)

// An sdir is one direction of an spair.
type sdir struct {
	pipe   [2]int // read and write ends, while inPipe > 0 (or about to be)
	piped  bool   // pipe is taken
	inPipe int    // bytes in the pipe
	eof    bool   // the source's FIN was read
	shut   bool   // the FIN went on (or the destination is shut for good)
	bulk   bool   // a read filled the loop's buffer: splice from now on
	sent   int64  // bytes written to the destination
}

// pipeRead is how much one splice takes from a socket: a pipe's default
// capacity, 16 pages.
const pipeRead = 64 << 10

// maxRounds bounds the splices of one direction per event, so that one
// busy pair does not hold up the loop's others; it goes on after them.
const maxRounds = 16

// startPair takes a client on, and starts connecting to the target.
func (l *sloop) startPair(cfd int, raddr netip.AddrPort) {
	s := l.s
	p := &spair{id: s.lastID.Add(1), fd: [2]int{cfd, -1}, client: raddr, opened: l.now, active: l.now}
	l.add(p)
	locked := s.reserve.Lock()
	tfd, err := unix.Socket(s.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	s.reserve.Unlock(locked)
	if err != nil {
		l.dialFailed(p, err)
		return
	}
	p.fd[Target] = tfd
	if s.family != unix.AF_UNIX {
		rawSetsockoptInt(tfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	errno := rawConnect(tfd, l.sa)
	if errno == unix.EINTR {
		errno = unix.EINPROGRESS // it goes on in the background, as after EINPROGRESS
	}
	if errno != 0 && errno != unix.EINPROGRESS { // a Unix socket: ENOENT, ECONNREFUSED, EAGAIN (its backlog is full)
		l.dialFailed(p, errno)
		return
	}
	// Registered after the connect, so that what epoll reports first is
	// its outcome; edge-triggered, both ways, for good.
	events := uint32(unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET)
	for side := range 2 {
		if errno := rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, p.fd[side], events, tagPair+2*p.slot+int32(side)); errno != 0 {
			l.dialFailed(p, errno)
			return
		}
	}
	if errno == 0 { // a Unix socket connects at once
		l.connected(p)
		return
	}
	p.state = connecting
	if s.ConnectTimeout > 0 {
		p.deadline = l.now + int64(s.ConnectTimeout)
	}
}

// connectDone is told that the target's socket is writable or failed
// while connecting: writable alone, it is connected.
func (l *sloop) connectDone(p *spair, events uint32) {
	if events&(unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		l.connected(p)
		return
	}
	errno, err := unix.GetsockoptInt(p.fd[Target], unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		l.dialFailed(p, err)
	case errno != 0:
		l.dialFailed(p, syscall.Errno(errno))
	default:
		l.connected(p)
	}
}

// dialFailed ends a pair whose target could not be connected to: the
// client's connection is reset, as the refusal was.
func (l *sloop) dialFailed(p *spair, err error) {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError("connect", errno)
	}
	p.dialErr = &net.OpError{Op: "dial", Net: l.s.Network, Addr: l.s.target, Err: err}
	l.closePair(p, true, false)
}

// connected starts relaying: the PROXY header first, if asked for.
func (l *sloop) connected(p *spair) {
	s := l.s
	p.state, p.deadline = open, 0
	// p.ready is what epoll said so far: both sockets are registered
	// edge-triggered, and registering reports what they are ready for
	// then, so nothing need be tried that would find EAGAIN.
	if s.SendProxy > 0 {
		hdr := proxyHeader(s.SendProxy, clientAddr(p.client, s.family), sockName(p.fd[Client]))
		if n, errno := rawsys.Write(p.fd[Target], hdr); errno != 0 || n < len(hdr) {
			p.err, p.errLeg = os.NewSyscallError("write", errnoOr(errno, unix.EAGAIN)), Target
			l.closePair(p, true, true)
			return
		}
	}
	if s.OnOpen != nil {
		s.OnOpen(p.id, clientAddr(p.client, s.family), s.target, sockName(p.fd[Target]))
	}
	l.pump(p)
}

func errnoOr(e, or syscall.Errno) syscall.Errno {
	if e != 0 {
		return e
	}
	return or
}

// sockName is fd's own address, for logs.
func sockName(fd int) net.Addr {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
	case *unix.SockaddrInet6:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)))
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

// pump moves what it can both ways, and closes the pair once both FINs
// went on, or one side broke.
func (l *sloop) pump(p *spair) {
	again := false
	for _, d := range []Dir{Up, Down} {
		if l.pairs[p.slot] != p {
			return // closed: a side broke
		}
		again = l.pumpDir(p, d) || again
	}
	if p.dirs[Up].shut && p.dirs[Down].shut && p.dirs[Up].eof && p.dirs[Down].eof {
		l.closePair(p, false, false) // both FINs went on: the 4-way handshake, relayed
		return
	}
	if again {
		l.pending = append(l.pending, p)
	}
}

// pumpDir moves bytes from d's source to its destination through the
// pipe until one of the two has to wait, and passes the FIN on. It
// reports whether it stopped at maxRounds with more to do.
func (l *sloop) pumpDir(p *spair, d Dir) bool {
	src, dst := Client, Target
	if d == Down {
		src, dst = Target, Client
	}
	x := &p.dirs[d]
	for range maxRounds {
		if x.inPipe > 0 {
			if p.ready[dst]&canWrite == 0 {
				return false
			}
			n, errno := splice(x.pipe[0], p.fd[dst], x.inPipe)
			switch {
			case errno == unix.EINTR:
				continue
			case errno == unix.EAGAIN:
				p.ready[dst] &^= canWrite
				return false
			case errno != 0:
				l.broke(p, Leg(dst), "write", errno)
				return false
			}
			x.inPipe -= n
			x.sent += int64(n)
			p.active = l.now
			continue
		}
		if x.piped { // empty: another pair may use it
			l.putPipe(x.pipe)
			x.piped = false
		}
		if x.eof {
			if !x.shut {
				x.shut = true
				if other := &p.dirs[1-d]; other.eof && other.shut {
					return false // the last FIN: closing both sends it, one system call less
				}
				if errno := rawsys.Shutdown(p.fd[dst], unix.SHUT_WR); errno != 0 && errno != unix.ENOTCONN {
					l.broke(p, Leg(dst), "shutdown", errno)
				}
			}
			return false
		}
		if p.ready[src]&canRead == 0 {
			return false
		}
		if x.shut { // ended for idleness: what comes now is dropped
			if !l.discard(p, Leg(src)) {
				return false
			}
			x.eof = true
			continue
		}
		if !x.bulk {
			if !l.copySmall(p, d, src, dst) {
				return false
			}
			continue
		}
		pipe, err := l.getPipe()
		if err != nil {
			p.cause = "the relay is out of file descriptors for pipes"
			l.closePair(p, true, true)
			return false
		}
		n, errno := splice(p.fd[src], pipe[1], pipeRead)
		if n == 0 {
			l.putPipe(pipe) // still empty: an idle pair holds no pipe
		}
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN: // the pipe is empty, so it is the socket that is
			p.ready[src] &^= canRead
			return false
		case errno != 0:
			l.broke(p, Leg(src), "read", errno)
			return false
		case n == 0:
			x.eof = true
			continue
		}
		x.pipe, x.piped, x.inPipe = pipe, true, n
		p.active = l.now
	}
	return true
}

// copySmall moves one read of d's source to its destination through the
// loop's buffer, and reports whether to go on. Splicing a few bytes
// costs more than reading and writing them: a pipe's pages and locks
// for each, and one more call to learn that the socket is empty, which
// a short read says for free. So a direction copies until a read fills
// the buffer (64 KiB: a stream), and splices from then on. What the
// destination does not take at once goes into the pipe, to be spliced
// out as it takes more: the pipe is the direction's buffer either way.
func (l *sloop) copySmall(p *spair, d Dir, src, dst Leg) bool {
	x := &p.dirs[d]
	n, errno := rawsys.Read(p.fd[src], l.buf)
	switch {
	case errno == unix.EINTR:
		return true
	case errno == unix.EAGAIN:
		p.ready[src] &^= canRead
		return false
	case errno != 0:
		l.broke(p, src, "read", errno)
		return false
	case n == 0:
		x.eof = true
		return true
	}
	p.active = l.now
	if n == len(l.buf) {
		x.bulk = true
	} else if p.ready[src]&hup == 0 {
		p.ready[src] &^= canRead // a short read: the socket is empty
	}
	w := 0
	for p.ready[dst]&canWrite != 0 && w < n {
		m, errno := rawsys.Write(p.fd[dst], l.buf[w:n])
		if errno == unix.EINTR {
			continue
		}
		if errno == unix.EAGAIN {
			p.ready[dst] &^= canWrite
			break
		}
		if errno != 0 {
			l.broke(p, dst, "write", errno)
			return false
		}
		w += m
	}
	x.sent += int64(w)
	if w == n {
		return true
	}
	pipe, err := l.getPipe()
	if err != nil {
		p.cause = "the relay is out of file descriptors for pipes"
		l.closePair(p, true, true)
		return false
	}
	if m, errno := rawsys.Write(pipe[1], l.buf[w:n]); errno != 0 || m != n-w { // an empty pipe takes 64 KiB
		unix.Close(pipe[0])
		unix.Close(pipe[1])
		p.cause = "the relay could not hold what the other side had not taken"
		l.closePair(p, true, true)
		return false
	}
	x.pipe, x.piped, x.inPipe = pipe, true, n-w
	return true
}

// discard reads and drops what side sends, after an idle end, and
// reports whether its FIN came.
func (l *sloop) discard(p *spair, side Leg) bool {
	for {
		n, errno := rawsys.Read(p.fd[side], l.buf)
		switch {
		case errno == unix.EINTR:
		case errno == unix.EAGAIN:
			p.ready[side] &^= canRead
			return false
		case errno != 0:
			l.broke(p, side, "read", errno)
			return false
		case n == 0:
			return true
		}
	}
}

// broke ends a pair one of whose sides failed: the other is reset, as
// it would have been without the relay.
func (l *sloop) broke(p *spair, side Leg, op string, errno syscall.Errno) {
	if p.err == nil && p.cause == "" {
		p.err, p.errLeg = &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}, side
	}
	other := Target
	if side == Target {
		other = Client
	}
	var reset [2]bool
	reset[other] = true
	l.closePair(p, reset[Client], reset[Target])
}

// idle ends a pair that moved nothing for the idle timeout: a FIN both
// ways; it is closed when both FINs come back, or one idle period
// later.
func (l *sloop) idle(p *spair) {
	p.cause = "nothing relayed either way for " + l.s.IdleTimeout.String() + " (--idle-timeout)"
	for _, d := range []Dir{Up, Down} {
		x := &p.dirs[d]
		dst := Target
		if d == Down {
			dst = Client
		}
		if !x.shut {
			x.shut = true
			rawsys.Shutdown(p.fd[dst], unix.SHUT_WR)
		}
		if x.piped { // what is left in it cannot go on
			unix.Close(x.pipe[0])
			unix.Close(x.pipe[1])
			x.piped, x.inPipe = false, 0
		}
	}
	p.deadline = l.now + int64(l.s.IdleTimeout)
	l.pump(p)
}

// closePair closes both sides, resetting those asked for, and reports
// the pair's end.
func (l *sloop) closePair(p *spair, resetClient, resetTarget bool) {
	for side, reset := range []bool{resetClient, resetTarget} {
		fd := p.fd[side]
		if fd < 0 {
			continue
		}
		if reset {
			rawLingerZero(fd)
		}
		rawsys.Close(fd) // and out of the epoll set
		p.fd[side] = -1
	}
	for d := range p.dirs {
		if x := &p.dirs[d]; x.piped {
			if x.inPipe == 0 {
				l.putPipe(x.pipe)
			} else {
				unix.Close(x.pipe[0])
				unix.Close(x.pipe[1])
			}
			x.piped = false
		}
	}
	l.s.reserve.Refill() // if it was lost at the limit, these fds' numbers make a new one
	l.pairs[p.slot] = nil
	l.free = append(l.free, p.slot)
	l.n--
	l.s.pairClosed()
	if l.s.OnClose != nil {
		e := End{ID: p.id, Client: clientAddr(p.client, l.s.family), Up: p.dirs[Up].sent, Down: p.dirs[Down].sent,
			Took: time.Duration(monoNow() - p.opened), DialErr: p.dialErr, Err: p.err, ErrLeg: p.errLeg, Cause: p.cause}
		if p.dialErr == nil {
			e.Target = l.s.target
		}
		l.s.OnClose(e)
	}
}

// splice moves up to n bytes from in to out without blocking; one of
// the two is a pipe. It is a raw system call, as the epoll engine's
// reads and writes are (see internal/rawsys): it never blocks here.
func splice(in, out, n int) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
		unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
