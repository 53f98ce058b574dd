package bench

import (
	"errors"
	"io"
	"net"
	"time"
)

// The workers that run a goroutine per connection: pingpong paced or
// with a PROXY header, and oneshot. (Closed-loop pingpong runs on epoll
// loops on Linux: pingpong_linux.go.)

// dial connects for worker w, retrying after a short pause on failure
// (each failure counted while the window is open) until it succeeds or
// the window has ended.
func (r *runner) dial(w int) net.Conn {
	d := net.Dialer{Timeout: r.cfg.connectTimeout()}
	for {
		nc, err := d.DialContext(r.drainCtx, r.cfg.network(), r.cfg.Addr)
		if err == nil {
			if nc, err = r.prepare(nc); err == nil {
				return nc
			}
		}
		seq := r.rec.connectSeq()
		if r.drainCtx.Err() != nil {
			seq = 1 // begun in the window, and cut by the drain's end: it counts
		}
		r.rec.fail(w, seq, r.opErr("connect", err))
		if !r.pause() {
			return nil
		}
	}
}

// prepare sends Config.Header and runs Config.Prepare on a new
// connection, and returns the connection to use (TLS wraps it), closing
// it on failure. The header goes in a write of its own here: these
// connections have a goroutine each, and are not the fastest anyway.
func (r *runner) prepare(nc net.Conn) (net.Conn, error) {
	if r.cfg.Header != nil {
		if _, err := nc.Write(r.cfg.Header(nc.LocalAddr(), nc.RemoteAddr())); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if r.cfg.Prepare == nil {
		return nc, nil
	}
	pc, err := r.cfg.Prepare(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return pc, nil
}

// pingpong: one request outstanding per connection.
func (r *runner) pingpong(w int) {
	var nc net.Conn
	msg := r.msg.appendTo(nil, 0, w)
	buf := make([]byte, 64<<10)
	rep := newReply(r.cfg)
	var own int64
	var moveAt time.Time
	for {
		seq, due, ok := r.next(w, &own)
		if !ok {
			break
		}
		if nc == nil {
			if nc = r.dial(w); nc == nil {
				break // the window ended while connecting: nothing was sent
			}
			r.hold(w, nc)
			moveAt = time.Time{}
		}
		if !r.msg.static() {
			msg = r.msg.appendTo(msg[:0], seq, w)
		}
		start := time.Now()
		if !due.IsZero() {
			start = due // latency from when it was due: a stall shows
		}
		// The reply deadline moves only every half timeout: a deadline
		// per exchange would cost a timer update each time.
		if now := time.Now(); now.After(moveAt) {
			moveAt = now.Add(r.cfg.replyTimeout() / 2)
			r.deadline(w, nc, now.Add(r.cfg.replyTimeout()), bothDeadlines)
		}
		if err := r.exchange(nc, msg, buf, &rep); err != nil {
			r.rec.fail(w, seq, err)
			r.hold(w, nil)
			nc.Close()
			nc = nil
			continue
		}
		r.rec.record(w, seq, time.Since(start), 0)
	}
	if nc != nil {
		r.finish(w, nc)
	}
}

// exchange sends msg and reads the reply into buf, as rep says where it
// ends and whether it is right.
func (r *runner) exchange(nc net.Conn, msg, buf []byte, rep *reply) error {
	if _, err := nc.Write(msg); err != nil {
		return r.opErr("send", err)
	}
	rep.reset()
	for {
		n, err := nc.Read(buf)
		if n > 0 {
			done, wrong := rep.feed(buf[:n])
			if wrong != nil {
				return &OpError{Op: "reply", Err: wrong}
			}
			if done {
				return nil
			}
		}
		switch {
		case err == nil:
		case isTimeout(err):
			if wrong := rep.lateWrong(); wrong != nil {
				return &OpError{Op: "reply", Err: wrong}
			}
			return r.opErr("reply", err)
		case errors.Is(err, io.EOF):
			return &OpError{Op: "reply", Err: io.ErrUnexpectedEOF}
		default:
			return r.opErr("reply", err)
		}
	}
}

// oneshot: a new connection per exchange, read to the server's FIN.
func (r *runner) oneshot(w int) {
	d := net.Dialer{Timeout: r.cfg.connectTimeout()}
	msg := r.msg.appendTo(nil, 0, w)
	buf := make([]byte, 64<<10)
	whole := newWholeReply(r.cfg)
	var own int64
	for {
		seq, due, ok := r.next(w, &own)
		if !ok {
			return
		}
		if !r.msg.static() {
			msg = r.msg.appendTo(msg[:0], seq, w)
		}
		start := time.Now()
		if !due.IsZero() {
			start = due
		}
		nc, err := d.DialContext(r.drainCtx, r.cfg.network(), r.cfg.Addr)
		if err == nil {
			nc, err = r.prepare(nc)
		}
		if err != nil {
			r.rec.fail(w, seq, r.opErr("connect", err))
			if !r.pause() { // a refused server or EMFILE must not make it spin
				return
			}
			continue
		}
		connected := time.Since(start)
		r.hold(w, nc)
		r.deadline(w, nc, time.Now().Add(r.cfg.replyTimeout()), bothDeadlines)
		whole.reset()
		err = r.readToFIN(nc, msg, buf, &whole)
		r.hold(w, nil)
		nc.Close() // after the server's FIN, with nothing unread: a FIN, no RST
		if err != nil {
			r.rec.fail(w, seq, err)
			continue
		}
		r.rec.record(w, seq, time.Since(start), connected)
	}
}

// readToFIN sends msg and reads until the server's FIN, then checks the
// whole reply.
func (r *runner) readToFIN(nc net.Conn, msg, buf []byte, whole *wholeReply) error {
	if _, err := nc.Write(msg); err != nil {
		return r.opErr("send", err)
	}
	for {
		n, err := nc.Read(buf)
		whole.feed(buf[:n])
		switch {
		case errors.Is(err, io.EOF) && whole.total == 0:
			return &OpError{Op: "reply", Err: io.ErrUnexpectedEOF} // closed without a reply
		case errors.Is(err, io.EOF):
			if wrong := whole.check(); wrong != nil {
				return &OpError{Op: "reply", Err: wrong}
			}
			return nil
		case err != nil:
			return r.opErr("reply", err)
		}
	}
}
