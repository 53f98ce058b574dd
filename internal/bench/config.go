// Package bench is the load generator behind "tcpkit bench": it drives a
// TCP server with one of four workloads and measures what it took, with
// latency in an HDR histogram and errors by kind. It is internal until
// someone needs to import it.
package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
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
	Mode  Mode
	Addr  string // host:port
	Conns int    // concurrent connections; 0 means 1

	// The run stops after Duration, or after Exchanges exchanges, which
	// ever comes first; at least one of them must be set. Warmup runs the
	// load first without measuring it.
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

	// Message is what each exchange sends; {seq} and {conn} in it are
	// replaced by the exchange's and the connection's number. Empty means
	// DefaultMessage.
	Message string

	// Expect, if set, is the reply each exchange must get, byte for byte;
	// ExpectLen, if set instead, its length. Anything else counts as a
	// wrong reply. With neither, the first read that returns data is the
	// reply (pingpong), or everything until the server's FIN (oneshot).
	Expect    []byte
	ExpectLen int

	ConnectTimeout time.Duration // 0 means 5s
	ReplyTimeout   time.Duration // how long a reply may take; 0 means 5s

	ChunkSize int  // stream: bytes per write; 0 means 16 KiB
	Echo      bool // stream: read the echo back and count it

	ServerPID int // idle: the server's process, to read its memory per connection

	// Prepare, if set, runs on each new connection before its first
	// exchange, as sending a PROXY protocol header; an error fails it.
	Prepare func(nc net.Conn) error
}

// DefaultMessage is what the seed's client sends.
const DefaultMessage = "testing~"

const (
	defaultConnectTimeout = 5 * time.Second
	defaultReplyTimeout   = 5 * time.Second
	defaultChunk          = 16 << 10
)

func (c *Config) conns() int { return max(c.Conns, 1) }

func (c *Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return defaultConnectTimeout
}

func (c *Config) replyTimeout() time.Duration {
	if c.ReplyTimeout > 0 {
		return c.ReplyTimeout
	}
	return defaultReplyTimeout
}

func (c *Config) chunkSize() int {
	if c.ChunkSize > 0 {
		return c.ChunkSize
	}
	return defaultChunk
}

// check reports a configuration that cannot run.
func (c *Config) check() error {
	switch {
	case c.Mode == "":
		return errors.New("no mode")
	case c.Duration <= 0 && c.Exchanges <= 0:
		return errors.New("give a duration (-d) or a number of exchanges (-n)")
	case c.Conns < 0 || c.Exchanges < 0 || c.Rate < 0 || c.RatePerConn < 0:
		return errors.New("-c, -n and the rates must not be negative")
	case c.Rate > 0 && c.RatePerConn > 0:
		return errors.New("give --rate or --rate-per-conn, not both")
	case c.ExpectLen < 0:
		return errors.New("--expect length must not be negative")
	}
	return nil
}

// A message is Config.Message cut at its placeholders, so that each
// exchange's bytes are appended into a reused buffer without allocating.
type message struct {
	parts []string // literal text between placeholders
	holes []byte   // 's' for {seq}, 'c' for {conn}: holes[i] follows parts[i]
}

func parseMessage(s string) message {
	var m message
	for {
		i := indexPlaceholder(s)
		if i < 0 {
			m.parts = append(m.parts, s)
			return m
		}
		m.parts = append(m.parts, s[:i])
		if s[i:i+5] == "{seq}" {
			m.holes = append(m.holes, 's')
			s = s[i+5:]
		} else {
			m.holes = append(m.holes, 'c')
			s = s[i+6:]
		}
	}
}

func indexPlaceholder(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '{' && (len(s)-i >= 5 && s[i:i+5] == "{seq}" || len(s)-i >= 6 && s[i:i+6] == "{conn}") {
			return i
		}
	}
	return -1
}

// static reports whether the message has no placeholders.
func (m message) static() bool { return len(m.holes) == 0 }

// appendTo appends the message for exchange seq on connection conn.
func (m message) appendTo(dst []byte, seq int64, conn int) []byte {
	for i, p := range m.parts {
		dst = append(dst, p...)
		if i < len(m.holes) {
			if m.holes[i] == 's' {
				dst = strconv.AppendInt(dst, seq, 10)
			} else {
				dst = strconv.AppendInt(dst, int64(conn), 10)
			}
		}
	}
	return dst
}

// replyOK checks a reply against Expect or ExpectLen.
func (c *Config) replyOK(got []byte) bool {
	switch {
	case c.Expect != nil:
		return bytes.Equal(got, c.Expect)
	case c.ExpectLen > 0:
		return len(got) == c.ExpectLen
	}
	return true
}
