package tcpkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	testing_ = []byte("testing~")
	test     = []byte("test")
)

// seedEnding is the seed's server: reply "test" and end.
func seedEnding() Events {
	return Events{OnData: func(c *Conn, p []byte) {
		c.Write(test)
		c.End()
	}}
}

// The seed's first scenario, both sides in-process: the server replies and
// ends; the client sees the reply, the FIN, a clean close, and a write
// after that fails with EPIPE.
func TestSeedScenarioEvents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec, cliRec := newRecorder(), newRecorder()
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(seedEnding())})
		c := dialT(t, addr, cliRec.record(Events{
			OnConnect: func(c *Conn) { c.Write(testing_) },
		}))
		waitDone(t, c)
		srvRec.wait(t, "close false")

		assertEvents(t, "client", cliRec.events(), []string{"connect", "data test", "end", "close false"})
		assertEvents(t, "server", srvRec.events(), []string{"connect", "data testing~", "end", "close false"})

		_, err := c.Write(testing_)
		if !errors.Is(err, ErrPeerEnded) || !errors.Is(err, syscall.EPIPE) {
			t.Errorf("write after the server ended: got %v, want ErrPeerEnded wrapping EPIPE", err)
		}
		if c.Err() != nil {
			t.Errorf("Err() = %v, want nil after a clean close", c.Err())
		}
		if c.BytesWritten() != 8 || c.BytesRead() != 4 {
			t.Errorf("client wrote %d and read %d bytes, want 8 and 4", c.BytesWritten(), c.BytesRead())
		}
	})
}

// The seed's second scenario: the server keeps the connection open and
// replies to every message; the client ends when it is done.
func TestKeepOpenScenarioEvents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec, cliRec := newRecorder(), newRecorder()
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{
			OnData: func(c *Conn, p []byte) { c.Write(test) },
		})})
		c := dialT(t, addr, cliRec.record(Events{}))
		for i := 1; i <= 3; i++ {
			if _, err := c.Write(testing_); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			cliRec.waitN(t, "data test", i)
		}
		c.End()
		waitDone(t, c)
		srvRec.wait(t, "close false")

		assertEvents(t, "client", cliRec.events(), []string{"connect", "data test", "data test", "data test", "end", "close false"})
		assertEvents(t, "server", srvRec.events(), []string{"connect", "data testing~", "data testing~", "data testing~", "end", "close false"})
		if _, err := c.Write(testing_); !errors.Is(err, ErrWriteAfterEnd) {
			t.Errorf("write after End: got %v, want ErrWriteAfterEnd", err)
		}
	})
}

// When the server ends after replying, the client reads the reply, then a
// clean EOF, never a reset, even with more of its data still in flight to
// the server. The server keeps reading until the client's FIN, so nothing
// is left unread when it closes, which is what would make the kernel send
// a reset.
func TestEndAfterReplyIsCleanWithDataInFlight(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		conns := make(chan *Conn, 1)
		ev := seedEnding()
		ev.OnConnect = func(c *Conn) { conns <- c }
		srv := &Server{Engine: e, Events: srvRec.record(ev)}
		addr := startServer(t, srv)
		nc := rawDial(t, addr)
		sc := <-conns

		extra := bytes.Repeat([]byte("x"), 256<<10)
		if _, err := nc.Write(testing_); err != nil {
			t.Fatal(err)
		}
		srvRec.wait(t, "data testing~")
		if _, err := nc.Write(extra); err != nil { // arrives after the server's End
			t.Fatalf("write after the server's reply: %v", err)
		}
		got, err := io.ReadAll(nc) // the reply, then EOF: ReadAll fails on a reset
		if err != nil {
			t.Fatalf("client read: %v, want the reply then a clean EOF", err)
		}
		if string(got) != "test" {
			t.Errorf("client read %q, want %q", got, "test")
		}
		if srv.Conns() != 1 {
			t.Errorf("server closed before the client's FIN: it would reset unread data")
		}
		nc.CloseWrite()
		srvRec.wait(t, "close false")

		evs := srvRec.events()
		if evs[0] != "connect" || evs[1] != "data testing~" || evs[len(evs)-2] != "end" {
			t.Errorf("server events %q: want connect, data testing~, the extra data, end, close false", evs)
		}
		if want := int64(len(testing_) + len(extra)); sc.BytesRead() != want {
			t.Errorf("server read %d bytes before closing, want all %d", sc.BytesRead(), want)
		}
	})
}

