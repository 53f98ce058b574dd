package tcpkit

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A reset is reported as one even when a write on another goroutine
// meets it first. The kernel reports a reset once, to whichever call
// comes first: a write that takes it leaves the read racing it to find
// an end that is no FIN. That read must not become OnEnd, which a relay
// would pass on as a FIN (seen as 5 FINs in 24,000 relayed resets before
// the fix). Each dialed connection here has a goroutine writing to it
// while its peer resets it, so that the two meet often.
func TestResetRacingWriteIsNoEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			nc.(*net.TCPConn).SetLinger(0)
			nc.Close() // a reset
		}
	}()
	for _, e := range []Engine{EngineStd, EngineEpoll} {
		if e == EngineEpoll && !epollBuilt {
			continue
		}
		t.Run(e.String(), func(t *testing.T) {
			const n = 2000
			var ends, clean atomic.Int64
			closed := make(chan struct{}, n)
			d := Dialer{Engine: e}
			for range n {
				c, err := d.Dial(context.Background(), "tcp", ln.Addr().String(), Events{
					OnEnd: func(*Conn) { ends.Add(1) },
					OnClose: func(_ *Conn, hadError bool) {
						if !hadError {
							clean.Add(1)
						}
						closed <- struct{}{}
					},
				})
				if err != nil {
					closed <- struct{}{} // refused or reset while connecting: no Conn to race
					continue
				}
				go func() {
					for {
						if _, err := c.Write([]byte("x")); err != nil {
							return
						}
						time.Sleep(10 * time.Microsecond) // pacing the writes, not synchronisation
					}
				}()
			}
			deadline := time.After(2 * waitTime)
			for range n {
				select {
				case <-closed:
				case <-deadline:
					t.Fatalf("not every connection closed within %v", 2*waitTime)
				}
			}
			if ends.Load() > 0 || clean.Load() > 0 {
				t.Errorf("of %d connections reset by the peer, %d reported its FIN (OnEnd) and %d closed without an error", n, ends.Load(), clean.Load())
			}
		})
	}
}
