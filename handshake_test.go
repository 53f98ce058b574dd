package tcpkit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tcpkit/internal/proxy"
)

// A rejection is one call of Server.OnReject.
type rejection struct {
	remote string
	err    error
}

// rejections collects OnReject's calls for a test to wait on.
type rejections struct {
	mu   sync.Mutex
	list []rejection
	ch   chan rejection
}

func newRejections() *rejections { return &rejections{ch: make(chan rejection, 16)} }

func (r *rejections) onReject(remote net.Addr, err error) {
	rj := rejection{remote.String(), err}
	r.mu.Lock()
	r.list = append(r.list, rj)
	r.mu.Unlock()
	select {
	case r.ch <- rj:
	default:
	}
}

func (r *rejections) next(t *testing.T) rejection {
	t.Helper()
	select {
	case rj := <-r.ch:
		return rj
	case <-time.After(waitTime):
		t.Fatalf("OnReject was not called within %v", waitTime)
		return rejection{}
	}
}

func (r *rejections) all() []rejection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rejection(nil), r.list...)
}

// readEOF reads from nc until the server's close and fails the test
// unless nothing came before it.
func readEOF(t *testing.T, nc net.Conn) {
	t.Helper()
	if b, err := io.ReadAll(nc); err != nil || len(b) != 0 {
		t.Errorf("client read %q, %v; want the server's close and nothing before it", b, err)
	}
}

// A failing Handshake: the connection is closed, OnReject gets the error
// with the accepted address, and no callback runs.
func TestHandshakeErrorRejects(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		errBoom := errors.New("handshake says no")
		rec := newRecorder()
		rj := newRejections()
		srv := &Server{
			Engine:    e,
			Events:    rec.record(Events{}),
			Handshake: func(nc net.Conn) (net.Conn, error) { return nil, errBoom },
			OnReject:  rj.onReject,
		}
		addr := startServer(t, srv)
		nc := rawDial(t, addr)
		got := rj.next(t)
		if got.err != errBoom || got.remote != nc.LocalAddr().String() {
			t.Errorf("OnReject(%s, %v), want (%s, %v)", got.remote, got.err, nc.LocalAddr(), errBoom)
		}
		readEOF(t, nc)
		if n := srv.Conns(); n != 0 {
			t.Errorf("Conns() = %d, want 0", n)
		}
		assertEvents(t, "server", rec.events(), nil)
		if n := len(rj.all()); n != 1 {
			t.Errorf("OnReject called %d times, want 1", n)
		}
	})
}

// seedEvents is the seed's server: reply "test" and end.
func seedEvents() Events {
	return Events{OnData: func(c *Conn, p []byte) { c.Write(test); c.End() }}
}

// oneByteHandshake waits for one byte from the client before the
// connection is served, and tells entered of each connection it starts on.
func oneByteHandshake(entered chan<- string) func(net.Conn) (net.Conn, error) {
	return func(nc net.Conn) (net.Conn, error) {
		entered <- nc.RemoteAddr().String()
		if _, err := io.ReadFull(nc, make([]byte, 1)); err != nil {
			return nil, err
		}
		return nc, nil
	}
}

func waitEntered(t *testing.T, entered <-chan string, want string) {
	t.Helper()
	select {
	case got := <-entered:
		if got != want {
			t.Fatalf("Handshake started on %s, want %s", got, want)
		}
	case <-time.After(waitTime):
		t.Fatalf("Handshake did not start on %s within %v", want, waitTime)
	}
}

// waitEnteredAll is waitEntered for connections dialed together, whose
// Handshakes run on goroutines of their own and so start in any order.
func waitEnteredAll(t *testing.T, entered <-chan string, want ...string) {
	t.Helper()
	var got []string
	timeout := time.After(waitTime)
	for len(got) < len(want) {
		select {
		case addr := <-entered:
			got = append(got, addr)
		case <-timeout:
			t.Fatalf("Handshake started on %q within %v, want %q", got, waitTime, want)
		}
	}
	slices.Sort(got)
	if w := slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
		t.Fatalf("Handshake started on %q, want %q in any order", got, w)
	}
}

