package tcpkit

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TLS and Dial at their edges: a cancel mid-handshake, a close_notify
// without a FIN, a reset that a write meets first.

// A Dial whose ctx is cancelled in the middle of its TLS handshake (the
// server read the ClientHello and says nothing) returns the ctx's error
// at once, and closes its connection: no descriptor is left behind.
func TestDialTLSCancelledMidHandshake(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				accepted <- c
			}
		}()
		fds := openFDs(t)
		ctx, cancel := context.WithCancel(context.Background())
		entered := make(chan struct{})
		d := Dialer{Engine: e, Handshake: func(ctx context.Context, nc net.Conn) (net.Conn, error) {
			close(entered)
			tc := tls.Client(nc, testTLS().client)
			return tc, tc.HandshakeContext(ctx)
		}}
		res := make(chan error, 1)
		go func() {
			c, err := d.Dial(ctx, "tcp", ln.Addr().String(), Events{})
			if c != nil {
				c.Close()
			}
			res <- err
		}()
		<-entered
		sc := <-accepted
		defer sc.Close()
		sc.Read(make([]byte, 1)) // the ClientHello came
		cancel()
		select {
		case err := <-res:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Dial: %v, want context.Canceled", err)
			}
		case <-time.After(waitTime):
			t.Fatal("Dial did not return after cancel")
		}
		sc.SetReadDeadline(time.Now().Add(waitTime))
		if _, err := io.Copy(io.Discard, sc); err != nil {
			t.Errorf("server side: %v, want the client's close", err)
		}
		sc.Close()
		waitUntil(t, "fds back", func() bool { return openFDs(t) <= fds })
	})
}

// A client's close_notify without its FIN is the peer's end: OnEnd, then
// the server's own close_notify and FIN, and a clean close once the
// client's FIN comes.
func TestTLSCloseNotifyWithoutFIN(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rec := newRecorder()
		addr := startServer(t, &Server{Engine: e, Handshake: tlsServer(), Events: rec.record(Events{})})
		tc := tlsDial(t, addr)
		tc.Write([]byte("hi"))
		rec.wait(t, "data hi")
		if err := tc.CloseWrite(); err != nil { // close_notify, no FIN
			t.Fatal(err)
		}
		rec.wait(t, "end")
		got, err := io.ReadAll(tc)
		if err != nil || len(got) != 0 {
			t.Errorf("client read %q, %v; want close_notify", got, err)
		}
		if n, err := tc.NetConn().Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("socket: %d, %v, want FIN", n, err)
		}
		tc.NetConn().(*net.TCPConn).CloseWrite()
		rec.wait(t, "close false")
		assertEvents(t, "server", rec.events(), []string{"connect", "data hi", "end", "close false"})
	})
}

// TestResetRacingWriteIsNoEnd over TLS: a reset after the handshake that
// a write on another goroutine meets first is no end (OnEnd) and no
// clean close, on either engine.
func TestTLSResetRacingWriteIsNoEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				tc := tls.Server(nc, testTLS().server)
				tc.SetDeadline(time.Now().Add(waitTime))
				tc.Handshake()
				nc.(*net.TCPConn).SetLinger(0)
				nc.Close()
			})
		}
	})
	forEachEngine(t, func(t *testing.T, e Engine) {
		const n = 300
		var ends, clean int64
		var mu sync.Mutex
		closed := make(chan struct{}, n)
		d := Dialer{Engine: e, Handshake: func(ctx context.Context, nc net.Conn) (net.Conn, error) {
			tc := tls.Client(nc, testTLS().client)
			return tc, tc.HandshakeContext(ctx)
		}}
		var writers sync.WaitGroup
		for range n {
			c, err := d.Dial(context.Background(), "tcp", ln.Addr().String(), Events{
				OnEnd: func(*Conn) { mu.Lock(); ends++; mu.Unlock() },
				OnClose: func(_ *Conn, hadError bool) {
					if !hadError {
						mu.Lock()
						clean++
						mu.Unlock()
					}
					closed <- struct{}{}
				},
			})
			if err != nil {
				closed <- struct{}{}
				continue
			}
			writers.Go(func() {
				for {
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(10 * time.Microsecond)
				}
			})
		}
		deadline := time.After(2 * waitTime)
		for range n {
			select {
			case <-closed:
			case <-deadline:
				t.Fatalf("not every connection closed")
			}
		}
		writers.Wait()
		if ends > 0 || clean > 0 {
			t.Errorf("of %d TLS connections reset by the peer, %d reported OnEnd and %d closed clean", n, ends, clean)
		}
	})
}
