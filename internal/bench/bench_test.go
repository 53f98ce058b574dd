package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tcpkit"
)

// serve starts a tcpkit server on loopback with ev and returns its address.
func serve(t *testing.T, ev tcpkit.Events) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &tcpkit.Server{Events: ev}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// counting is a keep-open server that replies "test" and counts messages.
func counting(n *atomic.Int64) tcpkit.Events {
	reply := []byte("test") // made once: the allocation test counts the server's too
	return tcpkit.Events{OnData: func(c *tcpkit.Conn, p []byte) {
		n.Add(1)
		c.Write(reply)
	}}
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The exchanges bench counts are the server's, in pingpong and oneshot.
func TestExchangeCountsMatchServer(t *testing.T) {
	t.Run("pingpong", func(t *testing.T) {
		var n atomic.Int64
		addr := serve(t, counting(&n))
		res := run(t, Config{Mode: PingPong, Addr: addr, Conns: 8, Exchanges: 5000, Duration: 30 * time.Second, Expect: []byte("test")})
		if res.Exchanges != 5000 || n.Load() != 5000 {
			t.Errorf("bench counted %d exchanges, the server %d; want 5000 both", res.Exchanges, n.Load())
		}
		if sum := sumErrors(res); sum != 0 {
			t.Errorf("errors %v, want none", res.Errors)
		}
	})
	// With Prepare (TLS), pingpong runs on tcpkit's Dial loops.
	t.Run("pingpong with Prepare", func(t *testing.T) {
		var n atomic.Int64
		addr := serve(t, counting(&n))
		res := run(t, Config{Mode: PingPong, Addr: addr, Conns: 8, Exchanges: 5000, Duration: 30 * time.Second, Expect: []byte("test"), Prepare: asIs})
		if res.Exchanges != 5000 || n.Load() != 5000 {
			t.Errorf("bench counted %d exchanges, the server %d; want 5000 both", res.Exchanges, n.Load())
		}
		if sum := sumErrors(res); sum != 0 {
			t.Errorf("errors %v, want none", res.Errors)
		}
	})
	t.Run("oneshot", func(t *testing.T) {
		var n atomic.Int64
		addr := serve(t, tcpkit.Events{OnData: func(c *tcpkit.Conn, p []byte) {
			n.Add(1)
			c.Write([]byte("test"))
			c.End()
		}})
		res := run(t, Config{Mode: Oneshot, Addr: addr, Conns: 8, Exchanges: 1000, Duration: 30 * time.Second, Expect: []byte("test")})
		if res.Exchanges != 1000 || n.Load() != 1000 {
			t.Errorf("bench counted %d exchanges, the server %d; want 1000 both", res.Exchanges, n.Load())
		}
		if res.ConnectUS == nil || res.ConnectUS.Max == 0 {
			t.Errorf("oneshot reports no connect latency")
		}
	})
}

// asIs is a Prepare that changes nothing: enough to take the path of
// connections that have one.
func asIs(nc net.Conn) (net.Conn, error) { return nc, nil }

func sumErrors(res *Result) int64 {
	var s int64
	for _, n := range res.Errors {
		s += n
	}
	return s
}

// Servers that misbehave show as the right kind of error.
func TestErrorKinds(t *testing.T) {
	wrong := serve(t, tcpkit.Events{OnData: func(c *tcpkit.Conn, p []byte) { c.Write([]byte("nope")) }})
	stall := serve(t, tcpkit.Events{}) // reads and never replies
	refusedLn, _ := net.Listen("tcp4", "127.0.0.1:0")
	refused := refusedLn.Addr().String()
	refusedLn.Close()
	resetter := resetServer(t)

	for _, tt := range []struct {
		name string
		addr string
		kind string
	}{
		{"wrong reply", wrong, "wrong_reply"},
		{"reset", resetter, "reset"},
		{"stall", stall, "timeout"},
		{"refused", refused, "refused"},
	} {
		for _, prepare := range []func(net.Conn) (net.Conn, error){nil, asIs} { // with Prepare: on the Dial loops
			t.Run(fmt.Sprintf("%s/prepare %v", tt.name, prepare != nil), func(t *testing.T) {
				res := run(t, Config{Mode: PingPong, Addr: tt.addr, Conns: 2, Duration: 600 * time.Millisecond,
					Expect: []byte("test"), ReplyTimeout: 200 * time.Millisecond, ConnectTimeout: 200 * time.Millisecond, Prepare: prepare})
				if res.Errors[tt.kind] == 0 {
					t.Errorf("errors %v, want some %s", res.Errors, tt.kind)
				}
				for k, n := range res.Errors {
					if k != tt.kind && n != 0 {
						t.Errorf("errors %v: %s is not %s", res.Errors, k, tt.kind)
					}
				}
			})
		}
	}
}

// resetServer accepts, reads a request, and aborts the connection with a
// RST (SO_LINGER 0).
func resetServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				buf := make([]byte, 64)
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				nc.Read(buf)
				nc.(*net.TCPConn).SetLinger(0)
				nc.Close()
			})
		}
	})
	return ln.Addr().String()
}

