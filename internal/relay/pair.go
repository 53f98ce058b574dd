package relay

import (
	"fmt"
	"net"
	"sync"
	"time"

	"tcpkit"
)

// A Leg is one of a pair's two connections.
type Leg uint8

const (
	Client Leg = iota // accepted from the client
	Target            // dialed to the target
)

func (l Leg) String() string {
	if l == Client {
		return "client"
	}
	return "target"
}

// A Pair is one relayed connection: the client's, accepted by a
// tcpkit.Server, joined to the target's, opened by a tcpkit.Dialer. Each
// direction is a flow; the pair ends when both legs have closed.
type Pair struct {
	ID     uint64
	Opened time.Time // when the client's connection was accepted

	r        *Relay
	client   *tcpkit.Conn
	target   *tcpkit.Conn // set once dialed, before the client is resumed; read under mu elsewhere
	up, down flow

	mu         sync.Mutex
	legs       int   // legs not closed yet: the target counts from the start, until a failed dial
	err        error // the first error that broke a leg
	errLeg     Leg
	cause      string // the relay's own reason for ending the pair
	dialErr    error
	clientGone bool        // the client's leg closed
	idleTimer  *time.Timer // after the idle timeout's FINs, the close
}

func newPair(r *Relay, c *tcpkit.Conn) *Pair {
	p := &Pair{ID: r.lastID.Add(1), Opened: time.Now(), r: r, client: c, legs: 2}
	p.up = flow{p: p, dir: Up}
	p.down = flow{p: p, dir: Down}
	return p
}

// Client returns the client's connection.
func (p *Pair) Client() *tcpkit.Conn { return p.client }

// Target returns the target's connection, or nil if it was not made.
func (p *Pair) Target() *tcpkit.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// Sent returns the bytes relayed in direction d.
func (p *Pair) Sent(d Dir) int64 {
	if d == Up {
		return p.up.Sent()
	}
	return p.down.Sent()
}

// DialErr returns why the target could not be connected to, or nil.
func (p *Pair) DialErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialErr
}

// Err returns the error that broke one of the legs first, and which.
func (p *Pair) Err() (Leg, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errLeg, p.err
}

// Cause returns the relay's own reason for ending the pair (the idle
// timeout, a toxic, the end of a drain), or "".
func (p *Pair) Cause() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cause
}

func (p *Pair) setCause(s string) {
	p.mu.Lock()
	if p.cause == "" && p.err == nil {
		p.cause = s
	}
	p.mu.Unlock()
}

// dial connects to the target on a goroutine of its own, the client's
// leg paused meanwhile, and joins the two.
func (p *Pair) dial() {
	r := p.r
	d := r.Dialer // a copy: each pair's trace knows its pair
	d.ConnOptions = legOptions(d.ConnOptions)
	if r.Trace != nil {
		d.Trace = func(ev tcpkit.TraceEvent) { r.Trace(p, Target, ev) }
	}
	tc, err := d.Dial(r.ctx, r.Network, r.Address, p.targetEvents())
	if err != nil {
		p.mu.Lock()
		p.dialErr = err
		p.legs--
		p.mu.Unlock()
		p.client.Reset() // a refusal goes on as one
		return
	}
	if r.SendProxy > 0 { // before any of the client's bytes: the client is paused
		tc.Write(proxyHeader(r.SendProxy, p.client.RemoteAddr(), p.client.LocalAddr()))
	}
	p.mu.Lock()
	p.target = tc
	gone := p.clientGone
	p.mu.Unlock()
	if gone { // the client's leg was cut while the target was dialed
		tc.Reset()
		return
	}
	if r.OnOpen != nil {
		r.OnOpen(p)
	}
	p.down.start()
	p.up.start() // and the client is read from
}

func (p *Pair) targetEvents() tcpkit.Events {
	return tcpkit.Events{
		OnData:  func(c *tcpkit.Conn, b []byte) { p.down.forward(c, b) },
		OnEnd:   func(*tcpkit.Conn) { p.down.fin() },
		OnDrain: func(*tcpkit.Conn) { p.up.drained() },
		OnError: func(_ *tcpkit.Conn, err error) { p.broke(Target, err) },
		OnClose: func(_ *tcpkit.Conn, hadError bool) { p.legClosed(Target, hadError) },
	}
}

// broke is told that leg broke with err: the other is reset, as a reset
// or a failure of one side goes on to the other.
func (p *Pair) broke(leg Leg, err error) {
	p.mu.Lock()
	if p.err == nil && p.cause == "" {
		p.err, p.errLeg = err, leg
	}
	other := p.otherLocked(leg)
	p.mu.Unlock()
	if other != nil {
		other.Reset()
	}
}

func (p *Pair) otherLocked(leg Leg) *tcpkit.Conn {
	if leg == Client {
		return p.target
	}
	return p.client
}

