package main

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A benchTarget is a tcpkit serve that a bench run loads, and how to run
// commands beside it: in a network namespace of its own where this
// process may make one, so that the kernel's TCP counters there count
// this server and this generator only.
type benchTarget struct {
	srv  *proc
	port int
	pid  string // the server's PID, for nsenter; "" outside a namespace
}

// serveForBench starts tcpkit serve on 127.0.0.1 with args, in a new
// network namespace when isolate is true.
func serveForBench(t *testing.T, isolate bool, args ...string) benchTarget {
	t.Helper()
	if !isolate {
		srv, port := serve(t, args...)
		return benchTarget{srv: srv, port: port}
	}
	srv := start(t, "unshare", append([]string{"-n", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		tcpkitBin, "serve", "--port", "0", "--host", "127.0.0.1"}, args...)...)
	line := srv.stdout.waitPrefix(t, "listen on port ", waitFor)
	digits, _, _ := strings.Cut(strings.TrimPrefix(line, "listen on port "), " ")
	port, err := strconv.Atoi(digits)
	if err != nil {
		t.Fatalf("serve's first line is %q, want \"listen on port N ...\"", line)
	}
	return benchTarget{srv: srv, port: port, pid: strconv.Itoa(srv.cmd.Process.Pid)}
}

// bench runs tcpkit bench beside the target (in its namespace, if any).
func (b benchTarget) bench(t *testing.T, limit time.Duration, args ...string) (code int, stdout, stderr []string) {
	t.Helper()
	args = append(append([]string{"bench"}, args...), addr(b.port))
	var p *proc
	if b.pid == "" {
		p = startTcpkit(t, args...)
	} else {
		env := tcpkitEnv()
		p = start(t, "nsenter", append([]string{"-t", b.pid, "-n", "env", env[len(env)-1], tcpkitBin}, args...)...)
	}
	code = p.wait(t, limit)
	return code, p.stdout.all(), p.stderr.all()
}

// counters reads the TCP counters of the target's namespace.
func (b benchTarget) counters(t *testing.T) map[string]int64 {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", b.pid, "-n", "cat", "/proc/net/snmp", "/proc/net/netstat").Output()
	if err != nil {
		t.Fatalf("reading the namespace's counters: %v", err)
	}
	return kernelTCP(t, string(out))
}

// Issue 12, item 8: a bench run ends cleanly in every mode. It stops
// issuing, waits a bounded time for what is in flight and closes each
// connection with a FIN: the server sees no reset, and neither side sends
// one. In a network namespace of their own the kernel's counters are
// this server's and this generator's alone, and show no RST at all, also
// in the generator's own kernel delta.
func TestBenchEndsWithoutReset(t *testing.T) {
	isolate := canUnshareNet(t)
	if !isolate {
		t.Log("no network namespace here: checking the server's view only; the kernel counters are the whole machine's")
	}
	for _, tc := range []struct {
		name  string
		serve []string
		bench []string
	}{
		{"pingpong", []string{"--keep-open"}, []string{"pingpong", "-c", "20", "-d", "1s"}},
		{"pingpong paced", []string{"--keep-open"}, []string{"pingpong", "-c", "8", "--rate", "4000", "-d", "1s"}},
		{"oneshot", nil, []string{"oneshot", "-c", "8", "-d", "1s"}},
		{"stream", []string{"--keep-open"}, []string{"stream", "-c", "4", "-d", "1s"}},
		{"stream echo", []string{"--mode", "echo"}, []string{"stream", "--echo", "-c", "4", "-d", "1s"}},
		{"idle", []string{"--keep-open"}, []string{"idle", "-c", "1000", "-d", "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := serveForBench(t, isolate, append([]string{"--quiet"}, tc.serve...)...)
			code, out, errOut := target.bench(t, 20*time.Second, append(tc.bench, "--json")...)
			checkExit(t, "bench", code, exitOK)
			checkLines(t, "bench stderr", errOut, nil)
			res := parseBench(t, out)
			if res.Exchanges == 0 && res.Held == 0 {
				t.Errorf("bench made no exchange: %+v", res)
			}
			if isolate {
				// The server closes its side on the generator's FIN: wait for
				// that, then no counter may show a reset that either end
				// caused: none received by an open connection, no close with
				// data unread or unsent. Tcp.OutRsts is not among them: on a
				// loaded machine the server's kernel can send the ACK of the
				// generator's FIN after its own FIN, the generator's
				// TIME_WAIT answers that stale ACK, and the server's kernel,
				// whose socket is gone by then, answers with a RST (seen in
				// a capture: FIN, FIN, ACK, then ACK seq=1 from the server,
				// ACK, RST). That RST ends nothing and nobody sees it.
				var c map[string]int64
				soWaitUntil(t, "no connection open in the namespace", waitFor, func() bool {
					c = target.counters(t)
					return c["Tcp.CurrEstab"] == 0
				})
				for _, k := range []string{"Tcp.CurrEstab", "Tcp.EstabResets", "TcpExt.TCPAbortOnClose", "TcpExt.TCPAbortOnData", "TcpExt.TCPAbortOnLinger"} {
					if c[k] != 0 {
						t.Errorf("after the run, %s is %d in the namespace, want 0", k, c[k])
					}
				}
				for _, k := range []string{"EstabResets", "TCPAbortOnClose", "TCPAbortOnData", "TCPAbortOnLinger"} {
					if n := res.Kernel[k]; n != 0 {
						t.Errorf("the generator's kernel delta shows %s %+d, want 0 (%v)", k, n, res.Kernel)
					}
				}
			}
			target.srv.signal(t, syscall.SIGTERM)
			checkExit(t, "serve", target.srv.wait(t, waitFor), exitOK)
			for _, l := range target.srv.stdout.all() {
				if strings.Contains(l, "reset") || strings.HasPrefix(l, "error") {
					t.Errorf("the server saw: %q", l)
				}
			}
		})
	}
}
