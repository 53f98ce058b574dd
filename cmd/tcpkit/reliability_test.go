package main

// Reliability through the CLI: connection churn with no leak, slowloris
// against --read-timeout, a graceful drain under load, and the connection
// limits. The library's share is in ../../reliability_test.go.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// relStatusRe is the line SIGUSR1 makes tcpkit serve print on stderr.
var relStatusRe = regexp.MustCompile(`^tcpkit serve: status: (\d+) open connections?, (\d+) goroutines, (\d+) open fds, (\d+\.\d) MiB heap$`)

type relStatus struct {
	conns, goroutines, fds int
	heapMiB                float64
	line                   string
}

// relGetStatus sends SIGUSR1 to a tcpkit serve and returns the status
// line it prints. One signal at a time: the next is sent only once the
// line for the last has come, so none are merged.
func relGetStatus(t testing.TB, srv *proc) relStatus {
	t.Helper()
	srv.signal(t, sigStatus)
	line := srv.stderr.waitPrefix(t, "tcpkit serve: status: ", waitFor)
	m := relStatusRe.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("status line %q does not match %v", line, relStatusRe)
	}
	s := relStatus{line: line}
	s.conns, _ = strconv.Atoi(m[1])
	s.goroutines, _ = strconv.Atoi(m[2])
	s.fds, _ = strconv.Atoi(m[3])
	s.heapMiB, _ = strconv.ParseFloat(m[4], 64)
	return s
}

// relPollStatus asks for the status until ok accepts it, for at most
// timeout, and returns the accepted status.
func relPollStatus(t testing.TB, srv *proc, what string, timeout time.Duration, ok func(relStatus) bool) relStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []string
	for {
		s := relGetStatus(t, srv)
		if ok(s) {
			return s
		}
		seen = append(seen, s.line)
		if time.Now().After(deadline) {
			t.Fatalf("tcpkit serve: no status with %s within %v; last ones: %q", what, timeout, seen[max(0, len(seen)-5):])
		}
		time.Sleep(20 * time.Millisecond) // polling pace, not synchronisation
	}
}

// relLinuxOnly skips where the test needs Linux: the fd count in the
// status line (from /proc) or client addresses across 127.0.0.0/8.
func relLinuxOnly(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("needs Linux (/proc, all of 127.0.0.0/8 on loopback), not %s", runtime.GOOS)
	}
}

// relCycle is the seed's exchange from a plain Go client: connect, send
// "testing~", read until the server's FIN, close. It fails unless the
// reply is exactly "test".
func relCycle(d *net.Dialer, target string, buf []byte) error {
	nc, err := d.Dial("tcp", target)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(waitFor))
	if _, err := nc.Write([]byte("testing~")); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	n := 0
	for {
		m, err := nc.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %q: %w", buf[:n], err)
		}
		if n == len(buf) {
			return fmt.Errorf("reply too long: %q", buf[:n])
		}
	}
	if string(buf[:n]) != "test" {
		return fmt.Errorf("got %q then EOF, want %q", buf[:n], "test")
	}
	return nil
}

// relErrors counts failures and keeps the first few.
type relErrors struct {
	n     atomic.Int64
	mu    sync.Mutex
	first []string
}

func (e *relErrors) add(format string, args ...any) {
	if e.n.Add(1) <= 5 {
		e.mu.Lock()
		e.first = append(e.first, fmt.Sprintf(format, args...))
		e.mu.Unlock()
	}
}

func (e *relErrors) check(t testing.TB, of string) {
	t.Helper()
	if n := e.n.Load(); n > 0 {
		e.mu.Lock()
		defer e.mu.Unlock()
		t.Errorf("%d %s failed; the first: %q", n, of, e.first)
	}
}

