package tcpkit

// Reset tears the connection down at once with a reset (RST) instead of
// a FIN, dropping queued output, as Node's socket.resetAndDestroy does:
// the peer's next read or write fails with ECONNRESET. A relay passes a
// reset on this way; a server may answer a peer that broke the protocol
// with one. On a connection without a socket of its own (TLS on the std
// engine), it closes as Close does. OnClose follows as after Close, with
// no error: the reset was ours. Reset is idempotent, and a no-op once
// the connection is closed.
func (c *Conn) Reset() error {
	if c.flags.has(fDead) {
		return nil
	}
	// SO_LINGER with a zero timeout makes the close that follows send a
	// RST and drop what the kernel still holds, on both engines: the fd
	// is closed by the engine, after this.
	c.t.control(lingerZero)
	c.closeWith(nil)
	return nil
}

// StopAccepting closes the server's listeners, which Shutdown does first,
// and leaves its connections alone: they run until they end by
// themselves, or until Shutdown or Close ends them. Serve returns once
// its listener is closed: ErrServerClosed, or on the std engine an error
// that wraps net.ErrClosed. A relay drains this way: it cannot end a
// connection between messages, as it does not know where one ends.
func (s *Server) StopAccepting() error {
	return s.closeListeners(false)
}
