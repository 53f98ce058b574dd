package tcpkit

import (
	"runtime"
	"testing"
)

// The Dial loops start on first use, at most one per core, and stop once
// they have no connection left: a program that stops dialing keeps none
// (and goleak, in TestMain, sees no goroutine of theirs).
func TestDialLoopsStopWhenIdle(t *testing.T) {
	addr := startServer(t, &Server{Engine: EngineEpoll, Events: Events{OnData: func(c *Conn, p []byte) { c.Write(p) }}})
	waitDialLoops(t)
	var conns []*Conn
	for range 3 * runtime.GOMAXPROCS(0) {
		conns = append(conns, dialT(t, addr, Events{}))
	}
	dialLoops.mu.Lock()
	running := 0
	for _, l := range dialLoops.loops {
		if l != nil {
			running++
		}
	}
	dialLoops.mu.Unlock()
	if running != runtime.GOMAXPROCS(0) {
		t.Errorf("%d Dial loops run for %d connections, want one per core (%d)", running, len(conns), runtime.GOMAXPROCS(0))
	}
	for _, c := range conns {
		c.Close()
		waitDone(t, c)
	}
	waitDialLoops(t)
	// And they start again.
	c := dialT(t, addr, Events{})
	c.Close()
	waitDone(t, c)
	waitDialLoops(t)
}
