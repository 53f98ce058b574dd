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
	LocalAddr *net.TCPAddr

	// ConnOptions configure the connections this Dialer opens.
	ConnOptions
}

// Dial connects to addr ("host:port") with a zero Dialer.
func Dial(ctx context.Context, addr string, ev Events) (*Conn, error) {
	var d Dialer
	return d.Dial(ctx, addr, ev)
}

// Dial connects to addr ("host:port"), IPv4 or IPv6, and returns the
// connection, whose events go to ev: OnConnect first, from the
// connection's own goroutine. ctx bounds only the connecting; once Dial
// returns, the connection lives until it is ended or closed.
func (d *Dialer) Dial(ctx context.Context, addr string, ev Events) (*Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout}
	if d.LocalAddr != nil {
		nd.LocalAddr = d.LocalAddr
	}
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	opt := d.ConnOptions // the conn keeps its own copy: d may change later
	c := newConn(nc, &ev, &opt)
	go c.run()
	return c, nil
}
