package main

// Tests of running many instances behind a load balancer: HAProxy with
// the PROXY protocol in front of two tcpkit serve (deploy/haproxy.cfg, as
// shipped, with only its addresses rewritten), a drain under load,
// --reuseport, TLS, --metrics and /healthz, --log-format, and connect and
// bench --send-proxy. Helpers here are prefixed "so" (scale-out).

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tcpkit/internal/proxy"
)

// A soBackend is a tcpkit serve started with --metrics.
type soBackend struct {
	p       *proc
	port    int    // its TCP port on 127.0.0.1
	metrics string // its --metrics address, 127.0.0.1:PORT
	engine  string // the engine it said it runs on
}

var soListenRe = regexp.MustCompile(`^tcpkit serve: listening on 127\.0\.0\.1:(\d+) \((epoll|std) engine, metrics on http://(127\.0\.0\.1:\d+)/metrics\)$`)

// soServeMetrics starts "tcpkit serve --port 0 --host 127.0.0.1 --metrics
// 127.0.0.1:0" with args and reads both ports from its listen lines.
func soServeMetrics(t testing.TB, args ...string) soBackend {
	t.Helper()
	p := startTcpkit(t, append([]string{"serve", "--port", "0", "--host", "127.0.0.1", "--metrics", "127.0.0.1:0"}, args...)...)
	line := p.stdout.waitPrefix(t, "listen on port ", waitFor)
	about := p.stderr.take(t, "tcpkit serve: listening on ", waitFor)
	m := soListenRe.FindStringSubmatch(about)
	if m == nil || line != "listen on port "+m[1] {
		t.Fatalf("serve's listen lines are %q and %q, want \"listen on port N\" and \"tcpkit serve: listening on 127.0.0.1:N (ENGINE engine, metrics on http://127.0.0.1:M/metrics)\"", line, about)
	}
	port, _ := strconv.Atoi(m[1])
	return soBackend{p: p, port: port, metrics: m[3], engine: m[2]}
}

// soExchange is the seed's exchange with addr from a Go client: connect,
// send "testing~", read until the server's FIN. It returns the client's
// own address, as the client sees it, and what came back.
func soExchange(addr string) (local, got string, err error) {
	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		return "", "", err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(waitFor))
	local = nc.LocalAddr().String()
	if _, err := io.WriteString(nc, "testing~"); err != nil {
		return local, "", err
	}
	b, err := io.ReadAll(nc)
	return local, string(b), err
}

