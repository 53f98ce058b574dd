//go:build unix

package bench

import (
	"io"
	"net"
	"syscall"
)

// openErr reports whether the server has closed or reset nc, without
// waiting: nil if a peek finds nothing to read (or data), io.EOF for
// the server's FIN, or the error (ECONNRESET) the socket holds.
func openErr(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || n > 0:
		case err != nil:
			perr = err
		default:
			perr = io.EOF
		}
		return true
	})
	if err != nil {
		return err
	}
	return perr
}
