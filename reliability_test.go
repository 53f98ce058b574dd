package tcpkit

// Reliability: what a server in front of real clients must survive, at
// the library level. A client that sends and never reads, garbage, resets
// in the middle of a reply, half-closed clients, clients that send
// nothing. The CLI's share (churn, slowloris, drain, limits) is in
// cmd/tcpkit/reliability_test.go.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// relEcho is the echo server's OnData.
func relEcho(c *Conn, p []byte) { c.Write(p) }

// A relHeapSampler records the peak of the heap's live and unswept
// objects ("/memory/classes/heap/objects:bytes", what tcpkit serve's
// status line reports) from its start until Stop.
type relHeapSampler struct {
	stop     chan struct{}
	done     chan struct{}
	peak     atomic.Uint64
	samples  atomic.Int64
	stopOnce sync.Once
}

func startHeapSampler(t testing.TB) *relHeapSampler {
	s := &relHeapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > s.peak.Load() {
				s.peak.Store(v)
			}
			s.samples.Add(1)
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Stop ends the sampling and returns the peak in bytes.
func (s *relHeapSampler) Stop() uint64 {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return s.peak.Load()
}

// relSysctlMax returns the last (maximum) value of a tcp_rmem or tcp_wmem
// style sysctl, or 0 where it cannot be read.
func relSysctlMax(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
	return n
}

// relSlowWriter writes 1 MiB chunks to nc, never reading, until 1 GiB is
// sent, a write fails, or stalled reports true after a write made no
// progress for stallAfter. It returns the bytes the kernel took and the
// error that stopped it (nil when stalled or at 1 GiB).
func relSlowWriter(t testing.TB, nc net.Conn, stallAfter time.Duration, stalled func() bool) (sent int64, err error) {
	t.Helper()
	const limit = 1 << 30
	chunk := make([]byte, 1<<20)
	deadline := time.Now().Add(60 * time.Second) // bounds the loop whatever happens
	for sent < limit {
		if time.Now().After(deadline) {
			t.Fatalf("after %d bytes and 60s the writes neither stalled nor failed", sent)
		}
		nc.SetWriteDeadline(time.Now().Add(stallAfter))
		n, err := nc.Write(chunk[:min(len(chunk), limit-int(sent))])
		sent += int64(n)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if stalled() {
				return sent, nil
			}
		case err != nil:
			return sent, err
		}
	}
	return sent, nil
}

// A client that sends without reading, to an echo server: once the
// server's output is backlogged it stops reading, so the client's writes
// stall long before 1 GiB, the server's memory stays bounded, and other
// clients are still served.
func TestSlowReaderBackpressure(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		conns := make(chan *Conn, 2)
		srv := &Server{Engine: e, Events: Events{
			OnConnect: func(c *Conn) { conns <- c },
			OnData:    relEcho,
		}}
		addr := startServer(t, srv)

		runtime.GC() // what earlier tests left is not ours to count
		heap := startHeapSampler(t)
		start := time.Now()
		slow := rawDial(t, addr)
		sc := <-conns
		sent, err := relSlowWriter(t, slow, time.Second, sc.NeedDrain)
		stallTime := time.Since(start)
		if err != nil {
			t.Fatalf("slow client: write failed after %d bytes: %v", sent, err)
		}
		if sent >= 1<<30 {
			t.Fatalf("slow client: sent all of 1 GiB without stalling; the server did not push back")
		}
		// What can be in flight when it stalls: the socket buffers of both
		// ends, both ways, the server's high-water mark and read buffer, and
		// the chunk being written.
		rmem, wmem := relSysctlMax("/proc/sys/net/ipv4/tcp_rmem"), relSysctlMax("/proc/sys/net/ipv4/tcp_wmem")
		if rmem > 0 && wmem > 0 {
			bound := 2*(rmem+wmem) + DefaultHighWaterMark + MaxReadBufferSize + 1<<20
			if sent > bound {
				t.Errorf("slow client: sent %d bytes before stalling, more than the %d that socket buffers (tcp_rmem max %d, tcp_wmem max %d) and the high-water mark can hold", sent, bound, rmem, wmem)
			}
		}
		if r := sc.BytesRead(); r > sent {
			t.Errorf("server read %d bytes, more than the %d sent", r, sent)
		}

		// Another client is served while the slow one is stalled.
		other := rawDial(t, addr)
		<-conns
		exStart := time.Now()
		if _, err := other.Write([]byte("ping")); err != nil {
			t.Fatalf("other client: %v", err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(other, buf); err != nil || string(buf) != "ping" {
			t.Errorf("other client, while the slow one is stalled: read %q, %v; want %q", buf, err, "ping")
		}
		exTime := time.Since(exStart)

		// The slow one is still stalled: open, backlogged, not reading.
		select {
		case <-sc.Done():
			t.Errorf("the stalled connection was closed (%v); nothing should close it without a WriteTimeout", sc.Err())
		default:
		}
		if !sc.NeedDrain() {
			t.Errorf("the stalled connection's output is no longer backlogged")
		}
		peak := heap.Stop()
		t.Logf("slow client: %d bytes (%.1f MiB) accepted before its writes stalled, after %v; server read %d bytes; peak heap %.1f MiB over %d samples; other client's exchange took %v",
			sent, float64(sent)/(1<<20), stallTime.Round(time.Millisecond), sc.BytesRead(), float64(peak)/(1<<20), heap.samples.Load(), exTime.Round(time.Microsecond))
		if peak >= 64<<20 {
			t.Errorf("peak heap %.1f MiB, want under 64 MiB", float64(peak)/(1<<20))
		}
	})
}