// soWaitUntil polls cond until it holds, failing the test after timeout.
// For counts that no single event announces (lines over two processes,
// a gauge in /metrics).
func soWaitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// soConnectLines returns the addresses of the "connect address : ADDR"
// lines in lines.
func soConnectLines(lines []string) []string {
	var addrs []string
	for _, l := range lines {
		if a, ok := strings.CutPrefix(l, "connect address : "); ok {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// soMultisetDiff returns the elements of a missing from b and those of b
// not in a, counting repeats (a client port may be used again once its
// connection is gone).
func soMultisetDiff(a, b []string) (missing, extra []string) {
	count := make(map[string]int)
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		if count[s] > 0 {
			count[s]--
		} else {
			extra = append(extra, s)
		}
	}
	for s, n := range count {
		for range n {
			missing = append(missing, s)
		}
	}
	slices.Sort(missing)
	return missing, extra
}

// soReplaceOnce replaces the one match of pattern in s, failing the test
// unless there is exactly one: the shipped file must keep the shape the
// test rewrites.
func soReplaceOnce(t testing.TB, s, pattern, repl string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	if n := len(re.FindAllStringIndex(s, -1)); n != 1 {
		t.Fatalf("deploy/haproxy.cfg: %d lines match %s, want 1", n, pattern)
	}
	return re.ReplaceAllString(s, repl)
}

// soHAProxyConfig returns deploy/haproxy.cfg with its frontend bound to
// 127.0.0.1:front and its two servers pointed at the backends: their TCP
// port, and their metrics port for the health checks. Nothing else of the
// shipped file changes.
func soHAProxyConfig(t testing.TB, front int, backends []soBackend) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "deploy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := soReplaceOnce(t, string(src), `(?m)^(\s*bind\s+)\S+`, "${1}127.0.0.1:"+itoa(front))
	for i, b := range backends {
		_, mport, _ := net.SplitHostPort(b.metrics)
		cfg = soReplaceOnce(t, cfg, fmt.Sprintf(`(?m)^(\s*server\s+tcpkit%d\s+)\S+(\s.*\bcheck\s+port\s+)\d+`, i+1),
			"${1}"+addr(b.port)+"${2}"+mport)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The shipped HAProxy config is valid as it is.
func TestDeployHAProxyConfigValid(t *testing.T) {
	haproxy := needPeer(t, "haproxy")
	out, err := exec.Command(haproxy, "-c", "-f", filepath.Join("..", "..", "deploy", "haproxy.cfg")).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f deploy/haproxy.cfg: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Configuration file is valid") {
		t.Errorf("haproxy -c said %q, want \"Configuration file is valid\"", out)
	}
}

// HAProxy, configured by deploy/haproxy.cfg, in front of two tcpkit serve
// with the PROXY protocol v2: the seed's exchange goes through it 2,000
// times, each backend's log shows each client's own address and port, and
// draining one backend with SIGTERM in the middle of the load loses no
// exchange.
//
// Health checks go to each backend's --metrics port, /healthz, rather
// than to its tcpkit port: /healthz turns 503 as soon as a drain starts,
// and HAProxy sends no PROXY header to a check port, so the backends'
// logs hold the clients' connections and nothing else (a plain TCP check
// on the tcpkit port would add a rejected, header-less connection per
// check). While the drained backend refuses connections and the check has
// not yet taken it out, HAProxy's "retries 3" and "option redispatch 1"
// retry each refused connection on the other backend, unseen by the
// client. What no balancer can retry is a connection the backend accepted
// and then closed without an answer: that is the backend's drain to get
// right, and every such exchange is a failure here. See
// deploy/haproxy.cfg.
func TestHAProxyScaleOut(t *testing.T) {
	haproxy := needPeer(t, "haproxy")
	const seedExchanges, workers = 2000, 8
	// --drain-delay: the backend keeps accepting while HAProxy's check of
	// /healthz (fastinter 250ms, fall 1) takes it out of the rotation.
	backendArgs := []string{"--proxy-protocol", "--proxy-protocol-from", "127.0.0.1/32", "--drain-delay", "2s"}
	backends := []soBackend{soServeMetrics(t, backendArgs...), soServeMetrics(t, backendArgs...)}
	for _, b := range backends { // the deployment the docs recommend runs on the loop
		if want := engineName("auto"); b.engine != want {
			t.Fatalf("a --proxy-protocol backend runs on the %s engine, want %s", b.engine, want)
		}
	}
	var (
		mu       sync.Mutex
		locals   []string // every client's own address, as it saw it
		failures []string
	)
	record := func(local, got string, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		if local != "" {
			locals = append(locals, local)
		}
		if err != nil || got != "test" {
			failures = append(failures, fmt.Sprintf("client %s: got %q, %v; want \"test\" then EOF", local, got, err))
			return false
		}
		return true
	}

	// HAProxy cannot bind port 0 and say which port it got: it gets a
	// port that was free a moment ago, and another if that was taken
	// meanwhile. The first exchange waits for it to listen: only a refused
	// connect is retried, and that never reaches a backend.
	t0 := time.Now()
	var hp *proc
	var frontAddr string
	for attempt := 1; hp == nil; attempt++ {
		front := ncFreePort(t)
		frontAddr = addr(front)
		p := start(t, haproxy, "-f", soHAProxyConfig(t, front, backends), "-db")
		soWaitUntil(t, "HAProxy to listen on "+frontAddr, waitFor, func() bool {
			select {
			case <-p.done:
				if attempt < 3 && slices.ContainsFunc(p.stderr.all(), func(l string) bool { return strings.Contains(l, "cannot bind socket") }) {
					return true // the port was taken: try another
				}
				t.Fatalf("haproxy exited with code %d: %q", p.code, p.stderr.all())
			default:
			}
			local, got, err := soExchange(frontAddr)
			if errors.Is(err, syscall.ECONNREFUSED) {
				return false
			}
			record(local, got, err)
			hp = p
			return true
		})
	}

	// 2,000 seed exchanges from several clients at once.
	var next atomic.Int64
	next.Store(1) // the first is done
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= seedExchanges {
				record(soExchange(frontAddr))
			}
		})
	}
	wg.Wait()
	seedTime := time.Since(t0)
	mu.Lock()
	if len(failures) > 0 {
		t.Fatalf("%d of %d exchanges through HAProxy failed; first: %s", len(failures), seedExchanges, failures[0])
	}
	if len(locals) != seedExchanges {
		t.Fatalf("%d exchanges recorded, want %d", len(locals), seedExchanges)
	}
	mu.Unlock()
	// Both backends served some: count their connect lines once all are
	// printed (serve writes its lines a few milliseconds late, in batches).
	served := func(b soBackend) int { return len(soConnectLines(b.p.stdout.all())) }
	soWaitUntil(t, "both backends to print 2000 connect lines", waitFor, func() bool {
		return served(backends[0])+served(backends[1]) == seedExchanges
	})
	n1, n2 := served(backends[0]), served(backends[1])
	t.Logf("%d seed exchanges through HAProxy in %v: backend 1 served %d, backend 2 %d", seedExchanges, seedTime.Round(time.Millisecond), n1, n2)
	if n1 == 0 || n2 == 0 {
		t.Errorf("backend 1 served %d and backend 2 %d connections; roundrobin should give both some", n1, n2)
	}

	// Drain backend 1 with SIGTERM in the middle of a continuous load;
	// the load goes on after it has exited.
	var ok atomic.Int64
	stopLoad := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				if record(soExchange(frontAddr)) {
					ok.Add(1)
				}
			}
		})
	}
	loadStopped := false
	defer func() { // on a failure below, the load must still stop
		if !loadStopped {
			close(stopLoad)
			wg.Wait()
		}
	}()
	soWaitUntil(t, "300 exchanges before the drain", 2*waitFor, func() bool { return ok.Load() >= 300 })
	drainStart := time.Now()
	backends[0].p.signal(t, syscall.SIGTERM)
	code := backends[0].p.wait(t, 2*waitFor)
	drainTime := time.Since(drainStart)
	// The load goes on until HAProxy's health check has taken the drained
	// backend out (until then, its refusals are retried on the other),
	// and for 300 exchanges more.
	down := func(l string) bool { return strings.Contains(l, "Server tcpkit/tcpkit1 is DOWN") }
	soWaitUntil(t, "HAProxy to mark backend 1 down", 2*waitFor, func() bool {
		return slices.ContainsFunc(hp.stdout.all(), down) || slices.ContainsFunc(hp.stderr.all(), down)
	})
	downTime := time.Since(drainStart)
	atDown := ok.Load()
	soWaitUntil(t, "300 exchanges after backend 1 was marked down", 2*waitFor, func() bool { return ok.Load() >= atDown+300 })
	close(stopLoad)
	wg.Wait()
	loadStopped = true

	checkExit(t, "drained backend", code, exitOK)
	drainErr := backends[0].p.stderr.all()
	if len(drainErr) != 1 || !strings.HasPrefix(drainErr[0], "tcpkit serve: stopped; ") || !strings.HasSuffix(drainErr[0], " ended cleanly") {
		t.Errorf("drained backend's stderr: got %q, want one line \"tcpkit serve: stopped; N open connections ended cleanly\"", drainErr)
	}
	mu.Lock()
	total, failed := len(locals), slices.Clone(failures)
	mu.Unlock()
	t.Logf("drain: backend 1 exited %v after SIGTERM, HAProxy marked it down after %v; %d exchanges under load in all, %d failed",
		drainTime.Round(time.Millisecond), downTime.Round(time.Millisecond), total-seedExchanges, len(failed))
	if len(failed) > 0 {
		t.Errorf("%d exchanges failed during the drain, want 0:\n%s", len(failed), strings.Join(failed[:min(len(failed), 10)], "\n"))
	}

	// Each backend printed, for each connection it served, the address and
	// port the client itself saw as its own (from the PROXY header), and
	// "testing~"; nothing else. Together they served every exchange once.
	stop(t, backends[1].p)
	var logged []string
	for i, b := range backends {
		out := b.p.stdout.all()
		if len(out) == 0 || out[0] != fmt.Sprintf("listen on port %d", b.port) {
			t.Fatalf("backend %d: first line %q", i+1, out[:min(len(out), 1)])
		}
		var connects, messages int
		for _, l := range out[1:] {
			switch {
			case strings.HasPrefix(l, "connect address : "):
				connects++
			case l == "testing~":
				messages++
			default:
				t.Errorf("backend %d printed %q; want only connect address lines and testing~", i+1, l)
			}
		}
		if connects != messages {
			t.Errorf("backend %d: %d connections and %d messages, want one message per connection", i+1, connects, messages)
		}
		logged = append(logged, soConnectLines(out)...)
	}
	mu.Lock()
	want := slices.Clone(locals)
	mu.Unlock()
	missing, extra := soMultisetDiff(want, logged)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("the clients' own addresses (%d) and the backends' connect lines (%d) differ: not logged %q; logged, no such client %q",
			len(want), len(logged), missing[:min(len(missing), 10)], extra[:min(len(extra), 10)])
	}
	for _, a := range logged {
		if h, _, err := net.SplitHostPort(a); err != nil || h != "127.0.0.1" || a == frontAddr {
			t.Errorf("a backend logged %q: want a client's 127.0.0.1:PORT", a)
			break
		}
	}
	retried := 0
	for _, l := range hp.stdout.all() {
		if strings.Contains(l, "/+") { // tcplog's retries field, "+N" when redispatched
			retried++
		}
	}
	t.Logf("HAProxy redispatched %d connections to the other backend", retried)
}

