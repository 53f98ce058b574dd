package main

// A peer must never drive the operator's terminal: on a terminal, the
// bytes a terminal acts on are shown escaped; elsewhere serve and connect
// print as the seed does; ports escapes process names always.

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// hostile retitles the terminal, clears it, reverses the text after it,
// and is not valid UTF-8 at the end.
const hostile = "\x1b]0;PWNED\x07\x1b[2J\u202eok\r\x9b\xff"

// hostileShown is how it is shown on a terminal.
const hostileShown = `\x1b]0;PWNED\x07\x1b[2J\u202eok\x0d\x9b\xff`

func TestAppendEscaped(t *testing.T) {
	tests := []struct {
		in, want  string
		keepLines bool
	}{
		{"plain text ✓ 한국어", "plain text ✓ 한국어", true},
		{hostile, hostileShown, true},
		{"a\tb\nc", "a\tb\nc", true},
		{"a\tb\nc", `a\x09b\x0ac`, false},
		{"\x00\x7f", `\x00\x7f`, true},
		{"\u0085 \u009b", `\u0085 \u009b`, true}, // C1 controls, as UTF-8
		{"\u2066x\u2069", `\u2066x\u2069`, true},
		{"\xe2\x82", `\xe2\x82`, true}, // truncated
	}
	for _, tt := range tests {
		if got := string(appendEscaped(nil, []byte(tt.in), tt.keepLines)); got != tt.want {
			t.Errorf("appendEscaped(%q, %v) = %q, want %q", tt.in, tt.keepLines, got, tt.want)
		}
	}
}

// serve on a terminal escapes what a client sends; to a pipe it prints it
// as the seed does (tested with Node's own output elsewhere).
func TestServeEscapesOnTerminal(t *testing.T) {
	t.Parallel()
	ptm, tty := openPTY(t)
	srv, port, _ := startServeStdout(t, tty, "--keep-open")
	screen := newStream("terminal", ptm)
	screen.waitLine(t, fmt.Sprintf("listen on port %d", port), waitFor)
	c := dial(t, port)
	write(t, c, hostile)
	readN(t, c, 4)
	screen.waitPrefix(t, "connect address : ", waitFor)
	screen.waitLine(t, hostileShown, waitFor)
	c.Close()
	srv.signal(t, syscall.SIGTERM)
	checkExit(t, "serve", srv.wait(t, waitFor), exitOK)

	piped, port := serve(t, "--keep-open")
	c = dial(t, port)
	write(t, c, "\x1b[2J")
	readN(t, c, 4)
	c.Close()
	out := stop(t, piped)
	if len(out) != 3 || out[2] != "\x1b[2J" {
		t.Errorf("serve to a pipe: got %q, want the bytes as sent on the third line", out)
	}
}

// connect on a terminal escapes what the server sends after "receive: ".
func TestConnectEscapesOnTerminal(t *testing.T) {
	t.Parallel()
	port := listener(t, func(c net.Conn) { // the seed's server, with a hostile reply
		c.Read(make([]byte, 8))
		c.Write([]byte(hostile))
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	ptm, tty := openPTY(t)
	cmd, label := testCommand(tcpkitBin, []string{"connect", "--count", "1", addr(port)})
	cmd.Stdout = tty
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", label, err)
	}
	screen := newStream("terminal", ptm)
	screen.waitLine(t, "connect to server!", waitFor)
	screen.waitLine(t, "receive: "+hostileShown, waitFor)
	screen.waitLine(t, "disconnected.", waitFor)
	if err := cmd.Wait(); err != nil {
		t.Errorf("connect: %v", err)
	}
}

// ports shows a process's name escaped, terminal or not: any user names
// their own processes, and root's "sudo tcpkit ports" lists them all. A
// newline in a name must not break the table.
func TestPortsEscapesCommand(t *testing.T) {
	t.Parallel()
	relLinuxOnly(t)
	name := "ev\x1b[2J\nil" // the kernel keeps the first 15 bytes of a name
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(tcpkitBin, link); err != nil {
		t.Fatal(err)
	}
	srv, port := serveBin(t, link, "127.0.0.1")
	code, out, _ := runTcpkit(t, "ports", "--listen", itoa(port))
	checkExit(t, "ports", code, exitOK)
	want := fmt.Sprintf("%d/%s", srv.cmd.Process.Pid, `ev\x1b[2J\x0ail`)
	if len(out) != 2 || !strings.HasSuffix(out[1], want) {
		t.Errorf("ports: got %q, want a header and one row ending %q", out, want)
	}
	stop(t, srv)
}
