package main

import (
	"net"
	"strconv"

	"tcpkit"
)

// A printer writes what serve shows per connection and per message. It
// prints nothing when quiet, except errors.
type printer struct {
	out   *lineWriter
	quiet bool
	hex   bool
}

func (p *printer) connected(c *tcpkit.Conn) {
	if !p.quiet {
		p.out.line("connect address : ", addrString(c.RemoteAddr()))
	}
}

// message prints a received message as the seed does: as text on a line
// of its own, or as a hex dump.
func (p *printer) message(c *tcpkit.Conn, msg []byte) {
	switch {
	case p.quiet:
	case p.hex:
		p.out.hexDump(msg)
	default:
		p.out.text("", msg)
	}
}

func (p *printer) failed(c *tcpkit.Conn, err error) {
	p.out.line("error : ", addrString(c.RemoteAddr()), " : ", explainBroken(err, "client"))
}

func (p *printer) timedOut(c *tcpkit.Conn) {
	if !p.quiet {
		p.out.line("idle timeout : ", addrString(c.RemoteAddr()))
	}
	c.End()
}

// baseEvents are the events every mode prints the same way.
func (p *printer) baseEvents() tcpkit.Events {
	return tcpkit.Events{OnConnect: p.connected, OnError: p.failed, OnTimeout: p.timedOut}
}

// replyEvents: the seed's server. Print each message, reply, and end the
// connection unless keepOpen.
func replyEvents(p *printer, reply []byte, keepOpen bool) tcpkit.Events {
	ev := p.baseEvents()
	ev.OnData = func(c *tcpkit.Conn, msg []byte) {
		p.message(c, msg)
		// After End a late message gets no reply: WriteMessage says
		// ErrWriteAfterEnd, which is expected here.
		c.WriteMessage(reply)
		if !keepOpen {
			c.End()
		}
	}
	return ev
}

// echoEvents: send each message back as it came.
func echoEvents(p *printer) tcpkit.Events {
	ev := p.baseEvents()
	ev.OnData = func(c *tcpkit.Conn, msg []byte) {
		p.message(c, msg)
		c.WriteMessage(msg)
	}
	return ev
}

// discardEvents: read and drop everything; say how much at the close.
func discardEvents(p *printer) tcpkit.Events {
	ev := p.baseEvents()
	ev.OnClose = func(c *tcpkit.Conn, hadError bool) {
		if !p.quiet {
			p.out.line("discarded ", strconv.FormatInt(c.BytesRead(), 10), " bytes from ", addrString(c.RemoteAddr()))
		}
	}
	return ev
}

// addrString shows an address for people: ip:port, or the path of a Unix
// socket ("unix:(unnamed)" for a client socket without one).
func addrString(a net.Addr) string {
	if ua, ok := a.(*net.UnixAddr); ok {
		if ua.Name == "" || ua.Name == "@" {
			return "unix:(unnamed)"
		}
		return "unix:" + ua.Name
	}
	if a == nil {
		return "?"
	}
	return a.String()
}
