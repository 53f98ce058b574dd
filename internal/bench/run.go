package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A runner is one run of Config: the workers, their pacing and stopping.
type runner struct {
	cfg *Config
	msg message
	rec *recorder

	stop   chan struct{} // closed when the run is over
	issued atomic.Int64  // measured exchanges started, against Config.Exchanges

	t0       time.Time    // when the load began (warmup included): the rate schedule's origin
	interval int64        // ns between exchanges on the schedule; 0 for a closed loop
	paced    atomic.Int64 // next slot on the shared schedule (Rate)
}

// Run runs cfg until its duration or exchange count is reached, or ctx is
// done, and returns the result. progress, if not nil, is called about
// once a second with the last second's figures.
func Run(ctx context.Context, cfg Config, progress func(Point)) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Message == "" {
		cfg.Message = DefaultMessage
	}
	r := &runner{cfg: &cfg, msg: parseMessage(cfg.Message), rec: newRecorder(), stop: make(chan struct{})}
	switch {
	case cfg.Rate > 0:
		r.interval = int64(float64(time.Second) / cfg.Rate)
	case cfg.RatePerConn > 0:
		r.interval = int64(float64(time.Second) / cfg.RatePerConn)
	}
	if cfg.Mode == Idle {
		return r.idle(ctx)
	}

	var wg sync.WaitGroup
	var before map[string]int64
	startMeasuring := func() {
		before = readKernel()
		r.rec.start = time.Now()
		r.rec.measuring.Store(true)
	}
	if cfg.Warmup <= 0 {
		startMeasuring() // before the first exchange, so that -n counts them all
	}
	r.t0 = time.Now()
	if r.epollLoops() {
		loops := min(runtime.GOMAXPROCS(0), cfg.conns())
		for l := range loops {
			wg.Go(func() { r.pingpongLoop(l, loops) })
		}
	} else {
		for w := range cfg.conns() {
			wg.Go(func() { r.work(w) })
		}
	}
	if cfg.Warmup > 0 {
		select {
		case <-time.After(cfg.Warmup):
		case <-ctx.Done():
		}
		startMeasuring()
	}
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }() // workers finish by themselves after -n exchanges
loop:
	for {
		select {
		case now := <-tick.C:
			p := r.rec.tick(now)
			if progress != nil {
				progress(p)
			}
		case <-deadline:
			break loop
		case <-done:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	end := time.Now()
	r.rec.measuring.Store(false) // exchanges in flight now are not counted
	close(r.stop)
	<-done
	r.rec.tick(end)
	return r.result(end, kernelDelta(before, readKernel())), nil
}

// next waits for the next exchange's turn and returns its number and when
// it was due (the zero time in a closed loop), or ok false when the run is
// over.
func (r *runner) next(worker int, own *int64) (seq int64, due time.Time, ok bool) {
	if seq, due, ok = r.take(worker, own); !ok {
		return 0, time.Time{}, false
	}
	if wait := time.Until(due); !due.IsZero() && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.stop:
			t.Stop()
			return 0, time.Time{}, false
		}
	}
	return seq, due, true
}

// take is next without the wait: it returns the next exchange's number
// and when it is due, which may be later.
func (r *runner) take(worker int, own *int64) (seq int64, due time.Time, ok bool) {
	select {
	case <-r.stop:
		return 0, time.Time{}, false
	default:
	}
	if r.rec.measuring.Load() {
		seq = r.issued.Add(1)
		if n := r.cfg.Exchanges; n > 0 && seq > n {
			return 0, time.Time{}, false
		}
	}
	if r.interval == 0 {
		return seq, time.Time{}, true
	}
	var slot int64
	if r.cfg.Rate > 0 {
		slot = r.paced.Add(1) - 1 // one schedule shared by all connections
	} else {
		slot = *own // each connection its own schedule, staggered
		*own++
	}
	return seq, r.t0.Add(time.Duration(slot*r.interval + int64(worker)*r.stagger())), true
}

// stagger spreads the per-connection schedules over one interval, so
// that --rate-per-conn does not send from every connection at once.
func (r *runner) stagger() int64 {
	if r.cfg.RatePerConn == 0 {
		return 0
	}
	return r.interval / int64(r.cfg.conns())
}

// goroutineWorkers runs connections l, l+loops... on a goroutine each,
// and waits for them.
func (r *runner) goroutineWorkers(l, loops int) {
	var wg sync.WaitGroup
	for w := l; w < r.cfg.conns(); w += loops {
		wg.Go(func() { r.work(w) })
	}
	wg.Wait()
}

// work runs one connection's worth of load.
func (r *runner) work(w int) {
	switch r.cfg.Mode {
	case Oneshot:
		r.oneshot(w)
	case PingPong:
		r.pingpong(w)
	case Stream:
		r.stream(w)
	}
}

