package tcpkit_test

import (
	"context"
	"fmt"
	"net"

	"tcpkit"
)

// The seed's server: print who connected and what they sent, reply "test"
// and end the connection. The client here plays the seed's client for one
// message.
func Example_server() {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the seed listens on :5000
	if err != nil {
		panic(err)
	}
	srv := &tcpkit.Server{Events: tcpkit.Events{
		OnConnect: func(c *tcpkit.Conn) {
			// The client's address, which the seed meant to print.
			fmt.Println("connect address :", c.RemoteAddr().(*net.TCPAddr).IP)
		},
		OnData: func(c *tcpkit.Conn, p []byte) {
			fmt.Println(string(p))
			c.Write([]byte("test"))
			c.End() // FIN after the reply: the 4-way handshake starts
		},
	}}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := tcpkit.Dial(context.Background(), "tcp", ln.Addr().String(), tcpkit.Events{
		OnData: func(c *tcpkit.Conn, p []byte) { fmt.Printf("receive: %s\n", p) },
		OnEnd:  func(c *tcpkit.Conn) { fmt.Println("disconnected.") },
	})
	if err != nil {
		panic(err)
	}
	c.Write([]byte("testing~"))
	<-c.Done()
	// Output:
	// connect address : 127.0.0.1
	// testing~
	// receive: test
	// disconnected.
}

// The seed's client against a server that ends the connection after its
// reply: once the server's FIN has arrived, the next write fails with the
// EPIPE Node reports as "This socket has been ended by the other party".
func Example_client() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &tcpkit.Server{Events: tcpkit.Events{
		OnData: func(c *tcpkit.Conn, p []byte) {
			c.Write([]byte("test"))
			c.End()
		},
	}}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := tcpkit.Dial(context.Background(), "tcp", ln.Addr().String(), tcpkit.Events{
		OnConnect: func(c *tcpkit.Conn) {
			fmt.Println("connect to server!")
			c.Write([]byte("testing~"))
		},
		OnData: func(c *tcpkit.Conn, p []byte) { fmt.Printf("receive: %s\n", p) },
		OnEnd:  func(c *tcpkit.Conn) { fmt.Println("disconnected.") },
		OnClose: func(c *tcpkit.Conn, hadError bool) {
			fmt.Println("closed, hadError:", hadError)
		},
	})
	if err != nil {
		panic(err)
	}
	<-c.Done()
	_, err = c.Write([]byte("testing~")) // a second later, in the seed
	fmt.Println("write:", err)
	// Output:
	// connect to server!
	// receive: test
	// disconnected.
	// closed, hadError: false
	// write: tcpkit: the peer ended the connection: broken pipe
}

// A relay, from the library's pieces: each connection the relay accepts
// is joined to one it dials to the target. Each side's bytes are written
// to the other; a side whose output backs up pauses the one that feeds
// it until OnDrain; a FIN goes on as a FIN (AllowHalfOpen) and a failure
// as a reset. tcpkit relay is this, with faults, splice(2) and a log.
func Example_relay() {
	target := &tcpkit.Server{Events: tcpkit.Events{ // the seed's server
		OnData: func(c *tcpkit.Conn, p []byte) { c.Write([]byte("test")); c.End() },
	}}
	tln, _ := net.Listen("tcp", "127.0.0.1:0")
	go target.Serve(tln)
	defer target.Close()

	opts := tcpkit.ConnOptions{AllowHalfOpen: true, ReadDuringBacklog: true}
	join := func(from, to *tcpkit.Conn, p []byte) {
		to.Write(p)
		if to.NeedDrain() {
			from.Pause() // until to's OnDrain
		}
	}
	other := func(c *tcpkit.Conn) *tcpkit.Conn { return c.Value().(*tcpkit.Conn) }
	relay := &tcpkit.Server{ConnOptions: opts, Events: tcpkit.Events{
		OnConnect: func(client *tcpkit.Conn) {
			client.Offload(func() { // paused while the target is dialed
				d := tcpkit.Dialer{ConnOptions: opts}
				t, err := d.Dial(context.Background(), "tcp", tln.Addr().String(), tcpkit.Events{
					OnData:  func(t *tcpkit.Conn, p []byte) { join(t, client, p) },
					OnDrain: func(*tcpkit.Conn) { client.Resume() },
					OnEnd:   func(*tcpkit.Conn) { client.End() },
					OnError: func(*tcpkit.Conn, error) { client.Reset() },
				})
				if err != nil {
					client.Reset()
					return
				}
				client.SetValue(t)
			})
		},
		OnData:  func(c *tcpkit.Conn, p []byte) { join(c, other(c), p) },
		OnDrain: func(c *tcpkit.Conn) { other(c).Resume() },
		OnEnd:   func(c *tcpkit.Conn) { other(c).End() },
		OnError: func(c *tcpkit.Conn, err error) { other(c).Reset() },
		OnClose: func(c *tcpkit.Conn, _ bool) { // closed before its FIN was relayed (relay.Close)
			if t, ok := c.Value().(*tcpkit.Conn); ok {
				t.End()
			}
		},
	}}
	rln, _ := net.Listen("tcp", "127.0.0.1:0")
	go relay.Serve(rln)
	defer relay.Close()

	c, err := tcpkit.Dial(context.Background(), "tcp", rln.Addr().String(), tcpkit.Events{
		OnData: func(c *tcpkit.Conn, p []byte) { fmt.Printf("receive: %s\n", p) },
		OnEnd:  func(c *tcpkit.Conn) { fmt.Println("disconnected.") },
	})
	if err != nil {
		panic(err)
	}
	c.Write([]byte("testing~"))
	<-c.Done()
	// Output:
	// receive: test
	// disconnected.
}
