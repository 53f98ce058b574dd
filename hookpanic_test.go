package tcpkit

import (
	"context"
	"errors"
	"net"
	"testing"
)

// A Handshake or a Preamble's Parse that panics refuses only that
// connection, with a *PanicError to OnReject (or from Dial), as a panic
// in a callback closes only its connection: the server goes on.
func TestHookPanicRefusesOnlyItsConnection(t *testing.T) {
	hooks := []struct {
		name string
		send string // what the client sends for the hook to be called
		set  func(*Server)
	}{
		{"Handshake", "", func(s *Server) {
			s.Handshake = func(nc net.Conn) (net.Conn, error) { panic("handshake boom") }
		}},
		{"Preamble.Parse", "x", func(s *Server) {
			s.Preamble = &Preamble{Parse: func([]byte, error) (int, net.Addr, net.Addr, error) { panic("parse boom") }}
		}},
	}
	for _, h := range hooks {
		t.Run(h.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e Engine) {
				rj := newRejections()
				srv := &Server{Engine: e, OnReject: rj.onReject}
				h.set(srv)
				addr := startServer(t, srv)
				for range 2 { // the server goes on after the first
					nc := rawDial(t, addr)
					nc.Write([]byte(h.send))
					var pe *PanicError
					if got := rj.next(t); !errors.As(got.err, &pe) {
						t.Fatalf("OnReject got %v, want a *PanicError", got.err)
					}
					readEOF(t, nc)
				}
			})
		})
	}
	t.Run("Dialer.Handshake", func(t *testing.T) {
		forEachEngine(t, func(t *testing.T, e Engine) {
			addr, _ := rawListener(t)
			d := Dialer{Engine: e, Handshake: func(context.Context, net.Conn) (net.Conn, error) { panic("dial boom") }}
			ctx, cancel := context.WithTimeout(context.Background(), waitTime)
			defer cancel()
			c, err := d.Dial(ctx, "tcp", addr, Events{})
			var pe *PanicError
			if c != nil || !errors.As(err, &pe) || pe.Value != "dial boom" {
				t.Fatalf("Dial = %v, %v; want nil, a *PanicError", c, err)
			}
		})
	})
}
