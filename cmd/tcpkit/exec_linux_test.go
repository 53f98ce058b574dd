package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Exec mode's commands never outlive the server or their client: these
// tests count processes, sockets and fds through /proc.

// execSleeper is a command that sends its PID, then sleeps, ignoring its
// input: what a client that leaves can least get rid of. Its standard
// error is not serve's: a command left running would hold the test's
// pipe, and the test would see serve's exit late.
var execSleeper = []string{"sh", "-c", "echo $$; exec sleep 1000 2>/dev/null"}

// execArgs is serve's arguments for exec mode with the command argv.
func execArgs(flags []string, argv ...string) []string {
	return append(append(append([]string{"--mode", "exec"}, flags...), "--"), argv...)
}

// An execKid is a process that serve started for a client, as the test
// found it: its PID and its start time, which an exec keeps, so that a
// process that took the PID later is not mistaken for it.
type execKid struct {
	pid   int
	start string
}

// execFind returns the running process pid as an execKid.
func execFind(t testing.TB, pid int) execKid {
	t.Helper()
	start, ok := execStartTime(pid)
	if !ok {
		t.Fatalf("process %d is not running", pid)
	}
	return execKid{pid, start}
}

// execStartTime returns field 22 of /proc/PID/stat, the process's start
// time in clock ticks since boot.
func execStartTime(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])) // from field 3, state
	if len(fields) < 20 {
		return "", false
	}
	return fields[19], true
}

// execConnect connects n clients to port and reads from each the PID its
// command sends first.
func execConnect(t testing.TB, port, n int) ([]*net.TCPConn, []execKid) {
	t.Helper()
	var conns []*net.TCPConn
	var kids []execKid
	for range n {
		c := dial(t, port)
		conns = append(conns, c)
		kids = append(kids, execFind(t, ncReadPID(t, bufio.NewReader(c))))
	}
	return conns, kids
}

// running reports whether k still exists, as a zombie or alive.
func (k execKid) running() bool {
	start, ok := execStartTime(k.pid)
	return ok && start == k.start
}

// execNoneLeft fails the test unless every kid is gone: exited and
// reaped, by the server, not left to init.
func execNoneLeft(t testing.TB, when string, kids []execKid) {
	t.Helper()
	var left []string
	for _, k := range kids {
		if k.running() {
			state := "alive"
			if ncZombie(k.pid) {
				state = "a zombie"
			}
			left = append(left, fmt.Sprintf("%d (%s, ppid %d)", k.pid, state, execPPID(k.pid)))
		}
	}
	if len(left) > 0 {
		t.Errorf("%s: %d of %d commands are still there: %s", when, len(left), len(kids), strings.Join(left, ", "))
	}
}

// execPPID returns pid's parent, or -1.
func execPPID(pid int) int {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])) // state ppid ...
	if len(fields) < 2 {
		return -1
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// execChildren returns the processes whose parent is pid.
func execChildren(t testing.TB, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err == nil && execPPID(p) == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// execCloseWaits counts the sockets of port in CLOSE-WAIT: the client's
// FIN came and the server has not closed its side.
func execCloseWaits(t testing.TB, port int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf(":%04X ", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1]+" ", local) && f[3] == "08" { // 08: TCP_CLOSE_WAIT
			n++
		}
	}
	return n
}

// execSteady waits until serve has no connection and its goroutines and
// fds hold steady, and returns that status.
func execSteady(t testing.TB, srv *proc) relStatus {
	t.Helper()
	var prev relStatus
	return relPollStatus(t, srv, "no open connection and steady counts", waitFor, func(s relStatus) bool {
		steady := s.conns == 0 && prev.conns == 0 && prev.line != "" && s.goroutines == prev.goroutines && s.fds == prev.fds
		prev = s
		return steady
	})
}

// execIdle makes serve start a command once, for a client that resets at
// once (so the forking thread exists), and returns the steady status.
func execIdle(t testing.TB, srv *proc, port int) relStatus {
	t.Helper()
	conns, kids := execConnect(t, port, 1)
	conns[0].SetLinger(0)
	conns[0].Close()
	ncWaitGone(t, kids[0].pid, false)
	return execSteady(t, srv)
}

// execBackToIdle waits until serve has no connection, and the goroutines
// and fds it had idle.
func execBackToIdle(t testing.TB, srv *proc, idle relStatus) {
	t.Helper()
	relPollStatus(t, srv, fmt.Sprintf("the idle goroutines (%d) and fds (%d)", idle.goroutines, idle.fds), waitFor, func(s relStatus) bool {
		return s.conns == 0 && s.goroutines == idle.goroutines && s.fds == idle.fds
	})
}

