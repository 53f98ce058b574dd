// Package bench is the load generator behind "tcpkit bench": it drives a
// TCP server with one of four workloads and measures what it took, with
// latency in an HDR histogram and errors by kind. It is internal until
// someone needs to import it.
package bench

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Mode is a workload.
type Mode string

const (
	// Oneshot opens a connection per exchange: connect, send, read the
	// reply until the server's FIN, close. The seed's default server.
	Oneshot Mode = "oneshot"
	// PingPong keeps each connection and has one request outstanding on
	// it: send, read the whole reply, repeat. The seed's keep-open server.
	PingPong Mode = "pingpong"
	// Stream sends without waiting for replies (or reads an echo back
	// alongside) and measures throughput.
	Stream Mode = "stream"
	// Idle opens connections and holds them, to see how many a server
	// keeps and what each costs it.
	Idle Mode = "idle"
)

// ParseMode returns the Mode named s.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Oneshot, PingPong, Stream, Idle:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q: use oneshot, pingpong, stream or idle", s)
}

// Config is one bench run. Zero values mean the defaults noted.
type Config struct {
	Mode    Mode
	Network string // "tcp" (the default, when empty) or "unix"
	Addr    string // host:port, or a Unix socket's path
	Conns   int    // concurrent connections; 0 means 1

	// The run issues exchanges for Duration, or until Exchanges were
	// issued, whichever comes first; at least one of them must be set.
	// Every exchange issued in that window counts, whenever it ends:
	// then the run waits up to DrainTimeout for the exchanges in flight
	// and closes each connection with a FIN. Warmup runs the load first
	// without measuring it. In Idle mode Duration is the whole run:
	// opening the connections, then holding them.
	Duration  time.Duration
	Exchanges int64
	Warmup    time.Duration

	// Rate, if set, is the exchanges per second for all connections
	// together, RatePerConn per connection: an open loop. Exchange i is
	// due at start + i/rate, and its latency counts from then, so a server
	// that stalls shows in the latency instead of slowing the load down
	// (no coordinated omission). Without a rate each connection sends as
	// soon as its previous reply is in (a closed loop).
	Rate        float64
	RatePerConn float64
	// RateEnd, if set, makes Rate a ramp: the rate goes from Rate to
	// RateEnd in a straight line over Ramp (0: over the whole Duration),
	// then stays at RateEnd. The ramp starts with the load.
	RateEnd float64
	Ramp    time.Duration

	// Message is what each exchange sends; {seq} and {conn} in it are
	// replaced by the exchange's and the connection's number. Empty means
	// DefaultMessage.
	Message string

	// Expect, if set, must appear in each reply; ExpectLen, if set, is
	// the reply's length; ExpectExact, if set, is the whole reply, byte
	// for byte (it goes alone). Anything else is a wrong reply. Where a
	// pingpong reply ends: at ExpectLen or len(ExpectExact) bytes; else,
	// with Expect, once the bytes since the request contain it; else at
	// the first read that returns data. Oneshot reads to the server's FIN.
	Expect      []byte
	ExpectLen   int
	ExpectExact []byte

	ConnectTimeout time.Duration // 0 means DefaultConnectTimeout
	ReplyTimeout   time.Duration // how long a reply may take; 0 means 5s
	// DrainTimeout is how long the end of the run waits for exchanges in
	// flight and for the server to close each connection after our FIN;
	// 0 means DefaultDrainTimeout. What is still in flight then is a
	// timeout error.
	DrainTimeout time.Duration

	ChunkSize int  // stream: bytes per write; 0 means 16 KiB
	Echo      bool // stream: read the echo back and count it

	ServerPID int // idle: the server's process, to read its memory per connection

	// Header, if set, gives the bytes each connection sends first, in the
	// write of its first exchange: a PROXY protocol header. It gets the
	// connection's own address and the server's.
	Header func(local, remote net.Addr) []byte

	// Prepare, if set, runs on each new connection before its first
	// exchange (after Header), as a TLS handshake does, and returns the
	// connection to use (one wrapping nc, for TLS); an error fails it.
	// Connections with Prepare run a goroutine each.
	Prepare func(nc net.Conn) (net.Conn, error)
}

