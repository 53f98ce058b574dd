// Command gnet is the seed's server on gnet v2, the event-loop framework
// (github.com/panjf2000/gnet/v2): one event loop, since it runs on one
// core with GOMAXPROCS=1. It prints "listen on port N" once and nothing
// per message.
//
//	gnet -port N [-keep-open]
//
// OnTraffic drops everything read and writes "test". In reply mode it then
// returns gnet.Close. gnet v2 has no half-close (no CloseWrite or shutdown
// in its Conn API): Close flushes what is still queued for the peer and
// closes the descriptor at once, in the event loop. Everything the peer
// sent so far has been read by then (gnet reads before it calls
// OnTraffic), so the close sends a FIN, not a RST, and the server's side
// waits in TIME_WAIT. Unlike the seed's server it does not wait for the
// peer's FIN: data arriving after the reply would draw a RST.
//
// gnet logs one "Launching gnet" line on stderr at start (its log level
// option applies only together with a log file).
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/panjf2000/gnet/v2"
)

var reply = []byte("test")

type server struct {
	gnet.BuiltinEventEngine
	port     int
	keepOpen bool
}

func (s *server) OnBoot(gnet.Engine) gnet.Action {
	fmt.Printf("listen on port %d\n", s.port)
	return gnet.None
}

func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	if _, err := c.Discard(-1); err != nil {
		return gnet.Close
	}
	if _, err := c.Write(reply); err != nil {
		return gnet.Close
	}
	if !s.keepOpen {
		return gnet.Close
	}
	return gnet.None
}

func main() {
	port := flag.Int("port", 5000, "listen port on 127.0.0.1 (not 0: gnet does not say which port it got)")
	keepOpen := flag.Bool("keep-open", false, "reply to every read and keep the connection open")
	flag.Parse()

	s := &server{port: *port, keepOpen: *keepOpen}
	err := gnet.Run(s, fmt.Sprintf("tcp://127.0.0.1:%d", *port),
		gnet.WithMulticore(false),
		gnet.WithReuseAddr(true),
	)
	if err != nil {
		log.Fatal(err)
	}
}
