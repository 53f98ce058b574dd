package main

// "tcpkit serve -" behaves as "ncat -l": one connection, its bytes to
// standard output as they are, standard input to it with a FIN at its
// end, and an exit once both directions are done.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ncListen is a running "tcpkit serve --port 0 --host 127.0.0.1 -": its
// standard input to write, its standard output as bytes, and its port.
type ncListen struct {
	p     *ncProc
	stdin io.WriteCloser
	port  int
}

var ncListeningRe = regexp.MustCompile(`^tcpkit serve: listening on 127\.0\.0\.1:(\d+) \(netcat mode`)

func startServeNetcat(t *testing.T, args ...string) ncListen {
	t.Helper()
	args = append([]string{"serve", "--port", "0", "--host", "127.0.0.1"}, args...)
	p := ncStart(t, nil, nil, tcpkitBin, append(args, "-")...)
	line := p.stderr.waitPrefix(t, "tcpkit serve: listening on ", waitFor)
	m := ncListeningRe.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("serve - said %q, want the listening line", line)
	}
	port, _ := strconv.Atoi(m[1])
	return ncListen{p: p, stdin: p.stdin, port: port}
}

// waitOutput waits until nc's standard output is want.
func (nc ncListen) waitOutput(t testing.TB, want string) {
	t.Helper()
	nc.p.out.waitLen(t, "serve - stdout", len(want), waitFor)
	if got := string(nc.p.out.bytes()); got != want {
		t.Fatalf("serve's standard output: %q, want %q", got, want)
	}
}

// A chat: what the client sends shows on serve's standard output, byte
// for byte; what is typed into serve's standard input reaches the client;
// the end of that input is a FIN, and once the client ends too serve
// exits 0. Standard output has nothing else in it.
func TestServeNetcatChat(t *testing.T) {
	t.Parallel()
	nc := startServeNetcat(t)
	c := dial(t, nc.port)
	nc.p.stderr.waitLine(t, "tcpkit serve: connection from "+c.LocalAddr().String(), waitFor)
	write(t, c, "hello from the client\n")
	nc.waitOutput(t, "hello from the client\n")
	io.WriteString(nc.stdin, "hi from the server\n")
	if got := readN(t, c, len("hi from the server\n")); got != "hi from the server\n" {
		t.Errorf("the client read %q", got)
	}
	nc.stdin.Close() // Ctrl-D
	if got := readAll(t, c); got != "" {
		t.Errorf("after serve's input ended: %q, want the FIN", got)
	}
	write(t, c, "bye\n") // the other direction is still open
	nc.waitOutput(t, "hello from the client\nbye\n")
	c.CloseWrite()
	checkExit(t, "serve -", nc.p.wait(t, waitFor), exitOK)
	if got := nc.p.out.bytes(); string(got) != "hello from the client\nbye\n" {
		t.Errorf("serve's standard output: %q, want the client's bytes only", got)
	}
}

// Binary safe both ways, with tcpkit connect - as the other terminal: a
// megabyte of random bytes each way arrives unchanged. Both inputs stay
// open until both megabytes are across: the end of either side's input
// sends its FIN, and a FIN ends the chat for the side that reads it, as
// with ncat, so an input that ended first would cut the other short.
func TestServeNetcatBinary(t *testing.T) {
	t.Parallel()
	nc := startServeNetcat(t)
	toClient, toServer := make([]byte, 1<<20), make([]byte, 1<<20)
	rand.Read(toClient)
	rand.Read(toServer)
	cl := ncStart(t, nil, nil, tcpkitBin, "connect", addr(nc.port), "-")
	go cl.stdin.Write(toServer)
	go nc.stdin.Write(toClient)
	nc.p.out.waitLen(t, "serve's standard output", len(toServer), 2*waitFor)
	cl.out.waitLen(t, "connect's standard output", len(toClient), 2*waitFor)
	cl.stdin.Close() // connect's FIN ends the chat
	checkExit(t, "connect -", cl.wait(t, waitFor), exitOK)
	checkExit(t, "serve -", nc.p.wait(t, waitFor), exitOK)
	if got := nc.p.out.bytes(); !bytes.Equal(got, toServer) {
		t.Errorf("serve's standard output: %d bytes, not connect's %d bytes of input", len(got), len(toServer))
	}
	if got := cl.out.bytes(); !bytes.Equal(got, toClient) {
		t.Errorf("connect's standard output: %d bytes, not serve's %d bytes of input", len(got), len(toClient))
	}
}

