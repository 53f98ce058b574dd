package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// relayPaths are the two ways relay moves bytes: by splice(2) where
// nothing inspects them (the default on Linux), and copied through the
// event loop (--no-splice, and whatever inspects them). Every behaviour
// test runs on both.
var relayPaths = []struct {
	name  string
	flags []string
}{
	{"splice", nil},
	{"copy", []string{"--no-splice"}},
}

// forEachRelayPath runs f in a subtest per path, with that path's flags.
func forEachRelayPath(t *testing.T, f func(t *testing.T, flags []string)) {
	t.Helper()
	for _, p := range relayPaths {
		t.Run(p.name, func(t *testing.T) { f(t, p.flags) })
	}
}

var relayListenRe = regexp.MustCompile(`^tcpkit relay: listening on 127\.0\.0\.1:(\d+), relaying to (\S+) \((.*)\)$`)

// startRelay starts "tcpkit relay FLAGS 127.0.0.1:0 TARGET" with bin and
// returns it and its port, read from its listen line on stderr (which is
// taken out of the stream).
func startRelay(t testing.TB, bin, target string, flags ...string) (*proc, int) {
	t.Helper()
	return startRelayUnder(t, []string{bin}, target, flags...)
}

// startRelayUnder is startRelay with a command before the relay's
// arguments: the binary, or a program that runs it (prlimit ... BIN).
func startRelayUnder(t testing.TB, cmd []string, target string, flags ...string) (*proc, int) {
	t.Helper()
	p := start(t, cmd[0], append(append(append(cmd[1:len(cmd):len(cmd)], "relay"), flags...), "127.0.0.1:0", target)...)
	return p, relayListening(t, p, flags)
}

// relayListening takes the relay's listen line from its stderr, checks
// that it says the path flags call for, and returns the port.
func relayListening(t testing.TB, p *proc, flags []string) int {
	t.Helper()
	line := p.stderr.take(t, "tcpkit relay: listening on ", waitFor)
	m := relayListenRe.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("relay's listen line is %q, want \"tcpkit relay: listening on 127.0.0.1:PORT, relaying to TARGET (HOW)\"", line)
	}
	wantHow := "splice(2) for streams"
	for _, f := range flags {
		for _, c := range []string{"--no-splice", "--hex", "--trace", "--control", "--proxy-protocol", "--latency",
			"--bandwidth", "--slice", "--reset-after", "--stall", "--limit-data", "--slow-close"} {
			if f == c || strings.HasPrefix(f, c+"=") {
				wantHow = "copying"
			}
		}
	}
	if !strings.HasPrefix(m[3], wantHow) {
		t.Fatalf("relay %q says it is %q, want %q", flags, m[3], wantHow)
	}
	port, _ := strconv.Atoi(m[1])
	return port
}

// vmRSS returns a process's resident memory in KiB.
func vmRSS(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("cannot read the relay's memory: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	t.Fatalf("no VmRSS for PID %d", pid)
	return 0
}

// pairLineRe matches relay's line for a pair that opened; pairEndRe the
// last line of one that ended.
var (
	pairLineRe = regexp.MustCompile(`^pair (\d+) : \S+ -> (\S+) via \S+$`)
	pairEndRe  = regexp.MustCompile(`^pair (\d+) : (.*); (\d+) bytes? to the target, (\d+) to the client, in \S+$`)
)

// waitPairEnd waits for the last line of pair id on relay's stdout and
// returns how it ended and the bytes each way.
func waitPairEnd(t testing.TB, p *proc, id int) (how string, up, down int) {
	t.Helper()
	line := p.stdout.waitPrefix(t, "pair "+itoa(id)+" : ", waitFor)
	if pairLineRe.MatchString(line) { // its first line
		line = p.stdout.waitPrefix(t, "pair "+itoa(id)+" : ", waitFor)
	}
	m := pairEndRe.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("relay's line %q is not the end of pair %d", line, id)
	}
	up, _ = strconv.Atoi(m[3])
	down, _ = strconv.Atoi(m[4])
	return m[2], up, down
}

// since is the time from start, for measurements.
func since(start time.Time) time.Duration { return time.Since(start) }
