//go:build !linux

package tcpkit

// tcpInfo is Linux-only: elsewhere trace events carry no TCP_INFO.
func (c *Conn) tcpInfo() *TCPInfo { return nil }
