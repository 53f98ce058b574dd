package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// The PROXY protocol both ways: the relay takes the real client's
// address from the header a balancer sends (--proxy-protocol) and sends
// it on to the target (--send-proxy), which prints it as its client.
func TestRelayProxyProtocol(t *testing.T) {
	for _, v := range []string{"v1", "v2"} {
		t.Run("through "+v, func(t *testing.T) {
			srv, sport := serve(t, "--proxy-protocol", "--proxy-protocol-from", "127.0.0.1")
			r, rport := startRelay(t, tcpkitBin, addr(sport), "--proxy-protocol", "--proxy-protocol-from", "127.0.0.1", "--send-proxy", v)
			code, out, _ := runTcpkit(t, "connect", "--send-proxy", "v2", "--proxy-src", "203.0.113.7:4444", "--count", "1", itoa(rport))
			checkExit(t, "connect", code, exitOK)
			checkLines(t, "connect's stdout", out, []string{"connect to server!", "receive: test", "disconnected."})
			srv.waitLine(t, "connect address : 203.0.113.7:4444", waitFor)
			if line := r.stdout.waitPrefix(t, "pair 1 : ", waitFor); !strings.HasPrefix(line, "pair 1 : 203.0.113.7:4444 -> "+addr(sport)+" via ") {
				t.Errorf("relay says %q, want the client from the header", line)
			}
		})
	}
	// Without a header coming in, the target learns the client's own
	// address; the splice path sends the header too.
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		srv, sport := serve(t, "--proxy-protocol")
		_, rport := startRelay(t, tcpkitBin, addr(sport), append(flags, "--send-proxy", "v2")...)
		nc := dial(t, rport)
		write(t, nc, "testing~")
		if got := readAll(t, nc); got != "test" {
			t.Errorf("the client read %q, want the seed's reply", got)
		}
		srv.waitLine(t, "connect address : "+nc.LocalAddr().String(), waitFor)
	})
	// A client without the header the relay requires is turned away, and
	// the log says so.
	t.Run("no header", func(t *testing.T) {
		_, sport := serve(t)
		r, rport := startRelay(t, tcpkitBin, addr(sport), "--proxy-protocol", "--proxy-protocol-timeout", "200ms")
		nc := dial(t, rport)
		if got := readAll(t, nc); got != "" {
			t.Errorf("the client read %q, want nothing", got)
		}
		line := r.stdout.waitPrefix(t, "rejected : ", waitFor)
		if !strings.HasSuffix(line, " : no PROXY protocol header: the connection did not come through the load balancer: nothing came within 200ms") {
			t.Errorf("relay says %q, want why the client was turned away", line)
		}
	})
}

// LISTEN on a Unix socket (--unix), and TARGET a Unix socket's path.
func TestRelayUnix(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		dir := t.TempDir()
		target, listen := filepath.Join(dir, "target.sock"), filepath.Join(dir, "relay.sock")
		srv := startTcpkit(t, "serve", "--unix", target, "--mode", "echo", "--quiet")
		srv.waitLine(t, "listen on "+target, waitFor)
		r := startTcpkit(t, append(append([]string{"relay"}, flags...), "--unix", listen, target)...)
		line := r.stderr.waitPrefix(t, "tcpkit relay: listening on ", waitFor)
		if want := "tcpkit relay: listening on unix:" + listen + ", relaying to unix:" + target + " ("; !strings.HasPrefix(line, want) {
			t.Fatalf("relay says %q, want %q...", line, want)
		}
		nc, err := net.Dial("unix", listen)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write([]byte("over unix"))
		nc.(*net.UnixConn).CloseWrite()
		if got := readAll(t, nc); got != "over unix" {
			t.Errorf("echo through the relay %q, want %q", got, "over unix")
		}
		how, up, down := waitPairEnd(t, r, 1)
		if how != "ended cleanly" || up != 9 || down != 9 {
			t.Errorf("pair 1 ended %q, %d up, %d down", how, up, down)
		}
	})
}
