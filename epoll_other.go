//go:build !linux

package tcpkit

import "net"

const epollBuilt = false

// The epoll engine is Linux only; EngineFor never picks it elsewhere, so
// these are never reached. They keep the shared code compiling.

type epServer struct{}

type epConn struct {
	l        *loop
	finished bool
}

type loop struct{}

type taskKind uint8

const (
	taskClose taskKind = iota + 1
	taskRead
	taskShutdown
)

type task struct {
	kind taskKind
	c    *Conn
}

func (l *loop) post(task)                      {}
func (l *loop) schedule(*Conn, int64)          {}
func (ep *epConn) remoteAddr() net.Addr        { return nil }
func (c *Conn) epLocalAddr() net.Addr          { return nil }
func (c *Conn) epTryWrite([]byte) (int, error) { return 0, net.ErrClosed }
func (c *Conn) epQueuedLocked()                {}
func (c *Conn) epEndingLocked()                {}
func (c *Conn) epSendFIN()                     {}
func (s *Server) closeEpListenersLocked()      {}
func (s *Server) waitLoops()                   {}

func (s *Server) serveEpoll(ln net.Listener) error { panic("unreachable: epoll is Linux only") }
