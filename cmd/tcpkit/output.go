package main

import (
	"bytes"
	"encoding/hex"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// batchDelay is how long the writer goroutine lets lines gather before it
// writes them: short enough that a person sees no lag.
const batchDelay = 2 * time.Millisecond

// maxPending bounds the output a lineWriter holds. Past it, a writer that
// drops (serve's) drops lines; one that does not (connect's) waits for
// the terminal or pipe to catch up.
const maxPending = 1 << 20

// A lineWriter collects output lines in memory and writes them from its
// own goroutine, so that a connection's callback appends a line and moves
// on instead of making a write system call per message. Lines keep their
// order.
//
// Whoever reads the output can stop reading (a pipe nobody drains, a
// terminal on hold) or go away (a closed pipe: EPIPE). Neither may hold
// the program up: a lineWriter with drop set never makes a caller wait,
// Close gives up after a bound, and a failed write turns the rest of the
// output into drops and is reported once through onBroken.
type lineWriter struct {
	w        io.Writer
	drop     bool        // past maxPending, drop lines rather than wait for room
	escape   bool        // text shows the bytes a terminal acts on escaped
	onDrop   func()      // called once, at the first dropped line
	onBroken func(error) // called once, when a write fails

	dropped atomic.Int64 // lines dropped: no room, or the output broke

	mu      sync.Mutex
	cond    *sync.Cond // on mu: pending was written, or a writer waits
	pending []byte
	awake   bool // the writer goroutine was woken and has not written yet
	closed  bool
	broken  bool // a write failed: everything from now on is dropped
	full    bool // a line was dropped for want of room (onDrop was called)
	done    chan struct{}
}

// lineOptions are a lineWriter's policies; the zero value waits for room,
// prints text as the seed does, and reports nothing.
type lineOptions struct {
	drop     bool
	escape   bool
	onDrop   func()
	onBroken func(error)
}

func newLineWriter(w io.Writer, o lineOptions) *lineWriter {
	l := &lineWriter{w: w, drop: o.drop, escape: o.escape, onDrop: o.onDrop, onBroken: o.onBroken, done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go l.loop()
	return l
}

// lockRoom locks l once there is room for more output, and reports
// whether the line may be added. When it may not (no room and l drops,
// or the output broke), l is unlocked and the line counted as dropped.
func (l *lineWriter) lockRoom() bool {
	l.mu.Lock()
	for len(l.pending) > maxPending && !l.closed && !l.broken && !l.drop {
		l.cond.Wait()
	}
	switch {
	case l.broken:
		l.mu.Unlock()
		l.dropped.Add(1)
		return false
	case len(l.pending) > maxPending && !l.closed:
		first := !l.full
		l.full = true
		l.mu.Unlock()
		l.dropped.Add(1)
		if first && l.onDrop != nil {
			l.onDrop()
		}
		return false
	}
	return true
}

// Dropped returns how many lines were dropped.
func (l *lineWriter) Dropped() int64 { return l.dropped.Load() }

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
	if !l.lockRoom() {
		return
	}
	for _, p := range parts {
		l.pending = append(l.pending, p...)
	}
	l.pending = append(l.pending, '\n')
	l.unlockWake()
}

// Write appends p, which should end with a newline: for log/slog's
// handlers and the tracer, which write one record per call.
func (l *lineWriter) Write(p []byte) (int, error) {
	if l.lockRoom() {
		l.pending = append(l.pending, p...)
		l.unlockWake()
	}
	return len(p), nil
}

// text appends prefix and p as a line of text: one trailing newline of p
// is dropped (the line gets its own), and invalid UTF-8 becomes U+FFFD, as
// Node's Buffer.toString() does; or, when l escapes, what a terminal would
// act on is shown escaped (see appendEscaped).
func (l *lineWriter) text(prefix string, p []byte) {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		p = p[:n-1]
		if n > 1 && p[n-2] == '\r' {
			p = p[:n-2]
		}
	}
	if !l.lockRoom() {
		return
	}
	l.pending = append(l.pending, prefix...)
	switch {
	case l.escape:
		l.pending = appendEscaped(l.pending, p, true)
	case utf8.Valid(p):
		l.pending = append(l.pending, p...)
	default:
		l.pending = appendValidUTF8(l.pending, p)
	}
	l.pending = append(l.pending, '\n')
	l.unlockWake()
}

// hexDump appends p as a hex dump with offsets from the start of p, in
// the layout of hexdump -C. It shows only printable ASCII as itself.
func (l *lineWriter) hexDump(p []byte) {
	if !l.lockRoom() {
		return
	}
	l.pending = append(l.pending, hex.Dump(p)...)
	l.unlockWake()
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
		_, err := l.w.Write(buf)
		l.mu.Lock()
		if err != nil {
			l.broke(err, bytes.Count(buf, []byte{'\n'}))
			return
		}
	}
}

// broke stops the output for good after a failed write of lost lines:
// those, what is pending and everything after it are dropped. It is
// called with l.mu held and returns with it released.
func (l *lineWriter) broke(err error, lost int) {
	l.broken = true
	lost += bytes.Count(l.pending, []byte{'\n'})
	l.pending = nil
	l.cond.Broadcast()
	l.mu.Unlock()
	l.dropped.Add(int64(lost))
	if l.onBroken != nil {
		l.onBroken(err)
	}
}

// Close writes the pending lines and stops the writer goroutine, waiting
// at most timeout for the reader to take them. It reports whether all
// were written; if not, the writer goroutine is left blocked in its
// write, which the process's exit ends.
func (l *lineWriter) Close(timeout time.Duration) bool {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.broken
	case <-t.C:
		return false
	}
}
