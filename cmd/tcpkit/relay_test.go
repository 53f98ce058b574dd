package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The seed's exchange through the relay: the client and the server see
// what they would see directly, and the relay's log names the client and
// the target of the pair, then how it ended and what went through.
func TestRelaySeed(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		srv, sport := serve(t)
		r, rport := startRelay(t, tcpkitBin, addr(sport), flags...)
		code, out, errs := runTcpkit(t, "connect", "--count", "1", itoa(rport))
		checkExit(t, "connect through the relay", code, exitOK)
		checkLines(t, "connect's stdout", out, []string{"connect to server!", "receive: test", "disconnected."})
		checkLines(t, "connect's stderr", errs, nil)
		first := r.stdout.waitPrefix(t, "pair 1 : ", waitFor)
		if m := pairLineRe.FindStringSubmatch(first); m == nil || m[2] != addr(sport) {
			t.Errorf("relay's first line %q, want \"pair 1 : CLIENT -> %s via ADDR\"", first, addr(sport))
		}
		how, up, down := waitPairEnd(t, r, 1)
		if how != "ended cleanly" || up != len("testing~") || down != len("test") {
			t.Errorf("pair 1 ended %q with %d bytes up and %d down, want \"ended cleanly\", 8 and 4", how, up, down)
		}
		stop(t, srv)
		r.signal(t, syscall.SIGTERM)
		checkExit(t, "relay after SIGTERM", r.wait(t, waitFor), exitOK)
		checkLines(t, "relay's stderr", r.stderr.all(), []string{"tcpkit relay: stopped; 0 open pairs ended by themselves"})
	})
}

// A target that refuses resets the client at once, and the log says why
// in words.
func TestRelayTargetRefused(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		port := closedPort(t)
		r, rport := startRelay(t, tcpkitBin, addr(port), flags...)
		began := time.Now()
		nc, err := net.DialTimeout("tcp4", addr(rport), waitFor)
		if err == nil {
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(waitFor))
			_, err = io.ReadAll(nc)
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the client got %v, want a reset", err)
		}
		if took := since(began); took > time.Second {
			t.Errorf("the reset came after %v: not at once", took)
		}
		want := regexp.MustCompile(`^pair 1 : 127\.0\.0\.1:\d+ -> ` + regexp.QuoteMeta(addr(port)) + ` : cannot connect to ` + regexp.QuoteMeta(addr(port)) +
			`: connection refused, nothing is listening there \(ECONNREFUSED\); the client's connection was reset$`)
		if line := r.stdout.waitPrefix(t, "pair 1 : ", waitFor); !want.MatchString(line) {
			t.Errorf("relay says %q, want it to match %s", line, want)
		}
	})
}

// A target that does not answer resets the client after
// --connect-timeout, and the log says so.
func TestRelayTargetTimeout(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		port := fullBacklog(t)
		r, rport := startRelay(t, tcpkitBin, addr(port), append(flags, "--connect-timeout", "300ms")...)
		began := time.Now()
		nc := dial(t, rport)
		_, err := io.ReadAll(nc)
		took := since(began)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the client got %v, want a reset", err)
		}
		if took < 300*time.Millisecond || took > 300*time.Millisecond+time.Second {
			t.Errorf("the reset came after %v, want --connect-timeout 300ms", took)
		}
		line := r.stdout.waitPrefix(t, "pair 1 : ", waitFor)
		if !strings.HasSuffix(line, ": cannot connect to "+addr(port)+": no answer in time (ETIMEDOUT); the client's connection was reset") {
			t.Errorf("relay says %q, want the timeout in words", line)
		}
	})
}

// --max-conns: a client past the limit is closed at once and logged; the
// pair open goes on.
func TestRelayMaxConns(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		_, sport := serve(t, "--mode", "echo", "--keep-open", "--quiet")
		r, rport := startRelay(t, tcpkitBin, addr(sport), append(flags, "--max-conns", "1")...)
		first := dial(t, rport)
		write(t, first, "one")
		if got := readN(t, first, 3); got != "one" {
			t.Fatalf("echo %q through the relay, want %q", got, "one")
		}
		second := dial(t, rport)
		b, err := io.ReadAll(second)
		if len(b) != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the second client read %q, %v; want the connection closed at once", b, err)
		}
		line := r.stdout.waitPrefix(t, "rejected : ", waitFor)
		if !regexp.MustCompile(`^rejected : 127\.0\.0\.1:\d+ : too many pairs open \(--max-conns 1\)$`).MatchString(line) {
			t.Errorf("relay says %q, want the rejection and why", line)
		}
		write(t, first, "two")
		if got := readN(t, first, 3); got != "two" {
			t.Errorf("echo %q after the rejection, want %q", got, "two")
		}
	})
}

