//go:build linux

package tcpkit

import (
	"context"
	"crypto/tls"
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
		for i, control := range []func(string, string, syscall.RawConn) error{nil, smallBuffers} {
			lc := net.ListenConfig{Control: control}
			ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			s.lns[i] = ln
		}
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
		ln := s.lns[btoi(small)]
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		dialed := make(chan error, 1)
		go func() {
			_, err := s.dialer.Dial(ctx, "tcp", ln.Addr().String(), s.srv.Events)
			dialed <- err
		}()
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitTime))
		nc, err := ln.Accept()
		if derr := <-dialed; derr != nil {
			if nc != nil {
				nc.Close()
			}
			return nil, derr
		}
		if err != nil {
			return nil, err
		}
		return &stressClient{Conn: nc, sock: nc, key: nc.RemoteAddr().String()}, nil
	}
	d := net.Dialer{Timeout: waitTime}
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
