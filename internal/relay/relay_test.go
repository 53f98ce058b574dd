package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tcpkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait: loopback takes microseconds.
const waitFor = 5 * time.Second

// A path is one way to relay: on Conns, with the clients on one engine,
// or by splice.
type path struct {
	name   string
	engine tcpkit.Engine // for the Conn paths
	splice bool
}

func paths() []path {
	ps := []path{{name: "std", engine: tcpkit.EngineStd}, {name: "epoll", engine: tcpkit.EngineEpoll}}
	if SpliceBuilt {
		ps = append(ps, path{name: "splice", splice: true})
	} else {
		ps = ps[:1]
	}
	return ps
}

// startRelay relays a fresh loopback port to target on path pa, and
// returns the port's address. Everything stops when the test ends.
func startRelay(t *testing.T, pa path, target string, ts *Toxics) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	if pa.splice {
		s := &Splicer{Network: "tcp", Address: target, ConnectTimeout: waitFor, Loops: 1}
		go func() { served <- s.Serve(ln) }()
		t.Cleanup(func() {
			s.StopAccepting()
			<-served
			s.Cut("the test ended")
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			if err := s.Wait(ctx); err != nil {
				t.Errorf("pairs still open after Cut: %d", s.Open())
			}
			s.Close()
		})
		return ln.Addr().String()
	}
	r := &Relay{Network: "tcp", Address: target, Dialer: tcpkit.Dialer{Timeout: waitFor}, Toxics: ts}
	srv := &tcpkit.Server{Engine: pa.engine, Events: r.Events(), ConnOptions: r.ClientOptions()}
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.StopAccepting()
		<-served
		r.Cut("the test ended")
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := r.Wait(ctx); err != nil {
			t.Errorf("pairs still open after Cut: %d", r.Open())
		}
		srv.Close()
	})
	return ln.Addr().String()
}

// target runs handle on each connection to a fresh loopback listener,
// until the test ends.
func target(t *testing.T, handle func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(waitFor))
				handle(nc.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp4", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(waitFor))
	return nc.(*net.TCPConn)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// Bytes go through exactly, both ways at once, and each FIN goes on
// while the other direction still flows: the client half-closes first,
// and the target answers after it has all.
func TestRelayExactAndHalfClose(t *testing.T) {
	for _, pa := range paths() {
		t.Run(pa.name, func(t *testing.T) {
			up, down := randomBytes(t, 3<<20), randomBytes(t, 3<<20)
			gotUp := make(chan []byte, 1)
			tgt := target(t, func(nc *net.TCPConn) {
				var wg sync.WaitGroup
				wg.Go(func() { nc.Write(down[:1<<20]) }) // while the client still sends
				b, _ := io.ReadAll(nc)                   // to the client's FIN
				wg.Wait()
				gotUp <- b
				nc.Write(down[1<<20:]) // after the client's FIN: the half-close holds
				nc.CloseWrite()
			})
			nc := dial(t, startRelay(t, pa, tgt, nil))
			var got []byte
			read := make(chan error, 1)
			go func() {
				var err error
				got, err = io.ReadAll(nc)
				read <- err
			}()
			if _, err := nc.Write(up); err != nil {
				t.Fatal(err)
			}
			nc.CloseWrite()
			if err := <-read; err != nil {
				t.Fatalf("reading to the target's FIN: %v", err)
			}
			if b := <-gotUp; !bytes.Equal(b, up) {
				t.Errorf("the target got %d bytes, not the %d sent", len(b), len(up))
			}
			if !bytes.Equal(got, down) {
				t.Errorf("the client got %d bytes, not the %d sent", len(got), len(down))
			}
		})
	}
}

// A reset goes on as a reset, both ways.
func TestRelayReset(t *testing.T) {
	for _, pa := range paths() {
		t.Run(pa.name+"/target resets", func(t *testing.T) {
			tgt := target(t, func(nc *net.TCPConn) {
				buf := make([]byte, 5)
				io.ReadFull(nc, buf)
				nc.Write([]byte("bye"))
				nc.SetLinger(0)
			})
			nc := dial(t, startRelay(t, pa, tgt, nil))
			nc.Write([]byte("hello"))
			b, err := io.ReadAll(nc)
			if string(b) != "bye" || !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the client read %q, then %v; want %q, then ECONNRESET", b, err, "bye")
			}
		})
		t.Run(pa.name+"/client resets", func(t *testing.T) {
			done := make(chan error, 1)
			tgt := target(t, func(nc *net.TCPConn) {
				_, err := io.ReadAll(nc)
				done <- err
			})
			nc := dial(t, startRelay(t, pa, tgt, nil))
			nc.Write([]byte("hello"))
			buf := make([]byte, 1)
			nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) // the pair is made by then, or the reset goes on as a refusal
			nc.Read(buf)
			nc.SetLinger(0)
			nc.Close()
			if err := <-done; !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the target's read ended with %v, want ECONNRESET", err)
			}
		})
	}
}

// A target that refuses resets the client at once.
func TestRelayRefused(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, pa := range paths() {
		t.Run(pa.name, func(t *testing.T) {
			addr := startRelay(t, pa, closed, nil)
			nc, err := net.DialTimeout("tcp4", addr, waitFor)
			if err != nil { // the reset came before connect looked: as good
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("dial: %v, want a connection, or ECONNRESET", err)
				}
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(waitFor))
			b, err := io.ReadAll(nc)
			if len(b) != 0 || !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the client read %q, then %v; want ECONNRESET", b, err)
			}
		})
	}
}

// Many pairs opened and closed leave no file descriptor behind, on the
// splice path whose sockets and pipes are its own.
func TestSplicerNoFDLeak(t *testing.T) {
	if !SpliceBuilt {
		t.Skip("no splice path here")
	}
	pairs := func(n int) func(t *testing.T) {
		return func(t *testing.T) {
			tgt := target(t, echo) // not io.Copy: its splice keeps pipes of its own
			addr := startRelay(t, path{name: "splice", splice: true}, tgt, nil)
			for range n {
				nc := dial(t, addr)
				nc.Write([]byte("ping"))
				buf := make([]byte, 4)
				if _, err := io.ReadFull(nc, buf); err != nil {
					t.Fatal(err)
				}
				nc.CloseWrite()
				io.ReadAll(nc)
				nc.Close()
			}
		}
	}
	t.Run("warm up", pairs(1)) // the runtime's own fds (its poller) are made on first use
	before := openFDs(t)
	t.Run("pairs", pairs(200))
	if after := openFDs(t); after != before {
		ents, _ := os.ReadDir("/proc/self/fd")
		var kinds []string
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			kinds = append(kinds, l)
		}
		t.Errorf("%d fds open before, %d after: %q", before, after, kinds)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count fds: %v", err)
	}
	return len(ents)
}

// echo sends back what comes, with read and write: io.Copy between two
// TCPConns splices, with pipes the runtime keeps in a pool.
func echo(nc *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := nc.Read(buf)
		if n > 0 {
			if _, werr := nc.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			nc.CloseWrite()
			return
		}
	}
}
