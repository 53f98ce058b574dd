package main

// serve's output must never hold the server up: a standard output nobody
// reads, one whose reader left, signals meanwhile, and both streams
// sharing one pipe.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServeStdout starts "tcpkit serve --port 0 --host 127.0.0.1" with
// args and its standard output the file stdout; its stderr is read as
// usual. It returns the process, the port and the stderr line that says
// where it listens.
func startServeStdout(t testing.TB, stdout *os.File, args ...string) (*proc, int, string) {
	t.Helper()
	p := startStdout(t, stdout, append([]string{"serve", "--port", "0", "--host", "127.0.0.1"}, args...)...)
	about := p.stderr.take(t, "tcpkit serve: listening on 127.0.0.1:", waitFor)
	var port int
	if _, err := fmt.Sscanf(about, "tcpkit serve: listening on 127.0.0.1:%d ", &port); err != nil {
		t.Fatalf("stderr line %q: %v", about, err)
	}
	return p, port, about
}

// startStdout starts tcpkit with args and its standard output on
// stdout, a file the test chose (a pipe nobody reads, one whose reader
// left); stderr is followed as a stream.
func startStdout(t testing.TB, stdout *os.File, args ...string) *proc {
	t.Helper()
	cmd, label := testCommand(tcpkitBin, args)
	cmd.Stdout = stdout
	errR, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", label, err)
	}
	stdout.Close() // the child has its own copy
	p := &proc{lifecycle: lifecycle{name: label, cmd: cmd}, stderr: newStream(label+" stderr", errR)}
	p.describe = func() string { return fmt.Sprintf("stderr %q", p.stderr.all()) }
	p.supervise(t, args, p.stderr.closed)
	return p
}

// stuckPipe returns the write end of a pipe whose read end the test
// holds open and never reads: a standard output that blocks once full.
func stuckPipe(t testing.TB) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return w
}