// The idle timeout fires once per idle period, and activity re-arms it.
func TestIdleTimeoutFiresOncePerPeriod(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const idle = 50 * time.Millisecond
		srvRec := newRecorder()
		addr := startServer(t, &Server{
			Engine:      e,
			Events:      srvRec.record(Events{OnTimeout: func(c *Conn) {}}),
			ConnOptions: ConnOptions{IdleTimeout: idle},
		})
		nc := rawDial(t, addr)
		srvRec.wait(t, "timeout")
		// Several idle periods pass with no more timeouts: an absence,
		// which only time passing can show. A timeout in them would come
		// before "data again" below.
		time.Sleep(6 * idle)

		wrote := time.Now()
		nc.Write([]byte("again")) // activity re-arms the timeout
		srvRec.waitN(t, "timeout", 2)
		if took := time.Since(wrote); took < idle {
			t.Errorf("the second timeout came %v after the activity, before a whole idle period (%v)", took, idle)
		}
		assertEvents(t, "server", srvRec.events(), []string{"connect", "timeout", "data again", "timeout"})
	})
}

// Without an OnTimeout callback an idle connection is ended.
func TestIdleTimeoutEndsByDefault(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		addr := startServer(t, &Server{Engine: e, ConnOptions: ConnOptions{IdleTimeout: 20 * time.Millisecond}})
		nc := rawDial(t, addr)
		if got, err := io.ReadAll(nc); err != nil || len(got) != 0 {
			t.Fatalf("read = %q, %v; want a clean EOF from the idle timeout", got, err)
		}
	})
}

// Writing counts as activity: a connection that only sends is not idle.
func TestIdleTimeoutCountsWrites(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const idle = 80 * time.Millisecond
		srvRec := newRecorder()
		stop := make(chan struct{})
		addr := startServer(t, &Server{
			Engine: e,
			Events: srvRec.record(Events{
				OnConnect: func(c *Conn) {
					go func() {
						tick := time.NewTicker(idle / 8)
						defer tick.Stop()
						for {
							select {
							case <-stop:
								return
							case <-tick.C:
								c.Write([]byte("."))
							}
						}
					}()
				},
				OnTimeout: func(c *Conn) { c.Close() },
			}),
			ConnOptions: ConnOptions{IdleTimeout: idle},
		})
		nc := rawDial(t, addr)
		buf := make([]byte, 64)
		var got int
		for got < 30 { // 30 writes: 3.75 idle periods of writing only
			n, err := nc.Read(buf)
			if err != nil {
				t.Fatalf("read after %d bytes: %v (timed out while writing?)", got, err)
			}
			got += n
		}
		close(stop)
		srvRec.wait(t, "timeout")
		evs := srvRec.events()
		if evs[0] != "connect" || evs[1] != "timeout" {
			t.Errorf("events %q, want connect then timeout", evs)
		}
	})
}

// A reset from the peer is an error: OnError, then OnClose(true).
func TestPeerResetIsAnError(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		var gotErr error
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{
			OnError: func(c *Conn, err error) { gotErr = err },
		})})
		nc := rawDial(t, addr)
		nc.Write([]byte("hi"))
		srvRec.wait(t, "data hi")
		nc.SetLinger(0) // close sends RST
		nc.Close()
		srvRec.wait(t, "close true")
		assertEvents(t, "server", srvRec.events(), []string{"connect", "data hi", "error", "close true"})
		if !errors.Is(gotErr, syscall.ECONNRESET) {
			t.Errorf("OnError got %v, want ECONNRESET", gotErr)
		}
	})
}

// Output over the high-water mark sets NeedDrain; OnDrain fires once the
// peer has taken it all.
func TestDrainAfterHighWaterMark(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const total = 4 << 20 // well past the kernel's socket buffers
		srvRec := newRecorder()
		type state struct{ needDrain, buffered bool }
		got := make(chan state, 1)
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{
			OnConnect: func(c *Conn) {
				c.Write(make([]byte, total))
				got <- state{c.NeedDrain(), c.Buffered() > 0}
			},
			OnDrain: func(c *Conn) {
				if c.NeedDrain() || c.Buffered() != 0 {
					t.Errorf("in OnDrain: NeedDrain %v, Buffered %d; want false, 0", c.NeedDrain(), c.Buffered())
				}
				c.End()
			},
		})})
		nc := rawDial(t, addr)
		if s := <-got; !s.needDrain || !s.buffered {
			t.Errorf("after a %d-byte write to a reader that has not read: NeedDrain %v, buffered %v; want true, true", total, s.needDrain, s.buffered)
		}
		n, err := io.Copy(io.Discard, nc)
		if err != nil || n != total {
			t.Fatalf("client read %d bytes, %v; want %d and EOF", n, err, total)
		}
		nc.CloseWrite()
		srvRec.wait(t, "close false")
		assertEvents(t, "server", srvRec.events(), []string{"connect", "drain", "end", "close false"})
	})
}

