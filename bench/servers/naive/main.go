// Command naive is the obvious goroutine-per-connection server on net
// alone, as most people would first write the seed's server in Go: accept,
// go handle(conn), read into a buffer, write "test". It prints
// "listen on port N" once and nothing per message.
//
//	naive -port N [-keep-open]
//
// Reply mode (the default) closes the connection right after writing the
// reply, with conn.Close: no half-close and no draining. If the client had
// sent more than the one read took in, the kernel would answer the close
// with a RST instead of a FIN; the seed's client (and bench's oneshot) sends
// one short message and waits, so in practice the close is a clean FIN. The
// server's side then waits in TIME_WAIT, as tcpkit's and Node's do.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"time"
)

var reply = []byte("test")

func main() {
	port := flag.Int("port", 5000, "listen port on 127.0.0.1; 0 picks a free one")
	keepOpen := flag.Bool("keep-open", false, "reply to every read and keep the connection open")
	flag.Parse()

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listen on port %d\n", ln.Addr().(*net.TCPAddr).Port)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				os.Exit(0)
			}
			// EMFILE and the like: wait a little and go on, as
			// net/http does.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go handle(conn, *keepOpen)
	}
}

func handle(conn net.Conn, keepOpen bool) {
	defer conn.Close()
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if _, err := conn.Write(reply); err != nil {
				return
			}
			if !keepOpen {
				return // the deferred Close ends the connection
			}
		}
		if err != nil {
			return
		}
	}
}
