package bench

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// bindNoPort lets a socket bound to a source address take its port at
// connect time, per destination (IP_BIND_ADDRESS_NO_PORT), rather than at
// bind time from the ports still in TIME_WAIT from earlier runs: with
// idle's 127.0.0.x sources, back-to-back runs would otherwise run out.
func bindNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