// A panic in a callback closes that connection with a PanicError, and the
// server goes on serving others.
func TestPanicInCallbackIsContained(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		var gotErr error
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{
			OnData: func(c *Conn, p []byte) {
				if string(p) == "boom" {
					panic("boom")
				}
				c.Write(test)
				c.End()
			},
			OnError: func(c *Conn, err error) { gotErr = err },
		})})
		nc := rawDial(t, addr)
		nc.Write([]byte("boom"))
		srvRec.wait(t, "close true")
		var pe *PanicError
		if !errors.As(gotErr, &pe) || pe.Value != "boom" {
			t.Errorf("OnError got %v, want a PanicError with value boom", gotErr)
		}

		nc2 := rawDial(t, addr)
		nc2.Write(testing_)
		if got, err := io.ReadAll(nc2); err != nil || string(got) != "test" {
			t.Errorf("after a panic on another connection: read %q, %v; want test", got, err)
		}
	})
}

// With AllowHalfOpen the server may still write after the client's FIN.
func TestAllowHalfOpen(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		addr := startServer(t, &Server{
			Engine: e,
			Events: Events{OnEnd: func(c *Conn) {
				c.Write([]byte("late reply"))
				c.End()
			}},
			ConnOptions: ConnOptions{AllowHalfOpen: true},
		})
		nc := rawDial(t, addr)
		nc.Write([]byte("question"))
		nc.CloseWrite()
		if got, err := io.ReadAll(nc); err != nil || string(got) != "late reply" {
			t.Errorf("read %q, %v; want %q then EOF", got, err, "late reply")
		}
	})
}

// Pause stops OnData; Resume delivers what waited in the kernel.
func TestPauseResume(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		conns := make(chan *Conn, 1)
		var read atomic.Int64
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{
			OnConnect: func(c *Conn) { c.Pause(); conns <- c },
			OnData:    func(c *Conn, p []byte) { read.Add(int64(len(p))) },
		})})
		nc := rawDial(t, addr)
		sc := <-conns
		// Paused, the server reads nothing, which the client sees: the
		// kernel's buffers fill and TCP flow control stops its writes.
		sent, err := relSlowWriter(t, nc, 100*time.Millisecond, func() bool { return true })
		if err != nil {
			t.Fatalf("client: %v after %d bytes", err, sent)
		}
		if n := sc.BytesRead(); n != 0 || read.Load() != 0 {
			t.Errorf("paused, the server read %d bytes (OnData got %d); want none", n, read.Load())
		}
		assertEvents(t, "server while paused", srvRec.events(), []string{"connect"})
		sc.Resume()
		waitUntil(t, "all the client sent to be read", func() bool { return read.Load() == sent })
	})
}

// Close drops queued output and closes at once without an error.
func TestCloseIsImmediate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{
			OnData: func(c *Conn, p []byte) { c.Close() },
		})})
		nc := rawDial(t, addr)
		nc.Write([]byte("x"))
		srvRec.wait(t, "close false")
		if _, err := io.ReadAll(nc); err != nil {
			t.Errorf("client read after server Close: %v, want EOF", err)
		}
		assertEvents(t, "server", srvRec.events(), []string{"connect", "data x", "close false"})
	})
}

// IPv6 loopback works the same way.
func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	ln.Close()
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		addr := startServerOn(t, &Server{Engine: e, Events: srvRec.record(seedEnding())}, "tcp6", "[::1]:0")
		cliRec := newRecorder()
		c := dialT(t, addr, cliRec.record(Events{OnConnect: func(c *Conn) { c.Write(testing_) }}))
		waitDone(t, c)
		assertEvents(t, "client", cliRec.events(), []string{"connect", "data test", "end", "close false"})
		if ip := c.LocalAddr().(*net.TCPAddr).IP; ip.To4() != nil {
			t.Errorf("client local address %v, want IPv6", ip)
		}
	})
}