// With WriteTimeout, a client that never reads is cut off: once the
// server's output has made no progress for the timeout, the connection
// closes with an error wrapping ErrWriteTimeout, and the client's next
// write fails on the reset.
func TestSlowReaderWriteTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const wt = 500 * time.Millisecond
		rec := newRecorder()
		type failure struct {
			err error
			at  time.Time
		}
		failed := make(chan failure, 1)
		conns := make(chan *Conn, 1)
		srv := &Server{
			Engine:      e,
			ConnOptions: ConnOptions{WriteTimeout: wt},
			Events: rec.record(Events{
				OnConnect: func(c *Conn) { conns <- c },
				OnData:    relEcho,
				OnError:   func(c *Conn, err error) { failed <- failure{err, time.Now()} },
			}),
		}
		addr := startServer(t, srv)
		start := time.Now()
		slow := rawDial(t, addr)
		sc := <-conns
		// The server's output stalls before the client's input does (the
		// client's writes back up only once the server stopped reading), so
		// the server cuts the connection while a client write is still
		// blocked: that write fails on the reset instead of timing out.
		sent, err := relSlowWriter(t, slow, 3*time.Second, func() bool { return true })
		clientEnd := time.Since(start)
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("slow client: after %d bytes and %v its write ended with %v, want ECONNRESET or EPIPE from the server's close", sent, clientEnd, err)
		}
		var f failure
		select {
		case f = <-failed:
		case <-time.After(waitTime):
			t.Fatalf("no OnError within %v of the client's write failing", waitTime)
		}
		if !errors.Is(f.err, ErrWriteTimeout) {
			t.Errorf("OnError got %v, want ErrWriteTimeout", f.err)
		}
		if want := "tcpkit: write timeout: the peer took nothing for 500ms"; f.err.Error() != want {
			t.Errorf("OnError got %q, want %q", f.err.Error(), want)
		}
		cut := f.at.Sub(start)
		if cut < wt {
			t.Errorf("closed %v after the client started, before the write timeout %v could pass", cut, wt)
		}
		rec.wait(t, "close true")
		var got []string
		for _, e := range rec.events() {
			if !strings.HasPrefix(e, "data ") {
				got = append(got, e)
			}
		}
		assertEvents(t, "server (without data)", got, []string{"connect", "error", "close true"})
		waitUntil(t, "no connection left", func() bool { return srv.Conns() == 0 })
		t.Logf("client sent %.1f MiB; the server cut it %v after the client started, and the client's write failed after %v; server wrote %d bytes",
			float64(sent)/(1<<20), cut.Round(time.Millisecond), clientEnd.Round(time.Millisecond), sc.BytesWritten())
	})
}

