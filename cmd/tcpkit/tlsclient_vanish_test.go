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

// A client that vanishes in the middle of the TLS handshake is reported
// by serve in words, on both engines, not as Go's error text.
func TestTLSServeClientVanishesCLI(t *testing.T) {
	t.Parallel()
	forEachCLIEngine(t, func(t *testing.T, engine string) {
		cert, key := soCert(t)
		srv, port := serve(t, "--engine", engine, "--tls-cert", cert, "--tls-key", key)
		for _, tc := range []struct {
			name string
			send []byte
			rst  bool
			want string
		}{
			{"reset before a byte", nil, true, "TLS handshake failed: the client reset the connection before the handshake was done (ECONNRESET)"},
			{"reset mid-record", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, true, "TLS handshake failed: the client reset the connection before the handshake was done (ECONNRESET)"},
			{"FIN before a byte", nil, false, "TLS handshake failed: the client closed the connection before the handshake was done"},
			{"FIN mid-record", []byte{0x16, 0x03, 0x01}, false, "TLS handshake failed: the client closed the connection before the handshake was done"},
		} {
			c := dial(t, port)
			write(t, c, string(tc.send))
			if tc.rst {
				c.SetLinger(0)
			}
			c.Close()
			soRejected(t, srv, port, tc.want)
		}
	})
}