// echoLines sends n lines of 100 bytes on c and reads their echo: the
// server serves while its output is stuck.
func echoLines(t testing.TB, c net.Conn, n int) {
	t.Helper()
	line := strings.Repeat("x", 99) + "\n"
	go func() {
		for range n {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	}()
	if _, err := io.ReadFull(c, make([]byte, n*len(line))); err != nil {
		t.Fatalf("reading the echo of %d lines: %v", n, err)
	}
}

var droppedRe = regexp.MustCompile(`^tcpkit serve: stopped; 1 open connection ended cleanly; (\d+) output lines dropped$`)

// With standard output a pipe nobody reads, serve goes on serving: the
// lines it cannot write are dropped and counted, stderr says so once, and
// SIGTERM ends it within --drain-timeout. Before, the event loop blocked
// in the output writer and no signal could stop the server.
func TestServeStdoutBlocked(t *testing.T) {
	t.Parallel()
	srv, port, about := startServeStdout(t, stuckPipe(t), "--mode", "echo", "--frame", "line", "--drain-timeout", "2s", "--metrics", "127.0.0.1:0")
	c := dial(t, port)
	echoLines(t, c, 30000) // 3 MB of lines: past the pipe and the writer's 1 MiB
	srv.stderr.waitLine(t, "tcpkit serve: standard output is not keeping up: lines are dropped until it does (counted in the last line, and in tcpkit_output_dropped_lines_total with --metrics)", waitFor)
	echoLines(t, c, 100) // and still serving
	metricsAddr := regexp.MustCompile(`metrics on http://([^/]+)/metrics`).FindStringSubmatch(about)
	if metricsAddr == nil {
		t.Fatalf("no metrics address in %q", about)
	}
	if n, _ := strconv.Atoi(soMetrics(t, metricsAddr[1])["tcpkit_output_dropped_lines_total"]); n == 0 {
		t.Errorf("tcpkit_output_dropped_lines_total is %d, want the lines dropped", n)
	}

	start := time.Now()
	srv.signal(t, syscall.SIGTERM)
	readAll(t, c) // the server's FIN
	c.Close()
	checkExit(t, "serve after SIGTERM", srv.wait(t, waitFor), exitOK)
	if took := time.Since(start); took > 2*time.Second+time.Second {
		t.Errorf("serve took %v to stop, want within --drain-timeout 2s", took)
	}
	errLines := srv.stderr.all()
	if len(errLines) != 2 || !droppedRe.MatchString(errLines[1]) {
		t.Errorf("serve stderr: got %q, want the notice, then a stopped line matching %v", errLines, droppedRe)
	}
}

// A second signal stops a server whose output is stuck at once, as it
// does any other.
func TestServeStdoutBlockedSecondSignal(t *testing.T) {
	t.Parallel()
	srv, port, _ := startServeStdout(t, stuckPipe(t), "--mode", "echo", "--frame", "line", "--drain-timeout", "1m")
	c := dial(t, port)
	echoLines(t, c, 30000)
	srv.stderr.waitPrefix(t, "tcpkit serve: standard output is not keeping up", waitFor)
	srv.signal(t, syscall.SIGTERM)
	srv.signal(t, syscall.SIGINT)
	checkExit(t, "serve after two signals", srv.wait(t, waitFor), exitFail)
	srv.stderr.waitPrefix(t, "tcpkit serve: stopped; 1 of 1 open connections were still open at a second signal and were cut", waitFor)
}

// "tcpkit serve | head -2": once the reader of standard output has gone,
// the write fails (EPIPE, not a SIGPIPE that kills the process) and the
// server stops as on SIGTERM: the open connection is ended cleanly.
func TestServeStdoutReaderGone(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	srv, port, _ := startServeStdout(t, w, "--keep-open")
	head := bufio.NewReader(r)
	if l, err := head.ReadString('\n'); err != nil || l != fmt.Sprintf("listen on port %d\n", port) {
		t.Fatalf("first line %q, %v", l, err)
	}
	r.Close() // head -1 is done
	c := dial(t, port)
	write(t, c, "testing~")
	if got := readN(t, c, 4); got != "test" {
		t.Fatalf("reply %q, want test", got)
	}
	// Its output is gone: the server ends the connection and exits 0.
	if got := readAll(t, c); got != "" {
		t.Errorf("after the reply: got %q, want the FIN", got)
	}
	c.Close()
	checkExit(t, "serve after its reader left", srv.wait(t, waitFor), exitOK)
	checkLines(t, "serve stderr", srv.stderr.all(), []string{
		"tcpkit serve: cannot write to standard output: its reader is gone (EPIPE); stopping as on SIGTERM",
		"tcpkit serve: stopped; 1 open connection ended cleanly; 2 output lines dropped",
	})
}

// Two signals in a row to an idle server: nothing was cut, so it exits 0
// and says so, whichever signal the shutdown saw first.
func TestServeTwoSignalsIdle(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t)
	srv.signal(t, syscall.SIGTERM)
	srv.signal(t, syscall.SIGTERM)
	checkExit(t, "serve after two signals", srv.wait(t, waitFor), exitOK)
	checkLines(t, "serve stderr", srv.stderr.all(), []string{"tcpkit serve: stopped; 0 open connections ended cleanly"})
}

// With stdout and stderr on one pipe (2>&1), the stopped line is the
// last: every per-connection line is written before it.
func TestServeStoppedLineLast(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd, label := testCommand(tcpkitBin, []string{"serve", "--port", "0", "--host", "127.0.0.1", "--keep-open"})
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", label, err)
	}
	w.Close()
	out := newStream(label+" 2>&1", r)
	p := &proc{lifecycle: lifecycle{name: label, cmd: cmd}, stdout: out}
	p.describe = func() string { return fmt.Sprintf("output %q", out.all()) }
	p.supervise(t, nil, out.closed)
	line := out.waitPrefix(t, "listen on port ", waitFor)
	var port int
	fmt.Sscanf(line, "listen on port %d", &port)

	const clients = 20
	var conns []net.Conn
	for range clients {
		c := dial(t, port)
		write(t, c, "testing~")
		readN(t, c, 4)
		conns = append(conns, c)
	}
	p.signal(t, syscall.SIGTERM)
	for _, c := range conns {
		readAll(t, c)
		c.Close()
	}
	checkExit(t, "serve", p.wait(t, waitFor), exitOK)
	lines := out.all()
	if want := fmt.Sprintf("tcpkit serve: stopped; %d open connections ended cleanly", clients); lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q; all: %q", lines[len(lines)-1], want, lines)
	}
}
