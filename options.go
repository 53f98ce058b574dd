package tcpkit

import "time"

// Defaults used where a ConnOptions field is zero.
const (
	// DefaultLingerTimeout bounds how long End waits for the peer's FIN
	// before closing anyway. Linux itself gives an orphaned FIN_WAIT2 socket
	// 60 s (net.ipv4.tcp_fin_timeout); a live process has less patience.
	DefaultLingerTimeout = 30 * time.Second

	// DefaultHighWaterMark is the buffered-output size above which
	// Conn.NeedDrain reports true and reading pauses. It is Node's
	// writableHighWaterMark for sockets (16 KiB).
	DefaultHighWaterMark = 16 << 10

	// DefaultReadBufferSize is the read buffer a connection starts with. It
	// doubles, up to MaxReadBufferSize, each time a read fills it, so idle
	// connections stay small and busy ones read in large chunks.
	DefaultReadBufferSize = 4 << 10

	// MaxReadBufferSize caps the read buffer, and so the largest chunk one
	// OnData call receives. Node reads in chunks of up to 64 KiB as well.
	MaxReadBufferSize = 64 << 10
)

// ConnOptions configure each connection of a Server or a Dialer. The zero
// value is ready to use and behaves like a Node.js socket with default
// options.
type ConnOptions struct {
	// IdleTimeout fires OnTimeout after the connection has neither read
	// nor written anything for this long, like Node's socket.setTimeout.
	// It fires once per idle period. When Events.OnTimeout is nil the
	// connection is ended instead. Zero means no idle timeout;
	// Conn.SetTimeout changes it per connection.
	IdleTimeout time.Duration

	// LingerTimeout bounds the graceful end of a connection. Once it is
	// ending (End, or the peer's FIN without AllowHalfOpen), output still
	// queued that makes no progress for this long cuts the connection
	// with ErrEndTimeout (a reset: the peer does not read, so the FIN
	// behind the output could never go out); and once its FIN went out,
	// the connection waits this long for the peer's FIN, then closes
	// anyway. Zero means DefaultLingerTimeout.
	LingerTimeout time.Duration

	// AllowHalfOpen keeps this side writable after the peer's FIN, like
	// Node's allowHalfOpen option. When false (the default), the peer's
	// FIN makes the connection End too once pending writes are out.
	AllowHalfOpen bool

	// HighWaterMark is the buffered-output size, in bytes, above which
	// Conn.NeedDrain reports true, OnDrain fires once the buffer empties,
	// and the connection stops reading until then. Zero means
	// DefaultHighWaterMark.
	HighWaterMark int

	// Framing says what one message is, for OnData and WriteMessage. The
	// zero value, Raw, delivers each read as it comes, as Node.js does.
	Framing Framing

	// MaxMessage is the largest message Lines or Len32 framing accepts;
	// a larger one closes the connection with ErrMessageTooLarge. Zero
	// means DefaultMaxMessage.
	MaxMessage int

	// ReadTimeout closes the connection with ErrReadTimeout when nothing
	// has been read for this long, whatever was written: the guard
	// against a client that connects and sends nothing (slowloris). Zero
	// means none.
	ReadTimeout time.Duration

	// WriteTimeout cuts the connection (a reset) with ErrWriteTimeout when
	// queued output makes no progress for this long: the guard against a
	// peer that never reads. Zero means none.
	WriteTimeout time.Duration

	// ReadDuringBacklog keeps reading while queued output is over the
	// high-water mark. By default a connection stops reading then, until
	// the output drains, so that a peer that sends but does not read
	// cannot make this side queue replies without bound. Set it where the
	// output does not come from the input (a client streaming a file it
	// also reads replies for), or the two sides can wait on each other.
	ReadDuringBacklog bool

	// Trace, if set, is called with each event of the connection as it
	// happens, enriched with the kernel's TCP_INFO on Linux: the handshake,
	// each read and write, FINs both ways, resets, timeouts, the close. It
	// is called from the goroutine where the event happens, possibly
	// while a callback runs, one event of a connection at a time; it must
	// be quick, and must not call the connection's Write, End or Close.
	Trace func(TraceEvent)
}

func (o *ConnOptions) maxMessage() int {
	if o.MaxMessage > 0 {
		return o.MaxMessage
	}
	return DefaultMaxMessage
}

func (o *ConnOptions) lingerTimeout() time.Duration {
	if o.LingerTimeout > 0 {
		return o.LingerTimeout
	}
	return DefaultLingerTimeout
}

func (o *ConnOptions) highWaterMark() int {
	if o.HighWaterMark > 0 {
		return o.HighWaterMark
	}
	return DefaultHighWaterMark
}
