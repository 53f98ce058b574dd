package main

import (
	"testing"
)

// A client that closes or resets the connection in the middle of its
// PROXY header is refused as one whose header is incomplete, in words:
// not as a bad header with go-proxyproto's own text.
func TestProxyHeaderCutCLI(t *testing.T) {
	t.Parallel()
	forEachCLIEngine(t, func(t *testing.T, engine string) {
		srv, port := serve(t, "--engine", engine, "--proxy-protocol")
		v2 := "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" // a v2 signature and length, no addresses
		for _, tc := range []struct {
			name, wire string
			rst        bool
			want       string
		}{
			{"v1 then FIN", "PROXY TCP4 192.0.2.1 ", false, "PROXY protocol header cut short: the client closed the connection after 21 bytes of it"},
			{"v1 then reset", "PROXY TCP4 192.0.2.1 ", true, "PROXY protocol header cut short: the client reset the connection (ECONNRESET) after 21 bytes of it"},
			{"v2 then FIN", v2, false, "PROXY protocol header cut short: the client closed the connection after 16 bytes of it"},
		} {
			c := dial(t, port)
			write(t, c, tc.wire)
			if tc.rst {
				c.SetLinger(0)
			}
			c.Close()
			soRejected(t, srv, port, tc.want)
		}
	})
}
