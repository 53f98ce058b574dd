//go:build !linux

package tcpkit

import "net"

// The epoll engine is Linux only: EngineFor never picks it elsewhere. The
// Server's few hooks into it do nothing here.

const epollBuilt = false

type epServer struct{}

func (s *Server) serveEpoll(ln net.Listener) error   { panic("unreachable: epoll is Linux only") }
func (s *Server) closeEpListenersLocked()            {}
func (s *Server) waitLoops()                         {}
func (s *Server) appendEpConns(list []*Conn) []*Conn { return list }
