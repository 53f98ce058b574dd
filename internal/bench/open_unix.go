//go:build unix

package bench

import (
	"net"
	"syscall"
)

// stillOpen reports whether the server has neither closed nor reset nc:
// a peek that does not wait finds nothing to read, rather than EOF or an
// error.
func stillOpen(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN || n > 0
		return true
	})
	return open
}