// A Handshake that waits on a slow client holds up no other connection:
// others are accepted, shaken and served meanwhile, and the slow one is
// served once it goes on.
func TestHandshakeSlowDoesNotHoldUpAccepts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		entered := make(chan string, 8)
		rec := newRecorder()
		addr := startServer(t, &Server{Engine: e, Events: rec.record(seedEvents()), Handshake: oneByteHandshake(entered)})
		slow := rawDial(t, addr) // sends nothing yet: its Handshake waits
		waitEntered(t, entered, slow.LocalAddr().String())
		for i := range 3 {
			nc := rawDial(t, addr)
			waitEntered(t, entered, nc.LocalAddr().String())
			if _, err := nc.Write([]byte("Htesting~")); err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(nc); err != nil || string(got) != "test" {
				t.Fatalf("client %d, while another's Handshake waits: read %q, %v; want \"test\" then EOF", i+1, got, err)
			}
			nc.Close() // our FIN: the server's connection closes
		}
		if _, err := slow.Write([]byte("Htesting~")); err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(slow); err != nil || string(got) != "test" {
			t.Errorf("the slow client: read %q, %v; want \"test\" then EOF", got, err)
		}
		slow.Close()
		rec.waitN(t, "close false", 4)
		if got := rec.events(); len(got) != 4*4 {
			t.Errorf("server events: %q, want connect, data, end and close for each of 4 connections", got)
		}
	})
}

// Close interrupts a Handshake in progress: the connection is closed, the
// Handshake returns, no callback runs, and no goroutine is left (goleak,
// in TestMain).
func TestHandshakeInterruptedByClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		entered := make(chan string, 1)
		returned := make(chan error, 1)
		rec := newRecorder()
		shake := oneByteHandshake(entered)
		srv := &Server{
			Engine: e,
			Events: rec.record(seedEvents()),
			Handshake: func(nc net.Conn) (net.Conn, error) {
				hc, err := shake(nc)
				returned <- err
				return hc, err
			},
			OnReject: func(net.Addr, error) {},
		}
		addr := startServer(t, srv)
		nc := rawDial(t, addr)
		waitEntered(t, entered, nc.LocalAddr().String())
		if err := srv.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-returned:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("the interrupted Handshake's read failed with %v, want net.ErrClosed", err)
			}
		case <-time.After(waitTime):
			t.Fatalf("Close did not interrupt the Handshake within %v", waitTime)
		}
		readEOF(t, nc)
		assertEvents(t, "server", rec.events(), nil)
		if n := srv.Conns(); n != 0 {
			t.Errorf("Conns() = %d, want 0", n)
		}
	})
}

// Shutdown counts the connections in Handshake as open and gives each
// FirstMessageGrace to finish it, as it gives a connection that has sent
// nothing yet for its first message: one that finishes in time is served
// and ended, one that stalls is closed after the grace, and Shutdown
// returns then, not after the Handshake's own timeout.
func TestShutdownGivesHandshakesAGrace(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		entered := make(chan string, 2)
		srv := &Server{
			Engine:    e,
			Events:    seedEvents(),
			Handshake: oneByteHandshake(entered),
			OnReject:  func(net.Addr, error) {},
		}
		addr := startServer(t, srv)
		stalled, late := rawDial(t, addr), rawDial(t, addr)
		waitEnteredAll(t, entered, stalled.LocalAddr().String(), late.LocalAddr().String())
		if n := srv.Conns(); n != 2 {
			t.Errorf("Conns() = %d in Handshake, want 2", n)
		}
		start := time.Now()
		shut := make(chan error, 1)
		go func() { shut <- srv.Shutdown(context.Background()) }()
		waitUntil(t, "the shutdown to start", func() bool { return srv.inShutdown.Load() })
		if _, err := late.Write([]byte("xtesting~")); err != nil { // its handshake byte, then its message
			t.Fatal(err)
		}
		if got, err := io.ReadAll(late); string(got) != "test" || err != nil {
			t.Errorf("the client whose handshake ended within the grace read %q, %v; want test", got, err)
		}
		late.Close()
		readEOF(t, stalled)
		select {
		case err := <-shut:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		case <-time.After(waitTime):
			t.Fatalf("Shutdown did not return within %v", waitTime)
		}
		if took := time.Since(start); took < FirstMessageGrace || took > FirstMessageGrace+time.Second {
			t.Errorf("Shutdown took %v, want about FirstMessageGrace (%v)", took, FirstMessageGrace)
		}
	})
}

