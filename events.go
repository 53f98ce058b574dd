package tcpkit

// Events holds the callbacks of a connection's lifecycle: the events a
// Node.js socket emits, as fields. A nil field ignores its event.
//
// The callbacks of one connection never run at the same time, and they run
// in the order the events happened: OnConnect first, OnClose last and
// exactly once. A callback blocks the delivery of the next event of its
// connection, and reading from it; on the epoll engine it also blocks
// every other connection of its event loop. Hand slow work to
// Conn.Offload, or to a goroutine that calls Conn.Write (Write is safe
// for concurrent use).
type Events struct {
	// OnConnect is called once the connection is established: accepted by
	// a Server, or connected by a Dialer.
	OnConnect func(c *Conn)

	// OnData is called with each chunk read from the peer. The chunk is
	// only valid until OnData returns: copy what you keep. Chunk
	// boundaries are those of the reads, not of the peer's writes.
	OnData func(c *Conn, p []byte)

	// OnEnd is called when the peer sends its FIN: it will send no more.
	// Unless ConnOptions.AllowHalfOpen is set, the connection ends this
	// side too once OnEnd returns.
	OnEnd func(c *Conn)

	// OnTimeout is called when the connection has been idle for its idle
	// timeout. The connection stays open: call End or Close. When
	// OnTimeout is nil, the connection is ended.
	OnTimeout func(c *Conn)

	// OnDrain is called when the output buffer has emptied after it went
	// over the high-water mark (after Conn.NeedDrain reported true).
	OnDrain func(c *Conn)

	// OnError is called with the error that tore the connection down,
	// right before OnClose(c, true): a reset by the peer, a failed write,
	// a panic in a callback.
	OnError func(c *Conn, err error)

	// OnClose is called once the connection is fully closed. hadError
	// reports whether OnError was called before it.
	OnClose func(c *Conn, hadError bool)
}
