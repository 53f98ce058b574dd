package tcpkit

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

const epollBuilt = true

// The epoll engine: a few event loops, each a goroutine that waits in
// epoll_wait and serves many connections. A connection lives on the loop
// that accepted it. Sockets are registered edge-triggered for input and
// the peer's FIN, so pausing costs no epoll_ctl: the loop reads until a
// short read. Output is watched only while some is queued.
//
// What runs where: reads, callbacks, flushing queued output, timers and
// closing the fd happen on the loop. Write, End, Close and the rest may be
// called from any goroutine; they take the connection's mutex, write
// inline when nothing is queued, and post to the loop what only it may do.

// epServer is a Server's epoll state.
type epServer struct {
	loops     []*loop
	running   int                      // loops not yet exited; under Server.mu
	exited    chan struct{}            // closed when the last loop exits
	listeners map[*epListener]struct{} // under Server.mu

	reserveMu sync.Mutex
	reserve   int         // an fd held back to shed connections at the fd limit; -1 if none
	atLimit   atomic.Bool // the fd limit was met: accepts take reserveMu, so none takes the reserve's slot
}

// An epListener is a listening socket the loops accept on: a duplicate of
// the net.Listener's fd, so the runtime's poller never sees our accepts.
type epListener struct {
	fd   int
	ln   net.Listener
	left atomic.Int32  // loops it is still registered with
	done chan struct{} // closed when no loop accepts on it any more
}

// A loop is one event loop.
type loop struct {
	s      *Server
	epfd   int
	file   *os.File        // epfd, registered with the runtime's poller
	raw    syscall.RawConn // file's, to park on it
	wakefd int             // an eventfd: written to wake the loop from epoll_wait
	buf    []byte
	events []unix.EpollEvent

	// Owned by the loop goroutine.
	conns     []*Conn // by fd
	open      int     // connections on this loop
	listeners []*epListener
	pending   []*Conn            // connections to read again without waiting for an edge
	backoff   int64              // while accepting is paused after ENOBUFS/ENOMEM: until when
	deadline  int64              // the read deadline set on file, as a monotonic reading; 0 for none
	stepFn    func(uintptr) bool // step's method value, made once: parking allocates nothing
	more      bool               // events may be ready that will not wake the runtime's poller
	exiting   bool               // done said so: run exits once the read returns

	mu         sync.Mutex
	tasks      []task
	spare      []task // the drained task list, reused; the loop's own
	timers     timerHeap
	sleepUntil int64 // when epoll_wait will time out; math.MinInt64 while awake
	woken      bool  // the eventfd was written and not yet read
	exited     bool
}

type taskKind uint8

const (
	taskClose    taskKind = iota + 1 // the conn was closed: release its fd, report OnClose
	taskRead                         // reading may resume (Resume)
	taskShutdown                     // Server.Shutdown: end the conn gracefully
	taskListen                       // start accepting on a listener
	taskUnlisten                     // stop accepting on it
)

type task struct {
	kind taskKind
	c    *Conn
	ln   *epListener
}

// maxReadsPerEvent bounds how many full buffers one connection may read
// before the loop serves the others; it is read again in the next round.
const maxReadsPerEvent = 8

// loopBufferSize is each loop's shared read buffer: an OnData chunk is at
// most this, as with the standard engine's largest buffer.
const loopBufferSize = MaxReadBufferSize

// serveEpoll is Serve on the epoll engine.
func (s *Server) serveEpoll(ln net.Listener) error {
	if s.inShutdown.Load() {
		ln.Close()
		return ErrServerClosed
	}
	el, err := dupListener(ln)
	if err != nil {
		ln.Close()
		return err
	}
	if err := s.trackEpListener(ln, el); err != nil {
		unix.Close(el.fd)
		ln.Close()
		return err
	}
	defer s.untrackListener(ln)
	<-el.done
	return ErrServerClosed
}

