//go:build !unix

package bench

import (
	"net"
	"time"
)

// openErr reports whether the server has closed or reset nc: nil if a
// short read finds nothing, else what the read returned.
func openErr(nc net.Conn) error {
	nc.SetReadDeadline(time.Now().Add(time.Millisecond))
	var buf [1]byte
	_, err := nc.Read(buf[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	return err
}
