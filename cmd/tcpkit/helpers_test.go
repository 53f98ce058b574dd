package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitFor bounds every wait of these tests: for a line, an exit, a peer.
// The exchanges themselves take milliseconds; this is only slack for a
// loaded machine.
const waitFor = 5 * time.Second

// tcpkitBin is the tcpkit binary TestMain builds for the tests.
var tcpkitBin string

// tcpkitTimingBin is the same built without the race detector, for the
// few tests that assert latencies: the detector slows the server down
// several times, which says nothing about tcpkit's latency.
var tcpkitTimingBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tcpkit-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	tcpkitBin = filepath.Join(dir, "tcpkit")
	if runtime.GOOS == "windows" {
		tcpkitBin += ".exe"
	}
	// -buildvcs=auto: the commit goes into the binary for "tcpkit version"
	// wherever git can tell it, whatever GOFLAGS says.
	args := []string{"build", "-buildvcs=auto", "-o", tcpkitBin}
	if raceEnabled { // the binary under test gets the race detector too
		args = append(args, "-race")
	}
	build := exec.Command(goTool(), append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building tcpkit: %v\n", err)
		return 1
	}
	tcpkitTimingBin = tcpkitBin
	if raceEnabled {
		tcpkitTimingBin = filepath.Join(dir, "tcpkit-timing")
		build := exec.Command(goTool(), "build", "-o", tcpkitTimingBin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building tcpkit: %v\n", err)
			return 1
		}
	}
	return m.Run()
}

// goTool returns the go command: go test puts $GOROOT/bin first in PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// A stream is the output of a process, one line at a time, as it comes.
type stream struct {
	name string // "tcpkit serve stdout", for messages

	mu      sync.Mutex
	lines   []string
	next    int           // where waitLine looks from
	eof     bool          // the process closed it
	changed chan struct{} // closed and replaced when lines or eof change
	closed  chan struct{} // closed at eof
}

func newStream(name string, r io.Reader) *stream {
	s := &stream{name: name, changed: make(chan struct{}), closed: make(chan struct{})}
	go s.read(r)
	return s
}

func (s *stream) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
	io.Copy(io.Discard, r) // a line too long for the scanner: drain the rest
	s.mu.Lock()
	s.eof = true
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	close(s.closed)
}

// take waits for a line starting with prefix, removes it from the stream
// and returns it: for a line a helper checks so that tests need not.
func (s *stream) take(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	l := s.waitPrefix(t, prefix, timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next--
	s.lines = slices.Delete(s.lines, s.next, s.next+1)
	return l
}

// all returns the lines so far; after the process exited, all of them.
func (s *stream) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// waitLine waits for the line want, exactly, after the line the last
// waitLine or waitMatch found, and fails the test if it does not come
// within timeout or the stream ends without it.
func (s *stream) waitLine(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	s.waitMatch(t, fmt.Sprintf("%q", want), func(l string) bool { return l == want }, timeout)
}

// waitPrefix is waitLine for a line that starts with prefix; it returns
// the line.
func (s *stream) waitPrefix(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	return s.waitMatch(t, fmt.Sprintf("starting with %q", prefix), func(l string) bool { return strings.HasPrefix(l, prefix) }, timeout)
}

func (s *stream) waitMatch(t testing.TB, what string, match func(string) bool, timeout time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for i := s.next; i < len(s.lines); i++ {
			if match(s.lines[i]) {
				s.next = i + 1
				l := s.lines[i]
				s.mu.Unlock()
				return l
			}
		}
		eof, changed, lines := s.eof, s.changed, slices.Clone(s.lines)
		s.mu.Unlock()
		if eof {
			t.Fatalf("%s ended without a line %s; got %q", s.name, what, lines)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: no line %s within %v; got %q", s.name, what, timeout, lines)
		}
	}
}

// A lifecycle is what every process a test starts has: its name for
// messages, its exit, and a cleanup that kills it if it is still running.
type lifecycle struct {
	name     string
	cmd      *exec.Cmd
	done     chan struct{} // closed when it exited and its output is read
	code     int           // the exit code, once done; -1 if killed by a signal
	describe func() string // its output so far, for failure messages
}

// testCommand makes the exec.Cmd for name and args, with tcpkit's environment
// for the tcpkit binaries, and a label for messages.
func testCommand(name string, args []string) (*exec.Cmd, string) {
	cmd := exec.Command(name, args...)
	if name == tcpkitBin || name == tcpkitTimingBin {
		cmd.Env = tcpkitEnv()
	}
	cmd.WaitDelay = waitFor // a grandchild holding a pipe must not hang Wait
	label := filepath.Base(name)
	if len(args) > 0 {
		label += " " + filepath.Base(args[0])
	}
	return cmd, label
}

