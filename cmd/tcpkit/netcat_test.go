package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The netcat-style use of the README: connect's pipe mode, serve's modes,
// framing, Unix sockets, checks, hex dumps and address families, and
// interop with ncat and socat.

// bigWait bounds a 64 MiB round trip. It takes well under a second on
// loopback, with the race detector too; this is slack for a loaded
// machine.
const bigWait = 30 * time.Second

// ncRandom returns n pseudo-random bytes, the same for the same seed.
func ncRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// ncWriteRandom writes size pseudo-random bytes to a new file at path and
// returns their SHA-256.
func ncWriteRandom(t testing.TB, path string, size int, seed byte) [sha256.Size]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.NewChaCha8([32]byte{seed})
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= len(buf) {
		chunk := buf[:min(len(buf), left)]
		r.Read(chunk)
		h.Write(chunk)
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// An ncHashWriter hashes and counts what is written to it.
type ncHashWriter struct {
	h hash.Hash
	n int64
}

func (w *ncHashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// 64 MiB of random bytes through "tcpkit connect HOST:PORT -" and an
// echoing server come back unchanged: connect sends a FIN at the end of
// its standard input (a half-close), reads on until the server ends, and
// exits 0.
func TestNetcatBigTransfer(t *testing.T) {
	t.Parallel()
	const size = 64 << 20
	path := filepath.Join(t.TempDir(), "in.bin")
	want := ncWriteRandom(t, path, size, 1)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"echo", []string{"--mode", "echo", "--quiet"}},
		{"exec cat", []string{"--mode", "exec", "--quiet", "--", "cat"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, port := serve(t, tt.args...)
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			back := &ncHashWriter{h: sha256.New()}
			began := time.Now()
			cl := ncStart(t, in, back, tcpkitBin, "connect", addr(port), "-")
			code := cl.wait(t, bigWait)
			t.Logf("64 MiB there and back in %v (race detector: %v)", time.Since(began).Round(time.Millisecond), raceEnabled)
			checkExit(t, "connect", code, exitOK)
			checkLines(t, "connect stderr", cl.stderr.all(), nil)
			if back.n != size {
				t.Errorf("got %d bytes back, want %d", back.n, size)
			}
			if got := [sha256.Size]byte(back.h.Sum(nil)); got != want {
				t.Errorf("SHA-256 of what came back: got %x, want %x", got, want)
			}
			checkLines(t, "serve --quiet stdout", stop(t, srv), []string{listenWant(port, "127.0.0.1")})
		})
	}
}

// The command finds the connection in tcpserver's environment variables.
func TestExecEnv(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--mode", "exec", "--", "sh", "-c", `echo "$TCPREMOTEIP $TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT $PROTO"`)
	c := dial(t, port)
	want := fmt.Sprintf("127.0.0.1 %d 127.0.0.1 %d TCP\n", c.LocalAddr().(*net.TCPAddr).Port, port)
	if got := readAll(t, c); got != want { // then a clean EOF: readAll fails on a reset
		t.Errorf("the command's output: got %q, want %q", got, want)
	}
	line := srv.stdout.waitPrefix(t, "connect address : ", waitFor)
	checkClientAddr(t, line, "127.0.0.1", port)
	if want := "connect address : " + c.LocalAddr().String(); line != want {
		t.Errorf("serve: got %q, want %q", line, want)
	}
}

// ncReadPID reads the first line the command sends, its process ID.
func ncReadPID(t testing.TB, r *bufio.Reader) int {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the command's PID: %v (read %q)", err, line)
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
	if err != nil || pid <= 1 {
		t.Fatalf("the command's first line is %q, want its PID", line)
	}
	return pid
}

// ncZombie reports whether pid is a zombie, dead but not reaped (Linux;
// elsewhere false).
func ncZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// ncWaitGone polls until the process pid no longer exists (kill(pid, 0)
// says ESRCH), or, with zombieOK, is a zombie: a process whose parent was
// killed is reaped by init, which may not reap at once.
func ncWaitGone(t testing.TB, pid int, zombieOK bool) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		gone, err := processGone(pid)
		if gone || zombieOK && ncZombie(pid) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("process %d still there %v after its connection ended (kill 0: %v)", pid, waitFor, err)
		}
	}
}

