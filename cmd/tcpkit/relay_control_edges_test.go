package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startRelayControl starts a relay with a control API and returns it,
// its port and the API's /toxics URL.
func startRelayControl(t *testing.T, target string, flags ...string) (r *proc, port int, api string) {
	t.Helper()
	r = start(t, tcpkitBin, append(append([]string{"relay", "--control", "127.0.0.1:0"}, flags...), "127.0.0.1:0", target)...)
	line := r.stderr.take(t, "tcpkit relay: listening on ", waitFor)
	m, u := relayListenRe.FindStringSubmatch(line), controlURLRe.FindStringSubmatch(line)
	if m == nil || u == nil {
		t.Fatalf("relay's listen line %q has no control API", line)
	}
	port, _ = strconv.Atoi(m[1])
	return r, port, u[1]
}

// controlCall makes a request of the control API and checks its status.
func controlCall(t *testing.T, method, url, body string, want int) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Errorf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
}

// A stall added over the control API holds the client's bytes and then
// its FIN: the target gets neither until the stall is removed, then
// both, in order.
func TestRelayStallHoldsTheClientsFIN(t *testing.T) {
	got := make(chan string, 1)
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		b, err := io.ReadAll(nc)
		if err != nil {
			got <- "error " + err.Error()
		}
		got <- string(b)
		nc.Close()
	})
	r, port, api := startRelayControl(t, addr(tport))
	nc := dial(t, port)
	write(t, nc, "x") // the pair is open
	controlCall(t, "POST", api, `{"type":"stall","direction":"up"}`, http.StatusCreated)
	write(t, nc, "held")
	nc.CloseWrite()
	select {
	case s := <-got:
		t.Fatalf("the target got %q (its end) during the stall", s)
	case <-time.After(200 * time.Millisecond):
	}
	controlCall(t, "DELETE", api+"/stall_up", "", http.StatusNoContent)
	select {
	case s := <-got:
		if s != "xheld" {
			t.Errorf("the target got %q then its end, want xheld", s)
		}
	case <-time.After(waitFor):
		t.Fatal("the target never got the client's FIN")
	}
	if b, err := io.ReadAll(nc); len(b) != 0 || err != nil {
		t.Errorf("client read %q, %v", b, err)
	}
	if how, up, down := waitPairEnd(t, r, 1); how != "ended cleanly" || up != 5 || down != 0 {
		t.Errorf("pair 1 %s, %d bytes up, %d down; want ended cleanly, 5 up", how, up, down)
	}
}

// Faults added and removed over the control API while a stream goes
// through both ways, then a half-close: the bytes stay exact and in
// order, and the pair ends.
func TestRelayControlRacesTraffic(t *testing.T) {
	tport := listener(t, func(nc net.Conn) {
		nc.SetDeadline(time.Now().Add(waitFor))
		io.Copy(nc, nc)
		nc.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, nc)
	})
	_, port, api := startRelayControl(t, addr(tport))
	big := make([]byte, 512<<10)
	rand.Read(big)
	for round := range 2 {
		nc := dial(t, port)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			for i := 0; i < 40; i++ {
				select {
				case <-stop:
					return
				default:
				}
				kinds := []string{`{"type":"latency","name":"l","direction":"both","latency":"1ms"}`,
					`{"type":"slice","name":"l","direction":"up","size":100}`,
					`{"type":"bandwidth","name":"l","direction":"down","rate":10000000}`}
				kind := kinds[i%3]
				controlCall(t, "POST", api, kind, http.StatusCreated)
				controlCall(t, "DELETE", api+"/l", "", http.StatusNoContent)
			}
		})
		var got []byte
		var rerr error
		done := make(chan struct{})
		go func() {
			got, rerr = io.ReadAll(nc)
			close(done)
		}()
		if _, err := nc.Write(big); err != nil {
			t.Fatal(err)
		}
		nc.CloseWrite()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Fatalf("round %d: the echo did not end", round)
		}
		close(stop)
		wg.Wait()
		if rerr != nil || !bytes.Equal(got, big) {
			t.Errorf("round %d: echo %d bytes, %v; want %d exact", round, len(got), rerr, len(big))
		}
	}
}
