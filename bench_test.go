package tcpkit

import (
	"io"
	"net"
	"strconv"
	"testing"
)

// BenchmarkPingPong measures one request-reply exchange over a persistent
// loopback connection (the seed's keep-open mode): tcpkit's server, on
// each engine (tcpkit/SIZE/std, tcpkit/SIZE/epoll), against the naive
// goroutine-per-connection server written on net alone, so the cost of
// the Conn abstraction shows as the difference. Allocations are per
// exchange, both sides of it in this process; the client allocates
// nothing.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range []int{8, 4 << 10} {
		msg := make([]byte, size)
		b.Run("tcpkit/"+byteSize(size), func(b *testing.B) {
			for _, e := range engines {
				b.Run(e.String(), func(b *testing.B) {
					addr := startServer(b, &Server{Engine: e, Events: Events{
						OnData: func(c *Conn, p []byte) { c.Write(p) },
					}})
					pingPong(b, addr, msg)
				})
			}
		})
		b.Run("naive/"+byteSize(size), func(b *testing.B) {
			pingPong(b, naiveEcho(b), msg)
		})
	}
}

func pingPong(b *testing.B, addr string, msg []byte) {
	nc, err := net.Dial("tcp4", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	buf := make([]byte, len(msg))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := nc.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// naiveEcho is the obvious goroutine-per-connection echo server.
func naiveEcho(b *testing.B) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				buf := make([]byte, 4<<10)
				for {
					n, err := nc.Read(buf)
					if err != nil {
						return
					}
					if _, err := nc.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
