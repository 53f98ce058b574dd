package tcpkit

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Shutdown stops accepting and ends live connections with a FIN; tcpkit
// clients end in turn, and Shutdown returns once all have closed.
func TestShutdownEndsLiveConnections(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srv := &Server{Engine: e, Events: Events{OnData: func(c *Conn, p []byte) { c.Write(test) }}}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()

		var clients []*Conn
		var recs []*recorder
		for range 3 {
			rec := newRecorder()
			c := dialT(t, ln.Addr().String(), rec.record(Events{}))
			c.Write(testing_)
			rec.wait(t, "data test")
			clients, recs = append(clients, c), append(recs, rec)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if srv.Conns() != 0 {
			t.Errorf("after Shutdown: %d connections, want 0", srv.Conns())
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		for i, c := range clients {
			waitDone(t, c)
			assertEvents(t, "client", recs[i].events(), []string{"connect", "data test", "end", "close false"})
		}
		if nc, err := net.Dial("tcp4", ln.Addr().String()); err == nil {
			nc.Close()
			t.Errorf("a connection was accepted after Shutdown")
		}
		if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve after Shutdown returned %v, want ErrServerClosed", err)
		}
	})
}

// Shutdown gives up when its context ends first; Close then cuts the rest.
func TestShutdownHonoursContext(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srv := &Server{Engine: e, ConnOptions: ConnOptions{LingerTimeout: time.Minute}}
		addr := startServer(t, srv)
		nc := rawDial(t, addr) // a raw client that never sends its FIN
		waitUntil(t, "the connection to be accepted", func() bool { return srv.Conns() == 1 })

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want DeadlineExceeded while a peer holds its side open", err)
		}
		// The client did get our FIN.
		if got, err := io.ReadAll(nc); err != nil || len(got) != 0 {
			t.Errorf("client read %q, %v; want EOF", got, err)
		}
		srv.Close()
		waitUntil(t, "Close to cut the connection", func() bool { return srv.Conns() == 0 })
	})
}

// The linger timeout closes a connection whose peer never sends its FIN.
func TestLingerTimeoutClosesHalfClosed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		addr := startServer(t, &Server{
			Engine:      e,
			Events:      srvRec.record(seedEnding()),
			ConnOptions: ConnOptions{LingerTimeout: 30 * time.Millisecond},
		})
		nc := rawDial(t, addr)
		nc.Write(testing_)
		if got, err := io.ReadAll(nc); err != nil || string(got) != "test" {
			t.Fatalf("read %q, %v; want test then EOF", got, err)
		}
		srvRec.wait(t, "close false") // without our FIN
		assertEvents(t, "server", srvRec.events(), []string{"connect", "data testing~", "close false"})
	})
}

// 2,000 seed exchanges leave no connection, goroutine (goleak, in
// TestMain) or file descriptor behind.
func TestNoLeakAfter2000Connections(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srv := &Server{Engine: e, Events: seedEnding()}
		addr := startServer(t, srv)
		// One exchange first: the epoll engine opens its loops' fds (epoll,
		// eventfd, the reserve) when it starts serving, and they stay.
		if err := exchange(addr, make([]byte, 16)); err != nil {
			t.Fatalf("first exchange: %v", err)
		}
		waitUntil(t, "the first connection closed", func() bool { return srv.Conns() == 0 })
		before := openFDs(t)

		const total, workers = 2000, 16
		var wg sync.WaitGroup
		errs := make(chan error, total)
		jobs := make(chan int)
		for range workers {
			wg.Go(func() {
				buf := make([]byte, 16)
				for range jobs {
					errs <- exchange(addr, buf)
				}
			})
		}
		for i := range total {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(errs)
		failed := 0
		for err := range errs {
			if err != nil {
				if failed == 0 {
					t.Errorf("exchange: %v", err)
				}
				failed++
			}
		}
		if failed > 0 {
			t.Errorf("%d of %d exchanges failed", failed, total)
		}
		waitUntil(t, "all server connections closed", func() bool { return srv.Conns() == 0 })
		if after := openFDs(t); after != before {
			t.Errorf("open fds: %d before, %d after %d connections", before, after, total)
		}
	})
}

// exchange runs the seed's exchange as a plain client: send, read the
// reply up to the server's FIN, close.
func exchange(addr string, buf []byte) error {
	nc, err := net.DialTimeout("tcp4", addr, waitTime)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(waitTime))
	if _, err := nc.Write(testing_); err != nil {
		return err
	}
	n, err := io.ReadFull(nc, buf[:4])
	if err != nil {
		return err
	}
	if string(buf[:n]) != "test" {
		return errors.New("wrong reply " + string(buf[:n]))
	}
	if n, err := nc.Read(buf); err != io.EOF {
		return errors.New("want EOF after the reply, got more or an error: " + string(buf[:n]))
	}
	return nil
}

