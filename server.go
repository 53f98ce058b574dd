package tcpkit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultAddr is where ListenAndServe listens when Server.Addr is empty:
// port 5000 on every interface, IPv4 and IPv6, as the seed's Node.js
// server does.
const DefaultAddr = ":5000"

// A Server accepts TCP connections and reports each one's lifecycle
// through Events. Set its fields before Serve; it must not be copied after
// first use. Its methods are safe for concurrent use.
type Server struct {
	// Addr is the address ListenAndServe listens on, "host:port". An empty
	// host listens on every interface; empty Addr means DefaultAddr.
	Addr string

	// Events are the callbacks every accepted connection reports to.
	Events Events

	// ConnOptions configure every accepted connection.
	ConnOptions

	// MaxConns caps the connections open at once; one past it is closed
	// as soon as it is accepted, and the server goes on serving the
	// others. Zero means no cap.
	MaxConns int

	// MaxConnsPerIP caps the connections open at once from one IP
	// address, the same way. Zero means no cap.
	MaxConnsPerIP int

	// Preamble, if set, is read from each accepted connection before
	// anything else: a PROXY protocol header, say. See Preamble.
	Preamble *Preamble

	// Handshake, if set, runs on each accepted connection after its
	// Preamble and before anything else, on a goroutine of its own so
	// that a slow peer holds up no other: to complete a TLS handshake,
	// say. It returns the connection to serve: nc, or one that reads from
	// and writes to nc, such as tls.Server(nc, config), whose RemoteAddr
	// the limits and callbacks then see. An error closes nc and goes to
	// OnReject.
	//
	// On the epoll engine, nc is fed by the connection's loop, and once
	// Handshake returned the loop reads and writes through the connection
	// it returned, with no goroutine: its Read must not wait, and must
	// pass on the error nc's Read returns when nothing has come yet, an
	// error whose Timeout method reports true, as after a read deadline
	// (a tls.Conn does both). A connection that does otherwise needs
	// EngineStd.
	Handshake func(nc net.Conn) (net.Conn, error)

	// Engine is the machinery connections run on; the zero value,
	// EngineAuto, picks epoll event loops on Linux (for TCP and Unix
	// socket listeners) and a goroutine per connection elsewhere. See
	// Engine for what a callback may do on each.
	Engine Engine

	// Loops is how many event loops the epoll engine runs. Zero means one
	// per core the Go scheduler may use (GOMAXPROCS).
	Loops int

	// OnReject, if set, is told of each connection closed before it was
	// served: over a limit (err is ErrTooManyConns or
	// ErrTooManyConnsFromIP) or failing Handshake (its error). It must
	// not block.
	OnReject func(remote net.Addr, err error)

	inShutdown atomic.Bool

	open atomic.Int64 // connections served and not yet closed, on every engine

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*Conn]struct{}     // the std engine's; the epoll engine's are in its loops
	shaking   map[io.Closer]struct{} // accepted, reading their Preamble or in Handshake; Close cuts them
	perIP     map[netip.Addr]int     // open connections by client address, kept when MaxConnsPerIP > 0
	drained   chan struct{}          // closed when conns empties during Shutdown
	ep        *epServer              // the epoll engine's loops, once started
}

// ListenAndServe listens on s.Addr and serves connections until Shutdown
// or Close, then returns ErrServerClosed.
func (s *Server) ListenAndServe() error {
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln and serves each on its own goroutine,
// until Shutdown or Close (then it returns ErrServerClosed) or until ln
// fails for good. Serve closes ln when it returns. Temporary accept errors,
// such as running out of file descriptors, are retried with a backoff.
func (s *Server) Serve(ln net.Listener) error {
	engine, err := s.EngineFor(ln)
	if err != nil {
		ln.Close()
		return err
	}
	if engine == EngineEpoll {
		return s.serveEpoll(ln)
	}
	return s.serveStd(ln)
}

// FirstMessageGrace is how long Shutdown lets a connection none of whose
// messages has been handled yet deliver its first one (and get its reply)
// before ending it: a client, or a balancer, may have sent a request that
// is still on its way, or still arriving.
const FirstMessageGrace = time.Second

func (s *Server) reject(remote net.Addr, err error) {
	if s.OnReject != nil {
		s.OnReject(remote, err)
	}
}

// isShaking reports whether nc is still in Handshake: Close has not cut
// it.
func (s *Server) isShaking(nc io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.shaking[nc]
	return ok
}

// trackShaking adds nc to, or removes it from, the connections in
// Handshake. Adding reports false once the server is shutting down;
// removing, false if Close or Shutdown closed nc meanwhile.
func (s *Server) trackShaking(nc io.Closer, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		_, ok := s.shaking[nc]
		delete(s.shaking, nc)
		s.checkDrainedLocked()
		return ok
	}
	if s.inShutdown.Load() {
		return false
	}
	if s.shaking == nil {
		s.shaking = make(map[io.Closer]struct{})
	}
	s.shaking[nc] = struct{}{}
	return true
}

// Conns returns the number of open connections: served, or accepted and
// still reading their Preamble or in Handshake.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.open.Load()) + len(s.shaking)
}

