package relay

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"time"

	"tcpkit"
)

// maxHeld bounds the bytes the toxics of one direction hold back (a
// latency, a bandwidth, a stall): past it the source is paused until
// half of it has gone on. So a direction holds at most maxHeld, plus
// the destination's own queue (highWaterMark) and one read.
const maxHeld = 256 << 10

// bwBurst is how far behind its schedule a bandwidth toxic may fall and
// catch up: a timer that fires late does not lower the rate.
const bwBurst = 20 * time.Millisecond

// Why a flow's source is paused; it is while any of these holds.
const (
	holdDrain = 1 << iota // the destination's queue is over its high-water mark
	holdQueue             // the toxics hold maxHeld bytes
	holdStall             // a stall toxic holds everything
)

// A flow is one direction of a pair: the bytes from its source leg to its
// destination leg, and the toxics that act on them. Without toxics a
// chunk goes straight to the destination; with them it is queued as
// pieces, each due at a time, and a timer writes them out.
type flow struct {
	p   *Pair
	dir Dir

	mu      sync.Mutex
	holds   uint8   // holdDrain, holdQueue, holdStall
	q       []piece // what the toxics hold back, in order
	queued  int     // bytes in q
	lastAt  int64   // when q's last piece is due: a later one is never due before it
	bwNext  int64   // when the bandwidth toxic lets the next piece go
	timer   *time.Timer
	timerAt int64 // when timer fires; 0 when it is not armed
	total   int64 // bytes that came from the source
	sent    int64 // bytes handed to the destination
	finIn   bool  // the source's FIN came, and is queued after what is held or went on
	finOut  bool  // the FIN went on
	stalled bool  // a stall toxic acts
	cut     bool  // a toxic or the idle timeout ended the flow: what comes is dropped
	done    bool  // the pair is closed

	// Before start, what the source sends waits here: on the event loop
	// the target's leg may read before Dial has returned, and nothing
	// may go on before the pair is joined and its toxics act. Past
	// maxHeld bytes the source is paused (start resumes it).
	started  bool
	early    []byte
	earlyFIN bool
	active   map[string]*applied
	action   func() // to run once mu is released: a toxic's end of the pair
	after    func() // a byte toxic's end, once the bytes it let through are written
}

// A piece is bytes, or the FIN, held back until at (monoNow's clock).
type piece struct {
	b   []byte
	at  int64
	fin bool
}

// applied is a toxic acting on a flow since start (the flow's total
// then), with its timer if it has one (reset_after, stall).
type applied struct {
	t     Toxic
	start int64
	timer *time.Timer
}

func (f *flow) src() *tcpkit.Conn {
	if f.dir == Up {
		return f.p.client
	}
	return f.p.target
}

func (f *flow) dst() *tcpkit.Conn {
	if f.dir == Up {
		return f.p.target
	}
	return f.p.client
}

// unlock releases f.mu and runs what was left to do without it.
func (f *flow) unlock() {
	act := f.action
	f.action = nil
	f.mu.Unlock()
	if act != nil {
		act()
	}
}

// forward takes a chunk from the source, src: OnData.
func (f *flow) forward(src *tcpkit.Conn, b []byte) {
	f.mu.Lock()
	defer f.unlock()
	if !f.started {
		if f.early = append(f.early, b...); len(f.early) >= maxHeld {
			src.Pause()
		}
		return
	}
	f.forwardLocked(b)
}

func (f *flow) forwardLocked(b []byte) {
	from := f.total
	f.total += int64(len(b))
	if dump := f.p.r.Dump; dump != nil {
		dump(f.p, f.dir, from, b)
	}
	if f.cut || f.done {
		return
	}
	tox := f.p.r.Toxics.forDir(f.dir)
	if len(tox) == 0 && len(f.q) == 0 && !f.stalled {
		f.writeLocked(b)
		return
	}
	f.arriveLocked(b, from, tox)
}

// writeLocked hands b to the destination, and pauses the source if that
// puts the destination's queue over its high-water mark.
func (f *flow) writeLocked(b []byte) {
	dst := f.dst()
	if _, err := dst.Write(b); err != nil {
		return // it is ending or closed: the pair's end says why
	}
	f.sent += int64(len(b))
	if dst.NeedDrain() {
		f.holdLocked(holdDrain)
	}
}