// dupListener duplicates ln's socket for the loops. Its file status flags,
// O_NONBLOCK among them, are shared with the runtime's copy.
func dupListener(ln net.Listener) (*epListener, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%w: %T has no file descriptor", errNoEpoll, ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(lfd uintptr) {
		fd, derr = unix.FcntlInt(lfd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("tcpkit: duplicating the listener: %w", derr)
	}
	// Accepted sockets inherit TCP_NODELAY from the listener, as the
	// standard engine sets it on each: no Nagle delay on small replies.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return &epListener{fd: fd, ln: ln, done: make(chan struct{})}, nil
}

// trackEpListener registers ln and el, starting the loops on first use,
// and has the loops accept on el.
func (s *Server) trackEpListener(ln net.Listener, el *epListener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return ErrServerClosed
	}
	if s.ep == nil {
		ep, err := s.startLoops()
		if err != nil {
			return err
		}
		s.ep = ep
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	s.ep.listeners[el] = struct{}{}
	// The loops are told under s.mu: a Close or Shutdown that follows
	// posts its taskUnlisten after this taskListen, and no loop can exit
	// with the listener's task still waiting. Posted after s.mu, a Close in
	// between found no listener on the loops to unlisten, they exited, and
	// el.done was never closed: Serve hung.
	el.left.Store(int32(len(s.ep.loops)))
	for _, l := range s.ep.loops {
		l.post(task{kind: taskListen, ln: el})
	}
	return nil
}

func (s *Server) startLoops() (*epServer, error) {
	ep := &epServer{exited: make(chan struct{}), listeners: make(map[*epListener]struct{})}
	ep.takeReserveLocked()
	for range s.loopCount() {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range ep.loops {
				l.closeFDs()
			}
			if ep.reserve >= 0 {
				unix.Close(ep.reserve)
			}
			return nil, fmt.Errorf("tcpkit: starting an event loop: %w", err)
		}
		ep.loops = append(ep.loops, l)
	}
	ep.running = len(ep.loops)
	for _, l := range ep.loops {
		go l.run()
	}
	return ep, nil
}

// closeEpListenersLocked stops the loops accepting on every listener;
// s.mu is held.
func (s *Server) closeEpListenersLocked() {
	if s.ep == nil {
		return
	}
	for el := range s.ep.listeners {
		delete(s.ep.listeners, el)
		// Stop listening now, not when the loops get to it: a client
		// that connects from here on is refused, not accepted into a
		// backlog that is then reset. The fd stays open (no loop can
		// close it before the tasks below), so no accept meets a reused
		// number; accept4 fails with EINVAL until each loop lets go.
		unix.Shutdown(el.fd, unix.SHUT_RD)
		for _, l := range s.ep.loops {
			l.post(task{kind: taskUnlisten, ln: el})
		}
	}
	// Loops with nothing left to serve exit; wake them to look.
	for _, l := range s.ep.loops {
		l.post(task{})
	}
}

// waitLoops waits for the loops to exit, after Shutdown drained them.
func (s *Server) waitLoops() {
	s.mu.Lock()
	ep := s.ep
	s.mu.Unlock()
	if ep != nil {
		<-ep.exited
	}
}

func newLoop(s *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	l := &loop{s: s, epfd: epfd, wakefd: wakefd, sleepUntil: math.MinInt64}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	// The epoll fd goes into the runtime's poller (see wait): it must be
	// nonblocking for os.NewFile to register it.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	l.file = os.NewFile(uintptr(epfd), "epoll")
	raw, err := l.file.SyscallConn()
	if err != nil {
		l.closeFDs()
		return nil, err
	}
	l.raw = raw
	l.stepFn = l.step
	l.buf = make([]byte, loopBufferSize)
	l.events = make([]unix.EpollEvent, 256)
	return l, nil
}

func (l *loop) closeFDs() {
	l.file.Close() // the epoll fd
	unix.Close(l.wakefd)
}