// The command dies with its connection.
func TestExecChildGone(t *testing.T) {
	t.Parallel()

	// A reset closes the connection at once, and that kills the command,
	// which here would otherwise run for a minute.
	t.Run("client reset", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, "--mode", "exec", "--", "sh", "-c", "echo $$; exec sleep 60")
		c := dial(t, port)
		pid := ncReadPID(t, bufio.NewReader(c))
		c.SetLinger(0) // Close sends RST
		c.Close()
		ncWaitGone(t, pid, false)
		srv.stdout.waitPrefix(t, "error : "+c.LocalAddr().String()+" : the client reset the connection", waitFor)
	})

	// Killing the command kills its process group: what it started dies
	// with it.
	t.Run("process group", func(t *testing.T) {
		t.Parallel()
		_, port := serve(t, "--mode", "exec", "--", "sh", "-c", "sleep 60 & echo $!; echo $$; exec sleep 61")
		c := dial(t, port)
		r := bufio.NewReader(c)
		grandchild := ncReadPID(t, r)
		pid := ncReadPID(t, r)
		c.SetLinger(0)
		c.Close()
		ncWaitGone(t, pid, false)
		ncWaitGone(t, grandchild, true)
	})

	// A client that closes normally sends a FIN: that closes the command's
	// standard input, and a command that reads it (cat) ends. (One that
	// does not read it, such as sleep 60, runs on with the connection
	// half-open: after a FIN the client may still read, so the server
	// cannot tell a close from a half-close. tcpserver does the same.)
	t.Run("client FIN", func(t *testing.T) {
		t.Parallel()
		_, port := serve(t, "--mode", "exec", "--", "sh", "-c", "echo $$; exec cat")
		c := dial(t, port)
		pid := ncReadPID(t, bufio.NewReader(c))
		c.Close()
		ncWaitGone(t, pid, false)
	})
}

// A command that exits early ends the connection cleanly: the client
// reads its output, then EOF (not a reset), though it kept its own side
// open.
func TestExecEarlyExit(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--mode", "exec", "--", "echo", "hi")
	c := dial(t, port)
	if got := readAll(t, c); got != "hi\n" {
		t.Errorf("got %q, want %q", got, "hi\n")
	}
	c.Close()
	out := afterConnect(t, stop(t, srv), "127.0.0.1", port)
	checkLines(t, "serve stdout after the connect address", out, nil)
}

// After the client's FIN the command still answers: the connection is
// half-open until the command closes its output.
func TestExecHalfClose(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--mode", "exec", "--", "sh", "-c", "cat >/dev/null; echo after-fin")
	c := dial(t, port)
	write(t, c, "some input")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "after-fin\n" {
		t.Errorf("got %q, want %q", got, "after-fin\n")
	}
}

// --max-conns 1: a second client is closed at once, the first is still
// served.
func TestExecMaxConns(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--mode", "exec", "--max-conns", "1", "--", "cat")
	first := dial(t, port)
	line := srv.stdout.waitPrefix(t, "connect address : ", waitFor)
	if want := "connect address : " + first.LocalAddr().String(); line != want {
		t.Errorf("serve: got %q, want %q", line, want)
	}
	second := dial(t, port)
	if got := readAll(t, second); got != "" {
		t.Errorf("second client: got %q, want nothing, then EOF", got)
	}
	line = srv.stdout.waitPrefix(t, "rejected : ", waitFor)
	if want := "rejected : " + second.LocalAddr().String() + " : "; !strings.HasPrefix(line, want) || !strings.Contains(line, "--max-conns 1") {
		t.Errorf("serve: got %q, want a line starting %q and containing %q", line, want, "--max-conns 1")
	}
	write(t, first, "still served\n")
	if got := readN(t, first, len("still served\n")); got != "still served\n" {
		t.Errorf("first client: got %q back", got)
	}
	if err := first.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, first); got != "" {
		t.Errorf("first client after its FIN: got %q, want EOF", got)
	}
}

