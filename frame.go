package tcpkit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// DefaultMaxMessage is the largest message Lines and Len32 framing accept
// when ConnOptions.MaxMessage is zero.
const DefaultMaxMessage = 1 << 20

// Framing says what one message is: what OnData receives and what
// Conn.WriteMessage sends. TCP carries a stream of bytes, so where one
// message ends is the application's to say.
type Framing uint8

const (
	// Raw makes each read a message, as Node.js's 'data' event does: the
	// peer's writes may arrive split or merged.
	Raw Framing = iota
	// Lines ends a message at '\n'. OnData receives the line with its
	// '\n'; WriteMessage adds a '\n' unless p ends with one. A last line
	// without '\n' is delivered when the peer ends.
	Lines
	// Len32 prefixes each message with its length as 4 big-endian bytes.
	// OnData receives the message without the prefix; WriteMessage adds it.
	Len32
)

// String returns the name ParseFraming accepts.
func (f Framing) String() string {
	switch f {
	case Raw:
		return "raw"
	case Lines:
		return "line"
	case Len32:
		return "len32"
	}
	return fmt.Sprintf("Framing(%d)", uint8(f))
}

// ParseFraming returns the Framing named "raw", "line" or "len32".
func ParseFraming(s string) (Framing, error) {
	for _, f := range []Framing{Raw, Lines, Len32} {
		if s == f.String() {
			return f, nil
		}
	}
	return Raw, fmt.Errorf("unknown framing %q: use raw, line or len32", s)
}

// split returns the first complete message at the start of buf and the
// number of bytes it spans, or n == 0 if buf holds no complete message
// yet. A message longer than max is an error as soon as that is known,
// before its bytes arrive, so a peer cannot make the reader buffer more.
func (f Framing) split(buf []byte, max int) (msg []byte, n int, err error) {
	switch f {
	case Lines:
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			if len(buf) > max {
				return nil, 0, fmt.Errorf("%w: a line longer than %d bytes", ErrMessageTooLarge, max)
			}
			return nil, 0, nil
		}
		if i > max {
			return nil, 0, fmt.Errorf("%w: a line of %d bytes, more than %d", ErrMessageTooLarge, i, max)
		}
		return buf[:i+1], i + 1, nil
	case Len32:
		if len(buf) < 4 {
			return nil, 0, nil
		}
		size := binary.BigEndian.Uint32(buf)
		if uint64(size) > uint64(max) {
			return nil, 0, fmt.Errorf("%w: a message of %d bytes, more than %d", ErrMessageTooLarge, size, max)
		}
		end := 4 + int(size)
		if len(buf) < end {
			return nil, 0, nil
		}
		return buf[4:end], end, nil
	}
	return buf, len(buf), nil
}

// appendMessage appends p to dst as one message.
func (f Framing) appendMessage(dst, p []byte) ([]byte, error) {
	switch f {
	case Lines:
		dst = append(dst, p...)
		if len(p) == 0 || p[len(p)-1] != '\n' {
			dst = append(dst, '\n')
		}
		return dst, nil
	case Len32:
		if uint64(len(p)) > math.MaxUint32 {
			return dst, fmt.Errorf("%w: %d bytes do not fit a 32-bit length", ErrMessageTooLarge, len(p))
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p)))
		return append(dst, p...), nil
	}
	return append(dst, p...), nil
}