// dial connects, retrying after a short pause on failure (each failure
// counted) until it succeeds or the run is over.
func (r *runner) dial(w int) net.Conn {
	d := net.Dialer{Timeout: r.cfg.connectTimeout()}
	for {
		nc, err := d.Dial("tcp", r.cfg.Addr)
		if err == nil {
			if err = r.prepare(nc); err == nil {
				return nc
			}
		}
		r.rec.fail(w, 1, err) // a failed connect counts while measuring
		select {
		case <-r.stop:
			return nil
		case <-time.After(10 * time.Millisecond): // a refused or full server: do not spin
		}
	}
}

// prepare runs Config.Prepare on a new connection, closing it on failure.
func (r *runner) prepare(nc net.Conn) error {
	if r.cfg.Prepare == nil {
		return nil
	}
	if err := r.cfg.Prepare(nc); err != nil {
		nc.Close()
		return err
	}
	return nil
}

// pingpong: one request outstanding per connection.
func (r *runner) pingpong(w int) {
	var nc net.Conn
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	msg := r.msg.appendTo(nil, 0, w)
	buf := make([]byte, max(64<<10, len(r.cfg.Expect), r.cfg.ExpectLen))
	var own int64
	var deadlineAt time.Time
	for {
		seq, due, ok := r.next(w, &own)
		if !ok {
			return
		}
		if nc == nil {
			if nc = r.dial(w); nc == nil {
				return
			}
			deadlineAt = time.Time{}
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
		if now := time.Now(); now.After(deadlineAt) {
			deadlineAt = now.Add(r.cfg.replyTimeout() / 2)
			nc.SetDeadline(now.Add(r.cfg.replyTimeout()))
		}
		err := r.exchange(nc, msg, buf)
		if err != nil {
			r.rec.fail(w, seq, err)
			nc.Close()
			nc = nil
			continue
		}
		r.rec.record(w, seq, time.Since(start), 0)
	}
}

// exchange sends msg and reads the reply into buf.
func (r *runner) exchange(nc net.Conn, msg, buf []byte) error {
	if _, err := nc.Write(msg); err != nil {
		return err
	}
	want := len(r.cfg.Expect)
	if r.cfg.ExpectLen > 0 {
		want = r.cfg.ExpectLen
	}
	if want == 0 { // the first chunk is the reply
		_, err := nc.Read(buf)
		return err
	}
	got := 0
	for got < want {
		n, err := nc.Read(buf[got:want])
		got += n
		if err != nil {
			return err
		}
	}
	if !r.cfg.replyOK(buf[:got]) {
		return errWrong
	}
	return nil
}

// oneshot: a new connection per exchange, read to the server's FIN.
func (r *runner) oneshot(w int) {
	d := net.Dialer{Timeout: r.cfg.connectTimeout()}
	msg := r.msg.appendTo(nil, 0, w)
	buf := make([]byte, 64<<10)
	reply := make([]byte, 0, 64)
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
		nc, err := d.Dial("tcp", r.cfg.Addr)
		if err == nil {
			err = r.prepare(nc)
		}
		if err != nil {
			r.rec.fail(w, seq, err)
			continue
		}
		connected := time.Since(start)
		nc.SetDeadline(time.Now().Add(r.cfg.replyTimeout()))
		var total int
		reply, total, err = r.readToFIN(nc, msg, buf, reply[:0])
		nc.Close()
		if err == nil && !r.oneshotOK(reply, total) {
			err = errWrong
		}
		if err != nil {
			r.rec.fail(w, seq, err)
			continue
		}
		r.rec.record(w, seq, time.Since(start), connected)
	}
}

// readToFIN sends msg and reads until the server's FIN. It returns the
// start of the reply, as much as an --expect check needs, and its length.
func (r *runner) readToFIN(nc net.Conn, msg, buf, reply []byte) ([]byte, int, error) {
	if _, err := nc.Write(msg); err != nil {
		return reply, 0, err
	}
	total := 0
	for {
		n, err := nc.Read(buf)
		total += n
		if keep := len(r.cfg.Expect) + 1 - len(reply); r.cfg.Expect != nil && keep > 0 {
			reply = append(reply, buf[:min(n, keep)]...)
		}
		switch {
		case errors.Is(err, io.EOF) && total == 0:
			return reply, 0, io.ErrUnexpectedEOF // closed without a reply
		case errors.Is(err, io.EOF):
			return reply, total, nil
		case err != nil:
			return reply, total, err
		}
	}
}

// oneshotOK checks a whole reply against --expect.
func (r *runner) oneshotOK(reply []byte, total int) bool {
	switch {
	case r.cfg.Expect != nil:
		return bytes.Equal(reply, r.cfg.Expect)
	case r.cfg.ExpectLen > 0:
		return total == r.cfg.ExpectLen
	}
	return true
}