// Connection churn: TCPKIT_CHURN (default 100,000) seed exchanges, 64 at
// a time, through tcpkit serve --quiet. Every one gets exactly "test"
// then EOF, and afterwards the server's goroutines and fds are back to
// their idle values.
func TestChurnCLI(t *testing.T) {
	total := 100000
	if s := os.Getenv("TCPKIT_CHURN"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TCPKIT_CHURN=%q: want a positive count", s)
		}
		total = n
	}
	relLinuxOnly(t)
	const workers = 64
	const loadLimit = 5 * time.Minute // a bound on the loop, far above what it takes

	srv, port := serve(t, "--quiet")
	target := addr(port)
	// The server ends first, so it holds the TIME_WAITs, and Linux takes a
	// new SYN on a 4-tuple in TIME_WAIT: 100,000 cycles from 127.0.0.1
	// alone pass here. The clients still spread over 127.0.0.2-254, so
	// that the ~28,000 ephemeral ports of one address are never the limit,
	// whatever the count and the kernel's settings.
	dialers := make([]*net.Dialer, 253)
	for i := range dialers {
		dialers[i] = &net.Dialer{Timeout: waitFor, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+2))}}
	}
	buf := make([]byte, 16)
	for i := range 8 { // warm-up
		if err := relCycle(dialers[i], target, buf); err != nil {
			t.Fatalf("warm-up exchange: %v", err)
		}
	}
	// Idle: no connection open, and two status lines in a row agree.
	var prev relStatus
	idle := relPollStatus(t, srv, "no open connection and steady counts", waitFor, func(s relStatus) bool {
		steady := s.conns == 0 && prev.conns == 0 && prev.line != "" && s.goroutines == prev.goroutines && s.fds == prev.fds
		prev = s
		return steady
	})

	var next atomic.Int64
	var errs relErrors
	var wg sync.WaitGroup
	start := time.Now()
	stopAt := start.Add(loadLimit)
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 16)
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				if time.Now().After(stopAt) {
					errs.add("exchange %d: not run, the load took over %v", i, loadLimit)
					continue
				}
				if err := relCycle(dialers[int(i)%len(dialers)], target, buf); err != nil {
					errs.add("exchange %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	errs.check(t, fmt.Sprintf("of %d exchanges", total))

	after := relPollStatus(t, srv, fmt.Sprintf("the idle goroutines (%d) and fds (%d)", idle.goroutines, idle.fds), 10*time.Second, func(s relStatus) bool {
		return s.conns == 0 && s.goroutines == idle.goroutines && s.fds == idle.fds
	})
	t.Logf("%d exchanges, %d at a time, in %v (%.0f/s); idle: %q; after: %q",
		total, workers, took.Round(time.Millisecond), float64(total)/took.Seconds(), idle.line, after.line)
	checkLines(t, "serve stdout", stop(t, srv), []string{listenWant(port, "127.0.0.1")})
}

// Slowloris: 1,000 connections that send nothing, against --read-timeout
// 2s. A normal client is served all along, each exchange within 100 ms;
// each idle connection is closed at its deadline, and serve prints an
// error line for each.
func TestSlowlorisCLI(t *testing.T) {
	const (
		readTimeout = 2 * time.Second
		idleConns   = 1000
		maxLatency  = 100 * time.Millisecond
		period      = 50 * time.Millisecond
	)
	// Latencies are asserted: the server runs without the race detector.
	srv, port := serveTiming(t, "--quiet", "--read-timeout", readTimeout.String())
	target := addr(port)

	// The normal client: an exchange every 50 ms until told to stop.
	var (
		mu        sync.Mutex
		latencies []time.Duration
		normErrs  relErrors
	)
	stopNormal := make(chan struct{})
	normalDone := make(chan struct{})
	go func() {
		defer close(normalDone)
		d := &net.Dialer{Timeout: waitFor}
		buf := make([]byte, 16)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for range 1000 { // 50 s at most; the test stops it long before
			select {
			case <-stopNormal:
				return
			case <-tick.C:
			}
			begin := time.Now()
			err := relCycle(d, target, buf)
			took := time.Since(begin)
			if err != nil {
				normErrs.add("%v", err)
				continue
			}
			mu.Lock()
			latencies = append(latencies, took)
			mu.Unlock()
		}
	}()
	exchanges := func() int { mu.Lock(); defer mu.Unlock(); return len(latencies) }
	waitFirst := time.Now().Add(waitFor)
	for exchanges() == 0 && time.Now().Before(waitFirst) { // polling a counter, with a deadline
		time.Sleep(5 * time.Millisecond)
	}

	type idleResult struct {
		local  string
		dialed time.Time // before Dial: the server's clock starts after this
		opened time.Time // after Dial returned
		closed time.Time
		n      int
		err    error
	}
	results := make([]idleResult, idleConns)
	var readers sync.WaitGroup
	t.Cleanup(readers.Wait) // the readers end by their read deadline at the latest
	dialStart := time.Now()
	for i := range results {
		dialed := time.Now()
		nc, err := net.DialTimeout("tcp", target, waitFor)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		opened := time.Now()
		t.Cleanup(func() { nc.Close() }) // not at EOF: the test's closes would crowd the burst
		nc.SetReadDeadline(opened.Add(readTimeout + 5*time.Second))
		results[i] = idleResult{local: nc.LocalAddr().String(), dialed: dialed, opened: opened}
		readers.Go(func() {
			n, err := nc.Read(make([]byte, 1))
			results[i].closed, results[i].n, results[i].err = time.Now(), n, err
		})
	}
	dialTook := time.Since(dialStart)
	readers.Wait()
	// A few more exchanges once the last idle connection is gone.
	for n := exchanges() + 5; exchanges() < n && time.Since(dialStart) < readTimeout+15*time.Second; {
		time.Sleep(5 * time.Millisecond)
	}
	close(stopNormal)
	<-normalDone

	var early, late, wrong int
	var firstClose, lastClose time.Time
	var slowest time.Duration
	for i, r := range results {
		elapsed := r.closed.Sub(r.opened)
		slowest = max(slowest, elapsed)
		if firstClose.IsZero() || r.closed.Before(firstClose) {
			firstClose = r.closed
		}
		if r.closed.After(lastClose) {
			lastClose = r.closed
		}
		switch {
		case r.n != 0 || !(r.err == io.EOF || errors.Is(r.err, syscall.ECONNRESET)):
			if wrong++; wrong <= 5 {
				t.Errorf("idle connection %d: read %d bytes, %v; want EOF or a reset", i, r.n, r.err)
			}
		case r.closed.Sub(r.dialed) < readTimeout:
			if early++; early <= 5 {
				t.Errorf("idle connection %d closed %v after it was dialed, before --read-timeout %v", i, r.closed.Sub(r.dialed), readTimeout)
			}
		case elapsed > readTimeout+time.Second:
			if late++; late <= 5 {
				t.Errorf("idle connection %d closed %v after it opened, want within %v", i, elapsed, readTimeout+time.Second)
			}
		}
	}
	if early+late+wrong > 0 {
		t.Errorf("of %d idle connections: %d closed early, %d late, %d not with EOF or a reset", idleConns, early, late, wrong)
	}

	normErrs.check(t, "normal exchanges")
	mu.Lock()
	lat := slices.Clone(latencies)
	mu.Unlock()
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatal("the normal client completed no exchange")
	}
	maxLat, median := lat[len(lat)-1], lat[len(lat)/2]
	// The normal client ran all along: one exchange per period, give or
	// take the slowest ones.
	if want := int(lastClose.Sub(dialStart)/period) / 2; len(lat) < want {
		t.Errorf("the normal client made %d exchanges over %v, want at least %d", len(lat), lastClose.Sub(dialStart), want)
	}
	if maxLat > maxLatency {
		t.Errorf("normal exchanges: the slowest took %v, want at most %v (median %v)", maxLat, maxLatency, median)
	}
	t.Logf("%d idle connections opened in %v; closed between %v and %v after the first opened, the slowest %v after it opened; normal client: %d exchanges, median %v, max %v",
		idleConns, dialTook.Round(time.Millisecond), firstClose.Sub(dialStart).Round(time.Millisecond), lastClose.Sub(dialStart).Round(time.Millisecond), slowest.Round(time.Millisecond), len(lat), median.Round(time.Microsecond), maxLat.Round(time.Microsecond))

	// Serve's output: one error line per idle connection, and nothing
	// else: the normal exchanges print nothing with --quiet.
	relPollStatus(t, srv, "no open connection", waitFor, func(s relStatus) bool { return s.conns == 0 })
	out := stop(t, srv)
	want := []string{listenWant(port, "127.0.0.1")}
	for _, r := range results {
		want = append(want, "error : "+r.local+" : read timeout: nothing received for 2s (--read-timeout)")
	}
	if len(out) > 0 {
		slices.Sort(out[1:]) // the closes interleave
		slices.Sort(want[1:])
	}
	if !slices.Equal(out, want) {
		t.Errorf("serve stdout: %d lines, want %d: the listen line and one read timeout line per idle connection; the first: %q", len(out), len(want), out[:min(len(out), 5)])
	}
	if errLines := srv.stderr.all(); len(errLines) == 0 || errLines[len(errLines)-1] != "tcpkit serve: stopped; 0 open connections ended cleanly" {
		t.Errorf("serve stderr: got %q, want it to end with the stopped line", errLines)
	}
}