// ncPeerClient runs a peer client (ncat, socat) against serve in each of
// its modes. args returns the peer's arguments to connect to port.
func ncPeerClient(t *testing.T, peer string, args func(port int) []string) {
	// The server prints the client's address; in discard mode its byte
	// count at the close names the same address.
	clientAddr := func(t *testing.T, srv *proc, port int) string {
		t.Helper()
		line := srv.stdout.waitPrefix(t, "connect address : ", waitFor)
		checkClientAddr(t, line, "127.0.0.1", port)
		return strings.TrimPrefix(line, "connect address : ")
	}
	run := func(t *testing.T, port int, in, want string) {
		t.Helper()
		code, out, errs := ncRun(t, in, peer, args(port)...)
		checkExit(t, filepath.Base(peer), code, 0)
		if out != want {
			t.Errorf("%s stdout: got %s, want %s", filepath.Base(peer), quoteHead([]byte(out), 100), quoteHead([]byte(want), 100))
		}
		checkLines(t, filepath.Base(peer)+" stderr", errs, nil)
	}

	t.Run("reply", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t)
		run(t, port, "testing~", "test")
		clientAddr(t, srv, port)
		srv.waitLine(t, "testing~", waitFor)
	})
	t.Run("echo", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, "--mode", "echo")
		in := "binary\x00\xff\r\nsafe\n"
		run(t, port, in, in)
		clientAddr(t, srv, port)
	})
	t.Run("discard", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, "--mode", "discard")
		const n = 100000
		run(t, port, string(ncRandom(n, 2)), "")
		from := clientAddr(t, srv, port)
		srv.waitLine(t, "discarded "+itoa(n)+" bytes from "+from, waitFor)
	})
	t.Run("exec", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, "--mode", "exec", "--", "cat")
		in := string(ncRandom(100000, 3))
		run(t, port, in, in)
		clientAddr(t, srv, port)
	})
}

// ncat as the client of serve. At the end of its standard input ncat
// 7.93 half-closes (shutdown SHUT_WR, unless --no-shutdown) and reads on
// until the server ends, so every reply arrives however late.
func TestNcatClient(t *testing.T) {
	t.Parallel()
	ncat := needPeer(t, "ncat")
	ncPeerClient(t, ncat, func(port int) []string { return []string{"127.0.0.1", itoa(port)} })
}

// socat as the client of serve. At the end of its standard input socat
// 1.7.4 half-closes too (shutdown SHUT_WR), but then waits only -t
// seconds (0.5 by default) for the server's side before it exits 0,
// dropping whatever comes later. -t 10 makes it wait for the server's
// end (it exits as soon as that comes) even on a slow machine.
func TestSocatClient(t *testing.T) {
	t.Parallel()
	socat := needPeer(t, "socat")
	ncPeerClient(t, socat, func(port int) []string { return []string{"-t", "10", "-", "TCP:127.0.0.1:" + itoa(port)} })
}

// tcpkit connect as the client of an ncat server: each side's standard
// input reaches the other's standard output exactly.
//
// ncat -l 7.93 half-closes at the end of its standard input, but it exits
// as soon as the client's FIN arrives, dropping any of its standard input
// not yet sent. So the test lets both sides' data arrive before ending
// connect's standard input.
func TestNcatServer(t *testing.T) {
	t.Parallel()
	ncat := needPeer(t, "ncat")
	var srv *ncProc
	var port int
	for attempt := 1; ; attempt++ { // the free port may be taken meanwhile
		port = ncFreePort(t)
		srv = ncStart(t, nil, nil, ncat, "-v", "-l", "127.0.0.1", itoa(port))
		if _, ok := ncWaitPrefixOrEnd(srv.stderr, "Ncat: Listening on ", waitFor); ok {
			break
		}
		srv.cmd.Process.Kill()
		srv.wait(t, waitFor)
		if attempt == 3 {
			t.Fatalf("ncat -l did not start listening: %q", srv.stderr.all())
		}
	}
	cl := ncStart(t, nil, nil, tcpkitBin, "connect", addr(port), "-")
	srv.stderr.waitPrefix(t, "Ncat: Connection from 127.0.0.1:", waitFor)

	toServer, toClient := ncRandom(1<<20, 4), ncRandom(1<<20, 5)
	wrote := make(chan error, 2)
	go func() { _, err := cl.stdin.Write(toServer); wrote <- err }()
	go func() { _, err := srv.stdin.Write(toClient); wrote <- err }()
	srv.out.waitLen(t, "ncat stdout", len(toServer), waitFor)
	cl.out.waitLen(t, "connect stdout", len(toClient), waitFor)
	for range 2 {
		if err := <-wrote; err != nil {
			t.Fatalf("writing a standard input: %v", err)
		}
	}

	cl.stdin.Close() // connect sends a FIN; ncat ends, and so does connect
	checkExit(t, "connect", cl.wait(t, waitFor), exitOK)
	checkExit(t, "ncat", srv.wait(t, waitFor), 0)
	if got := srv.out.bytes(); !bytes.Equal(got, toServer) {
		t.Errorf("ncat stdout: got %d bytes, want connect's %d bytes of standard input", len(got), len(toServer))
	}
	if got := cl.out.bytes(); !bytes.Equal(got, toClient) {
		t.Errorf("connect stdout: got %d bytes, want ncat's %d bytes of standard input", len(got), len(toClient))
	}
	checkLines(t, "connect stderr", cl.stderr.all(), nil)
}

