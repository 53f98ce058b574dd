package main

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRelayAtFDLimit runs relay with few fds (prlimit) and more clients
// than it can hold pairs for, on both paths. A client it cannot relay is
// turned away at once (its connection closed or reset) and the log says
// why; none is left waiting without an answer; the relay keeps running,
// and relays again once clients leave.
func TestRelayAtFDLimit(t *testing.T) {
	prlimit := needPeer(t, "prlimit")
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		srv, sport := serve(t, "--keep-open", "--quiet")
		r, rport := startRelayUnder(t, []string{prlimit, "--nofile=40:40", tcpkitBin}, addr(sport), flags...)

		const clients = 40 // each relayed pair takes two fds, one more pipe pair while bytes wait in it
		var relayed []net.Conn
		turned := 0
		for i := range clients {
			nc, err := net.DialTimeout("tcp4", addr(rport), waitFor)
			if errors.Is(err, syscall.ECONNRESET) {
				turned++ // reset before connect(2) had returned
				continue
			}
			if err != nil {
				t.Fatalf("client %d: dial: %v", i, err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(waitFor))
			reply, err := exchangeOnce(nc)
			switch {
			case err == nil && reply == "test":
				relayed = append(relayed, nc)
			case err != nil && !isTimeout(err):
				turned++ // EOF or reset: turned away
			default:
				t.Fatalf("client %d: got %q, %v; want the reply test, or the connection closed at once", i, reply, err)
			}
		}
		if len(relayed) == 0 || turned == 0 {
			t.Fatalf("%d clients relayed and %d turned away; want some of each at 40 fds", len(relayed), turned)
		}
		t.Logf("at 40 fds: %d clients relayed, %d turned away", len(relayed), turned)
		for range turned {
			line := r.stdout.waitMatch(t, "saying \"too many open files\"", func(l string) bool { return strings.Contains(l, "too many open files") }, waitFor)
			if !strings.Contains(line, "127.0.0.1:") {
				t.Errorf("relay's line for a client turned away %q does not name the client", line)
			}
		}

		// The clients leave; the fds come back, and a new client is relayed.
		for _, nc := range relayed {
			nc.Close()
		}
		waitServedAgain(t, rport)
		stop(t, srv)
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