// A Handshake that fails during Shutdown is told to OnReject before
// Shutdown returns: serve's "rejected" line then comes before its last
// line, not after its output was closed (it was lost now and then).
func TestShutdownReturnsAfterOnReject(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		for range 50 {
			var told atomic.Bool
			entered := make(chan string, 1)
			shake := oneByteHandshake(entered)
			srv := &Server{
				Engine: e,
				Handshake: func(nc net.Conn) (net.Conn, error) {
					if _, err := shake(nc); err != nil {
						return nil, err
					}
					return nil, errors.New("a bad header")
				},
				OnReject: func(net.Addr, error) { told.Store(true) },
			}
			addr := startServer(t, srv)
			nc := rawDial(t, addr)
			waitEntered(t, entered, nc.LocalAddr().String())
			shut := make(chan error, 1)
			go func() { shut <- srv.Shutdown(context.Background()) }()
			waitUntil(t, "the shutdown to start", func() bool { return srv.inShutdown.Load() })
			nc.Write([]byte("x"))
			if err := <-shut; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if !told.Load() {
				t.Fatal("Shutdown returned before OnReject was told of the failed Handshake")
			}
			nc.Close()
		}
	})
}

// A connection that Close cuts in the middle of its Handshake was not
// rejected: the server closed it itself, as serveConn does not report
// ErrServerClosed either. Reporting the Handshake's read error instead
// makes serve print, for each connection a drain cuts, "rejected : ADDR :
// bad PROXY protocol header: read tcp ...: use of closed network
// connection" and count it in tcpkit_connections_rejected_total.
func TestHandshakeCutByCloseIsNotRejected(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		entered := make(chan string, 1)
		returned := make(chan struct{})
		rj := newRejections()
		shake := oneByteHandshake(entered)
		srv := &Server{
			Engine: e,
			Events: seedEvents(),
			Handshake: func(nc net.Conn) (net.Conn, error) {
				defer close(returned)
				return shake(nc)
			},
			OnReject: rj.onReject,
		}
		addr := startServer(t, srv)
		nc := rawDial(t, addr)
		waitEntered(t, entered, nc.LocalAddr().String())
		srv.Close()
		select {
		case <-returned:
		case <-time.After(waitTime):
			t.Fatalf("Close did not interrupt the Handshake within %v", waitTime)
		}
		readEOF(t, nc)
		waitHandshakeGoroutines(t) // OnReject, if called, ran on it
		if got := rj.all(); len(got) != 0 {
			t.Errorf("OnReject(%s, %v) for a connection Close cut; want no call", got[0].remote, got[0].err)
		}
	})
}

// waitHandshakeGoroutines waits until no goroutine of Serve's runs a
// Handshake or what follows it (OnReject, serving): they have no event of
// their own to wait on. They are closures in Serve or in the engine's
// serve function (serveStd), whatever that is named, or the epoll
// engine's startHandshake (which then tells the loop).
func waitHandshakeGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	waitUntil(t, "Serve's handshake goroutines to end", func() bool {
		n := runtime.Stack(buf, true)
		return !serveClosure.Match(buf[:n])
	})
}

// serveClosure matches a closure of Serve's, or of serveStd's, in a stack.
var serveClosure = regexp.MustCompile(`tcpkit\.\(\*(Server\)\.[Ss]erve|loop\)\.startHandshake)\w*\.func`)

