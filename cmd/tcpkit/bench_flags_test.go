package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 17, the bench parts: the habits users bring from connect, hey,
// wrk, vegeta and k6.

// -n alone runs until N: -d's default cut "bench oneshot -c 50 -n 100000"
// at about 65,000. Paced at 400/s, 2,400 exchanges take 6 s, past the
// 5 s default.
func TestBenchRequestsAloneRunsToN(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--keep-open", "--quiet")
	code, out, errOut, took := runBench(t, 20*time.Second, "pingpong", "-c", "4", "--rate", "400", "-n", "2400", "--json", addr(port))
	checkExit(t, "bench", code, exitOK)
	checkLines(t, "bench stderr", errOut, nil)
	res := parseBench(t, out)
	if res.Exchanges != 2400 || res.EndedBy != "count" {
		t.Errorf("exchanges %d, ended by %q; want 2400, by the count", res.Exchanges, res.EndedBy)
	}
	if took < 5*time.Second {
		t.Errorf("2,400 exchanges at 400/s took %v", took)
	}
}

// --expect means "contains", as connect's does; --expect-exact and
// --expect-len keep the exact and the length checks. It meant "equals":
// against an HTTP server, --expect 'HTTP/1.0 200' gave a wrong reply for
// every exchange.
func TestBenchExpectContains(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--quiet", "--reply", "HTTP/1.0 200 OK, and more")
	for _, tc := range []struct {
		flags []string
		code  int
		wrong int64
	}{
		{[]string{"--expect", "HTTP/1.0 200"}, exitOK, 0},
		{[]string{"--expect", "200 OK"}, exitOK, 0},
		{[]string{"--expect", "404"}, exitFail, 20},
		{[]string{"--expect-exact", "HTTP/1.0 200 OK, and more"}, exitOK, 0},
		{[]string{"--expect-exact", "HTTP/1.0 200"}, exitFail, 20},
		{[]string{"--expect-len", "25"}, exitOK, 0},
		{[]string{"--expect-len", "25", "--expect", "OK"}, exitOK, 0},
		{[]string{"--expect-len", "12"}, exitFail, 20},
	} {
		args := append([]string{"oneshot", "-c", "2", "-n", "20", "--json"}, tc.flags...)
		code, out, _, _ := runBench(t, 10*time.Second, append(args, addr(port))...)
		checkExit(t, strings.Join(tc.flags, " "), code, tc.code)
		res := parseBench(t, out)
		if res.Errors["wrong_reply"] != tc.wrong || res.Exchanges+res.Errors["wrong_reply"] != 20 {
			t.Errorf("%s: exchanges %d, errors %v; want %d wrong replies of 20", strings.Join(tc.flags, " "), res.Exchanges, res.Errors, tc.wrong)
		}
	}
}

// In pingpong a reply that comes in pieces ends once it contains
// --expect; one that never does is a wrong reply at the reply timeout.
func TestBenchExpectContainsPingPong(t *testing.T) {
	t.Parallel()
	port := listener(t, func(nc net.Conn) {
		buf := make([]byte, 64)
		for {
			nc.SetDeadline(time.Now().Add(waitFor))
			if _, err := nc.Read(buf); err != nil {
				return
			}
			nc.Write([]byte("HTTP/1.1 2"))
			nc.Write([]byte("00 OK\r\n"))
		}
	})
	code, out, errOut, _ := runBench(t, 10*time.Second, "pingpong", "-c", "2", "-n", "200", "--expect", "200 OK\r", "--json", addr(port))
	checkExit(t, "bench", code, exitOK)
	checkLines(t, "bench stderr", errOut, nil)
	if res := parseBench(t, out); res.Exchanges != 200 {
		t.Errorf("exchanges %d, errors %v; want 200", res.Exchanges, res.Errors)
	}
	code, out, errOut, _ = runBench(t, 10*time.Second, "pingpong", "-c", "1", "-d", "1s", "--reply-timeout", "300ms", "--expect", "404", "--json", addr(port))
	res := parseBench(t, out)
	if res.Exchanges != 0 || res.Errors["wrong_reply"] == 0 || len(res.errorsBut("wrong_reply")) != 0 {
		t.Errorf("exchanges %d, errors %v; want wrong replies only", res.Exchanges, res.Errors)
	}
	checkFailedRun(t, code, errOut, "wrong replies: the first does not contain --expect")
}