// supervise waits for the started process once its output readers are
// done, and registers the cleanup: kill it if it still runs, and log its
// output if the test failed.
func (l *lifecycle) supervise(t testing.TB, args []string, outputs ...<-chan struct{}) {
	l.done = make(chan struct{})
	go func() {
		for _, closed := range outputs { // Wait only after the pipes are read
			<-closed
		}
		l.cmd.Wait()
		l.code = l.cmd.ProcessState.ExitCode()
		close(l.done)
	}()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			l.cmd.Process.Kill()
			select {
			case <-l.done:
			case <-time.After(waitFor):
				t.Errorf("%s did not exit after SIGKILL", l.name)
			}
		}
		if t.Failed() {
			t.Logf("%s %q\n  %s", l.name, args, l.describe())
		}
	})
}

// wait waits for the process to exit and returns its exit code; then its
// output is all there.
func (l *lifecycle) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-l.done:
		return l.code
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v; %s", l.name, timeout, l.describe())
		return 0
	}
}

// A proc is a running process whose output the test reads line by line.
type proc struct {
	lifecycle
	stdout *stream
	stderr *stream
}

// start starts a process; t.Cleanup kills it if it is still running, and
// logs its output if the test failed.
func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	cmd, label := testCommand(name, args)
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", label, err)
	}
	p := &proc{
		lifecycle: lifecycle{name: label, cmd: cmd},
		stdout:    newStream(label+" stdout", outR),
		stderr:    newStream(label+" stderr", errR),
	}
	p.describe = func() string { return fmt.Sprintf("stdout %q, stderr %q", p.stdout.all(), p.stderr.all()) }
	p.supervise(t, args, p.stdout.closed, p.stderr.closed)
	return p
}

// startTcpkit starts the tcpkit binary with args.
func startTcpkit(t testing.TB, args ...string) *proc {
	t.Helper()
	return start(t, tcpkitBin, args...)
}

// tcpkitEnv is the environment of the tcpkit processes: a binary built
// with -race would otherwise sleep a second at exit (atexit_sleep_ms), and
// a race it finds makes it exit 66, which fails the exit code checks.
var tcpkitEnv = sync.OnceValue(func() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
})

// waitLine waits for the line want on stdout: see stream.waitLine.
func (p *proc) waitLine(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	p.stdout.waitLine(t, want, timeout)
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("no signals on Windows")
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// serveOn starts "tcpkit serve --port 0 --host HOST" with extra args and
// returns it and the port it listens on, read from its first line,
// "listen on port N at HOST".
func serveOn(t testing.TB, host string, args ...string) (*proc, int) {
	t.Helper()
	return serveBin(t, tcpkitBin, host, args...)
}

// serveTiming is serve with the binary built for latency assertions.
func serveTiming(t testing.TB, args ...string) (*proc, int) {
	t.Helper()
	return serveBin(t, tcpkitTimingBin, "127.0.0.1", args...)
}

func serveBin(t testing.TB, bin, host string, args ...string) (*proc, int) {
	t.Helper()
	p := start(t, bin, append([]string{"serve", "--port", "0", "--host", host}, args...)...)
	n := waitListening(t, p, host)
	return p, n
}

// waitListening reads a serve's listen lines and returns its port: on
// stdout the seed's "listen on port N", exactly, and on stderr
// "tcpkit serve: listening on HOST:N (ENGINE engine...)". The stderr line
// is checked here and taken out of the stream, so that tests see the rest.
func waitListening(t testing.TB, p *proc, host string) int {
	t.Helper()
	line := p.stdout.waitPrefix(t, "listen on port ", waitFor)
	n, err := strconv.Atoi(strings.TrimPrefix(line, "listen on port "))
	if err != nil || n <= 0 || n > 65535 {
		t.Fatalf("serve's first line is %q, want exactly \"listen on port N\"", line)
	}
	if got := p.stdout.all(); got[0] != line {
		t.Fatalf("serve's first line is %q, want %q", got[0], line)
	}
	about := p.stderr.take(t, "tcpkit serve: listening on ", waitFor)
	if want := "tcpkit serve: listening on " + net.JoinHostPort(host, itoa(n)) + " ("; !strings.HasPrefix(about, want) || !strings.Contains(about, " engine") {
		t.Fatalf("serve's stderr line is %q, want one starting %q and naming the engine", about, want)
	}
	return n
}

// serve is serveOn 127.0.0.1.
func serve(t testing.TB, args ...string) (*proc, int) {
	t.Helper()
	return serveOn(t, "127.0.0.1", args...)
}

// stop sends SIGTERM to a tcpkit serve, checks that it exits 0 and
// returns its stdout.
func stop(t testing.TB, srv *proc) []string {
	t.Helper()
	srv.signal(t, syscall.SIGTERM)
	if code := srv.wait(t, waitFor); code != exitOK {
		t.Fatalf("serve exit code after SIGTERM: got %d, want %d; stderr %q", code, exitOK, srv.stderr.all())
	}
	return srv.stdout.all()
}

// runTcpkit runs tcpkit to the end and returns its exit code and output.
func runTcpkit(t testing.TB, args ...string) (code int, stdout, stderr []string) {
	t.Helper()
	p := startTcpkit(t, args...)
	code = p.wait(t, waitFor)
	return code, p.stdout.all(), p.stderr.all()
}

// itoa is strconv.Itoa.
func itoa(n int) string { return strconv.Itoa(n) }

// addr returns 127.0.0.1:port.
func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// checkLines fails the test unless got and want are equal.
func checkLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// checkExit fails the test unless the exit code is want.
func checkExit(t testing.TB, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s exit code: got %d, want %d", what, got, want)
	}
}