// legClosed is told that leg closed. A leg that closed cleanly (both
// FINs) ends the other once the toxics let go of what they hold for it
// and its output is out; one that broke has had the other reset already. The pair ends with its last leg.
func (p *Pair) legClosed(leg Leg, hadError bool) {
	p.mu.Lock()
	p.legs--
	last := p.legs == 0
	if leg == Client {
		p.clientGone = true
	}
	other := p.otherLocked(leg)
	p.mu.Unlock()
	if other != nil {
		f := &p.up // the flow to the other leg
		if leg == Target {
			f = &p.down
		}
		switch {
		case hadError:
			other.Reset()
		case !f.finQueued(): // else it ends once the toxics let go of its bytes
			other.End()
		}
	}
	if last {
		p.finish()
	}
}

func (p *Pair) finish() {
	p.up.close()
	p.down.close()
	p.mu.Lock()
	if p.idleTimer != nil {
		p.idleTimer.Stop()
	}
	p.mu.Unlock()
	p.r.untrack(p)
}

// idle ends the pair after the idle timeout: a FIN both ways, and the
// close one more idle period later if the two have not answered.
func (p *Pair) idle() {
	idle := p.r.IdleTimeout
	p.setCause(fmt.Sprintf("nothing relayed either way for %v (--idle-timeout)", idle))
	p.endBoth()
	p.mu.Lock()
	p.idleTimer = time.AfterFunc(idle, func() {
		p.client.Close()
		if t := p.Target(); t != nil {
			t.Close()
		}
	})
	p.mu.Unlock()
}

// endBoth ends both legs with a FIN, dropping what the toxics hold.
func (p *Pair) endBoth() {
	p.up.cutNow()
	p.down.cutNow()
	p.client.End()
	if t := p.Target(); t != nil {
		t.End()
	}
}

// Reset resets both legs, giving cause as the reason.
func (p *Pair) Reset(cause string) {
	p.setCause(cause)
	p.client.Reset()
	if t := p.Target(); t != nil {
		t.Reset()
	}
}

// toxicEnd ends the pair as toxic t says: reset_after resets both legs;
// limit_data and stall end both with a FIN.
func (p *Pair) toxicEnd(t Toxic, d Dir) {
	what := "bytes to the target"
	if d == Down {
		what = "bytes to the client"
	}
	switch {
	case t.Type == ResetAt && t.Bytes > 0:
		p.Reset(fmt.Sprintf("reset after %d %s (toxic %s)", t.Bytes, what, t.Name))
	case t.Type == ResetAt:
		p.Reset(fmt.Sprintf("reset after %v (toxic %s)", time.Duration(t.After), t.Name))
	case t.Type == LimitData:
		p.setCause(fmt.Sprintf("ended after %d %s (toxic %s)", t.Bytes, what, t.Name))
		p.endBoth()
	case t.Type == Stall:
		p.setCause(fmt.Sprintf("ended after a stall of %v (toxic %s)", time.Duration(t.After), t.Name))
		p.endBoth()
	}
}

// legOptions are the options of both legs of a pair: each direction is
// paused by the other side's backlog, never by its own leg's, and a
// half-closed leg stays open as long as its peer likes.
func legOptions(o tcpkit.ConnOptions) tcpkit.ConnOptions {
	o.AllowHalfOpen = true     // a FIN goes on; the other direction keeps flowing
	o.ReadDuringBacklog = true // backpressure is the flow's: see flow.writeLocked
	o.HighWaterMark = highWaterMark
	o.LingerTimeout = noLinger // a half-close lasts as long as the peers like
	return o
}

// highWaterMark is each leg's output queue above which the other leg
// stops reading: with the read that tipped it, a direction holds at most
// this plus 64 KiB.
const highWaterMark = 64 << 10

// noLinger is a linger timeout that never comes: the peers decide when
// a half-closed pair ends, as they would without the relay.
const noLinger = 100 * 365 * 24 * time.Hour

// An End is how a pair ended, whichever way it was relayed: what a log
// says of it.
type End struct {
	ID                  uint64
	Client, Target, Via net.Addr // Via: our side of the target's connection; Target and Via are nil if it was not made
	Up, Down            int64    // bytes relayed to the target, to the client
	Took                time.Duration
	DialErr             error  // why the target could not be connected to
	Err                 error  // what broke a leg first
	ErrLeg              Leg    // which
	Cause               string // the relay's own reason (the idle timeout, a toxic, the drain)
}

// End says how p ended; call it once p is closed (OnClose).
func (p *Pair) End() End {
	e := End{ID: p.ID, Client: p.client.RemoteAddr(), Up: p.up.Sent(), Down: p.down.Sent(), Took: time.Since(p.Opened)}
	p.mu.Lock()
	defer p.mu.Unlock()
	e.DialErr, e.Err, e.ErrLeg, e.Cause = p.dialErr, p.err, p.errLeg, p.cause
	if p.target != nil {
		e.Target, e.Via = p.target.RemoteAddr(), p.target.LocalAddr()
	}
	return e
}
