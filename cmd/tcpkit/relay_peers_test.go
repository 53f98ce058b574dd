package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"tcpkit/internal/ports"
)

// The half-close and reset tests use real clients, Python's and Node's
// sockets, as a relay's users have them.

// halfCloseTarget reads to the client's FIN, then answers after it, and
// ends: the answer can only arrive if the FIN went on and the other
// direction kept flowing.
func halfCloseTarget(t *testing.T) int {
	return listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		b, err := io.ReadAll(nc)
		if err != nil {
			return
		}
		fmt.Fprintf(nc, "%d bytes came before your FIN; this comes after it\n", len(b))
		nc.(*net.TCPConn).CloseWrite()
	})
}

// A Python client sends a request and shuts its side (a FIN); the
// target reads to the FIN and only then answers; Python reads the
// answer to the target's FIN.
func TestRelayHalfClosePython(t *testing.T) {
	python := needPeer(t, "python3")
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		_, rport := startRelay(t, tcpkitBin, addr(halfCloseTarget(t)), flags...)
		code, out, errs := ncRun(t, "", python, "-c", `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"x" * 100000)
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())
`, itoa(rport))
		checkExit(t, "python", code, 0)
		if want := "100000 bytes came before your FIN; this comes after it\n"; out != want {
			t.Errorf("python read %q, want %q; stderr %q", out, want, errs)
		}
	})
}

// The same with Node's socket, allowHalfOpen, ended with end().
func TestRelayHalfCloseNode(t *testing.T) {
	node := needPeer(t, "node")
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		_, rport := startRelay(t, tcpkitBin, addr(halfCloseTarget(t)), flags...)
		code, out, errs := ncRun(t, "", node, "-e", `
const net = require('net');
const s = net.connect({port: +process.argv[1], host: '127.0.0.1', allowHalfOpen: true}, () => s.end('request'));
s.setEncoding('utf8');
s.on('data', d => process.stdout.write(d));
s.on('end', () => console.log('end'));
s.on('error', e => console.log('error ' + e.code));
`, itoa(rport))
		checkExit(t, "node", code, 0)
		if want := "7 bytes came before your FIN; this comes after it\nend\n"; out != want {
			t.Errorf("node printed %q, want %q; stderr %q", out, want, errs)
		}
	})
}

// A target that resets: Node's client gets what came before the reset,
// then ECONNRESET, the same as without the relay. The target resets once
// the client has read its bytes (the client acknowledges them): a reset
// right behind data may reach Node before it reads, and Node then sees
// a clean end, with or without the relay.
func TestRelayResetNode(t *testing.T) {
	node := needPeer(t, "node")
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(nc, buf); err != nil {
			return
		}
		nc.Write([]byte("bye"))
		if _, err := io.ReadFull(nc, buf[:3]); err != nil { // "ack"
			return
		}
		nc.(*net.TCPConn).SetLinger(0)
		nc.Close()
	})
	client := func(port int) string {
		t.Helper()
		code, out, errs := ncRun(t, "", node, "-e", `
const net = require('net');
const s = net.connect(+process.argv[1], '127.0.0.1', () => s.write('hello'));
s.on('data', d => { console.log('data ' + d); s.write('ack'); });
s.on('end', () => console.log('end'));
s.on('error', e => console.log('error ' + e.code));
s.on('close', () => console.log('close'));
`, itoa(port))
		checkExit(t, "node", code, 0)
		checkLines(t, "node's stderr", errs, nil)
		return out
	}
	want := "data bye\nerror ECONNRESET\nclose\n"
	if direct := client(tport); direct != want {
		t.Fatalf("without the relay node printed %q, want %q", direct, want)
	}
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		r, rport := startRelay(t, tcpkitBin, addr(tport), flags...)
		if out := client(rport); out != want {
			t.Errorf("through the relay node printed %q, want %q as without it", out, want)
		}
		how, up, down := waitPairEnd(t, r, 1)
		if want := "the target reset the connection (ECONNRESET: connection reset by peer), so the client's connection was reset"; how != want || up != 8 || down != 3 {
			t.Errorf("pair 1 ended %q, %d up, %d down; want %q, 8 and 3", how, up, down, want)
		}
	})
}

