package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Helpers for the tests of tcpkit bench: running it to the end with a
// bound on its time, reading its --json result, and servers that
// misbehave in one precise way.

// benchResult is what the tests read of tcpkit bench --json.
type benchResult struct {
	Mode      string           `json:"mode"`
	Exchanges int64            `json:"exchanges"`
	DurationS float64          `json:"duration_s"`
	Errors    map[string]int64 `json:"errors"`
	Kernel    map[string]int64 `json:"kernel"`
	BytesPerS *float64         `json:"bytes_per_s"`
	Held      int              `json:"held"`
	EndedBy   string           `json:"ended_by"`
	Series    []struct {
		T         float64 `json:"t"`
		Exchanges int64   `json:"exchanges"`
	} `json:"series"`
}

// errorsBut returns the error counts other than those of kinds, non-zero only.
func (r benchResult) errorsBut(kinds ...string) map[string]int64 {
	other := map[string]int64{}
	for k, n := range r.Errors {
		if n != 0 && !strings.Contains(" "+strings.Join(kinds, " ")+" ", " "+k+" ") {
			other[k] = n
		}
	}
	return other
}

// runBench runs the tcpkit binary (bench and its args) to the end and
// returns its exit code, its output and how long it took. It fails the
// test if the run takes longer than limit.
func runBench(t testing.TB, limit time.Duration, args ...string) (code int, stdout, stderr []string, took time.Duration) {
	t.Helper()
	begin := time.Now()
	p := startTcpkit(t, append([]string{"bench"}, args...)...)
	code = p.wait(t, limit)
	return code, p.stdout.all(), p.stderr.all(), time.Since(begin)
}

// parseBench reads a --json result from stdout lines.
func parseBench(t testing.TB, out []string) benchResult {
	t.Helper()
	var res benchResult
	if err := json.Unmarshal([]byte(strings.Join(out, "\n")), &res); err != nil {
		t.Fatalf("bench --json: %v; stdout %q", err, out)
	}
	return res
}

// closedPort returns a loopback port on which nothing listens: one that
// was free a moment ago.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// resettingServer accepts connections, reads what comes for a moment and
// aborts each with a RST (SO_LINGER 0).
func resettingServer(t testing.TB) int {
	t.Helper()
	return listener(t, func(nc net.Conn) {
		nc.SetReadDeadline(time.Now().Add(waitFor))
		buf := make([]byte, 64<<10)
		nc.Read(buf)
		nc.(*net.TCPConn).SetLinger(0)
		nc.Close()
	})
}

// deafServer accepts connections and never reads from them, until the
// test ends.
func deafServer(t testing.TB) int {
	t.Helper()
	done := make(chan struct{})
	port := listener(t, func(nc net.Conn) { <-done })
	t.Cleanup(func() { close(done) }) // registered last, so it runs before listener's cleanup waits for the handlers
	return port
}

// kernelTCP reads the TCP counters of /proc/net/snmp and /proc/net/netstat
// from the output of cat on both, as "Tcp.OutRsts".
func kernelTCP(t testing.TB, text string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	var header []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if header == nil || header[0] != f[0] {
			header = f
			continue
		}
		for i, v := range f[1:] {
			if i+1 < len(header) {
				n, _ := strconv.ParseInt(v, 10, 64)
				m[strings.TrimSuffix(f[0], ":")+"."+header[i+1]] = n
			}
		}
		header = nil
	}
	return m
}

// canUnshareNet reports whether this process may make a network namespace
// (root, or an unprivileged user namespace).
func canUnshareNet(t testing.TB) bool {
	t.Helper()
	unshare := needPeer(t, "unshare")
	needPeer(t, "nsenter")
	needPeer(t, "ip")
	return exec.Command(unshare, "-n", "true").Run() == nil
}