// A connection that is ending cannot wait for ever behind output its peer
// does not read: an echo server whose idle timeout ends a client that
// sends but never reads cuts it LingerTimeout later, with ErrEndTimeout
// and a reset, instead of leaving it open with the FIN queued behind the
// echo.
func TestEndWithStalledOutputIsCut(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const idle, linger = 200 * time.Millisecond, 300 * time.Millisecond
		failed := make(chan error, 1)
		timedOut := make(chan time.Time, 1)
		srv := &Server{
			Engine:      e,
			ConnOptions: ConnOptions{IdleTimeout: idle, LingerTimeout: linger},
			Events: Events{
				OnData:    relEcho,
				OnTimeout: func(c *Conn) { timedOut <- time.Now(); c.End() },
				OnError:   func(c *Conn, err error) { failed <- err },
			},
		}
		addr := startServer(t, srv)
		slow := rawDial(t, addr)
		if _, err := relSlowWriter(t, slow, idle/2, func() bool { return true }); err != nil {
			t.Fatalf("slow client: %v", err)
		}
		var endAt time.Time
		select {
		case endAt = <-timedOut:
		case <-time.After(waitTime):
			t.Fatalf("no idle timeout within %v", waitTime)
		}
		var err error
		select {
		case err = <-failed:
		case <-time.After(waitTime):
			t.Fatalf("the ended connection was not cut within %v", waitTime)
		}
		if took := time.Since(endAt); took < linger {
			t.Errorf("cut %v after End, before the linger timeout %v", took, linger)
		}
		if want := "tcpkit: end timeout: the peer took none of the remaining output for 300ms"; err == nil || err.Error() != want || !errors.Is(err, ErrEndTimeout) {
			t.Errorf("OnError got %v, want %q", err, want)
		}
		slow.SetWriteDeadline(time.Now().Add(waitTime))
		if _, err := slow.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("client write after the cut: %v, want ECONNRESET or EPIPE", err)
		}
		waitUntil(t, "no connection left", func() bool { return srv.Conns() == 0 })
	})
}

// Random bytes echo back identical, read concurrently with the writing.
func TestGarbageEcho(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const size = 4 << 20
		rec := newRecorder()
		ev := rec.record(Events{})
		ev.OnData = relEcho // the chunks are random: not logged
		srv := &Server{Engine: e, Events: ev}
		addr := startServer(t, srv)
		data := make([]byte, size)
		rand.Read(data)

		nc := rawDial(t, addr)
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		wrote := make(chan error, 1)
		go func() {
			_, err := nc.Write(data)
			if err == nil {
				err = nc.CloseWrite()
			}
			wrote <- err
		}()
		got, err := io.ReadAll(nc)
		if werr := <-wrote; werr != nil {
			t.Fatalf("writing %d random bytes: %v", size, werr)
		}
		if err != nil {
			t.Fatalf("reading the echo: %v after %d bytes", err, len(got))
		}
		if !bytes.Equal(got, data) {
			i := 0
			for i < len(got) && i < len(data) && got[i] == data[i] {
				i++
			}
			t.Fatalf("echo differs: got %d bytes, sent %d; first difference at byte %d", len(got), len(data), i)
		}
		rec.wait(t, "close false")
		// Whenever the echo ran ahead of the client's reading by more than the
		// high-water mark, an OnDrain followed: how often depends on timing.
		evs := slices.DeleteFunc(rec.events(), func(e string) bool { return e == "drain" })
		assertEvents(t, "server (without drain)", evs, []string{"connect", "end", "close false"})
	})
}

