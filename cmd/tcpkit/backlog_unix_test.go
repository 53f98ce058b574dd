//go:build unix

package main

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fullBacklog returns the port of a listener whose accept queue is full
// and never drained: the kernel drops further SYNs, so a connect to it
// neither succeeds nor fails until its timeout.
func fullBacklog(t testing.TB) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.CloseOnExec(fd)
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	// Fill the queue: with a backlog of 0 the kernel queues one
	// connection; then SYNs are dropped, and a connect hangs.
	for i := 0; ; i++ {
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		nc, err := d.Dial("tcp4", addr(port))
		if err != nil {
			break
		}
		t.Cleanup(func() { nc.Close() })
		if i == 8 {
			t.Fatalf("a listener with backlog 0 took %d connections without accepting", i+1)
		}
	}
	return port
}