// A Handshake that succeeds after Close (it did not read the connection,
// so Close could not interrupt it) gets its connection closed, not served:
// no callback, no rejection.
func TestHandshakeDoneAfterClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		entered := make(chan struct{})
		release := make(chan struct{})
		returned := make(chan struct{})
		rec := newRecorder()
		rj := newRejections()
		srv := &Server{
			Engine: e,
			Events: rec.record(seedEvents()),
			Handshake: func(nc net.Conn) (net.Conn, error) {
				defer close(returned)
				close(entered)
				<-release
				return nc, nil
			},
			OnReject: rj.onReject,
		}
		addr := startServer(t, srv)
		nc := rawDial(t, addr)
		select {
		case <-entered:
		case <-time.After(waitTime):
			t.Fatal("Handshake did not start")
		}
		srv.Close()
		close(release)
		select {
		case <-returned:
		case <-time.After(waitTime):
			t.Fatal("Handshake did not return")
		}
		readEOF(t, nc)
		waitHandshakeGoroutines(t)
		assertEvents(t, "server", rec.events(), nil)
		if got := rj.all(); len(got) != 0 {
			t.Errorf("OnReject called: %v; want no call for a connection Close cut", got)
		}
	})
}

// claimed is a connection whose RemoteAddr is what its client claimed in
// a one-byte header: 'A' or 'B'.
type claimed struct {
	net.Conn
	remote net.Addr
}

func (c *claimed) RemoteAddr() net.Addr { return c.remote }

var claims = map[byte]*net.TCPAddr{
	'A': {IP: net.IPv4(192, 0, 2, 1), Port: 1000},
	'B': {IP: net.IPv4(192, 0, 2, 2), Port: 2000},
}

// The per-IP limit counts the address Handshake returns, not the socket's:
// every client here is 127.0.0.1, but they claim two addresses.
func TestHandshakePerIPLimitSeesHandshakeAddress(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rec := newRecorder()
		rj := newRejections()
		srv := &Server{
			Engine:        e,
			MaxConnsPerIP: 1,
			Handshake: func(nc net.Conn) (net.Conn, error) {
				b := make([]byte, 1)
				if _, err := io.ReadFull(nc, b); err != nil {
					return nil, err
				}
				return &claimed{Conn: nc, remote: claims[b[0]]}, nil
			},
			Events: Events{
				OnConnect: func(c *Conn) { rec.add("connect " + c.RemoteAddr().String()) },
				OnClose:   func(c *Conn, hadError bool) { rec.add("close " + c.RemoteAddr().String()) },
			},
			OnReject: rj.onReject,
		}
		addr := startServer(t, srv)
		dialClaiming := func(claim byte) *net.TCPConn {
			nc := rawDial(t, addr)
			if _, err := nc.Write([]byte{claim}); err != nil {
				t.Fatal(err)
			}
			return nc
		}
		a1 := dialClaiming('A')
		rec.wait(t, "connect 192.0.2.1:1000")
		a2 := dialClaiming('A') // a second from 192.0.2.1: over the limit
		got := rj.next(t)
		if got.remote != "192.0.2.1:1000" || got.err != ErrTooManyConnsFromIP {
			t.Errorf("OnReject(%s, %v), want (192.0.2.1:1000, ErrTooManyConnsFromIP)", got.remote, got.err)
		}
		readEOF(t, a2)
		dialClaiming('B') // 192.0.2.2: its own limit, though from 127.0.0.1 too
		rec.wait(t, "connect 192.0.2.2:2000")
		a1.Close() // frees 192.0.2.1's place
		rec.wait(t, "close 192.0.2.1:1000")
		dialClaiming('A')
		rec.waitN(t, "connect 192.0.2.1:1000", 2)
		if n := len(rj.all()); n != 1 {
			t.Errorf("OnReject called %d times, want once: %v", n, rj.all())
		}
		// a1 counts until its OnClose returned.
		waitUntil(t, "Conns() to be 2", func() bool { return srv.Conns() == 2 })
	})
}

