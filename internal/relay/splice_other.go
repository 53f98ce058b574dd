//go:build !linux

package relay

import (
	"context"
	"errors"
	"net"
	"time"
)

// SpliceBuilt reports whether this system has the splice path: splice(2)
// is Linux's.
const SpliceBuilt = false

// A Splicer is the splice path, which only Linux has: Serve says so.
type Splicer struct {
	Network, Address string
	ConnectTimeout   time.Duration
	IdleTimeout      time.Duration
	MaxConns         int
	SendProxy        int
	Loops            int
	OnOpen           func(id uint64, client, target, via net.Addr)
	OnClose          func(e End)
	OnReject         func(remote net.Addr, err error)
}

func (s *Splicer) Serve(ln net.Listener) error {
	ln.Close()
	return errors.New("tcpkit relay: splice(2) is Linux's: run with --no-splice")
}
func (s *Splicer) StopAccepting()                 {}
func (s *Splicer) Open() int                      { return 0 }
func (s *Splicer) Wait(ctx context.Context) error { return nil }
func (s *Splicer) Cut(cause string)               {}
func (s *Splicer) Close()                         {}
