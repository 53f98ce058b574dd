package tcpkit

import (
	"errors"
	"syscall"
	"time"
)

// A TraceKind names what a TraceEvent reports.
type TraceKind uint8

const (
	TraceConnected   TraceKind = iota + 1 // the 3-way handshake is done; Duration is how long connecting took (Dial only)
	TraceRead                             // Bytes arrived from the peer
	TraceWrite                            // Bytes were handed to the kernel for the peer
	TracePeerFIN                          // the peer's FIN arrived: it will send no more
	TraceFIN                              // our FIN went out (End, after the queued output)
	TraceTimeout                          // the idle timeout passed
	TraceReset                            // the peer reset the connection (a RST); Err says how it showed
	TraceError                            // another error broke the connection; Err is it
	TraceWriteFailed                      // Conn.Write refused bytes; Err says why (EPIPE after the peer's FIN, ...)
	TraceClosed                           // the connection is closed; Err is its error, if any
)

var traceNames = [...]string{
	TraceConnected:   "connected",
	TraceRead:        "read",
	TraceWrite:       "write",
	TracePeerFIN:     "peer-fin",
	TraceFIN:         "fin",
	TraceTimeout:     "timeout",
	TraceReset:       "reset",
	TraceError:       "error",
	TraceWriteFailed: "write-failed",
	TraceClosed:      "closed",
}

// String returns the kind's name, such as "peer-fin".
func (k TraceKind) String() string {
	if int(k) < len(traceNames) && traceNames[k] != "" {
		return traceNames[k]
	}
	return "unknown"
}

// A TraceEvent is one thing that happened on a connection, for
// ConnOptions.Trace: what the wire would show, from inside.
type TraceEvent struct {
	Kind     TraceKind
	Conn     *Conn
	Time     time.Time     // when it happened (with a monotonic reading)
	Bytes    int           // TraceRead, TraceWrite: how many
	Duration time.Duration // TraceConnected on a dialed connection: how long connecting took
	Err      error         // TraceReset, TraceError, TraceWriteFailed, TraceClosed
	// Info is the kernel's view of the connection right after the event
	// (TCP_INFO), or nil where it cannot be read: on systems other than
	// Linux, and once the socket is closed.
	Info *TCPInfo
}

// TCPInfo is the part of the kernel's TCP_INFO that explains a
// connection's behaviour.
type TCPInfo struct {
	State         string        // ESTABLISHED, CLOSE_WAIT, FIN_WAIT2, ...
	RTT           time.Duration // smoothed round-trip time
	RTTVar        time.Duration // its variation
	Retransmits   uint32        // segments retransmitted over the connection's life
	Unacked       uint32        // segments sent and not yet acknowledged
	BytesAcked    uint64        // bytes the peer has acknowledged
	BytesReceived uint64        // bytes received from the peer
}

// trace reports an event to ConnOptions.Trace, if set. It is called on
// the paths where the event happens; the nil check is all it costs when
// tracing is off.
func (c *Conn) trace(kind TraceKind, n int, err error) {
	if !c.flags.has(fTraced) {
		return
	}
	c.x.traceMu.Lock()
	defer c.x.traceMu.Unlock()
	c.emitLocked(kind, n, err)
}

// emitLocked reports an event to ConnOptions.Trace; c.traceMu is held.
func (c *Conn) emitLocked(kind TraceKind, n int, err error) {
	ev := TraceEvent{Kind: kind, Conn: c, Time: time.Now(), Bytes: n, Err: err}
	ev.Info = c.tcpInfo()
	c.opt.Trace(ev)
}

// traceConnected reports TraceConnected, with how long connecting took
// for a dialed connection (d; zero for an accepted one).
func (c *Conn) traceConnected(d time.Duration) {
	if !c.flags.has(fTraced) {
		return
	}
	c.x.traceMu.Lock()
	defer c.x.traceMu.Unlock()
	c.opt.Trace(TraceEvent{Kind: TraceConnected, Conn: c, Time: time.Now(), Duration: d, Info: c.tcpInfo()})
}

// traceFailure reports the error that broke the connection as a reset or
// as another error.
func (c *Conn) traceFailure(err error) {
	if errors.Is(err, syscall.ECONNRESET) {
		c.trace(TraceReset, 0, err)
	} else {
		c.trace(TraceError, 0, err)
	}
}
