//go:build unix

package tcpkit

import (
	"net"
	"syscall"
)

// A tryWriter makes nonblocking write attempts on a socket's fd, so that
// Conn.Write can hand bytes to the kernel inline and queue only what the
// kernel will not take now (EAGAIN). Its fields are used under Conn.mu.
type tryWriter struct {
	raw syscall.RawConn
	fn  func(fd uintptr) bool // made once: a closure per write would allocate
	p   []byte
	n   int
	err error
}

func newTryWriter(nc net.Conn) *tryWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &tryWriter{raw: raw}
	w.fn = w.attempt
	return w
}

// write writes as much of p as the kernel takes without blocking.
func (w *tryWriter) write(p []byte) (int, error) {
	w.p, w.n, w.err = p, 0, nil
	if err := w.raw.Write(w.fn); err != nil {
		w.err = err
	}
	n, err := w.n, w.err
	w.p, w.err = nil, nil
	return n, err
}

// attempt runs with the fd locked. Returning true tells the runtime not to
// wait for writability: what is left over gets queued instead.
func (w *tryWriter) attempt(fd uintptr) bool {
	for w.n < len(w.p) {
		m, err := syscall.Write(int(fd), w.p[w.n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			w.err = err
			return true
		}
		w.n += m
	}
	return true
}