// soWhich waits until one of procs prints the line want on stdout and
// returns its index.
func soWhich(t testing.TB, procs []*proc, want string) int {
	t.Helper()
	which := -1
	soWaitUntil(t, fmt.Sprintf("a line %q", want), waitFor, func() bool {
		for i, p := range procs {
			if slices.Contains(p.stdout.all(), want) {
				which = i
				return true
			}
		}
		return false
	})
	return which
}

// Two tcpkit serve --reuseport listen on one port and the kernel spreads
// the connections over both; one can stop while the other keeps the port
// answering. Without --reuseport, a second one cannot bind.
func TestReuseportCLI(t *testing.T) {
	t.Parallel()
	p1, port := serve(t, "--reuseport")
	p2 := startTcpkit(t, "serve", "--port", itoa(port), "--host", "127.0.0.1", "--reuseport")
	p2.waitLine(t, listenWant(port, "127.0.0.1"), waitFor)
	procs := []*proc{p1, p2}

	code, out, errOut := runTcpkit(t, "serve", "--port", itoa(port), "--host", "127.0.0.1")
	checkExit(t, "serve without --reuseport on the same port", code, exitFail)
	checkLines(t, "its stdout", out, nil)
	checkOneLine(t, "its stderr", errOut, fmt.Sprintf("cannot listen on 127.0.0.1:%d: port %d is already in use by ", port, port))

	// Connections until both have served some: at most 200 (the chance
	// that the kernel's hash sends 200 in a row to one is 2^-199).
	var served [2]int
	for i := 0; i < 200 && (served[0] == 0 || served[1] == 0); i++ {
		local, got, err := soExchange(addr(port))
		if err != nil || got != "test" {
			t.Fatalf("exchange %d: got %q, %v; want \"test\" then EOF", i+1, got, err)
		}
		served[soWhich(t, procs, "connect address : "+local)]++
	}
	if served[0] == 0 || served[1] == 0 {
		t.Fatalf("served %d and %d connections; want both some", served[0], served[1])
	}
	t.Logf("%d connections until both served: %d and %d", served[0]+served[1], served[0], served[1])

	// One stops (a restart, one at a time): the other serves them all.
	stop(t, p1)
	for i := range 20 {
		local, got, err := soExchange(addr(port))
		if err != nil || got != "test" {
			t.Fatalf("exchange %d after the first stopped: got %q, %v", i+1, got, err)
		}
		if soWhich(t, procs, "connect address : "+local) != 1 {
			t.Fatalf("connection from %s: served by the stopped process", local)
		}
	}
	stop(t, p2)
}

