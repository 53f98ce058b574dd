package relay

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// An sloop is one of a Splicer's event loops: a goroutine that waits on
// an epoll set of its own, parked in the Go runtime's poller between
// events (as tcpkit's epoll engine does: see epoll_loop_linux.go).
type sloop struct {
	s      *Splicer
	sa     *rawAddr // the target's, laid out for connect(2)
	epfd   int
	wakefd int
	file   *os.File // epfd, in the runtime's poller
	raw    syscall.RawConn
	stepFn func(uintptr) bool
	events []unix.EpollEvent
	buf    []byte // where a direction's small reads go, on their way to the destination (see pumpDir)

	// Owned by the loop goroutine.
	accepting bool
	pairs     []*spair // by slot
	free      []int32
	n         int      // pairs on this loop
	pending   []*spair // to pump again without waiting for an event
	pipes     [][2]int // spare empty pipes
	backoff   int64    // accepting paused (out of fds) until then
	sweepAt   int64    // when the timeouts are looked at next; 0 for never
	deadline  int64    // the deadline set on file; 0 for none
	stopping  bool     // Close was called: exit once no pair is left
	exiting   bool
	now       int64 // monoNow at the start of the step

	mu    sync.Mutex
	tasks []func(*sloop)
	woken bool
}

// Tags in the epoll events' Pad: the wakeup eventfd, the listener, or a
// pair's side: tagPair + 2*slot + side.
const (
	tagWake   = 0
	tagListen = 1
	tagPair   = 2
)

func newSloop(s *Splicer) (*sloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	l := &sloop{s: s, sa: newRawAddr(s.sa), epfd: epfd, wakefd: wakefd, events: make([]unix.EpollEvent, 256)}
	if errno := rawsys.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, unix.EPOLLIN, tagWake); errno != 0 {
		l.closeFDs()
		return nil, errno
	}
	if err := unix.SetNonblock(epfd, true); err != nil { // for the runtime's poller
		l.closeFDs()
		return nil, err
	}
	l.file = os.NewFile(uintptr(epfd), "epoll")
	if l.raw, err = l.file.SyscallConn(); err != nil {
		l.closeFDs()
		return nil, err
	}
	l.stepFn = l.step
	l.buf = make([]byte, pipeRead)
	return l, nil
}

func (l *sloop) closeFDs() {
	if l.file != nil {
		l.file.Close()
	} else {
		unix.Close(l.epfd)
	}
	unix.Close(l.wakefd)
}

func (l *sloop) listen() error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.s.lfd), Pad: tagListen}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.s.lfd, &ev); err != nil {
		return err
	}
	l.accepting = true
	return nil
}

func (l *sloop) unlisten() {
	if !l.accepting {
		return
	}
	l.accepting = false
	if l.backoff == 0 {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.s.lfd, nil)
	}
	l.backoff = 0
	l.s.unlistenedLoop()
}

// post hands the loop a task and wakes it.
func (l *sloop) post(f func(*sloop)) {
	l.mu.Lock()
	l.tasks = append(l.tasks, f)
	if !l.woken {
		l.woken = true
		one := [8]byte{1}
		rawsys.Write(l.wakefd, one[:])
	}
	l.mu.Unlock()
}

// run is the loop's goroutine: step, run as the callback of a read on
// the epoll fd, handles what is ready and returns false to park until
// the epoll fd has events or the deadline (the next sweep) passes.
func (l *sloop) run() {
	defer l.s.wg.Done()
	for {
		if l.deadline != 0 && l.deadline <= monoNow() {
			l.file.SetReadDeadline(time.Time{})
			l.deadline = 0
		}
		err := l.raw.Read(l.stepFn)
		if l.exiting {
			l.closeFDs()
			for _, p := range l.pipes {
				unix.Close(p[0])
				unix.Close(p[1])
			}
			return
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			panic(fmt.Sprintf("tcpkit relay: waiting on epoll: %v", err)) // EBADF: a bug of ours
		}
	}
}