// post hands the loop a task, waking it if it sleeps. Tasks posted after
// the loop exited are dropped: nothing is left for them to act on. But a
// listener handed to an exited loop (Close set inShutdown, and the loop
// found nothing to serve, between the loops' start and the listener's
// task) is let go at once, as the loop would have: Serve waits for every
// loop to let go of it.
func (l *loop) post(t task) {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		if t.kind == taskListen {
			l.unlisten(t.ln)
		}
		return
	}
	l.tasks = append(l.tasks, t)
	if l.sleepUntil != math.MinInt64 {
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// wakeLocked interrupts epoll_wait. It writes under l.mu, so the eventfd
// cannot be closed (and its number reused) in between.
func (l *loop) wakeLocked() {
	if l.woken {
		return
	}
	l.woken = true
	one := [8]byte{1} // added to the eventfd's counter; any count wakes the loop
	rawsys.Write(l.wakefd, one[:])
}

// schedule makes sure c's timers are looked at by the time due (a
// monotonic reading). An earlier entry stays: when it fires, the loop
// looks at c's timers and schedules the next one.
func (l *loop) schedule(c *Conn, due int64) {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		return
	}
	l.timers.set(c, due)
	if due < l.sleepUntil {
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// run is the loop's goroutine. The loop itself is step, run as the
// callback of a read on the loop's epoll fd, which is registered with the
// Go runtime's poller like any socket: step polls epoll without blocking
// and handles what it finds, and when nothing is left to do it returns
// false, which parks the goroutine in the runtime's poller until the
// epoll fd has events or the next timer is due (the read deadline).
// Parking there, rather than blocking a thread in epoll_wait, keeps the
// loop on its thread (the scheduler never hands its P to another thread
// while it sleeps) and makes it a goroutine like any other for the GC.
func (l *loop) run() {
	for {
		if l.deadline != 0 && l.deadline <= monoNow() { // a passed deadline fails the read at once
			l.file.SetReadDeadline(time.Time{})
			l.deadline = 0
		}
		err := l.raw.Read(l.stepFn)
		if l.exiting {
			l.exit()
			return
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			panic(fmt.Sprintf("tcpkit: waiting on epoll: %v", err)) // EBADF, EINVAL: a bug of ours
		}
	}
}

// step runs the loop until it may park (it returns false) or must exit
// (true, with l.exiting set). A read resumed after parking calls it again.
// After a batch of events it parks without polling again: whatever
// arrives during the batch wakes the runtime's poller, so the park ends at
// once. What is ready without a new wakeup (a full batch, a listener
// with connections left) sets l.more, and it polls again instead.
func (l *loop) step(uintptr) bool {
	for {
		l.chores()
		if l.done() {
			l.exiting = true
			return true
		}
		n, err := rawsys.EpollPoll(l.epfd, l.events)
		if err == unix.EINTR {
			continue
		}
		if err != 0 {
			panic(fmt.Sprintf("tcpkit: epoll_wait: %v", err)) // EBADF, EINVAL: a bug of ours
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			l.handle(int(ev.Fd), ev.Pad, ev.Events)
		}
		if n == len(l.events) || l.more {
			l.more = false
			continue
		}
		if l.park() {
			return false
		}
	}
}

// chores marks the loop awake and runs the posted tasks, the due timers
// and the reads left over from the last batch, taking l.mu once when
// there is nothing to do.
func (l *loop) chores() {
	now := monoNow()
	l.mu.Lock()
	l.sleepUntil = math.MinInt64
	tasks := l.tasks
	l.tasks = l.spare[:0]
	due := len(l.timers) > 0 && l.timers[0].ep.due <= now
	l.mu.Unlock()
	for i := range tasks {
		l.do(tasks[i])
		tasks[i] = task{}
	}
	l.spare = tasks // the loop's own: post appends to l.tasks only

	if due || l.backoff > 0 {
		l.fireTimers(monoNow())
	}
	if len(l.pending) > 0 {
		pending := l.pending
		l.pending = nil
		for _, c := range pending {
			l.read(c)
		}
	}
}

// park reports whether the loop may sleep: no task or read is waiting
// and no timer is due. If so it records until when, so that schedule and
// post know to wake it, and sets the epoll file's deadline to that time.
func (l *loop) park() bool {
	l.mu.Lock()
	if len(l.tasks) > 0 || len(l.pending) > 0 {
		l.mu.Unlock()
		return false
	}
	next := int64(math.MaxInt64)
	if len(l.timers) > 0 {
		next = l.timers[0].ep.due
	}
	if l.backoff > 0 {
		next = min(next, l.backoff)
	}
	now := monoNow()
	if next <= now {
		l.mu.Unlock()
		return false
	}
	l.sleepUntil = next
	l.mu.Unlock()
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

// handle dispatches one epoll event.
func (l *loop) handle(fd int, tag int32, events uint32) {
	if fd == l.wakefd {
		var v [8]byte
		rawsys.Read(fd, v[:])
		l.mu.Lock()
		l.woken = false
		l.mu.Unlock()
		return
	}
	if tag == listenerTag {
		for _, el := range l.listeners {
			if el.fd == fd {
				l.accept(el)
			}
		}
		return
	}
	if fd >= len(l.conns) || l.conns[fd] == nil {
		return // closed while the event waited
	}
	c := l.conns[fd]
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.ep.hup = true // the FIN (or an error) is in: read to the end, not to a short read
	}
	if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		l.flush(c)
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		l.read(c)
	}
}

const listenerTag = 1

// connEvents is what a connection is registered for: input and the peer's
// FIN, edge-triggered. Output is added only while some is queued
// (watchOutput): registered always, every ACK and state change would
// wake the loop for nothing.
const connEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

func (l *loop) do(t task) {
	switch t.kind {
	case taskClose:
		l.release(t.c)
	case taskRead:
		if !t.c.ep.released() {
			t.c.lastRead.Store(monoNow()) // the read timeout counts from now
			l.read(t.c)
			l.rearm(t.c, monoNow())
		}
	case taskShutdown:
		l.endGracefully(t.c)
	case taskListen:
		if l.backoff == 0 {
			if err := l.register(t.ln); err != nil {
				l.unlisten(t.ln) // cannot happen with a listening socket; do not hang Serve
				return
			}
		}
		l.listeners = append(l.listeners, t.ln)
	case taskUnlisten:
		for i, el := range l.listeners {
			if el == t.ln {
				l.listeners = append(l.listeners[:i], l.listeners[i+1:]...)
				unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, el.fd, nil)
				l.unlisten(el)
				break
			}
		}
	}
}