// soSeedLines is what tcpkit connect --count 1 prints against the seed's
// server.
var soSeedLines = []string{"connect to server!", "receive: test", "disconnected."}

// soCert runs tcpkit cert into a temporary directory and returns the
// certificate and key files.
func soCert(t *testing.T) (cert, key string) {
	t.Helper()
	dir := t.TempDir()
	code, out, errOut := runTcpkit(t, "cert", "--out", dir)
	checkExit(t, "tcpkit cert", code, exitOK)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	checkLines(t, "tcpkit cert stdout", out, []string{"wrote " + cert + " and " + key + " for localhost, 127.0.0.1, ::1"})
	checkLines(t, "tcpkit cert stderr", errOut, nil)
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	return cert, key
}

// soRejected waits for serve's line "rejected : 127.0.0.1:PORT : reason"
// for a client other than the server, and returns the client's address.
func soRejected(t testing.TB, srv *proc, port int, reason string) string {
	t.Helper()
	line := srv.stdout.waitPrefix(t, "rejected : ", waitFor)
	rest, _ := strings.CutPrefix(line, "rejected : ")
	client, got, ok := strings.Cut(rest, " : ")
	h, p, err := net.SplitHostPort(client)
	if !ok || err != nil || h != "127.0.0.1" || p == itoa(port) || got != reason {
		t.Errorf("serve printed %q, want \"rejected : 127.0.0.1:PORT : %s\"", line, reason)
	}
	return client
}

// TLS with a certificate from tcpkit cert: the seed's exchange over TLS;
// TLS 1.2 and later only; and each wrong pairing fails with a line that
// says what to do, on both sides.
func TestTLSCLI(t *testing.T) {
	t.Parallel()
	forEachCLIEngine(t, func(t *testing.T, engine string) {
		cert, key := soCert(t)
		srv, port := serve(t, "--engine", engine, "--tls-cert", cert, "--tls-key", key)

		t.Run("round trip", func(t *testing.T) {
			code, out, errOut := runTcpkit(t, "connect", "--tls", "--ca", cert, "--count", "1", addr(port))
			checkExit(t, "connect --tls --ca", code, exitOK)
			checkLines(t, "connect stdout", out, soSeedLines)
			checkLines(t, "connect stderr", errOut, nil)
			checkClientAddr(t, srv.stdout.waitPrefix(t, "connect address : ", waitFor), "127.0.0.1", port)
			srv.waitLine(t, "testing~", waitFor)

			code, out, errOut = runTcpkit(t, "connect", "--tls", "--insecure", "--count", "1", addr(port))
			checkExit(t, "connect --tls --insecure", code, exitOK)
			checkLines(t, "connect --insecure stdout", out, soSeedLines)
			checkLines(t, "connect --insecure stderr", errOut, nil)
			srv.waitLine(t, "testing~", waitFor)
		})

		t.Run("TLS 1.2 and later only", func(t *testing.T) {
			pem, err := os.ReadFile(cert)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(pem)
			nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr(port), &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatalf("TLS 1.2 client: %v", err)
			}
			nc.SetDeadline(time.Now().Add(waitFor))
			if v := nc.ConnectionState().Version; v != tls.VersionTLS12 {
				t.Errorf("negotiated %s, want TLS 1.2", tls.VersionName(v))
			}
			io.WriteString(nc, "testing~")
			if got, err := io.ReadAll(nc); err != nil || string(got) != "test" {
				t.Errorf("TLS 1.2 exchange: got %q, %v; want \"test\"", got, err)
			}
			nc.Close()
			srv.waitLine(t, "testing~", waitFor)

			old, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr(port), &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			if err == nil {
				old.Close()
				t.Fatal("a TLS 1.1 client was let in")
			}
			if !strings.Contains(err.Error(), "protocol version not supported") {
				t.Errorf("TLS 1.1 client's error: %v, want the server's protocol version alert", err)
			}
			line := srv.stdout.waitPrefix(t, "rejected : ", waitFor)
			if !strings.HasSuffix(line, " : TLS handshake failed: tls: client offered only unsupported versions: [302 301]") {
				t.Errorf("serve printed %q, want a rejection for the versions offered", line)
			}
		})

		t.Run("plain client", func(t *testing.T) {
			code, out, errOut := runTcpkit(t, "connect", "--count", "1", addr(port))
			checkExit(t, "plain connect to a TLS server", code, exitOK)
			checkLines(t, "connect stdout", out, []string{"connect to server!", "receive: tcpkit: this server speaks TLS; connect with --tls", "disconnected."})
			checkLines(t, "connect stderr", errOut, nil)
			soRejected(t, srv, port, "TLS handshake failed: the client spoke plain text, not TLS")
		})

		t.Run("certificate not trusted", func(t *testing.T) {
			code, out, errOut := runTcpkit(t, "connect", "--tls", "--count", "1", addr(port))
			checkExit(t, "connect --tls without --ca", code, exitFail)
			checkLines(t, "connect stdout", out, nil)
			checkLines(t, "connect stderr", errOut, []string{"tcpkit connect: cannot connect to " + addr(port) +
				": TLS handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority;" +
				" trust the server's certificate with --ca FILE, or skip the check with --insecure"})
			soRejected(t, srv, port, "TLS handshake failed: remote error: tls: bad certificate")
		})

		t.Run("usage", func(t *testing.T) {
			code, _, errOut := runTcpkit(t, "connect", "--insecure", "--count", "1", addr(port))
			checkExit(t, "connect --insecure without --tls", code, exitUsage)
			checkOneLine(t, "its stderr", errOut, "--insecure, --ca, --sni, --cert, --key and --alpn go with --tls")
			code, _, errOut = runTcpkit(t, "serve", "--port", "0", "--tls-cert", cert)
			checkExit(t, "serve --tls-cert without --tls-key", code, exitUsage)
			checkOneLine(t, "its stderr", errOut, "give both --tls-cert and --tls-key, or neither")
		})

		// A TLS client against a plaintext server: the plain server's answer
		// is not a TLS record, and connect says so. The seed's server answers
		// the ClientHello with "test", 4 bytes and its FIN, shorter than a TLS
		// record header; a longer answer is read as a bad record header.
		for _, tc := range []struct{ name, reply string }{
			{"plaintext seed server", "test"},
			{"plaintext server, longer reply", "not a TLS record"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				plain, pport := serve(t, "--reply", tc.reply)
				code, out, errOut := runTcpkit(t, "connect", "--tls", "--insecure", "--count", "1", addr(pport))
				checkExit(t, "connect --tls to a plaintext server", code, exitFail)
				checkLines(t, "connect stdout", out, nil)
				checkLines(t, "connect stderr", errOut, []string{"tcpkit connect: cannot connect to " + addr(pport) +
					": TLS handshake failed: the server answered in plain text; it does not speak TLS (drop --tls)"})
				stop(t, plain)
			})
		}
		stop(t, srv)
	})
}

