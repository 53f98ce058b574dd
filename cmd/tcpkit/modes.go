package main

import (
	"encoding/hex"
	"log/slog"
	"net"
	"strconv"
	"time"
	"unicode/utf8"

	"tcpkit"
)

// A printer writes what serve shows per connection and per message: in
// the seed's words by default, or as log/slog records (--log-format text
// or json), one per line with the connection's id. It prints nothing
// when quiet, except errors and rejections.
type printer struct {
	out   *lineWriter
	err   *lineWriter  // notices that are not the seed's lines
	log   *slog.Logger // nil for the seed's format
	quiet bool
	hex   bool
}

func newPrinter(outs *outputs, format string, quiet, hexOut bool) *printer {
	p := &printer{out: outs.out, err: outs.err, quiet: quiet, hex: hexOut}
	switch format {
	case "text":
		p.log = slog.New(slog.NewTextHandler(outs.out, nil))
	case "json":
		p.log = slog.New(slog.NewJSONHandler(outs.out, nil))
	}
	return p
}

// listening prints the seed's listen line, exactly, and on stderr where
// and how the server listens: "listening on ADDR (ENGINE engine, metrics
// on URL)". A log format puts it all in one record.
func (p *printer) listening(line, addr, engine, metricsURL string) {
	if p.log != nil {
		attrs := []any{"addr", addr, "engine", engine}
		if metricsURL != "" {
			attrs = append(attrs, "metrics", metricsURL)
		}
		p.log.Info(line, attrs...)
		return
	}
	p.out.line(line)
	about := engine + " engine"
	if metricsURL != "" {
		about += ", metrics on " + metricsURL
	}
	p.err.line("tcpkit serve: listening on ", addr, " (", about, ")")
}

func (p *printer) connected(c *tcpkit.Conn) {
	switch {
	case p.quiet:
	case p.log != nil:
		p.log.Info("connect", "conn", c.ID(), "remote", addrString(c.RemoteAddr()))
	default:
		p.out.line("connect address : ", addrString(c.RemoteAddr()))
	}
}

// message prints a received message as the seed does: as text on a line
// of its own, or as a hex dump.
func (p *printer) message(c *tcpkit.Conn, msg []byte) {
	switch {
	case p.quiet:
	case p.log != nil && p.hex:
		p.log.Info("message", "conn", c.ID(), "bytes", len(msg), "hex", hex.EncodeToString(msg))
	case p.log != nil:
		text := string(msg)
		if !utf8.ValidString(text) {
			text = string(appendValidUTF8(nil, msg))
		}
		p.log.Info("message", "conn", c.ID(), "bytes", len(msg), "text", text)
	case p.hex:
		p.out.hexDump(msg)
	default:
		p.out.text("", msg)
	}
}

func (p *printer) failed(c *tcpkit.Conn, err error) {
	p.problem(c, explainBroken(err, "client"))
}

// problem prints an error line about c, even when quiet.
func (p *printer) problem(c *tcpkit.Conn, text string) {
	if p.log != nil {
		p.log.Error("error", "conn", c.ID(), "remote", addrString(c.RemoteAddr()), "error", text)
		return
	}
	p.out.line("error : ", addrString(c.RemoteAddr()), " : ", text)
}

// graceKilled says that exec mode killed c's command, name, for staying
// silent for grace after the client's FIN.
func (p *printer) graceKilled(c *tcpkit.Conn, name string, grace time.Duration) {
	reason := name + " was silent for " + grace.String() + " after the client's FIN (--exec-grace)"
	switch {
	case p.quiet:
	case p.log != nil:
		p.log.Info("killed", "conn", c.ID(), "remote", addrString(c.RemoteAddr()), "reason", reason)
	default:
		p.out.line("killed : ", addrString(c.RemoteAddr()), " : ", reason)
	}
}

func (p *printer) rejected(remote net.Addr, reason string) {
	if p.log != nil {
		p.log.Warn("rejected", "remote", addrString(remote), "reason", reason)
		return
	}
	p.out.line("rejected : ", addrString(remote), " : ", reason)
}

func (p *printer) timedOut(c *tcpkit.Conn) {
	switch {
	case p.quiet:
	case p.log != nil:
		p.log.Info("idle timeout", "conn", c.ID(), "remote", addrString(c.RemoteAddr()))
	default:
		p.out.line("idle timeout : ", addrString(c.RemoteAddr()))
	}
	c.End()
}

func (p *printer) discarded(c *tcpkit.Conn) {
	switch {
	case p.quiet:
	case p.log != nil:
		p.log.Info("discarded", "conn", c.ID(), "remote", addrString(c.RemoteAddr()), "bytes", c.BytesRead())
	default:
		p.out.line("discarded ", strconv.FormatInt(c.BytesRead(), 10), " bytes from ", addrString(c.RemoteAddr()))
	}
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

// echoEvents: send each message back as it came, byte for byte. A line
// comes with its '\n', so it goes back as it is: WriteMessage would add
// a '\n' to a last line that came without one.
func echoEvents(p *printer, framing tcpkit.Framing) tcpkit.Events {
	ev := p.baseEvents()
	ev.OnData = func(c *tcpkit.Conn, msg []byte) {
		p.message(c, msg)
		if framing == tcpkit.Lines {
			c.Write(msg)
			return
		}
		c.WriteMessage(msg)
	}
	return ev
}

// discardEvents: read and drop everything; say how much at the close.
func discardEvents(p *printer) tcpkit.Events {
	ev := p.baseEvents()
	ev.OnClose = func(c *tcpkit.Conn, hadError bool) { p.discarded(c) }
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
