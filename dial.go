package tcpkit

import (
	"context"
	"fmt"
	"net"
	"runtime"
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
	// handshake. It returns the connection to use: nc, or one that reads
	// from and writes to nc, such as tls.Client(nc, config). An error
	// closes nc and fails the Dial. On the epoll engine it runs as
	// Server.Handshake does, and what it returns must meet the same
	// terms.
	Handshake func(ctx context.Context, nc net.Conn) (net.Conn, error)

	// Engine is what the connections run on. The zero value, EngineAuto,
	// is EngineEpoll on Linux: event loops that Dial starts on first use
	// (one per core at most, GOMAXPROCS) and that stop when they have no
	// connection left; EngineStd elsewhere. Callbacks run on the loop, as
	// a Server's do: see Engine.
	Engine Engine

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
// path). It returns the connection, whose events go to ev, OnConnect
// first. ctx bounds only the connecting (and Handshake); once Dial
// returns, the connection lives until it is ended or closed.
func (d *Dialer) Dial(ctx context.Context, network, address string, ev Events) (*Conn, error) {
	engine, err := d.engine()
	if err != nil {
		return nil, err
	}
	nd := net.Dialer{Timeout: d.Timeout}
	if d.LocalAddr != nil {
		nd.LocalAddr = d.LocalAddr
	}
	start := time.Now()
	nc, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	opt := d.ConnOptions // the conn keeps its own copy: d may change later
	if engine == EngineEpoll {
		return d.dialEpoll(ctx, nc, &ev, &opt, start)
	}
	var k *stdSock
	if d.Handshake != nil {
		hc, sock, err := stdHandshake(nc, func(hin net.Conn) (net.Conn, error) { return d.Handshake(ctx, hin) })
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc, k = hc, sock
	}
	c := newStdConn(nc, &ev, &opt, nil)
	c.st = stdStreamOf(nc, k)
	c.traceConnected(time.Since(start)) // before anything can be written
	go c.run()
	return &c.Conn, nil
}

// engine is the engine the Dialer's connections run on.
func (d *Dialer) engine() (Engine, error) {
	switch d.Engine {
	case EngineAuto:
		if epollBuilt {
			return EngineEpoll, nil
		}
		return EngineStd, nil
	case EngineStd:
		return EngineStd, nil
	case EngineEpoll:
		if !epollBuilt {
			return EngineEpoll, fmt.Errorf("tcpkit: the epoll engine runs on Linux only, not %s: dial with EngineStd", runtime.GOOS)
		}
		return EngineEpoll, nil
	}
	return d.Engine, fmt.Errorf("tcpkit: unknown %v", d.Engine)
}
