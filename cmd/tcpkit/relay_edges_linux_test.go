package main

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"syscall"
	"tcpkit/internal/ports"
	"testing"
	"time"
)

// The relay at its edges, from outside: a standard output that blocks
// or whose reader is gone, and a signal in each phase of a pair.

// startRelayStdout starts "tcpkit relay FLAGS 127.0.0.1:0 TARGET" with
// its standard output on stdout, and returns it and its port.
func startRelayStdout(t testing.TB, stdout *os.File, target string, flags ...string) (*proc, int) {
	t.Helper()
	p := startStdout(t, stdout, append(append([]string{"relay"}, flags...), "127.0.0.1:0", target)...)
	return p, relayListening(t, p, flags)
}

var relayDroppedRe = regexp.MustCompile(`^tcpkit relay: stopped; 1 open pair ended by itself; [1-9]\d* output lines? dropped$`)

// With --hex and a standard output nobody reads, the relay relays on:
// what it cannot show is dropped and counted, and SIGTERM drains and
// exits as ever.
func TestRelayStdoutBlocked(t *testing.T) {
	t.Parallel()
	_, sport := serve(t, "--mode", "echo", "--quiet") // echoes, and ends at the client's FIN
	r, port := startRelayStdout(t, stuckPipe(t), addr(sport), "--hex", "--drain-timeout", "2s")
	c := dial(t, port)
	echoLines(t, c, 30000) // 3 MB each way, dumped in hex: far past the pipe and the writer's 1 MiB
	r.stderr.waitPrefix(t, "tcpkit relay: standard output is not keeping up", waitFor)
	echoLines(t, c, 100) // and still relaying

	start := time.Now()
	r.signal(t, syscall.SIGTERM)
	waitListenerGone(t, port) // the drain began, with the pair open
	c.CloseWrite()            // the pair ends by itself: the client's FIN, then the target's
	readAll(t, c)
	c.Close()
	checkExit(t, "relay after SIGTERM", r.wait(t, waitFor), exitOK)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("relay took %v to stop, want within --drain-timeout 2s", took)
	}
	lines := r.stderr.all()
	if len(lines) != 2 || !relayDroppedRe.MatchString(lines[1]) {
		t.Errorf("relay stderr: got %q, want the notice, then a stopped line matching %v", lines, relayDroppedRe)
	}
}

// "tcpkit relay ... | head -1": once standard output's reader is gone,
// the relay is not killed by SIGPIPE; it says so and drains as on
// SIGTERM, the open pair relayed to its end.
func TestRelayStdoutReaderGone(t *testing.T) {
	t.Parallel()
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	rd.Close() // the reader is gone before the first line
	_, sport := serve(t, "--mode", "echo", "--quiet")
	r, port := startRelayStdout(t, w, addr(sport))
	c := dial(t, port)
	write(t, c, "testing~")
	if got := readN(t, c, 8); got != "testing~" {
		t.Fatalf("echo through the relay: %q", got)
	}
	r.stderr.waitLine(t, "tcpkit relay: cannot write to standard output: its reader is gone (EPIPE); stopping as on SIGTERM", waitFor)
	if _, err := net.DialTimeout("tcp", addr(port), waitFor); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a new client once stopping got %v, want ECONNREFUSED", err)
	}
	write(t, c, "more") // the open pair goes on
	if got := readN(t, c, 4); got != "more" {
		t.Errorf("echo after the stop began: %q", got)
	}
	c.CloseWrite()
	readAll(t, c)
	checkExit(t, "relay", r.wait(t, waitFor), exitOK)
	r.stderr.waitPrefix(t, "tcpkit relay: stopped; 1 open pair ended by itself", waitFor)
}

// A second signal resets the open pairs at once, on both paths: the
// client sees the reset, and the relay exits 1 saying how many.
func TestRelaySecondSignal(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		r, port := startRelay(t, tcpkitBin, addr(echoTarget(t)), append(flags, "--drain-timeout", "1m")...)
		c := dial(t, port)
		write(t, c, "x")
		readN(t, c, 1)
		r.signal(t, syscall.SIGTERM)
		start := time.Now()
		r.signal(t, syscall.SIGINT)
		checkExit(t, "relay after two signals", r.wait(t, waitFor), exitFail)
		if took := time.Since(start); took > time.Second {
			t.Errorf("relay took %v after the second signal", took)
		}
		c.SetDeadline(time.Now().Add(waitFor))
		if _, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the client got %v, want a reset", err)
		}
		r.stderr.waitLine(t, "tcpkit relay: stopped; 1 of 1 open pairs were still open at a second signal and were reset", waitFor)
	})
}

// SIGTERM while the target is still being connected to: the pair gets
// --drain-timeout like any other, then the client is reset.
func TestRelaySignalWhileConnecting(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		tport := addr(fullBacklog(t))
		r, port := startRelay(t, tcpkitBin, tport, append(flags, "--connect-timeout", "1m", "--drain-timeout", "300ms")...)
		c := dial(t, port)
		waitConnecting(t, tport) // the relay took the client, and is connecting to the target
		r.signal(t, syscall.SIGTERM)
		c.SetDeadline(time.Now().Add(waitFor))
		if _, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the client got %v, want a reset", err)
		}
		checkExit(t, "relay after SIGTERM", r.wait(t, waitFor), exitFail)
		r.stderr.waitLine(t, "tcpkit relay: stopped; 1 of 1 open pairs did not end within --drain-timeout 300ms and were reset", waitFor)
	})
}

// waitConnecting waits until a socket is connecting to target (SYN_SENT
// in the kernel's TCP table).
func waitConnecting(t testing.TB, target string) {
	t.Helper()
	ap := netip.MustParseAddrPort(target)
	waitTCPTable(t, "a connection to "+target+" in SYN_SENT", ports.Options{Port: ap.Port()}, func(socks []ports.Socket) bool {
		return slices.ContainsFunc(socks, func(s ports.Socket) bool { return s.State == ports.SynSent && s.Remote == ap })
	})
}

// waitListenerGone waits until the listener on port is closed (gone
// from the kernel's TCP table): a server or relay has stopped accepting,
// and drains. No client is sent to find out, which would be one more to
// drain.
func waitListenerGone(t testing.TB, port int) {
	t.Helper()
	waitTCPTable(t, "listener on the port gone", ports.Options{Port: uint16(port), Listen: true}, func(socks []ports.Socket) bool {
		return len(socks) == 0
	})
}

// waitTCPTable polls the kernel's TCP table until done accepts the
// sockets opts select.
func waitTCPTable(t testing.TB, what string, opts ports.Options, done func([]ports.Socket) bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		res, err := ports.List(opts)
		if err != nil {
			t.Fatalf("reading the TCP table: %v", err)
		}
		if done(res.Sockets) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, waitFor)
		}
		time.Sleep(5 * time.Millisecond) // polling the kernel's table, not synchronisation
	}
}
