package tcpkit

import (
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/ports"
)

// tcpInfo reads TCP_INFO from the connection's socket, or returns nil.
func (c *Conn) tcpInfo() *TCPInfo {
	var ti *unix.TCPInfo
	c.t.control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			ti = info
		}
	})
	if ti == nil {
		return nil
	}
	return &TCPInfo{
		State:         ports.State(ti.State).String(), // the kernel's numbering, named once in ports
		RTT:           time.Duration(ti.Rtt) * time.Microsecond,
		RTTVar:        time.Duration(ti.Rttvar) * time.Microsecond,
		Retransmits:   ti.Total_retrans,
		Unacked:       ti.Unacked,
		BytesAcked:    ti.Bytes_acked,
		BytesReceived: ti.Bytes_received,
	}
}
