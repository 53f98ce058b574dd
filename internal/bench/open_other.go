//go:build !unix

package bench

import (
	"net"
	"time"
)

// stillOpen reports whether the server has neither closed nor reset nc:
// a short read finds nothing rather than EOF or an error.
func stillOpen(nc net.Conn) bool {
	nc.SetReadDeadline(time.Now().Add(time.Millisecond))
	var buf [1]byte
	_, err := nc.Read(buf[:])
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