// A zero-length write, then a FIN: no data event, a clean end and close.
func TestGarbageEmptyWriteThenFIN(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rec := newRecorder()
		srv := &Server{Engine: e, Events: rec.record(Events{OnData: relEcho})}
		addr := startServer(t, srv)
		nc := rawDial(t, addr)
		if n, err := nc.Write([]byte{}); n != 0 || err != nil {
			t.Fatalf("zero-length write: %d, %v", n, err)
		}
		if err := nc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(nc); err != nil || len(got) != 0 {
			t.Errorf("client read %q, %v; want nothing, then EOF", got, err)
		}
		rec.wait(t, "close false")
		assertEvents(t, "server", rec.events(), []string{"connect", "end", "close false"})
	})
}

// A client resets the connection while the server is writing it an
// 8 MiB reply: OnError with ECONNRESET or EPIPE, OnClose(true), and the
// connection is gone (goleak, in TestMain, checks its goroutines).
func TestGarbageResetDuringLargeReply(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const size = 8 << 20
		big := make([]byte, size)
		rec := newRecorder()
		errs := make(chan error, 1)
		conns := make(chan *Conn, 1)
		srv := &Server{Engine: e, Events: rec.record(Events{
			OnConnect: func(c *Conn) { conns <- c },
			OnData:    func(c *Conn, p []byte) { c.Write(big) },
			OnError:   func(c *Conn, err error) { errs <- err },
		})}
		addr := startServer(t, srv)
		nc := rawDial(t, addr)
		sc := <-conns
		if _, err := nc.Write([]byte("go")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, make([]byte, 64<<10)); err != nil { // the reply is under way
			t.Fatalf("reading the start of the reply: %v", err)
		}
		if !sc.NeedDrain() {
			t.Fatalf("the server's 8 MiB reply is not backlogged: the reset would not land in the middle of it")
		}
		nc.SetLinger(0) // Close sends RST
		nc.Close()
		select {
		case err := <-errs:
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Errorf("OnError got %v, want ECONNRESET or EPIPE", err)
			}
		case <-time.After(waitTime):
			t.Fatalf("no OnError within %v of the reset", waitTime)
		}
		rec.wait(t, "close true")
		assertEvents(t, "server", rec.events(), []string{"connect", "data go", "error", "close true"})
		if w := sc.BytesWritten(); w >= size {
			t.Errorf("server wrote all %d bytes; the reset should have cut the reply", w)
		}
		waitUntil(t, "no connection left", func() bool { return srv.Conns() == 0 })
	})
}

// A client that sends, half-closes and reads on gets the whole reply
// then EOF: with AllowHalfOpen false, the End that follows its FIN still
// writes what OnData queued, and what OnEnd writes, before our FIN.
func TestHalfClosedClientGetsFullReply(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		reply := make([]byte, 16<<20) // far more than the socket buffers hold
		for i := range reply {
			reply[i] = byte(i % 251)
		}
		rec := newRecorder()
		queued := make(chan bool, 1)
		srv := &Server{Engine: e, Events: rec.record(Events{
			OnData: func(c *Conn, p []byte) {
				c.Write(reply)
				queued <- c.NeedDrain() // Buffered() misses what is being written
			},
			OnEnd: func(c *Conn) {
				if _, err := c.Write([]byte("bye")); err != nil {
					t.Errorf("Write in OnEnd: %v", err)
				}
			},
		})}
		addr := startServer(t, srv)
		nc := rawDial(t, addr)
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := nc.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		if err := nc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if !<-queued {
			t.Errorf("the reply was not queued: this test would not show that End flushes the queue")
		}
		got, err := io.ReadAll(nc)
		if err != nil {
			t.Fatalf("reading the reply: %v after %d bytes", err, len(got))
		}
		want := append(bytes.Clone(reply), "bye"...)
		if !bytes.Equal(got, want) {
			t.Errorf("half-closed client read %d bytes, want the %d-byte reply and %q, then EOF", len(got), len(reply), "bye")
		}
		rec.wait(t, "close false")
		// The reply went over the high-water mark, so OnDrain fires once it is
		// written; the reader resumes at that moment and finds the FIN, so
		// OnDrain (from the writing goroutine) and OnEnd may come either way.
		evs := rec.events()
		if !slices.Equal(evs, []string{"connect", "data request", "drain", "end", "close false"}) {
			assertEvents(t, "server", evs, []string{"connect", "data request", "end", "drain", "close false"})
		}
	})
}