// ncat as the client, as in a chat between ncat and tcpkit. The client's
// end of input ends the chat, as with ncat -l: its FIN ends ours.
func TestServeNetcatWithNcat(t *testing.T) {
	t.Parallel()
	ncat := needPeer(t, "ncat")
	nc := startServeNetcat(t)
	cl := ncStart(t, nil, nil, ncat, "127.0.0.1", strconv.Itoa(nc.port))
	io.WriteString(cl.stdin, "from ncat\n")
	nc.waitOutput(t, "from ncat\n")
	io.WriteString(nc.stdin, "from tcpkit\n")
	cl.out.waitLen(t, "ncat stdout", len("from tcpkit\n"), waitFor)
	cl.stdin.Close()
	checkExit(t, "ncat", cl.wait(t, waitFor), 0)
	checkExit(t, "serve -", nc.p.wait(t, waitFor), exitOK)
	if got := cl.out.bytes(); string(got) != "from tcpkit\n" {
		t.Errorf("ncat printed %q", got)
	}
}

// One connection only: a second client is turned away while the first is
// served, and nothing of it reaches standard output.
func TestServeNetcatOneConnection(t *testing.T) {
	t.Parallel()
	nc := startServeNetcat(t)
	first := dial(t, nc.port)
	nc.p.stderr.waitPrefix(t, "tcpkit serve: connection from ", waitFor)
	second, err := net.DialTimeout("tcp", addr(nc.port), waitFor)
	if err == nil { // refused, or accepted and closed at once
		second.SetDeadline(time.Now().Add(waitFor))
		second.Write([]byte("intruder"))
		io.ReadAll(second)
		second.Close()
	}
	write(t, first, "first")
	nc.waitOutput(t, "first")
	nc.stdin.Close()
	readAll(t, first)
	first.Close()
	checkExit(t, "serve -", nc.p.wait(t, waitFor), exitOK)
	if got := nc.p.out.bytes(); string(got) != "first" {
		t.Errorf("serve's standard output: %q, want the first client's bytes only", got)
	}
}

// Ctrl-C while nobody has come: exit 0. Flags of the seed's modes are
// refused with -.
func TestServeNetcatEdges(t *testing.T) {
	t.Parallel()
	nc := startServeNetcat(t)
	nc.p.cmd.Process.Signal(syscall.SIGINT)
	checkExit(t, "serve - after Ctrl-C", nc.p.wait(t, waitFor), exitOK)

	for _, flag := range []string{"--keep-open", "--quiet", "--mode=echo"} {
		code, out, errOut := runTcpkit(t, "serve", flag, "-")
		checkExit(t, "serve "+flag+" -", code, exitUsage)
		name := regexp.MustCompile(`^--([a-z-]+)`).FindStringSubmatch(flag)[1]
		checkLines(t, "serve "+flag+" - stdout", out, nil)
		checkLines(t, "serve "+flag+" - stderr", errOut, []string{fmt.Sprintf("tcpkit serve: --%s does not go with -: serve - takes one connection and passes its bytes to standard output and standard input's to it, as ncat -l does (run 'tcpkit serve -h' for help)", name)})
	}
}

func TestParseScanTarget(t *testing.T) {
	tests := []struct {
		in   string
		want scanTarget
		err  string
	}{
		{"5000", scanTarget{"localhost", 5000, 5000}, ""},
		{"5000-5010", scanTarget{"localhost", 5000, 5010}, ""},
		{"127.0.0.1:80", scanTarget{"127.0.0.1", 80, 80}, ""},
		{"[::1]:22-25", scanTarget{"::1", 22, 25}, ""},
		{"example.test:1-65535", scanTarget{"example.test", 1, 65535}, ""},
		{"5010-5000", scanTarget{}, "ports 5010-5000: use 1 to 65535, the lower first"},
		{"0", scanTarget{}, "ports 0-0: use 1 to 65535"},
		{"http", scanTarget{}, `"http" is not a PORT`},
		{":5000", scanTarget{}, `":5000" is not a PORT`},
	}
	for _, tt := range tests {
		got, err := parseScanTarget(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseScanTarget(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("parseScanTarget(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// connect -z: a closed port says why and exits 1; -z goes with no flag
// that sends.
func TestConnectZeroIO(t *testing.T) {
	t.Parallel()
	srv, port := serve(t)
	code, out, errOut := runTcpkit(t, "connect", "-z", addr(port))
	checkExit(t, "connect -z open", code, exitOK)
	checkLines(t, "connect -z stdout", out, []string{addr(port) + " open"})
	checkLines(t, "connect -z stderr", errOut, nil)
	stop(t, srv)
	closed := closedPort(t)
	code, out, errOut = runTcpkit(t, "connect", "-z", addr(closed))
	checkExit(t, "connect -z closed", code, exitFail)
	checkLines(t, "connect -z closed stdout", out, nil)
	checkLines(t, "connect -z closed stderr", errOut, []string{"tcpkit connect: cannot connect to " + addr(closed) + ": connection refused, nothing is listening there (ECONNREFUSED)"})
	code, _, errOut = runTcpkit(t, "connect", "-z", "--send", "x", "5000")
	checkExit(t, "connect -z --send", code, exitUsage)
	checkLines(t, "connect -z --send stderr", errOut, []string{"tcpkit connect: -z does not go with --send: it only checks whether ports accept a connection, and sends nothing (run 'tcpkit connect -h' for help)"})
}
