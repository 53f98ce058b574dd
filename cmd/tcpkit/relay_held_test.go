package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// A leg that closes cleanly (both its FINs) while a latency still holds
// bytes it sent: the other leg gets them all, then the FIN, in each
// direction. The side that ended first keeps reading; the other sends a
// MiB and its FIN, which close its leg before the last of the MiB is due.
func TestRelayHeldBytesOutliveTheirLeg(t *testing.T) {
	big := make([]byte, 1<<20)
	rand.Read(big)
	t.Run("up", func(t *testing.T) { // the target ends first; the client sends
		got := make(chan []byte, 1)
		tport := listener(t, func(nc net.Conn) {
			nc.SetDeadline(time.Now().Add(waitFor))
			nc.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(nc)
			got <- b
		})
		r, port := startRelay(t, tcpkitBin, addr(tport), "--latency", "up:1ms")
		nc := dial(t, port)
		if b, err := io.ReadAll(nc); len(b) != 0 || err != nil {
			t.Fatalf("the client read %q, %v; want the target's FIN", b, err)
		}
		if _, err := nc.Write(big); err != nil {
			t.Fatal(err)
		}
		nc.CloseWrite()
		if b := <-got; !bytes.Equal(b, big) {
			t.Errorf("the target got %d bytes, want the client's %d exactly", len(b), len(big))
		}
		if how, up, down := waitPairEnd(t, r, 1); how != "ended cleanly" || up != len(big) || down != 0 {
			t.Errorf("pair 1 %s, %d bytes up, %d down; want ended cleanly, %d up", how, up, down, len(big))
		}
	})
	t.Run("down", func(t *testing.T) { // the client ends first; the target sends
		tport := listener(t, func(nc net.Conn) {
			nc.SetDeadline(time.Now().Add(waitFor))
			if b, err := io.ReadAll(nc); len(b) != 0 || err != nil {
				return
			}
			nc.Write(big)
			nc.(*net.TCPConn).CloseWrite()
		})
		r, port := startRelay(t, tcpkitBin, addr(tport), "--latency", "down:1ms")
		nc := dial(t, port)
		nc.CloseWrite()
		if b, err := io.ReadAll(nc); err != nil || !bytes.Equal(b, big) {
			t.Errorf("the client read %d bytes, %v; want the target's %d exactly, then its FIN", len(b), err, len(big))
		}
		if how, up, down := waitPairEnd(t, r, 1); how != "ended cleanly" || up != 0 || down != len(big) {
			t.Errorf("pair 1 %s, %d bytes up, %d down; want ended cleanly, %d down", how, up, down, len(big))
		}
	})
}
