// Package proxy speaks the PROXY protocol (versions 1 and 2) for tcpkit:
// it reads the header a load balancer such as HAProxy puts in front of a
// connection, so that the server sees the real client's address, and
// writes one, so that a client can test a server behind a balancer
// without the balancer. The parsing is github.com/pires/go-proxyproto's.
package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
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

	// ErrSlowHeader: a header had started, but the rest of it did not
	// arrive within the Policy's Timeout.
	ErrSlowHeader = errors.New("incomplete PROXY protocol header")

	// ErrCutHeader: a header had started, but the peer closed or reset
	// the connection before the rest of it came.
	ErrCutHeader = errors.New("PROXY protocol header cut short")
)

// A Policy says who may send PROXY headers. With the policy on, every
// connection must start with one: a client that bypasses the balancer
// cannot pass itself off as another.
type Policy struct {
	// From lists the peers (balancers) allowed to connect and send the
	// header. Empty means any peer.
	From []netip.Prefix
	// Timeout bounds reading the whole header, however many pieces it
	// comes in. Zero means DefaultTimeout.
	Timeout time.Duration
}

// ParseFrom parses a comma-separated list of CIDRs or addresses. An
// empty entry is an error, the empty list too: From empty means any peer,
// and a list that came out empty by mistake must not open the door.
func ParseFrom(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			return nil, fmt.Errorf("%q has an empty entry: list CIDRs or IP addresses, comma-separated, such as 10.0.0.0/8,192.0.2.7", list)
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
// health check) keeps nc's own addresses. It reads with blocking reads,
// for a net.Conn of one's own; a tcpkit.Server reads the header with
// Allow and Parse instead, on its event loop.
//
// The header may arrive in any number of pieces: all of it must arrive
// within the Timeout, counted from the start of the Handshake.
func (p *Policy) Handshake(nc net.Conn) (net.Conn, error) {
	if !p.allowed(nc.RemoteAddr()) {
		return nil, ErrPeerNotAllowed
	}
	timeout := p.timeout()
	nc.SetReadDeadline(time.Now().Add(timeout))
	buf, err := collect(nc)
	nc.SetReadDeadline(time.Time{})
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		if len(buf) == 0 {
			return nil, fmt.Errorf("%w: nothing came within %v", ErrNoHeader, timeout)
		}
		return nil, fmt.Errorf("%w: only %d bytes of it came within %v", ErrSlowHeader, len(buf), timeout)
	}
	if err != nil && missing(buf) > 0 {
		if err := cutShort(buf, err); err != nil {
			return nil, err
		}
	}
	// Any other end of the input: the parser says what the bytes that
	// came are.
	h, rest, err := parse(buf)
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, rest: rest, remote: nc.RemoteAddr(), local: nc.LocalAddr()}
	if h.Command.IsProxy() && h.SourceAddr != nil {
		c.remote, c.local = h.SourceAddr, h.DestinationAddr
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		return &tcpConn{conn: c, TCPConn: tc}, nil
	}
	return c, nil
}

// Allow refuses a peer the policy does not let send a header, with
// ErrPeerNotAllowed, before a byte is read from it. With Parse, it makes
// a tcpkit.Preamble: the engine reads the header as it comes.
func (p *Policy) Allow(remote net.Addr) error {
	if !p.allowed(remote) {
		return ErrPeerNotAllowed
	}
	return nil
}

