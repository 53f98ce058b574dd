package tcpkit

import (
	"fmt"
	"time"
)

// The idle timeout (Node's setTimeout: nothing read or written) and the
// read timeout (nothing read) share the socket's read deadline, set to the
// earlier of the two. Activity does not move the deadline, which would
// cost a system call per read or write: when it passes, deadlinePassed
// looks at the last activity and either acts or sets the deadline again.

// SetTimeout sets the idle timeout of this connection, overriding
// ConnOptions.IdleTimeout; zero turns it off. The idle period restarts now.
func (c *Conn) SetTimeout(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timeout.Store(int64(d))
	c.lastActive.Store(monoNow())
	c.timerArmed.Store(d > 0)
	c.armLocked(monoNow())
}

// touch records activity for the idle timeout, and re-arms it if it fired.
func (c *Conn) touch() {
	if c.timeout.Load() == 0 {
		return
	}
	c.lastActive.Store(monoNow())
	if c.timerArmed.CompareAndSwap(false, true) {
		// Only after a timeout fired: re-arm so the next idle period
		// counts. Asynchronously, since touch may run under c.mu.
		if c.ep != nil {
			c.ep.l.schedule(c, c.lastActive.Load()+c.timeout.Load())
			return
		}
		go c.rearm()
	}
}

func (c *Conn) rearm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.armLocked(monoNow())
	}
}

// armLocked sets the read deadline to the earliest timeout still to come,
// or clears it.
func (c *Conn) armLocked(now int64) {
	if c.ep != nil { // the loop's timers look at the rest when this is due
		if d := c.timeout.Load(); d > 0 {
			c.ep.l.schedule(c, now+d)
		}
		return
	}
	next := int64(-1)
	if rt := c.opt.ReadTimeout; rt > 0 {
		next = c.lastRead.Load() + int64(rt)
	}
	if d := c.timeout.Load(); d > 0 && c.timerArmed.Load() {
		if due := c.lastActive.Load() + d; next < 0 || due < next {
			next = due
		}
	}
	if next < 0 {
		c.nc.SetReadDeadline(time.Time{})
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(time.Duration(next - now)))
}

// deadlinePassed runs when the read deadline passes. It closes the
// connection if nothing was read for ReadTimeout, fires OnTimeout if it
// was idle for its idle timeout, and sets the next deadline. It reports
// whether to read on.
func (c *Conn) deadlinePassed() bool {
	now := monoNow()
	if rt := c.opt.ReadTimeout; rt > 0 && now-c.lastRead.Load() >= int64(rt) {
		c.closeWith(fmt.Errorf("%w: nothing received for %v", ErrReadTimeout, rt))
		return false
	}
	c.mu.Lock()
	fire := c.idleDueLocked(now)
	c.armLocked(now)
	c.mu.Unlock()
	if fire {
		c.timedOut()
	}
	return true
}

// idleDueLocked reports whether the idle timeout is due, and disarms it
// if so: it fires once per idle period.
func (c *Conn) idleDueLocked(now int64) bool {
	if d := c.timeout.Load(); d > 0 && c.timerArmed.Load() && now-c.lastActive.Load() >= d {
		c.timerArmed.Store(false) // touch re-arms on the next activity
		return true
	}
	return false
}

func (c *Conn) timedOut() {
	c.trace(TraceTimeout, 0, nil)
	if c.ev.OnTimeout == nil {
		c.End()
	} else {
		c.call(c.ev.OnTimeout)
	}
}

// While the connection does not read (paused, backlogged, or half-open
// after the peer's FIN) no read deadline can pass, so a timer drives the
// idle timeout instead. The read timeout does not run then: nothing can
// be read, through no fault of the peer's.

// idleTimerStart starts that timer, if an idle timeout is set.
func (c *Conn) idleTimerStart() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timeout.Load() > 0 && !c.closed && c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(c.untilIdleLocked(monoNow()), c.idleTimerFired)
	}
}

// idleTimerStop stops it, when reading resumes or the connection closed.
func (c *Conn) idleTimerStop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idleTimer != nil {
		c.idleTimer.Stop()
		c.idleTimer = nil
	}
}

func (c *Conn) idleTimerFired() {
	c.mu.Lock()
	now := monoNow()
	fire := c.idleTimer != nil && c.idleDueLocked(now)
	if c.idleTimer != nil && !c.closed {
		c.idleTimer.Reset(c.untilIdleLocked(now))
	}
	c.mu.Unlock()
	if fire {
		c.timedOut()
	}
}

// untilIdleLocked is how long until the idle timeout is due; after it
// fired, one period, to look again for activity that re-armed it.
func (c *Conn) untilIdleLocked(now int64) time.Duration {
	d := time.Duration(c.timeout.Load())
	if !c.timerArmed.Load() {
		return d
	}
	return max(time.Duration(c.lastActive.Load()+int64(d)-now), time.Millisecond)
}