// --idle-timeout: a pair that relays nothing either way is ended with a
// FIN to both sides, and the log says why.
func TestRelayIdleTimeout(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		ended := make(chan error, 1)
		tport := listener(t, func(nc net.Conn) {
			nc.SetDeadline(time.Now().Add(waitFor))
			_, err := io.ReadAll(nc) // to the relay's FIN
			ended <- err
		})
		r, rport := startRelay(t, tcpkitBin, addr(tport), append(flags, "--idle-timeout", "300ms")...)
		nc := dial(t, rport)
		began := time.Now()
		b, err := io.ReadAll(nc)
		took := since(began)
		if len(b) != 0 || err != nil {
			t.Errorf("the client read %q, %v; want the relay's FIN", b, err)
		}
		if took < 250*time.Millisecond || took > time.Second { // the relay's clock started at the accept, before ours
			t.Errorf("the FIN came after %v, want --idle-timeout 300ms (and the sweep's eighth)", took)
		}
		if err := <-ended; err != nil {
			t.Errorf("the target's read ended with %v, want the relay's FIN", err)
		}
		nc.Close()
		how, _, _ := waitPairEnd(t, r, 1)
		if how != "nothing relayed either way for 300ms (--idle-timeout)" {
			t.Errorf("pair 1 ended %q, want the idle timeout", how)
		}
	})
}

// A client that never reads cannot grow the relay: the target's stream
// stops once the bounded buffers are full, and the relay's memory stays
// where it was.
func TestRelayBounded(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		wrote := make(chan int64, 1)
		tport := listener(t, func(nc net.Conn) {
			chunk := make([]byte, 64<<10)
			var n int64
			for n < 512<<20 { // a bound for the test: far more than any buffer
				nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
				m, err := nc.Write(chunk)
				n += int64(m)
				if err != nil {
					break // stalled for 300 ms: nothing more is taken
				}
			}
			wrote <- n
		})
		r, rport := startRelay(t, tcpkitBin, addr(tport), flags...)
		before := vmRSS(t, r.cmd.Process.Pid)
		nc := dial(t, rport) // and never read
		n := <-wrote
		grew := vmRSS(t, r.cmd.Process.Pid) - before
		if n >= 512<<20 {
			t.Fatalf("the target wrote %d MiB without stalling: no backpressure", n>>20)
		}
		if grew > 8<<10 {
			t.Errorf("the relay's memory grew by %d KiB while the target pushed %d KiB that the client never read", grew, n>>10)
		}
		t.Logf("the target stalled after %d KiB; the relay grew %d KiB", n>>10, grew)
		nc.Close()
	})
}

// Usage errors: one line that says what to do, exit 2.
func TestRelayUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"relay"}, "tcpkit relay: give LISTEN and TARGET, as in: tcpkit relay 6000 localhost:5000 (run 'tcpkit relay -h' for help)"},
		{[]string{"relay", "6000"}, "tcpkit relay: give LISTEN and TARGET, as in: tcpkit relay 6000 localhost:5000 (run 'tcpkit relay -h' for help)"},
		{[]string{"relay", "6000", "5000", "7000"}, `tcpkit relay: unexpected argument "7000": give LISTEN and TARGET (or --unix PATH and TARGET) (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "sixty", "5000"}, `tcpkit relay: LISTEN "sixty" is not a PORT or HOST:PORT (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "70000", "5000"}, `tcpkit relay: LISTEN port 70000 is out of range: use 0 to 65535 (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "6000", "host:port"}, `tcpkit relay: TARGET: "host:port" is not a PORT or HOST:PORT, or the path of a Unix socket (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "--latency", "50", "6000", "5000"}, `tcpkit relay: --latency "50" is not a duration (50ms, 2s): use, say, 50ms or down:50ms,jitter=10ms (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "--latency", "50ms", "--latency", "60ms", "6000", "5000"}, `tcpkit relay: --latency "60ms": given twice for both directions: give it once (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "--bandwidth", "up:fast", "6000", "5000"}, `tcpkit relay: --bandwidth "up:fast": "fast" is not a byte count: use, say, 1048576 (bytes per second) or up:64KiB (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "--send-proxy", "v3", "6000", "5000"}, `tcpkit relay: --send-proxy "v3": use v1 or v2 (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "--proxy-protocol-from", "10.0.0.0/8", "6000", "5000"}, "tcpkit relay: --proxy-protocol-from and --proxy-protocol-timeout go with --proxy-protocol (run 'tcpkit relay -h' for help)"},
		{[]string{"relay", "--control", "6001", "6000", "5000"}, `tcpkit relay: --control "6001": want HOST:PORT, such as 127.0.0.1:6001 (run 'tcpkit relay -h' for help)`},
		{[]string{"relay", "--connect-timeout", "0s", "6000", "5000"}, "tcpkit relay: --connect-timeout and --drain-timeout must be positive (run 'tcpkit relay -h' for help)"},
		// A relay to itself: each client relayed back to it, until the fds ran out.
		{[]string{"relay", "5000", "5000"}, "tcpkit relay: TARGET localhost:5000 is the relay's own LISTEN address: " + errItself + " (run 'tcpkit relay -h' for help)"},
		{[]string{"relay", "0.0.0.0:5000", "127.0.0.1:5000"}, "tcpkit relay: TARGET 127.0.0.1:5000 is the relay's own LISTEN address: " + errItself + " (run 'tcpkit relay -h' for help)"},
		{[]string{"relay", "[::]:5000", "[::1]:5000"}, "tcpkit relay: TARGET [::1]:5000 is the relay's own LISTEN address: " + errItself + " (run 'tcpkit relay -h' for help)"},
		{[]string{"relay", "--unix", "/tmp/tcpkit-self.sock", "/tmp/tcpkit-self.sock"}, "tcpkit relay: TARGET /tmp/tcpkit-self.sock is the relay's own socket: " + errItself + " (run 'tcpkit relay -h' for help)"},
	}
	for _, tt := range tests {
		code, out, errs := runTcpkit(t, tt.args...)
		checkExit(t, strings.Join(tt.args, " "), code, exitUsage)
		checkLines(t, strings.Join(tt.args, " ")+" stdout", out, nil)
		checkLines(t, strings.Join(tt.args, " ")+" stderr", errs, []string{tt.want})
	}
}