// execWaitCloseWait waits until n sockets of port are in CLOSE-WAIT.
func execWaitCloseWait(t testing.TB, port, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for execCloseWaits(t, port) != n {
		if time.Now().After(deadline) {
			t.Fatalf("port %d: %d sockets in CLOSE-WAIT after %v, want %d", port, execCloseWaits(t, port), waitFor, n)
		}
		time.Sleep(10 * time.Millisecond) // polling pace, not synchronisation
	}
}

// execWaitEOF reads from c until the server's FIN, dropping what comes.
func execWaitEOF(t testing.TB, c net.Conn) {
	t.Helper()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("waiting for the server's FIN: %v", err)
	}
}

// However the server stops, it has killed and reaped every command by
// the time it exits: none is left running, none is a zombie for init.
func TestExecChildrenReapedAtShutdown(t *testing.T) {
	t.Parallel()

	// Clients that hold on past --drain-timeout: cut, and their commands
	// with them.
	t.Run("drain timeout", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, execArgs([]string{"--drain-timeout", "1s"}, execSleeper...)...)
		_, kids := execConnect(t, port, 10)
		srv.signal(t, syscall.SIGTERM)
		checkExit(t, "serve after SIGTERM", srv.wait(t, waitFor), exitFail)
		execNoneLeft(t, "at serve's exit", kids)
		checkLines(t, "serve stderr", srv.stderr.all(), []string{"tcpkit serve: stopped; 10 of 10 open connections did not end within --drain-timeout 1s and were cut"})
	})

	// A second signal: out at once, and still no command left.
	t.Run("second signal", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, execArgs([]string{"--drain-timeout", "60s"}, execSleeper...)...)
		conns, kids := execConnect(t, port, 10)
		srv.signal(t, syscall.SIGINT)
		execWaitEOF(t, conns[0]) // the first signal ended the connections
		srv.signal(t, syscall.SIGINT)
		checkExit(t, "serve after two SIGINTs", srv.wait(t, waitFor), exitFail)
		execNoneLeft(t, "at serve's exit", kids)
		checkLines(t, "serve stderr", srv.stderr.all(), []string{"tcpkit serve: stopped; 10 of 10 open connections were still open at a second signal and were cut"})
	})

	// The clean drain, with the commands mid-exchange: the clients take
	// the server's FIN and close, the server exits 0 within
	// --drain-timeout, and the commands are gone.
	t.Run("clean drain", func(t *testing.T) {
		t.Parallel()
		const drain = 10 * time.Second
		srv, port := serve(t, execArgs([]string{"--drain-timeout", drain.String()}, "sh", "-c", "echo $$; cat; exec sleep 1000 2>/dev/null")...)
		conns, kids := execConnect(t, port, 10)
		for _, c := range conns {
			write(t, c, "one\n")
			if got := readN(t, c, 4); got != "one\n" {
				t.Fatalf("echo: got %q, want %q", got, "one\n")
			}
			write(t, c, "two\n") // in flight at the signal
		}
		began := time.Now()
		srv.signal(t, syscall.SIGTERM)
		for _, c := range conns {
			execWaitEOF(t, c)
			c.Close()
		}
		checkExit(t, "serve after SIGTERM", srv.wait(t, drain), exitOK)
		if took := time.Since(began); took >= drain {
			t.Errorf("serve took %v to stop, want under --drain-timeout %v", took, drain)
		}
		execNoneLeft(t, "at serve's exit", kids)
		checkLines(t, "serve stderr", srv.stderr.all(), []string{"tcpkit serve: stopped; 10 open connections ended cleanly"})
	})
}

// SIGKILL of the server: the kernel kills each command (the parent-death
// signal), but not what a command started in the background: that is the
// limit docs/exec.md states.
func TestExecServerKilled(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, execArgs(nil, "sh", "-c", "exec 2>/dev/null; sleep 1000 </dev/null >/dev/null & echo $!; echo $$; wait")...)
	var direct, background []execKid
	for range 3 {
		c := dial(t, port)
		r := bufio.NewReader(c)
		background = append(background, execFind(t, ncReadPID(t, r)))
		direct = append(direct, execFind(t, ncReadPID(t, r)))
	}
	t.Cleanup(func() {
		for _, k := range background {
			if k.running() {
				syscall.Kill(k.pid, syscall.SIGKILL)
			}
		}
	})
	srv.cmd.Process.Kill()
	srv.wait(t, waitFor)
	for _, k := range direct {
		ncWaitGone(t, k.pid, true) // init reaps it, when it gets to it
	}
	for _, k := range background {
		if !k.running() || ncZombie(k.pid) {
			t.Errorf("the background process %d is gone; docs/exec.md says it outlives a SIGKILLed server", k.pid)
		}
	}
}

