//go:build unix

package tcpkit

import (
	"net"
	"syscall"
)

// A tryWriter makes nonblocking writes on a socket's fd, for the standard
// engine: Conn.Write hands bytes to the kernel inline and queues only what
// the kernel will not take now (EAGAIN), and the flush goroutine writes
// the queue, waiting for room only when the kernel takes nothing.
type tryWriter struct {
	raw syscall.RawConn

	// write's, used under Conn.mu.
	fn  func(fd uintptr) bool // made once: a closure per write would allocate
	p   []byte
	n   int
	err error

	// writeWait's, used by the flush goroutine.
	waitFn  func(fd uintptr) bool
	wp      []byte
	wn      int
	waitErr error
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
	w.waitFn = w.attemptWait
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
	w.n, w.err = writeFD(fd, w.p, w.n)
	return true
}

// writeWait writes from p, waiting for room if the kernel takes nothing
// at first, and returns how much it took. A syscall error comes back as
// the syscall.Errno.
func (w *tryWriter) writeWait(p []byte) (int, error) {
	w.wp, w.wn, w.waitErr = p, 0, nil
	if err := w.raw.Write(w.waitFn); err != nil {
		w.waitErr = err
	}
	n, err := w.wn, w.waitErr
	w.wp, w.waitErr = nil, nil
	return n, err
}

// attemptWait returns false, to wait for room, only while nothing is
// written: flush records each step of progress.
func (w *tryWriter) attemptWait(fd uintptr) bool {
	w.wn, w.waitErr = writeFD(fd, w.wp, w.wn)
	return w.wn > 0 || w.waitErr != nil
}

// writeFD writes p[n:] to fd until it is all written, the kernel takes no
// more (EAGAIN) or the write fails, and returns n plus what it wrote.
func writeFD(fd uintptr, p []byte, n int) (int, error) {
	for n < len(p) {
		m, err := syscall.Write(int(fd), p[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return n, nil
		case err != nil:
			return n, err
		}
		n += m
	}
	return n, nil
}
