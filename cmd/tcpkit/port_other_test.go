//go:build !unix

package main

import (
	"net"
	"testing"
)

// refusedPort returns a loopback port that nothing listens on: a listener
// takes a free one and closes again (another process might take the port
// in between; the Unix version has no such race).
func refusedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