// Clients that send a byte and close, to a command that ignores its
// input: after --exec-grace (default 5s) of silence the commands are
// killed, the connections closed (no CLOSE-WAIT left), and the server's
// fds and children back to what they were.
func TestExecDepartedClients(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, execArgs(nil, execSleeper...)...)
	pid := srv.cmd.Process.Pid
	idle := execIdle(t, srv, port)
	conns, kids := execConnect(t, port, 20)
	began := time.Now()
	for _, c := range conns {
		write(t, c, "x")
		c.Close()
	}
	for range conns {
		srv.stdout.waitPrefix(t, "killed : ", defaultExecGrace+waitFor)
	}
	if took := time.Since(began); took < defaultExecGrace {
		t.Errorf("the commands were killed %v after their clients left, before the grace of %v", took, defaultExecGrace)
	}
	var killed []string
	for _, l := range srv.stdout.all() {
		if strings.HasPrefix(l, "killed : ") {
			killed = append(killed, l)
		}
	}
	for i, c := range conns {
		want := "killed : " + c.LocalAddr().String() + " : sh was silent for 5s after the client's FIN (--exec-grace)"
		if !strings.Contains(strings.Join(killed, "\n")+"\n", want+"\n") {
			t.Errorf("client %d: no line %q in %q", i, want, killed)
		}
	}
	execBackToIdle(t, srv, idle)
	if n := execCloseWaits(t, port); n > 0 {
		t.Errorf("%d sockets in CLOSE-WAIT", n)
	}
	if kids := execChildren(t, pid); len(kids) > 0 {
		t.Errorf("serve still has children: %v", kids)
	}
	execNoneLeft(t, "after the grace", kids)
}

// --max-conns 5 and five clients that leave: the slots come back after
// the grace, and a sixth client is served.
func TestExecMaxConnsNotLockedOut(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, execArgs([]string{"--max-conns", "5"}, execSleeper...)...)
	idle := execIdle(t, srv, port)
	conns, _ := execConnect(t, port, 5)
	for _, c := range conns {
		write(t, c, "x")
		c.Close()
	}
	// While the grace runs, the slots are taken.
	extra := dial(t, port)
	if got := readAll(t, extra); got != "" {
		t.Fatalf("a sixth client during the grace: got %q, want nothing, then EOF", got)
	}
	srv.stdout.waitLine(t, "rejected : "+extra.LocalAddr().String()+" : too many connections (--max-conns 5)", waitFor)
	for range conns {
		srv.stdout.waitPrefix(t, "killed : ", defaultExecGrace+waitFor)
	}
	execBackToIdle(t, srv, idle)
	execConnect(t, port, 1)
}

// 50 clients come and go, half with a FIN, half with a reset: afterwards
// the server holds the fds and goroutines it held idle, and no child.
func TestExecNoLeaks(t *testing.T) {
	t.Parallel()
	relLinuxOnly(t)
	srv, port := serve(t, "--mode", "exec", "--quiet", "--", "cat")
	cycle := func(i int) error {
		nc, err := net.DialTimeout("tcp", addr(port), waitFor)
		if err != nil {
			return err
		}
		c := nc.(*net.TCPConn)
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		msg := "ping " + itoa(i) + "\n"
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			return fmt.Errorf("cycle %d: got %q (%v), want %q", i, buf, err, msg)
		}
		if i%2 == 1 {
			return c.SetLinger(0) // Close resets
		}
		c.CloseWrite()
		if rest, err := io.ReadAll(c); err != nil || len(rest) > 0 {
			return fmt.Errorf("cycle %d: after the FIN got %q (%v), want EOF", i, rest, err)
		}
		return nil
	}
	for i := range 4 { // warm-up: the forking thread, the buffers
		if err := cycle(i); err != nil {
			t.Fatal(err)
		}
	}
	idle := execSteady(t, srv)
	for i := range 50 {
		if err := cycle(i); err != nil {
			t.Fatal(err)
		}
	}
	execBackToIdle(t, srv, idle)
	if kids := execChildren(t, srv.cmd.Process.Pid); len(kids) > 0 {
		t.Errorf("serve still has children: %v", kids)
	}
	if err := syscall.Kill(srv.cmd.Process.Pid, 0); errors.Is(err, syscall.ESRCH) {
		t.Fatal("serve died")
	}
}

