package tcpkit

import (
	"errors"
	"net"
	"syscall"
)

// The boundary between a connection's lifecycle and the engine under it.
//
// The lifecycle is written once, for every engine: conn.go holds the
// connection's state and its methods (Write queues, End, Close, Pause,
// Offload), lifecycle.go what happens as input arrives and output goes
// out (framing, the peer's FIN, the end of a flush with OnDrain and our
// FIN, the close, reported exactly once), timeouts.go every timeout.
// An engine gives each connection a transport, for what truly differs
// between engines, and drives the lifecycle by calling into it as things
// happen:
//
//   - input: gotBytes, then deliver (Raw) or deliverMessages (framed),
//     and inputEOF at the peer's FIN; a read error goes to closeWith;
//   - reading resumed after a pause or a backlog: readingResumed;
//   - output written from the queue: wroteLocked, and once the queue is
//     empty flushedLocked and afterFlush;
//   - a timer due: expire;
//   - the connection released, once nothing of the engine runs for it
//     any more: finish, which reports OnError and OnClose.
//
// Nothing in the lifecycle asks which engine runs it. A transport sits
// on a socket's file descriptor, TCP or Unix, accepted or dialed; its
// bytes may pass through what a Handshake returned (TLS: records made at
// tryWrite, at most streamChunk ahead of the kernel), or through a
// net.Conn with no fd (the std engine, for a Handshake's connection of
// another kind: tryWrite takes nothing, control reports no fd).
type transport interface {
	// tryWrite hands the kernel what it takes of p without blocking and
	// returns how much that was; c.mu is held. A transport that cannot
	// write without blocking takes nothing: all of p is queued.
	tryWrite(p []byte) (int, error)

	// startFlush is told that output is queued (c.out) and the fFlushing flag was
	// just set; c.mu is held. The transport writes the queue as the peer
	// takes it, calling wroteLocked, and flushedLocked when it is empty.
	startFlush()

	// closeWrite sends our FIN (shutdown of the write side); c.mu is not
	// held. An error, or a transport that cannot half-close, makes the
	// lifecycle close the connection. A peer that reset the connection
	// already is no error here (see peerGone): the reset is the read
	// side's to report, as it is when it comes after the FIN.
	closeWrite() error

	// schedule makes sure c.expire runs by due, a monoNow reading; it may
	// run earlier. It is called with or without c.mu held, so it must
	// not take it.
	schedule(due int64)

	// resume is told that reading may go on: Resume was called. c.mu is
	// not held.
	resume()

	// shutdown runs c.gracefulEnd between callbacks, for Server.Shutdown.
	// It must not wait for a callback to return.
	shutdown()

	// close tears the connection down once closeWith marked it closed,
	// with a reset if abort is set; c.mu is not held. When nothing of the
	// transport runs for the connection any more, it calls c.finish,
	// exactly once.
	close(abort bool)

	// control runs f with the socket's file descriptor while it is open,
	// and reports whether it did.
	control(f func(fd uintptr)) bool

	remoteAddr() net.Addr
	localAddr() net.Addr
}

// peerGone reports whether err says the peer reset the connection: a
// half-close that meets it has nothing left to do, and the reading side
// reports the reset. With TLS the peer may read our close_notify, its
// end of the stream, and reset before our FIN goes out: the FIN's
// shutdown then fails (ENOTCONN), and the reset must still show as one.
func peerGone(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ENOTCONN)
}
