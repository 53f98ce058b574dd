package watch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// liveRun captures port on lo with Run until stop is called, which
// returns Run's summary.
func liveRun(t *testing.T, port int, o Options) (stop func() Summary) {
	t.Helper()
	src, err := OpenLive("lo", uint16(port))
	if errors.Is(err, ErrPermission) {
		t.Skip("live capture needs root or CAP_NET_RAW") // the cmd tests check the message
	}
	if err != nil {
		t.Fatal(err)
	}
	o.Port = uint16(port)
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Run(ctx, src, o)
		done <- result{sum, err}
	}()
	return func() Summary {
		cancel()
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("Run: %v", r.err)
			}
			return r.sum
		case <-time.After(waitFor):
			t.Fatal("Run did not return after its context was cancelled")
			return Summary{}
		}
	}
}

// listen listens on host:0 with the seed server's manners: read, reply
// "test", end with a FIN, close once the client's FIN came.
func listen(t *testing.T, network, host string) int {
	t.Helper()
	ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitFor))
				buf := make([]byte, 64)
				if _, err := c.Read(buf); err != nil {
					return
				}
				c.Write([]byte("test"))
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

// seedClient connects, sends "testing~", reads until the server's FIN
// and closes.
func seedClient(t *testing.T, network, host string, port int) {
	t.Helper()
	c, err := net.DialTimeout(network, net.JoinHostPort(host, itoa(port)), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitFor))
	c.Write([]byte("testing~"))
	if b, err := io.ReadAll(c); err != nil || string(b) != "test" {
		t.Fatalf("client read %q, %v; want test and the server's FIN", b, err)
	}
}

// A live capture on loopback draws the port's connections, IPv4 and
// IPv6, and nothing else; its pcap holds exactly the segments drawn.
func TestLive(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct{ network, host string }{{"tcp4", "127.0.0.1"}, {"tcp6", "::1"}} {
		t.Run(tc.network, func(t *testing.T) {
			port, other := listen(t, tc.network, tc.host), listen(t, tc.network, tc.host)
			out := newLineSink()
			var pcap bytes.Buffer
			stop := liveRun(t, port, Options{Out: out, Pcap: &pcap})
			seedClient(t, tc.network, tc.host, other) // not on the watched port
			seedClient(t, tc.network, tc.host, port)
			out.wait(t, "4-way close 4/4")
			sum := stop()

			if strings.Contains(out.String(), ":"+itoa(other)) {
				t.Errorf("the ladder shows port %d, which was not watched:\n%s", other, out)
			}
			if sum.Segments < 9 || sum.Conns != 1 || sum.Dropped != 0 {
				t.Errorf("summary %+v, want one connection of at least 9 segments, none dropped", sum)
			}
			src, err := OpenFile(&pcap)
			if err != nil {
				t.Fatal(err)
			}
			var tr Tracker
			tr.Port = uint16(port)
			var lines []string
			for {
				f, err := src.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				s, err := Decode(f.Link, f.Data)
				if err != nil {
					t.Fatalf("a frame of the pcap: %v", err)
				}
				s.Time = f.Time
				lines = append(lines, Text{}.Lines(tr.Add(s))...)
			}
			if got := strings.Join(lines, "\n") + "\n"; got != out.String() {
				t.Errorf("the pcap, drawn again:\n%s\nthe live ladder:\n%s", got, out)
			}
		})
	}
}

// A receiver that does not read makes its window close: the ladder says
// so. The server's buffer is small, and the client sends 1 MiB at most.
func TestLiveZeroWindow(t *testing.T) {
	defer goleak.VerifyNone(t)
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	out := newLineSink()
	stop := liveRun(t, port, Options{Out: out})

	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept() // and never read
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.SetWriteDeadline(time.Now().Add(waitFor))
		c.Write(make([]byte, 1<<20))
	}()
	out.wait(t, "zero window: the server's receive buffer is full: the client must wait")
	c.Close()
	srv.Close()
	<-done
	stop()
}

// Packets the capture does not read in time are counted, and the count
// survives Close. Nothing reads the capture here while 64 MiB cross a
// loopback connection: far more than its buffer holds.
func TestLiveDrops(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	src, err := OpenLive("lo", uint16(port))
	if errors.Is(err, ErrPermission) {
		t.Skip("live capture needs root or CAP_NET_RAW")
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 1<<20)
	for range 64 {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if n := <-done; n != 64<<20 {
		t.Fatalf("the server read %d bytes, want %d", n, 64<<20)
	}
	d := src.Drops()
	if d == 0 {
		t.Fatal("no drops counted with 64 MiB unread")
	}
	src.Close()
	if after := src.Drops(); after < d {
		t.Errorf("after Close Drops is %d, before %d", after, d)
	}
}
