package tcpkit

import (
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tcpkit/internal/proxy"
)

// TestIdleTransports holds idle connections that came through what the
// epoll engine took over from the std engine, a PROXY v2 header (read as
// the Preamble) and a Unix socket, and measures the server's memory per
// connection as TestIdleConnections does: at most 1 KiB each, as a plain
// TCP connection (issue 14's targets). The clients are raw sockets, so
// that they cost this process nothing but their fds. (TLS's clients would
// hold a tls.Conn each here: bench idle --tls measures it from another
// process; see docs/performance.md.)
func TestIdleTransports(t *testing.T) {
	n, _ := idleCapacity(10_000)
	n = min(n, 10_000)
	if n < 1000 {
		t.Skipf("RLIMIT_NOFILE leaves room for %d connections; want 1000 at least", n)
	}
	pol := &proxy.Policy{}
	echo := Events{OnData: func(c *Conn, p []byte) { c.Write(p) }}
	t.Run("proxy", func(t *testing.T) {
		srv := &Server{Engine: EngineEpoll, Preamble: &Preamble{Allow: pol.Allow, Parse: pol.Parse}, Events: echo}
		addr := startServer(t, srv)
		dst := netip4(t, addr)
		header := func(i int) []byte {
			var b headerBuf
			src := fmt.Sprintf("203.0.%d.%d:%d", i>>16&255, i>>8&255, 1024+i&255)
			proxy.WriteHeader(&b, 2, mustTCPAddr(t, src), mustTCPAddr(t, addr))
			return b
		}
		holdIdleOn(t, srv, n, func(i int) (int, error) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return -1, err
			}
			src := [4]byte{127, 2, byte(i / 20000 >> 8), byte(1 + i/20000)}
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src}); err != nil {
				unix.Close(fd)
				return -1, err
			}
			if err := unix.Connect(fd, dst); err != nil {
				unix.Close(fd)
				return -1, err
			}
			_, err = unix.Write(fd, header(i))
			return fd, err
		})
	})
	t.Run("unix", func(t *testing.T) {
		srv := &Server{Engine: EngineEpoll, Events: echo}
		path := startServerOn(t, srv, "unix", filepath.Join(shortTempDir(t), "s"))
		holdIdleOn(t, srv, n, func(int) (int, error) {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return -1, err
			}
			if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
				unix.Close(fd)
				return -1, err
			}
			return fd, nil
		})
	})
}

type headerBuf []byte

func (b *headerBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

func mustTCPAddr(t *testing.T, s string) *net.TCPAddr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// holdIdleOn opens n connections to srv with dial, which returns a
// connected socket, waits until srv serves them all, and measures its
// memory per connection; then a sample of them echo.
func holdIdleOn(t *testing.T, srv *Server, n int, dial func(i int) (int, error)) {
	t.Helper()
	fds := make([]int, 0, n)
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	before := rss(t)
	start := time.Now()
	for i := range n {
		for i-srv.Conns() >= 2000 { // the listen backlog never overflows
			if time.Since(start) > time.Minute {
				t.Fatalf("%d of %d connections accepted after a minute", srv.Conns(), n)
			}
			time.Sleep(time.Millisecond) // polling the server's count: no event to wait on
		}
		fd, err := dial(i)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		fds = append(fds, fd)
	}
	waitUntilFor(t, time.Minute, fmt.Sprintf("%d connections served", n), func() bool {
		return srv.Conns() == n && srv.shakingCount() == 0
	})
	after := rss(t)
	perConn := float64(after-before) / float64(n) / 1024
	t.Logf("%d idle connections; server RSS %d KiB -> %d KiB: %.2f KiB per connection (race detector on: %v, GOMAXPROCS %d)",
		n, before>>10, after>>10, perConn, raceEnabled, runtime.GOMAXPROCS(0))
	if !raceEnabled && perConn > 1 {
		t.Errorf("%.2f KiB of RSS per idle connection, want at most 1", perConn)
	}
	for i := 0; i < n; i += max(1, n/100) {
		echoOn(t, fds[i])
	}
}