// Close stops accepting and closes every connection at once, as
// net/http's Server.Close does; use Shutdown to end them gracefully.
// It returns the error of closing the listeners, if any.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	err := s.closeListeners(true)
	for _, c := range s.connList() {
		c.Close()
	}
	return err
}

// Shutdown stops accepting, then ends every connection gracefully: once a
// callback running on it returns, its queued output is written, a FIN is
// sent and the peer's FIN awaited (see Conn.End). Input that arrives after
// that is read and dropped rather than delivered to OnData: every message
// OnData received could be answered. A connection still in Handshake (a
// TLS handshake, a PROXY header) gets FirstMessageGrace to finish it, as
// one that has had no message handled yet gets to send its first, and is
// closed after that. It returns when all connections have closed, or with
// ctx's error when ctx is done first; call Close then to cut the rest. Do
// not call it from a callback: it waits for callbacks to return.
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	lnErr := s.closeListeners(false)
	for _, c := range s.connList() {
		c.t.shutdown()
	}
	cut := time.AfterFunc(FirstMessageGrace, func() {
		s.mu.Lock()
		s.closeHandshakesLocked()
		s.mu.Unlock()
	})
	defer cut.Stop()
	s.mu.Lock()
	if s.open.Load() == 0 && len(s.shaking) == 0 {
		s.mu.Unlock()
		s.waitLoops()
		return lnErr
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
	}
	drained := s.drained
	s.mu.Unlock()
	select {
	case <-drained:
		s.waitLoops()
		return lnErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) trackListener(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrackListener(ln net.Listener) {
	s.mu.Lock()
	_, ok := s.listeners[ln]
	delete(s.listeners, ln)
	s.mu.Unlock()
	if ok {
		ln.Close()
	}
}

// closeListeners closes the listeners and, with shaking, the connections
// still in Handshake.
func (s *Server) closeListeners(shaking bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if shaking {
		s.closeHandshakesLocked()
	}
	s.closeEpListenersLocked()
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(s.listeners, ln)
	}
	return errors.Join(errs...)
}

// closeHandshakesLocked closes the connections still in Handshake: the
// Handshake returns with an error, and they are not served.
func (s *Server) closeHandshakesLocked() {
	for nc := range s.shaking {
		nc.Close()
		delete(s.shaking, nc)
	}
	s.checkDrainedLocked()
}

// trackConn counts c in, or says why it may not be served. During a
// shutdown only connections accepted before it are. A connection of the
// std engine (std) goes into s.conns; the epoll engine's loops keep
// theirs, and put it there before they call trackConn, so that Close,
// which sets inShutdown before it looks, either finds it or has it
// refused here. Without a per-IP limit, the epoll engine's connections
// take no lock of the server's.
func (s *Server) trackConn(c *Conn, accepted bool) error {
	_, std := c.t.(*stdConn)
	if std || s.MaxConnsPerIP > 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	if s.inShutdown.Load() && !accepted {
		return ErrServerClosed
	}
	for {
		n := s.open.Load()
		if s.MaxConns > 0 && n >= int64(s.MaxConns) {
			return ErrTooManyConns
		}
		if s.open.CompareAndSwap(n, n+1) {
			break
		}
	}
	if s.MaxConnsPerIP > 0 {
		ip := remoteIP(c)
		if s.perIP[ip] >= s.MaxConnsPerIP {
			s.open.Add(-1)
			s.checkDrainedLocked()
			return ErrTooManyConnsFromIP
		}
		if s.perIP == nil {
			s.perIP = make(map[netip.Addr]int)
		}
		s.perIP[ip]++
	}
	if std {
		if s.conns == nil {
			s.conns = make(map[*Conn]struct{})
		}
		s.conns[c] = struct{}{}
	}
	return nil
}

// remoteIP returns the client's IP address, IPv4-mapped IPv6 unmapped, or
// the zero Addr for a non-IP (Unix socket) peer, which then counts as one.
func remoteIP(c *Conn) netip.Addr {
	if a, ok := c.t.(interface{ remoteIP() netip.Addr }); ok {
		return a.remoteIP().Unmap()
	}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// releaseIP gives back c's place under MaxConnsPerIP, as soon as it
// closed: before OnClose, so that a client told of the close may connect
// again at once.
func (s *Server) releaseIP(c *Conn) {
	if s.MaxConnsPerIP == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ip := remoteIP(c)
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// untrackConn counts c out, once its close has been reported: Shutdown
// returns after the last OnClose.
func (s *Server) untrackConn(c *Conn) {
	_, std := c.t.(*stdConn)
	if std {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}
	if s.open.Add(-1) == 0 {
		s.mu.Lock()
		s.checkDrainedLocked()
		s.mu.Unlock()
	}
}

// checkDrainedLocked tells Shutdown when no connection is left, served
// or in Handshake.
func (s *Server) checkDrainedLocked() {
	if s.open.Load() == 0 && len(s.shaking) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// connList returns the open connections, of every engine.
func (s *Server) connList() []*Conn {
	s.mu.Lock()
	list := make([]*Conn, 0, s.open.Load())
	for c := range s.conns {
		list = append(list, c)
	}
	s.mu.Unlock()
	return s.appendEpConns(list)
}