// Drain under load: 200 persistent connections in ping-pong with
// tcpkit serve --keep-open, then SIGTERM. Every message the server took
// (printed) got its reply, none is lost; no connection is accepted after
// the shutdown began; serve exits 0 well within --drain-timeout, its last
// line saying that all 200 ended cleanly.
func TestDrainUnderLoadCLI(t *testing.T) {
	const (
		clients      = 200
		drainTimeout = 5 * time.Second
		minReplies   = 20000 // before the signal: the load is steady
	)
	srv, port := serve(t, "--keep-open", "--drain-timeout", drainTimeout.String())
	target := addr(port)

	var (
		replies   atomic.Int64
		errs      relErrors
		ready     sync.WaitGroup // each client got one reply: the server tracks it
		clientsWG sync.WaitGroup
		eofOnce   sync.Once
	)
	firstEOF := make(chan struct{}) // a client saw the server's FIN: the shutdown began
	ready.Add(clients)
	loadEnd := time.Now().Add(30 * time.Second) // bounds the ping-pong whatever happens
	for i := range clients {
		nc, err := net.DialTimeout("tcp", target, waitFor)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		clientsWG.Go(func() {
			defer nc.Close()
			nc.SetDeadline(loadEnd.Add(5 * time.Second))
			buf := make([]byte, 4)
			gotOne := false
			for n := 0; ; n++ {
				if time.Now().After(loadEnd) {
					errs.add("client %d: still served after 30s", i)
					break
				}
				if _, err := nc.Write([]byte("testing~")); err != nil {
					errs.add("client %d: send %d: %v", i, n, err)
					break
				}
				m, err := io.ReadFull(nc, buf)
				if err == io.EOF { // no reply, and nothing of one: the message was not taken
					eofOnce.Do(func() { close(firstEOF) })
					break
				}
				if err != nil || string(buf) != "test" {
					errs.add("client %d: message %d: read %q, %v; want %q", i, n, buf[:m], err, "test")
					break
				}
				replies.Add(1)
				if !gotOne {
					gotOne = true
					ready.Done()
				}
			}
			if !gotOne { // never ready: let the test go on, to fail
				ready.Done()
			}
		})
	}
	t.Cleanup(clientsWG.Wait)
	ready.Wait()
	for replies.Load() < minReplies && time.Now().Before(loadEnd) { // polling a counter, with a deadline
		time.Sleep(time.Millisecond)
	}
	signaled := time.Now()
	srv.signal(t, syscall.SIGTERM)

	// The shutdown began (a client saw the FIN): from now on, every dial is
	// refused.
	select {
	case <-firstEOF:
	case <-time.After(waitFor):
		t.Fatalf("no client saw the server's FIN within %v of SIGTERM", waitFor)
	}
	for i := range 20 {
		nc, err := net.DialTimeout("tcp", target, waitFor)
		if err == nil {
			nc.SetDeadline(time.Now().Add(waitFor))
			nc.Write([]byte("testing~"))
			got, rerr := io.ReadAll(nc)
			nc.Close()
			t.Errorf("dial %d after the shutdown began: connected; then read %q, %v; want ECONNREFUSED", i, got, rerr)
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %d after the shutdown began: %v, want ECONNREFUSED", i, err)
		}
	}

	code := srv.wait(t, drainTimeout+waitFor)
	exited := time.Since(signaled)
	clientsWG.Wait()
	checkExit(t, "serve after SIGTERM", code, exitOK)
	if exited >= drainTimeout {
		t.Errorf("serve exited %v after SIGTERM, want well within --drain-timeout %v", exited, drainTimeout)
	}
	errs.check(t, "clients")

	out := srv.stdout.all()
	var printed, connects int
	for _, l := range out[1:] {
		switch {
		case l == "testing~":
			printed++
		case strings.HasPrefix(l, "connect address : 127.0.0.1:"):
			connects++
		default:
			t.Errorf("serve stdout: unexpected line %q", l)
		}
	}
	if connects != clients {
		t.Errorf("serve printed %d connect lines, want %d", connects, clients)
	}
	if got := replies.Load(); int64(printed) != got {
		t.Errorf("serve took (printed) %d messages, the clients got %d replies: %d lost", printed, got, int64(printed)-got)
	}
	errLines := srv.stderr.all()
	if want := "tcpkit serve: stopped; 200 open connections ended cleanly"; len(errLines) == 0 || errLines[len(errLines)-1] != want {
		t.Errorf("serve stderr: got %q, want its last line %q", errLines, want)
	}
	t.Logf("%d replies before SIGTERM, %d in all; serve exited %v after it", minReplies, replies.Load(), exited.Round(time.Millisecond))
}