// --connect-timeout has one default, connect's.
func TestBenchConnectTimeoutDefault(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{}
	for _, cmd := range []string{"connect", "bench"} {
		var out, errOut bytes.Buffer
		run(context.Background(), []string{cmd, "-h"}, &out, &errOut)
		m := regexp.MustCompile(`(?m)^  -connect-timeout duration\n.*\(default (\w+)\)$`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("%s -h has no --connect-timeout with a default:\n%s", cmd, out.String())
		}
		defaults[cmd] = m[1]
	}
	if defaults["bench"] != defaults["connect"] {
		t.Errorf("--connect-timeout defaults to %s in bench, %s in connect", defaults["bench"], defaults["connect"])
	}
}

// -c, -d and -n have long forms, --connections, --duration and
// --requests, as wrk's and hey's.
func TestBenchLongFlags(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--keep-open", "--quiet")
	code, out, errOut, _ := runBench(t, 10*time.Second, "pingpong", "--connections", "3", "--requests", "300", "--json", addr(port))
	checkExit(t, "bench", code, exitOK)
	checkLines(t, "bench stderr", errOut, nil)
	var res struct {
		Connections int   `json:"connections"`
		Exchanges   int64 `json:"exchanges"`
	}
	if err := json.Unmarshal([]byte(strings.Join(out, "\n")), &res); err != nil || res.Connections != 3 || res.Exchanges != 300 {
		t.Errorf("connections %d, exchanges %d (%v); want 3 and 300", res.Connections, res.Exchanges, err)
	}
	code, out, _, took := runBench(t, 10*time.Second, "pingpong", "--connections", "2", "--duration", "500ms", "--json", addr(port))
	checkExit(t, "bench", code, exitOK)
	if r := parseBench(t, out); r.DurationS < 0.45 || r.DurationS > 0.7 || took > 500*time.Millisecond+benchSlack {
		t.Errorf("--duration 500ms measured %.2f s and took %v", r.DurationS, took)
	}
}

