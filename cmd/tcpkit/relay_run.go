package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"tcpkit"
	"tcpkit/internal/proxy"
	"tcpkit/internal/relay"
)

// A relayEngine relays the pairs of one listener: on tcpkit's Conns
// (connRelay), or by splice(2) (relay.Splicer).
type relayEngine interface {
	serve(ln net.Listener) error    // until stopAccepting
	stopAccepting()                 // refuse new clients; the open pairs go on
	wait(ctx context.Context) error // until no pair is open
	cut(cause string)               // reset both sides of every open pair
	open() int                      // pairs open
	close()                         // once no pair is left
	toxics() *relay.Toxics          // nil on the splice path
}

// engine builds what relays ln's pairs, and says how.
func (o *relayOptions) engine(ln net.Listener, log *relayLog, tr *tracer) (relayEngine, string, error) {
	sendProxy := 0
	if o.sendProxy != "" {
		sendProxy, _ = proxyVersion(o.sendProxy)
	}
	atMax := func(remote net.Addr) {
		log.rejected(remote, "too many pairs open (--max-conns "+strconv.Itoa(o.maxConns)+")")
	}
	reject := func(remote net.Addr, err error) {
		if errors.Is(err, relay.ErrTooManyPairs) {
			atMax(remote)
			return
		}
		log.rejected(remote, err.Error()) // out of file descriptors
	}
	why := o.copyReason()
	if why == "" {
		s := &relay.Splicer{Network: o.network, Address: o.target, ConnectTimeout: o.connectTimeout,
			IdleTimeout: o.idle, MaxConns: o.maxConns, SendProxy: sendProxy, OnReject: reject, OnClose: log.closed}
		if !o.quiet {
			s.OnOpen = log.opened
		}
		return spliceRelay{s}, "splice(2) for streams", nil
	}

	r := &relay.Relay{Network: o.network, Address: o.target, Dialer: tcpkit.Dialer{Timeout: o.connectTimeout},
		SendProxy: sendProxy, IdleTimeout: o.idle}
	if o.control != "" || len(o.toxics) > 0 {
		r.Toxics = new(relay.Toxics)
		for _, t := range o.toxics {
			if _, err := r.Toxics.Add(t); err != nil {
				return nil, "", err
			}
		}
	}
	r.OnOpen = func(p *relay.Pair) {
		if t := p.Target(); t != nil {
			log.opened(p.ID, p.Client().RemoteAddr(), t.RemoteAddr(), t.LocalAddr())
		}
	}
	r.OnClose = func(p *relay.Pair) {
		e := p.End()
		if tr != nil {
			tr.pairEnded(p.ID, e.DialErr, log.target)
		}
		log.closed(e)
	}
	if o.hex {
		r.Dump = func(p *relay.Pair, d relay.Dir, offset int64, b []byte) { log.dump(p.ID, d, offset, b) }
	}
	if tr != nil {
		r.Trace = func(p *relay.Pair, leg relay.Leg, ev tcpkit.TraceEvent) { tr.legEvent(p.ID, leg.String(), ev) }
	}
	srv := &tcpkit.Server{Events: r.Events(), ConnOptions: r.ClientOptions(), MaxConns: o.maxConns,
		OnReject: func(remote net.Addr, err error) {
			if errors.Is(err, tcpkit.ErrTooManyConns) {
				atMax(remote)
				return
			}
			log.rejected(remote, err.Error()) // a PROXY header that is missing, bad or late
		}}
	if o.proxy {
		var from []netip.Prefix
		if o.given["proxy-protocol-from"] {
			var err error
			if from, err = proxy.ParseFrom(o.proxyFrom); err != nil {
				return nil, "", fmt.Errorf("--proxy-protocol-from: %w", err)
			}
		}
		srv.Preamble = proxyPreamble(&proxy.Policy{From: from, Timeout: o.proxyTimeout})
	}
	engine, err := srv.EngineFor(ln)
	if err != nil {
		return nil, "", err
	}
	return connRelay{srv, r}, "copying " + why + "; clients on the " + engine.String() + " engine", nil
}