// checkOneLine fails the test unless lines is one line containing want.
func checkOneLine(t testing.TB, what string, lines []string, want string) {
	t.Helper()
	if len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Errorf("%s: got %q, want one line containing %q", what, lines, want)
	}
}

// checkClientAddr checks a server's line "connect address : HOST:PORT":
// HOST must be host and PORT a client's port, not the server's own
// (the seed's socket.address() bug prints the server's address).
func checkClientAddr(t testing.TB, line, host string, serverPort int) {
	t.Helper()
	rest, ok := strings.CutPrefix(line, "connect address : ")
	h, p, err := net.SplitHostPort(rest)
	port, perr := strconv.Atoi(p)
	switch {
	case !ok || err != nil || perr != nil || h != host || port < 1 || port > 65535:
		t.Errorf("got %q, want \"connect address : %s\" with a port", line, net.JoinHostPort(host, "PORT"))
	case port == serverPort:
		t.Errorf("got %q: that is the server's own port, want the client's", line)
	}
}

// afterConnect checks the first two lines of a tcpkit serve's stdout that
// served one client, the listen line and the client's address, and
// returns the lines after them.
func afterConnect(t testing.TB, out []string, host string, port int) []string {
	t.Helper()
	if len(out) < 2 {
		t.Fatalf("serve stdout: got %q, want the listen line, then the connect address line", out)
	}
	if want := listenWant(port, host); out[0] != want {
		t.Errorf("serve stdout line 1: got %q, want %q", out[0], want)
	}
	checkClientAddr(t, out[1], host, port)
	return out[2:]
}

// listener is a Go TCP listener on 127.0.0.1 that accepts connections,
// hands them to handle on their own goroutines and closes them when the
// test ends.
func listener(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// dial connects to 127.0.0.1:port from the test, with a deadline on
// every read and write, and closes the connection when the test ends.
func dial(t testing.TB, port int) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr(port), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitFor))
	return c.(*net.TCPConn)
}

// readAll reads from c until the peer's FIN and returns what came.
func readAll(t testing.TB, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading until the server's FIN: %v (read %q)", err, b)
	}
	return string(b)
}

// readN reads exactly n bytes from c.
func readN(t testing.TB, c net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v (read %q)", n, err, b)
	}
	return string(b)
}

// write writes s to c.
func write(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("writing %q: %v", s, err)
	}
}

// listenWant is serve's first line, the seed's, exactly.
func listenWant(port int, host string) string {
	return "listen on port " + itoa(port)
}

// cliEngines are the --engine values the suites of what the epoll engine
// took over (PROXY protocol, TLS, Unix sockets) run serve with: the
// default, auto, and std.
var cliEngines = []string{"auto", "std"}

// engineName is the engine serve names on stderr for --engine flag:
// auto picks epoll on Linux.
func engineName(flag string) string {
	if flag == "auto" {
		if runtime.GOOS == "linux" {
			return "epoll"
		}
		return "std"
	}
	return flag
}

// forEachCLIEngine runs f in a parallel subtest per cliEngines value,
// named for it.
func forEachCLIEngine(t *testing.T, f func(t *testing.T, engine string)) {
	t.Helper()
	for _, e := range cliEngines {
		t.Run("engine-"+e, func(t *testing.T) {
			t.Parallel()
			f(t, e)
		})
	}
}
