package bench

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A runner is one run of Config: the workers, their pacing and stopping.
type runner struct {
	cfg   *Config
	msg   message
	rec   *recorder
	sched *schedule // nil for a closed loop

	stop   chan struct{} // closed when the window ends: nothing is issued after
	issued atomic.Int64  // measured exchanges issued, against Config.Exchanges

	t0    time.Time    // when the load began (warmup included): the schedule's origin
	paced atomic.Int64 // next slot on the shared schedule (Rate)

	// The end of the run: when the window ends, the exchanges in flight
	// get until hard (unix ns, 0 before) to finish, and connections
	// their server's FIN. drainCtx is cancelled then, which stops
	// connects in progress; slots hold each worker's connection, whose
	// deadlines are cut to hard.
	hard      atomic.Int64
	drainCtx  context.Context
	drainStop context.CancelFunc
	slots     []slot
}

func newRunner(cfg *Config) *runner {
	r := &runner{cfg: cfg, msg: parseMessage(cfg.Message), rec: newRecorder(), sched: newSchedule(cfg),
		stop: make(chan struct{}), slots: make([]slot, cfg.conns())}
	r.drainCtx, r.drainStop = context.WithCancel(context.Background())
	return r
}

// Why a run ended, in Result.EndedBy.
const (
	EndedByDuration = "duration" // Config.Duration passed
	EndedByCount    = "count"    // Config.Exchanges were done
	EndedBySignal   = "signal"   // the context was cancelled
	EndedByFailure  = "failure"  // every connection failed for good (stream does not reopen one)
)

// Run runs cfg until its duration or exchange count is reached, or ctx is
// done, and returns the result. progress, if not nil, is called about
// once a second with the last second's figures. A run ends within its
// duration plus Config.DrainTimeout, whatever the server does.
func Run(ctx context.Context, cfg Config, progress func(Point)) (*Result, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Message == "" {
		cfg.Message = DefaultMessage
	}
	r := newRunner(&cfg)
	defer r.drainStop()
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
	switch {
	case r.epollLoops():
		loops := min(runtime.GOMAXPROCS(0), cfg.conns())
		for l := range loops {
			wg.Go(func() { r.pingpongLoop(l, loops) })
		}
	case r.dialLoops():
		for w := range cfg.conns() {
			wg.Go(func() { r.dialPingpong(w) })
		}
	default:
		for w := range cfg.conns() {
			wg.Go(func() { r.work(w) })
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }() // workers finish by themselves after -n exchanges
	if cfg.Warmup > 0 {
		t := time.NewTimer(cfg.Warmup)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
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
	endedBy := EndedByCount
loop:
	for {
		select {
		case now := <-tick.C:
			p := r.rec.tick(now)
			if progress != nil {
				progress(p)
			}
		case <-deadline:
			endedBy = EndedByDuration
			break loop
		case <-done:
			if cfg.Exchanges == 0 || r.issued.Load() < cfg.Exchanges {
				endedBy = EndedByFailure
			}
			break loop
		case <-ctx.Done():
			endedBy = EndedBySignal
			break loop
		}
	}
	end := time.Now()
	r.endWindow(end)
	<-done // bounded: every blocking step of a worker ends by the drain's end
	r.rec.tick(time.Now())
	res := r.result(end, kernelDelta(before, readKernel())) // after the connections closed: their FINs, or resets, count
	res.EndedBy = endedBy
	return res, nil
}

// endWindow ends the measured window at now: nothing more is issued, and
// what is in flight has until the drain's end.
func (r *runner) endWindow(now time.Time) {
	r.rec.measuring.Store(false)
	hard := now.Add(r.cfg.drainTimeout())
	r.hard.Store(hard.UnixNano())
	close(r.stop)
	for i := range r.slots {
		r.slots[i].cut(hard)
	}
	t := time.AfterFunc(time.Until(hard), r.drainStop)
	go func() { <-r.drainCtx.Done(); t.Stop() }()
}

// stopped reports whether the window has ended.
func (r *runner) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// hardEnd returns when the drain ends, or the zero time while the window
// is open.
func (r *runner) hardEnd() time.Time {
	if ns := r.hard.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// next waits for the next exchange's turn and returns its number (0 in
// the warmup) and when it was due (the zero time in a closed loop), or ok
// false when the run is over.
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
	if r.stopped() {
		return 0, time.Time{}, false
	}
	if r.rec.measuring.Load() {
		seq = r.issued.Add(1)
		if n := r.cfg.Exchanges; n > 0 && seq > n {
			return 0, time.Time{}, false
		}
	}
	if r.sched == nil {
		return seq, time.Time{}, true
	}
	var slot int64
	if r.sched.perConn {
		slot = *own // each connection its own schedule
		*own++
	} else {
		slot = r.paced.Add(1) - 1 // one schedule shared by all connections
	}
	return seq, r.t0.Add(r.sched.at(slot, worker)), true
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