// WaitDrain lets a producer outside the callbacks write no faster than
// the peer reads.
func TestWaitDrain(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const chunk, chunks = 64 << 10, 64
		done := make(chan error, 1)
		addr := startServer(t, &Server{Engine: e, Events: Events{OnConnect: func(c *Conn) {
			go func() {
				maxQueued := 0
				for range chunks {
					c.Write(make([]byte, chunk))
					maxQueued = max(maxQueued, c.Buffered())
					if err := c.WaitDrain(t.Context()); err != nil {
						done <- err
						return
					}
				}
				if maxQueued > 2*chunk {
					done <- fmt.Errorf("queue grew to %d bytes, want at most two chunks", maxQueued)
					return
				}
				c.End()
				done <- nil
			}()
		}}})
		nc := rawDial(t, addr)
		n, err := io.Copy(io.Discard, nc)
		if err != nil || n != chunk*chunks {
			t.Fatalf("read %d bytes, %v; want %d", n, err, chunk*chunks)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// The idle timeout also fires when the connection is not reading: half
// open after the peer's FIN, or paused.
func TestIdleTimeoutWhileNotReading(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		for _, tt := range []struct {
			name  string
			opt   ConnOptions
			setup func(c *Conn)
			peer  func(nc *net.TCPConn)
		}{
			{"half open", ConnOptions{AllowHalfOpen: true}, func(c *Conn) {}, func(nc *net.TCPConn) { nc.CloseWrite() }},
			{"paused", ConnOptions{}, func(c *Conn) { c.Pause() }, func(nc *net.TCPConn) {}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				srvRec := newRecorder()
				tt.opt.IdleTimeout = 50 * time.Millisecond
				addr := startServer(t, &Server{
					Engine:      e,
					Events:      srvRec.record(Events{OnConnect: tt.setup, OnTimeout: func(c *Conn) { c.Close() }}),
					ConnOptions: tt.opt,
				})
				nc := rawDial(t, addr)
				srvRec.wait(t, "connect")
				tt.peer(nc)
				srvRec.wait(t, "timeout")
				srvRec.wait(t, "close false")
			})
		}
	})
}

// A callback that turns the idle timeout off turns it off, even when the
// timeout came due while the callback ran: whether it fires is decided
// between callbacks. (On the std engine the timer fires on a goroutine of
// its own, and it used to decide during a slow OnConnect, then fire once
// OnConnect had returned.)
func TestIdleTimeoutOffInSlowCallback(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		const idle = 20 * time.Millisecond
		srvRec := newRecorder()
		addr := startServer(t, &Server{
			Engine:      e,
			ConnOptions: ConnOptions{IdleTimeout: idle},
			Events: srvRec.record(Events{
				OnConnect: func(c *Conn) {
					time.Sleep(5 * idle) // slow work: the timeout comes due meanwhile
					c.SetTimeout(0)
					c.Write([]byte("ready\n"))
				},
				OnData:    func(c *Conn, p []byte) { c.Write(p) },
				OnTimeout: func(c *Conn) {},
			}),
		})
		nc := rawDial(t, addr)
		buf := make([]byte, 6)
		if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "ready\n" {
			t.Fatalf("read %q, %v; want the server's ready", buf, err)
		}
		if _, err := nc.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, buf[:1]); err != nil || buf[0] != 'x' {
			t.Fatalf("echo %q, %v; want %q", buf[:1], err, "x")
		}
		nc.CloseWrite()
		srvRec.wait(t, "close false")
		assertEvents(t, "server", srvRec.events(), []string{"connect", "data x", "end", "close false"})
	})
}

// OnConnect comes first, even when the idle timeout is due before
// OnConnect could run: on the std engine the timer fires on a goroutine
// of its own, and it once ran OnTimeout before OnConnect now and then
// (seen with more Ps than cores, and on a loaded machine).
func TestOnConnectBeforeTimeout(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8)) // more Ps than cores: the timer's goroutine runs at once
	forEachEngine(t, func(t *testing.T, e Engine) {
		const n = 3000
		var early atomic.Int64
		closed := make(chan struct{}, n)
		addr := startServer(t, &Server{Engine: e, ConnOptions: ConnOptions{IdleTimeout: time.Microsecond}, Events: Events{
			OnConnect: func(c *Conn) { c.SetValue("connected"); c.SetTimeout(0) },
			OnTimeout: func(c *Conn) {
				if c.Value() == nil {
					early.Add(1)
				}
				c.Close()
			},
			OnClose: func(c *Conn, _ bool) { closed <- struct{}{} },
		}})
		for range n {
			rawDial(t, addr).Close()
		}
		for range n {
			select {
			case <-closed:
			case <-time.After(waitTime):
				t.Fatalf("not every connection closed within %v", waitTime)
			}
		}
		if k := early.Load(); k > 0 {
			t.Errorf("OnTimeout ran before OnConnect on %d of %d connections", k, n)
		}
	})
}
