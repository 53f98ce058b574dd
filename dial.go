package tcpkit

import (
	"context"
	"net"
	"time"
)

// A Dialer opens client connections. Its zero value is ready to use.
type Dialer struct {
	// Timeout bounds how long connecting may take. Zero means only ctx and
	// the operating system bound it.
	Timeout time.Duration

	// LocalAddr is the local address to connect from; nil picks one.
	LocalAddr net.Addr

	// Handshake, if set, runs on the new connection before it is handed
	// out: to send a PROXY protocol header, or to complete a TLS
	// handshake. It returns the connection to use (nc, or one wrapping
	// it); an error closes nc and fails the Dial.
	Handshake func(ctx context.Context, nc net.Conn) (net.Conn, error)

	// ConnOptions configure the connections this Dialer opens.
	ConnOptions
}

// Dial connects to address on the named network with a zero Dialer.
func Dial(ctx context.Context, network, address string, ev Events) (*Conn, error) {
	var d Dialer
	return d.Dial(ctx, network, address, ev)
}

// Dial connects to address on the named network, as net.Dial does:
// "tcp" (IPv4 or IPv6, "host:port"), "tcp4", "tcp6", or "unix" (a socket
// path). It returns the connection, whose events go to ev: OnConnect
// first, from the connection's own goroutine. ctx bounds only the
// connecting; once Dial returns, the connection lives until it is ended
// or closed.
func (d *Dialer) Dial(ctx context.Context, network, address string, ev Events) (*Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout}
	if d.LocalAddr != nil {
		nd.LocalAddr = d.LocalAddr
	}
	start := time.Now()
	nc, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if d.Handshake != nil {
		hc, err := d.Handshake(ctx, nc)
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = hc
	}
	opt := d.ConnOptions // the conn keeps its own copy: d may change later
	c := newStdConn(nc, &ev, &opt, nil)
	c.traceConnected(time.Since(start)) // before anything can be written
	go c.run()
	return &c.Conn, nil
}