// A Python client that resets (SO_LINGER 0): the target's read fails
// with ECONNRESET, not a clean end.
func TestRelayResetPython(t *testing.T) {
	python := needPeer(t, "python3")
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		got := make(chan error, 1)
		tport := listener(t, func(nc net.Conn) {
			nc.SetDeadline(time.Now().Add(waitFor))
			buf := make([]byte, 5)
			if _, err := io.ReadFull(nc, buf); err != nil {
				got <- err
				return
			}
			nc.Write([]byte("ok"))
			_, err := io.ReadAll(nc)
			got <- err
		})
		r, rport := startRelay(t, tcpkitBin, addr(tport), flags...)
		code, _, errs := ncRun(t, "", python, "-c", `
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"hello")
assert s.recv(2) == b"ok"
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
`, itoa(rport))
		checkExit(t, "python", code, 0)
		checkLines(t, "python's stderr", errs, nil)
		if err := <-got; !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the target's read ended with %v, want ECONNRESET", err)
		}
		how, _, _ := waitPairEnd(t, r, 1)
		if want := "the client reset the connection (ECONNRESET: connection reset by peer), so the target's connection was reset"; how != want {
			t.Errorf("pair 1 ended %q, want %q", how, want)
		}
	})
}

// SIGTERM drains: the relay stops accepting at once, the pair open goes
// on both ways until it ends by itself, and the relay exits 0; a pair
// that does not end within --drain-timeout is reset on both sides, and
// the relay exits 1 and says so.
func TestRelayDrain(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		t.Run("ends by itself", func(t *testing.T) {
			_, sport := serve(t, "--mode", "echo", "--keep-open", "--quiet")
			r, rport := startRelay(t, tcpkitBin, addr(sport), flags...)
			nc := dial(t, rport)
			write(t, nc, "before")
			readN(t, nc, 6)
			r.signal(t, syscall.SIGTERM)
			waitNotListening(t, rport)
			if c, err := net.Dial("tcp4", addr(rport)); !errors.Is(err, syscall.ECONNREFUSED) {
				if c != nil {
					c.Close()
				}
				t.Errorf("a client after SIGTERM got %v, want ECONNREFUSED", err)
			}
			write(t, nc, "after the signal")
			if got := readN(t, nc, 16); got != "after the signal" {
				t.Errorf("echo during the drain %q", got)
			}
			nc.CloseWrite() // and the echo server ends too
			readAll(t, nc)
			checkExit(t, "relay", r.wait(t, waitFor), exitOK)
			checkLines(t, "relay's stderr", r.stderr.all(), []string{"tcpkit relay: stopped; 1 open pair ended by itself"})
		})
		t.Run("cut at the drain timeout", func(t *testing.T) {
			reset := make(chan error, 1)
			tport := listener(t, func(nc net.Conn) {
				nc.SetDeadline(time.Now().Add(waitFor))
				_, err := io.ReadAll(nc)
				reset <- err
			})
			r, rport := startRelay(t, tcpkitBin, addr(tport), append(flags, "--drain-timeout", "300ms")...)
			nc := dial(t, rport)
			write(t, nc, "hold on")
			r.stdout.waitPrefix(t, "pair 1 : ", waitFor) // open
			began := time.Now()
			r.signal(t, syscall.SIGTERM)
			_, err := io.ReadAll(nc)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the client got %v, want a reset", err)
			}
			if took := since(began); took < 300*time.Millisecond || took > 300*time.Millisecond+time.Second {
				t.Errorf("the reset came %v after SIGTERM, want --drain-timeout 300ms", took)
			}
			if err := <-reset; !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the target got %v, want a reset", err)
			}
			checkExit(t, "relay", r.wait(t, waitFor), exitFail)
			checkLines(t, "relay's stderr", r.stderr.all(), []string{"tcpkit relay: stopped; 1 of 1 open pairs did not end within --drain-timeout 300ms and were reset"})
			how, _, _ := waitPairEnd(t, r, 1)
			if want := "reset: the relay stopped, and the pair did not end within --drain-timeout 300ms"; how != want {
				t.Errorf("pair 1 ended %q, want %q", how, want)
			}
		})
	})
}

// waitNotListening waits until nothing listens on port any more, as the
// kernel's TCP table says: the relay has stopped accepting. (Trying to
// connect would open pairs while the signal is on its way.)
func waitNotListening(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Skipf("no kernel TCP table to look at: %v", err)
		}
		socks, err := ports.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(socks, func(s ports.Socket) bool { return s.State == ports.Listen && int(s.Local.Port()) == port }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d still listens %v after SIGTERM", port, waitFor)
		}
		time.Sleep(time.Millisecond) // the kernel's table has no event to wait on
	}
}
