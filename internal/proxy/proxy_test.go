package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// waitTime bounds every wait: on loopback the events take microseconds.
const waitTime = 5 * time.Second

// A shake is the server side of one loopback connection after
// Policy.Handshake: its result, and the raw connection the client made.
type shake struct {
	conn   net.Conn // Handshake's connection, nil on error
	err    error
	client *net.TCPConn
}

// handshake listens on 127.0.0.1, connects, has the client write wire
// (then keep the connection open, or close it when closeAfter), and
// returns what p.Handshake made of the accepted connection. Both sides
// are closed when the test ends.
func handshake(t *testing.T, p *Policy, wire []byte, closeAfter bool) shake {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.DialTimeout("tcp4", ln.Addr().String(), waitTime)
	if err != nil {
		t.Fatal(err)
	}
	client := nc.(*net.TCPConn)
	t.Cleanup(func() { client.Close() })
	client.SetDeadline(time.Now().Add(waitTime))
	if len(wire) > 0 {
		if _, err := client.Write(wire); err != nil { // one write: one segment on loopback
			t.Fatal(err)
		}
	}
	if closeAfter {
		client.Close()
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitTime))
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := p.Handshake(sc)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.c != nil {
			r.c.SetDeadline(time.Now().Add(waitTime))
		}
		return shake{conn: r.c, err: r.err, client: client}
	case <-time.After(waitTime):
		sc.Close() // ends the Handshake
		<-done
		t.Fatalf("Handshake did not return within %v", waitTime)
		return shake{}
	}
}

// header returns the PROXY header of version v for a connection from src
// to dst.
func header(t *testing.T, v int, src, dst string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHeader(&b, v, tcpAddr(t, src), tcpAddr(t, dst)); err != nil {
		t.Fatalf("WriteHeader(v%d, %s, %s): %v", v, src, dst, err)
	}
	return b.Bytes()
}

func tcpAddr(t *testing.T, s string) *net.TCPAddr {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return net.TCPAddrFromAddrPort(ap)
}

func loopback() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }

// A header of either version, and data in the same segment: the
// connection Handshake returns has the header's addresses, reads exactly
// the bytes after the header, and keeps what tcpkit needs of a
// *net.TCPConn (half-close, the raw socket); writes reach the client.
func TestHandshakeRoundTrip(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 64) // 1 KiB: more than the 256-byte header buffer
	for _, tc := range []struct {
		name     string
		version  int
		src, dst string
		want     string // the header's bytes, exactly
		data     string
	}{
		{"v1 tcp4", 1, "203.0.113.7:40000", "198.51.100.1:5000", "PROXY TCP4 203.0.113.7 198.51.100.1 40000 5000\r\n", "testing~"},
		{"v1 tcp6", 1, "[2001:db8::7]:40000", "[2001:db8::1]:5000", "PROXY TCP6 2001:db8::7 2001:db8::1 40000 5000\r\n", "testing~"},
		{"v2 tcp4", 2, "203.0.113.7:40000", "198.51.100.1:5000", "", "testing~"},
		{"v2 tcp6", 2, "[2001:db8::7]:40000", "[2001:db8::1]:5000", "", "testing~"},
		{"v1 then 1 KiB", 1, "203.0.113.7:40000", "198.51.100.1:5000", "", long},
		{"v2 then 1 KiB", 2, "203.0.113.7:40000", "198.51.100.1:5000", "", long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := header(t, tc.version, tc.src, tc.dst)
			if tc.want != "" && string(h) != tc.want {
				t.Errorf("WriteHeader wrote %q, want %q", h, tc.want)
			}
			if tc.version == 2 && !bytes.HasPrefix(h, proxyproto.SIGV2) {
				t.Errorf("WriteHeader v2 wrote %q, want the v2 signature first", h)
			}
			s := handshake(t, &Policy{From: loopback()}, append(h, tc.data...), false)
			if s.err != nil {
				t.Fatalf("Handshake: %v", s.err)
			}
			if got := s.conn.RemoteAddr().String(); got != tcpAddr(t, tc.src).String() {
				t.Errorf("RemoteAddr = %s, want the header's source %s", got, tc.src)
			}
			if got := s.conn.LocalAddr().String(); got != tcpAddr(t, tc.dst).String() {
				t.Errorf("LocalAddr = %s, want the header's destination %s", got, tc.dst)
			}
			if _, ok := s.conn.RemoteAddr().(*net.TCPAddr); !ok {
				t.Errorf("RemoteAddr is a %T, want *net.TCPAddr", s.conn.RemoteAddr())
			}
			// Exactly the data after the header, none lost nor repeated.
			got := make([]byte, len(tc.data))
			if _, err := io.ReadFull(s.conn, got); err != nil || string(got) != tc.data {
				t.Fatalf("read after the header: %q, %v; want %q", got, err, tc.data)
			}
			tcpish, ok := s.conn.(interface {
				CloseWrite() error
				SyscallConn() (syscall.RawConn, error)
			})
			if !ok {
				t.Fatalf("Handshake returned a %T without CloseWrite and SyscallConn", s.conn)
			}
			if _, err := tcpish.SyscallConn(); err != nil {
				t.Errorf("SyscallConn: %v", err)
			}
			if _, err := io.WriteString(s.conn, "test"); err != nil {
				t.Fatal(err)
			}
			if err := tcpish.CloseWrite(); err != nil { // FIN after the reply
				t.Fatal(err)
			}
			if reply, err := io.ReadAll(s.client); err != nil || string(reply) != "test" {
				t.Errorf("client read %q, %v; want \"test\" then the FIN", reply, err)
			}
			// The client's FIN: EOF on the proxied connection.
			s.client.CloseWrite()
			if n, err := s.conn.Read(make([]byte, 8)); n != 0 || err != io.EOF {
				t.Errorf("read after the client's FIN: %d, %v; want 0, EOF", n, err)
			}
		})
	}
}

