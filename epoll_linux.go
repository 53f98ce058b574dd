package tcpkit

import (
	"fmt"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"tcpkit/internal/rawsys"
)

const epollBuilt = true

// The epoll engine: a few event loops, each a goroutine that waits on an
// epoll set and serves many connections. A connection lives on the loop
// that accepted it. Sockets are registered edge-triggered for input and
// the peer's FIN, so pausing costs no epoll_ctl: the loop reads until a
// short read. Output is watched only while some is queued.
//
// What runs where: reads, callbacks, flushing queued output, timers and
// closing the fd happen on the loop. Write, End, Close and the rest may be
// called from any goroutine; they take the connection's mutex, write
// inline when nothing is queued, and post to the loop what only it may do.
//
// The files: this one wires listeners to the loops; epoll_loop_linux.go
// is the loop itself (waiting, tasks, timers); epoll_accept_linux.go
// takes connections on (accept, limits, shedding at the fd limit);
// epoll_conn_linux.go is the connection's transport (read, flush, FIN,
// release).

// epServer is a Server's epoll state.
type epServer struct {
	loops     []*loop
	running   int                      // loops not yet exited; under Server.mu
	exited    chan struct{}            // closed when the last loop exits
	listeners map[*epListener]struct{} // under Server.mu

	reserve *rawsys.Reserve // an fd held back to shed connections at the fd limit
}

// An epListener is a listening socket the loops accept on: a duplicate of
// the net.Listener's fd, so the runtime's poller never sees our accepts.
type epListener struct {
	fd   int
	ln   net.Listener
	ext  *epExt        // what its plain connections share: the listener, the network
	left atomic.Int32  // loops it is still registered with
	done chan struct{} // closed when no loop accepts on it any more
}

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
	el := &epListener{fd: fd, ln: ln, done: make(chan struct{})}
	el.ext = &epExt{ln: el, network: "tcp"}
	if _, ok := ln.(*net.UnixListener); ok {
		el.ext.network = "unix"
	} else {
		// Accepted sockets inherit TCP_NODELAY from the listener, as the
		// standard engine sets it on each: no Nagle delay on small replies.
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	return el, nil
}

// trackEpListener registers ln and el, starting the loops on first use,
// and hands el to the loops. It does so under s.mu, so that the tasks
// closeEpListenersLocked posts come after these: a loop never sees the
// listener's end before its start, and exits with it unreleased.
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
	el.left.Store(int32(len(s.ep.loops)))
	for _, l := range s.ep.loops {
		l.post(task{kind: taskListen, ln: el})
	}
	return nil
}

func (s *Server) startLoops() (*epServer, error) {
	ep := &epServer{exited: make(chan struct{}), listeners: make(map[*epListener]struct{}), reserve: rawsys.NewReserve()}
	for range s.loopCount() {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range ep.loops {
				l.closeFDs()
			}
			ep.reserve.Close()
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
		l.stop()
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

// appendEpConns appends the loops' connections to list.
func (s *Server) appendEpConns(list []*Conn) []*Conn {
	s.mu.Lock()
	ep := s.ep
	s.mu.Unlock()
	if ep == nil {
		return list
	}
	for _, l := range ep.loops {
		l.mu.Lock()
		for _, c := range l.conns {
			if c != nil && c.ext.shake == nil { // one in handshake is in s.shaking
				list = append(list, &c.Conn)
			}
		}
		l.mu.Unlock()
	}
	return list
}