// ReadTimeout closes a connection that sends nothing, even while the
// server writes to it: writes do not reset it.
func TestReadTimeoutDespiteWrites(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const rt = 300 * time.Millisecond
		rec := newRecorder()
		errs := make(chan error, 1)
		var tickers sync.WaitGroup
		var ticks atomic.Int64
		srv := &Server{
			Engine:      e,
			ConnOptions: ConnOptions{ReadTimeout: rt},
			Events: rec.record(Events{
				OnConnect: func(c *Conn) {
					tickers.Go(func() {
						tick := time.NewTicker(50 * time.Millisecond)
						defer tick.Stop()
						for {
							select {
							case <-c.Done():
								return
							case <-tick.C:
								if _, err := c.Write([]byte("tick\n")); err == nil {
									ticks.Add(1)
								}
							}
						}
					})
				},
				OnError: func(c *Conn, err error) { errs <- err },
			}),
		}
		addr := startServer(t, srv)
		t.Cleanup(tickers.Wait)
		dialed := time.Now() // the server's clock starts at accept: after this, maybe before Dial returns
		nc := rawDial(t, addr)
		opened := time.Now()
		got, err := io.ReadAll(nc)
		closedAt := time.Now()
		closed := closedAt.Sub(opened)
		if err != nil {
			t.Errorf("client: %v after %q, want the server's FIN", err, got)
		}
		if early := closedAt.Sub(dialed); early < rt {
			t.Errorf("closed %v after the dial began, before the read timeout %v", early, rt)
		}
		if closed > rt+time.Second {
			t.Errorf("closed %v after connecting, want within %v", closed, rt+time.Second)
		}
		n := strings.Count(string(got), "tick\n")
		if string(got) != strings.Repeat("tick\n", n) || n < 2 {
			t.Errorf("client read %q before the close, want at least 2 ticks: the server writing all along", got)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, ErrReadTimeout) {
				t.Errorf("OnError got %v, want ErrReadTimeout", err)
			}
			if want := "tcpkit: read timeout: nothing received for 300ms"; err.Error() != want {
				t.Errorf("OnError got %q, want %q", err.Error(), want)
			}
		case <-time.After(waitTime):
			t.Fatal("no OnError")
		}
		rec.wait(t, "close true")
		assertEvents(t, "server", rec.events(), []string{"connect", "error", "close true"})
		t.Logf("closed %v after connecting; %d ticks written, %d read by the client", closed.Round(time.Millisecond), ticks.Load(), n)
	})
}

// A read timeout that passes while a callback runs closes the connection
// once the callback has returned, not under it: what the callback writes
// goes out, then the close (ErrReadTimeout), on both engines.
func TestReadTimeoutWaitsForCallback(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const rt = 50 * time.Millisecond
		rec := newRecorder()
		wrote := make(chan error, 1)
		errs := make(chan error, 1)
		addr := startServer(t, &Server{
			Engine:      e,
			ConnOptions: ConnOptions{ReadTimeout: rt},
			Events: rec.record(Events{
				OnData: func(c *Conn, p []byte) {
					time.Sleep(3 * rt) // slow work: the read timeout passes meanwhile
					_, err := c.Write([]byte("reply"))
					wrote <- err
				},
				OnError: func(c *Conn, err error) { errs <- err },
			}),
		})
		nc := rawDial(t, addr)
		if _, err := nc.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(nc); string(got) != "reply" || err != nil {
			t.Errorf("client read %q, %v; want the reply, then the server's FIN", got, err)
		}
		if err := <-wrote; err != nil {
			t.Errorf("Write in the slow callback: %v, want none", err)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, ErrReadTimeout) {
				t.Errorf("OnError got %v, want ErrReadTimeout", err)
			}
		case <-time.After(waitTime):
			t.Fatal("no OnError")
		}
		rec.wait(t, "close true")
		assertEvents(t, "server", rec.events(), []string{"connect", "data request", "error", "close true"})
	})
}