// --frame line: a message is a line, however the bytes arrive, and the
// echo is byte for byte: a last line without its newline comes back
// without one.
func TestFrameLine(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--mode", "echo", "--frame", "line")
	c := dial(t, port)
	write(t, c, "a\nb")
	if got := readN(t, c, 2); got != "a\n" {
		t.Errorf("echo of the first line: got %q, want %q", got, "a\n")
	}
	write(t, c, "c\nlast")
	if got := readN(t, c, 3); got != "bc\n" {
		t.Errorf("echo of the second line: got %q, want %q", got, "bc\n")
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "last" {
		t.Errorf("after the client's FIN: got %q, want the last line as sent, then EOF", got)
	}
	out := afterConnect(t, stop(t, srv), "127.0.0.1", port)
	checkLines(t, "serve stdout after the connect address", out, []string{"a", "bc", "last"})
}

// ncLen32 frames s with its 4-byte big-endian length.
func ncLen32(s string) string {
	return string(binary.BigEndian.AppendUint32(nil, uint32(len(s)))) + s
}

// --frame len32 --max-message 10: a 10-byte message is echoed with its
// length; an 11-byte one closes the connection with an error line.
func TestFrameLen32(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--mode", "echo", "--frame", "len32", "--max-message", "10")

	ok := dial(t, port)
	msg := ncLen32("0123456789")
	write(t, ok, msg)
	if got := readN(t, ok, len(msg)); got != msg {
		t.Errorf("echo of a 10-byte message: got %q, want %q", got, msg)
	}
	srv.stdout.waitPrefix(t, "connect address : ", waitFor)
	srv.waitLine(t, "0123456789", waitFor)

	big := dial(t, port)
	write(t, big, ncLen32("0123456789a"))
	// The server closes the connection: a FIN, or a reset when it closed
	// with bytes of the message unread. Either way nothing comes back.
	b, err := io.ReadAll(big)
	if len(b) != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("after an 11-byte message: read %q, %v; want the connection closed", b, err)
	}
	line := srv.stdout.waitPrefix(t, "error : ", waitFor)
	want := "error : " + big.LocalAddr().String() + " : "
	if !strings.HasPrefix(line, want) || !strings.Contains(line, "message too large") || !strings.Contains(line, "11 bytes, more than 10") {
		t.Errorf("serve: got %q, want a line starting %q and saying the message of 11 bytes is too large", line, want)
	}

	// The first connection is still served.
	msg = ncLen32("again")
	write(t, ok, msg)
	if got := readN(t, ok, len(msg)); got != msg {
		t.Errorf("echo of a second message: got %q, want %q", got, msg)
	}
}

func TestFrameBogus(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runTcpkit(t, "serve", "--port", "0", "--frame", "bogus")
	checkExit(t, "serve", code, exitUsage)
	checkLines(t, "serve stdout", stdout, nil)
	checkOneLine(t, "serve stderr", stderr, `--frame: unknown framing "bogus"`)
}

