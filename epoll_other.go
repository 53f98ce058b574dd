//go:build !linux

package tcpkit

import "net"

const epollBuilt = false

func (s *Server) serveEpoll(ln net.Listener) error { panic("unreachable: epoll is Linux only") }
