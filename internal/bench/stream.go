package bench

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// stream writes chunks as fast as the server takes them; with Echo it
// reads the echo back alongside and counts that instead. Each chunk
// written counts as an exchange; its latency is how long the write took.
func (r *runner) stream(w int) {
	nc := r.dial(w)
	if nc == nil {
		return
	}
	defer nc.Close()
	var readers sync.WaitGroup
	if r.cfg.Echo {
		readers.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := nc.Read(buf)
				r.rec.addBytes(w, n)
				if err != nil {
					return
				}
			}
		})
	}
	chunk := make([]byte, r.cfg.chunkSize())
	copy(chunk, r.msg.appendTo(nil, 0, w))
	var own int64
	for {
		seq, due, ok := r.next(w, &own)
		if !ok {
			break
		}
		start := time.Now()
		if !due.IsZero() {
			start = due
		}
		nc.SetWriteDeadline(time.Now().Add(r.cfg.replyTimeout()))
		n, err := nc.Write(chunk)
		if !r.cfg.Echo {
			r.rec.addBytes(w, n)
		}
		if err != nil {
			r.rec.fail(w, seq, err)
			break
		}
		r.rec.record(w, seq, time.Since(start), 0)
	}
	if tc, ok := nc.(*net.TCPConn); ok && r.cfg.Echo {
		tc.CloseWrite() // let the echo finish
		nc.SetReadDeadline(time.Now().Add(time.Second))
	}
	readers.Wait()
}

// idle opens Conns connections, spread over source addresses 127.0.0.x
// when the target is on loopback so that the ephemeral ports do not run
// out, holds them for the duration, and counts how many the server kept.
func (r *runner) idle(ctx context.Context) (*Result, error) {
	n := r.cfg.conns()
	var before int64
	if r.cfg.ServerPID > 0 {
		var err error
		if before, err = rssKiB(r.cfg.ServerPID); err != nil {
			return nil, fmt.Errorf("--server-pid: %w", err)
		}
	}
	kernelBefore := readKernel()
	r.rec.start = time.Now()
	r.rec.measuring.Store(true)
	conns := make([]net.Conn, n)
	local := sourceAddrs(r.cfg.Addr)
	var wg sync.WaitGroup
	const dialers = 16
	for d := range dialers {
		wg.Go(func() {
			for i := d; i < n; i += dialers {
				dl := net.Dialer{Timeout: r.cfg.connectTimeout()}
				if local != nil {
					dl.LocalAddr, dl.Control = local(i), bindNoPort
				}
				start := time.Now()
				nc, err := dl.DialContext(ctx, "tcp", r.cfg.Addr)
				if err == nil {
					err = r.prepare(nc)
				}
				if err != nil {
					r.rec.fail(i, 1, err)
					continue
				}
				r.rec.record(i, 1, time.Since(start), time.Since(start))
				conns[i] = nc
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	var after int64
	if r.cfg.ServerPID > 0 {
		after, _ = rssKiB(r.cfg.ServerPID)
	}
	hold := r.cfg.Duration
	select {
	case <-time.After(hold):
	case <-ctx.Done():
	}
	held := 0
	for _, nc := range conns {
		if nc != nil && stillOpen(nc) {
			held++
		}
	}
	end := time.Now()
	r.rec.measuring.Store(false)
	res := r.result(end, kernelDelta(kernelBefore, readKernel()))
	res.Held = held
	if r.cfg.ServerPID > 0 && held > 0 {
		res.ServerRSSKiB = after
		res.ServerKiBPerConn = float64(after-before) / float64(held)
	}
	return res, nil
}

// sourceAddrs returns, for an IPv4 loopback target, a function giving
// connection i a source address in 127.0.0.2-127.0.0.254, in turn, so
// that no address runs short of ephemeral ports even across back-to-back
// runs; nil otherwise.
func sourceAddrs(target string) func(i int) net.Addr {
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