// A client that never sends its FIN holds the drain up; a second SIGTERM
// cuts it at once: exit 1 and a line that says so.
func TestDrainSecondSignalCLI(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--keep-open", "--drain-timeout", "1m")
	c := dial(t, port)
	write(t, c, "testing~")
	if got := readN(t, c, 4); got != "test" {
		t.Fatalf("reply: got %q", got)
	}
	srv.signal(t, syscall.SIGTERM)
	if got := readAll(t, c); got != "" { // the server's FIN: the drain began; the client stays
		t.Errorf("after SIGTERM: got %q, want the server's FIN", got)
	}
	select {
	case <-srv.done:
		t.Fatalf("serve exited (code %d) while a connection was still open, before a second signal", srv.code)
	default:
	}
	second := time.Now()
	srv.signal(t, syscall.SIGTERM)
	checkExit(t, "serve after a second SIGTERM", srv.wait(t, waitFor), exitFail)
	if took := time.Since(second); took > 2*time.Second {
		t.Errorf("serve exited %v after the second signal, want at once", took)
	}
	checkLines(t, "serve stderr", srv.stderr.all(), []string{"tcpkit serve: stopped; 1 of 1 open connections were still open at a second signal and were cut"})
}

// A client that never sends its FIN is cut when --drain-timeout expires:
// exit 1, not before the timeout and not long after.
func TestDrainTimeoutExpiryCLI(t *testing.T) {
	t.Parallel()
	const drain = time.Second
	srv, port := serve(t, "--keep-open", "--drain-timeout", drain.String())
	c := dial(t, port)
	write(t, c, "testing~")
	if got := readN(t, c, 4); got != "test" {
		t.Fatalf("reply: got %q", got)
	}
	signaled := time.Now()
	srv.signal(t, syscall.SIGTERM)
	if got := readAll(t, c); got != "" {
		t.Errorf("after SIGTERM: got %q, want the server's FIN", got)
	}
	checkExit(t, "serve after --drain-timeout", srv.wait(t, drain+waitFor), exitFail)
	if took := time.Since(signaled); took < drain || took > drain+2*time.Second {
		t.Errorf("serve exited %v after SIGTERM, want within [%v, %v]", took, drain, drain+2*time.Second)
	}
	checkLines(t, "serve stderr", srv.stderr.all(), []string{"tcpkit serve: stopped; 1 of 1 open connections did not end within --drain-timeout 1s and were cut"})
	// Cut means closed: the client's next send meets a reset or EPIPE.
	var err error
	for i := 0; i < 3 && err == nil; i++ { // the first send may still be taken by the kernel
		_, err = c.Write([]byte("testing~"))
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("sending after the cut: %v, want ECONNRESET or EPIPE", err)
	}
}

