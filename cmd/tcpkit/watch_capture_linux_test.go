package main

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// needCapture skips a test that captures packets when this process could
// not (no root, no CAP_NET_RAW), and fails it in CI, which runs as root.
func needCapture(t testing.TB) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0)
	if err == nil {
		unix.Close(fd)
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("watch tests need root or CAP_NET_RAW in CI: %v", err)
	}
	t.Skipf("capturing needs root or CAP_NET_RAW: %v", err)
}
