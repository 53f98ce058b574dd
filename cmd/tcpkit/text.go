package main

import (
	"strconv"
	"unicode/utf8"
)

// How a peer's bytes are shown as text. By default serve and connect
// print them as the seed's console.log(data.toString()) does: the bytes
// as they are, invalid UTF-8 replaced by U+FFFD. On a terminal that would
// let any peer drive the operator's terminal (retitle it, clear it, move
// the cursor, hide text), so there the bytes that can do that are shown
// escaped instead, as ls and git do with file names.

// appendEscaped appends p with every byte or character that a terminal
// could act on shown as an escape: C0 control bytes and DEL as \xHH
// (but for tab and newline when keepLines is set); bytes that are not valid UTF-8 as \xHH; C1
// control characters and the Unicode bidirectional overrides (which
// reorder what is shown) as \uHHHH. Everything else is appended as it is.
func appendEscaped(dst, p []byte, keepLines bool) []byte {
	for len(p) > 0 {
		b := p[0]
		if b < utf8.RuneSelf {
			if (b < 0x20 && !(keepLines && (b == '\t' || b == '\n'))) || b == 0x7f {
				dst = appendHexByte(dst, b)
			} else {
				dst = append(dst, b)
			}
			p = p[1:]
			continue
		}
		r, size := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && size == 1:
			dst = appendHexByte(dst, b)
		case r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			dst = append(dst, `\u`...)
			dst = append(dst, "0000"[len(strconv.FormatInt(int64(r), 16)):]...)
			dst = strconv.AppendInt(dst, int64(r), 16)
		default:
			dst = append(dst, p[:size]...)
		}
		p = p[size:]
	}
	return dst
}

func appendHexByte(dst []byte, b byte) []byte {
	const digits = "0123456789abcdef"
	return append(dst, '\\', 'x', digits[b>>4], digits[b&15])
}

// escapeString is appendEscaped for a string that must stay on one line:
// a name from the system (a process's command) in a table.
func escapeString(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return string(appendEscaped(nil, []byte(s), false))
		}
	}
	return s
}

// appendValidUTF8 appends p with each ill-formed sequence replaced by
// U+FFFD the way Node's Buffer.toString() (the WHATWG decoder) does: one
// replacement per maximal invalid subpart, so a truncated 3-byte
// character is one U+FFFD, not two.
func appendValidUTF8(dst, p []byte) []byte {
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		if r != utf8.RuneError || size > 1 {
			dst = append(dst, p[:size]...)
			p = p[size:]
			continue
		}
		dst = utf8.AppendRune(dst, utf8.RuneError)
		p = p[maximalSubpart(p):]
	}
	return dst
}

// maximalSubpart returns the length of the invalid sequence at the start
// of p: the lead byte and the continuation bytes that could still have
// completed it (Unicode's "maximal subpart"), at least 1.
func maximalSubpart(p []byte) int {
	b := p[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // bounds of the second byte
	switch {
	case b >= 0xC2 && b <= 0xDF:
		need = 1
	case b >= 0xE0 && b <= 0xEF:
		need = 2
		if b == 0xE0 {
			lo = 0xA0
		} else if b == 0xED {
			hi = 0x9F
		}
	case b >= 0xF0 && b <= 0xF4:
		need = 3
		if b == 0xF0 {
			lo = 0x90
		} else if b == 0xF4 {
			hi = 0x8F
		}
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(p); n++ {
		if p[n] < lo || p[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}