// An idle pair costs the relay little: the growth of its resident memory
// while 2,000 idle pairs are held, as tcpkit bench idle measures it. On
// the splice path a pair holds no goroutine, buffer or pipe: at most
// 1 KiB. The copying path holds two Conns, two flows and their timers
// on the heap, and dials each target on a goroutine while it connects
// (about 10 KiB measured): at most 16 KiB.
func TestRelayIdleMemory(t *testing.T) {
	for _, p := range []struct {
		name  string
		flags []string
		max   float64
	}{{"splice", nil, 1}, {"copy", []string{"--no-splice"}, 16}} {
		t.Run(p.name, func(t *testing.T) {
			_, sport := serveTiming(t, "--keep-open", "--quiet")
			r, rport := startRelay(t, tcpkitTimingBin, addr(sport), append(p.flags, "--quiet")...)
			b := start(t, tcpkitTimingBin, "bench", "idle", "-c", "2000", "-d", "3s", "--json", "--server-pid", itoa(r.cmd.Process.Pid), addr(rport))
			checkExit(t, "bench idle", b.wait(t, 3*waitFor), exitOK)
			var res struct {
				Held       int      `json:"held"`
				KiBPerConn *float64 `json:"server_kib_per_conn"`
			}
			if err := json.Unmarshal([]byte(strings.Join(b.stdout.all(), "\n")), &res); err != nil || res.KiBPerConn == nil {
				t.Fatalf("bench idle's JSON: %v, %q", err, b.stdout.all())
			}
			if res.Held != 2000 || *res.KiBPerConn > p.max {
				t.Errorf("%d idle pairs held, %.2f KiB each; want 2000, at most %.0f KiB", res.Held, *res.KiBPerConn, p.max)
			}
			t.Logf("%s: %.2f KiB per idle pair", p.name, *res.KiBPerConn)
		})
	}
}

// relaysToItself refuses only what would loop: the same port on an
// address the listener accepts on.
func TestRelaysToItself(t *testing.T) {
	for _, tt := range []struct {
		listen, target string
		want           bool
	}{
		{":5000", "localhost:5000", true},
		{":5000", "127.0.0.1:5000", true},
		{":5000", "[::1]:5000", true},
		{"0.0.0.0:5000", "127.0.0.9:5000", true},
		{"127.0.0.1:5000", "127.0.0.1:5000", true},
		{"localhost:5000", "127.0.0.1:5000", true},
		{":5000", "localhost:5001", false},
		{"127.0.0.1:5000", "127.0.0.2:5000", false}, // another address: the listener does not accept there
		{"[::1]:5000", "127.0.0.1:5000", false},
		{":5000", "192.0.2.1:5000", false}, // not this machine's
		{":5000", "example.com:5000", false},
	} {
		if got := relaysToItself(tt.listen, tt.target); got != tt.want {
			t.Errorf("relaysToItself(%q, %q) = %v, want %v", tt.listen, tt.target, got, tt.want)
		}
	}
}
