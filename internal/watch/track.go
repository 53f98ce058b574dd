package watch

import (
	"net/netip"
	"strconv"
	"time"
)

// PreviewMax is how many payload bytes a Step keeps for its preview.
const PreviewMax = 64

// maxConns is how many connections a Tracker remembers before it forgets
// those that have ended.
const maxConns = 1 << 16

// A Step is one segment placed on its connection's ladder: who sent it,
// its numbers relative to the start of the connection, and what it means.
type Step struct {
	Conn       int  // the connection's number, from 1, in order of first segment
	First      bool // the connection's first segment: draw its header first
	Client     netip.AddrPort
	Server     netip.AddrPort
	FromClient bool
	// Seg is the segment; its Payload holds at most PreviewMax bytes and
	// Packet is nil.
	Seg Segment
	// Seq and Ack are relative: the sender's SYN is seq 0, the first byte
	// after it 1; Ack counts the same way in the peer's numbers.
	Seq, Ack uint32
	Elapsed  time.Duration // since the connection's first segment
	Notes    []string      // what the segment means, in words; may be empty
}

// Sender and Receiver name the two sides of s: "client" or "server".
func (s Step) Sender() string {
	if s.FromClient {
		return "client"
	}
	return "server"
}

// Receiver is the side s goes to.
func (s Step) Receiver() string {
	if s.FromClient {
		return "server"
	}
	return "client"
}

// A Tracker follows connections through their segments and turns each
// segment into a Step. It is not safe for concurrent use.
type Tracker struct {
	// Port is the server's port: the side of a connection that has it is
	// the server. Zero means the side that receives the first SYN, or,
	// without one, the side with the lower port.
	Port uint16

	conns map[connKey]*conn
	next  int
}

type connKey struct{ a, b netip.AddrPort } // a sorts before b

// half is what one side of a connection has sent.
type half struct {
	based    bool   // isn is set
	isn      uint32 // the base of this side's relative numbers
	sent     bool   // next is set
	next     uint32 // relative: one past the highest sequence number sent
	fin      bool   // it sent a FIN
	finEnd   uint32 // relative: the sequence number that acknowledges its FIN
	finAcked bool
	acked    bool // lastAck and lastWin are set
	lastAck  uint32
	lastWin  uint16
	dups     int  // duplicate ACKs in a row
	lateData bool // it sent data after the peer's FIN
}

type conn struct {
	id             int
	client, server netip.AddrPort
	start          time.Time
	c, s           half
	handshake      int  // 1: SYN seen, 2: SYN-ACK seen, 3: connected
	firstFin       bool // true: the client sent the first FIN
	anyFin         bool
	crossed        bool // each side sent its FIN before it saw the other's
	closed         bool // the last FIN was acknowledged, or a RST
}

// Add places s on its connection's ladder.
func (t *Tracker) Add(s Segment) Step {
	if t.conns == nil {
		t.conns = map[connKey]*conn{}
	}
	k := connKey{s.Src, s.Dst}
	if k.b.Compare(k.a) < 0 {
		k.a, k.b = k.b, k.a
	}
	c := t.conns[k]
	if c != nil && c.closed && s.Flags&(SYN|ACK) == SYN {
		// The same ports again: a new connection, unless it is the old
		// one's SYN retransmitted.
		if h := c.sideOf(s.Src); !h.based || s.Seq != h.isn {
			c = nil
		}
	}
	first := c == nil
	if first {
		t.forget()
		t.next++
		c = &conn{id: t.next, start: s.Time}
		c.client, c.server = t.roles(s)
		t.conns[k] = c
	}
	st := Step{Conn: c.id, First: first, Client: c.client, Server: c.server, FromClient: s.Src == c.client}
	st.Elapsed = max(s.Time.Sub(c.start), 0)
	st.Seg = s
	st.Seg.Packet = nil
	st.Seg.Payload = append([]byte(nil), s.Payload[:min(len(s.Payload), PreviewMax)]...)
	c.add(&st)
	return st
}

// roles tells the client from the server on a connection's first segment.
func (t *Tracker) roles(s Segment) (client, server netip.AddrPort) {
	switch {
	case t.Port != 0 && s.Dst.Port() == t.Port && s.Src.Port() != t.Port:
		return s.Src, s.Dst
	case t.Port != 0 && s.Src.Port() == t.Port && s.Dst.Port() != t.Port:
		return s.Dst, s.Src
	case s.Flags&(SYN|ACK) == SYN:
		return s.Src, s.Dst
	case s.Flags&(SYN|ACK) == SYN|ACK:
		return s.Dst, s.Src
	case s.Src.Port() < s.Dst.Port():
		return s.Dst, s.Src
	}
	return s.Src, s.Dst
}

// forget drops the ended connections once too many are remembered.
func (t *Tracker) forget() {
	if len(t.conns) < maxConns {
		return
	}
	for k, c := range t.conns {
		if c.closed {
			delete(t.conns, k)
		}
	}
}

func (c *conn) sideOf(a netip.AddrPort) *half {
	if a == c.client {
		return &c.c
	}
	return &c.s
}

// seqLE reports a <= b in sequence-number space, which wraps.
func seqLE(a, b uint32) bool { return int32(a-b) <= 0 }

