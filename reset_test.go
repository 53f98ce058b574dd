package tcpkit

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
)

// Reset sends a RST: the peer reads what came before it, then
// ECONNRESET, never a clean EOF; the conn itself closes without an error,
// the reset being its own doing. Both engines, and a dialed conn.
func TestConnReset(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rec := newRecorder()
		addr := startServer(t, &Server{Engine: e, Events: rec.record(Events{
			OnData: func(c *Conn, p []byte) {
				c.Write([]byte("last words"))
				c.Reset()
			},
		})})
		nc := rawDial(t, addr)
		sendT(t, nc, "hello")
		b, err := io.ReadAll(nc)
		if string(b) != "last words" || !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the client read %q and then %v, want %q and then ECONNRESET", b, err, "last words")
		}
		rec.wait(t, "close false")
		assertEvents(t, "server", rec.events(), []string{"connect", "data hello", "close false"})
	})
	t.Run("dialed", func(t *testing.T) {
		peer := make(chan error, 1)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				peer <- err
				return
			}
			defer nc.Close()
			_, err = io.ReadAll(nc)
			peer <- err
		}()
		c := dialT(t, ln.Addr().String(), Events{})
		c.Write([]byte("hi"))
		c.Reset()
		waitDone(t, c)
		if err := <-peer; !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the server's read ended with %v, want ECONNRESET", err)
		}
		if c.Err() != nil {
			t.Errorf("Err() after Reset = %v, want nil: the reset was ours", c.Err())
		}
	})
}

// After StopAccepting a new client is refused, Serve returns, and the
// connections open go on as before until they end by themselves.
func TestStopAccepting(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srv := &Server{Engine: e, Events: Events{OnData: func(c *Conn, p []byte) { c.Write(p) }}}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		defer srv.Close()
		nc := rawDial(t, ln.Addr().String())
		sendT(t, nc, "before")
		if got := readFullT(t, nc, 6); got != "before" {
			t.Fatalf("echo %q, want %q", got, "before")
		}
		if err := srv.StopAccepting(); err != nil {
			t.Fatalf("StopAccepting: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed or net.ErrClosed", err)
		}
		if c, err := net.Dial("tcp4", ln.Addr().String()); err == nil {
			c.Close()
			t.Errorf("a client was accepted after StopAccepting")
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("a client after StopAccepting got %v, want ECONNREFUSED", err)
		}
		sendT(t, nc, "after")
		if got := readFullT(t, nc, 5); got != "after" {
			t.Fatalf("echo after StopAccepting %q, want %q", got, "after")
		}
		if n := srv.Conns(); n != 1 {
			t.Errorf("Conns() = %d, want the one still open", n)
		}
		nc.CloseWrite()
		if b, err := io.ReadAll(nc); err != nil || len(b) != 0 {
			t.Errorf("after our FIN: read %q, %v; want the server's FIN", b, err)
		}
		waitUntil(t, "the connection closed", func() bool { return srv.Conns() == 0 })
	})
}

func sendT(t testing.TB, nc net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(nc, s); err != nil {
		t.Fatalf("writing %q: %v", s, err)
	}
}

func readFullT(t testing.TB, nc net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(nc, b); err != nil {
		t.Fatalf("reading %d bytes: %v (read %q)", n, err, b)
	}
	return string(b)
}
