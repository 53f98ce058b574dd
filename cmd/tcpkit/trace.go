package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"tcpkit"
)

// A tracer prints --trace lines: one per connection event, with a
// timestamp since the command started, the connection's id, and what the
// event means on the wire, in words. It writes each line at once, so that
// trace lines and error messages on stderr keep their order.
type tracer struct {
	w     io.Writer
	json  bool
	peer  string // "server" or "client": who the other side is
	start time.Time

	mu   sync.Mutex
	fins map[uint64]tcpkit.TraceKind // per connection, the first FIN seen: TraceFIN (ours) or TracePeerFIN
	held map[uint64][]legClose       // relay: the closes of a pair's legs so far, shown together at its end
}

// legClose is the close of one leg of a relayed pair, held until the
// pair ends: the two legs close on goroutines of their own, in either
// order, and a trace that shows them in a fixed one reads the same every
// time.
type legClose struct {
	leg string
	ev  tcpkit.TraceEvent
}

// newTracer returns a tracer writing to w in format "text" or "json", or
// an error naming the bad format.
func newTracer(w io.Writer, format, peer string) (*tracer, error) {
	if format != "text" && format != "json" {
		return nil, fmt.Errorf("--trace-format %q: use text or json", format)
	}
	return &tracer{w: w, json: format == "json", peer: peer, start: time.Now(), fins: map[uint64]tcpkit.TraceKind{}}, nil
}

// event is ConnOptions.Trace.
func (t *tracer) event(ev tcpkit.TraceEvent) { t.eventAs(ev.Conn.ID(), "", t.peer, ev) }

// legEvent traces an event of one leg of a relayed pair: under the pair's
// id, marked with the leg ("client", "target"), which is also its peer.
func (t *tracer) legEvent(pair uint64, leg string, ev tcpkit.TraceEvent) {
	if ev.Kind == tcpkit.TraceClosed {
		t.mu.Lock()
		if t.held == nil {
			t.held = make(map[uint64][]legClose)
		}
		t.held[pair] = append(t.held[pair], legClose{leg, ev})
		t.mu.Unlock()
		return
	}
	t.eventAs(pair, leg, leg, ev)
}

// pairEnded shows how a relayed pair ended: the target's connect that
// failed (dialErr, to target), if it did, then the closes of its legs,
// the client's first.
func (t *tracer) pairEnded(pair uint64, dialErr error, target string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if dialErr != nil {
		t.emitLocked(time.Now(), pair, "target", "connect-failed", 0, 0, dialErr, explainDial(target, dialErr), nil)
	}
	closes := t.held[pair]
	delete(t.held, pair)
	slices.SortStableFunc(closes, func(a, b legClose) int { return strings.Compare(a.leg, b.leg) }) // client, target
	for _, c := range closes {
		t.emitLocked(c.ev.Time, pair, c.leg, c.ev.Kind.String(), 0, 0, c.ev.Err, t.explainLocked(c.ev, c.leg), c.ev.Info)
		delete(t.fins, c.ev.Conn.ID())
	}
}

// eventAs traces ev under id, with leg marked (none if empty), peer
// naming the other side in the explanations.
func (t *tracer) eventAs(id uint64, leg, peer string, ev tcpkit.TraceEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kind := ev.Kind.String()
	t.emitLocked(ev.Time, id, leg, kind, ev.Bytes, ev.Duration, ev.Err, t.explainLocked(ev, peer), ev.Info)
	switch id := ev.Conn.ID(); ev.Kind {
	case tcpkit.TraceFIN, tcpkit.TracePeerFIN:
		if _, ok := t.fins[id]; !ok {
			t.fins[id] = ev.Kind
		}
	case tcpkit.TraceClosed:
		delete(t.fins, id)
	}
}

// dialFailed traces a connection that never came to be (id 0).
func (t *tracer) dialFailed(addr string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.emitLocked(time.Now(), 0, "", "connect-failed", 0, 0, err, explainDial(addr, err), nil)
}

