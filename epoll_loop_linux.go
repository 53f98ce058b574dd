package tcpkit

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// A loop is one event loop: a Server's, or one of the loops Dial runs
// connections on (s is nil, group is set).
type loop struct {
	s      *Server
	group  *dialGroup
	epfd   int
	file   *os.File        // epfd, registered with the runtime's poller
	raw    syscall.RawConn // file's, to park on it
	wakefd int             // an eventfd: written to wake the loop from epoll_wait
	buf    []byte
	plain  []byte // what connections whose bytes pass through a Handshake's connection (TLS) read into; made on first use
	events []unix.EpollEvent

	// Owned by the loop goroutine.
	open      int // connections on this loop
	listeners []*epListener
	pending   []*epConn          // connections to read again without waiting for an edge
	backoff   int64              // while accepting is paused after ENOBUFS/ENOMEM: until when
	deadline  int64              // the read deadline set on file, as a monotonic reading; 0 for none
	stepFn    func(uintptr) bool // step's method value, made once: parking allocates nothing
	more      bool               // events may be ready that will not wake the runtime's poller
	eager     int                // the score of reads right after accept: try them while positive
	accepted  int                // connections accepted, for eagerRead's probes
	exiting   bool               // done said so: run exits once the read returns

	holds atomic.Int32 // a Dial loop's: Dials setting up a connection on it; it does not exit meanwhile

	mu sync.Mutex
	// The loop's connections by slot, the slot being in their epoll
	// events (see connTag): a dense table, whatever the fd numbers. The
	// loop writes it under mu and reads it without; Server.Close and
	// Shutdown read it under mu.
	conns      []*epConn
	free       []int32 // slots to reuse
	tasks      []task
	spare      []task // the drained task list, reused; the loop's own
	timers     timerHeap
	sleepUntil int64 // when epoll_wait will time out; math.MinInt64 while awake
	woken      bool  // the eventfd was written and not yet read
	stopping   bool  // the server is closing: exit once nothing is left to serve
	exited     bool
}

type taskKind uint8

const (
	taskClose    taskKind = iota + 1 // the conn was closed: release its fd, report OnClose
	taskRead                         // reading may resume (Resume)
	taskShutdown                     // Server.Shutdown: end the conn gracefully, between callbacks
	taskListen                       // start accepting on a listener
	taskUnlisten                     // stop accepting on it
	taskShaken                       // the conn's Handshake returned: serve it, or close it
	taskAbort                        // Server.Close cut the conn while it read its preamble
	taskWatch                        // the conn's Handshake queued output: watch for room
	taskDialed                       // Dial connected the conn: register it; serve it unless Handshake is to run
)

type task struct {
	kind taskKind
	c    *epConn
	ln   *epListener
	done chan struct{} // taskDialed, taskShaken: closed once the conn is registered, or served
}

// maxReadsPerEvent bounds how many full buffers one connection may read
// before the loop serves the others; it is read again in the next round.
const maxReadsPerEvent = 8

