package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// The end of a run, for the workers that run a goroutine per connection:
// when the window ends nothing more is issued; an exchange in flight
// has until the drain's end (Config.DrainTimeout later), when its
// deadlines are cut; and each connection ends with a FIN, then reads
// what the server still sends up to the server's own FIN, so that
// nothing unread makes the close send a RST.

// A slot is the connection a worker has open, and its deadlines, so that
// the drain's end can cut them short.
type slot struct {
	mu     sync.Mutex
	nc     net.Conn  // nil while the worker has none
	rd, wd time.Time // nc's read and write deadlines; zero for none
}

// hold registers nc as worker w's connection (nil: none).
func (r *runner) hold(w int, nc net.Conn) {
	s := &r.slots[w]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nc, s.rd, s.wd = nc, time.Time{}, time.Time{}
	if h := r.hardEnd(); nc != nil && !h.IsZero() {
		s.rd, s.wd = h, h
		nc.SetDeadline(h)
	}
}

// Which deadline to set.
const (
	readDeadline = 1 << iota
	writeDeadline
	bothDeadlines = readDeadline | writeDeadline
)

// deadline sets worker w's deadlines (which) on nc to t, or to the
// drain's end if that comes first.
func (r *runner) deadline(w int, nc net.Conn, t time.Time, which int) {
	s := &r.slots[w]
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := r.hardEnd(); !h.IsZero() && h.Before(t) {
		t = h
	}
	if which&readDeadline != 0 {
		s.rd = t
		nc.SetReadDeadline(t)
	}
	if which&writeDeadline != 0 {
		s.wd = t
		nc.SetWriteDeadline(t)
	}
}

// cut moves the slot's deadlines to hard where they are later, or unset.
func (s *slot) cut(hard time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nc == nil {
		return
	}
	if s.rd.IsZero() || s.rd.After(hard) {
		s.rd = hard
		s.nc.SetReadDeadline(hard)
	}
	if s.wd.IsZero() || s.wd.After(hard) {
		s.wd = hard
		s.nc.SetWriteDeadline(hard)
	}
}

// finish ends worker w's connection cleanly: a FIN, then what the server
// still sends is read and dropped until its FIN, for at most the drain
// timeout, then the close.
func (r *runner) finish(w int, nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	r.deadline(w, nc, time.Now().Add(r.cfg.drainTimeout()), readDeadline)
	io.Copy(io.Discard, nc)
	r.hold(w, nil)
	nc.Close()
}

// pause waits a moment after a failure, so that a refused or full server
// does not make a worker spin; it returns false if the window ended.
func (r *runner) pause() bool {
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-r.stop:
		return false
	case <-t.C:
		return true
	}
}

// opErr wraps err as step op of an exchange, or as "end" when it is a
// timeout of the drain's end.
func (r *runner) opErr(op string, err error) error {
	if h := r.hardEnd(); !h.IsZero() && isTimeout(err) && !time.Now().Before(h) {
		op = "end"
	}
	return &OpError{Op: op, Err: err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) // a connect the drain's end stopped
}
