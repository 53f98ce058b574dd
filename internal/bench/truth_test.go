package bench

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Out of file descriptors is its own kind, not "other" (issue 12, item 10).
func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("socket", syscall.EMFILE)}, "emfile"},
		{syscall.ENFILE, "emfile"},
		{&OpError{Op: "connect", Err: syscall.ECONNREFUSED}, "refused"},
		{&OpError{Op: "send", Err: syscall.EPIPE}, "reset"},
		{&OpError{Op: "end", Err: errTimedOut}, "timeout"},
		{&OpError{Op: "reply", Err: wrongReply("does not contain --expect", []byte("nope"))}, "wrong_reply"},
		{&OpError{Op: "hold", Err: fmt.Errorf("peek: %w", syscall.EINVAL)}, "other"},
	} {
		if got := kindNames[classify(tt.err)]; got != tt.want {
			t.Errorf("classify(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

// The idle summary never shows a negative cost per connection (issue 12,
// item 10: "bench idle -c 20000 printed a negative KiB per connection"),
// and always has its server line.
func TestServerMemoryText(t *testing.T) {
	for _, tt := range []struct {
		name          string
		before, after int64
		afterErr      error
		held          int
		want          string
	}{
		{"grew", 1000, 3000, nil, 1000, "server     2.00 KiB per connection (RSS 3000 KiB, +2000 KiB with 1000 held)"},
		{"shrank", 3000, 1000, nil, 1000, "server     RSS 1000 KiB, 2000 KiB less than before: no cost per connection can be read (the server freed memory meanwhile)"},
		{"none held", 1000, 1000, nil, 0, "server     RSS 1000 KiB; no connection held, so no cost per connection"},
		{"gone", 1000, 0, os.ErrNotExist, 10, "server     process 42 was gone at the end: no memory to read"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := &Result{Mode: string(Idle), Connections: 1000, Held: tt.held, Errors: map[string]int64{}}
			res.setServerMemory(42, tt.before, tt.after, tt.afterErr, tt.held)
			if p := res.ServerKiBPerConn; p != nil && *p < 0 {
				t.Errorf("server_kib_per_conn %v", *p)
			}
			var b strings.Builder
			res.WriteText(&b)
			if !strings.Contains(b.String(), tt.want+"\n") {
				t.Errorf("summary:\n%s\nwant the line %q", b.String(), tt.want)
			}
		})
	}
}

// The matcher finds a text split over any number of pieces, and nothing
// else.
func TestMatcher(t *testing.T) {
	for _, tt := range []struct {
		want   string
		pieces []string
		found  bool
	}{
		{"HTTP/1.0 200", []string{"HTTP/1.0 200 OK\r\n"}, true},
		{"HTTP/1.0 200", []string{"HTT", "P/1.0", " 2", "00 OK"}, true},
		{"HTTP/1.0 200", []string{"HTTP/1.0 404 Not Found\r\n", "\r\n200"}, false},
		{"test", []string{"xxxxxxxxxxxxxxxxxxxxte", "s", "t"}, true},
		{"test", []string{"te", "xt", "st"}, false},
		{"test", []string{"t", "e", "s", "t"}, true},
		{"ab", []string{"a", "a", "b"}, true},
		{"test", []string{"tes", "", "t"}, true},
	} {
		m := newMatcher([]byte(tt.want))
		found := false
		for _, p := range tt.pieces {
			found = m.feed([]byte(p))
		}
		if found != tt.found {
			t.Errorf("%q in %q: found %v, want %v", tt.want, tt.pieces, found, tt.found)
		}
	}
}

// A pingpong reply ends where Config says, and is wrong as soon as it
// cannot be right.
func TestReplyRules(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    Config
		pieces []string
		done   bool
		wrong  bool
	}{
		{"first read", Config{}, []string{"anything"}, true, false},
		{"contains", Config{Expect: []byte("200")}, []string{"HTTP/1.1 2", "00 OK"}, true, false},
		{"contains, not yet", Config{Expect: []byte("200")}, []string{"HTTP/1.1 404"}, false, false},
		{"length", Config{ExpectLen: 4}, []string{"te", "st"}, true, false},
		{"length, too long", Config{ExpectLen: 4}, []string{"tests"}, false, true},
		{"length and contains", Config{ExpectLen: 4, Expect: []byte("x")}, []string{"test"}, false, true},
		{"exact", Config{ExpectExact: []byte("test")}, []string{"te", "st"}, true, false},
		{"exact, wrong", Config{ExpectExact: []byte("test")}, []string{"nope"}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := newReply(&tt.cfg)
			var done bool
			var err error
			for _, p := range tt.pieces {
				if done, err = rep.feed([]byte(p)); err != nil || done {
					break
				}
			}
			var wrong *WrongReply
			if done != tt.done || errors.As(err, &wrong) != tt.wrong {
				t.Errorf("done %v, err %v; want done %v, wrong %v", done, err, tt.done, tt.wrong)
			}
		})
	}
}

// The ramp's schedule: the exchanges due by time t are
// from·t + (to-from)·t²/(2·ramp) during the ramp, then to per second.
func TestSchedule(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      Config
		slot     int64
		wantSecs float64
	}{
		{"constant", Config{Rate: 1000}, 2500, 2.5},
		{"ramp up, start", Config{Rate: 200, RateEnd: 2000, Ramp: 4 * time.Second}, 0, 0},
		{"ramp up, 1 s", Config{Rate: 200, RateEnd: 2000, Ramp: 4 * time.Second}, 425, 1},      // 200 + 225
		{"ramp up, 2 s", Config{Rate: 200, RateEnd: 2000, Ramp: 4 * time.Second}, 1300, 2},     // 400 + 900
		{"ramp up, end", Config{Rate: 200, RateEnd: 2000, Ramp: 4 * time.Second}, 4400, 4},     // 800 + 3600
		{"after the ramp", Config{Rate: 200, RateEnd: 2000, Ramp: 4 * time.Second}, 6400, 5},   // then 2000/s
		{"from zero", Config{Rate: 0, RateEnd: 1000, Ramp: 2 * time.Second}, 250, 1},           // 500·t²/2
		{"ramp down", Config{Rate: 1000, RateEnd: 200, Ramp: 2 * time.Second}, 800, 1},         // 1000 - 200
		{"per connection", Config{RatePerConn: 10, Conns: 4}, 3, 0.3 + 2*0.025},                // connection 2, staggered
		{"ramp over -d", Config{Rate: 100, RateEnd: 300, Duration: 2 * time.Second}, 150, 1.0}, // 100 + 50
	} {
		w := 0
		if tt.cfg.RatePerConn > 0 {
			w = 2
		}
		got := newSchedule(&tt.cfg).at(tt.slot, w).Seconds()
		if math.Abs(got-tt.wantSecs) > 1e-6 {
			t.Errorf("%s: slot %d due at %.6f s, want %.6f s", tt.name, tt.slot, got, tt.wantSecs)
		}
	}
	s := newSchedule(&Config{Rate: 200, RateEnd: 2000, Ramp: 4 * time.Second})
	for i := int64(1); i < 10000; i++ {
		if s.at(i, 0) <= s.at(i-1, 0) {
			t.Fatalf("slot %d is due at %v, not after slot %d at %v", i, s.at(i, 0), i-1, s.at(i-1, 0))
		}
	}
}
