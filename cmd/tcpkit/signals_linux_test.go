package main

// A signal at every phase: each command, interrupted while it connects,
// while it exchanges, or while it drains, ends promptly and cleanly.

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"tcpkit/internal/ports"
)

// promptly bounds how long a command may take to end after Ctrl-C.
const promptly = 3 * time.Second

// Ctrl-C in the middle of the seed's exchanges: connect ends the
// connection with a FIN and exits 0; the server sees no error.
func TestConnectInterrupted(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open")
	cl := startTcpkit(t, "connect", "--interval", "50ms", addr(port))
	cl.waitLine(t, "receive: test", waitFor)
	cl.signal(t, syscall.SIGINT)
	checkExit(t, "connect after Ctrl-C", cl.wait(t, promptly), exitOK)
	checkLines(t, "connect stderr", cl.stderr.all(), nil)
	relPollStatus(t, srv, "the connection closed", waitFor, func(s relStatus) bool { return s.conns == 0 })
	for _, l := range stop(t, srv) {
		if strings.HasPrefix(l, "error") {
			t.Errorf("the server saw %q", l)
		}
	}
}

// Ctrl-C while the connect itself hangs (a server whose accept queue is
// full drops the SYN): exit 0 at once, not at --connect-timeout.
func TestConnectInterruptedWhileConnecting(t *testing.T) {
	t.Parallel()
	port := fullBacklog(t)
	for _, args := range [][]string{{"connect", addr(port)}, {"connect", addr(port), "-"}} {
		cl := startTcpkit(t, args...)
		// The phase under test: its socket exists, towards the port.
		soWaitUntil(t, "connect's socket towards the full listener", waitFor, func() bool {
			res, err := ports.List(ports.Options{Port: uint16(port)})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range res.Sockets {
				if s.PID == cl.cmd.Process.Pid && s.Remote.Port() == uint16(port) {
					return true
				}
			}
			return false
		})
		start := time.Now()
		cl.signal(t, syscall.SIGINT)
		checkExit(t, strings.Join(args, " ")+" after Ctrl-C", cl.wait(t, promptly), exitOK)
		if took := time.Since(start); took > promptly {
			t.Errorf("%v: took %v after Ctrl-C", args, took)
		}
	}
}

// Ctrl-C in the middle of a bench run: the summary of what was measured
// so far, a clean end of the connections (no reset at the server), and
// exit 0.
func TestBenchInterrupted(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open", "--quiet")
	b := startTcpkit(t, "bench", "pingpong", "-c", "8", "-d", "60s", "--json", addr(port))
	relPollStatus(t, srv, "the generator's connections", waitFor, func(s relStatus) bool { return s.conns == 8 })
	b.signal(t, syscall.SIGINT)
	checkExit(t, "bench after Ctrl-C", b.wait(t, promptly+2*time.Second), exitOK) // the drain is 2 s at most
	res := parseBench(t, b.stdout.all())
	if res.Exchanges == 0 || res.DurationS >= 60 {
		t.Errorf("bench after Ctrl-C: %d exchanges in %.1f s, want those of the window it measured", res.Exchanges, res.DurationS)
	}
	for _, l := range stop(t, srv) {
		if strings.Contains(l, "reset") || strings.HasPrefix(l, "error") {
			t.Errorf("the server saw %q", l)
		}
	}
}

// A second signal during --drain-delay exits at once: the operator does
// not wait out the balancer's delay.
func TestServeSecondSignalInDrainDelay(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, "--drain-delay", "60s")
	srv.signal(t, syscall.SIGTERM)
	relGetStatus(t, srv) // answered in the drain delay too: the server is in it, or before it
	start := time.Now()
	srv.signal(t, syscall.SIGINT)
	checkExit(t, "serve after two signals", srv.wait(t, promptly), exitOK)
	if took := time.Since(start); took > promptly {
		t.Errorf("serve took %v after the second signal", took)
	}
}

// SIGUSR1 is answered during the drain too, with the connections left:
// what an operator wants to know while waiting on one.
func TestServeStatusDuringDrain(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open", "--drain-timeout", "1m")
	c := dial(t, port)
	write(t, c, "testing~")
	readN(t, c, 4)
	srv.signal(t, syscall.SIGTERM)
	waitListenerGone(t, port) // the listener is closed: the drain runs
	if s := relGetStatus(t, srv); s.conns != 1 {
		t.Errorf("status during the drain says %d open connections, want 1: %q", s.conns, s.line)
	}
	c.Close()
	checkExit(t, "serve after the drain", srv.wait(t, waitFor), exitOK)
}