// What docs/exec.md says ncat 7.93 does in the same situations, checked:
// an answer after the client's FIN is lost; a command whose client left
// runs on, its socket in CLOSE-WAIT, and outlives ncat's SIGTERM; one
// whose client reset outlives ncat's SIGKILL; a missing command is found
// out per connection.
func TestExecComparedWithNcat(t *testing.T) {
	t.Parallel()
	ncat := needPeer(t, "ncat")

	t.Run("answer after the FIN", func(t *testing.T) {
		t.Parallel()
		_, port := execNcatListen(t, ncat, "--sh-exec", "tr a-z A-Z")
		c := dial(t, port)
		write(t, c, "hello")
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, c); got != "" {
			t.Errorf("ncat: got %q, want nothing (docs/exec.md says the answer is lost)", got)
		}
	})

	t.Run("client leaves", func(t *testing.T) {
		t.Parallel()
		srv, port := execNcatListen(t, ncat, "-k", "--sh-exec", "echo $$; exec sleep 1000 2>/dev/null")
		c := dial(t, port)
		pid := ncReadPID(t, bufio.NewReader(c))
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		write(t, c, "x")
		c.Close()
		// The command holds a copy of the socket: the client's FIN is in,
		// and the socket stays in CLOSE-WAIT. Nothing else happens.
		execWaitCloseWait(t, port, 1)
		srv.signal(t, syscall.SIGTERM)
		srv.wait(t, waitFor)
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("the command %d is gone (%v); docs/exec.md says it outlives ncat", pid, err)
		}
	})

	t.Run("client resets, ncat killed", func(t *testing.T) {
		t.Parallel()
		srv, port := execNcatListen(t, ncat, "-k", "--sh-exec", "echo $$; exec sleep 1000 2>/dev/null")
		c := dial(t, port)
		pid := ncReadPID(t, bufio.NewReader(c))
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		c.SetLinger(0)
		c.Close()
		srv.cmd.Process.Kill()
		srv.wait(t, waitFor)
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("the command %d is gone (%v); docs/exec.md says it outlives the reset and ncat's SIGKILL", pid, err)
		}
	})

	t.Run("missing command", func(t *testing.T) {
		t.Parallel()
		srv, port := execNcatListen(t, ncat, "--exec", "/nonexistent/cmd")
		if got := readAll(t, dial(t, port)); got != "" {
			t.Errorf("got %q, want nothing, then EOF", got)
		}
		srv.stderr.waitLine(t, "exec: No such file or directory", waitFor)
	})
}

// The command's exit ends the connection, whatever it started.
func TestExecCommandExit(t *testing.T) {
	t.Parallel()

	// What it left in its process group is killed at its exit: a
	// background process holding its output does not hold the connection.
	t.Run("its group killed", func(t *testing.T) {
		t.Parallel()
		_, port := serve(t, execArgs(nil, "sh", "-c", "sleep 1000 2>/dev/null & echo $!")...)
		c := dial(t, port)
		r := bufio.NewReader(c)
		bg := execFind(t, ncReadPID(t, r))
		if rest, err := io.ReadAll(r); err != nil || len(rest) > 0 {
			t.Errorf("after the PID: got %q (%v), want EOF", rest, err)
		}
		ncWaitGone(t, bg.pid, true) // reparented to init at the command's exit, which reaps it
	})

	// A process that left the group (setsid) and holds the output gets 2
	// seconds of silence; then the connection ends all the same. It sends
	// its PID once out of the group; the command exits at the client's
	// word.
	t.Run("escaped process", func(t *testing.T) {
		t.Parallel()
		needPeer(t, "setsid")
		_, port := serve(t, execArgs(nil, "sh", "-c", "setsid sh -c 'echo $$; exec sleep 1000 2>/dev/null' </dev/null & read go")...)
		c := dial(t, port)
		r := bufio.NewReader(c)
		escaped := execFind(t, ncReadPID(t, r))
		t.Cleanup(func() {
			if escaped.running() {
				syscall.Kill(escaped.pid, syscall.SIGKILL)
			}
		})
		write(t, c, "go\n")
		began := time.Now()
		if rest, err := io.ReadAll(r); err != nil || len(rest) > 0 {
			t.Errorf("after the PID: got %q (%v), want EOF", rest, err)
		}
		if took := time.Since(began); took < killDelay {
			t.Errorf("the connection ended %v after the command's exit, want %v", took, killDelay)
		}
		if !escaped.running() || ncZombie(escaped.pid) {
			t.Errorf("the escaped process %d is gone; docs/exec.md says it escapes", escaped.pid)
		}
	})
}
