package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Interop with the seed's programs, as Node.js runs them: the peers in
// testdata/node behave as the tutorial's server and client (with the
// changes their comments list), and tcpkit must get along with both.

const nodeBuffer = "receive:  <Buffer 74 65 73 74>" // console.log('receive: ', chunk)

// nodeScript returns the node binary and the path of a peer script; it
// skips the test if node is missing, unless $CI is set.
func nodeScript(t testing.TB, name string) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is needed for the interop tests in CI: %v", err)
		}
		t.Skipf("node not found, skipping the interop test: %v", err)
	}
	script, err = filepath.Abs(filepath.Join("..", "..", "testdata", "node", name))
	if err != nil {
		t.Fatal(err)
	}
	return node, script
}

// nodeServer starts testdata/node/seed-server.js on a free port of
// 127.0.0.1 and returns it and the port, from "listen on port N".
func nodeServer(t testing.TB, args ...string) (*proc, int) {
	t.Helper()
	node, script := nodeScript(t, "seed-server.js")
	p := start(t, node, append([]string{script, "0"}, args...)...)
	line := p.stdout.waitPrefix(t, "listen on port ", waitFor)
	port, err := strconv.Atoi(strings.TrimPrefix(line, "listen on port "))
	if err != nil || port <= 0 || port > 65535 {
		t.Fatalf("seed-server.js's first line is %q, want \"listen on port N\"", line)
	}
	return p, port
}

// nodeClient starts testdata/node/seed-client.js against 127.0.0.1:port.
func nodeClient(t testing.TB, port int, args ...string) *proc {
	t.Helper()
	node, script := nodeScript(t, "seed-client.js")
	return start(t, node, append([]string{script, itoa(port)}, args...)...)
}

// kill ends a peer that runs until killed and returns its stdout.
func kill(t testing.TB, p *proc) []string {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("killing %s: %v", p.name, err)
	}
	p.wait(t, waitFor)
	return p.stdout.all()
}

// The seed's client (Node) against tcpkit serve.
func TestInteropNodeClient(t *testing.T) {
	t.Parallel()

	// The seed's run: the server ends the connection after its reply,
	// and every later send fails with EPIPE. The client sends on until
	// killed, as the seed's does.
	t.Run("ending", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t)
		cl := nodeClient(t, port, "100")
		cl.waitLine(t, "write error: EPIPE", waitFor)
		out := kill(t, cl)
		want := []string{"connect to server!", nodeBuffer, "disconnected.", "write error: EPIPE"}
		if len(out) < len(want) {
			t.Fatalf("seed-client.js stdout: got %q, want %q first", out, want)
		}
		checkLines(t, "seed-client.js stdout", out[:len(want)], want)
		for _, l := range out[len(want):] {
			if l != "write error: EPIPE" {
				t.Errorf("seed-client.js stdout: got %q after the first EPIPE, want only more of them", out)
				break
			}
		}
		checkLines(t, "seed-client.js stderr", cl.stderr.all(), nil)

		rest := afterConnect(t, stop(t, srv), "127.0.0.1", port)
		checkLines(t, "serve stdout after the connect address", rest, []string{"testing~"})
	})

	t.Run("ending, count 1", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t)
		cl := nodeClient(t, port, "100", "--count", "1")
		checkExit(t, "seed-client.js", cl.wait(t, waitFor), 0)
		checkLines(t, "seed-client.js stdout", cl.stdout.all(), []string{"connect to server!", nodeBuffer, "disconnected."})
		rest := afterConnect(t, stop(t, srv), "127.0.0.1", port)
		checkLines(t, "serve stdout after the connect address", rest, []string{"testing~"})
	})

	// Without socket.end() in the server, every send gets a reply. The
	// client ends after its third; "disconnected." is the server's FIN
	// that answers it, not the server ending on its own.
	t.Run("keep-open", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, "--keep-open")
		cl := nodeClient(t, port, "50", "--count", "3")
		checkExit(t, "seed-client.js", cl.wait(t, waitFor), 0)
		checkLines(t, "seed-client.js stdout", cl.stdout.all(), []string{"connect to server!", nodeBuffer, nodeBuffer, nodeBuffer, "disconnected."})
		rest := afterConnect(t, stop(t, srv), "127.0.0.1", port)
		checkLines(t, "serve stdout after the connect address", rest, []string{"testing~", "testing~", "testing~"})
	})
}

// tcpkit connect against the seed's server (Node).
func TestInteropNodeServer(t *testing.T) {
	t.Parallel()

	// Node prints the client's remoteAddress without a port; as the
	// server listens on 127.0.0.1 (not ::), it is not ::ffff:127.0.0.1.
	const nodeConnect = "connect address : 127.0.0.1"

	t.Run("ending", func(t *testing.T) {
		t.Parallel()
		srv, port := nodeServer(t)
		cl := startTcpkit(t, "connect", "--interval", "100ms", addr(port))
		checkExit(t, "connect", cl.wait(t, waitFor), exitBroken)
		checkLines(t, "connect stdout", cl.stdout.all(), []string{"connect to server!", "receive: test", "disconnected."})
		checkOneLine(t, "connect stderr", cl.stderr.all(), "EPIPE")
		checkLines(t, "seed-server.js stdout", kill(t, srv), []string{"listen on port " + itoa(port), nodeConnect, "testing~"})
		checkLines(t, "seed-server.js stderr", srv.stderr.all(), nil)
	})

	t.Run("ending, count 1", func(t *testing.T) {
		t.Parallel()
		srv, port := nodeServer(t)
		cl := startTcpkit(t, "connect", "--count", "1", addr(port))
		checkExit(t, "connect", cl.wait(t, waitFor), exitOK)
		checkLines(t, "connect stdout", cl.stdout.all(), []string{"connect to server!", "receive: test", "disconnected."})
		checkLines(t, "connect stderr", cl.stderr.all(), nil)
		checkLines(t, "seed-server.js stdout", kill(t, srv), []string{"listen on port " + itoa(port), nodeConnect, "testing~"})
	})

	t.Run("keep-open", func(t *testing.T) {
		t.Parallel()
		srv, port := nodeServer(t, "--keep-open")
		cl := startTcpkit(t, "connect", "--count", "3", "--interval", "50ms", addr(port))
		checkExit(t, "connect", cl.wait(t, waitFor), exitOK)
		checkLines(t, "connect stdout", cl.stdout.all(), []string{"connect to server!", "receive: test", "receive: test", "receive: test", "disconnected."})
		checkLines(t, "connect stderr", cl.stderr.all(), nil)
		checkLines(t, "seed-server.js stdout", kill(t, srv), []string{"listen on port " + itoa(port), nodeConnect, "testing~", "testing~", "testing~"})
	})
}
