package main

// Tests of connect's edges (issue 12): --count not reached, an empty
// --message, --expect with --expect-re, and a check's verdict on a long
// reply. Helpers here are prefixed "ce".

import (
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
)

// A server that ends the connection without replying to the last of
// --count sends has not let the count be reached: exit 3 and a line that
// says so, not 0. The --max-conns rejection of issue 12 is one such.
func TestConnectCountNotReachedCLI(t *testing.T) {
	t.Parallel()
	t.Run("ends without a reply", func(t *testing.T) {
		t.Parallel()
		port := listener(t, func(c net.Conn) {
			io.ReadFull(c, make([]byte, len("testing~"))) // takes the message: the close is a FIN
			c.Close()
		})
		code, out, errOut := runTcpkit(t, "connect", "--count", "1", addr(port))
		checkExit(t, "connect --count 1", code, exitBroken)
		checkLines(t, "its stdout", out, []string{"connect to server!", "disconnected."})
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: the server ended the connection without replying to send 1 of --count 1"})
	})
	t.Run("replies to the first of two, then ends", func(t *testing.T) {
		t.Parallel()
		port := listener(t, func(c net.Conn) {
			io.ReadFull(c, make([]byte, len("testing~")))
			io.WriteString(c, "test")
			io.ReadFull(c, make([]byte, len("testing~")))
			c.Close()
		})
		code, out, errOut := runTcpkit(t, "connect", "--count", "2", "--interval", "300ms", addr(port)) // the reply comes well before the second send
		checkExit(t, "connect --count 2", code, exitBroken)
		checkLines(t, "its stdout", out, []string{"connect to server!", "receive: test", "disconnected."})
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: the server ended the connection without replying to send 2 of --count 2"})
	})
	t.Run("--max-conns rejection", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, "--max-conns", "1", "--keep-open")
		holder := dial(t, port)
		srv.stdout.waitPrefix(t, "connect address : ", waitFor)
		code, out, errOut := runTcpkit(t, "connect", "--count", "1", addr(port))
		checkExit(t, "connect --count 1 to a full server", code, exitBroken)
		if len(out) == 0 || out[0] != "connect to server!" || len(errOut) != 1 {
			t.Errorf("connect: stdout %q, stderr %q; want \"connect to server!\" first and one line on stderr", out, errOut)
		}
		soRejected(t, srv, port, "too many connections (--max-conns 1)")
		holder.Close()
		stop(t, srv)
	})
}

// An empty --message, and --expect with --expect-re, are usage errors,
// at once: the first hung, the second ignored --expect-re.
func TestConnectUsageEdgesCLI(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--mode", "echo", "--keep-open")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--message", "", "--count", "1"}, "--message is empty: an empty send sends nothing, so no reply would come; give at least one byte"},
		{[]string{"--send", "PING", "--expect", "PONG", "--expect-re", "P.NG"}, "give --expect or --expect-re, not both"},
	} {
		code, out, errOut := runTcpkit(t, append(append([]string{"connect"}, tc.args...), addr(port))...)
		checkExit(t, strings.Join(tc.args, " "), code, exitUsage)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: " + tc.want + " (run 'tcpkit connect -h' for help)"})
	}
	checkLines(t, "serve stdout", stop(t, srv)[1:], nil) // no connection was made
}

// A check's verdict shows at most 256 bytes of the reply, escaped, and
// says how many there were: a 70,000-byte reply is not one 64 KiB line.
func TestCheckVerdictCapCLI(t *testing.T) {
	t.Parallel()
	head := "\x1b]0;title\x07" + strings.Repeat("x", 300) // control bytes come out escaped
	long := listener(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, len("PING\n"))) // all read: the close is a FIN, not a reset
		io.WriteString(c, head+strings.Repeat("y", 70000-len(head)))
		c.Close()
	})
	code, out, errOut := runTcpkit(t, "connect", "--send", `PING\n`, "--expect", "PONG", addr(long))
	checkExit(t, "connect --expect, a long wrong reply", code, exitFail)
	checkLines(t, "its stdout", out, nil)
	shown := `"\x1b]0;title\a` + strings.Repeat("x", 256-len("\x1b]0;title\x07")) + `"`
	checkLines(t, "its stderr", errOut, []string{"tcpkit connect: check failed: the server ended the connection first; received 70000 bytes, the first 256: " +
		shown + ` (69744 more not shown), want "PONG"`})

	match := listener(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, len("PING\n")))
		io.WriteString(c, strings.Repeat("z", 300)+"PONG")
		c.Close()
	})
	code, out, errOut = runTcpkit(t, "connect", "--send", `PING\n`, "--expect", "PONG", addr(match))
	checkExit(t, "connect --expect, a long right reply", code, exitOK)
	checkLines(t, "its stderr", errOut, nil)
	want := regexp.MustCompile(`^ok: 304 bytes, the first 256: "z{256}" \(48 more not shown\) matched "PONG" after \S+$`)
	if len(out) != 1 || !want.MatchString(out[0]) {
		t.Errorf("its stdout: got %q, want one line matching %s", out, want)
	}
}