// explainLocked says what an event means, the way the seed's tutorial
// tells it.
func (t *tracer) explainLocked(ev tcpkit.TraceEvent, peer string) string {
	c := ev.Conn
	switch ev.Kind {
	case tcpkit.TraceConnected:
		if ev.Duration > 0 {
			return fmt.Sprintf("3-way handshake done: connected to %s from %s in %v", addrString(c.RemoteAddr()), addrString(c.LocalAddr()), ev.Duration.Round(time.Microsecond))
		}
		return "3-way handshake done: accepted " + addrString(c.RemoteAddr())
	case tcpkit.TraceRead:
		return "in " + plural(ev.Bytes, "byte")
	case tcpkit.TraceWrite:
		return "out " + plural(ev.Bytes, "byte")
	case tcpkit.TracePeerFIN:
		if t.fins[c.ID()] == tcpkit.TraceFIN {
			return "FIN from the " + peer + ", in answer to ours: the 4-way handshake is complete"
		}
		return "FIN from the " + peer + ": it ended the connection, 4-way handshake started by the peer"
	case tcpkit.TraceFIN:
		if t.fins[c.ID()] == tcpkit.TracePeerFIN {
			return "our FIN, in answer to the " + peer + "'s: the 4-way handshake is complete once it is acknowledged"
		}
		return "our FIN: we ended our side, 4-way handshake started by us"
	case tcpkit.TraceTimeout:
		return "idle timeout: nothing sent or received for the timeout"
	case tcpkit.TraceReset:
		return "RST: " + explainBroken(ev.Err, peer)
	case tcpkit.TraceError:
		return explainBroken(ev.Err, peer)
	case tcpkit.TraceWriteFailed:
		return "write of " + plural(ev.Bytes, "byte") + " failed: " + explainBroken(ev.Err, peer)
	case tcpkit.TraceClosed:
		if ev.Err != nil {
			return "closed, with an error"
		}
		return "closed"
	}
	return ""
}

// jsonInfo is TCP_INFO as --trace-format json prints it.
type jsonInfo struct {
	State         string `json:"state"`
	RTTus         int64  `json:"rtt_us"`
	RTTVarus      int64  `json:"rttvar_us"`
	Retransmits   uint32 `json:"retransmits"`
	Unacked       uint32 `json:"unacked"`
	BytesAcked    uint64 `json:"bytes_acked"`
	BytesReceived uint64 `json:"bytes_received"`
}

// jsonEvent is one line of --trace-format json.
type jsonEvent struct {
	T          float64   `json:"t"` // seconds since the command started
	Conn       uint64    `json:"conn"`
	Leg        string    `json:"leg,omitempty"` // relay: client or target
	Event      string    `json:"event"`
	Bytes      int       `json:"bytes,omitempty"`
	DurationUS int64     `json:"duration_us,omitempty"`
	Error      string    `json:"error,omitempty"`
	Explain    string    `json:"explain"`
	TCP        *jsonInfo `json:"tcp,omitempty"`
}

func (t *tracer) emitLocked(at time.Time, id uint64, leg, kind string, n int, d time.Duration, err error, explain string, info *tcpkit.TCPInfo) {
	since := at.Sub(t.start).Seconds()
	if t.json {
		e := jsonEvent{T: since, Conn: id, Leg: leg, Event: kind, Bytes: n, DurationUS: d.Microseconds(), Explain: explain}
		if err != nil {
			e.Error = err.Error()
		}
		if info != nil {
			e.TCP = &jsonInfo{info.State, info.RTT.Microseconds(), info.RTTVar.Microseconds(), info.Retransmits, info.Unacked, info.BytesAcked, info.BytesReceived}
		}
		b, _ := json.Marshal(e)
		t.w.Write(append(b, '\n'))
		return
	}
	line := fmt.Sprintf("%10.6f #%d %-12s %s", since, id, kind, explain)
	if leg != "" {
		line = fmt.Sprintf("%10.6f #%d %-6s %-12s %s", since, id, leg, kind, explain)
	}
	if info != nil {
		line += " [" + info.State + " rtt=" + info.RTT.String() + " retrans=" + strconv.FormatUint(uint64(info.Retransmits), 10) +
			" acked=" + strconv.FormatUint(info.BytesAcked, 10) + " received=" + strconv.FormatUint(info.BytesReceived, 10) + "]"
	}
	io.WriteString(t.w, line+"\n")
}