// Data the client sends after the header, in later segments, comes
// through in order after what was buffered with the header.
func TestHandshakeDataAfterHeaderLater(t *testing.T) {
	s := handshake(t, &Policy{From: loopback()}, append(header(t, 2, "203.0.113.7:40000", "198.51.100.1:5000"), "first~"...), false)
	if s.err != nil {
		t.Fatalf("Handshake: %v", s.err)
	}
	if _, err := io.WriteString(s.client, "second~"); err != nil {
		t.Fatal(err)
	}
	s.client.CloseWrite()
	got, err := io.ReadAll(s.conn)
	if err != nil || string(got) != "first~second~" {
		t.Errorf("read %q, %v; want \"first~second~\" then EOF", got, err)
	}
}

// No header: ErrNoHeader, whether the client sends something else first
// (the seed's client) or closes without a byte. The error names the cause.
func TestHandshakeMissingHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wire  string
		close bool
	}{
		{"seed message", "testing~", false},
		{"HTTP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"closed at once", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := handshake(t, &Policy{From: loopback()}, []byte(tc.wire), tc.close)
			if !errors.Is(s.err, ErrNoHeader) || s.conn != nil {
				t.Fatalf("Handshake = %v, %v; want nil, ErrNoHeader", s.conn, s.err)
			}
			if want := "no PROXY protocol header: the connection did not come through the load balancer"; s.err.Error() != want {
				t.Errorf("error %q, want %q", s.err, want)
			}
		})
	}
}

// A peer outside From is refused before anything is read: its header,
// true or not, is not looked at, and the Handshake does not wait for it.
func TestHandshakePeerNotAllowed(t *testing.T) {
	others := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{"with a valid header", header(t, 2, "203.0.113.7:40000", "198.51.100.1:5000")},
		{"sending nothing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			s := handshake(t, &Policy{From: others, Timeout: time.Minute}, tc.wire, false)
			if !errors.Is(s.err, ErrPeerNotAllowed) || s.conn != nil {
				t.Fatalf("Handshake = %v, %v; want nil, ErrPeerNotAllowed", s.conn, s.err)
			}
			if d := time.Since(start); d > waitTime/2 {
				t.Errorf("Handshake took %v: it should refuse without reading", d)
			}
		})
	}
	// The same peer inside From is let in.
	s := handshake(t, &Policy{From: append(others, netip.MustParsePrefix("127.0.0.0/8"))}, header(t, 1, "203.0.113.7:40000", "198.51.100.1:5000"), false)
	if s.err != nil || s.conn.RemoteAddr().String() != "203.0.113.7:40000" {
		t.Errorf("with 127.0.0.0/8 allowed: Handshake = %v, %v; want the header's address", s.conn, s.err)
	}
}