// End to end with the PROXY protocol: a Dialer whose Handshake writes a
// header, a Server whose Preamble reads it. The server's callbacks see
// the claimed client; the seed's exchange, FIN included, works through
// the wrapped connection.
func TestHandshakeProxyProtocolEndToEnd(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		var remote, local string
		pol := &proxy.Policy{From: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		srv := &Server{
			Engine:   e,
			Preamble: &Preamble{Allow: pol.Allow, Parse: pol.Parse},
			Events: srvRec.record(Events{
				OnConnect: func(c *Conn) { remote, local = c.RemoteAddr().String(), c.LocalAddr().String() },
				OnData:    func(c *Conn, p []byte) { c.Write(test); c.End() },
			}),
		}
		addr := startServer(t, srv)
		src := &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40000}
		dst := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5000}
		d := Dialer{Engine: e, Handshake: func(ctx context.Context, nc net.Conn) (net.Conn, error) {
			return nc, proxy.WriteHeader(nc, 2, src, dst)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		cliRec := newRecorder()
		c, err := d.Dial(ctx, "tcp", addr, cliRec.record(Events{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); waitDone(t, c) })
		c.Write(testing_)
		waitDone(t, c)
		srvRec.wait(t, "close false")
		assertEvents(t, "client", cliRec.events(), []string{"connect", "data test", "end", "close false"})
		assertEvents(t, "server", srvRec.events(), []string{"connect", "data testing~", "end", "close false"})
		if remote != src.String() || local != dst.String() {
			t.Errorf("server saw %s -> %s, want the header's %s -> %s", remote, local, src, dst)
		}
	})
}

// rawListener accepts one connection on 127.0.0.1 and returns everything
// the client sent until it closed.
func rawListener(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1)
	go func() {
		defer ln.Close()
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitTime))
		nc, err := ln.Accept()
		if err != nil {
			ch <- "accept: " + err.Error()
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(waitTime))
		b, err := io.ReadAll(nc)
		if err != nil {
			ch <- string(b) + " read: " + err.Error()
			return
		}
		ch <- string(b)
	}()
	return ln.Addr().String(), ch
}

type ctxKey struct{}

// A Dialer.Handshake error fails Dial with that error and closes the
// connection: the server sees what the Handshake wrote, then the close;
// no callback runs. The Handshake gets Dial's context.
func TestDialerHandshakeError(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		addr, got := rawListener(t)
		errBoom := errors.New("dial handshake says no")
		var sawValue any
		d := Dialer{Engine: e, Handshake: func(ctx context.Context, nc net.Conn) (net.Conn, error) {
			sawValue = ctx.Value(ctxKey{})
			nc.Write([]byte("HDR\n"))
			return nil, errBoom
		}}
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "dial's"), waitTime)
		defer cancel()
		rec := newRecorder()
		c, err := d.Dial(ctx, "tcp", addr, rec.record(Events{}))
		if c != nil || err != errBoom {
			t.Fatalf("Dial = %v, %v; want nil, the Handshake's error", c, err)
		}
		select {
		case s := <-got:
			if s != "HDR\n" {
				t.Errorf("server read %q, want \"HDR\\n\" then the close", s)
			}
		case <-time.After(2 * waitTime):
			t.Fatal("the server did not see the connection close")
		}
		if sawValue != "dial's" {
			t.Errorf("Handshake's context value = %v, want Dial's context", sawValue)
		}
		assertEvents(t, "client", rec.events(), nil)
	})
}

// A Dialer.Handshake's bytes go out before anything written on the Conn,
// and the Conn wraps what the Handshake returned.
func TestDialerHandshakeWraps(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		addr, got := rawListener(t)
		claim := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 9}
		d := Dialer{Engine: e, Handshake: func(ctx context.Context, nc net.Conn) (net.Conn, error) {
			if _, err := nc.Write([]byte("HDR\n")); err != nil {
				return nil, err
			}
			return &claimed{Conn: nc, remote: claim}, nil
		}}
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		rec := newRecorder()
		c, err := d.Dial(ctx, "tcp", addr, rec.record(Events{}))
		if err != nil {
			t.Fatal(err)
		}
		if c.RemoteAddr() != claim {
			t.Errorf("RemoteAddr = %v, want the Handshake's connection's %v", c.RemoteAddr(), claim)
		}
		c.Write(testing_)
		rec.wait(t, "connect")
		c.End() // the FIN after what was written; the server then closes
		waitDone(t, c)
		select {
		case s := <-got:
			if s != "HDR\ntesting~" {
				t.Errorf("server read %q, want \"HDR\\ntesting~\"", s)
			}
		case <-time.After(2 * waitTime):
			t.Fatal("the server did not see the connection close")
		}
	})
}
