package watch

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// arrowWidth is the width of the ladder between the client's bar and the
// server's; a longer label makes its arrow longer.
const arrowWidth = 50

// previewRunes is how many characters of a payload a label shows.
const previewRunes = 20

// colours are the ANSI colours of connections 1, 2, 3...: on a terminal
// each connection's lines have their own.
var colours = []string{"36", "33", "35", "32", "34", "31"}

// Label is the text on a step's arrow: flags, relative numbers, and for
// data a preview and the length: `PSH-ACK seq=1 ack=1 "testing~" 8 B`.
func Label(st Step) string {
	var b strings.Builder
	b.WriteString(st.Seg.Flags.String())
	fmt.Fprintf(&b, " seq=%d", st.Seq)
	if st.Seg.Flags&ACK != 0 {
		fmt.Fprintf(&b, " ack=%d", st.Ack)
	}
	if st.Seg.Window == 0 && st.Seg.Flags&RST == 0 {
		b.WriteString(" win=0")
	}
	if st.Seg.Len > 0 {
		fmt.Fprintf(&b, " %s %d B", Preview(st.Seg.Payload, st.Seg.Len), st.Seg.Len)
	}
	return b.String()
}

// Preview shows the start of a payload of n bytes, quoted, so that it
// cannot drive a terminal: printable characters as they are, \n \r \t
// \" \\ escaped, and every other byte, control bytes and invalid UTF-8
// among them, as \xHH. "..." after the closing quote says there is more.
func Preview(p []byte, n int) string {
	var b strings.Builder
	b.WriteByte('"')
	shown := 0
	i := 0
	for i < len(p) && shown < previewRunes {
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError && size <= 1, !unicode.IsPrint(r):
			for _, c := range p[i : i+max(size, 1)] {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		default:
			b.WriteRune(r)
		}
		i += max(size, 1)
		shown++
	}
	b.WriteByte('"')
	if i < n {
		b.WriteString("...")
	}
	return b.String()
}

// A Text draws steps as ladders in a terminal, one line per segment,
// each line starting with its connection's number.
type Text struct {
	Color bool // colour each connection's lines (for a terminal)
}

// Lines returns the lines that draw st: the connection's header first
// if st is its first segment, then the segment's line.
func (t Text) Lines(st Step) []string {
	id := fmt.Sprintf("#%-3d", st.Conn)
	on, off := "", ""
	if t.Color {
		on, off = "\x1b["+colours[(st.Conn-1)%len(colours)]+"m", "\x1b[0m"
	}
	var lines []string
	const pad = "            " // under the time column: "  0.000000  "
	if st.First {
		left, right := "client "+st.Client.String(), "server "+st.Server.String()
		gap := max(arrowWidth+1-len(left)-len(right), 1)
		lines = append(lines, on+id+pad+left+strings.Repeat(" ", gap)+right+off)
	}
	label := Label(st)
	fill := max(arrowWidth-len(label)-4, 2)
	var arrow string
	if st.FromClient {
		arrow = "|--" + label + strings.Repeat("-", fill) + ">|"
	} else {
		arrow = "|<" + strings.Repeat("-", fill) + label + "--|"
	}
	line := fmt.Sprintf("%s%s%10.6f  %s%s", on, id, st.Elapsed.Seconds(), arrow, off)
	if len(st.Notes) > 0 {
		line += "  " + strings.Join(st.Notes, "; ")
	}
	return append(lines, line)
}