// arriveLocked queues b, which came after from bytes, as the toxics say.
func (f *flow) arriveLocked(b []byte, from int64, tox []*Toxic) {
	now := monoNow()
	var delay, step int64
	size := len(b)
	var trigger *Toxic
	for _, t := range tox {
		a := f.activateLocked(t)
		switch t.Type {
		case ResetAt, LimitData:
			if t.Bytes == 0 {
				continue
			}
			if room := max(t.Bytes-(from-a.start), 0); room < int64(len(b)) {
				b, trigger = b[:room], t // this chunk reaches the limit
			}
		case Latency:
			delay += int64(t.Latency)
			if j := int64(t.Jitter); j > 0 {
				delay += rand.Int64N(2*j+1) - j
			}
		case Slice:
			if step == 0 && size == len(b) {
				size, step = t.Size, int64(t.Delay)
			}
		}
	}
	at := max(now+delay, f.lastAt)
	for off := 0; off < len(b); off += size {
		seg := b[off:min(off+size, len(b))]
		f.q = append(f.q, piece{b: bytes.Clone(seg), at: at})
		f.queued += len(seg)
		f.lastAt = at
		at += step
	}
	if trigger != nil {
		t := *trigger
		f.cut = true
		f.after = func() { f.p.toxicEnd(t, f.dir) }
	}
	if f.queued >= maxHeld {
		f.holdLocked(holdQueue)
	}
	f.releaseLocked()
}

// releaseLocked writes the pieces that are due, in order, for as long
// as the destination takes them, and arms the timer for the next.
func (f *flow) releaseLocked() {
	rate := f.rateLocked()
	for len(f.q) > 0 && !f.stalled && f.holds&holdDrain == 0 && !f.done {
		pc := &f.q[0]
		now := monoNow()
		due := pc.at
		if rate > 0 && !pc.fin {
			due = max(due, f.bwNext)
		}
		if due > now {
			f.armLocked(due)
			break
		}
		if pc.fin {
			f.q = f.q[1:]
			f.sendFINLocked()
			continue
		}
		b := pc.b
		if rate > 0 {
			if n := bwPiece(rate); len(b) > n {
				b = b[:n]
			}
			f.bwNext = max(f.bwNext, now-int64(bwBurst)) + int64(len(b))*int64(time.Second)/rate
		}
		if len(b) == len(pc.b) {
			f.q = f.q[1:]
		} else {
			pc.b = pc.b[len(b):]
		}
		f.queued -= len(b)
		f.writeLocked(b)
	}
	if len(f.q) == 0 {
		f.q = nil // an idle flow keeps no buffer
	}
	if f.queued < maxHeld/2 {
		f.unholdLocked(holdQueue)
	}
	if len(f.q) == 0 && f.after != nil && f.holds&holdDrain == 0 {
		f.action, f.after = f.after, nil
	}
}

// bwPiece is how much a bandwidth toxic of rate lets go at once: a
// fiftieth of a second's worth, so that the stream is smooth.
func bwPiece(rate int64) int {
	return int(min(max(rate/50, 1), 16<<10))
}

// rateLocked is the lowest rate of the bandwidth toxics acting, or 0.
func (f *flow) rateLocked() int64 {
	var rate int64
	for _, a := range f.active {
		if a.t.Type == Bandwidth && (rate == 0 || a.t.Rate < rate) {
			rate = a.t.Rate
		}
	}
	return rate
}

// armLocked makes the timer release what is due at due.
func (f *flow) armLocked(due int64) {
	if f.timerAt != 0 && f.timerAt <= due {
		return
	}
	f.timerAt = due
	d := time.Duration(due - monoNow())
	if f.timer == nil {
		f.timer = time.AfterFunc(d, f.fire)
	} else {
		f.timer.Reset(d)
	}
}

func (f *flow) fire() {
	f.mu.Lock()
	defer f.unlock()
	f.timerAt = 0
	f.releaseLocked()
}

// fin takes the source's FIN: OnEnd. It goes on after what is queued,
// later still with a slow_close toxic.
func (f *flow) fin() {
	f.mu.Lock()
	defer f.unlock()
	if !f.started {
		f.earlyFIN = true
		return
	}
	f.finLocked()
}

func (f *flow) finLocked() {
	if f.cut || f.done {
		return
	}
	f.finIn = true
	var delay int64
	for _, t := range f.p.r.Toxics.forDir(f.dir) {
		if f.activateLocked(t); t.Type == SlowClose {
			delay += int64(t.Delay)
		}
	}
	if len(f.q) == 0 && delay == 0 && !f.stalled {
		f.sendFINLocked()
		return
	}
	at := max(monoNow()+delay, f.lastAt)
	f.q = append(f.q, piece{fin: true, at: at})
	f.lastAt = at
	f.releaseLocked()
}