func (c *Config) network() string {
	if c.Network == "" {
		return "tcp"
	}
	return c.Network
}

// DefaultMessage is what the seed's client sends.
const DefaultMessage = "testing~"

// The defaults of Config's zero values. DefaultConnectTimeout is the
// same as tcpkit connect's.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultReplyTimeout   = 5 * time.Second
	DefaultDrainTimeout   = 2 * time.Second
	defaultChunk          = 16 << 10
)

// Bounds of what a run may be asked.
const (
	MaxRate        = 10_000_000 // exchanges per second
	MaxMessageSize = 16 << 20   // bytes
)

func (c *Config) conns() int { return max(c.Conns, 1) }

func (c *Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return DefaultConnectTimeout
}

func (c *Config) replyTimeout() time.Duration {
	if c.ReplyTimeout > 0 {
		return c.ReplyTimeout
	}
	return DefaultReplyTimeout
}

func (c *Config) drainTimeout() time.Duration {
	if c.DrainTimeout > 0 {
		return c.DrainTimeout
	}
	return DefaultDrainTimeout
}

func (c *Config) chunkSize() int {
	if c.ChunkSize > 0 {
		return c.ChunkSize
	}
	return defaultChunk
}

// openLoop reports whether exchanges go out on a schedule.
func (c *Config) openLoop() bool { return c.Rate > 0 || c.RateEnd > 0 || c.RatePerConn > 0 }

// Check reports a configuration that cannot run, in terms of Config's
// fields; Run checks it too. An *FDLimitError says that Conns is more
// than this process may open.
func (c *Config) Check() error {
	switch {
	case c.Mode == "":
		return errors.New("no mode")
	case c.Duration <= 0 && c.Exchanges <= 0:
		return errors.New("give a duration or a number of exchanges")
	case c.Conns < 0 || c.Exchanges < 0 || c.Rate < 0 || c.RateEnd < 0 || c.RatePerConn < 0 || c.Ramp < 0:
		return errors.New("connections, exchanges, rates and the ramp must not be negative")
	case c.Mode == Idle && c.Exchanges > 0:
		return errors.New("idle holds connections: give a duration, not a number of exchanges")
	case c.Rate > MaxRate || c.RateEnd > MaxRate || c.RatePerConn > MaxRate:
		return fmt.Errorf("a rate may be at most %d exchanges per second", MaxRate)
	case c.openLoop() && c.Mode != PingPong && c.Mode != Oneshot && c.Mode != Stream:
		return fmt.Errorf("a rate does not apply to %s", c.Mode)
	case (c.Rate > 0 || c.RateEnd > 0) && c.RatePerConn > 0:
		return errors.New("give a rate for all connections or per connection, not both")
	case c.Ramp > 0 && c.RateEnd == 0:
		return errors.New("a ramp needs an end rate")
	case c.RateEnd > 0 && c.Ramp == 0 && c.Duration <= 0:
		return errors.New("a ramp without a duration needs its own length")
	case c.RateEnd > 0 && c.Duration > 0 && c.Ramp > c.Duration:
		return fmt.Errorf("the ramp (%v) is longer than the run (%v)", c.Ramp, c.Duration)
	case c.ExpectLen < 0:
		return errors.New("the expected length must not be negative")
	case c.ExpectExact != nil && (c.Expect != nil || c.ExpectLen > 0):
		return errors.New("an exact reply goes alone, without a contained text or a length")
	case len(c.ExpectExact) == 0 && c.ExpectExact != nil, len(c.Expect) == 0 && c.Expect != nil:
		return errors.New("an expected reply must not be empty")
	case c.ExpectLen > 0 && len(c.Expect) > c.ExpectLen:
		return fmt.Errorf("a reply of %d bytes cannot contain %d expected bytes", c.ExpectLen, len(c.Expect))
	case len(c.Message) > MaxMessageSize:
		return fmt.Errorf("the message is %d bytes; at most %d", len(c.Message), MaxMessageSize)
	}
	return checkFDs(c)
}

// rampLength is how long the ramp lasts.
func (c *Config) rampLength() time.Duration {
	if c.Ramp > 0 {
		return c.Ramp
	}
	return c.Duration
}
