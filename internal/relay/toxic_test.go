package relay

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseFlag(t *testing.T) {
	ms := func(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		typ, in string
		want    Toxic
	}{
		{Latency, "50ms", Toxic{Name: "latency_both", Type: Latency, Direction: "both", Latency: ms(50)}},
		{Latency, "down:50ms,jitter=10ms", Toxic{Name: "latency_down", Type: Latency, Direction: "down", Latency: ms(50), Jitter: ms(10)}},
		{Bandwidth, "1048576", Toxic{Name: "bandwidth_both", Type: Bandwidth, Direction: "both", Rate: 1 << 20}},
		{Bandwidth, "up:64KiB", Toxic{Name: "bandwidth_up", Type: Bandwidth, Direction: "up", Rate: 64 << 10}},
		{Slice, "64,delay=1ms", Toxic{Name: "slice_both", Type: Slice, Direction: "both", Size: 64, Delay: ms(1)}},
		{ResetAt, "1000", Toxic{Name: "reset_after_both", Type: ResetAt, Direction: "both", Bytes: 1000}},
		{ResetAt, "down:2s", Toxic{Name: "reset_after_down", Type: ResetAt, Direction: "down", After: ms(2000)}},
		{Stall, "0", Toxic{Name: "stall_both", Type: Stall, Direction: "both"}},
		{Stall, "up:5s", Toxic{Name: "stall_up", Type: Stall, Direction: "up", After: ms(5000)}},
		{LimitData, "1000", Toxic{Name: "limit_data_both", Type: LimitData, Direction: "both", Bytes: 1000}},
		{SlowClose, "down:1s", Toxic{Name: "slow_close_down", Type: SlowClose, Direction: "down", Delay: ms(1000)}},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.in, func(t *testing.T) {
			got, err := ParseFlag(tt.typ, tt.in)
			if err != nil {
				t.Fatalf("ParseFlag(%q, %q): %v", tt.typ, tt.in, err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A bad value gets one line that says what to do.
func TestParseFlagErrors(t *testing.T) {
	tests := []struct{ typ, in, want string }{
		{Latency, "", "give a value"},
		{Latency, "50", `"50" is not a duration`},
		{Latency, "sideways:50ms", `"sideways:50ms" is not a duration`},
		{Latency, "10ms,jitter=20ms", "jitter 20ms is over the latency 10ms"},
		{Latency, "10ms,size=3", `unknown setting "size"`},
		{Bandwidth, "fast", `"fast" is not a byte count`},
		{Bandwidth, "0", "give the rate"},
		{Slice, "-1", "is not a byte count"},
		{ResetAt, "soon", "neither a byte count nor a duration"},
		{LimitData, "1e3", "is not a byte count"},
		{SlowClose, "0s", "give the delay"},
	}
	for _, tt := range tests {
		_, err := ParseFlag(tt.typ, tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseFlag(%q, %q) = %v, want one line containing %q", tt.typ, tt.in, err, tt.want)
		}
	}
}

// The JSON of the control API: durations as strings, only the toxic's
// own attributes, and what is wrong said in one line.
func TestToxicJSON(t *testing.T) {
	var x Toxic
	if err := json.Unmarshal([]byte(`{"type":"latency","direction":"down","latency":"50ms","jitter":"5ms"}`), &x); err != nil {
		t.Fatal(err)
	}
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(x)
	if want := `{"name":"latency_down","type":"latency","direction":"down","latency":"50ms","jitter":"5ms"}`; string(b) != want {
		t.Errorf("marshaled %s, want %s", b, want)
	}
	bad := []struct{ in, want string }{
		{`{"type":"latency","latency":50}`, `durations are strings with a unit`},
		{`{"type":"warp"}`, `unknown toxic type "warp"`},
		{`{"type":"bandwidth","rate":100,"latency":"5ms"}`, `a bandwidth toxic has no "latency"`},
		{`{"type":"reset_after","bytes":10,"after":"1s"}`, "one of the two"},
		{`{"type":"latency","latency":"5ms","direction":"left"}`, `direction "left"`},
		{`{"type":"latency","latency":"5ms","name":"a b"}`, `toxic name "a b"`},
		{`{"type":"latency","latency":"5ms","name":"x\u001b]0;PWNED\u0007"}`, `toxic name "x\x1b]0;PWNED\a"`}, // no escape sequence reaches a log line
		{`{"type":"latency","latency":"5ms","name":"` + strings.Repeat("a", 65) + `"}`, `toxic name "aaaa`},
	}
	for _, tt := range bad {
		var x Toxic
		err := json.Unmarshal([]byte(tt.in), &x)
		if err == nil {
			err = x.Check()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseFlag(f *testing.F) {
	for _, s := range []string{"50ms", "down:50ms,jitter=10ms", "up:64KiB", "64,delay=1ms", "1000", "2s", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range toxicTypes {
			x, err := ParseFlag(typ, s)
			if err == nil {
				if cerr := x.Check(); cerr != nil {
					t.Fatalf("ParseFlag(%q, %q) gave %+v, which Check refuses: %v", typ, s, x, cerr)
				}
			}
		}
	})
}

// The PROXY header a relay sends: the client's address and the one it
// connected to; for a Unix socket's client, UNKNOWN in v1 (which has no
// form for its addresses) and the Unix addresses in v2.
func TestProxyHeader(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	unixAddr := &net.UnixAddr{Net: "unix", Name: "/tmp/relay.sock"}
	if got, want := string(proxyHeader(1, tcp("203.0.113.7:4444"), tcp("127.0.0.1:6000"))), "PROXY TCP4 203.0.113.7 127.0.0.1 4444 6000\r\n"; got != want {
		t.Errorf("v1 TCP: %q, want %q", got, want)
	}
	if got, want := string(proxyHeader(1, &net.UnixAddr{Net: "unix"}, unixAddr)), "PROXY UNKNOWN\r\n"; got != want {
		t.Errorf("v1 Unix: %q, want %q", got, want)
	}
	if got := proxyHeader(2, &net.UnixAddr{Net: "unix"}, unixAddr); !bytes.HasPrefix(got, []byte("\r\n\r\n\x00\r\nQUIT\n")) {
		t.Errorf("v2 Unix: % x, want a v2 header", got)
	}
}