// relExchange sends "testing~" on a keep-open connection and expects
// "test".
func relExchange(t testing.TB, c net.Conn, who string) {
	t.Helper()
	write(t, c, "testing~")
	if got := readN(t, c, 4); got != "test" {
		t.Errorf("%s: got %q, want %q", who, got, "test")
	}
}

// --max-conns and --max-conns-per-ip: a connection over the limit is
// closed at once with a "rejected" line; the others are still served,
// and a freed slot is usable again.
// A relServeLog follows a keep-open serve's stdout as a test drives it,
// and keeps the lines it must have printed.
type relServeLog struct {
	srv  *proc
	want []string
}

func newRelServeLog(srv *proc, port int) *relServeLog {
	return &relServeLog{srv: srv, want: []string{listenWant(port, "127.0.0.1")}}
}

// connected waits for c's connect line.
func (l *relServeLog) connected(t *testing.T, c net.Conn) {
	t.Helper()
	l.expect(t, "connect address : "+c.LocalAddr().String())
}

// served makes an exchange on c and waits for the server's line for it.
func (l *relServeLog) served(t *testing.T, c net.Conn, who string) {
	t.Helper()
	relExchange(t, c, who)
	l.expect(t, "testing~")
}

// expect waits for line.
func (l *relServeLog) expect(t *testing.T, line string) {
	t.Helper()
	l.srv.waitLine(t, line, waitFor)
	l.want = append(l.want, line)
}