// unlisten drops this loop's hold on el; the last one closes it.
func (l *loop) unlisten(el *epListener) {
	if el.left.Add(-1) == 0 {
		unix.Close(el.fd)
		close(el.done)
	}
}

// done reports whether the loop has nothing left to do and exits it: the
// server is shutting down, and no connection or listener is left.
func (l *loop) done() bool {
	if !l.s.inShutdown.Load() || l.open > 0 || len(l.listeners) > 0 {
		return false
	}
	l.mu.Lock()
	if len(l.tasks) > 0 {
		l.mu.Unlock()
		return false
	}
	l.exited = true
	l.mu.Unlock()
	return true
}

// exit releases the loop's fds once done said so, outside the read on
// the epoll file (closing a file waits for its reads to return).
func (l *loop) exit() {
	l.closeFDs()
	s := l.s
	s.mu.Lock()
	s.ep.running--
	last := s.ep.running == 0
	s.mu.Unlock()
	if last {
		if s.ep.reserve >= 0 {
			unix.Close(s.ep.reserve)
		}
		close(s.ep.exited)
	}
}

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
		var err syscall.Errno
		if ep.atLimit.Load() {
			ep.reserveMu.Lock()
			fd, raddr, err = rawsys.Accept(el.fd)
			ep.reserveMu.Unlock()
		} else {
			fd, raddr, err = rawsys.Accept(el.fd)
		}
		switch err {
		case 0:
			l.open++ // before serve: release may follow at once
			l.serve(fd, raddr, el)
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
	ep := l.s.ep
	ep.atLimit.Store(true)
	ep.reserveMu.Lock()
	defer ep.reserveMu.Unlock()
	if ep.reserve < 0 && !ep.takeReserveLocked() {
		return false
	}
	unix.Close(ep.reserve)
	fd, raddr, err := rawsys.Accept(el.fd)
	if err == 0 {
		unix.Close(fd)
		l.s.reject(net.TCPAddrFromAddrPort(raddr), &net.OpError{Op: "accept", Net: "tcp", Addr: el.ln.Addr(), Err: os.NewSyscallError("accept4", cause)})
	}
	ep.takeReserveLocked()
	// EAGAIN: another loop took it; the caller's next accept says so.
	return err == 0 || err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNABORTED
}