// --rate holds its rate: an open loop at 2,000 exchanges/s for 3 s issues
// 6,000, all answered.
func TestRateHolds(t *testing.T) {
	var n atomic.Int64
	addr := serve(t, counting(&n))
	res := run(t, Config{Mode: PingPong, Addr: addr, Conns: 4, Rate: 2000, Duration: 3 * time.Second, Expect: []byte("test")})
	// The load is an open loop: exchange i is due at start + i/rate, and
	// an exchange counts for the window it was issued in, however late it
	// ends. The window ends when its timer fires, a little after 3 s, and
	// each connection may have sent the exchange due at that moment: the
	// schedule issues 2,000 a second of the window it measured, plus at
	// most one per connection, never more (no burst past the rate). Fewer
	// means exchanges due near the end still waited for a connection busy
	// with a late reply; a loaded machine may delay some, but not 5%.
	want := 2000 * res.DurationS
	if got := float64(res.Exchanges); got > want+4 || got < want*0.95 {
		t.Errorf("%d exchanges in %.4f s, want the %.0f the schedule issues at 2000/s (at most one more per connection, and not 5%% fewer)", res.Exchanges, res.DurationS, want)
	}
	for kind, n := range res.Errors {
		if n != 0 {
			t.Errorf("%d %s errors, want none", n, kind)
		}
	}
}

// A server that stalls once for 200 ms shows the stall in p99.9 and max:
// latency counts from when each exchange was due, so the exchanges queued
// behind the stall count it too (no coordinated omission).
func TestStallShowsInLatency(t *testing.T) {
	var stalled atomic.Bool
	var seen atomic.Int64
	addr := serve(t, tcpkit.Events{OnData: func(c *tcpkit.Conn, p []byte) {
		if seen.Add(1) == 1000 && stalled.CompareAndSwap(false, true) {
			time.Sleep(200 * time.Millisecond) // the stall under test
		}
		c.Write([]byte("test"))
	}})
	res := run(t, Config{Mode: PingPong, Addr: addr, Conns: 1, Rate: 1000, Duration: 3 * time.Second, Expect: []byte("test")})
	if res.LatencyUS.Max < 190_000 {
		t.Errorf("max latency %d µs, want the 200 ms stall", res.LatencyUS.Max)
	}
	// 200 exchanges were due during the stall, of ~3000: about 7% of
	// them waited 100 ms or more. A closed loop would show one.
	if res.LatencyUS.P99 < 50_000 || res.LatencyUS.P999 < 150_000 {
		t.Errorf("p99 %d µs, p99.9 %d µs: the exchanges due during the stall do not show it", res.LatencyUS.P99, res.LatencyUS.P999)
	}
}

// Merging two results gives the histogram of both runs together.
func TestMergeAddsHistograms(t *testing.T) {
	var n atomic.Int64
	addr := serve(t, counting(&n))
	a := run(t, Config{Mode: PingPong, Addr: addr, Conns: 2, Exchanges: 2000, Duration: 30 * time.Second})
	b := run(t, Config{Mode: PingPong, Addr: addr, Conns: 3, Exchanges: 3000, Duration: 30 * time.Second})
	m, err := Merge([]*Result{a, b})
	if err != nil {
		t.Fatal(err)
	}
	ha, _ := decodeHist(a.Histogram)
	hb, _ := decodeHist(b.Histogram)
	hm, _ := decodeHist(m.Histogram)
	ha.Merge(hb)
	if !ha.Equals(hm) {
		t.Errorf("merged histogram differs from the sum of the two")
	}
	if m.Exchanges != 5000 || m.Connections != 5 || m.Merged != 2 {
		t.Errorf("merged: %d exchanges, %d connections, %d results; want 5000, 5, 2", m.Exchanges, m.Connections, m.Merged)
	}
	if m.LatencyUS != summarize(ha) {
		t.Errorf("merged latency %+v, want %+v", m.LatencyUS, summarize(ha))
	}
	// Through JSON, as merge reads files.
	var buf bytes.Buffer
	a.WriteJSON(&buf)
	back, err := ReadResult(&buf)
	if err != nil || back.Exchanges != a.Exchanges || back.Histogram != a.Histogram {
		t.Errorf("JSON round trip: %v", err)
	}
	if _, err := Merge([]*Result{a, {Mode: "oneshot", Histogram: a.Histogram}}); err == nil {
		t.Errorf("merging different modes succeeded")
	}
}

