package main

import (
	"net"
	"strconv"
	"time"

	"tcpkit/internal/relay"
)

// A relayLog writes what relay shows per pair on standard output: a line
// when a pair opens, naming its client and its target, and one when it
// ends, saying how; with --hex, each chunk as socat -v -x shows it. It
// never holds the relay up (see lineWriter). Quiet, it writes only the
// pairs that failed.
type relayLog struct {
	out    *lineWriter
	quiet  bool
	target string // TARGET, for the lines of pairs that never reached it
}

func (l *relayLog) opened(id uint64, client, target, via net.Addr) {
	if l.quiet {
		return
	}
	l.out.line("pair ", strconv.FormatUint(id, 10), " : ", addrString(client), " -> ", addrString(target), " via ", addrString(via))
}

// closed writes the pair's last line: how it ended, and what went
// through.
func (l *relayLog) closed(e relay.End) {
	id := "pair " + strconv.FormatUint(e.ID, 10) + " : "
	if e.DialErr != nil {
		l.out.line(id, addrString(e.Client), " -> ", l.target, " : ", explainDial(l.target, e.DialErr), "; the client's connection was reset")
		return
	}
	how := "ended cleanly"
	switch {
	case e.Cause != "":
		how = e.Cause
	case e.Err != nil:
		other := "target"
		if e.ErrLeg == relay.Target {
			other = "client"
		}
		how = explainBroken(e.Err, e.ErrLeg.String()) + ", so the " + other + "'s connection was reset"
	}
	if l.quiet && how == "ended cleanly" {
		return
	}
	l.out.line(id, how, "; ", plural(int(e.Up), "byte"), " to the target, ", strconv.FormatInt(e.Down, 10), " to the client, in ", e.Took.Round(time.Microsecond).String())
}

// rejected says that a client was turned away at --max-conns.
func (l *relayLog) rejected(remote net.Addr, reason string) {
	l.out.line("rejected : ", addrString(remote), " : ", reason)
}

// dump shows a chunk as socat -v -x does: a mark for its direction (">"
// from the client to the target, "<" back), the time, the pair, its
// length and its place in the direction's stream, then the bytes in the
// layout of hexdump -C.
func (l *relayLog) dump(id uint64, d relay.Dir, offset int64, b []byte) {
	mark := "> "
	if d == relay.Down {
		mark = "< "
	}
	l.out.line(mark, time.Now().Format("2006-01-02T15:04:05.000000Z07:00"), " pair ", strconv.FormatUint(id, 10),
		" length=", strconv.Itoa(len(b)), " from=", strconv.FormatInt(offset, 10), " to=", strconv.FormatInt(offset+int64(len(b))-1, 10))
	l.out.hexDump(b)
}
