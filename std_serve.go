package tcpkit

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// The standard engine's Serve: an accept loop on the net package, a
// Preamble and a Handshake per connection on a goroutine of its own, and
// a stdConn for each connection served.

// serveStd is Serve on the standard engine: a goroutine per connection.
func (s *Server) serveStd(ln net.Listener) error {
	if !s.trackListener(ln) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.untrackListener(ln)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			if !retryAccept(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if s.Handshake == nil && s.Preamble == nil {
			s.serveConn(nc, nil, false)
			continue
		}
		if !s.trackShaking(nc, true) {
			nc.Close()
			continue
		}
		go func() {
			hc, k, err := s.shake(nc)
			if err != nil {
				// Told before the connection stops counting as open, so
				// that a Shutdown waiting for it returns after OnReject:
				// serve's "rejected" line comes before its last. Not told
				// when Close cut it: that was not the peer's doing.
				nc.Close()
				if s.isShaking(nc) {
					s.reject(nc.RemoteAddr(), err)
				}
				s.trackShaking(nc, false)
				return
			}
			if !s.trackShaking(nc, false) { // Close cut it
				nc.Close()
				hc.Close()
				return
			}
			// Accepted before any Shutdown: served even during one, as a
			// balancer may have passed on a request already.
			s.serveConn(hc, k, true)
		}()
	}
}

// shake reads nc's Preamble, then runs Handshake, each if set, and
// returns the connection to serve, with the stdSock the Handshake got if
// it returned something over it.
func (s *Server) shake(nc net.Conn) (net.Conn, *stdSock, error) {
	if s.Preamble != nil {
		var err error
		if nc, err = readPreamble(nc, s.Preamble); err != nil {
			return nil, nil, err
		}
	}
	if s.Handshake == nil {
		return nc, nil, nil
	}
	return stdHandshake(nc, func(hin net.Conn) (net.Conn, error) { return s.Handshake(hin) })
}

// stdHandshake runs hook on nc, as a stdSock where it can, and returns
// what the hook returned: nc itself if it returned the stdSock.
func stdHandshake(nc net.Conn, hook func(net.Conn) (net.Conn, error)) (net.Conn, *stdSock, error) {
	k := newStdSock(nc)
	hin := nc
	if k != nil {
		hin = k
	}
	hc, err := guardHook(func() (net.Conn, error) { return hook(hin) })
	switch {
	case err != nil:
		return nil, nil, err
	case hc == hin:
		return nc, nil, nil
	}
	return hc, k, nil
}

// serveConn serves an accepted connection, or closes it at once if a
// limit says no. A connection accepted before a Shutdown (accepted) is
// served during it too, and then ended gracefully.
func (s *Server) serveConn(nc net.Conn, k *stdSock, accepted bool) {
	c := newStdConn(nc, &s.Events, &s.ConnOptions, s)
	c.st = stdStreamOf(nc, k)
	if err := s.trackConn(&c.Conn, accepted); err != nil {
		nc.Close()
		if err != ErrServerClosed {
			s.reject(nc.RemoteAddr(), err)
		}
		return
	}
	c.traceConnected(0)
	go c.run() // OnConnect, and a graceful end if Shutdown has begun
}

// retryAccept reports whether an Accept error passes with time: the
// process or system is out of descriptors or memory, or a client gave up
// while queued.
func retryAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