// takeReserveLocked opens the reserve fd, if an fd is to be had.
func (ep *epServer) takeReserveLocked() bool {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		ep.reserve = -1
		return false
	}
	ep.reserve = fd
	return true
}

// serve takes on an accepted socket: the limits, the registration, and
// OnConnect.
func (l *loop) serve(fd int, raddr netip.AddrPort, el *epListener) {
	c := newEpConn(l, fd, raddr, el)
	if err := l.s.trackConn(c, false); err != nil {
		l.open--
		rawsys.Close(fd)
		if err != ErrServerClosed {
			l.s.reject(c.RemoteAddr(), err)
		}
		return
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*Conn, max(len(l.conns), 64))...)
	}
	l.conns[fd] = c
	if errno := rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, connEvents); errno != 0 {
		c.closeWith(os.NewSyscallError("epoll_ctl", errno))
		return
	}
	c.trace(TraceConnected, 0, nil)
	l.rearm(c, monoNow())
	c.call(c.ev.OnConnect)
	if l.s.inShutdown.Load() {
		l.endGracefully(c)
	}
}

// read reads what the peer sent and delivers it, until a short read says
// the socket is empty (the edge is consumed), or until the connection
// must stop reading (paused, backlogged: the next Resume or drain reads
// again). Once the peer's FIN was reported, a short read is not the end:
// the FIN's edge came already, so it reads on to EOF.
func (l *loop) read(c *Conn) {
	ep := c.ep
	if ep.eof || c.dead.Load() {
		return
	}
	if len(ep.partial) > 0 && !c.mustWait() && !l.deliverMessages(c, nil) { // messages a pause held back
		ep.waiting = c.mustWait()
		return
	}
	for i := 0; ; i++ {
		if c.mustWait() {
			ep.waiting = true
			return
		}
		ep.waiting = false
		if i == maxReadsPerEvent {
			l.pending = append(l.pending, c)
			return
		}
		n, errno := rawsys.Read(ep.fd, l.buf)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return
		case errno != 0:
			c.closeWith(c.opError("read", "read", errno))
			return
		case n == 0:
			ep.eof = true
			l.readEOF(c)
			return
		}
		c.gotBytes(n)
		if c.opt.Framing == Raw {
			l.deliver(c, l.buf[:n])
		} else if !l.deliverMessages(c, l.buf[:n]) {
			ep.waiting = c.mustWait()
			return
		}
		if c.dead.Load() || n < len(l.buf) && !ep.hup {
			return
		}
	}
}