// Past MaxConns and MaxConnsPerIP a new connection is closed at once and
// reported; the others are served.
func TestConnLimits(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		for _, tt := range []struct {
			name               string
			maxConns, maxPerIP int
			want               error
		}{
			{"total", 2, 0, ErrTooManyConns},
			{"per IP", 0, 2, ErrTooManyConnsFromIP},
		} {
			t.Run(tt.name, func(t *testing.T) {
				rejected := make(chan error, 1)
				srv := &Server{Engine: e, MaxConns: tt.maxConns, MaxConnsPerIP: tt.maxPerIP}
				srv.Events = Events{OnData: func(c *Conn, p []byte) { c.Write(p) }}
				srv.OnReject = func(_ net.Addr, err error) { rejected <- err }
				addr := startServer(t, srv)
				a, b := rawDial(t, addr), rawDial(t, addr)
				waitUntil(t, "two connections", func() bool { return srv.Conns() == 2 })
				over := rawDial(t, addr)
				if err := <-rejected; !errors.Is(err, tt.want) {
					t.Errorf("OnReject got %v, want %v", err, tt.want)
				}
				if _, err := over.Read(make([]byte, 1)); err == nil {
					t.Errorf("the connection over the limit was served")
				}
				for _, nc := range []net.Conn{a, b} {
					nc.Write([]byte("hi"))
					buf := make([]byte, 2)
					if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "hi" {
						t.Errorf("a connection under the limit: %q, %v", buf, err)
					}
				}
				a.Close()
				waitUntil(t, "a slot to free up", func() bool { return srv.Conns() == 1 })
				c := rawDial(t, addr)
				c.Write([]byte("ok"))
				buf := make([]byte, 2)
				if _, err := io.ReadFull(c, buf); err != nil {
					t.Errorf("after a slot freed up: %v", err)
				}
			})
		}
	})
}

// Close right after Serve starts, before or while Serve sets up: Serve
// returns ErrServerClosed, every time, on every engine. (On epoll, a
// Close between Serve registering its listener and handing it to the
// loops once let the loops exit without it, and Serve waited for ever.)
func TestCloseWhileServeStarts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		for i := range 200 {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &Server{Engine: e, Loops: 2}
			served := make(chan error, 1)
			started := make(chan struct{})
			go func() {
				close(started)
				served <- srv.Serve(ln)
			}()
			<-started
			srv.Close()
			select {
			case err := <-served:
				if !errors.Is(err, ErrServerClosed) {
					t.Fatalf("round %d: Serve returned %v, want ErrServerClosed", i, err)
				}
			case <-time.After(waitTime):
				t.Fatalf("round %d: Serve still running %v after Close", i, waitTime)
			}
		}
	})
}

// A client told of a close may connect again at once: a connection's
// place under MaxConnsPerIP is given back before its OnClose runs. Here
// the first connection's OnClose (on the std engine, its own goroutine)
// connects again from the same address and waits to see the new
// connection served or refused.
func TestPerIPPlaceFreeInOnClose(t *testing.T) {
	rj := newRejections()
	connected := make(chan struct{}, 2)
	result := make(chan string, 1)
	var second net.Conn
	addrs := make(chan string, 1)
	var once sync.Once
	srv := &Server{
		Engine:        EngineStd,
		MaxConnsPerIP: 1,
		OnReject:      rj.onReject,
		Events: Events{
			OnConnect: func(c *Conn) { connected <- struct{}{} },
			OnClose: func(c *Conn, hadError bool) {
				once.Do(func() {
					nc, err := net.DialTimeout("tcp4", <-addrs, waitTime)
					if err != nil {
						result <- "dial: " + err.Error()
						return
					}
					second = nc
					select {
					case <-connected:
						result <- "served"
					case rj := <-rj.ch:
						result <- "refused: " + rj.err.Error()
					case <-time.After(waitTime):
						result <- "neither served nor refused"
					}
				})
			},
		},
	}
	addr := startServer(t, srv)
	addrs <- addr
	first := rawDial(t, addr)
	<-connected
	first.Close()
	select {
	case got := <-result:
		if got != "served" {
			t.Errorf("a connection from the same address, made in the first one's OnClose: %s; want it served", got)
		}
	case <-time.After(2 * waitTime):
		t.Fatal("OnClose did not report")
	}
	if second != nil {
		second.Close()
	}
}

// shakingCount is how many connections are reading their Preamble or in
// Handshake.
func (s *Server) shakingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shaking)
}