// allowed unmaps IPv4-mapped IPv6 peers (a dual-stack listener's view of
// an IPv4 client) and lets no non-IP peer in once From is set.
func TestAllowed(t *testing.T) {
	p := &Policy{From: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("2001:db8::/32")}}
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::5"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("2001:db9::5"), Port: 1}, false},
		{&net.TCPAddr{}, false},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, false},
	} {
		if got := p.allowed(tc.addr); got != tc.want {
			t.Errorf("allowed(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if !(&Policy{}).allowed(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}) {
		t.Errorf("with no From, every peer is allowed")
	}
}

// A malformed header is ErrBadHeader, wrapping the parser's reason, and
// the Handshake does not wait for more.
func TestHandshakeBadHeader(t *testing.T) {
	v2 := header(t, 2, "203.0.113.7:40000", "198.51.100.1:5000")
	badVersion := slices.Clone(v2)
	badVersion[12] = 0x31 // version 3, command PROXY
	badFamily := slices.Clone(v2)
	badFamily[13] = 0x71 // no such address family
	shortLen := slices.Clone(v2)
	shortLen[14], shortLen[15] = 0, 4 // fewer bytes than two IPv4 addresses and ports
	for _, tc := range []struct {
		name  string
		wire  []byte
		close bool
		cause error // the go-proxyproto error wrapped, if it is one of its sentinels
	}{
		{"v1 bad address", []byte("PROXY TCP4 bogus 198.51.100.1 40000 5000\r\ntesting~"), false, proxyproto.ErrInvalidAddress},
		{"v1 bad port", []byte("PROXY TCP4 203.0.113.7 198.51.100.1 99999 5000\r\ntesting~"), false, proxyproto.ErrInvalidPortNumber},
		{"v1 no CRLF", []byte("PROXY TCP4 203.0.113.7 198.51.100.1 40000 5000\ntesting~"), false, proxyproto.ErrLineMustEndWithCrlf},
		{"v1 too long", []byte("PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n"), false, proxyproto.ErrVersion1HeaderTooLong},
		{"v2 version 3", badVersion, false, nil},
		{"v2 bad family", badFamily, false, nil},
		{"v2 short length", shortLen, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := handshake(t, &Policy{From: loopback(), Timeout: time.Minute}, tc.wire, tc.close)
			if !errors.Is(s.err, ErrBadHeader) || s.conn != nil {
				t.Fatalf("Handshake = %v, %v; want nil, ErrBadHeader", s.conn, s.err)
			}
			if !strings.HasPrefix(s.err.Error(), "bad PROXY protocol header: ") {
				t.Errorf("error %q, want it to start with \"bad PROXY protocol header: \"", s.err)
			}
			if tc.cause != nil && !errors.Is(s.err, tc.cause) {
				t.Errorf("error %q does not wrap %q", s.err, tc.cause)
			}
		})
	}
}

// A peer that closes the connection in the middle of its header gets
// ErrCutHeader, saying how much came, not the parser's reason: the
// header was not bad, only cut short.
func TestHandshakeCutShort(t *testing.T) {
	v2 := header(t, 2, "203.0.113.7:40000", "198.51.100.1:5000")
	for _, tc := range []struct {
		name string
		wire []byte
		want string
	}{
		{"v1", []byte("PROXY TCP4 203.0.113.7"), "PROXY protocol header cut short: the client closed the connection after 22 bytes of it"},
		{"v2", v2[:20], "PROXY protocol header cut short: the client closed the connection after 20 bytes of it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := handshake(t, &Policy{From: loopback(), Timeout: time.Minute}, tc.wire, true)
			if !errors.Is(s.err, ErrCutHeader) || s.err.Error() != tc.want || s.conn != nil {
				t.Fatalf("Handshake = %v, %v; want nil, %q", s.conn, s.err, tc.want)
			}
		})
	}
}

