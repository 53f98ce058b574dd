package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// idleDialers is how many connects idle has in flight at once.
const idleDialers = 16

// idle opens Conns connections, spread over source addresses 127.0.0.x
// when the target is on loopback so that the ephemeral ports do not run
// out, and holds them. Duration is the whole run: a connection not open
// by its end is a timeout. At the end it counts how many the server
// kept: each held connection is an exchange, each one the server closed
// or reset meanwhile an error. Then each is closed cleanly.
func (r *runner) idle(ctx context.Context) (*Result, error) {
	n := r.cfg.conns()
	var rssBefore int64
	if pid := r.cfg.ServerPID; pid > 0 {
		var err error
		if rssBefore, err = rssKiB(pid); err != nil {
			return nil, fmt.Errorf("cannot read the memory of process %d: %w", pid, err)
		}
	}
	kernelBefore := readKernel()
	start := time.Now()
	r.rec.start = start
	r.rec.measuring.Store(true)
	window, cancel := context.WithDeadline(ctx, start.Add(r.cfg.Duration))
	defer cancel()

	conns := make([]net.Conn, n)
	took := make([]time.Duration, n)
	local := sourceAddrs(r.cfg.network(), r.cfg.Addr)
	var wg sync.WaitGroup
	for d := range idleDialers {
		wg.Go(func() {
			for i := d; i < n; i += idleDialers {
				dl := net.Dialer{Timeout: r.cfg.connectTimeout()}
				if local != nil {
					dl.LocalAddr, dl.Control = local(i), bindNoPort
				}
				begin := time.Now()
				nc, err := dl.DialContext(window, r.cfg.network(), r.cfg.Addr)
				if err == nil {
					nc, err = r.prepare(nc)
				}
				switch {
				case err == nil:
					took[i], conns[i] = time.Since(begin), nc
				case ctx.Err() == nil: // not open by the end of the window, or failed
					r.rec.fail(i, 1, &OpError{Op: "connect", Err: err})
				}
			}
		})
	}
	wg.Wait()
	openS := time.Since(start).Seconds()
	<-window.Done() // hold them to the end of the window
	end := time.Now()
	r.rec.measuring.Store(false)

	rssAfter, rssErr := int64(0), error(nil)
	if pid := r.cfg.ServerPID; pid > 0 {
		rssAfter, rssErr = rssKiB(pid) // before the close: the server still holds them
	}
	held := 0
	for i, nc := range conns {
		if nc == nil {
			continue
		}
		if err := openErr(nc); err != nil {
			r.rec.fail(i, 1, &OpError{Op: "hold", Err: err})
			continue
		}
		held++
		r.rec.record(i, 1, took[i], took[i])
	}
	r.closeAll(conns)
	r.rec.tick(end)
	res := r.result(end, kernelDelta(kernelBefore, readKernel()))
	res.Held, res.OpenS = held, openS
	if pid := r.cfg.ServerPID; pid > 0 {
		res.setServerMemory(pid, rssBefore, rssAfter, rssErr, held)
	}
	res.EndedBy = EndedByDuration
	if ctx.Err() != nil {
		res.EndedBy = EndedBySignal
	}
	return res, nil
}

// closeAll ends the held connections cleanly, one at a time: a FIN, a
// read to the server's FIN, the close; for at most the drain timeout in
// all, after which the rest are closed at once (still with a FIN). It
// takes about 50 µs a connection on loopback. Thousands of FINs at once
// made servers' kernels (tcpkit's, and a plain Go server's) send a late
// ACK after their own FIN now and then, which our TIME_WAIT answered
// after the server's socket was gone: a RST.
func (r *runner) closeAll(conns []net.Conn) {
	hard := time.Now().Add(r.cfg.drainTimeout())
	for _, nc := range conns {
		if nc == nil {
			continue
		}
		nc.SetReadDeadline(hard)
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, nc)
		nc.Close()
	}
}

// sourceAddrs returns, for an IPv4 loopback target, a function giving
// connection i a source address in 127.0.0.2-127.0.0.254, in turn, so
// that no address runs short of ephemeral ports even across back-to-back
// runs; nil otherwise.
func sourceAddrs(network, target string) func(i int) net.Addr {
	if network != "tcp" {
		return nil
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil
	}
	return func(i int) net.Addr {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%253))}
	}
}
