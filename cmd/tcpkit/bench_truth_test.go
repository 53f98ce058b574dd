package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 12, items 9 to 11: failures that tcpkit bench reported as
// success, from the outside. Each run must also end within its -d and the
// bounded wait for what is in flight (--drain-timeout, 2s by default),
// whatever the server does.

// benchSlack is what a run may take beyond -d and the drain: starting
// the process, dialing, and a loaded machine.
const benchSlack = 3 * time.Second

// checkFailedRun checks the exit code 1 and one line on stderr that says
// why, containing want.
func checkFailedRun(t *testing.T, code int, errOut []string, want string) {
	t.Helper()
	checkExit(t, "bench", code, exitFail)
	checkOneLine(t, "bench stderr", errOut, want)
}

// pingpong counts connects that time out: the epoll loop had no timeout
// on a connect in progress, and reported 0 exchanges and "errors none".
func TestBenchCountsConnectTimeouts(t *testing.T) {
	t.Parallel()
	port := fullBacklog(t)
	code, out, errOut, took := runBench(t, 10*time.Second, "pingpong", "-c", "2", "-d", "1s", "--connect-timeout", "200ms", "--json", addr(port))
	res := parseBench(t, out)
	if res.Errors["timeout"] < 2 {
		t.Errorf("errors %v, want a timeout per connection at least", res.Errors)
	}
	if other := res.errorsBut("timeout"); len(other) != 0 {
		t.Errorf("errors %v: want timeouts only", res.Errors)
	}
	checkFailedRun(t, code, errOut, "--connect-timeout")
	if took > time.Second+2*time.Second+benchSlack {
		t.Errorf("the run took %v for -d 1s", took)
	}
}

// stream against a server that resets it fails the run (it exited 0).
func TestBenchStreamReset(t *testing.T) {
	t.Parallel()
	port := resettingServer(t)
	code, out, errOut, _ := runBench(t, 10*time.Second, "stream", "-c", "2", "-d", "1s", "--json", addr(port))
	res := parseBench(t, out)
	if res.Errors["reset"] == 0 {
		t.Errorf("errors %v, want resets", res.Errors)
	}
	checkFailedRun(t, code, errOut, "reset by the server")
}

// stream --echo against a server that never reads: the writes stall,
// which is a timeout, the echo never comes, and the JSON has bytes_per_s
// (0). It reported exchanges and no error, without bytes_per_s, and took
// -d plus --reply-timeout.
func TestBenchStreamEchoNeverRead(t *testing.T) {
	t.Parallel()
	port := deafServer(t)
	code, out, errOut, took := runBench(t, 12*time.Second, "stream", "--echo", "-c", "2", "-d", "1s", "--reply-timeout", "30s", "--json", addr(port))
	res := parseBench(t, out)
	if res.BytesPerS == nil {
		t.Errorf("stream --echo JSON has no bytes_per_s: %q", out)
	} else if *res.BytesPerS != 0 {
		t.Errorf("bytes_per_s %v, want 0: nothing was echoed", *res.BytesPerS)
	}
	if res.Errors["timeout"] == 0 {
		t.Errorf("errors %v, want timeouts", res.Errors)
	}
	checkFailedRun(t, code, errOut, "timed out")
	if took > time.Second+2*time.Second+benchSlack {
		t.Errorf("the run took %v for -d 1s", took)
	}
}

// With -d shorter than --reply-timeout, a server that never replies shows
// a timeout for each exchange still waiting at the end, and the run ends
// after -d and the drain, not after the reply timeout.
func TestBenchStallShorterThanReplyTimeout(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--mode", "discard", "--quiet")
	code, out, errOut, took := runBench(t, 15*time.Second, "pingpong", "-c", "2", "-d", "1s", "--reply-timeout", "10s", "--json", addr(port))
	res := parseBench(t, out)
	if res.Errors["timeout"] != 2 || res.Exchanges != 0 {
		t.Errorf("exchanges %d, errors %v; want 0 and a timeout for each of the 2 connections", res.Exchanges, res.Errors)
	}
	checkFailedRun(t, code, errOut, "no exchange succeeded")
	if took > time.Second+2*time.Second+benchSlack {
		t.Errorf("the run took %v for -d 1s", took)
	}
}