// A peer that sends nothing is cut after Policy.Timeout with ErrNoHeader;
// one that starts a header and stops, with ErrSlowHeader. Each says how
// long it waited.
func TestHandshakeTimeout(t *testing.T) {
	for _, tc := range []struct{ name, wire, want string }{
		{"silent", "", "no PROXY protocol header: the connection did not come through the load balancer: nothing came within 100ms"},
		{"partial v1 signature", "PROX", "incomplete PROXY protocol header: only 4 bytes of it came within 100ms"},
		{"partial v1 header", "PROXY TCP4 203.0.113.7 198.51.100.1", "incomplete PROXY protocol header: only 35 bytes of it came within 100ms"},
		{"partial v2 signature", "\r\n\r\n", "incomplete PROXY protocol header: only 4 bytes of it came within 100ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			s := handshake(t, &Policy{From: loopback(), Timeout: 100 * time.Millisecond}, []byte(tc.wire), false)
			d := time.Since(start)
			if s.err == nil || s.err.Error() != tc.want || s.conn != nil {
				t.Fatalf("Handshake = %v, %v; want %q", s.conn, s.err, tc.want)
			}
			if got, want := errors.Is(s.err, ErrSlowHeader), tc.wire != ""; got != want {
				t.Errorf("errors.Is(%v, ErrSlowHeader) = %v, want %v", s.err, got, want)
			}
			if got, want := errors.Is(s.err, ErrNoHeader), tc.wire == ""; got != want {
				t.Errorf("errors.Is(%v, ErrNoHeader) = %v, want %v", s.err, got, want)
			}
			if d < 100*time.Millisecond || d > waitTime/2 {
				t.Errorf("Handshake gave up after %v, want about the 100ms Timeout", d)
			}
		})
	}
}

// A LOCAL command (a balancer's own health check) and v1's UNKNOWN carry
// no client address: the connection keeps its real addresses.
func TestHandshakeLocalKeepsAddresses(t *testing.T) {
	local := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	v2local, err := local.Format()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{"v2 LOCAL", v2local},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n")},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN 203.0.113.7 198.51.100.1 40000 5000\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := handshake(t, &Policy{From: loopback()}, append(tc.wire, "testing~"...), false)
			if s.err != nil {
				t.Fatalf("Handshake: %v", s.err)
			}
			if got, want := s.conn.RemoteAddr().String(), s.client.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr = %s, want the real peer %s", got, want)
			}
			if got, want := s.conn.LocalAddr().String(), s.client.RemoteAddr().String(); got != want {
				t.Errorf("LocalAddr = %s, want the real local address %s", got, want)
			}
			got := make([]byte, 8)
			if _, err := io.ReadFull(s.conn, got); err != nil || string(got) != "testing~" {
				t.Errorf("read after the header: %q, %v; want \"testing~\"", got, err)
			}
		})
	}
}

// Over a connection that is not TCP, Handshake works the same and returns
// a connection without the TCP extras.
func TestHandshakeNotTCP(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	wire := append(header(t, 1, "203.0.113.7:40000", "198.51.100.1:5000"), "testing~"...)
	go client.Write(wire)
	c, err := (&Policy{}).Handshake(server)
	if err != nil {
		t.Fatalf("Handshake: %v", err)
	}
	if _, ok := c.(interface{ CloseWrite() error }); ok {
		t.Errorf("Handshake over a pipe returned a %T with CloseWrite", c)
	}
	if got := c.RemoteAddr().String(); got != "203.0.113.7:40000" {
		t.Errorf("RemoteAddr = %s, want 203.0.113.7:40000", got)
	}
	got := make([]byte, 8)
	c.SetDeadline(time.Now().Add(waitTime))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "testing~" {
		t.Errorf("read after the header: %q, %v; want \"testing~\"", got, err)
	}
}

func TestWriteHeaderVersion(t *testing.T) {
	src, dst := tcpAddr(t, "203.0.113.7:40000"), tcpAddr(t, "198.51.100.1:5000")
	for _, v := range []int{0, 3, -1} {
		var b bytes.Buffer
		err := WriteHeader(&b, v, src, dst)
		if err == nil || err.Error() != "PROXY protocol version "+strconv.Itoa(v)+": use 1 or 2" || b.Len() != 0 {
			t.Errorf("WriteHeader(v%d) = %v, wrote %q; want an error naming the version and nothing written", v, err, b.Bytes())
		}
	}
}

