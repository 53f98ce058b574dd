//go:build !linux

package tcpkit

import (
	"context"
	"net"
	"time"
)

// The epoll engine is Linux only: EngineFor and Dialer never pick it
// elsewhere. The Server's few hooks into it do nothing here.

const epollBuilt = false

type epServer struct{}

func (s *Server) serveEpoll(ln net.Listener) error   { panic("unreachable: epoll is Linux only") }
func (s *Server) closeEpListenersLocked()            {}
func (s *Server) waitLoops()                         {}
func (s *Server) appendEpConns(list []*Conn) []*Conn { return list }

func (d *Dialer) dialEpoll(ctx context.Context, nc net.Conn, ev *Events, opt *ConnOptions, start time.Time) (*Conn, error) {
	panic("unreachable: epoll is Linux only")
}
