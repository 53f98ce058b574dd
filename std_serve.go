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
			s.serveConn(nc, false)
			continue
		}
		if !s.trackShaking(nc, true) {
			nc.Close()
			continue
		}
		go func() {
			hc, err := s.shake(nc)
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
			s.serveConn(hc, true)
		}()
	}
}

// shake reads nc's Preamble, then runs Handshake, each if set, and
// returns the connection to serve.
func (s *Server) shake(nc net.Conn) (net.Conn, error) {
	if s.Preamble != nil {
		var err error
		if nc, err = readPreamble(nc, s.Preamble); err != nil {
			return nil, err
		}
	}
	if s.Handshake != nil {
		return s.Handshake(nc)
	}
	return nc, nil
}

// serveConn serves an accepted connection, or closes it at once if a
// limit says no. A connection accepted before a Shutdown (accepted) is
// served during it too, and then ended gracefully.
func (s *Server) serveConn(nc net.Conn, accepted bool) {
	c := newStdConn(nc, &s.Events, &s.ConnOptions, s)
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
