package bench

import "strconv"

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
