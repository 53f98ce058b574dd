package main

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// --trace shows both legs of a pair under the pair's number, each event
// marked with its leg, in the order they happened: the seed's exchange,
// relayed.
func TestRelayTrace(t *testing.T) {
	_, sport := serve(t)
	r, rport := startRelay(t, tcpkitBin, addr(sport), "--trace")
	// The seed's client ends its side only in answer to the server's
	// FIN (--count would end it after the reply, racing that FIN), and
	// then its next send fails.
	code, _, _ := runTcpkit(t, "connect", "--interval", "100ms", itoa(rport))
	checkExit(t, "connect", code, exitBroken)
	waitPairEnd(t, r, 1)
	r.signal(t, syscall.SIGTERM)
	r.wait(t, waitFor)
	lineRe := regexp.MustCompile(`^ +\d+\.\d{6} #1 (client|target) (\S+) +(.*?)( \[[A-Z_0-9]+ rtt=.*\])?$`)
	var got []string
	for _, l := range r.stderr.all() {
		if strings.HasPrefix(l, "tcpkit relay: ") {
			continue
		}
		m := lineRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("trace line %q is not \"T #1 LEG EVENT explanation\"", l)
		}
		got = append(got, m[1]+" "+m[2])
	}
	// The order is the exchange's; the two legs' closes, which each
	// reports on its own, come together at the pair's end, the client's
	// first.
	checkLines(t, "trace events", got, []string{
		"client connected", "target connected", "client read", "target write", "target read", "client write",
		"target peer-fin", "client fin", "client peer-fin", "target fin", "client closed", "target closed",
	})
}

// --hex dumps each chunk as it arrives, both ways, as socat -v -x does:
// the direction (> to the target, < to the client), the time, the pair,
// its length and place in its direction's stream, then hexdump -C.
func TestRelayHex(t *testing.T) {
	_, sport := serve(t, "--keep-open", "--quiet")
	r, rport := startRelay(t, tcpkitBin, addr(sport), "--hex")
	code, _, _ := runTcpkit(t, "connect", "--count", "2", "--interval", "100ms", itoa(rport))
	checkExit(t, "connect", code, exitOK)
	waitPairEnd(t, r, 1)
	time := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)`
	want := []string{
		`pair 1 : 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ via 127\.0\.0\.1:\d+`,
		`> ` + time + ` pair 1 length=8 from=0 to=7`,
		regexp.QuoteMeta(`00000000  74 65 73 74 69 6e 67 7e                           |testing~|`),
		`< ` + time + ` pair 1 length=4 from=0 to=3`,
		regexp.QuoteMeta(`00000000  74 65 73 74                                       |test|`),
		`> ` + time + ` pair 1 length=8 from=8 to=15`,
		regexp.QuoteMeta(`00000000  74 65 73 74 69 6e 67 7e                           |testing~|`),
		`< ` + time + ` pair 1 length=4 from=4 to=7`,
		regexp.QuoteMeta(`00000000  74 65 73 74                                       |test|`),
		`pair 1 : ended cleanly; 16 bytes to the target, 8 to the client, in \S+`,
	}
	got := r.stdout.all()
	if len(got) != len(want) {
		t.Fatalf("relay printed %q, want %d lines", got, len(want))
	}
	for i := range want {
		if !regexp.MustCompile("^" + want[i] + "$").MatchString(got[i]) {
			t.Errorf("line %d: %q, want it to match %s", i+1, got[i], want[i])
		}
	}
}

// --quiet prints nothing for pairs that end cleanly, and still the ones
// that fail.
func TestRelayQuiet(t *testing.T) {
	forEachRelayPath(t, func(t *testing.T, flags []string) {
		_, sport := serve(t)
		r, rport := startRelay(t, tcpkitBin, addr(sport), append(flags, "--quiet")...)
		code, _, _ := runTcpkit(t, "connect", "--count", "1", itoa(rport))
		checkExit(t, "connect", code, exitOK)
		r.signal(t, syscall.SIGTERM)
		checkExit(t, "relay", r.wait(t, waitFor), exitOK)
		checkLines(t, "relay's stdout", r.stdout.all(), nil)
	})
}
