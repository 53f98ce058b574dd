//go:build unix

package main

import (
	"syscall"
	"testing"
)

// refusedPort returns a loopback port that refuses connections. A socket
// is bound to it but does not listen, so connecting gets a reset
// (ECONNREFUSED) and, until the test ends, no other test can take the
// port: unlike a listener closed again, this has no race.
func refusedPort(t testing.TB) int {
	t.Helper()
	syscall.ForkLock.RLock() // so no child process inherits the fd
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind 127.0.0.1:0: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}