// Parse looks at what a connection has sent so far, b, and returns the
// header's length and the addresses it gives once b holds a whole one
// (nil for a LOCAL header: a balancer's health check keeps the socket's
// addresses), 0 to wait for more, or why it is not one. end is nil while
// more may come, or why no more will: one whose Timeout method reports
// true once the time allowed passed, io.EOF at the peer's FIN. It fits
// tcpkit.Preamble's Parse.
func (p *Policy) Parse(b []byte, end error) (n int, remote, local net.Addr, err error) {
	if missing(b) > 0 {
		var te interface{ Timeout() bool }
		switch {
		case end == nil:
			return 0, nil, nil, nil
		case errors.As(end, &te) && te.Timeout() && len(b) == 0:
			return 0, nil, nil, fmt.Errorf("%w: nothing came within %v", ErrNoHeader, p.timeout())
		case errors.As(end, &te) && te.Timeout():
			return 0, nil, nil, fmt.Errorf("%w: only %d bytes of it came within %v", ErrSlowHeader, len(b), p.timeout())
		}
		if err := cutShort(b, end); err != nil {
			return 0, nil, nil, err
		}
		// Any other end of the input: the parser says what the bytes
		// that came are.
	}
	h, rest, err := parse(b)
	if err != nil {
		return 0, nil, nil, err
	}
	if h.Command.IsProxy() && h.SourceAddr != nil {
		remote, local = h.SourceAddr, h.DestinationAddr
	}
	return len(b) - len(rest), remote, local, nil
}

func (p *Policy) timeout() time.Duration {
	if p.Timeout <= 0 {
		return DefaultTimeout
	}
	return p.Timeout
}

// cutShort is the error of a header that had begun, b, when the peer
// ended the input (end: io.EOF, or a reset) before the rest of it came;
// nil for another end, or if nothing came (ErrNoHeader then). The parser
// would call such a header bad, in its own words.
func cutShort(b []byte, end error) error {
	switch {
	case len(b) == 0:
		return nil
	case errors.Is(end, io.EOF):
		return fmt.Errorf("%w: the client closed the connection after %d bytes of it", ErrCutHeader, len(b))
	case errors.Is(end, syscall.ECONNRESET):
		return fmt.Errorf("%w: the client reset the connection (ECONNRESET) after %d bytes of it", ErrCutHeader, len(b))
	}
	return nil
}

// maxV1 is the longest v1 header, CRLF included, as the specification
// bounds it.
const maxV1 = 107

// collect reads from r until what it read holds a whole header, or shows
// that it does not start with one, and returns all it read: the header
// and whatever came after it in the same reads. A read error ends it.
func collect(r io.Reader) ([]byte, error) {
	var buf []byte
	for {
		n := missing(buf)
		if n == 0 {
			return buf, nil
		}
		buf = slices.Grow(buf, max(n, 256))
		got, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+got]
		if err != nil {
			return buf, err
		}
	}
}

// missing returns how many more bytes b needs, at least, before it holds
// a whole header at its start; 0 when it does, or when it cannot be the
// start of one (the parser then says what is wrong).
func missing(b []byte) int {
	switch {
	case len(b) == 0:
		return 1
	case b[0] == proxyproto.SIGV1[0]: // v1: a line of text
		if !bytes.HasPrefix(proxyproto.SIGV1, b[:min(len(b), len(proxyproto.SIGV1))]) {
			return 0
		}
		if bytes.IndexByte(b[:min(len(b), maxV1)], '\n') >= 0 || len(b) >= maxV1 {
			return 0
		}
		return 1
	case b[0] == proxyproto.SIGV2[0]: // v2: 16 bytes, the last two the length of the rest
		if !bytes.HasPrefix(proxyproto.SIGV2, b[:min(len(b), len(proxyproto.SIGV2))]) {
			return 0
		}
		if len(b) < 16 {
			return 16 - len(b)
		}
		return max(0, 16+int(binary.BigEndian.Uint16(b[14:16]))-len(b))
	}
	return 0
}

// parse parses the header at the start of b and returns it with the
// bytes that follow it. The parsing is go-proxyproto's: it gets all of b
// at once, so it never sees a header cut in pieces.
func parse(b []byte) (*proxyproto.Header, []byte, error) {
	r := bytes.NewReader(b)
	br := bufio.NewReaderSize(r, max(len(b), 16))
	h, err := readHeader(br)
	if err != nil {
		return nil, nil, err
	}
	return h, b[len(b)-br.Buffered()-r.Len():], nil
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

// conn is a connection whose header has been read: reads return what
// came after the header in the same reads first, and the addresses are
// the header's.
type conn struct {
	net.Conn
	rest          []byte
	remote, local net.Addr
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	c.rest = nil // drained: read the socket directly from now on
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
