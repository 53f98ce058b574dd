package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Each toxic, measured. The relay is the binary built without the race
// detector (tcpkitTimingBin), which would stretch its times; durations
// are taken with the monotonic clock around the events they bound. A
// toxic can only make things later than asked, never earlier, so the
// lower bounds are tight and the upper ones leave room for a loaded
// machine.

// echoTarget echoes what comes, until the test ends.
func echoTarget(t *testing.T) int {
	return listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(2 * waitFor))
		buf := make([]byte, 32<<10)
		for {
			n, err := nc.Read(buf)
			if n > 0 {
				if _, err := nc.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// roundTrip sends a few bytes over nc and reads their echo, and returns
// how long that took.
func roundTrip(t *testing.T, nc net.Conn) time.Duration {
	t.Helper()
	began := time.Now()
	write(t, nc, "ping")
	if got := readN(t, nc, 4); got != "ping" {
		t.Fatalf("echo %q, want ping", got)
	}
	return time.Since(began)
}

// medianRoundTrip is the median of five round trips.
func medianRoundTrip(t *testing.T, nc net.Conn) time.Duration {
	t.Helper()
	var d []time.Duration
	for range 5 {
		d = append(d, roundTrip(t, nc))
	}
	slices.Sort(d)
	return d[2]
}

// --latency 50ms adds 50 ms each way: 100 ms (±15 ms) to a round trip.
func TestRelayLatency(t *testing.T) {
	tport := echoTarget(t)
	direct := medianRoundTrip(t, dial(t, tport))
	_, rport := startRelay(t, tcpkitTimingBin, addr(tport), "--latency", "50ms")
	relayed := medianRoundTrip(t, dial(t, rport))
	if added := relayed - direct; added < 85*time.Millisecond || added > 115*time.Millisecond {
		t.Errorf("--latency 50ms added %v to a round trip (%v relayed, %v direct), want 100ms ± 15ms", added, relayed, direct)
	}
}

// --bandwidth 1048576 holds a stream to 1 MiB/s (±15%).
func TestRelayBandwidth(t *testing.T) {
	const size = 2 << 20
	type result struct {
		n    int
		took time.Duration
	}
	got := make(chan result, 1)
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(3 * waitFor))
		buf := make([]byte, 64<<10)
		first, err := nc.Read(buf) // the first bytes: the clock starts
		began := time.Now()
		total, n := first, 0
		for err == nil {
			n, err = nc.Read(buf)
			total += n
		}
		got <- result{total - first, time.Since(began)} // what came after the first read, over the time it took
	})
	_, rport := startRelay(t, tcpkitTimingBin, addr(tport), "--bandwidth", "up:1048576")
	nc := dial(t, rport)
	nc.SetDeadline(time.Now().Add(3 * waitFor))
	if _, err := nc.Write(bytes.Repeat([]byte("x"), size)); err != nil {
		t.Fatal(err)
	}
	nc.CloseWrite()
	r := <-got
	rate := float64(r.n) / r.took.Seconds()
	if rate < 0.85*(1<<20) || rate > 1.15*(1<<20) {
		t.Errorf("--bandwidth 1048576 moved %d bytes in %v: %.0f bytes/s, want 1048576 ± 15%%", r.n, r.took, rate)
	}
}

// --slice 4,delay=30ms cuts 12 bytes into three segments of 4, 30 ms
// apart: segment k arrives (k-1)*30ms after the target sent them all.
func TestRelaySlice(t *testing.T) {
	sent := make(chan time.Time, 1)
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		sent <- time.Now()
		nc.Write([]byte("abcdefghijkl"))
		io.ReadAll(nc)
	})
	_, rport := startRelay(t, tcpkitTimingBin, addr(tport), "--slice", "down:4,delay=30ms")
	nc := dial(t, rport)
	var reads []string
	var at []time.Time
	buf := make([]byte, 64)
	for total := 0; total < 12; {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", reads, err)
		}
		reads = append(reads, string(buf[:n]))
		at = append(at, time.Now())
		total += n
	}
	checkLines(t, "the client's reads", reads, []string{"abcd", "efgh", "ijkl"})
	began := <-sent
	for i := range at {
		d, want := at[i].Sub(began), time.Duration(i)*30*time.Millisecond
		if len(at) == 3 && (d < want || d > want+40*time.Millisecond) {
			t.Errorf("segment %d came %v after the target sent, want %v", i+1, d, want)
		}
	}
}

// --reset-after down:10 lets 10 bytes through to the client, then resets
// both sides.
func TestRelayResetAfterBytes(t *testing.T) {
	reset := make(chan error, 1)
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		nc.Write([]byte(strings.Repeat("0123456789", 10)))
		_, err := io.ReadAll(nc)
		reset <- err
	})
	r, rport := startRelay(t, tcpkitTimingBin, addr(tport), "--reset-after", "down:10")
	nc := dial(t, rport)
	b, err := io.ReadAll(nc)
	if string(b) != "0123456789" || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client read %q, then %v; want 10 bytes, then a reset", b, err)
	}
	if err := <-reset; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the target got %v, want a reset", err)
	}
	how, up, down := waitPairEnd(t, r, 1)
	if how != "reset after 10 bytes to the client (toxic reset_after_down)" || up != 0 || down != 10 {
		t.Errorf("pair 1 ended %q, %d up, %d down", how, up, down)
	}
}