// finQueued reports whether the source's FIN is queued behind what the
// toxics hold, or went on: then the destination ends in its turn, and
// must not be ended before. A leg can close cleanly (both FINs) while
// the toxics still hold its bytes (a latency): ending the other leg then
// would drop them.
func (f *flow) finQueued() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finIn && !f.cut && !f.done
}

func (f *flow) sendFINLocked() {
	if !f.finOut {
		f.finOut = true
		f.dst().End()
	}
}

// drained is told that the destination's queue emptied: OnDrain.
func (f *flow) drained() {
	f.mu.Lock()
	defer f.unlock()
	f.unholdLocked(holdDrain)
	f.releaseLocked()
}

func (f *flow) holdLocked(why uint8) {
	if f.holds == 0 && !f.done {
		f.src().Pause()
	}
	f.holds |= why
}

func (f *flow) unholdLocked(why uint8) {
	if f.holds&why == 0 {
		return
	}
	if f.holds &^= why; f.holds == 0 && !f.done {
		f.src().Resume()
	}
}

// start begins the flow once both legs are there: the toxics act, and
// the source, paused while the target was dialed, reads unless they
// hold it.
func (f *flow) start() {
	f.apply()
	f.mu.Lock()
	defer f.unlock()
	f.started = true
	if b := f.early; len(b) > 0 {
		f.early = nil
		f.forwardLocked(b)
	}
	if f.earlyFIN {
		f.finLocked()
	}
	if f.holds == 0 {
		f.src().Resume()
	}
}

// apply brings the toxics acting on the flow up to date with the
// relay's: those added begin to act now, those removed let go of what
// they held.
func (f *flow) apply() {
	tox := f.p.r.Toxics.forDir(f.dir)
	f.mu.Lock()
	defer f.unlock()
	if f.done || f.cut { // a cut flow reads on to the FIN, whatever is added
		return
	}
	for _, t := range tox {
		f.activateLocked(t)
	}
	for name, a := range f.active {
		found := false
		for _, t := range tox {
			found = found || t.Name == name
		}
		if !found {
			if a.timer != nil {
				a.timer.Stop()
			}
			delete(f.active, name)
		}
	}
	f.stalled = false
	for _, a := range f.active {
		f.stalled = f.stalled || a.t.Type == Stall
	}
	if f.stalled {
		f.holdLocked(holdStall)
	} else {
		f.unholdLocked(holdStall)
	}
	f.releaseLocked()
}

// activateLocked returns t's state on this flow, starting it if t has
// just begun to act (or changed): its byte count starts now, and so
// does its timer.
func (f *flow) activateLocked(t *Toxic) *applied {
	if a := f.active[t.Name]; a != nil && a.t == *t {
		return a
	} else if a != nil && a.timer != nil {
		a.timer.Stop()
	}
	a := &applied{t: *t, start: f.total}
	if f.active == nil {
		f.active = make(map[string]*applied)
	}
	f.active[t.Name] = a
	tt := *t
	if (t.Type == ResetAt || t.Type == Stall) && t.After > 0 {
		a.timer = time.AfterFunc(time.Duration(t.After), func() { f.p.toxicEnd(tt, f.dir) })
	}
	if t.Type == Stall {
		f.stalled = true
		f.holdLocked(holdStall)
	}
	return a
}

// cutNow ends the flow for a toxic or the idle timeout: what it holds
// is dropped, and so is what comes from now on.
func (f *flow) cutNow() {
	f.mu.Lock()
	defer f.unlock()
	f.cut = true
	f.q, f.queued, f.after = nil, 0, nil
	f.finOut = true // the pair's end sends the FINs
	f.stalled = false
	f.unholdLocked(holdDrain | holdQueue | holdStall) // read on, to the FIN: what comes is dropped
}

// close stops the flow's timers once the pair is closed.
func (f *flow) close() {
	f.mu.Lock()
	defer f.unlock()
	f.done = true
	f.q, f.queued, f.after = nil, 0, nil
	if f.timer != nil {
		f.timer.Stop()
	}
	for _, a := range f.active {
		if a.timer != nil {
			a.timer.Stop()
		}
	}
}

// Sent returns how many bytes the flow has handed to its destination.
func (f *flow) Sent() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent
}

// monoNow returns a monotonic clock reading in nanoseconds.
func monoNow() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()
