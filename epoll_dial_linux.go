package tcpkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

// Dialed connections on the epoll engine. Dial connects with the net
// package, as the std engine does (name resolution, the address family,
// the errors are net.Dial's), then hands a duplicate of the socket to a
// Dial loop and closes the net.Conn: the runtime's poller never sees it
// again. A Handshake runs on the caller's goroutine, as Dial blocks
// anyway, over an epStream the loop feeds (see epoll_shake_linux.go).
//
// The Dial loops are a pool shared by every Dialer: one per core at most
// (GOMAXPROCS), each started by the Dial that first needs it and stopped
// once it has no connection left and no Dial is setting one up on it,
// so a program that stops dialing keeps no loop.

// dialGroup is the pool of Dial loops.
type dialGroup struct {
	mu    sync.Mutex
	loops []*loop // by slot; nil where none runs
	next  int
}

var dialLoops dialGroup

// take returns a loop for a new connection, starting it if need be,
// with a hold that keeps it running until the connection is on it.
func (g *dialGroup) take() (*loop, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := runtime.GOMAXPROCS(0)
	for len(g.loops) < n {
		g.loops = append(g.loops, nil)
	}
	i := g.next % n
	g.next++
	l := g.loops[i]
	if l == nil {
		var err error
		if l, err = newLoop(nil); err != nil {
			return nil, fmt.Errorf("tcpkit: starting an event loop: %w", err)
		}
		l.group = g
		g.loops[i] = l
		go l.run()
	}
	l.holds.Add(1)
	return l, nil
}

// leave is done for a Dial loop with no connection left: it exits,
// unless a Dial holds it or a task waits.
func (g *dialGroup) leave(l *loop) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l.holds.Load() > 0 {
		return false
	}
	l.mu.Lock()
	if len(l.tasks) > 0 {
		l.mu.Unlock()
		return false
	}
	l.exited = true
	l.mu.Unlock()
	for i, x := range g.loops {
		if x == l {
			g.loops[i] = nil
		}
	}
	return true
}

// dialEpoll serves nc, just connected, on a Dial loop.
func (d *Dialer) dialEpoll(ctx context.Context, nc net.Conn, ev *Events, opt *ConnOptions, start time.Time) (*Conn, error) {
	ext := &epExt{network: "tcp", remote: nc.RemoteAddr(), local: nc.LocalAddr()}
	if _, ok := nc.(*net.UnixConn); ok {
		ext.network = "unix"
	}
	fd, err := dupFD(nc)
	nc.Close()
	if err != nil {
		return nil, err
	}
	l, err := dialLoops.take()
	if err != nil {
		rawsys.Close(fd)
		return nil, err
	}
	c := &epConn{l: l, ext: ext, fd: int32(fd), hidx: -1}
	c.init(c, ev, opt, nil)
	if d.Handshake == nil {
		c.traceConnected(time.Since(start)) // before anything can be written
		done := make(chan struct{})
		l.post(task{kind: taskDialed, c: c, done: done})
		<-done
		return &c.Conn, nil
	}
	sh := &epShake{c: c, dialed: true}
	ext.shake = sh
	a := newEpStream(c, nil)
	sh.a.Store(a)
	l.post(task{kind: taskDialed, c: c})
	x, err := guardHook(func() (net.Conn, error) { return d.Handshake(ctx, a) })
	sh.x, sh.err = x, err
	if err == nil {
		c.traceConnected(time.Since(start))
	}
	done := make(chan struct{})
	l.post(task{kind: taskShaken, c: c, done: done})
	if err != nil {
		return nil, err
	}
	<-done
	if sh.err != nil {
		return nil, sh.err
	}
	return &c.Conn, nil
}

// dialed takes on a connection Dial made: it joins the loop, and unless
// a Handshake is to run first, is served. done, if set, is closed once
// Dial may return it.
func (l *loop) dialed(c *epConn, done chan struct{}) {
	l.holds.Add(-1)
	l.open++
	l.add(c)
	errno := rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.fd), connEvents, c.slot+connTag)
	if sh := c.ext.shake; sh != nil {
		if errno != 0 {
			sh.a.Load().feedEnd(os.NewSyscallError("epoll_ctl", errno)) // the Handshake fails
		}
		return
	}
	close(done)
	c.start()
	if errno != 0 {
		c.closeWith(os.NewSyscallError("epoll_ctl", errno))
		return
	}
	l.read(c)
}

// dupFD duplicates nc's socket, close-on-exec; its file status flags,
// O_NONBLOCK among them, are shared with nc's.
func dupFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("tcpkit: %T has no file descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("tcpkit: duplicating the socket: %w", derr)
	}
	return fd, nil
}
