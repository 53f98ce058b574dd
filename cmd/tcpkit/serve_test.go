package main

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The server prints the client's real address (not its own, as the seed's
// socket.address() does), then each message; it replies and sends FIN.
func TestServeClientAddress(t *testing.T) {
	t.Parallel()
	srv, port := serve(t)
	c := dial(t, port)
	clientPort := c.LocalAddr().(*net.TCPAddr).Port
	srv.waitLine(t, "connect address : "+addr(clientPort), waitFor)
	write(t, c, "hello")
	if got := readAll(t, c); got != "test" {
		t.Errorf("reply until FIN: got %q, want %q", got, "test")
	}
	c.Close()
	out := stop(t, srv)
	checkLines(t, "serve stdout", out, []string{
		listenWant(port, "127.0.0.1"),
		"connect address : " + addr(clientPort),
		"hello",
	})
	// The connection may still be closing (0 or 1 open): only "cleanly".
	checkOneLine(t, "serve stderr", srv.stderr.all(), "ended cleanly")
}

// Messages print as text: a trailing newline is dropped, as the line gets
// its own; invalid UTF-8 shows as U+FFFD.
func TestServeText(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open")
	c := dial(t, port)
	for _, tt := range []struct{ send, want string }{
		{"line\n", "line"},
		{"h\xffllo", "h\uFFFDllo"},
		{"한국어", "한국어"},
	} {
		write(t, c, tt.send)
		readN(t, c, len("test")) // one message at a time: no coalescing
		srv.waitLine(t, tt.want, waitFor)
	}
}

func TestServeQuiet(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--quiet", "--reply", "pong")
	c := dial(t, port)
	write(t, c, "hello")
	if got := readAll(t, c); got != "pong" {
		t.Errorf("reply until FIN: got %q, want %q", got, "pong")
	}
	c.Close()
	checkLines(t, "serve stdout", stop(t, srv), []string{listenWant(port, "127.0.0.1")})
}

// --idle-timeout ends a silent connection and says so.
func TestServeIdleTimeout(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--idle-timeout", "200ms")
	c := dial(t, port)
	if got := readAll(t, c); got != "" { // the server's FIN, after 200ms
		t.Errorf("got %q from the server, want nothing", got)
	}
	c.Close()
	out := afterConnect(t, stop(t, srv), "127.0.0.1", port)
	checkLines(t, "serve stdout after the connect address", out, []string{"idle timeout : " + c.LocalAddr().String()})
}

// --idle-timeout ends a connection whose client sends but never reads;
// the FIN then waits behind the echo the client does not take, and one
// more idle period later the connection is cut (a reset) and says why.
// Before, it stayed open for ever.
func TestServeIdleTimeoutCutsStalledEnd(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--mode", "echo", "--idle-timeout", "500ms")
	c := dial(t, port)
	chunk := make([]byte, 1<<20)
	var err error
	for sent := 0; err == nil && sent < 1<<30; sent += len(chunk) {
		c.SetWriteDeadline(time.Now().Add(waitFor))
		_, err = c.Write(chunk) // until the server stops reading, then the cut
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("client write: %v, want the reset of the cut", err)
	}
	srv.waitLine(t, "idle timeout : "+c.LocalAddr().String(), waitFor)
	srv.waitLine(t, "error : "+c.LocalAddr().String()+" : end timeout: the peer took none of the remaining output for 500ms after the connection was ended, so it was cut", waitFor)
	stop(t, srv)
}

// A client that resets the connection: the server prints the error and
// goes on serving.
func TestServeClientReset(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open")
	c := dial(t, port)
	write(t, c, "hello")
	readN(t, c, len("test")) // the server now waits in a read
	c.SetLinger(0)           // Close sends RST
	c.Close()
	srv.waitLine(t, "error : "+c.LocalAddr().String()+" : the client reset the connection (ECONNRESET: connection reset by peer)", waitFor)

	c2 := dial(t, port) // still serving
	write(t, c2, "again")
	if got := readN(t, c2, len("test")); got != "test" {
		t.Errorf("reply: got %q, want %q", got, "test")
	}
}

// SIGTERM ends open connections with a FIN, waits for them to close and
// exits 0. The client (tcpkit connect) sees "disconnected." and, as in
// the seed, fails on its next send.
func TestServeSIGTERM(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open")
	cl := startTcpkit(t, "connect", "--interval", "100ms", addr(port))
	cl.waitLine(t, "receive: test", waitFor)
	srv.signal(t, syscall.SIGTERM)
	checkExit(t, "serve", srv.wait(t, waitFor), exitOK)
	checkOneLine(t, "serve stderr", srv.stderr.all(), "tcpkit serve: stopped; 1 open connection")
	checkOneLine(t, "serve stderr", srv.stderr.all(), "ended cleanly")
	cl.waitLine(t, "disconnected.", waitFor)
	checkExit(t, "connect", cl.wait(t, waitFor), exitBroken)
	checkOneLine(t, "connect stderr", cl.stderr.all(), "EPIPE")
}