// connRelay relays on tcpkit's Conns: a Server for the clients, a Dialer
// for the targets.
type connRelay struct {
	srv *tcpkit.Server
	r   *relay.Relay
}

func (c connRelay) serve(ln net.Listener) error {
	err := c.srv.Serve(ln)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, tcpkit.ErrServerClosed) {
		return nil // StopAccepting closed it
	}
	return err
}
func (c connRelay) stopAccepting()                 { c.srv.StopAccepting() }
func (c connRelay) wait(ctx context.Context) error { return c.r.Wait(ctx) }
func (c connRelay) cut(cause string)               { c.r.Cut(cause) }
func (c connRelay) open() int                      { return c.r.Open() }
func (c connRelay) close()                         { c.srv.Close() }
func (c connRelay) toxics() *relay.Toxics          { return c.r.Toxics }

// spliceRelay relays by splice(2).
type spliceRelay struct{ s *relay.Splicer }

func (s spliceRelay) serve(ln net.Listener) error    { return s.s.Serve(ln) }
func (s spliceRelay) stopAccepting()                 { s.s.StopAccepting() }
func (s spliceRelay) wait(ctx context.Context) error { return s.s.Wait(ctx) }
func (s spliceRelay) cut(cause string)               { s.s.Cut(cause) }
func (s spliceRelay) open() int                      { return s.s.Open() }
func (s spliceRelay) close()                         { s.s.Close() }
func (s spliceRelay) toxics() *relay.Toxics          { return nil }

// runRelay relays until ctx is done, then drains: it stops accepting at
// once and gives the open pairs drain to end by themselves; those left
// then, or at a second signal, are reset. Exit 0 if every pair ended by
// itself, 1 if some were reset or the listener failed.
func runRelay(ctx context.Context, eng relayEngine, ln net.Listener, drain time.Duration, outs *outputs) int {
	served := make(chan error, 1)
	go func() { served <- eng.serve(ln) }()
	select {
	case err := <-served: // the listener failed for good
		eng.stopAccepting()
		if err == nil {
			err = errors.New("the listener closed")
		}
		outs.err.line("tcpkit relay: ", err.Error())
		eng.cut("cut: the relay stopped")
		eng.close()
		outs.close(time.Now().Add(outputGrace))
		return exitFail
	case <-ctx.Done():
	}

	eng.stopAccepting()
	open := eng.open()
	deadline := time.Now().Add(drain)
	dctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- eng.wait(dctx) }()
	err, forcedOut := awaitOr(ctx, waited, nil, nil) // the relay has no status signal
	if forcedOut {
		err = errSecondSignal
		deadline = time.Now()
		cancel()
		<-waited
	}
	by := " ended by themselves"
	if open == 1 {
		by = " ended by itself"
	}
	code, summary := exitOK, plural(open, "open pair")+by
	if err != nil {
		left := eng.open()
		why := "did not end within --drain-timeout " + drain.String()
		if err == errSecondSignal {
			why = "were still open at a second signal"
		}
		eng.cut("reset: the relay stopped, and the pair " + why)
		cctx, cancel := context.WithTimeout(context.Background(), outputGrace)
		eng.wait(cctx) // resets close at once: this is for their lines
		cancel()
		if left > 0 {
			code, summary = exitFail, fmt.Sprintf("%d of %d open pairs %s and were reset", left, open, why)
		}
	}
	<-served
	eng.close()
	if n := outs.out.Dropped(); n > 0 {
		summary += "; " + plural(int(n), "output line") + " dropped"
	}
	outs.out.Close(max(time.Until(deadline), outputGrace))
	outs.err.line("tcpkit relay: stopped; ", summary)
	outs.err.Close(outputGrace)
	return code
}

// serveControl serves the control API on ln until the returned func is
// called.
func serveControl(ln net.Listener, ts *relay.Toxics) (stop func()) {
	srv := &http.Server{Handler: relay.ControlHandler(ts), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }
}
