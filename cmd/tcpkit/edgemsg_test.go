package main

// Tests of the messages at the edges (issue 12): a busy --metrics
// address, Unix socket paths, TLS handshake timeouts. Helpers here are
// prefixed "em".

import (
	"net"
	"regexp"
	"testing"
)

// A busy --metrics address is named with its port and the --metrics
// flag, not as port 0 and --port; a malformed one is a usage error.
func TestMetricsAddressBusyCLI(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	_, port, _ := net.SplitHostPort(busy)
	code, out, errOut := runTcpkit(t, "serve", "--port", "0", "--host", "127.0.0.1", "--metrics", busy)
	checkExit(t, "serve --metrics on a busy port", code, exitFail)
	checkLines(t, "its stdout", out, nil)
	want := regexp.MustCompile(`^tcpkit serve: --metrics: cannot listen on ` + regexp.QuoteMeta(busy) + `: port ` + port +
		` is already in use by (another process|\S+ \(PID \d+\)) \(EADDRINUSE\); pick another address with --metrics$`)
	if len(errOut) != 1 || !want.MatchString(errOut[0]) {
		t.Errorf("its stderr: got %q, want one line matching %s", errOut, want)
	}

	for _, bad := range []string{"9100", "bogus", "127.0.0.1:http", "127.0.0.1:70000"} {
		code, _, errOut := runTcpkit(t, "serve", "--port", "0", "--metrics", bad)
		checkExit(t, "serve --metrics "+bad, code, exitUsage)
		checkLines(t, "its stderr", errOut, []string{`tcpkit serve: --metrics "` + bad + `": want HOST:PORT, such as 127.0.0.1:9100 (run 'tcpkit serve -h' for help)`})
	}
}
