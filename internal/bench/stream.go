package bench

import (
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// stream writes chunks as fast as the server takes them; each chunk
// written counts as an exchange, and its latency is how long the write
// took. A reader takes what comes back alongside: with Echo it counts
// it (the throughput is then the echo's), without it drops it, since
// bytes left unread would make the close send a RST. A connection that
// fails is not reopened. At the end it sends a FIN and reads on until
// the server's FIN or the drain's end: with Echo, an echo that falls
// short of what was sent is one error for the connection.
func (r *runner) stream(w int) {
	nc := r.dial(w)
	if nc == nil {
		return
	}
	r.hold(w, nc)
	var failed atomic.Bool // the connection's one error is counted
	var echoed atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := nc.Read(buf)
			echoed.Add(int64(n))
			if r.cfg.Echo {
				r.rec.addBytes(w, n)
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	chunk := make([]byte, r.cfg.chunkSize())
	copy(chunk, r.msg.appendTo(nil, 0, w))
	var own, sent, lastSeq int64
	for {
		seq, due, ok := r.next(w, &own)
		if !ok {
			break
		}
		lastSeq = max(lastSeq, seq)
		start := time.Now()
		if !due.IsZero() {
			start = due
		}
		r.deadline(w, nc, time.Now().Add(r.cfg.replyTimeout()), writeDeadline)
		n, err := nc.Write(chunk)
		sent += int64(n)
		if !r.cfg.Echo {
			r.rec.addBytes(w, n)
		}
		if err != nil {
			if failed.CompareAndSwap(false, true) {
				r.rec.fail(w, seq, r.opErr("send", err))
			}
			break
		}
		r.rec.record(w, seq, time.Since(start), 0)
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	r.deadline(w, nc, time.Now().Add(r.cfg.drainTimeout()), readDeadline)
	err := <-readErr
	r.hold(w, nil)
	nc.Close()
	if failed.Load() || lastSeq == 0 { // counted already, or none of it was measured
		return
	}
	switch {
	case !errors.Is(err, io.EOF) && !isTimeout(err): // a reset, most likely
		r.rec.fail(w, lastSeq, &OpError{Op: "reply", Err: err})
	case r.cfg.Echo && echoed.Load() < sent:
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the server closed before echoing it all
		}
		r.rec.fail(w, lastSeq, &OpError{Op: "echo", Err: err})
	}
}