// bench idle fails when every connection was refused (it exited 0).
func TestBenchIdleAllRefused(t *testing.T) {
	t.Parallel()
	port := closedPort(t)
	code, out, errOut, _ := runBench(t, 10*time.Second, "idle", "-c", "5", "-d", "500ms", "--json", addr(port))
	res := parseBench(t, out)
	if res.Errors["refused"] != 5 || res.Held != 0 {
		t.Errorf("held %d, errors %v; want 0 held and 5 refused", res.Held, res.Errors)
	}
	checkFailedRun(t, code, errOut, "ECONNREFUSED")
}

// --server-pid of a process that does not serve the port: bench says so,
// and the server line is there all the same (it was silently dropped).
func TestBenchServerPIDWrongProcess(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--keep-open", "--quiet")
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	pid := strconv.Itoa(sleep.Process.Pid)
	code, out, errOut, _ := runBench(t, 10*time.Second, "idle", "-c", "5", "-d", "500ms", "--server-pid", pid, addr(port))
	checkExit(t, "bench", code, exitOK)
	checkOneLine(t, "bench stderr", errOut, "--server-pid "+pid+" (sleep) does not listen on port "+itoa(port))
	found := false
	for _, l := range out {
		found = found || strings.HasPrefix(l, "server ")
	}
	if !found {
		t.Errorf("no server line in %q", out)
	}
	// A PID that is no process at all is refused before the run.
	code, out, errOut, _ = runBench(t, 10*time.Second, "idle", "-c", "5", "-d", "500ms", "--server-pid", "999999999", addr(port))
	checkExit(t, "bench", code, exitUsage)
	checkLines(t, "bench stdout", out, nil)
	checkOneLine(t, "bench stderr", errOut, "--server-pid 999999999: no such process")
}

// merge refuses one run given twice (it doubled the counts).
func TestBenchMergeSameRunTwice(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--keep-open", "--quiet")
	code, out, errOut, _ := runBench(t, 10*time.Second, "pingpong", "-c", "2", "-n", "100", "-d", "0", "--json", addr(port))
	checkExit(t, "bench", code, exitOK)
	checkLines(t, "bench stderr", errOut, nil)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	for _, name := range []string{a, b} {
		if err := os.WriteFile(name, []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, files := range [][]string{{a, a}, {a, b}} {
		code, out, errOut, _ := runBench(t, waitFor, append([]string{"merge"}, files...)...)
		checkExit(t, "merge "+strings.Join(files, " "), code, exitUsage)
		checkLines(t, "merge stdout", out, nil)
		checkOneLine(t, "merge stderr", errOut, "are the same run")
	}
}

// Past the fd limit bench refuses -c up front, naming EMFILE and the
// limit (it counted 1,848,068 "other" errors, exited 0, and took 9 s for
// -d 3s).
func TestBenchFDLimit(t *testing.T) {
	t.Parallel()
	prlimit := needPeer(t, "prlimit")
	_, port := serve(t, "--quiet")
	p := start(t, prlimit, "--nofile=64:64", tcpkitBin, "bench", "oneshot", "-c", "200", "-d", "1s", addr(port))
	code := p.wait(t, 10*time.Second)
	checkExit(t, "bench", code, exitUsage)
	checkLines(t, "bench stdout", p.stdout.all(), nil)
	checkOneLine(t, "bench stderr", p.stderr.all(), "-c 200 needs")
	if l := strings.Join(p.stderr.all(), ""); !strings.Contains(l, "EMFILE") || !strings.Contains(l, "limit is 64") {
		t.Errorf("stderr %q: want EMFILE and the limit, 64", l)
	}
}

// An output that cannot be written is found before the run, not after it
// (the results were lost).
func TestBenchReportUnwritable(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--keep-open", "--quiet")
	for _, flag := range []string{"--report", "--cpuprofile"} {
		code, out, errOut, took := runBench(t, 10*time.Second, "pingpong", "-c", "2", "-d", "3s", flag, "/nonexistent/x.out", addr(port))
		checkExit(t, "bench "+flag, code, exitFail)
		checkLines(t, "bench stdout", out, nil)
		checkLines(t, "bench stderr", errOut, []string{"tcpkit bench: cannot write " + flag + " /nonexistent/x.out: no directory /nonexistent"})
		if took > 2*time.Second {
			t.Errorf("bench %s: refused after %v, want before the run", flag, took)
		}
	}
}
