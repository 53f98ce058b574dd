// Package tcpkit serves and opens TCP connections with the lifecycle of a
// Node.js socket, made Go: a Server accepts connections, Dial opens them,
// and both hand out the same *Conn, whose life is reported through Events.
//
// # Lifecycle
//
// Each connection reports, in order and never two at once:
//
//   - OnConnect: established (accepted, or connected).
//   - OnData: a chunk arrived from the peer.
//   - OnTimeout: nothing read or written for the idle timeout.
//   - OnDrain: queued output went over the high-water mark and has now
//     been written.
//   - OnEnd: the peer sent its FIN. Unless AllowHalfOpen is set, this side
//     then ends too.
//   - OnError: the error that tore the connection down (a reset, say).
//   - OnClose: closed, exactly once, last.
//
// Conn.Write queues and never blocks. Conn.End half-closes: it sends a FIN
// after pending output and closes when the peer's FIN comes back, so a
// connection ends with the 4-way handshake and no reset. Conn.Close tears
// it down at once.
//
// # The seed
//
// The project began as a Node.js tutorial: a server on port 5000 that
// prints each message, replies "test" and ends the connection, and a
// client that sends "testing~" every second. In tcpkit the server is:
//
//	srv := &tcpkit.Server{Addr: ":5000", Events: tcpkit.Events{
//		OnConnect: func(c *tcpkit.Conn) {
//			fmt.Println("connect address :", c.RemoteAddr())
//		},
//		OnData: func(c *tcpkit.Conn, p []byte) {
//			fmt.Println(string(p))
//			c.Write([]byte("test"))
//			c.End()
//		},
//	}}
//	log.Fatal(srv.ListenAndServe())
//
// Callbacks of one connection run one at a time on goroutines tcpkit
// owns. On Linux the default engine runs them on event loops that many
// connections share, as Node.js does: a callback must not block, and
// hands slow work off with Conn.Offload. See Engine.
//
// # Inside
//
// The lifecycle above is written once, for both engines: conn.go holds a
// connection's state and methods, lifecycle.go what input, output, the
// FINs and the close lead to, timeouts.go every timeout. Each engine
// supplies, per connection, a transport (transport.go) for what truly
// differs: how bytes move, how the FIN goes out, how its timer and
// wakeups are scheduled, TCP_INFO, the close. The std engine is in
// std_*.go, the epoll engine in epoll_*.go; docs/engines.md walks
// through both.
package tcpkit
