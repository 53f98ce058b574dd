package tcpkit

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"syscall"
	"time"
)

// A Preamble is what every connection of a Server sends before its data,
// read before the connection is served: the PROXY protocol header a load
// balancer puts in front of a connection, say. The engine reads it as it
// comes, in as many pieces as it comes in, and shows Parse everything
// read so far each time; the epoll engine does so from its loop, with no
// goroutine and no read that waits. What follows the preamble is the
// connection's first data (or its Handshake's, if the Server has one).
//
// A connection reading its preamble counts as one in handshake (see
// Server.Conns and Server.Shutdown); it is not yet under MaxConns and
// MaxConnsPerIP, which see the address the preamble gives.
type Preamble struct {
	// Allow, if set, is asked at the accept, before a byte is read,
	// whether the peer at remote may connect at all: an error refuses the
	// connection unread (to Server.OnReject).
	Allow func(remote net.Addr) error

	// Parse is shown all the bytes read so far, from the first, each time
	// more come. end is nil while more may come; otherwise no more will:
	// io.EOF (the peer ended its input) or another read error, or
	// ErrPreambleTimeout once Timeout passed. Parse returns 0 and no error
	// to wait for more; the preamble's length once p holds all of it, with
	// the addresses the connection reports from then on (nil keeps the
	// socket's own); or an error, which refuses the connection (to
	// OnReject). With end set, waiting is not an option: 0 and no error
	// refuses the connection with end. Parse must not keep p, and runs on
	// the epoll engine's loop: it must be quick.
	Parse func(p []byte, end error) (n int, remote, local net.Addr, err error)

	// Timeout bounds the whole preamble, however many pieces it comes in,
	// counted from the accept. Zero means DefaultPreambleTimeout.
	Timeout time.Duration
}

// DefaultPreambleTimeout is how long a connection may take to send its
// Preamble when Preamble.Timeout is zero.
const DefaultPreambleTimeout = 5 * time.Second

// MaxPreamble is the most a Preamble may take: past it, Parse is not
// shown more, and a connection whose Parse still waits is refused with
// ErrPreambleTooLarge. It is the longest PROXY protocol v2 header.
const MaxPreamble = 16 + 65535

func (pr *Preamble) timeout() time.Duration {
	if pr.Timeout > 0 {
		return pr.Timeout
	}
	return DefaultPreambleTimeout
}

// parse runs Parse on got and holds it to its contract: an error, or
// the preamble's length and addresses, or 0 to read on.
func (pr *Preamble) parse(got []byte, end error) (n int, remote, local net.Addr, err error) {
	defer func() { // a panic in Parse refuses only this connection
		if r := recover(); r != nil {
			n, remote, local, err = 0, nil, nil, &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	n, remote, local, err = pr.Parse(got, end)
	switch {
	case err != nil:
		return 0, nil, nil, err
	case n < 0 || n > len(got):
		return 0, nil, nil, fmt.Errorf("tcpkit: Preamble.Parse returned a length of %d for %d bytes", n, len(got))
	case n == 0 && end != nil:
		return 0, nil, nil, end
	case n == 0 && len(got) >= MaxPreamble:
		return 0, nil, nil, ErrPreambleTooLarge
	}
	return n, remote, local, nil
}

// readPreamble reads pr from nc for the std engine, blocking, and returns
// the connection to serve: reads return what followed the preamble first,
// and the addresses are the preamble's.
func readPreamble(nc net.Conn, pr *Preamble) (net.Conn, error) {
	if pr.Allow != nil {
		if err := pr.Allow(nc.RemoteAddr()); err != nil {
			return nil, err
		}
	}
	nc.SetReadDeadline(time.Now().Add(pr.timeout()))
	defer nc.SetReadDeadline(time.Time{})
	var got []byte
	for {
		got = slices.Grow(got, 512)
		m, rerr := nc.Read(got[len(got):min(cap(got), MaxPreamble)])
		got = got[:len(got)+m]
		var end error
		switch {
		case rerr == nil:
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			end = ErrPreambleTimeout
		default:
			end = rerr
		}
		if m == 0 && end == nil {
			continue
		}
		n, remote, local, err := pr.parse(got, end)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return &preambleConn{Conn: nc, rest: got[n:], remote: remote, local: local}, nil
		}
	}
}

// preambleConn is a std connection whose preamble was read: reads return
// what came after it in the same reads first, and the addresses are the
// preamble's where it gave them. Writes go straight to nc.
type preambleConn struct {
	net.Conn
	rest          []byte
	remote, local net.Addr
}

func (c *preambleConn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	c.rest = nil
	return c.Conn.Read(p)
}

func (c *preambleConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

func (c *preambleConn) LocalAddr() net.Addr {
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

// NetConn returns the socket's connection, for a reset on close.
func (c *preambleConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the socket.
func (c *preambleConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}

// SyscallConn is the socket's, for writes that do not wait and TCP_INFO:
// the preamble is behind us, and writes pass through untouched.
func (c *preambleConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
