//go:build !unix

package tcpkit

import "net"

// tryWriter is Unix-only; elsewhere every write goes through the queue,
// and the flush goroutine writes it with blocking writes.
type tryWriter struct{}

func newTryWriter(net.Conn) *tryWriter { return nil }

func (*tryWriter) write(p []byte) (int, error)     { return 0, nil }
func (*tryWriter) writeWait(p []byte) (int, error) { return 0, nil }
