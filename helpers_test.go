package tcpkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTime bounds every wait in these tests: events on loopback take
// microseconds, so reaching it means the event will not come.
const waitTime = 5 * time.Second

// engines are the engines every test that starts a Server runs on: std
// everywhere, and epoll where it is built (Linux).
var engines = func() []Engine {
	if epollBuilt {
		return []Engine{EngineStd, EngineEpoll}
	}
	return []Engine{EngineStd}
}()

// forEachEngine runs f in a subtest per engine, named "std" and "epoll",
// one after the other: f sets Engine: e on the Server it starts.
func forEachEngine(t *testing.T, f func(t *testing.T, e Engine)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) { f(t, e) })
	}
}

// startServer serves srv on a fresh loopback port and returns the address.
// The server is closed when the test ends.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	return startServerOn(t, srv, "tcp4", "127.0.0.1:0")
}

// startServerOn is startServer on a listener of its own. srv.Engine must
// be set: a test says which engine it covers, rather than getting the one
// EngineAuto picks (epoll on Linux) in its std run too.
func startServerOn(t testing.TB, srv *Server, network, addr string) string {
	t.Helper()
	if srv.Engine == EngineAuto {
		t.Fatalf("startServer: set Server.Engine (forEachEngine's, or EngineStd for a Handshake)")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		waitUntil(t, "server connections closed", func() bool { return srv.Conns() == 0 })
	})
	return ln.Addr().String()
}

// dialT connects a tcpkit client and closes it when the test ends.
func dialT(t testing.TB, addr string, ev Events) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, ev)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() {
		c.Close()
		waitDone(t, c)
	})
	return c
}

// rawDial opens a plain net.TCPConn, to see exactly what goes on the wire.
func rawDial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTime)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(waitTime))
	return nc.(*net.TCPConn)
}

func waitDone(t testing.TB, c *Conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTime):
		t.Fatalf("connection %d did not close within %v", c.ID(), waitTime)
	}
}

// waitUntil polls cond until it holds or waitTime passes. For state with
// no event to wait on (counts kept by the kernel or the server).
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A recorder logs a connection's events as short strings, in order, and
// lets a test wait for one.
type recorder struct {
	mu      sync.Mutex
	log     []string
	changed chan struct{} // closed and replaced at each event
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// wait blocks until event has been logged n times in all.
func (r *recorder) waitN(t testing.TB, event string, n int) {
	t.Helper()
	timeout := time.After(waitTime)
	for {
		r.mu.Lock()
		got, changed := 0, r.changed
		for _, e := range r.log {
			if e == event {
				got++
			}
		}
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("event %q seen %d times, want %d; events: %q", event, got, n, r.events())
		}
	}
}

func (r *recorder) wait(t testing.TB, event string) { t.Helper(); r.waitN(t, event, 1) }

// record wraps ev so that every event is logged in r before ev's own
// callback runs: "connect", "data <text>", "end", "timeout", "drain",
// "error", "close <hadError>".
func (r *recorder) record(ev Events) Events {
	return Events{
		OnConnect: func(c *Conn) { r.add("connect"); call(ev.OnConnect, c) },
		OnData: func(c *Conn, p []byte) {
			r.add("data " + string(p))
			if ev.OnData != nil {
				ev.OnData(c, p)
			}
		},
		OnEnd:     func(c *Conn) { r.add("end"); call(ev.OnEnd, c) },
		OnTimeout: func(c *Conn) { r.add("timeout"); call(ev.OnTimeout, c) },
		OnDrain:   func(c *Conn) { r.add("drain"); call(ev.OnDrain, c) },
		OnError: func(c *Conn, err error) {
			r.add("error")
			if ev.OnError != nil {
				ev.OnError(c, err)
			}
		},
		OnClose: func(c *Conn, hadError bool) {
			r.add(fmt.Sprint("close ", hadError))
			if ev.OnClose != nil {
				ev.OnClose(c, hadError)
			}
		},
	}
}

func call(f func(*Conn), c *Conn) {
	if f != nil {
		f(c)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count fds here: %v", err)
	}
	return len(ents)
}

func assertEvents(t testing.TB, who string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s events:\n got %q\nwant %q", who, got, want)
	}
}
