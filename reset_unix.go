//go:build unix

package tcpkit

import "golang.org/x/sys/unix"

// lingerZero sets SO_LINGER with a zero timeout on fd: its close sends a
// RST.
func lingerZero(fd uintptr) {
	unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}
