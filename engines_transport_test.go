//go:build linux

package tcpkit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tcpkit/internal/proxy"
)

// The transports the engines' differential test runs its scripts over.

type stressTransport string

const (
	overTCP    stressTransport = "tcp"
	overProxy  stressTransport = "proxy"  // a PROXY v2 header first, read as the server's Preamble
	overTLS    stressTransport = "tls"    // TLS 1.3, through the server's Handshake
	overUnix   stressTransport = "unix"   // a Unix socket
	overDialed stressTransport = "dialed" // the events run on a connection the Dialer opened
)

var stressTransports = []stressTransport{overTCP, overProxy, overTLS, overUnix, overDialed}

// genOpts leaves out of tr's scripts what tr cannot show as the model
// says:
//
//   - TLS, half-open connections. After the client's close, the server
//     learns of the reset at a write; on the std engine a TLS connection
//     has no fd to write to at once, so its writes are queued and the
//     error comes from the flush, not from Write (one "write-err" less).
//   - Unix sockets, half-open connections, closes and resets: a write to
//     a Unix socket whose peer closed fails at once (OnEnd's "eof\n"),
//     where TCP's first write goes out and meets a reset, and a Unix
//     socket cannot be reset at all (a close with nothing unread is a
//     clean end).
func (tr stressTransport) genOpts(o genOpts) genOpts {
	switch tr {
	case overTLS:
		o.noHalfOpen = true
	case overUnix:
		o.noHalfOpen, o.noReset, o.noFINClose = true, true, true
	}
	return o
}

// start serves s's protocol over s.tr.
func (s *stressServer) start(t testing.TB) {
	t.Helper()
	switch s.tr {
	case overTCP:
		s.addr = startServer(t, s.srv)
	case overProxy:
		pol := &proxy.Policy{}
		s.srv.Preamble = &Preamble{Allow: pol.Allow, Parse: pol.Parse}
		s.addr = startServer(t, s.srv)
	case overTLS:
		cfg := testTLS().server
		s.srv.Handshake = func(nc net.Conn) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTime)
			defer cancel()
			tc := tls.Server(nc, cfg)
			return tc, tc.HandshakeContext(ctx)
		}
		s.addr = startServer(t, s.srv)
	case overUnix:
		dir, err := os.MkdirTemp("", "tk")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		s.addr = startServerOn(t, s.srv, "unix", filepath.Join(dir, "s"))
	case overDialed:
		s.dialer = &Dialer{Engine: s.engine, ConnOptions: s.srv.ConnOptions}
	}
}

// key is how the server's events name a connection: the client's
// address as the server sees it.
func (s *stressServer) key(c *Conn) string {
	if s.tr == overDialed {
		return c.LocalAddr().String()
	}
	return c.RemoteAddr().String()
}

// A stressClient is the script's end of a connection.
type stressClient struct {
	net.Conn          // what the script reads and writes
	sock     net.Conn // the socket under it
	key      string   // the server's name for it
}

// closeWrite half-closes: TLS's close_notify, then the FIN.
func (c *stressClient) closeWrite() error {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			return err
		}
	}
	return c.sock.(interface{ CloseWrite() error }).CloseWrite()
}

// reset closes the socket with a reset, and nothing before it (no
// close_notify: the server would take it for the end).
func (c *stressClient) reset() {
	c.sock.(*net.TCPConn).SetLinger(0)
	c.sock.Close()
}

var lastUnixClient atomic.Int64

var lastClient atomic.Uint32

// nextClientAddr is a TCP address for a script's client to connect from:
// an address of loopback's /8 of its own, so that no two connections of
// a run have the same address and port, whatever ports the kernel picks
// and reuses (the server's events are filed by the client's address).
func nextClientAddr() *net.TCPAddr {
	n := lastClient.Add(1)
	return &net.TCPAddr{IP: net.IPv4(127, byte(1+n>>16%254), byte(n>>8), byte(n))}
}

// connect opens a client connection to s, with small buffers if asked
// (TCP only).
func (s *stressServer) connect(small bool) (*stressClient, error) {
	switch s.tr {
	case overUnix:
		name := fmt.Sprintf("@tcpkit-stress-%d-%d", os.Getpid(), lastUnixClient.Add(1)) // abstract: named, with no file
		nc, err := net.DialUnix("unix", &net.UnixAddr{Name: name, Net: "unix"}, &net.UnixAddr{Name: s.addr, Net: "unix"})
		if err != nil {
			return nil, err
		}
		return &stressClient{Conn: nc, sock: nc, key: name}, nil
	case overDialed:
		return s.dialed(small)
	}
	d := net.Dialer{Timeout: waitTime, LocalAddr: nextClientAddr()}
	if small {
		d.Control = smallBuffers
	}
	nc, err := d.Dial("tcp", s.addr)
	if err != nil {
		return nil, err
	}
	c := &stressClient{Conn: nc, sock: nc, key: nc.LocalAddr().String()}
	switch s.tr {
	case overProxy: // the header says who the client is: itself, as a balancer passing it on would
		nc.SetDeadline(time.Now().Add(waitTime))
		if err := proxy.WriteHeader(nc, 2, nc.LocalAddr(), nc.RemoteAddr()); err != nil {
			nc.Close()
			return nil, err
		}
	case overTLS:
		tc := tls.Client(nc, testTLS().client)
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		c.Conn = tc
	}
	return c, nil
}

// waitDialLoops waits until the Dial loops exited: they stop once they
// have no connection left, and hold two fds each until then.
func waitDialLoops(t testing.TB) {
	t.Helper()
	waitUntil(t, "the Dial loops to stop", func() bool {
		dialLoops.mu.Lock()
		defer dialLoops.mu.Unlock()
		for _, l := range dialLoops.loops {
			if l != nil {
				return false
			}
		}
		return true
	})
}

// dialed has s's Dialer connect to a listener of the script's own, with
// small buffers if asked, and returns the accepted end as the client.
// The Dialer's connection is told from any other the listener takes by
// its address: now and then, with connections coming and going by the
// hundred on loopback, a connect meets a socket of an earlier connection
// in TIME_WAIT and is reset (the kernel's doing, not the engines'), and
// is tried again.
func (s *stressServer) dialed(small bool) (*stressClient, error) {
	lc := net.ListenConfig{}
	if small {
		lc.Control = smallBuffers
	}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitTime))
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	var c *Conn
	d := *s.dialer
	d.LocalAddr = nextClientAddr()
	for range 3 {
		if c, err = d.Dial(ctx, "tcp", ln.Addr().String(), s.srv.Events); !errors.Is(err, syscall.ECONNRESET) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	for {
		nc, err := ln.Accept()
		if err != nil {
			c.Close()
			return nil, err
		}
		if nc.RemoteAddr().String() == c.LocalAddr().String() {
			return &stressClient{Conn: nc, sock: nc, key: nc.RemoteAddr().String()}, nil
		}
		nc.Close() // a connect that was reset
	}
}
