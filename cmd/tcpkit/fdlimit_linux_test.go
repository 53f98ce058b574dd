package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestServeAtFDLimit runs serve on the epoll engine with few fds
// (prlimit) and more clients than it can hold. The ones it cannot hold
// are shed at once through its reserve fd: accepted, closed, and logged
// as rejected, instead of waiting in the listen backlog while the server
// spins on a listener it cannot accept from. Once clients leave, new ones
// are served again.
func TestServeAtFDLimit(t *testing.T) {
	prlimit := needPeer(t, "prlimit")
	srv := start(t, prlimit, "--nofile=40:40", tcpkitBin, "serve", "--port", "0", "--host", "127.0.0.1", "--engine", "epoll", "--keep-open")
	port := waitListening(t, srv, "127.0.0.1")

	const clients = 60
	var served []net.Conn
	shed := 0
	for i := range clients {
		nc, err := net.DialTimeout("tcp4", addr(port), waitFor)
		if err != nil {
			t.Fatalf("client %d: dial: %v", i, err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(waitFor))
		reply, err := exchangeOnce(nc)
		switch {
		case err == nil && reply == "test":
			served = append(served, nc)
		case err != nil && shed+len(served) == i:
			shed++ // EOF or reset: closed by the server as it was accepted
		default:
			t.Fatalf("client %d: got %q, %v; want the reply test, or the connection closed", i, reply, err)
		}
	}
	if len(served) == 0 || shed == 0 {
		t.Fatalf("%d clients served and %d shed; want some of each at 40 fds", len(served), shed)
	}
	t.Logf("at 40 fds: %d clients served, %d shed", len(served), shed)
	for range shed {
		got := srv.stdout.waitPrefix(t, "rejected : 127.0.0.1:", waitFor)
		if !strings.HasSuffix(got, "too many open files") {
			t.Errorf("rejection line %q, want it to end with \"too many open files\"", got)
		}
	}

	// Clients leave; the fds come back, and a new client is served.
	for _, nc := range served {
		nc.Close()
	}
	waitServedAgain(t, port)
	stop(t, srv)
}

// waitServedAgain waits until a new client on port gets the reply
// test: after clients left a server (or relay) at its fd limit, their
// fds come back once it has closed their connections. A client refused,
// reset or closed meanwhile is tried again.
func waitServedAgain(t testing.TB, port int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		nc, err := net.DialTimeout("tcp4", addr(port), waitFor)
		var reply string
		if err == nil {
			nc.SetDeadline(time.Now().Add(waitFor))
			reply, err = exchangeOnce(nc)
			nc.Close()
		}
		if reply == "test" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the clients left: got %q, %v; want the reply test", reply, err)
		}
	}
}

// exchangeOnce sends the seed's message and reads the reply.
func exchangeOnce(nc net.Conn) (string, error) {
	if _, err := nc.Write([]byte("testing~")); err != nil {
		return "", err
	}
	buf := make([]byte, 16)
	n, err := nc.Read(buf)
	if err == io.EOF && n == 0 {
		return "", err
	}
	return string(buf[:n]), err
}
