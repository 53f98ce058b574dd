// Package proxy speaks the PROXY protocol (versions 1 and 2) for tcpkit:
// it reads the header a load balancer such as HAProxy puts in front of a
// connection, so that the server sees the real client's address, and
// writes one, so that a client can test a server behind a balancer
// without the balancer. The parsing is github.com/pires/go-proxyproto's.
package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// DefaultTimeout bounds how long a peer may take to send its header.
const DefaultTimeout = 5 * time.Second

// Errors of Policy.Handshake.
var (
	// ErrNoHeader: the connection did not start with a PROXY header, so
	// it did not come through the balancer (or the balancer does not send
	// one).
	ErrNoHeader = errors.New("no PROXY protocol header: the connection did not come through the load balancer")

	// ErrPeerNotAllowed: the peer is not one the policy lets send a
	// header, so its claim about the client cannot be trusted.
	ErrPeerNotAllowed = errors.New("this peer may not send a PROXY protocol header (--proxy-protocol-from)")

	// ErrBadHeader: the header was there but malformed.
	ErrBadHeader = errors.New("bad PROXY protocol header")
)

// A Policy says who may send PROXY headers. With the policy on, every
// connection must start with one: a client that bypasses the balancer
// cannot pass itself off as another.
type Policy struct {
	// From lists the peers (balancers) allowed to connect and send the
	// header. Empty means any peer.
	From []netip.Prefix
	// Timeout bounds reading the header. Zero means DefaultTimeout.
	Timeout time.Duration
}

// ParseFrom parses a comma-separated list of CIDRs or addresses.
func ParseFrom(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR or an IP address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Handshake reads the PROXY header from nc and returns the connection to
// serve, whose RemoteAddr and LocalAddr are the client's and the address
// it connected to, as the header says. A LOCAL header (a balancer's
// health check) keeps nc's own addresses. It fits tcpkit.Server.Handshake.
func (p *Policy) Handshake(nc net.Conn) (net.Conn, error) {
	if !p.allowed(nc.RemoteAddr()) {
		return nil, ErrPeerNotAllowed
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	nc.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReaderSize(nc, 256) // a v2 header with TLVs fits; more data is passed on
	h, err := readHeader(br)
	nc.SetReadDeadline(time.Time{})
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return nil, fmt.Errorf("%w: nothing came within %v", ErrNoHeader, timeout)
	}
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, r: br, remote: nc.RemoteAddr(), local: nc.LocalAddr()}
	if h.Command.IsProxy() && h.SourceAddr != nil {
		c.remote, c.local = h.SourceAddr, h.DestinationAddr
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		return &tcpConn{conn: c, TCPConn: tc}, nil
	}
	return c, nil
}

// readHeader reads a v1 or v2 header from the start of br.
func readHeader(br *bufio.Reader) (*proxyproto.Header, error) {
	h, err := proxyproto.Read(br)
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		return nil, ErrNoHeader
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	return h, nil
}

func (p *Policy) allowed(a net.Addr) bool {
	if len(p.From) == 0 {
		return true
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, pre := range p.From {
		if pre.Contains(ip) {
			return true
		}
	}
	return false
}

// conn is a connection whose header has been read: reads drain what the
// header's reader buffered first, and the addresses are the header's.
type conn struct {
	net.Conn
	r             *bufio.Reader
	remote, local net.Addr
}

func (c *conn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil // drained: read the socket directly from now on
	}
	return c.Conn.Read(p)
}

func (c *conn) RemoteAddr() net.Addr { return c.remote }
func (c *conn) LocalAddr() net.Addr  { return c.local }

// tcpConn keeps what tcpkit uses of a *net.TCPConn, writes that do not
// wait (SyscallConn) and half-close (CloseWrite), while reading through
// conn: writes and shutdown go straight to the socket, which is safe.
type tcpConn struct {
	*conn
	TCPConn *net.TCPConn
}

func (c *tcpConn) CloseWrite() error { return c.TCPConn.CloseWrite() }

// SyscallConn is the socket's, for writes that do not wait and TCP_INFO.
func (c *tcpConn) SyscallConn() (syscall.RawConn, error) { return c.TCPConn.SyscallConn() }

// WriteHeader writes a PROXY protocol header of the given version (1 or
// 2) for a connection from src to dst.
func WriteHeader(w io.Writer, version int, src, dst net.Addr) error {
	if version != 1 && version != 2 {
		return fmt.Errorf("PROXY protocol version %d: use 1 or 2", version)
	}
	_, err := proxyproto.HeaderProxyFromAddrs(byte(version), src, dst).WriteTo(w)
	return err
}