// deliverMessages splits framed input into messages, keeping an
// unfinished one (in a buffer of its own, so an idle connection between
// messages holds none), and the rest when a callback paused the
// connection. It reports whether to read on.
func (l *loop) deliverMessages(c *Conn, p []byte) bool {
	ep := c.ep
	data := p
	if len(ep.partial) > 0 {
		ep.partial = append(ep.partial, p...)
		data = ep.partial
	}
	max := c.opt.maxMessage()
	for len(data) > 0 && !c.mustWait() {
		msg, used, err := c.opt.Framing.split(data, max)
		if err != nil {
			c.closeWith(err)
			return false
		}
		if used == 0 {
			break
		}
		data = data[used:]
		l.deliver(c, msg)
		if c.dead.Load() {
			return false
		}
	}
	if len(data) == 0 {
		ep.partial = nil
	} else {
		ep.partial = append(ep.partial[:0], data...) // copy handles the overlap
	}
	return !c.mustWait()
}

// readEOF handles the peer's FIN, after delivering an unfinished last
// line or failing on an unfinished message.
func (l *loop) readEOF(c *Conn) {
	if p := c.ep.partial; len(p) > 0 {
		c.ep.partial = nil
		if c.opt.Framing != Lines {
			c.closeWith(ErrTruncatedMessage)
			return
		}
		l.deliver(c, p)
		if c.dead.Load() {
			return
		}
	}
	c.peerFIN()
	l.rearm(c, monoNow()) // the read timeout stops; the idle one may go on
}

func (l *loop) deliver(c *Conn, p []byte) {
	if c.ev.OnData != nil {
		c.callData(p)
	}
	if c.ep.endOnFirst { // Shutdown was waiting for this first message
		c.ep.endOnFirst = false
		c.ep.grace = 0
		l.endNow(c)
	}
}

// endGracefully ends c for Shutdown, between callbacks as it runs on the
// loop; a connection that has sent nothing yet gets FirstMessageGrace.
func (l *loop) endGracefully(c *Conn) {
	if c.ep.released() {
		return
	}
	if c.BytesRead() == 0 {
		c.ep.endOnFirst = true
		c.ep.grace = monoNow() + int64(FirstMessageGrace)
		l.schedule(c, c.ep.grace)
		return
	}
	l.endNow(c)
}

func (l *loop) endNow(c *Conn) {
	c.dropInput.Store(true)
	c.End()
}