// The JSON result has the fields scripts rely on.
func TestJSONFields(t *testing.T) {
	var n atomic.Int64
	addr := serve(t, counting(&n))
	res := run(t, Config{Mode: PingPong, Addr: addr, Conns: 2, Duration: 1200 * time.Millisecond})
	var buf bytes.Buffer
	res.WriteJSON(&buf)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mode", "connections", "duration_s", "exchanges", "rate_per_s", "latency_us", "errors"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	lat, _ := m["latency_us"].(map[string]any)
	for _, k := range []string{"min", "p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_us lacks %q", k)
		}
	}
	if len(res.Series) == 0 {
		t.Errorf("no per-second series over 1.2 s")
	}
}

// The HTML report holds both charts and their data, and fetches nothing.
func TestHTMLReport(t *testing.T) {
	var n atomic.Int64
	addr := serve(t, counting(&n))
	res := run(t, Config{Mode: PingPong, Addr: addr, Conns: 2, Duration: 2100 * time.Millisecond})
	var buf bytes.Buffer
	if err := res.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{`aria-label="latency over time"`, `aria-label="latency distribution"`, `"series":[{"t":`, `"distribution":[{"percentile":0`, `"percentile":99.9`} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %s", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "<script src"} {
		if strings.Contains(strings.ReplaceAll(page, "http://www.w3.org/2000/svg", ""), bad) {
			t.Errorf("report refers to the network: %s", bad)
		}
	}
}

func TestParseProcNet(t *testing.T) {
	m := map[string]int64{}
	for _, name := range []string{"testdata/proc_net_snmp", "testdata/proc_net_netstat"} {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := parseProcNet(f, m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f.Close()
	}
	for _, k := range kernelCounters {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in the fixtures", k)
		}
	}
	if err := parseProcNet(strings.NewReader("Tcp: A B\nTcp: 1\n"), map[string]int64{}); err == nil {
		t.Errorf("mismatched lines parsed without error")
	}
	if err := parseProcNet(strings.NewReader("Tcp: A\nTcp: x\n"), map[string]int64{}); err == nil {
		t.Errorf("a non-number parsed without error")
	}
}

func TestMessageTemplate(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"testing~", "testing~"},
		{"req {seq} on {conn}\n", "req 42 on 7\n"},
		{"{seq}{seq}", "4242"},
		{"{nope} {se", "{nope} {se"},
	} {
		if got := string(parseMessage(tt.in).appendTo(nil, 42, 7)); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The per-exchange path allocates nothing in steady state.
func TestPingPongDoesNotAllocate(t *testing.T) {
	var n atomic.Int64
	addr := serve(t, counting(&n))
	nc, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := &runner{cfg: &Config{Expect: []byte("test")}, rec: newRecorder()}
	r.rec.measuring.Store(true)
	msg, buf, rep := []byte("testing~"), make([]byte, 64), newReply(r.cfg)
	allocs := testing.AllocsPerRun(1000, func() {
		start := time.Now()
		if err := r.exchange(nc, msg, buf, &rep); err != nil {
			t.Fatal(err)
		}
		r.rec.record(0, 1, time.Since(start), 0)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per exchange, want 0", allocs)
	}
}

// The whole pingpong loop, generator and (in-process) server together,
// allocates nothing per exchange in steady state: the allocations of a
// long run and of a short one differ by their fixed costs only. Encoding
// the histogram into the result allocates per distinct latency bucket,
// which varies from run to run with the latencies' spread, not with the
// exchanges: it is measured apart and left out.
func TestPingPongLoopAllocations(t *testing.T) {
	var n atomic.Int64
	addr := serve(t, counting(&n))
	mallocs := func(exchanges int64) (uint64, int64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res := run(t, Config{Mode: PingPong, Addr: addr, Conns: 4, Exchanges: exchanges, Duration: time.Minute})
		runtime.ReadMemStats(&after)
		h, err := decodeHist(res.Histogram)
		if err != nil {
			t.Fatal(err)
		}
		encoding := testing.AllocsPerRun(1, func() { encodeHist(h) })
		return after.Mallocs - before.Mallocs - uint64(encoding), res.Exchanges
	}
	mallocs(2000) // warm up
	short, nShort := mallocs(5000)
	long, nLong := mallocs(50000)
	perExchange := (float64(long) - float64(short)) / float64(nLong-nShort)
	t.Logf("%d allocations for %d exchanges, %d for %d: %.4f per exchange", short, nShort, long, nLong, perExchange)
	if perExchange > 0.02 { // a few per run-second remain (the ticker, the series)
		t.Errorf("%.4f allocations per exchange, want 0", perExchange)
	}
}