func (l *sloop) step(uintptr) bool {
	for {
		l.now = monoNow()
		l.chores()
		if l.stopping && l.n == 0 && !l.accepting {
			l.exiting = true
			return true
		}
		n, errno := rawsys.EpollPoll(l.epfd, l.events)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			panic(fmt.Sprintf("tcpkit relay: epoll_wait: %v", errno))
		}
		for i := range n {
			ev := &l.events[i]
			l.handle(ev.Pad, ev.Events)
		}
		if n == len(l.events) || len(l.pending) > 0 {
			continue
		}
		if l.park() {
			return false
		}
	}
}

// chores runs the posted tasks, the pumps left over, and the sweep of
// the timeouts when it is due.
func (l *sloop) chores() {
	l.mu.Lock()
	tasks := l.tasks
	l.tasks = nil
	l.woken = false
	l.mu.Unlock()
	if len(tasks) > 0 {
		var v [8]byte
		rawsys.Read(l.wakefd, v[:])
	}
	for _, f := range tasks {
		f(l)
	}
	if len(l.pending) > 0 {
		pending := l.pending
		l.pending = nil
		for _, p := range pending {
			if l.pairs[p.slot] == p {
				l.pump(p)
			}
		}
	}
	if l.sweepAt != 0 && l.sweepAt <= l.now {
		l.sweep()
	}
	if l.backoff != 0 && l.backoff <= l.now {
		l.backoff = 0
		if l.accepting {
			l.listen()
		}
	}
}

// park reports whether the loop may sleep, and sets the epoll file's
// deadline to the next sweep.
func (l *sloop) park() bool {
	l.mu.Lock()
	busy := len(l.tasks) > 0
	l.mu.Unlock()
	if busy || l.stopping && l.n == 0 && !l.accepting {
		return false
	}
	next := int64(math.MaxInt64)
	if l.sweepAt != 0 {
		next = l.sweepAt
	}
	if l.backoff != 0 {
		next = min(next, l.backoff)
	}
	now := monoNow()
	if next <= now {
		return false
	}
	if next == math.MaxInt64 {
		next = 0
	}
	if next != l.deadline {
		if next == 0 {
			l.file.SetReadDeadline(time.Time{})
		} else {
			l.file.SetReadDeadline(time.Now().Add(time.Duration(next - now)))
		}
		l.deadline = next
	}
	return true
}

func (l *sloop) handle(tag int32, events uint32) {
	switch tag {
	case tagWake:
		return // chores reads it
	case tagListen:
		l.accept()
		return
	}
	slot, side := (tag-tagPair)/2, int(tag-tagPair)%2
	if int(slot) >= len(l.pairs) || l.pairs[slot] == nil {
		return // closed while the event waited
	}
	p := l.pairs[slot]
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.ready[side] |= canRead
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.ready[side] |= hup // the FIN (or an error) is in: read on to it, whatever a short read says
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.ready[side] |= canWrite
	}
	if p.state == connecting {
		if Leg(side) == Target && events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.connectDone(p, events)
		}
		return
	}
	l.pump(p)
}

// accept takes the clients waiting, a bounded number per event so that
// the loop's pairs are served too: the listener is level-triggered, and
// reports those left again.
func (l *sloop) accept() {
	if !l.accepting || l.backoff != 0 {
		return
	}
	for range 64 {
		locked := l.s.reserve.Lock()
		fd, raddr, errno := rawsys.Accept(l.s.lfd)
		l.s.reserve.Unlock(locked)
		switch errno {
		case 0:
		case unix.EAGAIN, unix.EINVAL: // EINVAL: StopAccepting shut the listener
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EMFILE, unix.ENFILE:
			if l.shed(errno) {
				continue
			}
			fallthrough
		default: // ENOBUFS, or no fd to shed with: stop accepting for a moment rather than spin
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.s.lfd, nil)
			l.backoff = monoNow() + int64(50*time.Millisecond)
			return
		}
		if max := l.s.MaxConns; max > 0 && l.s.open.Add(1) > int64(max) {
			l.s.open.Add(-1)
			unix.Close(fd)
			if l.s.OnReject != nil {
				l.s.OnReject(clientAddr(raddr, l.s.family), ErrTooManyPairs)
			}
			continue
		} else if max <= 0 {
			l.s.open.Add(1)
		}
		l.startPair(fd, raddr)
	}
}

