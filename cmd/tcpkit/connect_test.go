package main

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
)

// The seed's run: the server replies "test" and ends the connection; the
// client's next send fails, and tcpkit says so (EPIPE) and exits 3.
func TestConnectSeed(t *testing.T) {
	t.Parallel()
	srv, port := serve(t)
	cl := startTcpkit(t, "connect", "--interval", "100ms", addr(port))
	checkExit(t, "connect", cl.wait(t, waitFor), exitBroken)
	checkLines(t, "connect stdout", cl.stdout.all(), []string{
		"connect to server!",
		"receive: test",
		"disconnected.",
	})
	checkOneLine(t, "connect stderr", cl.stderr.all(), "EPIPE")

	out := afterConnect(t, stop(t, srv), "127.0.0.1", port)
	checkLines(t, "serve stdout after the connect address", out, []string{"testing~"})
}

// With --count the client stops after that many sends, once the last
// reply is in, and exits 0.
func TestConnectCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		serveArgs   []string
		connectArgs []string
		portOnly    bool // give connect PORT alone, for localhost:PORT
		wantClient  []string
		wantServer  []string // after the listen and connect address lines
	}{{
		name:        "ending server",
		connectArgs: []string{"--count", "1", "--interval", "100ms"},
		wantClient:  []string{"connect to server!", "receive: test", "disconnected."},
		wantServer:  []string{"testing~"},
	}, {
		// The client ends after the third reply; the server's FIN that
		// answers it is "disconnected.", as with Node's client.
		name:        "keep-open",
		serveArgs:   []string{"--keep-open"},
		connectArgs: []string{"--count", "3", "--interval", "50ms"},
		wantClient:  []string{"connect to server!", "receive: test", "receive: test", "receive: test", "disconnected."},
		wantServer:  []string{"testing~", "testing~", "testing~"},
	}, {
		name:        "reply",
		serveArgs:   []string{"--keep-open", "--reply", "pong"},
		connectArgs: []string{"--count", "2", "--interval", "50ms"},
		wantClient:  []string{"connect to server!", "receive: pong", "receive: pong", "disconnected."},
		wantServer:  []string{"testing~", "testing~"},
	}, {
		name:        "message",
		connectArgs: []string{"--count", "1", "--message", "ping"},
		wantClient:  []string{"connect to server!", "receive: test", "disconnected."},
		wantServer:  []string{"ping"},
	}, {
		name:        "hex",
		connectArgs: []string{"--count", "1", "--hex"},
		wantClient: []string{
			"connect to server!",
			"receive: 4 bytes",
			"00000000  74 65 73 74                                       |test|", // hexdump -C
			"disconnected.",
		},
		wantServer: []string{"testing~"},
	}, {
		// serve listens on 127.0.0.1 only: this needs localhost to
		// resolve to it (too), as it does wherever IPv4 loopback exists.
		name:        "port only",
		connectArgs: []string{"--count", "1"},
		portOnly:    true,
		wantClient:  []string{"connect to server!", "receive: test", "disconnected."},
		wantServer:  []string{"testing~"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, port := serve(t, tt.serveArgs...)
			target := addr(port)
			if tt.portOnly {
				target = itoa(port)
			}
			cl := startTcpkit(t, append(append([]string{"connect"}, tt.connectArgs...), target)...)
			checkExit(t, "connect", cl.wait(t, waitFor), exitOK)
			checkLines(t, "connect stdout", cl.stdout.all(), tt.wantClient)
			checkLines(t, "connect stderr", cl.stderr.all(), nil)

			out := afterConnect(t, stop(t, srv), "127.0.0.1", port)
			checkLines(t, "serve stdout after the connect address", out, tt.wantServer)
		})
	}
}

// A server that accepts and never replies: --timeout gives up.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	port := listener(t, func(c net.Conn) {
		var b [64]byte
		for { // read what comes, reply nothing
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	})
	code, stdout, stderr := runTcpkit(t, "connect", "--timeout", "300ms", addr(port))
	checkExit(t, "connect", code, exitTimeout)
	checkLines(t, "connect stdout", stdout, []string{"connect to server!", "connection timeout."})
	checkLines(t, "connect stderr", stderr, nil)
}

// A server that resets the connection: exit 3, and the reset is named.
func TestConnectReset(t *testing.T) {
	t.Parallel()
	port := listener(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, len("testing~"))) // not t: this is not the test's goroutine
		c.(*net.TCPConn).SetLinger(0)                 // Close sends RST, not FIN
		c.Close()
	})
	code, stdout, stderr := runTcpkit(t, "connect", addr(port))
	checkExit(t, "connect", code, exitBroken)
	checkLines(t, "connect stdout", stdout, []string{"connect to server!"})
	checkOneLine(t, "connect stderr", stderr, "ECONNRESET")
}

// Ctrl-C ends the connection cleanly and exits 0.
func TestConnectInterrupt(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open")
	cl := startTcpkit(t, "connect", addr(port)) // the next send is a second away
	cl.waitLine(t, "receive: test", waitFor)
	cl.signal(t, os.Interrupt)
	checkExit(t, "connect", cl.wait(t, waitFor), exitOK)
	checkLines(t, "connect stdout", cl.stdout.all(), []string{"connect to server!", "receive: test", "disconnected."})
	checkLines(t, "connect stderr", cl.stderr.all(), nil)
	out := afterConnect(t, stop(t, srv), "127.0.0.1", port)
	checkLines(t, "serve stdout after the connect address", out, []string{"testing~"})
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	refused := addr(refusedPort(t))
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in the one line on stderr
	}{
		{"connection refused", []string{refused}, exitFail, "cannot connect to " + refused + ": connection refused"},
		// bad..host is not a valid domain name, so it fails at once,
		// without a DNS query.
		{"unknown host", []string{"bad..host:5000"}, exitFail, `unknown host "bad..host"`},
		{"port out of range", []string{"99999"}, exitUsage, "port 99999 is out of range"},
		{"port zero", []string{"127.0.0.1:0"}, exitUsage, "port 0 is out of range"},
		{"not a port", []string{"localhost:http"}, exitUsage, "is not a PORT or HOST:PORT"},
		{"two targets", []string{"5000", "5001"}, exitUsage, `unexpected argument "5001"`},
		{"unknown flag", []string{"--bogus", "5000"}, exitUsage, "unknown flag --bogus"},
		{"bad duration", []string{"--interval", "fast", "5000"}, exitUsage, `--interval "fast" is not a duration: use, say, 1s, 500ms or 2m`},
		{"zero interval", []string{"--interval", "0", "5000"}, exitUsage, "must be positive"},
		{"negative count", []string{"--count", "-1", "5000"}, exitUsage, "--count and --timeout not negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runTcpkit(t, append([]string{"connect"}, tt.args...)...)
			checkExit(t, "connect", code, tt.wantCode)
			checkLines(t, "connect stdout", stdout, nil)
			checkOneLine(t, "connect stderr", stderr, tt.want)
			if tt.wantCode == exitUsage && len(stderr) == 1 && !strings.HasSuffix(stderr[0], "(run 'tcpkit connect -h' for help)") {
				t.Errorf("connect stderr: got %q, want it to point to -h", stderr[0])
			}
		})
	}
}
