package tcpkit

import (
	"io"
	"testing"
)

// The epoll engine reads a connection right after accepting it, where
// clients send first; where they wait to be spoken to, those reads find
// nothing, and the loop stops making them after eagerMax misses in a row.
// The clients are served all the same. (These clients never send, so
// every such read misses.)
func TestEagerReadBacksOffForSilentClients(t *testing.T) {
	srv := &Server{Engine: EngineEpoll, Loops: 1, Events: Events{
		OnConnect: func(c *Conn) { c.Write([]byte("hello\n")) }, // the server speaks first
	}}
	addr := startServer(t, srv)
	const clients = 2 * eagerMax
	for i := range clients {
		nc := rawDial(t, addr)
		buf := make([]byte, 6)
		if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "hello\n" {
			t.Fatalf("client %d: read %q, %v; want the server's hello", i, buf, err)
		}
	}
	srv.Close()
	srv.waitLoops() // the loop's fields are its own until it exits
	l := srv.ep.loops[0]
	if l.accepted != clients || l.eager != 0 {
		t.Errorf("after %d clients that did not send first: %d accepted, eager score %d; want %d and 0", clients, l.accepted, l.eager, clients)
	}
}