// --reset-after 300ms resets both sides 300 ms after the pair opened.
func TestRelayResetAfterDuration(t *testing.T) {
	_, rport := startRelay(t, tcpkitTimingBin, addr(echoTarget(t)), "--reset-after", "300ms")
	began := time.Now()
	nc := dial(t, rport)
	roundTrip(t, nc) // the pair is open and works meanwhile
	_, err := io.ReadAll(nc)
	took := time.Since(began)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client got %v, want a reset", err)
	}
	if took < 300*time.Millisecond || took > 500*time.Millisecond {
		t.Errorf("the reset came %v after connecting, want 300ms", took)
	}
}

// --stall up:300ms holds what the client sends, then ends both sides
// (a FIN each way) 300 ms after the pair opened; the held bytes never
// arrive.
func TestRelayStall(t *testing.T) {
	got := make(chan []byte, 1)
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		b, _ := io.ReadAll(nc)
		nc.Close()
		got <- b
	})
	r, rport := startRelay(t, tcpkitTimingBin, addr(tport), "--stall", "up:300ms")
	began := time.Now()
	nc := dial(t, rport)
	write(t, nc, "held")
	b, err := io.ReadAll(nc)
	took := time.Since(began)
	if len(b) != 0 || err != nil {
		t.Errorf("the client read %q, %v; want the relay's FIN", b, err)
	}
	if took < 300*time.Millisecond || took > 600*time.Millisecond {
		t.Errorf("the FIN came %v after connecting, want 300ms", took)
	}
	nc.Close()
	if b := <-got; len(b) != 0 {
		t.Errorf("the target got %q through a stall", b)
	}
	how, _, _ := waitPairEnd(t, r, 1)
	if how != "ended after a stall of 300ms (toxic stall_up)" {
		t.Errorf("pair 1 ended %q", how)
	}
}

// --limit-data down:10 lets 10 bytes through to the client, then ends
// both sides cleanly.
func TestRelayLimitData(t *testing.T) {
	ended := make(chan error, 1)
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		nc.Write([]byte(strings.Repeat("0123456789", 10)))
		_, err := io.ReadAll(nc)
		ended <- err
	})
	_, rport := startRelay(t, tcpkitTimingBin, addr(tport), "--limit-data", "down:10")
	nc := dial(t, rport)
	if b, err := io.ReadAll(nc); string(b) != "0123456789" || err != nil {
		t.Errorf("the client read %q, then %v; want 10 bytes, then the relay's FIN", b, err)
	}
	if err := <-ended; err != nil {
		t.Errorf("the target got %v, want the relay's FIN", err)
	}
}

// --slow-close down:300ms: the bytes come at once, the target's FIN
// 300 ms after it was sent.
func TestRelaySlowClose(t *testing.T) {
	fin := make(chan time.Time, 1)
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		nc.Write([]byte("bye"))
		fin <- time.Now()
		nc.(*net.TCPConn).CloseWrite()
		io.ReadAll(nc)
	})
	_, rport := startRelay(t, tcpkitTimingBin, addr(tport), "--slow-close", "down:300ms")
	nc := dial(t, rport)
	if got := readN(t, nc, 3); got != "bye" {
		t.Fatalf("the client read %q, want bye", got)
	}
	sent := <-fin
	if b, err := io.ReadAll(nc); len(b) != 0 || err != nil {
		t.Errorf("then %q, %v; want the FIN", b, err)
	}
	if took := time.Since(sent); took < 300*time.Millisecond || took > 600*time.Millisecond {
		t.Errorf("the FIN came %v after the target's, want 300ms", took)
	}
}

var controlURLRe = regexp.MustCompile(`control API on (http://\S+/toxics)`)

// The control API switches a fault on and off on a pair already open:
// a latency, then a stall whose held bytes go on once it is removed.
func TestRelayControl(t *testing.T) {
	tport := echoTarget(t)
	r := start(t, tcpkitTimingBin, "relay", "--control", "127.0.0.1:0", "127.0.0.1:0", addr(tport))
	line := r.stderr.take(t, "tcpkit relay: listening on ", waitFor)
	m, u := relayListenRe.FindStringSubmatch(line), controlURLRe.FindStringSubmatch(line)
	if m == nil || u == nil {
		t.Fatalf("relay's listen line %q has no control API", line)
	}
	api := u[1]
	port, _ := strconv.Atoi(m[1])
	nc := dial(t, port)
	if d := roundTrip(t, nc); d > 40*time.Millisecond {
		t.Errorf("a round trip took %v before any toxic", d)
	}
	call := func(method, url, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, want)
		}
	}
	call("POST", api, `{"type":"latency","direction":"down","latency":"50ms"}`, http.StatusCreated)
	if d := roundTrip(t, nc); d < 50*time.Millisecond || d > 90*time.Millisecond {
		t.Errorf("a round trip took %v with 50ms of latency down, want 50ms more", d)
	}
	call("DELETE", api+"/latency_down", "", http.StatusNoContent)
	if d := roundTrip(t, nc); d > 40*time.Millisecond {
		t.Errorf("a round trip took %v once the latency was removed", d)
	}
	call("POST", api, `{"type":"stall","direction":"up"}`, http.StatusCreated)
	write(t, nc, "held")
	nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := nc.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %d bytes, %v through a stall; want nothing for 100ms", n, err)
	}
	nc.SetReadDeadline(time.Now().Add(waitFor))
	call("DELETE", api+"/stall_up", "", http.StatusNoContent)
	if got := readN(t, nc, 4); got != "held" {
		t.Errorf("after the stall, the echo %q, want held", got)
	}
}
