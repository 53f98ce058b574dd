package main

// Tests of the messages at the edges (issue 12): a busy --metrics
// address, Unix socket paths, TLS handshake timeouts. Helpers here are
// prefixed "em".

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"testing"
	"time"
)

// A busy --metrics address is named with its port and the --metrics
// flag, not as port 0 and --port; a malformed one is a usage error.
func TestMetricsAddressBusyCLI(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	_, port, _ := net.SplitHostPort(busy)
	code, out, errOut := runTcpkit(t, "serve", "--port", "0", "--host", "127.0.0.1", "--metrics", busy)
	checkExit(t, "serve --metrics on a busy port", code, exitFail)
	checkLines(t, "its stdout", out, nil)
	want := regexp.MustCompile(`^tcpkit serve: --metrics: cannot listen on ` + regexp.QuoteMeta(busy) + `: port ` + port +
		` is already in use by (another process|\S+ \(PID \d+\)) \(EADDRINUSE\); pick another address with --metrics$`)
	if len(errOut) != 1 || !want.MatchString(errOut[0]) {
		t.Errorf("its stderr: got %q, want one line matching %s", errOut, want)
	}

	for _, bad := range []string{"9100", "bogus", "127.0.0.1:http", "127.0.0.1:70000"} {
		code, _, errOut := runTcpkit(t, "serve", "--port", "0", "--metrics", bad)
		checkExit(t, "serve --metrics "+bad, code, exitUsage)
		checkLines(t, "its stderr", errOut, []string{`tcpkit serve: --metrics "` + bad + `": want HOST:PORT, such as 127.0.0.1:9100 (run 'tcpkit serve -h' for help)`})
	}
}

// connect --tls to a server that never answers the hello gives up after
// --connect-timeout, not a fixed 5s, and says what likely happened; serve
// --tls-cert says a client that never finished the handshake timed out,
// after --tls-handshake-timeout, instead of "context deadline exceeded".
func TestTLSHandshakeTimeoutCLI(t *testing.T) {
	t.Parallel()
	t.Run("connect", func(t *testing.T) {
		t.Parallel()
		silent := listener(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // a plain server: reads, says nothing
		start := time.Now()
		code, out, errOut := runTcpkit(t, "connect", "--tls", "--insecure", "--connect-timeout", "1s", "--count", "1", addr(silent))
		d := time.Since(start)
		checkExit(t, "connect --tls to a silent server", code, exitFail)
		checkLines(t, "its stdout", out, nil)
		want := regexp.MustCompile(`^tcpkit connect: cannot connect to ` + regexp.QuoteMeta(addr(silent)) +
			`: TLS handshake timed out after \d+(\.\d+)?m?s: the server sent no TLS answer; is it a plain-TCP server waiting for the client to speak first\? \(drop --tls\)$`)
		if len(errOut) != 1 || !want.MatchString(errOut[0]) {
			t.Errorf("its stderr: got %q, want one line matching %s", errOut, want)
		}
		if d < time.Second || d > 3*time.Second {
			t.Errorf("connect gave up after %v, want about the 1s --connect-timeout", d)
		}
	})
	t.Run("serve", func(t *testing.T) {
		t.Parallel()
		cert, key := soCert(t)
		srv, port := serve(t, "--tls-cert", cert, "--tls-key", key, "--tls-handshake-timeout", "1s")
		nc := dial(t, port) // a plain client that waits for the server to speak
		start := time.Now()
		if b, err := io.ReadAll(nc); len(b) != 0 || err != nil {
			t.Errorf("the silent client read %q, %v; want the server's close and nothing else", b, err)
		}
		if d := time.Since(start); d < time.Second || d > 3*time.Second {
			t.Errorf("the server gave up after %v, want about the 1s --tls-handshake-timeout", d)
		}
		srv.waitLine(t, "rejected : "+nc.LocalAddr().String()+" : TLS handshake timed out after 1s (--tls-handshake-timeout): the client did not finish it; a plain-TCP client waiting for the server to speak first?", waitFor)
		nc.Close()
		stop(t, srv)

		for _, args := range [][]string{{"--tls-handshake-timeout", "1s"}, {"--tls-cert", cert, "--tls-key", key, "--tls-handshake-timeout", "0s"}} {
			code, _, errOut := runTcpkit(t, append([]string{"serve", "--port", "0"}, args...)...)
			checkExit(t, fmt.Sprint("serve ", args), code, exitUsage)
			want := "--tls-handshake-timeout and --client-ca go with --tls-cert and --tls-key"
			if len(args) > 2 {
				want = "--tls-handshake-timeout must be positive"
			}
			checkLines(t, "its stderr", errOut, []string{"tcpkit serve: " + want + " (run 'tcpkit serve -h' for help)"})
		}
	})
}
