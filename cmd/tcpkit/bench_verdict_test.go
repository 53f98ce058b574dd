package main

import (
	"strings"
	"testing"
	"time"

	"tcpkit/internal/bench"
)

// The verdict of runs that the tests from the outside cannot make
// quickly: -n alone stopped at the 10-minute safety bound, and
// --max-errors as a count or a share.
func TestBenchVerdict(t *testing.T) {
	cfg := &bench.Config{Exchanges: 1000, Duration: benchSafetyBound, ConnectTimeout: 10 * time.Second, ReplyTimeout: 5 * time.Second, DrainTimeout: 2 * time.Second}
	result := func(ok, timeouts int64, endedBy string) *bench.Result {
		return &bench.Result{Mode: "pingpong", Target: "localhost:5000", Exchanges: ok, EndedBy: endedBy,
			Errors: map[string]int64{"timeout": timeouts, "refused": 0}}
	}
	limit := func(s string) *maxErrors {
		var m maxErrors
		if err := m.Set(s); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	for _, tt := range []struct {
		name       string
		res        *bench.Result
		maxErr     string
		untilCount bool
		want       string // "" passes
	}{
		{"passed", result(1000, 0, bench.EndedByCount), "0", true, ""},
		{"safety bound", result(650, 0, bench.EndedByDuration), "0", true, "stopped at the safety bound of 10m0s after 650 of 1000 exchanges: give -d to allow a longer run"},
		{"-d and -n, -d first", result(650, 0, bench.EndedByDuration), "0", false, ""},
		{"an error, none allowed", result(999, 1, bench.EndedByCount), "0", false, "1 of 1000 exchanges failed, more than --max-errors 0 allows: 1 timed out waiting for a reply (--reply-timeout 5s)"},
		{"10 allowed", result(990, 10, bench.EndedByCount), "10", false, ""},
		{"1% allowed", result(990, 10, bench.EndedByCount), "1%", false, ""},
		{"over 1%", result(989, 11, bench.EndedByCount), "1%", false, "11 of 1000 exchanges failed, more than --max-errors 1% allows"},
		{"interrupted at once", result(0, 0, bench.EndedBySignal), "0", false, ""},
		{"nothing", result(0, 0, bench.EndedByDuration), "0", false, "no exchange succeeded against localhost:5000, and none failed"},
	} {
		got := benchVerdict(tt.res, cfg, limit(tt.maxErr), tt.untilCount)
		if tt.want == "" && got != "" || !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: verdict %q, want %q", tt.name, got, tt.want)
		}
	}
}
