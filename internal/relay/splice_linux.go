package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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

// A Splicer relays pairs with splice(2), on event loops of its own: a
// stream's bytes go from one socket into a pipe and from the pipe into
// the other socket inside the kernel, never copied into the process (a
// few bytes are read and written through the loop's buffer, which costs
// less: see copySmall). It serves when nothing inspects the bytes (no
// toxics, dump or trace). Its
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
	// each pair's end; OnReject, of each client closed as it was
	// accepted, and why: ErrTooManyPairs at MaxConns, or the accept's
	// error when the process is out of file descriptors. They run on a
	// loop and must not block.
	OnOpen   func(id uint64, client, target, via net.Addr)
	OnClose  func(e End)
	OnReject func(remote net.Addr, err error)

	target net.Addr      // the target, for logs
	sa     unix.Sockaddr // the target, to connect to
	family int
	lfd    int      // the listener, duplicated: the loops accept on it
	laddr  net.Addr // its address, for errors
	// reserve turns clients away when the process is out of fds, rather
	// than leave them in the backlog unanswered; every call that opens
	// a descriptor on the loops takes its lock (see rawsys.Reserve).
	reserve *rawsys.Reserve
	lastID  atomic.Uint64
	open    atomic.Int64 // pairs open, on every loop

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
	s.lfd, s.laddr = lfd, ln.Addr()
	s.reserve = rawsys.NewReserve()
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
		s.reserve.Close()
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
