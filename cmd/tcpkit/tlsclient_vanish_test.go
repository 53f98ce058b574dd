package main

import (
	"io"
	"net"
	"testing"
)

// A server that vanishes in the middle of the TLS handshake (closes,
// resets, or stops mid-record) gets a one-line reason from connect, not
// Go's "EOF" or "read tcp A->B: read: connection reset by peer".
func TestTLSClientServerVanishesCLI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		act  func(c *net.TCPConn)
		want string
	}{
		{"FIN after the ClientHello", func(c *net.TCPConn) { c.Close() },
			"the server closed the connection during the TLS handshake; does it speak TLS on this port? (drop --tls if not)"},
		{"FIN mid-record", func(c *net.TCPConn) { c.Write([]byte{0x16, 0x03, 0x03}); c.Close() },
			"the server closed the connection during the TLS handshake; does it speak TLS on this port? (drop --tls if not)"},
		{"reset after the ClientHello", func(c *net.TCPConn) { c.SetLinger(0); c.Close() },
			"the server reset the connection during the TLS handshake (ECONNRESET); does it speak TLS on this port? (drop --tls if not)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := listener(t, func(c net.Conn) {
				// Read the ClientHello's record whole: a close with input
				// unread would be a reset.
				hdr := make([]byte, 5)
				if _, err := io.ReadFull(c, hdr); err != nil {
					return
				}
				if _, err := io.ReadFull(c, make([]byte, int(hdr[3])<<8|int(hdr[4]))); err != nil {
					return
				}
				tc.act(c.(*net.TCPConn))
			})
			code, out, errOut := runTcpkit(t, "connect", "--tls", "--insecure", addr(port))
			checkExit(t, "connect --tls", code, exitFail)
			checkLines(t, "its stdout", out, nil)
			checkLines(t, "its stderr", errOut, []string{"tcpkit connect: cannot connect to " + addr(port) + ": TLS handshake failed: " + tc.want})
		})
	}
}
