package tcpkit

import "errors"

// Errors returned by Conn and Server. Match them with errors.Is: the errors a
// Conn hands out wrap both one of these and, where there is one, the system
// error behind it (syscall.EPIPE, syscall.ECONNRESET, ...).
var (
	// ErrPeerEnded is returned by Conn.Write once the peer has sent its FIN
	// and this side has ended too (the default, as Node's allowHalfOpen:
	// false). It wraps syscall.EPIPE, the error Node reports in that case.
	ErrPeerEnded = errors.New("tcpkit: the peer ended the connection")

	// ErrWriteAfterEnd is returned by Conn.Write after this side called End.
	ErrWriteAfterEnd = errors.New("tcpkit: write after end")

	// ErrConnClosed is returned by Conn.Write after Close, or after the
	// connection was torn down by an error.
	ErrConnClosed = errors.New("tcpkit: use of closed connection")

	// ErrMessageTooLarge is the error of a connection whose peer sent a
	// message over ConnOptions.MaxMessage (Lines and Len32 framing).
	ErrMessageTooLarge = errors.New("tcpkit: message too large")

	// ErrTruncatedMessage is the error of a connection whose peer ended it
	// in the middle of a Len32 message.
	ErrTruncatedMessage = errors.New("tcpkit: the peer ended the connection inside a message")

	// ErrReadTimeout is the error of a connection closed because nothing
	// was read for ConnOptions.ReadTimeout.
	ErrReadTimeout = errors.New("tcpkit: read timeout")

	// ErrWriteTimeout is the error of a connection cut because its
	// output made no progress for ConnOptions.WriteTimeout. The close
	// resets the connection.
	ErrWriteTimeout = errors.New("tcpkit: write timeout")

	// ErrEndTimeout is the error of a connection cut because, once it
	// was ending (End, or the peer's FIN), its queued output made no
	// progress for ConnOptions.LingerTimeout: the peer takes none of it,
	// so the FIN behind it could never go out. The close resets the
	// connection.
	ErrEndTimeout = errors.New("tcpkit: end timeout")

	// ErrTooManyConns is what Server.OnReject is told when a connection
	// went over Server.MaxConns.
	ErrTooManyConns = errors.New("tcpkit: too many connections")

	// ErrTooManyConnsFromIP is what Server.OnReject is told when a
	// connection went over Server.MaxConnsPerIP.
	ErrTooManyConnsFromIP = errors.New("tcpkit: too many connections from one address")

	// ErrPreambleTimeout is what Preamble.Parse is shown as end once the
	// preamble's Timeout passed, and the error of a connection refused
	// then if Parse does not say another. Its Timeout method reports
	// true, as a net.Error's does after a deadline.
	ErrPreambleTimeout error = preambleTimeout{}

	// ErrPreambleTooLarge is the error of a connection refused because
	// its Preamble.Parse still wanted more after MaxPreamble bytes.
	ErrPreambleTooLarge = errors.New("tcpkit: preamble too large")

	// ErrServerClosed is returned by Server.Serve and ListenAndServe after
	// Shutdown or Close. It marks a normal stop, not a failure.
	ErrServerClosed = errors.New("tcpkit: server closed")
)

type preambleTimeout struct{}

func (preambleTimeout) Error() string { return "tcpkit: the preamble did not come whole in time" }
func (preambleTimeout) Timeout() bool { return true }