// A client that does not answer the server's FIN holds shutdown up for
// --drain-timeout at most; then it is cut and serve exits 1.
func TestServeDrainTimeout(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open", "--drain-timeout", "200ms")
	c := dial(t, port)
	write(t, c, "hello")
	readN(t, c, len("test")) // the connection is up; now never close it
	srv.signal(t, syscall.SIGTERM)
	checkExit(t, "serve", srv.wait(t, waitFor), exitFail)
	checkOneLine(t, "serve stderr", srv.stderr.all(), "tcpkit serve: stopped; 1 of 1 open connections did not end within --drain-timeout 200ms")
	if got := readAll(t, c); got != "" {
		t.Errorf("after the reply: got %q, want the server's FIN", got)
	}
}

func TestServeErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // holds its port for the test
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := itoa(ln.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in the one line on stderr
	}{
		{"port in use", []string{"--port", busy, "--host", "127.0.0.1"}, exitFail, "port " + busy + " is already in use"},
		{"unknown host", []string{"--port", "0", "--host", "bad..host"}, exitFail, `unknown host "bad..host"`},
		{"port out of range", []string{"--port", "70000"}, exitUsage, "--port 70000 is out of range"},
		{"negative port", []string{"--port", "-1"}, exitUsage, "--port -1 is out of range"},
		{"port not a number", []string{"--port", "http"}, exitUsage, `--port "http" is not a whole number`},
		{"unknown flag", []string{"--bogus"}, exitUsage, "unknown flag --bogus"},
		{"positional argument", []string{"5000"}, exitUsage, `unexpected argument "5000"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runTcpkit(t, append([]string{"serve"}, tt.args...)...)
			checkExit(t, "serve", code, tt.wantCode)
			checkLines(t, "serve stdout", stdout, nil)
			checkOneLine(t, "serve stderr", stderr, tt.want)
		})
	}
}

// serve --host ::1 and connect [::1]:PORT.
func TestServeIPv6(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("cannot listen on ::1: %v", err)
	}
	ln.Close()
	srv, port := serveOn(t, "::1")
	target := net.JoinHostPort("::1", itoa(port))
	code, stdout, stderr := runTcpkit(t, "connect", "--count", "1", target)
	checkExit(t, "connect", code, exitOK)
	checkLines(t, "connect stdout", stdout, []string{"connect to server!", "receive: test", "disconnected."})
	checkLines(t, "connect stderr", stderr, nil)
	out := afterConnect(t, stop(t, srv), "::1", port)
	checkLines(t, "serve stdout after the connect address", out, []string{"testing~"})
}

// The command line: help, unknown commands, each command's -h.
func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string // how stdout's first line starts, or "" for no stdout
		wantStderr string // in the one line of stderr, or "" for none
	}{
		{[]string{"help"}, exitOK, "Usage: tcpkit <command> [flags] [args]", ""},
		{[]string{"-h"}, exitOK, "Usage: tcpkit <command> [flags] [args]", ""},
		{[]string{"--help"}, exitOK, "Usage: tcpkit <command> [flags] [args]", ""},
		{[]string{"serve", "-h"}, exitOK, "Usage: tcpkit serve [flags]", ""},
		{[]string{"connect", "--help"}, exitOK, "Usage: tcpkit connect [flags]", ""},
		{[]string{"nosuch"}, exitUsage, "", `tcpkit: unknown command "nosuch" (run 'tcpkit help' for the list)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runTcpkit(t, tt.args...)
			checkExit(t, "tcpkit", code, tt.wantCode)
			if tt.wantStdout == "" {
				checkLines(t, "stdout", stdout, nil)
			} else if len(stdout) == 0 || !strings.HasPrefix(stdout[0], tt.wantStdout) {
				t.Errorf("stdout: got %d lines, the first %q; want a first line starting with %q", len(stdout), first(stdout), tt.wantStdout)
			}
			if tt.wantStderr == "" {
				checkLines(t, "stderr", stderr, nil)
			} else {
				checkLines(t, "stderr", stderr, []string{tt.wantStderr})
			}
		})
	}

	// No command at all: the usage, on stderr, exit 2.
	code, stdout, stderr := runTcpkit(t)
	checkExit(t, "tcpkit", code, exitUsage)
	checkLines(t, "stdout", stdout, nil)
	if want := "Usage: tcpkit <command> [flags] [args]"; first(stderr) != want {
		t.Errorf("stderr: got %d lines, the first %q; want the usage, first line %q", len(stderr), first(stderr), want)
	}
}

// first returns the first of lines, or "".
func first(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[0]
}

// SIGTERM while a TLS handshake is in flight (a client that connected and
// sent nothing): the connection counts as open, gets the same second to
// finish its handshake as any connection gets to send its first message,
// and the server exits then, not after the 5 s handshake timeout.
func TestServeShutdownWithTLSHandshakeInFlight(t *testing.T) {
	t.Parallel()
	cert, key := soCert(t)
	srv, port := serve(t, "--tls-cert", cert, "--tls-key", key)
	c := dial(t, port) // no ClientHello
	relPollStatus(t, srv, "the connection in its handshake counted", waitFor, func(s relStatus) bool { return s.conns == 1 })
	start := time.Now()
	srv.signal(t, syscall.SIGTERM)
	readAll(t, c)
	checkExit(t, "serve", srv.wait(t, waitFor), exitOK)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("serve took %v to stop, want about a second", took)
	}
	errLines := srv.stderr.all()
	checkLines(t, "serve's last line", errLines[len(errLines)-1:], []string{"tcpkit serve: stopped; 1 open connection ended cleanly"})
}