// Flags may follow the arguments in every bench verb, and merge prints
// the summary by default, JSON with --json.
func TestBenchFlagsAfterArgs(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--keep-open", "--quiet")
	dir := t.TempDir()
	for _, name := range []string{"a.json", "b.json"} {
		code, out, _, _ := runBench(t, 10*time.Second, "pingpong", addr(port), "-c", "2", "-n", "100", "--json")
		checkExit(t, "bench pingpong ADDR -c 2 -n 100 --json", code, exitOK)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	code, out, errOut, _ := runBench(t, waitFor, "merge", a, b, "--json")
	checkExit(t, "merge a b --json", code, exitOK)
	checkLines(t, "merge stderr", errOut, nil)
	if res := parseBench(t, out); res.Exchanges != 200 {
		t.Errorf("merged exchanges %d, want 200", res.Exchanges)
	}
	code, out, _, _ = runBench(t, waitFor, "merge", a, b)
	checkExit(t, "merge a b", code, exitOK)
	if len(out) < 3 || !strings.HasPrefix(out[0], "pingpong, 4 connections to ") || out[1] != "merged     2 results" || !strings.HasPrefix(out[2], "exchanges  200 (") {
		t.Errorf("merge summary:\n%s", strings.Join(out, "\n"))
	}
}

// --message-file sends a file's bytes as they are, {seq} and {conn}
// replaced.
func TestBenchMessageFile(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got bytes.Buffer
	port := listener(t, func(nc net.Conn) {
		buf := make([]byte, 256)
		for {
			nc.SetDeadline(time.Now().Add(waitFor))
			n, err := nc.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
			nc.Write([]byte("ok"))
		}
	})
	file := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(file, []byte("raw \\n {seq}\x00\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut, _ := runBench(t, 10*time.Second, "pingpong", "-c", "1", "-n", "3", "--message-file", file, "--expect-exact", "ok", addr(port))
	checkExit(t, "bench", code, exitOK)
	checkLines(t, "bench stderr", errOut, nil)
	mu.Lock()
	defer mu.Unlock()
	if want := "raw \\n 1\x00\r\nraw \\n 2\x00\r\nraw \\n 3\x00\r\n"; got.String() != want {
		t.Errorf("the server got %q, want %q", got.String(), want)
	}
}

// A ramp, as vegeta and k6 users expect: --rate 200:2000 --ramp 4s. The
// achieved rate follows it. Its shape is compared, not tight numbers: on
// a loaded machine a late second catches up in the next one.
func TestBenchRamp(t *testing.T) {
	t.Parallel()
	_, port := serve(t, "--keep-open", "--quiet")
	code, out, errOut, _ := runBench(t, 20*time.Second, "pingpong", "-c", "4", "--rate", "200:2000", "--ramp", "4s", "-d", "4s", "--json", addr(port))
	checkExit(t, "bench", code, exitOK)
	checkLines(t, "bench stderr", errOut, nil)
	res := parseBench(t, out)
	// Due by each second: 200t + 225t², so 425, 875, 1325 and 1775 in
	// seconds 1 to 4, 4400 in all.
	var s []int64
	for _, p := range res.Series {
		if p.T > 0.5 && p.T < 4.5 {
			s = append(s, p.Exchanges)
		}
	}
	if len(s) != 4 {
		t.Fatalf("series %+v: want 4 seconds", res.Series)
	}
	if !(s[0] < s[2] && s[1] < s[3] && s[0]+s[1] < s[2]+s[3] && 2*s[0] < s[3]) {
		t.Errorf("exchanges per second %v: want them rising as 425, 875, 1325, 1775", s)
	}
	if res.Exchanges < 4400*7/10 || res.Exchanges > 4400*13/10 {
		t.Errorf("%d exchanges, want about 4400 (within 30%%)", res.Exchanges)
	}
}

// Flags that do not go together are one line and exit 2, before any load.
func TestBenchFlagConflicts(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(file, []byte("x"), 0o644)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	closed := closedPort(t) // should a check let a run through, it finds nothing there
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pingpong", "--message", "x", "--message-file", file}, "give --message or --message-file, not both"},
		{[]string{"pingpong", "--message-file", "/nonexistent/msg"}, "cannot read --message-file /nonexistent/msg: no such file"},
		{[]string{"pingpong", "--message-file", empty}, "is empty: an exchange must send something"},
		{[]string{"pingpong", "--message", ""}, "--message is empty"},
		{[]string{"pingpong", "--expect-exact", "a", "--expect", "a"}, "--expect-exact goes alone"},
		{[]string{"pingpong", "--ramp", "2s"}, "--ramp goes with --rate START:END"},
		{[]string{"pingpong", "--rate", "100:"}, "a ramp's END must be a rate above 0"},
		{[]string{"pingpong", "--rate", "100:2000", "-n", "100"}, "with -n alone a ramp needs its length: give --ramp"},
		{[]string{"pingpong", "--rate", "100:2000", "--ramp", "10s", "-d", "5s"}, "the ramp (10s) is longer than the run (5s)"},
		{[]string{"idle", "-n", "10"}, "-n does not apply to it"},
		{[]string{"pingpong", "--echo"}, "--echo and --chunk go with stream"},
		{[]string{"pingpong", "--max-errors", "2x"}, `--max-errors "2x": give a count (0 or more), or a share such as 1%`},
		{[]string{"pingpong", "--server-pid", "1"}, "--server-pid goes with idle"},
	} {
		code, out, errOut, _ := runBench(t, waitFor, append(tc.args, addr(closed))...)
		what := strings.Join(tc.args, " ")
		checkExit(t, what, code, exitUsage)
		checkLines(t, what+" stdout", out, nil)
		checkOneLine(t, what+" stderr", errOut, tc.want)
	}
}

// bench --tls loads a TLS server with connect's TLS client flags: the
// exchanges run over TLS, verified against --ca; without it, the run says
// how to trust the server, and fails.
func TestBenchTLS(t *testing.T) {
	t.Parallel()
	cert, key := soCert(t)
	for _, tc := range []struct {
		mode  string
		serve []string
	}{
		{"pingpong", []string{"--keep-open"}},
		{"oneshot", nil},
	} {
		srv, port := serve(t, append([]string{"--quiet", "--tls-cert", cert, "--tls-key", key}, tc.serve...)...)
		code, out, errOut := runTcpkit(t, "bench", tc.mode, "--tls", "--ca", cert, "-c", "4", "-d", "500ms", "--expect", "test", "--json", addr(port))
		checkExit(t, "bench "+tc.mode+" --tls", code, exitOK)
		checkLines(t, "bench "+tc.mode+" --tls stderr", errOut, nil)
		if res := parseBench(t, out); res.Exchanges == 0 {
			t.Errorf("bench %s --tls made no exchange: %+v", tc.mode, res)
		}
		code, _, errOut = runTcpkit(t, "bench", tc.mode, "--tls", "-c", "1", "-d", "200ms", addr(port))
		checkExit(t, "bench "+tc.mode+" --tls without --ca", code, exitFail)
		if len(errOut) != 1 || !strings.Contains(errOut[0], "trust the server's certificate with --ca FILE, or skip the check with --insecure") {
			t.Errorf("bench %s --tls without --ca: stderr %q, want one line saying how to trust the server", tc.mode, errOut)
		}
		stop(t, srv)
	}
	code, _, errOut := runTcpkit(t, "bench", "pingpong", "--ca", cert, "5000")
	checkExit(t, "bench --ca without --tls", code, exitUsage)
	checkLines(t, "bench --ca without --tls stderr", errOut, []string{"tcpkit bench: --insecure, --ca, --sni, --cert, --key and --alpn go with --tls (run 'tcpkit bench -h' for help)"})
}
