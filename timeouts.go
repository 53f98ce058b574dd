package tcpkit

import (
	"fmt"
	"math"
	"time"
)

// Every timeout of a connection, for every engine: the idle timeout
// (Node's setTimeout: nothing read or written), the read timeout (nothing
// read, while reading), the stall limit of queued output (WriteTimeout,
// and LingerTimeout once ending), the linger after our FIN, and
// Shutdown's first-message grace. The engine keeps one timer per
// connection (transport.schedule) and calls expire when it is due.
// Activity does not move the timer, which would cost a heap operation
// or a system call per read or write: expire looks at the last activity
// and either acts or schedules the next time to look.

// SetTimeout sets the idle timeout of this connection, overriding
// ConnOptions.IdleTimeout; zero turns it off. The idle period restarts now.
func (c *Conn) SetTimeout(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := monoNow()
	c.timeout.Store(int64(d))
	c.lastActive.Store(now)
	if d > 0 {
		c.flags.set(fTimerArmed)
	} else {
		c.flags.clear(fTimerArmed)
	}
	if d > 0 {
		c.t.schedule(now + int64(d))
	}
}

// touch records activity for the idle timeout, and re-arms it if it fired.
func (c *Conn) touch() {
	d := c.timeout.Load()
	if d == 0 {
		return
	}
	now := monoNow()
	c.lastActive.Store(now)
	if !c.flags.has(fTimerArmed) && c.flags.setIf(fTimerArmed) {
		c.t.schedule(now + d) // only after a timeout fired: the next idle period counts
	}
}

// reading reports whether the connection is reading, so that the read
// timeout runs: not paused or backlogged, and the peer's FIN not in.
func (c *Conn) readingLocked() bool { return !c.flags.has(fPeerEnded) && !c.mustWait() }

// expire acts on the timeouts that are due at now, then schedules the
// next look.
func (c *Conn) expire(now int64) {
	if c.flags.has(fDead) {
		return
	}
	c.mu.Lock()
	lingered := c.flags.has(fFinDone) && !c.flags.has(fPeerEnded) && now-c.mark >= int64(c.opt.lingerTimeout())
	var stalled error
	if limit := c.stallLimitLocked(); c.flags.has(fFlushing) && limit > 0 && now-c.mark >= int64(limit) {
		stalled = c.stallErrorLocked(limit)
	}
	rt := c.opt.ReadTimeout
	readTimedOut := rt > 0 && c.readingLocked() && now-c.lastRead.Load() >= int64(rt)
	graceOver := c.x != nil && c.x.grace > 0 && now >= c.x.grace
	if graceOver {
		c.x.grace = 0
	}
	c.mu.Unlock()
	switch {
	case lingered:
		c.closeWith(nil)
		return
	case stalled != nil:
		c.closeWith(stalled)
		return
	case readTimedOut && c.readTimeout(rt):
		return
	}
	if graceOver && c.flags.take(fEndOnFirst) {
		c.endNow()
	}
	if d := c.timeout.Load(); d > 0 && c.flags.has(fTimerArmed) && now-c.lastActive.Load() >= d {
		c.idleTimeout()
	}
	c.rearm(monoNow())
}

// readTimeout closes the connection if nothing has been read for rt
// while it was reading, and reports whether it did. Like the idle
// timeout it decides between callbacks: a callback running when the
// timer fired may have paused the connection, or be about to return to
// reading, and the engines read again only once it returns.
func (c *Conn) readTimeout(rt time.Duration) bool {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	due := c.readingLocked() && monoNow()-c.lastRead.Load() >= int64(rt)
	c.mu.Unlock()
	if due {
		c.closeWith(fmt.Errorf("%w: nothing received for %v", ErrReadTimeout, rt))
	}
	return due
}

// idleTimeout fires the idle timeout if it is still due. It decides
// between callbacks, under evMu, so that a callback running when the
// timer fired (OnConnect turning the timeout off, OnData's activity) is
// seen: the std engine's timer fires on a goroutine of its own.
func (c *Conn) idleTimeout() {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	fire := !c.flags.has(fDead) && c.idleDueLocked(monoNow())
	c.mu.Unlock()
	if !fire {
		return
	}
	c.trace(TraceTimeout, 0, nil)
	if c.ev.OnTimeout == nil {
		c.End()
		return
	}
	defer c.recoverPanic()
	c.ev.OnTimeout(c)
}

// rearm schedules the earliest timeout still to come, if any.
func (c *Conn) rearm(now int64) {
	if c.flags.has(fDead) {
		return
	}
	next := int64(math.MaxInt64)
	c.mu.Lock()
	if c.flags.has(fFinDone) && !c.flags.has(fPeerEnded) {
		next = min(next, c.mark+int64(c.opt.lingerTimeout()))
	}
	if limit := c.stallLimitLocked(); c.flags.has(fFlushing) && limit > 0 {
		next = min(next, c.mark+int64(limit))
	}
	if d := c.timeout.Load(); d > 0 && c.flags.has(fTimerArmed) {
		next = min(next, c.lastActive.Load()+d)
	}
	if rt := c.opt.ReadTimeout; rt > 0 && c.readingLocked() {
		next = min(next, c.lastRead.Load()+int64(rt))
	}
	if c.x != nil && c.x.grace > 0 {
		next = min(next, c.x.grace)
	}
	c.mu.Unlock()
	if next != math.MaxInt64 {
		c.t.schedule(max(next, now))
	}
}

// idleDueLocked reports whether the idle timeout is due, and disarms it
// if so: it fires once per idle period.
func (c *Conn) idleDueLocked(now int64) bool {
	if d := c.timeout.Load(); d > 0 && c.flags.has(fTimerArmed) && now-c.lastActive.Load() >= d {
		c.flags.clear(fTimerArmed) // touch re-arms on the next activity
		return true
	}
	return false
}

// stallLimitLocked is how long queued output may make no progress before
// the connection is cut: WriteTimeout, and once the connection is ending,
// at most LingerTimeout, so that a FIN waiting behind output the peer
// never takes cannot keep the connection open for ever. Zero means no
// limit.
func (c *Conn) stallLimitLocked() time.Duration {
	d := c.opt.WriteTimeout
	if c.flags.has(fEnding) {
		if lt := c.opt.lingerTimeout(); d == 0 || lt < d {
			d = lt
		}
	}
	return d
}

// stallErrorLocked is the error of a connection cut because its output
// made no progress for its stall limit d.
func (c *Conn) stallErrorLocked(d time.Duration) error {
	if c.flags.has(fEnding) && d != c.opt.WriteTimeout {
		return fmt.Errorf("%w: the peer took none of the remaining output for %v", ErrEndTimeout, d)
	}
	return fmt.Errorf("%w: the peer took nothing for %v", ErrWriteTimeout, d)
}

// monoNow returns a monotonic clock reading in nanoseconds.
func monoNow() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()