// soScrape fetches url and returns the status code and the body.
func soGet(t testing.TB, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: waitFor, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// soMetrics scrapes /metrics and returns each tcpkit_ sample, "name{labels}"
// to its value as printed.
func soMetrics(t testing.TB, metricsAddr string) map[string]string {
	t.Helper()
	code, body := soGet(t, "http://"+metricsAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %q", code, body)
	}
	m := make(map[string]string)
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, "tcpkit_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		m[l[:i]] = l[i+1:]
	}
	return m
}

// checkMetrics fails the test unless each sample in want has its value.
func checkMetrics(t testing.TB, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("/metrics: %s = %q, want %q", k, got[k], v)
		}
	}
}

// After N seed exchanges /metrics counts them exactly; a rejected
// connection is counted by its reason; /healthz is 200, then 503 from the
// moment a drain starts, while a client holds the drain open.
func TestMetricsCLI(t *testing.T) {
	t.Parallel()
	const n = 5
	b := soServeMetrics(t, "--max-conns", "1")
	if code, body := soGet(t, "http://"+b.metrics+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	gauge := func(want string) func() bool {
		return func() bool { return soMetrics(t, b.metrics)["tcpkit_connections_open"] == want }
	}
	// --max-conns 1: each exchange waits until the last one's connection
	// has closed on the server, as /metrics says.
	for i := range n {
		soWaitUntil(t, "tcpkit_connections_open 0", waitFor, gauge("0"))
		if _, got, err := soExchange(addr(b.port)); err != nil || got != "test" {
			t.Fatalf("exchange %d: got %q, %v", i+1, got, err)
		}
	}
	soWaitUntil(t, "tcpkit_connections_open 0", waitFor, gauge("0"))
	m := soMetrics(t, b.metrics)
	checkMetrics(t, m, map[string]string{
		"tcpkit_connections_accepted_total":      itoa(n),
		"tcpkit_connections_open":                "0",
		"tcpkit_exchanges_total":                 itoa(n),
		"tcpkit_exchange_duration_seconds_count": itoa(n),
		"tcpkit_bytes_received_total":            itoa(8 * n),
		"tcpkit_bytes_sent_total":                itoa(4 * n),
	})
	for k := range m {
		if strings.HasPrefix(k, "tcpkit_connections_rejected_total") || strings.HasPrefix(k, "tcpkit_connection_errors_total") {
			t.Errorf("/metrics has %s = %s, want no rejections or errors yet", k, m[k])
		}
	}

	// One client holds the only place; the next is rejected.
	holder := dial(t, b.port)
	soWaitUntil(t, "tcpkit_connections_open 1", waitFor, gauge("1"))
	over := dial(t, b.port)
	if got := readAll(t, over); got != "" {
		t.Errorf("the rejected client read %q, want nothing", got)
	}
	if client := soRejected(t, b.p, b.port, "too many connections (--max-conns 1)"); client != over.LocalAddr().String() {
		t.Errorf("rejected %s, want the second client %s", client, over.LocalAddr())
	}
	soWaitUntil(t, "the rejection in /metrics", waitFor, func() bool {
		return soMetrics(t, b.metrics)[`tcpkit_connections_rejected_total{reason="max_conns"}`] == "1"
	})
	checkMetrics(t, soMetrics(t, b.metrics), map[string]string{
		"tcpkit_connections_accepted_total": itoa(n + 1),
		"tcpkit_connections_open":           "1",
		"tcpkit_exchanges_total":            itoa(n),
	})

	// SIGTERM: the drain starts (the holder gets the server's FIN) and
	// /healthz is 503 from then on, while the holder keeps the drain open.
	b.p.signal(t, syscall.SIGTERM)
	if got := readAll(t, holder); got != "" {
		t.Errorf("the holder read %q at the drain, want the FIN alone", got)
	}
	if code, body := soGet(t, "http://"+b.metrics+"/healthz"); code != http.StatusServiceUnavailable || body != "draining\n" {
		t.Errorf("GET /healthz during the drain: %d %q, want 503 \"draining\\n\"", code, body)
	}
	select {
	case <-b.p.done:
		t.Fatalf("serve exited while a client held its drain open")
	default:
	}
	holder.Close()
	checkExit(t, "serve after the drain", b.p.wait(t, waitFor), exitOK)
	checkLines(t, "serve stderr", b.p.stderr.all(), []string{"tcpkit serve: stopped; 1 open connection ended cleanly"})
}

// --log-format json and text: every line of serve's stdout is one log/slog
// record with its message, and the connection events carry the
// connection's id.
func TestLogFormatCLI(t *testing.T) {
	t.Parallel()
	const noHeader = "no PROXY protocol header: the connection did not come through the load balancer"
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			p := startTcpkit(t, "serve", "--port", "0", "--host", "127.0.0.1", "--log-format", format, "--proxy-protocol")
			first := p.stdout.waitPrefix(t, "", waitFor)
			m := regexp.MustCompile(`listen on port (\d+)`).FindStringSubmatch(first)
			if m == nil {
				t.Fatalf("first line %q, want the listen record", first)
			}
			port, _ := strconv.Atoi(m[1])
			code, out, _ := runTcpkit(t, "connect", "--send-proxy", "v1", "--proxy-src", "203.0.113.7:40000", "--count", "1", addr(port))
			checkExit(t, "connect --send-proxy", code, exitOK)
			checkLines(t, "connect stdout", out, soSeedLines)
			local, _, _ := soExchange(addr(port)) // no header: rejected
			stop(t, p)

			lines := p.stdout.all()
			var want []map[string]any
			want = append(want,
				map[string]any{"level": "INFO", "msg": "listen on port " + m[1], "addr": "127.0.0.1:" + m[1], "engine": engineName("auto")},
				map[string]any{"level": "INFO", "msg": "connect", "conn": "1", "remote": "203.0.113.7:40000"},
				map[string]any{"level": "INFO", "msg": "message", "conn": "1", "bytes": "8", "text": "testing~"},
				map[string]any{"level": "WARN", "msg": "rejected", "remote": local, "reason": noHeader},
			)
			if len(lines) != len(want) {
				t.Fatalf("serve printed %d lines, want %d: %q", len(lines), len(want), lines)
			}
			for i, l := range lines {
				rec := soParseRecord(t, format, l)
				if _, ok := rec["time"]; !ok {
					t.Errorf("line %d %q has no time", i+1, l)
				}
				delete(rec, "time")
				if fmt.Sprint(rec) != fmt.Sprint(want[i]) {
					t.Errorf("line %d: %q\n got %v\nwant %v", i+1, l, rec, want[i])
				}
			}
		})
	}
}

