package tcpkit

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIdleConnections holds many idle connections on the epoll engine and
// measures the server's memory per connection: the engine's promise is
// that an idle connection owns no goroutine and no buffer, and costs
// under 1 KiB. The issue asks for 100,000; the clients live in this
// process too, so that takes 200,000 fds, which only a process allowed to
// raise RLIMIT_NOFILE gets. Where it cannot, the 100,000 case is skipped
// with the reason, and the test holds as many as the limit allows.
func TestIdleConnections(t *testing.T) {
	const want = 100_000
	n, why := idleCapacity(want)
	t.Run(strconv.Itoa(want), func(t *testing.T) {
		if n < want {
			t.Skipf("RLIMIT_NOFILE cannot be raised enough: %s", why)
		}
		holdIdle(t, want)
	})
	if n < want && n >= 1000 {
		t.Run(strconv.Itoa(n), func(t *testing.T) { holdIdle(t, n) })
	}
}

// idleCapacity raises RLIMIT_NOFILE as far as it may go, up to what n
// connections need (two fds each, client and server), and returns how
// many connections fit, and if fewer than n, why.
func idleCapacity(n int) (int, string) {
	need := uint64(2*n + 1000)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err.Error()
	}
	why := ""
	if lim.Max < need {
		up := syscall.Rlimit{Cur: need, Max: need}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up); err != nil {
			why = fmt.Sprintf("the hard limit is %d and raising it to %d failed (%v: CAP_SYS_RESOURCE is missing)", lim.Max, need, err)
		}
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < min(need, lim.Max) {
		lim.Cur = min(need, lim.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	fit := int(lim.Cur-1000) / 2
	if fit >= n {
		return n, ""
	}
	return fit, why
}

func holdIdle(t *testing.T, n int) {
	srv := &Server{Engine: EngineEpoll, Events: Events{OnData: func(c *Conn, p []byte) { c.Write(p) }}}
	addr := startServer(t, srv)
	dst := netip4(t, addr)
	exchangeOn(t, addr) // the loops are running before the baseline
	before := rss(t)

	start := time.Now()
	fds := make([]int32, 0, n)
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(int(fd))
		}
	})
	// Source addresses spread over 127.0.0.0/8, 20,000 per address, so
	// the ephemeral ports of one source never run out. Connects are
	// nonblocking, with at most 2,000 waiting to be accepted so that the
	// listen backlog never overflows (a dropped SYN costs a second).
	for i := 0; i < n; i++ {
		for i-srv.Conns() >= 2000 {
			if time.Since(start) > time.Minute {
				t.Fatalf("%d of %d connections accepted after a minute", srv.Conns(), n)
			}
			time.Sleep(time.Millisecond) // polling the server's count: no event to wait on
		}
		src := [4]byte{127, 1, byte(i / 20000 >> 8), byte(1 + i/20000)}
		fd, err := idleDial(src, dst)
		if err != nil {
			t.Fatalf("connection %d from %v: %v", i, net.IP(src[:]), err)
		}
		fds = append(fds, int32(fd))
	}
	waitUntilFor(t, time.Minute, fmt.Sprintf("%d connections served", n), func() bool { return srv.Conns() == n })
	opened := time.Since(start)
	after := rss(t)
	perConn := float64(after-before) / float64(n) / 1024
	t.Logf("%d idle connections opened in %v; server RSS %d KiB -> %d KiB: %.2f KiB per connection (race detector on: %v)",
		n, opened.Round(time.Millisecond), before>>10, after>>10, perConn, raceEnabled)
	if !raceEnabled && perConn > 1 {
		t.Errorf("%.2f KiB of RSS per idle connection, want at most 1", perConn)
	}

	// All served: a sample of them, spread over the whole range, echo.
	for i := 0; i < n; i += max(1, n/200) {
		echoOn(t, int(fds[i]))
	}
}

// idleDial starts a nonblocking connect from src (port chosen at connect
// time) to dst.
func idleDial(src [4]byte, dst *unix.SockaddrInet4) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Connect(fd, dst); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// echoOn sends a byte on fd and waits for it to come back.
func echoOn(t *testing.T, fd int) {
	t.Helper()
	if _, err := unix.Write(fd, []byte{'x'}); err != nil {
		t.Fatalf("write on fd %d: %v", fd, err)
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, int(waitTime/time.Millisecond))
	for err == unix.EINTR { // a signal (the Go scheduler's preemption) is no answer: wait on
		n, err = unix.Poll(pfd, int(waitTime/time.Millisecond))
	}
	if n != 1 || err != nil {
		t.Fatalf("no echo on fd %d within %v (%v)", fd, waitTime, err)
	}
	var b [1]byte
	if n, err := unix.Read(fd, b[:]); n != 1 || b[0] != 'x' {
		t.Fatalf("read on fd %d: %d %q %v, want the echo", fd, n, b[:max(n, 0)], err)
	}
}

func exchangeOn(t *testing.T, addr string) {
	t.Helper()
	nc := rawDial(t, addr)
	if _, err := nc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := nc.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

func netip4(t *testing.T, addr string) *unix.SockaddrInet4 {
	t.Helper()
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return &unix.SockaddrInet4{Addr: [4]byte(ta.IP.To4()), Port: ta.Port}
}

// rss returns this process's resident memory in bytes, after a garbage
// collection that returns freed memory to the system.
func rss(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// waitUntilFor is waitUntil with its own bound, for waits that scale with
// a count.
func waitUntilFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}