// add updates the connection with st's segment and writes st's relative
// numbers and notes.
func (c *conn) add(st *Step) {
	s := st.Seg
	me, peer := &c.s, &c.c
	if st.FromClient {
		me, peer = &c.c, &c.s
	}
	who, other := st.Sender(), st.Receiver()
	syn, fin, rst, ack := s.Flags&SYN != 0, s.Flags&FIN != 0, s.Flags&RST != 0, s.Flags&ACK != 0

	if !me.based {
		me.isn, me.based = s.Seq, true
		if !syn && !rst { // joined after the SYN: the first byte seen counts as 1
			me.isn--
		}
	}
	st.Seq = s.Seq - me.isn
	if ack {
		if !peer.based {
			peer.isn, peer.based = s.Ack-1, true
		}
		st.Ack = s.Ack - peer.isn
	}

	// Sequence space this segment takes: its bytes, and one each for SYN
	// and FIN. Taking none of it again is a retransmission.
	span := uint32(s.Len)
	if syn {
		span++
	}
	if fin {
		span++
	}
	end := st.Seq + span
	retrans := false
	switch {
	case !me.sent:
		me.sent, me.next = true, end
	case span > 0 && seqLE(end, me.next) && !rst:
		retrans = true
	case seqLE(me.next, end):
		me.next = end
	}
	note := func(n string) { st.Notes = append(st.Notes, n) }

	switch {
	case rst:
		c.closed = true
		switch {
		case c.handshake == 1 && !st.FromClient:
			note("RST: connection refused: nothing listens on port " + itoa(int(c.server.Port())))
		case me.fin && peer.lateData:
			note("RST: the " + other + " wrote to a connection the " + who + " had closed (the tutorial's EPIPE)")
		default:
			note("RST: the " + who + " aborted the connection; the " + other + "'s next read or write fails (ECONNRESET)")
		}
	case syn && !ack:
		if retrans {
			note("the " + who + "'s SYN again: no answer yet (retransmission)")
		} else {
			c.handshake = 1
			note("3-way handshake 1/3: the " + who + " asks to connect (SYN)")
		}
	case syn:
		if retrans {
			note("the " + who + "'s SYN-ACK again (retransmission)")
		} else {
			c.handshake = 2
			note("3-way handshake 2/3: the " + who + " accepts and sends its own SYN (SYN-ACK)")
		}
	case retrans && !fin:
		note("retransmission: the " + who + " sends these bytes again: they were not acknowledged in time")
	}
	if ack && c.handshake == 2 && !syn && st.FromClient && st.Ack == 1 {
		c.handshake = 3
		note("3-way handshake 3/3: the client acknowledges: connected")
	}
	if s.Len > 0 && peer.fin && !retrans {
		me.lateData = true
		note("the " + who + " writes after the " + other + "'s FIN")
	}

	// The close: a FIN each way, each acknowledged.
	acksPeerFin := ack && peer.fin && !peer.finAcked && seqLE(peer.finEnd, st.Ack)
	if acksPeerFin {
		peer.finAcked = true
	}
	switch {
	case fin && retrans:
		note("the " + who + "'s FIN again (retransmission)")
	case fin && !c.anyFin:
		c.anyFin, c.firstFin = true, st.FromClient
		me.fin, me.finEnd = true, end
		note("4-way close 1/4: the " + who + "'s FIN: it has ended its side, and the 4-way close begins")
	case fin && acksPeerFin:
		me.fin, me.finEnd = true, end
		note("4-way close 2/4 and 3/4: the " + who + " acknowledges the " + other + "'s FIN and sends its own")
	case fin && !me.fin:
		me.fin, me.finEnd = true, end
		if peer.finAcked {
			note("4-way close 3/4: the " + who + "'s FIN: it ends its side too")
		} else {
			c.crossed = true
			note("the " + who + "'s FIN crosses the " + other + "'s: both close at once, and both wait in TIME_WAIT")
		}
	case acksPeerFin && me.fin:
		both := c.c.finAcked && c.s.finAcked
		c.closed = c.closed || both
		switch {
		case c.crossed && !both:
			note("the " + who + " acknowledges the " + other + "'s FIN")
		case c.crossed:
			note("the " + who + " acknowledges the " + other + "'s FIN: closed; both sent a FIN before seeing the other's, so both wait in TIME_WAIT (60 s on Linux)")
		case c.firstFin == st.FromClient:
			note("4-way close 4/4: the " + who + " acknowledges the " + other + "'s FIN: closed; the " + who + ", which sent the first FIN, waits in TIME_WAIT (60 s on Linux)")
		default:
			note("the " + who + " acknowledges the " + other + "'s FIN: closed")
		}
	case acksPeerFin:
		note("4-way close 2/4: the " + who + " acknowledges the " + other + "'s FIN")
	}

	if !rst && s.Window == 0 {
		note("zero window: the " + who + "'s receive buffer is full: the " + other + " must wait")
	}
	if ack && !rst {
		pure := s.Flags&(SYN|FIN|RST) == 0 && s.Len == 0
		if pure && me.acked && s.Ack == me.lastAck && s.Window == me.lastWin && peer.sent && !seqLE(peer.next, st.Ack) {
			me.dups++
			note("duplicate ACK #" + itoa(me.dups) + ": the " + who + " asks again for byte " + itoa(int(st.Ack)) + ": a segment was lost or came out of order")
		} else if s.Ack != me.lastAck || !me.acked {
			me.dups = 0
		}
		// A SYN-ACK's acknowledgement is no ACK a later one duplicates.
		me.acked, me.lastAck, me.lastWin = !syn, s.Ack, s.Window
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