// soParseRecord parses a log/slog line of the given format into its
// fields, every value as a string.
func soParseRecord(t testing.TB, format, line string) map[string]any {
	t.Helper()
	rec := make(map[string]any)
	if format == "json" {
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("%q is not one JSON object: %v", line, err)
		}
		for k, v := range raw {
			rec[k] = fmt.Sprint(v)
		}
		return rec
	}
	// text: key=value or key="quoted value", space separated.
	re := regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)
	rest := re.ReplaceAllStringFunc(line, func(kv string) string {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(v, `"`) {
			u, err := strconv.Unquote(v)
			if err != nil {
				t.Fatalf("%q: bad quoted value %s", line, v)
			}
			v = u
		}
		rec[k] = v
		return ""
	})
	if strings.TrimSpace(rest) != "" {
		t.Fatalf("%q: not key=value pairs (left %q)", line, rest)
	}
	return rec
}

// connect --send-proxy v1|v2 [--proxy-src]: serve --proxy-protocol
// prints the claimed client. A connection without a header, with a bad
// one, or from a peer outside --proxy-protocol-from is rejected with a
// line that says why.
func TestSendProxyCLI(t *testing.T) {
	t.Parallel()
	srv, port := serve(t, "--proxy-protocol", "--proxy-protocol-from", "127.0.0.1/32")
	for _, tc := range []struct {
		args []string
		want string // the address serve prints; "" for the client's own
	}{
		{[]string{"--send-proxy", "v1", "--proxy-src", "203.0.113.7:40000"}, "203.0.113.7:40000"},
		{[]string{"--send-proxy", "v2", "--proxy-src", "203.0.113.8:40001"}, "203.0.113.8:40001"},
		{[]string{"--send-proxy", "v1", "--proxy-src", "[2001:db8::7]:40000"}, "[2001:db8::7]:40000"},
		{[]string{"--send-proxy", "v2", "--proxy-src", "[2001:db8::8]:40001"}, "[2001:db8::8]:40001"},
		{[]string{"--send-proxy", "2"}, ""},
	} {
		code, out, errOut := runTcpkit(t, append(append([]string{"connect", "--count", "1"}, tc.args...), addr(port))...)
		checkExit(t, fmt.Sprint("connect ", tc.args), code, exitOK)
		checkLines(t, "its stdout", out, soSeedLines)
		checkLines(t, "its stderr", errOut, nil)
		line := srv.stdout.waitPrefix(t, "connect address : ", waitFor)
		if tc.want == "" {
			checkClientAddr(t, line, "127.0.0.1", port)
		} else if line != "connect address : "+tc.want {
			t.Errorf("connect %q: serve printed %q, want \"connect address : %s\"", tc.args, line, tc.want)
		}
		srv.waitLine(t, "testing~", waitFor)
	}

	// The seed's client straight to the server: no header. The server
	// ends the connection without a reply, so --count 1 is not reached.
	code, out, errOut := runTcpkit(t, "connect", "--count", "1", addr(port))
	checkExit(t, "plain connect", code, exitBroken)
	checkLines(t, "plain connect stdout", out, []string{"connect to server!", "disconnected."})
	checkLines(t, "plain connect stderr", errOut, []string{"tcpkit connect: the server ended the connection without replying to send 1 of --count 1"})
	soRejected(t, srv, port, "no PROXY protocol header: the connection did not come through the load balancer")
	// The same from a Go client, to see the exact address in the line.
	local, got, err := soExchange(addr(port))
	if got != "" || err != nil {
		t.Errorf("a client without a header read %q, %v; want the close", got, err)
	}
	srv.waitLine(t, "rejected : "+local+" : no PROXY protocol header: the connection did not come through the load balancer", waitFor)
	// A malformed header.
	nc := dial(t, port)
	write(t, nc, "PROXY TCP4 bogus 198.51.100.1 40000 5000\r\ntesting~")
	readAll(t, nc)
	srv.waitLine(t, "rejected : "+nc.LocalAddr().String()+" : bad PROXY protocol header: proxyproto: invalid address: ParseAddr(\"bogus\"): unable to parse IP", waitFor)
	stop(t, srv)

	// A balancer list that does not hold 127.0.0.1: even a valid header
	// from here is refused.
	other, oport := serve(t, "--proxy-protocol", "--proxy-protocol-from", "10.0.0.0/8,192.168.0.0/16")
	nc = dial(t, oport)
	var hdr strings.Builder
	proxy.WriteHeader(&hdr, 2, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 40000}, nc.RemoteAddr())
	write(t, nc, hdr.String()+"testing~")
	// Refused without a byte read: the close is a RST for the unread input.
	if b, err := io.ReadAll(nc); len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("a client outside --proxy-protocol-from read %q, %v; want the close (a reset) and nothing before it", b, err)
	}
	other.waitLine(t, "rejected : "+nc.LocalAddr().String()+" : this peer may not send a PROXY protocol header (--proxy-protocol-from)", waitFor)
	stop(t, other)
}