// ncSocketPath returns the path of a Unix socket in a new temporary
// directory, short enough for sun_path (108 bytes on Linux).
func ncSocketPath(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 90 {
		var err error
		if dir, err = os.MkdirTemp("", "tk"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return filepath.Join(dir, "s.sock")
}

// ncServeUnix starts "tcpkit serve --unix path --mode echo" and waits
// for its listen line.
func ncServeUnix(t testing.TB, path string) *proc {
	t.Helper()
	return ncServeUnixOn(t, path, "auto")
}

// ncServeUnixOn is ncServeUnix with --engine engine, whose name serve
// must report.
func ncServeUnixOn(t testing.TB, path, engine string) *proc {
	t.Helper()
	srv := startTcpkit(t, "serve", "--unix", path, "--mode", "echo", "--engine", engine)
	srv.waitLine(t, "listen on "+path, waitFor)
	srv.stderr.take(t, "tcpkit serve: listening on unix:"+path+" ("+engineName(engine)+" engine)", waitFor)
	return srv
}

// ncUnixRoundTrip sends bytes through "tcpkit connect --unix path -" and
// checks they come back from the echo server at path.
func ncUnixRoundTrip(t testing.TB, srv *proc, path string) {
	t.Helper()
	in := "over unix\n\x00\xff"
	code, out, errs := ncRun(t, in, tcpkitBin, "connect", "--unix", path, "-")
	checkExit(t, "connect --unix", code, exitOK)
	if out != in {
		t.Errorf("connect --unix stdout: got %q, want %q", out, in)
	}
	checkLines(t, "connect --unix stderr", errs, nil)
	srv.waitLine(t, "connect address : unix:(unnamed)", waitFor)
}

func TestUnixSocket(t *testing.T) {
	t.Parallel()
	forEachCLIEngine(t, func(t *testing.T, engine string) {
		t.Run("round trip", func(t *testing.T) {
			t.Parallel()
			path := ncSocketPath(t)
			srv := ncServeUnixOn(t, path, engine)
			ncUnixRoundTrip(t, srv, path)
			stop(t, srv)
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after serve stopped, the socket file is still there: %v", err)
			}
		})

		// A socket file whose server died is replaced.
		t.Run("stale", func(t *testing.T) {
			t.Parallel()
			path := ncSocketPath(t)
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false)
			ln.Close()
			if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
				t.Fatalf("the stale socket file: %v, %v", fi, err)
			}
			srv := ncServeUnixOn(t, path, engine)
			ncUnixRoundTrip(t, srv, path)
		})

		// One a live server answers on is left alone.
		t.Run("live", func(t *testing.T) {
			t.Parallel()
			path := ncSocketPath(t)
			srv := ncServeUnixOn(t, path, engine)
			code, stdout, stderr := runTcpkit(t, "serve", "--unix", path)
			checkExit(t, "second serve", code, exitFail)
			checkLines(t, "second serve stdout", stdout, nil)
			checkLines(t, "second serve stderr", stderr, []string{"tcpkit serve: cannot listen on " + path + ": a live server is listening on " + path + " (EADDRINUSE)"})
			// The second serve's probe was a connection to the first.
			srv.waitLine(t, "connect address : unix:(unnamed)", waitFor)
			ncUnixRoundTrip(t, srv, path)
		})

		t.Run("not a socket", func(t *testing.T) {
			t.Parallel()
			path := ncSocketPath(t)
			if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runTcpkit(t, "serve", "--unix", path)
			checkExit(t, "serve", code, exitFail)
			checkLines(t, "serve stdout", stdout, nil)
			checkOneLine(t, "serve stderr", stderr, path+" exists and is not a socket")
			if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
				t.Errorf("the file: got %q, %v; want it untouched", b, err)
			}
		})
	})
}

// connect --send and --expect as a health check.
func TestCheck(t *testing.T) {
	t.Parallel()
	_, echo := serve(t, "--mode", "echo")
	_, reply := serve(t)
	silent := listener(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // accepts, reads, says nothing
	refused := addr(refusedPort(t))
	const failed = "tcpkit connect: check failed: "
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // the start of the one line on stdout
		stderr string // the one line on stderr: all of it for exit 1, a part for exit 2
	}{
		{"match", []string{addr(echo), "--send", `PING\n`, "--expect", "PING", "--within", "2s"},
			exitOK, `ok: "PING\n" matched "PING" after `, ""},
		{"wrong reply", []string{addr(echo), "--send", `PING\n`, "--expect", "PONG", "--within", "300ms"},
			exitFail, "", failed + `wrong reply within 300ms: received "PING\n", want "PONG"`},
		{"server ended", []string{addr(reply), "--send", `PING\n`, "--expect", "PONG"},
			exitFail, "", failed + `the server ended the connection first; received "test", want "PONG"`},
		{"silent", []string{addr(silent), "--send", `PING\n`, "--expect", "PONG", "--within", "300ms"},
			exitFail, "", failed + `nothing received within 300ms, want "PONG"`},
		{"refused", []string{refused, "--send", `PING\n`, "--expect", "PONG"},
			exitFail, "", failed + "cannot connect to " + refused + ": connection refused, nothing is listening there (ECONNREFUSED)"},
		{"regexp", []string{addr(reply), "--send", `PING\n`, "--expect-re", "t.st"},
			exitOK, `ok: "test" matched /t.st/ after `, ""},
		{"bad regexp", []string{addr(reply), "--send", `PING\n`, "--expect-re", "t(st"},
			exitUsage, "", "--expect-re: error parsing regexp: missing closing ): `t(st`"},
		{"bad escape", []string{addr(reply), "--send", `bad\q`, "--expect", "PONG"},
			exitUsage, "", `--send: "bad\\q": unknown escape \q`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runTcpkit(t, append([]string{"connect"}, tt.args...)...)
			checkExit(t, "connect", code, tt.code)
			switch {
			case tt.stdout != "":
				after, ok := "", len(stdout) == 1
				if ok {
					after, ok = strings.CutPrefix(stdout[0], tt.stdout)
				}
				if _, err := time.ParseDuration(after); !ok || err != nil {
					t.Errorf("connect stdout: got %q, want one line %q and a duration", stdout, tt.stdout)
				}
			default:
				checkLines(t, "connect stdout", stdout, nil)
			}
			switch tt.code {
			case exitOK:
				checkLines(t, "connect stderr", stderr, nil)
			case exitFail:
				checkLines(t, "connect stderr", stderr, []string{tt.stderr})
			default:
				checkOneLine(t, "connect stderr", stderr, tt.stderr)
			}
		})
	}
}