// loopBufferSize is each loop's shared read buffer: an OnData chunk is at
// most this, as with the standard engine's largest buffer.
const loopBufferSize = MaxReadBufferSize

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
	l := &loop{s: s, epfd: epfd, wakefd: wakefd, sleepUntil: math.MinInt64, eager: eagerMax}
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
// the loop exited are dropped: nothing is left for them to act on.
func (l *loop) post(t task) {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		return
	}
	l.tasks = append(l.tasks, t)
	if l.sleepUntil != math.MinInt64 {
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// stop tells the loop to exit once it has nothing left to serve. The
// server calls it under its mutex, after the tasks that hand the loop a
// listener (see Server.trackEpListener): only then may a loop with no
// listener and no connection exit. The server's inShutdown would not do:
// it is set before that mutex is taken.
func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
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
func (l *loop) schedule(c *epConn, due int64) {
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
	due := len(l.timers) > 0 && l.timers[0].due <= now
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
	if len(l.tasks) > 0 || len(l.pending) > 0 || l.open == 0 && len(l.listeners) == 0 && (l.stopping || l.group != nil && l.holds.Load() == 0) {
		l.mu.Unlock()
		return false // work to do, or done may exit the loop
	}
	next := int64(math.MaxInt64)
	if len(l.timers) > 0 {
		next = l.timers[0].due
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
	c := l.conns[tag-connTag]
	if c == nil || int(c.fd) != fd {
		return // closed while the event waited
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.hup = true // the FIN (or an error) is in: read to the end, not to a short read
	}
	if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		l.flush(c)
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		l.read(c)
	}
}

// The tag of an epoll event (its Pad) says what its fd is: the wakeup
// eventfd (0), a listener, or the connection in slot tag-connTag.
const (
	listenerTag = 1
	connTag     = 2
)

// add puts c in a free slot of the loop's table.
func (l *loop) add(c *epConn) {
	l.mu.Lock()
	if n := len(l.free); n > 0 {
		c.slot = l.free[n-1]
		l.free = l.free[:n-1]
		l.conns[c.slot] = c
	} else {
		c.slot = int32(len(l.conns))
		l.conns = append(l.conns, c)
	}
	l.mu.Unlock()
}

// drop takes c out of the table; l.mu is held.
func (l *loop) dropLocked(c *epConn) {
	l.conns[c.slot] = nil
	l.free = append(l.free, c.slot)
}

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
		if !t.c.released() {
			if t.c.ext.shake == nil {
				t.c.readingResumed()
			}
			l.read(t.c)
		}
	case taskShutdown:
		if !t.c.released() {
			t.c.gracefulEnd()
		}
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
	case taskShaken:
		l.shaken(t.c, t.done)
	case taskAbort:
		if sh := t.c.ext.shake; sh != nil && sh.a.Load() == nil {
			l.dropShake(t.c, nil) // reading its preamble: no Handshake to wait for
		}
	case taskWatch:
		l.watchShake(t.c)
	case taskDialed:
		l.dialed(t.c, t.done)
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
// server is shutting down, and no connection or listener is left; or, on
// a Dial loop, no connection is left and no Dial is setting one up.
func (l *loop) done() bool {
	if l.open > 0 || len(l.listeners) > 0 {
		return false
	}
	if l.group != nil {
		return l.group.leave(l)
	}
	l.mu.Lock()
	if !l.stopping || len(l.tasks) > 0 {
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
	if l.group != nil {
		return
	}
	s := l.s
	s.mu.Lock()
	s.ep.running--
	last := s.ep.running == 0
	s.mu.Unlock()
	if last {
		s.ep.reserve.Close()
		close(s.ep.exited)
	}
}

// fireTimers looks at the connections whose timers are due.
func (l *loop) fireTimers(now int64) {
	for {
		l.mu.Lock()
		if len(l.timers) == 0 || l.timers[0].due > now {
			l.mu.Unlock()
			break
		}
		c := l.timers.pop()
		l.mu.Unlock()
		if sh := c.ext.shake; sh != nil {
			l.shakeExpired(c, sh, now)
		} else {
			c.expire(now)
		}
	}
	if l.backoff > 0 && now >= l.backoff {
		l.resumeAccepting()
	}
}

// A timerHeap orders connections by when their timers are next due. It
// is the loop's one timer: a connection is in it at most once, however
// many of its timeouts run.
type timerHeap []*epConn

// set puts c in the heap by due, or moves it earlier; a later due leaves
// it where it is (it is looked at early, and rescheduled then).
func (h *timerHeap) set(c *epConn, due int64) {
	if c.hidx >= 0 {
		if due < c.due {
			c.due = due
			h.up(int(c.hidx))
		}
		return
	}
	c.due = due
	c.hidx = int32(len(*h))
	*h = append(*h, c)
	h.up(int(c.hidx))
}

func (h *timerHeap) pop() *epConn {
	c := (*h)[0]
	h.removeAt(0)
	return c
}

func (h *timerHeap) remove(c *epConn) {
	if c.hidx >= 0 {
		h.removeAt(int(c.hidx))
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
	c.hidx = -1
	if i != last {
		h.down(i)
		h.up(i)
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = int32(i)
	h[j].hidx = int32(j)
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].due <= h[i].due {
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
		if r := l + 1; r < len(h) && h[r].due < h[l].due {
			m = r
		}
		if h[i].due <= h[m].due {
			return
		}
		h.swap(i, m)
		i = m
	}
}
