package tcpkit

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/ports"
)

// tcpInfo reads TCP_INFO from the connection's socket, or returns nil.
func (c *Conn) tcpInfo() *TCPInfo {
	ti := c.rawTCPInfo()
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

func (c *Conn) rawTCPInfo() *unix.TCPInfo {
	if c.ep != nil {
		return c.epTCPInfo()
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var ti *unix.TCPInfo
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		ti, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil {
		return nil
	}
	return ti
}