func TestParseFrom(t *testing.T) {
	const empty = " has an empty entry: list CIDRs or IP addresses, comma-separated, such as 10.0.0.0/8,192.0.2.7"
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, ""},
		{"127.0.0.1", []string{"127.0.0.1/32"}, ""},
		{"::1", []string{"::1/128"}, ""},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, ""}, // masked
		{"2001:db8::1/32, 192.0.2.7", []string{"2001:db8::/32", "192.0.2.7/32"}, ""},
		{"10.0.0.0/8,bogus", nil, `"bogus" is not a CIDR or an IP address`},
		{"10.0.0.0/33", nil, `"10.0.0.0/33" is not a CIDR or an IP address`},
		{"example.com", nil, `"example.com" is not a CIDR or an IP address`},
		// Fail closed: no empty entry may turn into "any peer".
		{"", nil, `""` + empty},
		{",", nil, `","` + empty},
		{" ", nil, `" "` + empty},
		{"10.0.0.0/8,", nil, `"10.0.0.0/8,"` + empty},
		{",10.0.0.0/8", nil, `",10.0.0.0/8"` + empty},
		{"10.0.0.0/8,,192.0.2.7", nil, `"10.0.0.0/8,,192.0.2.7"` + empty},
	} {
		got, err := ParseFrom(tc.in)
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		switch {
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr || got != nil):
			t.Errorf("ParseFrom(%q) = %v, %v; want error %q", tc.in, gotS, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !slices.Equal(gotS, tc.want)):
			t.Errorf("ParseFrom(%q) = %q, %v; want %q", tc.in, gotS, err, tc.want)
		}
	}
}

// The header's reader never panics, says ErrNoHeader or ErrBadHeader
// when it fails, and after a header leaves exactly the bytes that
// followed it. Cut in two at any offset, the input gives the same result
// as in one piece.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 198.51.100.1 40000 5000\r\ntesting~"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40000 5000\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("testing~"))
	f.Add([]byte{})
	for _, v := range []byte{1, 2} {
		var b bytes.Buffer
		proxyproto.HeaderProxyFromAddrs(v, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 40000}, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 5000}).WriteTo(&b)
		b.WriteString("testing~")
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, rest, err := parse(data)
		if err != nil {
			if h != nil {
				t.Fatalf("parse returned a header and %v", err)
			}
			if !errors.Is(err, ErrNoHeader) && !errors.Is(err, ErrBadHeader) {
				t.Fatalf("parse error %v is neither ErrNoHeader nor ErrBadHeader", err)
			}
			if len(data) > 0 && data[0] != 'P' && data[0] != '\r' && !errors.Is(err, ErrNoHeader) {
				t.Fatalf("data starting with %q: %v, want ErrNoHeader", data[0], err)
			}
		} else {
			if h == nil {
				t.Fatal("parse returned neither a header nor an error")
			}
			if !bytes.HasSuffix(data, rest) {
				t.Fatalf("after the header: %q, not the end of the input %q", rest, data)
			}
			if h.Command.IsProxy() && h.SourceAddr != nil && h.DestinationAddr == nil {
				t.Fatalf("header with a source and no destination: %+v", h)
			}
		}
		for cut := 0; cut <= min(len(data), 200); cut++ {
			buf, rerr := collect(&pieces{parts: [][]byte{data[:cut], data[cut:]}})
			if rerr != nil && rerr != io.EOF {
				t.Fatalf("cut at %d: collect: %v", cut, rerr)
			}
			if !bytes.HasPrefix(data, buf) {
				t.Fatalf("cut at %d: collect returned %q, not the start of %q", cut, buf, data)
			}
			h2, rest2, err2 := parse(buf)
			switch {
			case (err == nil) != (err2 == nil), err != nil && err.Error() != err2.Error():
				t.Fatalf("cut at %d: %v, in one piece: %v", cut, err2, err)
			case err == nil && !h.EqualsTo(h2):
				t.Fatalf("cut at %d: header %+v, in one piece: %+v", cut, h2, h)
			case err == nil && !bytes.HasPrefix(rest, rest2):
				t.Fatalf("cut at %d: after the header %q, in one piece %q", cut, rest2, rest)
			}
		}
	})
}

// pieces is a reader that returns its parts one read at a time, then
// io.EOF: a peer that sends them in separate segments.
type pieces struct{ parts [][]byte }

func (p *pieces) Read(b []byte) (int, error) {
	for len(p.parts) > 0 && len(p.parts[0]) == 0 {
		p.parts = p.parts[1:]
	}
	if len(p.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	p.parts[0] = p.parts[0][n:]
	return n, nil
}

// A readCounter is the server's side of a connection that reports the
// size of each read, so that a test sends the next piece of a header
// only once the server has read the last: the header then arrives in
// pieces for certain, not merged in the socket's buffer.
type readCounter struct {
	net.Conn
	reads chan int
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.reads <- n
	}
	return n, err
}

