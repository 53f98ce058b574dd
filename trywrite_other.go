//go:build !unix

package tcpkit

import "net"

// tryWriter is Unix-only; elsewhere every write goes through the queue.
type tryWriter struct{}

func newTryWriter(net.Conn) *tryWriter { return nil }

func (*tryWriter) write(p []byte) (int, error) { return 0, nil }