func TestSendProxyUsageCLI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--port", "0", "--proxy-protocol-from", "10.0.0.0/8"}, "tcpkit serve: --proxy-protocol-from and --proxy-protocol-timeout go with --proxy-protocol (run 'tcpkit serve -h' for help)"},
		{[]string{"serve", "--port", "0", "--proxy-protocol", "--proxy-protocol-from", "10.0.0.0/8,bogus"}, `tcpkit serve: --proxy-protocol-from: "bogus" is not a CIDR or an IP address (run 'tcpkit serve -h' for help)`},
		{[]string{"connect", "--send-proxy", "v3", "5000"}, `tcpkit connect: --send-proxy "v3": use v1 or v2 (run 'tcpkit connect -h' for help)`},
		{[]string{"connect", "--send-proxy", "v1", "--proxy-src", "bogus", "5000"}, `tcpkit connect: --proxy-src "bogus": want IP:PORT (run 'tcpkit connect -h' for help)`},
		{[]string{"connect", "--proxy-src", "203.0.113.7:1", "5000"}, "tcpkit connect: --proxy-src goes with --send-proxy (run 'tcpkit connect -h' for help)"},
		{[]string{"bench", "oneshot", "--send-proxy", "v9", "5000"}, `tcpkit bench: --send-proxy "v9": use v1 or v2 (run 'tcpkit bench -h' for help)`},
	} {
		code, out, errOut := runTcpkit(t, tc.args...)
		checkExit(t, strings.Join(tc.args, " "), code, exitUsage)
		checkLines(t, strings.Join(tc.args, " ")+" stdout", out, nil)
		checkLines(t, strings.Join(tc.args, " ")+" stderr", errOut, []string{tc.want})
	}
}

// bench --send-proxy: every connection of the load starts with the
// header, and the server sees the claimed client on each.
func TestBenchSendProxyCLI(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			srv, port := serve(t, "--proxy-protocol", "--proxy-protocol-from", "127.0.0.1")
			code, out, errOut := runTcpkit(t, "bench", "oneshot", "-c", "2", "-n", "20", "-d", "0", "--expect", "test",
				"--send-proxy", v, "--proxy-src", "203.0.113.9:1234", "--json", addr(port))
			checkExit(t, "bench --send-proxy", code, exitOK)
			checkLines(t, "bench stderr", errOut, nil)
			var res struct {
				Exchanges int64            `json:"exchanges"`
				Errors    map[string]int64 `json:"errors"`
			}
			if err := json.Unmarshal([]byte(strings.Join(out, "\n")), &res); err != nil {
				t.Fatalf("bench --json: %v: %q", err, out)
			}
			if res.Exchanges != 20 {
				t.Errorf("bench made %d exchanges, want 20", res.Exchanges)
			}
			for kind, n := range res.Errors {
				if n != 0 {
					t.Errorf("bench errors: %s %d, want none", kind, n)
				}
			}
			lines := stop(t, srv)[1:]
			var connects, messages int
			for _, l := range lines {
				switch l {
				case "connect address : 203.0.113.9:1234":
					connects++
				case "testing~":
					messages++
				default:
					t.Errorf("serve printed %q", l)
				}
			}
			if connects != 20 || messages != 20 {
				t.Errorf("serve printed %d connect lines for 203.0.113.9:1234 and %d messages, want 20 each", connects, messages)
			}
		})
	}
}