// With standard input a pipe and no "-", connect acts as netcat; a flag
// of the seed's client keeps the seed's mode.
func TestStdinPipe(t *testing.T) {
	t.Parallel()

	t.Run("netcat", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t)
		code, out, errs := ncRun(t, "from stdin\n", tcpkitBin, "connect", itoa(port))
		checkExit(t, "connect", code, exitOK)
		if out != "test" { // the reply exactly, no newline added
			t.Errorf("connect stdout: got %q, want %q", out, "test")
		}
		checkLines(t, "connect stderr", errs, nil)
		out2 := afterConnect(t, stop(t, srv), "127.0.0.1", port)
		checkLines(t, "serve stdout after the connect address", out2, []string{"from stdin"})
	})

	t.Run("seed flag", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t)
		code, out, errs := ncRun(t, "from stdin\n", tcpkitBin, "connect", itoa(port), "--count", "1")
		checkExit(t, "connect", code, exitOK)
		if want := "connect to server!\nreceive: test\ndisconnected.\n"; out != want {
			t.Errorf("connect stdout: got %q, want %q", out, want)
		}
		checkLines(t, "connect stderr", errs, nil)
		out2 := afterConnect(t, stop(t, srv), "127.0.0.1", port)
		checkLines(t, "serve stdout after the connect address", out2, []string{"testing~"})
	})
}

// serve --hex prints each message as hexdump -C does.
func TestHexServe(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--hex")
	c := dial(t, port)
	write(t, c, "hi\n")
	if got := readAll(t, c); got != "test" {
		t.Errorf("reply: got %q, want %q", got, "test")
	}
	c.Close()
	out := afterConnect(t, stop(t, srv), "127.0.0.1", port)
	checkLines(t, "serve stdout after the connect address", out, []string{
		"00000000  68 69 0a                                          |hi.|",
	})
}

// -4 and -6.
func TestFamily(t *testing.T) {
	t.Parallel()

	t.Run("serve -4", func(t *testing.T) {
		t.Parallel()
		_, port := serve(t, "-4")
		c := dial(t, port)
		write(t, c, "testing~")
		if got := readAll(t, c); got != "test" {
			t.Errorf("reply: got %q, want %q", got, "test")
		}
	})

	t.Run("serve -4 -6", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runTcpkit(t, "serve", "--port", "0", "-4", "-6")
		checkExit(t, "serve", code, exitUsage)
		checkLines(t, "serve stdout", stdout, nil)
		checkOneLine(t, "serve stderr", stderr, "-4 and -6 exclude each other")
	})

	t.Run("connect -4 -6", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runTcpkit(t, "connect", "-4", "-6", "127.0.0.1:5000")
		checkExit(t, "connect", code, exitUsage)
		checkLines(t, "connect stdout", stdout, nil)
		checkOneLine(t, "connect stderr", stderr, "-4 and -6 exclude each other")
	})

	// An IPv4 address has no IPv6 route: Go's resolver finds no address
	// of the family at all, before any system call, so this fails the
	// same way everywhere.
	t.Run("connect -6 to IPv4", func(t *testing.T) {
		t.Parallel()
		_, port := serve(t, "-4")
		code, stdout, stderr := runTcpkit(t, "connect", "-6", addr(port))
		checkExit(t, "connect", code, exitFail)
		checkLines(t, "connect stdout", stdout, nil)
		if len(stderr) != 1 || !strings.HasPrefix(stderr[0], "tcpkit connect: cannot connect to "+addr(port)+": ") || !strings.HasSuffix(stderr[0], ": 127.0.0.1 is not an address of the family asked for (-4/-6)") {
			t.Errorf("connect stderr: got %q, want one line saying the address is not of the family asked for", stderr)
		}
	})
}