// shed turns one waiting client away when the process is out of fds
// (cause): the reserve fd is closed so that the accept can take its
// number, the client is closed at once and reported, and the reserve
// is taken back. It reports whether accepting may go on: false when
// there was no reserve to give up.
func (l *sloop) shed(cause unix.Errno) bool {
	s := l.s
	var raddr netip.AddrPort
	var errno syscall.Errno
	shed := func() { // closed before the reserve is taken back, which needs its number
		var fd int
		if fd, raddr, errno = rawsys.Accept(s.lfd); errno == 0 {
			unix.Close(fd)
		}
	}
	if !s.reserve.Shed(shed) {
		return false
	}
	if errno == 0 {
		if s.OnReject != nil {
			s.OnReject(clientAddr(raddr, s.family), &net.OpError{Op: "accept", Net: s.laddr.Network(), Addr: s.laddr,
				Err: os.NewSyscallError("accept4", cause)})
		}
	}
	// EAGAIN: another loop took it; the next accept says so.
	return errno == 0 || errno == unix.EAGAIN || errno == unix.EINTR || errno == unix.ECONNABORTED
}

// clientAddr is a client's address for logs: a Unix socket's clients
// have none.
func clientAddr(ap netip.AddrPort, family int) net.Addr {
	if family == unix.AF_UNIX || !ap.IsValid() {
		return &net.UnixAddr{Net: "unix"}
	}
	return net.TCPAddrFromAddrPort(ap)
}

// add puts p in a free slot.
func (l *sloop) add(p *spair) {
	if n := len(l.free); n > 0 {
		p.slot = l.free[n-1]
		l.free = l.free[:n-1]
		l.pairs[p.slot] = p
	} else {
		p.slot = int32(len(l.pairs))
		l.pairs = append(l.pairs, p)
	}
	l.n++
	if l.sweepAt == 0 && (l.s.IdleTimeout > 0 || l.s.ConnectTimeout > 0) {
		l.sweepAt = l.now + int64(l.sweepEvery())
	}
}

// sweepEvery is how often the loop looks at its pairs' timeouts: an
// eighth of the shortest, between 10 ms and half a second. A timeout
// acts that much late at most.
func (l *sloop) sweepEvery() time.Duration {
	d := time.Duration(math.MaxInt64)
	for _, t := range []time.Duration{l.s.IdleTimeout, l.s.ConnectTimeout} {
		if t > 0 {
			d = min(d, t/8)
		}
	}
	return min(max(d, 10*time.Millisecond), 500*time.Millisecond)
}

// sweep acts on the timeouts that are due: a connect that takes too
// long, a pair idle too long, a pair that did not finish ending.
func (l *sloop) sweep() {
	for _, p := range l.pairs {
		if p == nil {
			continue
		}
		switch {
		case p.state == connecting && p.deadline != 0 && l.now >= p.deadline:
			l.dialFailed(p, os.ErrDeadlineExceeded)
		case p.state == open && p.deadline != 0 && l.now >= p.deadline: // ended for idleness, not answered
			l.closePair(p, true, true)
		case p.state == open && p.deadline == 0 && l.s.IdleTimeout > 0 && l.now-p.active >= int64(l.s.IdleTimeout):
			l.idle(p)
		}
	}
	l.sweepAt = 0
	if l.n > 0 {
		l.sweepAt = l.now + int64(l.sweepEvery())
	}
}

// getPipe takes a spare pipe, or makes one.
func (l *sloop) getPipe() ([2]int, error) {
	if n := len(l.pipes); n > 0 {
		p := l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return p, nil
	}
	var fds [2]int
	locked := l.s.reserve.Lock()
	err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC)
	l.s.reserve.Unlock(locked)
	if err != nil {
		return fds, err
	}
	return fds, nil
}

// putPipe keeps an empty pipe for the next pair, up to a few.
func (l *sloop) putPipe(p [2]int) {
	if len(l.pipes) < maxSparePipes {
		l.pipes = append(l.pipes, p)
		return
	}
	unix.Close(p[0])
	unix.Close(p[1])
}

// maxSparePipes is how many empty pipes a loop keeps: a pair takes a
// pipe only while bytes are in it, so an idle pair holds none.
const maxSparePipes = 64
