package main

import (
	"encoding/hex"
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// batchDelay is how long the writer goroutine lets lines gather before it
// writes them: short enough that a person sees no lag.
const batchDelay = 2 * time.Millisecond

// maxPending bounds the output a lineWriter holds: past it, writers wait
// for the terminal or pipe to catch up rather than losing lines.
const maxPending = 1 << 20

// A lineWriter collects output lines in memory and writes them from its
// own goroutine, so that a connection's callback appends a line and moves
// on instead of making a write system call per message. Lines keep their
// order. Close writes what is left.
type lineWriter struct {
	w io.Writer

	mu      sync.Mutex
	cond    *sync.Cond // on mu: pending was written, or a writer waits
	pending []byte
	awake   bool // the writer goroutine was woken and has not written yet
	closed  bool
	done    chan struct{}
}

func newLineWriter(w io.Writer) *lineWriter {
	l := &lineWriter{w: w, done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go l.loop()
	return l
}

// lockRoom locks l once there is room for more output.
func (l *lineWriter) lockRoom() {
	l.mu.Lock()
	for len(l.pending) > maxPending && !l.closed {
		l.cond.Wait()
	}
}

// unlockWake tells the writer goroutine there is output, and unlocks.
// Only the first line after a write wakes it: it collects the lines that
// follow for a moment (batchDelay) and writes them together, so a busy
// server makes one write system call per batch, not one per message.
func (l *lineWriter) unlockWake() {
	if !l.awake {
		l.awake = true
		l.cond.Broadcast()
	}
	l.mu.Unlock()
}

// line appends the concatenation of parts and a newline.
func (l *lineWriter) line(parts ...string) {
	l.lockRoom()
	for _, p := range parts {
		l.pending = append(l.pending, p...)
	}
	l.pending = append(l.pending, '\n')
	l.unlockWake()
}

// Write appends p, which should end with a newline: for log/slog's
// handlers, which write one record per call.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.lockRoom()
	l.pending = append(l.pending, p...)
	l.unlockWake()
	return len(p), nil
}

// text appends prefix and p as a line of text: one trailing newline of p
// is dropped (the line gets its own), and invalid UTF-8 becomes U+FFFD, as
// Node's Buffer.toString() does.
func (l *lineWriter) text(prefix string, p []byte) {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		p = p[:n-1]
		if n > 1 && p[n-2] == '\r' {
			p = p[:n-2]
		}
	}
	l.lockRoom()
	l.pending = append(l.pending, prefix...)
	if utf8.Valid(p) {
		l.pending = append(l.pending, p...)
	} else {
		l.pending = appendValidUTF8(l.pending, p)
	}
	l.pending = append(l.pending, '\n')
	l.unlockWake()
}

// hexDump appends p as a hex dump with offsets from the start of p, in
// the layout of hexdump -C.
func (l *lineWriter) hexDump(p []byte) {
	l.lockRoom()
	l.pending = append(l.pending, hex.Dump(p)...)
	l.unlockWake()
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

func (l *lineWriter) loop() {
	defer close(l.done)
	var buf []byte
	l.mu.Lock()
	for {
		for len(l.pending) == 0 && !l.closed {
			l.cond.Wait()
		}
		if len(l.pending) == 0 { // closed and all written
			l.mu.Unlock()
			return
		}
		if !l.closed && len(l.pending) < maxPending/16 {
			l.mu.Unlock()
			time.Sleep(batchDelay) // let more lines gather
			l.mu.Lock()
		}
		l.awake = false
		buf, l.pending = l.pending, buf[:0]
		l.cond.Broadcast() // room again for waiting writers
		l.mu.Unlock()
		l.w.Write(buf) // a failing terminal must not stop the server
		l.mu.Lock()
	}
}

// Close writes all pending lines and stops the writer goroutine.
func (l *lineWriter) Close() {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	<-l.done
}
