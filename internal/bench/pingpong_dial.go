package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"tcpkit"
)

// Closed-loop pingpong over connections that need Prepare (TLS), which
// the epoll generator's raw sockets cannot speak, runs on tcpkit's own
// Dial loops: each connection is a tcpkit.Conn whose events send the
// next request as the reply completes, with no goroutine woken per
// exchange. A goroutine per connection still dials (Dial blocks through
// the handshake) and waits for its connection to end, parked. A TLS
// server must be loaded by a generator at least as fast as it is, or the
// server's core idles and its cost per exchange looks higher than it is.

// dialLoops reports whether pingpong runs on tcpkit's Dial loops.
func (r *runner) dialLoops() bool {
	return r.cfg.Mode == PingPong && r.sched == nil && r.cfg.Prepare != nil && r.cfg.Network != "unix"
}

// A dialConn is one connection of dialPingpong: its exchange in flight.
// Its fields are its events', which never run at once.
type dialConn struct {
	r       *runner
	w       int
	msg     []byte
	rep     reply
	seq     int64
	start   time.Time
	waiting bool  // a request is out, its reply not complete
	ending  bool  // the run is over: our FIN is out
	failed  error // why the exchange in flight failed, if it did
}

// dialPingpong runs worker w's connection, reconnecting after a failure,
// until the run is over and the connection has ended.
func (r *runner) dialPingpong(w int) {
	prepare := r.cfg.Prepare
	d := tcpkit.Dialer{
		Timeout:   r.cfg.connectTimeout(),
		Handshake: func(_ context.Context, nc net.Conn) (net.Conn, error) { return prepare(nc) },
		ConnOptions: tcpkit.ConnOptions{
			ReadTimeout:   r.cfg.replyTimeout(), // a request is always out but at the end
			LingerTimeout: r.cfg.drainTimeout(), // after our FIN, the server's
		},
	}
	for !r.stopped() {
		dc := &dialConn{r: r, w: w, msg: r.msg.appendTo(nil, 0, w), rep: newReply(r.cfg)}
		c, err := d.Dial(r.drainCtx, r.cfg.network(), r.cfg.Addr, dc.events())
		if err != nil {
			seq := r.rec.connectSeq()
			if r.drainCtx.Err() != nil {
				seq = 1 // begun in the window, and cut by the drain's end: it counts
			}
			r.rec.fail(w, seq, r.opErr("connect", err))
			if !r.pause() {
				return
			}
			continue
		}
		select {
		case <-c.Done():
		case <-r.drainCtx.Done(): // the drain is over: what is in flight fails
			c.Close()
			<-c.Done()
		}
		if dc.ending || !r.pause() { // the run is over (its count reached), or the window
			return
		}
	}
}

func (dc *dialConn) events() tcpkit.Events {
	return tcpkit.Events{
		OnConnect: func(c *tcpkit.Conn) { dc.send(c) },
		OnData: func(c *tcpkit.Conn, p []byte) {
			if !dc.waiting {
				return // after our FIN: dropped until the server's
			}
			done, wrong := dc.rep.feed(p)
			switch {
			case wrong != nil:
				dc.fail(&OpError{Op: "reply", Err: wrong})
				c.Close()
			case done:
				dc.waiting = false
				dc.r.rec.record(dc.w, dc.seq, time.Since(dc.start), 0)
				dc.send(c)
			}
		},
		OnError: func(c *tcpkit.Conn, err error) {
			if errors.Is(err, tcpkit.ErrReadTimeout) {
				// The reply's timeout, counted from the last byte read
				// rather than from the request; bytes that came and are
				// not the reply make it a wrong one, as elsewhere.
				if wrong := dc.rep.lateWrong(); wrong != nil {
					dc.fail(&OpError{Op: "reply", Err: wrong})
					return
				}
				err = errTimedOut
			}
			dc.fail(dc.r.opErr("reply", err))
		},
		OnClose: func(c *tcpkit.Conn, hadError bool) {
			if dc.waiting { // the server closed, or the drain cut it, before the reply was complete
				err := error(io.ErrUnexpectedEOF)
				if h := dc.r.hardEnd(); !h.IsZero() && !time.Now().Before(h) {
					err = errTimedOut
				}
				dc.fail(dc.r.opErr("reply", err))
			}
		},
	}
}

// send starts the connection's next exchange, or ends it when the run is
// over.
func (dc *dialConn) send(c *tcpkit.Conn) {
	var own int64
	seq, _, ok := dc.r.take(dc.w, &own)
	if !ok {
		dc.ending = true
		c.End()
		return
	}
	if !dc.r.msg.static() {
		dc.msg = dc.r.msg.appendTo(dc.msg[:0], seq, dc.w)
	}
	dc.seq, dc.start, dc.waiting = seq, time.Now(), true
	dc.rep.reset()
	if _, err := c.Write(dc.msg); err != nil {
		dc.fail(dc.r.opErr("send", err))
		c.Close()
	}
}

// fail counts the exchange in flight as failed, once.
func (dc *dialConn) fail(err error) {
	if !dc.waiting || dc.failed != nil {
		return
	}
	dc.waiting, dc.failed = false, err
	dc.r.rec.fail(dc.w, dc.seq, err)
}
