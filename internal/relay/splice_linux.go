package relay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// SpliceBuilt reports whether this system has the splice path.
const SpliceBuilt = true

// A Splicer relays pairs with splice(2), on event loops of its own: the
// bytes go from one socket into a pipe and from the pipe into the other
// socket inside the kernel, never copied into the process. It serves
// when nothing inspects the bytes (no toxics, dump or trace). Its
// sockets are its own, raw and nonblocking: tcpkit's engines read every
// socket they serve, and a socket being spliced must not be read. Set
// its fields before Serve.
type Splicer struct {
	Network, Address string        // the target: "tcp" and an IP:PORT, or "unix" and a path
	ConnectTimeout   time.Duration // give up connecting to the target after this long; 0: the system's
	IdleTimeout      time.Duration // end a pair that relays nothing either way for this long; 0: never
	MaxConns         int           // pairs open at once; one more is closed as it is accepted; 0: no cap
	SendProxy        int           // 1 or 2: send the target a PROXY header of that version first
	Loops            int           // event loops; 0: one per core (GOMAXPROCS)

	// OnOpen, if set, is told of each pair whose target connected: the
	// client's address, the target's, and ours toward it. OnClose, of
	// each pair's end; OnReject, of each client closed at MaxConns. They
	// run on a loop and must not block.
	OnOpen   func(id uint64, client, target, via net.Addr)
	OnClose  func(e End)
	OnReject func(remote net.Addr)

	target net.Addr      // the target, for logs
	sa     unix.Sockaddr // the target, to connect to
	family int
	lfd    int // the listener, duplicated: the loops accept on it
	lastID atomic.Uint64
	open   atomic.Int64 // pairs open, on every loop

	mu         sync.Mutex
	loops      []*sloop
	stopped    bool          // StopAccepting was called
	accepting  int           // loops still accepting
	unlistened chan struct{} // closed once no loop accepts: Serve returns
	empty      chan struct{} // closed when the last pair closes, for Wait
	wg         sync.WaitGroup
}

// Serve relays the connections ln accepts until StopAccepting; then it
// closes ln and returns nil. The pairs open then go on until they end,
// or until Cut.
func (s *Splicer) Serve(ln net.Listener) error {
	defer ln.Close()
	if err := s.resolve(); err != nil {
		return err
	}
	lfd, err := dupListener(ln)
	if err != nil {
		return err
	}
	if _, ok := ln.(*net.TCPListener); ok {
		// Accepted sockets inherit it: no Nagle delay on what is relayed.
		unix.SetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	s.mu.Lock()
	if s.stopped || s.loops != nil {
		s.mu.Unlock()
		unix.Close(lfd)
		return nil
	}
	s.lfd = lfd
	n := s.Loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for range n {
		l, err := newSloop(s)
		if err != nil {
			for _, l := range s.loops {
				l.closeFDs()
			}
			s.loops = nil
			s.mu.Unlock()
			unix.Close(lfd)
			return err
		}
		s.loops = append(s.loops, l)
	}
	s.accepting = n
	s.unlistened = make(chan struct{})
	unlistened := s.unlistened
	for _, l := range s.loops {
		if err := l.listen(); err != nil {
			panic(fmt.Sprintf("tcpkit relay: epoll_ctl on the listener: %v", err)) // a listening socket: cannot fail
		}
		s.wg.Add(1)
		go l.run()
	}
	s.mu.Unlock()
	<-unlistened
	return nil
}

// resolve turns Address into the socket address to connect to.
func (s *Splicer) resolve() error {
	if s.Network == "unix" {
		s.sa, s.family, s.target = &unix.SockaddrUnix{Name: s.Address}, unix.AF_UNIX, &net.UnixAddr{Name: s.Address, Net: "unix"}
		return nil
	}
	ap, err := netip.ParseAddrPort(s.Address)
	if err != nil {
		return fmt.Errorf("tcpkit relay: the splice path needs the target's IP address, not %q", s.Address)
	}
	s.target = net.TCPAddrFromAddrPort(ap)
	if ap.Addr().Is4() {
		s.sa, s.family = &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}, unix.AF_INET
	} else {
		s.sa, s.family = &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}, unix.AF_INET6
	}
	return nil
}

func dupListener(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("tcpkit relay: %T has no file descriptor to splice from", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(lfd uintptr) { fd, derr = unix.FcntlInt(lfd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, derr
}

// StopAccepting stops taking connections at once (a client that comes
// now is refused) and lets the open pairs go on; Serve returns.
func (s *Splicer) StopAccepting() {
	s.mu.Lock()
	s.stopped = true
	loops := s.loops
	if loops != nil {
		unix.Shutdown(s.lfd, unix.SHUT_RD) // refused from now on, not queued and then reset
	}
	s.mu.Unlock()
	for _, l := range loops {
		l.post(func(l *sloop) { l.unlisten() })
	}
}

// unlistened is told by a loop that it no longer accepts; the last one
// closes the listener.
func (s *Splicer) unlistenedLoop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accepting--; s.accepting == 0 {
		unix.Close(s.lfd)
		close(s.unlistened)
	}
}

// Open returns the number of pairs open.
func (s *Splicer) Open() int { return int(s.open.Load()) }

// Wait returns once no pair is open, or with ctx's error. Call it after
// StopAccepting.
func (s *Splicer) Wait(ctx context.Context) error {
	s.mu.Lock()
	if s.open.Load() == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.empty == nil {
		s.empty = make(chan struct{})
	}
	empty := s.empty
	s.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pairClosed counts a pair out.
func (s *Splicer) pairClosed() {
	if s.open.Add(-1) == 0 {
		s.mu.Lock()
		if s.empty != nil && s.open.Load() == 0 {
			close(s.empty)
			s.empty = nil
		}
		s.mu.Unlock()
	}
}

// Cut resets both sides of every open pair, giving cause as the reason.
func (s *Splicer) Cut(cause string) {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		l.post(func(l *sloop) {
			for _, p := range l.pairs {
				if p != nil {
					p.cause = cause
					l.closePair(p, true, true)
				}
			}
		})
	}
}

// Close stops the loops once they have no pair left; Serve must have
// returned (StopAccepting), and Wait or Cut ended the pairs.
func (s *Splicer) Close() {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		l.post(func(l *sloop) { l.stopping = true })
	}
	s.wg.Wait()
}

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
		fd, raddr, errno := rawsys.Accept(l.s.lfd)
		switch errno {
		case 0:
		case unix.EAGAIN, unix.EINVAL: // EINVAL: StopAccepting shut the listener
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		default: // EMFILE, ENFILE, ENOBUFS: stop accepting for a moment rather than spin
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.s.lfd, nil)
			l.backoff = monoNow() + int64(50*time.Millisecond)
			return
		}
		if max := l.s.MaxConns; max > 0 && l.s.open.Add(1) > int64(max) {
			l.s.open.Add(-1)
			unix.Close(fd)
			if l.s.OnReject != nil {
				l.s.OnReject(clientAddr(raddr, l.s.family))
			}
			continue
		} else if max <= 0 {
			l.s.open.Add(1)
		}
		l.startPair(fd, raddr)
	}
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
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
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
