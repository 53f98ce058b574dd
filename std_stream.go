package tcpkit

import (
	"crypto/tls"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// TLS on the standard engine, written as on plain TCP. A Handshake gets
// a stdSock over the socket; if it returns a tls.Conn over that stdSock,
// the stdSock's writes stop waiting once the connection is served: they
// hand the socket what it takes at once and queue the rest. Conn.Write
// then makes records and hands them to the kernel inline, as a plain
// connection's Write does, so what was written before a Close goes out,
// and a failed write shows at Write; the flush goroutine writes the
// records queued first, then makes more from the lifecycle's queue, at
// most streamChunk ahead of the kernel.

// A stdSock is the net.Conn a Handshake gets on the std engine.
type stdSock struct {
	net.Conn // the socket, or a preamble's connection over it
	tw       *tryWriter
	served   atomic.Bool // writes no longer wait

	mu  sync.Mutex
	out []byte // records the socket did not take yet
	err error  // the write error that broke it
}

// newStdSock returns nc wrapped for a Handshake, or nil where nc has no
// fd to write to without waiting.
func newStdSock(nc net.Conn) *stdSock {
	tw := newTryWriter(nc)
	if tw == nil {
		return nil
	}
	return &stdSock{Conn: nc, tw: tw}
}

// Write is nc's, until the connection is served; then it writes what
// the socket takes at once, queues the rest, and fails only once the
// socket did.
func (k *stdSock) Write(p []byte) (int, error) {
	if !k.served.Load() {
		return k.Conn.Write(p)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		return 0, k.err
	}
	n := 0
	if len(k.out) == 0 {
		var err error
		if n, err = k.tw.write(p); err != nil {
			k.err = k.opError(err)
			return n, k.err
		}
	}
	k.out = append(k.out, p[n:]...)
	return len(p), nil
}

func (k *stdSock) opError(err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = &net.OpError{Op: "write", Net: k.LocalAddr().Network(), Source: k.LocalAddr(), Addr: k.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
	}
	return err
}

// NetConn returns the connection beneath, for a reset on close.
func (k *stdSock) NetConn() net.Conn { return k.Conn }

// SyscallConn is the socket's, for TCP_INFO.
func (k *stdSock) SyscallConn() (syscall.RawConn, error) { return k.Conn.(syscall.Conn).SyscallConn() }

func (k *stdSock) queued() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.out) > 0
}

// flushWait writes the queued records, waiting until the socket takes
// some of them.
func (k *stdSock) flushWait() error {
	k.mu.Lock()
	out := k.out
	k.mu.Unlock()
	n, err := k.tw.writeWait(out)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.out = k.out[n:]
	if len(k.out) == 0 {
		k.out = nil
	}
	if err != nil && k.err == nil {
		k.err = k.opError(err)
	}
	return k.err
}

// A stdStream is a std connection's TLS, served over a stdSock.
type stdStream struct {
	x     net.Conn // the tls.Conn
	k     *stdSock
	ahead int // plaintext at the head of Conn.out whose records are queued in k
}

// stdStreamOf returns the stream of hc, what Handshake returned over k,
// if it is a tls.Conn over k; nil otherwise, and k keeps waiting.
func stdStreamOf(hc net.Conn, k *stdSock) *stdStream {
	if k == nil {
		return nil
	}
	if tc, ok := hc.(*tls.Conn); ok && tc.NetConn() == net.Conn(k) {
		k.served.Store(true)
		return &stdStream{x: hc, k: k}
	}
	return nil
}

// tryWrite makes records of p, a chunk at a time, while the socket takes
// them at once; Conn.mu is held and nothing is queued.
func (st *stdStream) tryWrite(p []byte) (int, error) {
	if st.k.queued() {
		return 0, nil
	}
	n := 0
	for n < len(p) {
		c := min(streamChunk, len(p)-n)
		if _, err := st.x.Write(p[n : n+c]); err != nil {
			return n, st.writeErr(err)
		}
		if st.k.queued() {
			st.ahead = c
			return n, nil
		}
		n += c
	}
	return n, nil
}

// writeOut is the flush goroutine's step: the queued records first, then
// records from buf, the head of Conn.out. It returns how much of buf is
// written, the chunk whose records were queued counting once they are.
func (st *stdStream) writeOut(buf []byte) (int, error) {
	if st.k.queued() {
		if err := st.k.flushWait(); err != nil {
			return 0, err
		}
		if st.k.queued() {
			return 0, nil
		}
		n := st.ahead
		st.ahead = 0
		return n, nil
	}
	c := min(streamChunk, len(buf))
	if _, err := st.x.Write(buf[:c]); err != nil {
		return 0, st.writeErr(err)
	}
	if st.k.queued() {
		st.ahead = c
		return 0, nil
	}
	return c, nil
}

// writeErr is the socket's error, if it failed, rather than the one
// crypto/tls wrapped it in.
func (st *stdStream) writeErr(err error) error {
	st.k.mu.Lock()
	defer st.k.mu.Unlock()
	if st.k.err != nil {
		return st.k.err
	}
	return err
}

// closeWrite sends close_notify, then the FIN once the records before it
// are out: at once if the socket took them, else from a goroutine of its
// own that waits for room (until the close, which fails its write), as
// the kernel would hold a plain FIN behind the bytes queued.
func (st *stdStream) closeWrite() error {
	if err := st.x.(*tls.Conn).CloseWrite(); err != nil && !peerGone(st.writeErr(err)) {
		return err
	}
	if !st.k.queued() {
		return closeWriteAll(st.k.Conn)
	}
	go func() {
		for st.k.queued() {
			if st.k.flushWait() != nil {
				return
			}
		}
		closeWriteAll(st.k.Conn)
	}()
	return nil
}
