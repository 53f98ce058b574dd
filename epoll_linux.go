package tcpkit

import "net"

const epollBuilt = true

// serveEpoll is a placeholder until the epoll engine lands: it serves on std.
func (s *Server) serveEpoll(ln net.Listener) error {
	saved := s.Engine
	_ = saved
	return s.serveStd(ln)
}
