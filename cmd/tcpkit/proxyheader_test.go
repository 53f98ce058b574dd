package main

// Tests of serve --proxy-protocol against headers that arrive in pieces,
// slowly, or not at all, and of --proxy-protocol-from's refusal of empty
// entries. Helpers here are prefixed "ph" (PROXY header).

import (
	"io"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// phSend connects to port and sends wire in pieces: the bytes up to each
// offset in cuts, each piece gap after the last, as a slow balancer
// would. It returns the connection.
func phSend(t *testing.T, port int, wire string, gap time.Duration, cuts ...int) *net.TCPConn {
	t.Helper()
	nc := dial(t, port)
	nc.SetDeadline(time.Now().Add(waitFor + time.Duration(len(cuts))*gap))
	last := 0
	for _, at := range append(cuts, len(wire)) {
		if last > 0 {
			<-time.After(gap) // the sender's pace, not a wait for the server
		}
		write(t, nc, wire[last:at])
		last = at
	}
	return nc
}

// A v1 header in two writes, cut at byte 6, 12 or 20 (issue 12's
// report), and one sent a byte every 0.3 s within a larger
// --proxy-protocol-timeout, is read whole: the server prints the
// header's client and answers.
func TestProxyHeaderInPiecesCLI(t *testing.T) {
	t.Parallel()
	forEachCLIEngine(t, func(t *testing.T, engine string) {
		const header = "PROXY TCP4 203.0.113.7 198.51.100.1 40000 5000\r\n"
		t.Run("cut in two", func(t *testing.T) {
			t.Parallel()
			srv, port := serve(t, "--engine", engine, "--proxy-protocol", "--proxy-protocol-from", "127.0.0.1")
			for _, at := range []int{6, 12, 20} {
				nc := phSend(t, port, header+"testing~", 50*time.Millisecond, at)
				if got := readAll(t, nc); got != "test" {
					t.Errorf("cut at %d: the client read %q, want \"test\"", at, got)
				}
				nc.Close()
				srv.waitLine(t, "connect address : 203.0.113.7:40000", waitFor)
				srv.waitLine(t, "testing~", waitFor)
			}
			out := stop(t, srv)
			checkLines(t, "serve stdout", out[1:], []string{
				"connect address : 203.0.113.7:40000", "testing~",
				"connect address : 203.0.113.7:40000", "testing~",
				"connect address : 203.0.113.7:40000", "testing~",
			})
		})
		t.Run("a byte every 0.3s", func(t *testing.T) {
			t.Parallel()
			const short = "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n" // 36 bytes: 10.5 s
			srv, port := serve(t, "--engine", engine, "--proxy-protocol", "--proxy-protocol-timeout", "15s")
			cuts := make([]int, 0, len(short))
			for at := 1; at < len(short); at++ {
				cuts = append(cuts, at)
			}
			nc := phSend(t, port, short, 300*time.Millisecond, cuts...)
			write(t, nc, "testing~")
			if got := readAll(t, nc); got != "test" {
				t.Errorf("the client read %q, want \"test\"", got)
			}
			nc.Close()
			out := stop(t, srv)
			checkLines(t, "serve stdout", out[1:], []string{"connect address : 192.0.2.1:1", "testing~"})
		})
	})
}

// A header slower than --proxy-protocol-timeout is refused when the time
// is up, with a line that says how much of it came; a client that sends
// nothing is refused as before.
func TestProxyHeaderTimeoutCLI(t *testing.T) {
	t.Parallel()
	forEachCLIEngine(t, func(t *testing.T, engine string) {
		srv, port := serve(t, "--engine", engine, "--proxy-protocol", "--proxy-protocol-timeout", "1s")
		nc := dial(t, port)
		start := time.Now()
		stopSending := make(chan struct{})
		sent := make(chan struct{})
		go func() { // a byte every 0.3 s, until the server gives up
			defer close(sent)
			const header = "PROXY TCP4 203.0.113.7 198.51.100.1 40000 5000\r\n"
			tick := time.NewTicker(300 * time.Millisecond)
			defer tick.Stop()
			for i := 0; i < len(header); i++ {
				if _, err := nc.Write([]byte{header[i]}); err != nil {
					return
				}
				select {
				case <-tick.C:
				case <-stopSending:
					return
				}
			}
		}()
		b, _ := io.ReadAll(nc) // the close; a reset if a byte was still unread
		close(stopSending)
		<-sent
		d := time.Since(start)
		if len(b) != 0 {
			t.Errorf("the slow client read %q, want nothing", b)
		}
		if d < time.Second || d > 3*time.Second {
			t.Errorf("the server gave up after %v, want about the 1s --proxy-protocol-timeout", d)
		}
		line := srv.stdout.waitPrefix(t, "rejected : ", waitFor)
		want := regexp.MustCompile(`^rejected : 127\.0\.0\.1:\d+ : incomplete PROXY protocol header: only \d+ bytes of it came within 1s \(--proxy-protocol-timeout\)$`)
		if !want.MatchString(line) {
			t.Errorf("serve printed %q, want it to match %s", line, want)
		}

		silent := dial(t, port)
		readAll(t, silent)
		silent.Close()
		srv.waitLine(t, "rejected : "+silent.LocalAddr().String()+" : no PROXY protocol header: the connection did not come through the load balancer: nothing came within 1s", waitFor)
		stop(t, srv)
	})
}

// --proxy-protocol-from with an empty entry, or empty altogether, would
// trust any peer: it is a usage error, and the server does not start.
func TestProxyFromEmptyCLI(t *testing.T) {
	t.Parallel()
	for _, list := range []string{",", "", " ", "127.0.0.1,", ",127.0.0.1", "10.0.0.0/8,,127.0.0.1"} {
		code, out, errOut := runTcpkit(t, "serve", "--port", "0", "--host", "127.0.0.1", "--proxy-protocol", "--proxy-protocol-from", list)
		checkExit(t, "serve --proxy-protocol-from "+list, code, exitUsage)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit serve: --proxy-protocol-from: " + strconv.Quote(list) +
			" has an empty entry: list CIDRs or IP addresses, comma-separated, such as 10.0.0.0/8,192.0.2.7 (run 'tcpkit serve -h' for help)"})
	}
	for _, args := range [][]string{
		{"--proxy-protocol-timeout", "2s"},
		{"--proxy-protocol-from", ""},
	} {
		code, _, errOut := runTcpkit(t, append([]string{"serve", "--port", "0"}, args...)...)
		checkExit(t, "serve "+args[0]+" without --proxy-protocol", code, exitUsage)
		checkLines(t, "its stderr", errOut, []string{"tcpkit serve: --proxy-protocol-from and --proxy-protocol-timeout go with --proxy-protocol (run 'tcpkit serve -h' for help)"})
	}
	code, _, errOut := runTcpkit(t, "serve", "--port", "0", "--proxy-protocol", "--proxy-protocol-timeout", "0s")
	checkExit(t, "serve --proxy-protocol-timeout 0s", code, exitUsage)
	checkLines(t, "its stderr", errOut, []string{"tcpkit serve: --proxy-protocol-timeout must be positive (run 'tcpkit serve -h' for help)"})
}
