//go:build !linux

package main

import "testing"

// needCapture skips a test that captures packets: live capture is
// Linux's AF_PACKET.
func needCapture(t testing.TB) {
	t.Helper()
	t.Skip("live capture needs Linux")
}
