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