// flush writes queued output when the socket takes more; when it is all
// out, it sends a pending FIN, fires OnDrain, and reading resumes.
func (l *loop) flush(c *Conn) {
	c.mu.Lock()
	if c.closed || !c.flushing {
		c.mu.Unlock()
		return
	}
	wrote := 0
	for len(c.out) > 0 {
		n, errno := rawsys.Write(c.ep.fd, c.out)
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
	if wrote > 0 {
		c.bytesWritten.Add(int64(wrote))
		c.touch()
		if c.stallLimitLocked() > 0 {
			c.ep.progress = monoNow()
		}
	}
	if len(c.out) > 0 {
		c.mu.Unlock()
		c.traceWrote(wrote)
		return
	}
	c.out = nil // an idle connection keeps no buffer
	c.flushing = false
	c.ep.watchOutputLocked(false)
	drain := c.needDrain
	c.needDrain = false
	c.backlogged.Store(false)
	c.wakeDrainWaitersLocked()
	fin := c.ending && !c.finSent
	if fin {
		c.finSent = true
	}
	c.mu.Unlock()
	c.traceWrote(wrote)
	if fin {
		c.sendFIN()
	}
	if drain {
		c.call(c.ev.OnDrain)
	}
	if c.ep.waiting {
		c.lastRead.Store(monoNow())
		l.read(c)
	}
}

func (c *Conn) traceWrote(n int) {
	if n > 0 {
		c.trace(TraceWrite, n, nil)
	}
}

// fireTimers looks at the connections whose timers are due.
func (l *loop) fireTimers(now int64) {
	for {
		l.mu.Lock()
		if len(l.timers) == 0 || l.timers[0].ep.due > now {
			l.mu.Unlock()
			break
		}
		c := l.timers.pop()
		l.mu.Unlock()
		l.expire(c, now)
	}
	if l.backoff > 0 && now >= l.backoff {
		l.resumeAccepting()
	}
}

// expire acts on c's timers that are due, then schedules the next.
func (l *loop) expire(c *Conn, now int64) {
	if c.dead.Load() {
		return
	}
	ep := c.ep
	c.mu.Lock()
	lingered := c.finDone && !c.peerEnded && now-ep.finAt >= int64(c.opt.lingerTimeout())
	var stalled error
	if limit := c.stallLimitLocked(); c.flushing && limit > 0 && now-ep.progress >= int64(limit) {
		stalled = c.stallErrorLocked(limit)
	}
	c.mu.Unlock()
	switch {
	case lingered:
		c.closeWith(nil)
		return
	case stalled != nil:
		c.closeWith(stalled)
		return
	case l.reading(c) && c.opt.ReadTimeout > 0 && now-c.lastRead.Load() >= int64(c.opt.ReadTimeout):
		c.closeWith(fmt.Errorf("%w: nothing received for %v", ErrReadTimeout, c.opt.ReadTimeout))
		return
	}
	if ep.grace > 0 && now >= ep.grace {
		ep.grace = 0
		ep.endOnFirst = false
		l.endNow(c)
	}
	c.mu.Lock()
	fire := c.idleDueLocked(now)
	c.mu.Unlock()
	if fire {
		c.timedOut()
	}
	l.rearm(c, monoNow())
}

// reading reports whether c is reading, so that the read timeout runs.
func (l *loop) reading(c *Conn) bool { return !c.ep.eof && !c.mustWait() }

// rearm schedules c's earliest timer still to come, if any.
func (l *loop) rearm(c *Conn, now int64) {
	if c.dead.Load() {
		return
	}
	ep := c.ep
	next := int64(math.MaxInt64)
	c.mu.Lock()
	if c.finDone && !c.peerEnded {
		next = min(next, ep.finAt+int64(c.opt.lingerTimeout()))
	}
	if limit := c.stallLimitLocked(); c.flushing && limit > 0 {
		next = min(next, ep.progress+int64(limit))
	}
	if d := c.timeout.Load(); d > 0 && c.timerArmed.Load() {
		next = min(next, c.lastActive.Load()+d)
	}
	c.mu.Unlock()
	if rt := c.opt.ReadTimeout; rt > 0 && l.reading(c) {
		next = min(next, c.lastRead.Load()+int64(rt))
	}
	if ep.grace > 0 {
		next = min(next, ep.grace)
	}
	if next != math.MaxInt64 {
		l.schedule(c, max(next, now))
	}
}

// release closes c's fd and reports OnError and OnClose: the last of a
// connection, run on its loop once it was closed.
func (l *loop) release(c *Conn) {
	ep := c.ep
	c.mu.Lock()
	if ep.fd < 0 {
		c.mu.Unlock()
		return
	}
	fd := ep.fd
	ep.fd = -1
	err := c.err
	c.mu.Unlock()
	l.conns[fd] = nil
	if cutsOnClose(err) { // cut: reset, as abortOnClose does
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	rawsys.Close(fd)
	if ep := l.s.ep; ep.atLimit.Load() {
		ep.reserveMu.Lock()
		if ep.reserve < 0 { // lost at the limit: this fd's slot makes a new one
			ep.takeReserveLocked()
		}
		ep.reserveMu.Unlock()
	}
	l.mu.Lock()
	l.timers.remove(c)
	l.mu.Unlock()
	l.open--
	if err != nil {
		c.traceFailure(err)
	}
	c.trace(TraceClosed, 0, err)
	if err != nil && c.ev.OnError != nil {
		c.guard(func() { c.ev.OnError(c, err) })
	}
	if c.ev.OnClose != nil {
		c.guard(func() { c.ev.OnClose(c, err != nil) })
	}
	c.mu.Lock()
	ep.finished = true
	if c.done != nil {
		close(c.done)
	}
	c.mu.Unlock()
	if c.onDone != nil {
		c.onDone(c)
	}
}