func TestMaxConnsCLI(t *testing.T) {
	t.Parallel()
	t.Run("total", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, "--keep-open", "--max-conns", "2")
		log := newRelServeLog(srv, port)
		a := dial(t, port)
		log.connected(t, a)
		log.served(t, a, "first client")
		b := dial(t, port)
		log.connected(t, b)
		log.served(t, b, "second client")
		over := dial(t, port)
		if got := readAll(t, over); got != "" {
			t.Errorf("third client: got %q, want EOF at once", got)
		}
		line := "rejected : " + over.LocalAddr().String() + " : too many connections (--max-conns 2)"
		log.expect(t, line)
		log.served(t, a, "first client, after the rejection")
		log.served(t, b, "second client, after the rejection")

		a.Close()
		relPollStatus(t, srv, "1 open connection", waitFor, func(s relStatus) bool { return s.conns == 1 })
		d := dial(t, port)
		log.connected(t, d)
		log.served(t, d, "a client in the freed slot")
		b.Close() // so that the drain need not wait for them
		d.Close()
		checkLines(t, "serve stdout", stop(t, srv), log.want)
	})
	t.Run("per IP", func(t *testing.T) {
		t.Parallel()
		relLinuxOnly(t)
		srv, port := serve(t, "--keep-open", "--max-conns-per-ip", "2")
		log := newRelServeLog(srv, port)
		a := dial(t, port)
		log.connected(t, a)
		b := dial(t, port)
		log.connected(t, b)
		over := dial(t, port)
		if got := readAll(t, over); got != "" {
			t.Errorf("third client from 127.0.0.1: got %q, want EOF at once", got)
		}
		line := "rejected : " + over.LocalAddr().String() + " : too many connections from this address (--max-conns-per-ip 2)"
		log.expect(t, line)

		// Another address is not limited by 127.0.0.1's connections.
		nd := net.Dialer{Timeout: waitFor, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		nc, err := nd.Dial("tcp", addr(port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(waitFor))
		if !strings.HasPrefix(nc.LocalAddr().String(), "127.0.0.2:") {
			t.Fatalf("dialed from %v, want 127.0.0.2", nc.LocalAddr())
		}
		log.connected(t, nc)
		log.served(t, nc, "client from 127.0.0.2")
		log.served(t, a, "first client, after the rejection")
		log.served(t, b, "second client, after the rejection")
		for _, c := range []net.Conn{a, b, nc} { // so that the drain need not wait for them
			c.Close()
		}
		checkLines(t, "serve stdout", stop(t, srv), log.want)
	})
}