// The systemd unit and the Kubernetes manifest run tcpkit serve with
// flags it takes, and give the drain the time it needs.
func TestDeployFiles(t *testing.T) {
	parseServe := func(t *testing.T, where string, args []string) serveOptions {
		t.Helper()
		if len(args) == 0 || args[0] != "serve" {
			t.Fatalf("%s: %q does not run tcpkit serve", where, args)
		}
		fs := newFlagSet("serve", serveUsage, io.Discard)
		var o serveOptions
		o.define(fs)
		pos, err := fs.parse(args[1:], io.Discard)
		if err != nil {
			t.Fatalf("%s: tcpkit %q: %v", where, args, err)
		}
		o.argv = pos
		if err := o.check(); err != nil {
			t.Fatalf("%s: tcpkit %q: %v", where, args, err)
		}
		if o.metricsAddr == "" {
			t.Errorf("%s: no --metrics, so no /healthz for the balancer", where)
		}
		return o
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("tcpkit.service", func(t *testing.T) {
		unit := read("tcpkit.service")
		keys := map[string]string{}
		for _, l := range strings.Split(unit, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
				keys[k] = v
			}
		}
		exec := strings.Fields(keys["ExecStart"])
		if len(exec) == 0 || filepath.Base(exec[0]) != "tcpkit" {
			t.Fatalf("ExecStart=%q, want the tcpkit binary", keys["ExecStart"])
		}
		o := parseServe(t, "ExecStart", exec[1:])
		if !o.proxy {
			t.Errorf("ExecStart has no --proxy-protocol")
		}
		stopTimeout, err := time.ParseDuration(keys["TimeoutStopSec"])
		if err != nil || stopTimeout <= o.drain {
			t.Errorf("TimeoutStopSec=%s, want more than --drain-timeout %v", keys["TimeoutStopSec"], o.drain)
		}
		for k, v := range map[string]string{"KillSignal": "SIGTERM", "Restart": "on-failure", "DynamicUser": "yes", "NoNewPrivileges": "yes"} {
			if keys[k] != v {
				t.Errorf("%s=%q, want %q", k, keys[k], v)
			}
		}
		if _, ok := keys["AmbientCapabilities"]; ok && o.port >= 1024 {
			t.Errorf("AmbientCapabilities set for port %d: only a port below 1024 needs it", o.port)
		}
	})

	t.Run("kubernetes.yaml", func(t *testing.T) {
		k8s := read("kubernetes.yaml")
		one := func(pattern string) string {
			t.Helper()
			m := regexp.MustCompile(`(?m)`+pattern).FindAllStringSubmatch(k8s, -1)
			if len(m) != 1 {
				t.Fatalf("kubernetes.yaml: %d lines match %s, want 1", len(m), pattern)
			}
			return m[0][1]
		}
		var args []string
		if err := json.Unmarshal([]byte(one(`^\s+args: (\[.*\])\s*$`)), &args); err != nil {
			t.Fatalf("args: %v", err)
		}
		o := parseServe(t, "args", args)
		_, mport, _ := net.SplitHostPort(o.metricsAddr)
		if got := one(`containerPort: (\d+)\n\s+protocol: TCP\n\s+- name: metrics`); got != itoa(o.port) {
			t.Errorf("the tcp containerPort is %s, serve listens on %d", got, o.port)
		}
		if got := one(`- name: metrics\n\s+containerPort: (\d+)`); got != mport {
			t.Errorf("the metrics containerPort is %s, --metrics is %s", got, o.metricsAddr)
		}
		if got := one(`readinessProbe:\n\s+httpGet:\n\s+path: (\S+)\n\s+port: metrics`); got != "/healthz" {
			t.Errorf("readinessProbe path %s, want /healthz on the metrics port", got)
		}
		one(`(livenessProbe):`)
		preStop, _ := strconv.Atoi(one(`preStop:\n(?:\s+#.*\n)*\s+sleep:\n\s+seconds: (\d+)`))
		grace, _ := strconv.Atoi(one(`terminationGracePeriodSeconds: (\d+)`))
		if time.Duration(grace)*time.Second <= time.Duration(preStop)*time.Second+o.drain {
			t.Errorf("terminationGracePeriodSeconds %d, want more than the preStop sleep %ds plus --drain-timeout %v", grace, preStop, o.drain)
		}
		if preStop < 1 {
			t.Errorf("preStop sleeps %ds, want a few seconds", preStop)
		}
		one(`^kind: (Deployment)$`)
		one(`^kind: (Service)$`)
		if got := one(`targetPort: (\S+)`); got != "tcp" {
			t.Errorf("the Service targets %s, want the tcp port", got)
		}
	})
}