// inPieces connects to a listener on 127.0.0.1, sends pieces one after
// the other, each once the server has read everything before it, and
// returns what p.Handshake made of the connection.
func inPieces(t *testing.T, p *Policy, pieces [][]byte) shake {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.DialTimeout("tcp4", ln.Addr().String(), waitTime)
	if err != nil {
		t.Fatal(err)
	}
	client := nc.(*net.TCPConn)
	t.Cleanup(func() { client.Close() })
	client.SetDeadline(time.Now().Add(waitTime))
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitTime))
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	total := 0
	for _, piece := range pieces {
		total += len(piece)
	}
	rc := &readCounter{Conn: sc, reads: make(chan int, total+1)}
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := p.Handshake(rc)
		done <- result{c, err}
	}()
	deadline := time.NewTimer(waitTime)
	defer deadline.Stop()
	var r *result // once the Handshake returned
	sent, read := 0, 0
	for i, piece := range pieces {
		if _, err := client.Write(piece); err != nil {
			t.Fatalf("writing piece %d: %v", i+1, err)
		}
		sent += len(piece)
		for r == nil && read < sent && i < len(pieces)-1 { // the last piece need not be read whole
			select {
			case n := <-rc.reads:
				read += n
			case res := <-done:
				r = &res // the rest is data after the header, or not read at all
			case <-deadline.C:
				t.Fatalf("the server read %d of the %d bytes sent within %v", read, sent, waitTime)
			}
		}
	}
	if r == nil {
		select {
		case res := <-done:
			r = &res
		case <-deadline.C:
			sc.Close()
			<-done
			t.Fatalf("Handshake did not return within %v", waitTime)
		}
	}
	if r.c != nil {
		r.c.SetDeadline(time.Now().Add(waitTime))
	}
	return shake{conn: r.c, err: r.err, client: client}
}

// splitAt cuts b into pieces at the offsets given, in increasing order.
func splitAt(b []byte, offsets ...int) [][]byte {
	var pieces [][]byte
	last := 0
	for _, o := range offsets {
		pieces = append(pieces, b[last:o])
		last = o
	}
	return append(pieces, b[last:])
}

// A header that arrives in pieces, within the timeout, is as good as one
// that arrives whole: cut in two at every offset, and one byte at a
// time, for v1 and v2, IPv4 and IPv6. The data after it comes through.
func TestHandshakeHeaderInPieces(t *testing.T) {
	for _, tc := range []struct {
		name     string
		version  int
		src, dst string
	}{
		{"v1 tcp4", 1, "203.0.113.7:40000", "198.51.100.1:5000"},
		{"v1 tcp6", 1, "[2001:db8::7]:40000", "[2001:db8::1]:5000"},
		{"v2 tcp4", 2, "203.0.113.7:40000", "198.51.100.1:5000"},
		{"v2 tcp6", 2, "[2001:db8::7]:40000", "[2001:db8::1]:5000"},
	} {
		h := header(t, tc.version, tc.src, tc.dst)
		check := func(t *testing.T, s shake) {
			t.Helper()
			if s.err != nil {
				t.Fatalf("Handshake: %v", s.err)
			}
			if got := s.conn.RemoteAddr().String(); got != tcpAddr(t, tc.src).String() {
				t.Errorf("RemoteAddr = %s, want the header's source %s", got, tc.src)
			}
			if got := s.conn.LocalAddr().String(); got != tcpAddr(t, tc.dst).String() {
				t.Errorf("LocalAddr = %s, want the header's destination %s", got, tc.dst)
			}
			got := make([]byte, len("testing~"))
			if _, err := io.ReadFull(s.conn, got); err != nil || string(got) != "testing~" {
				t.Errorf("read after the header: %q, %v; want \"testing~\"", got, err)
			}
		}
		wire := append(slices.Clone(h), "testing~"...)
		t.Run(tc.name+"/cut in two", func(t *testing.T) {
			for at := 1; at < len(h); at++ {
				t.Run("at "+strconv.Itoa(at), func(t *testing.T) {
					check(t, inPieces(t, &Policy{From: loopback()}, splitAt(wire, at)))
				})
			}
		})
		t.Run(tc.name+"/byte by byte", func(t *testing.T) {
			offsets := make([]int, 0, len(h))
			for at := 1; at <= len(h); at++ {
				offsets = append(offsets, at)
			}
			check(t, inPieces(t, &Policy{From: loopback()}, splitAt(wire, offsets...)))
		})
	}
}
