// Package relay is tcpkit relay's machinery: pairs of connections joined
// byte for byte, on tcpkit's Conns (Relay) or, where nothing inspects
// the bytes, moved by splice(2) on an event loop of its own (Splicer,
// Linux); the toxics that add faults to them; and the HTTP API that
// changes the toxics while the relay runs.
//
// It is internal: tcpkit's library has the pieces a relay is made of
// (Server, Dialer, Conn's Write, NeedDrain, OnDrain, Pause, Resume, End
// and Reset), and a program that relays builds its own from them in a
// few lines, as Example_relay shows; what is here beyond that (toxics,
// splice) is the command's.
package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"tcpkit"
	"tcpkit/internal/proxy"
)

// ErrTooManyPairs is a Splicer's OnReject reason for a client past
// MaxConns.
var ErrTooManyPairs = errors.New("too many pairs open")

// A Relay joins each connection a tcpkit.Server accepts (the client's)
// to one it dials to the target: the Server's Events and ConnOptions
// come from Events and ClientOptions. Set its fields before the Server
// serves.
type Relay struct {
	Network, Address string        // the target, as net.Dial takes it
	Dialer           tcpkit.Dialer // the target's connections: Timeout, LocalAddr
	SendProxy        int           // 1 or 2: send the target a PROXY header of that version first; 0: none
	IdleTimeout      time.Duration // end a pair that relays nothing either way for this long; 0: never
	Toxics           *Toxics       // the faults; nil for none

	// OnOpen, if set, is told of each pair whose target connected; OnClose
	// of each pair once both legs are closed (with its DialErr if the
	// target was not connected). They must not block.
	OnOpen, OnClose func(p *Pair)

	// Dump, if set, is shown each chunk as it arrives, offset being where
	// it starts in its direction's stream. It must not keep b.
	Dump func(p *Pair, d Dir, offset int64, b []byte)

	// Trace, if set, gets each TCP event of both legs (ConnOptions.Trace).
	Trace func(p *Pair, leg Leg, ev tcpkit.TraceEvent)

	initOnce sync.Once
	ctx      context.Context // canceled by Cut: dials in progress give up
	cancel   context.CancelFunc
	lastID   atomic.Uint64

	mu    sync.Mutex
	pairs map[*Pair]struct{}
	empty chan struct{} // closed when pairs empties, for Wait
}

func (r *Relay) init() {
	r.initOnce.Do(func() {
		r.ctx, r.cancel = context.WithCancel(context.Background())
		r.pairs = make(map[*Pair]struct{})
		if r.Toxics != nil {
			r.Toxics.mu.Lock()
			r.Toxics.onChange = r.applyToxics
			r.Toxics.mu.Unlock()
		}
	})
}

// ClientOptions returns the options for the Server's connections.
func (r *Relay) ClientOptions() tcpkit.ConnOptions {
	r.init()
	o := legOptions(tcpkit.ConnOptions{IdleTimeout: r.IdleTimeout})
	if r.Trace != nil {
		o.Trace = func(ev tcpkit.TraceEvent) { r.Trace(r.pairOf(ev.Conn), Client, ev) }
	}
	return o
}

// Events returns the Events for the Server's connections: each is paused
// as it arrives, the target is dialed on a goroutine of its own, and the
// two are joined.
func (r *Relay) Events() tcpkit.Events {
	r.init()
	return tcpkit.Events{
		OnConnect: func(c *tcpkit.Conn) {
			p := r.pairOf(c)
			r.track(p)
			c.Pause() // until the target is there: what the client sends waits in the kernel
			go p.dial()
		},
		OnData:    func(c *tcpkit.Conn, b []byte) { r.pairOf(c).up.forward(c, b) },
		OnEnd:     func(c *tcpkit.Conn) { r.pairOf(c).up.fin() },
		OnDrain:   func(c *tcpkit.Conn) { r.pairOf(c).down.drained() },
		OnTimeout: func(c *tcpkit.Conn) { r.pairOf(c).idle() },
		OnError:   func(c *tcpkit.Conn, err error) { r.pairOf(c).broke(Client, err) },
		OnClose:   func(c *tcpkit.Conn, hadError bool) { r.pairOf(c).legClosed(Client, hadError) },
	}
}

// pairOf returns the pair whose client leg is c, making it on first
// need: the first trace event of c comes before OnConnect.
func (r *Relay) pairOf(c *tcpkit.Conn) *Pair {
	if p, ok := c.Value().(*Pair); ok {
		return p
	}
	p := newPair(r, c)
	c.SetValue(p)
	return p
}

func (r *Relay) track(p *Pair) {
	r.mu.Lock()
	r.pairs[p] = struct{}{}
	r.mu.Unlock()
}

func (r *Relay) untrack(p *Pair) {
	r.mu.Lock()
	_, ok := r.pairs[p]
	delete(r.pairs, p)
	if len(r.pairs) == 0 && r.empty != nil {
		close(r.empty)
		r.empty = nil
	}
	r.mu.Unlock()
	if ok && r.OnClose != nil {
		r.OnClose(p)
	}
}

// Open returns the number of pairs open: accepted and not yet closed on
// both legs.
func (r *Relay) Open() int {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pairs)
}

// Wait returns once no pair is open, or with ctx's error.
func (r *Relay) Wait(ctx context.Context) error {
	r.init()
	r.mu.Lock()
	if len(r.pairs) == 0 {
		r.mu.Unlock()
		return nil
	}
	if r.empty == nil {
		r.empty = make(chan struct{})
	}
	empty := r.empty
	r.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cut resets both legs of every open pair, and stops the dials in
// progress, giving cause as the reason.
func (r *Relay) Cut(cause string) {
	r.init()
	r.cancel()
	r.mu.Lock()
	list := make([]*Pair, 0, len(r.pairs))
	for p := range r.pairs {
		list = append(list, p)
	}
	r.mu.Unlock()
	for _, p := range list {
		p.Reset(cause)
	}
}

// applyToxics brings the open pairs up to date with the toxics; called
// under Toxics.mu.
func (r *Relay) applyToxics() {
	r.mu.Lock()
	list := make([]*Pair, 0, len(r.pairs))
	for p := range r.pairs {
		list = append(list, p)
	}
	r.mu.Unlock()
	for _, p := range list {
		if p.Target() != nil { // the others start with the toxics of their time
			p.up.apply()
			p.down.apply()
		}
	}
}

// proxyHeader is the PROXY protocol header of version v for a client
// from src that connected to dst. Version 1 has no form for a Unix
// socket's addresses: it says UNKNOWN then, as the specification asks,
// and the target takes the connection's own addresses.
func proxyHeader(v int, src, dst net.Addr) []byte {
	var b bytes.Buffer
	if err := proxy.WriteHeader(&b, v, src, dst); err != nil || b.Len() == 0 {
		if v == 1 {
			return []byte("PROXY UNKNOWN\r\n")
		}
		b.Reset()
		proxy.WriteHeader(&b, 2, nil, nil) // LOCAL: no address to pass on
	}
	return b.Bytes()
}
