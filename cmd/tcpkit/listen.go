package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// family returns the network for -4 / -6: "tcp4", "tcp6", or "tcp" for
// both. Both flags at once is a usage error.
func family(v4, v6 bool) (string, error) {
	switch {
	case v4 && v6:
		return "", errors.New("-4 and -6 exclude each other")
	case v4:
		return "tcp4", nil
	case v6:
		return "tcp6", nil
	}
	return "tcp", nil
}

// listenUnix listens on a Unix socket at path. A socket file left behind
// by a server that died is replaced; one a live server answers on is an
// error, as is any other kind of file there.
func listenUnix(ctx context.Context, path string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", path)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	fi, serr := os.Lstat(path)
	if serr != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("%s exists and is not a socket: remove it or pick another path", path)
	}
	if nc, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
		nc.Close()
		return nil, fmt.Errorf("a live server is listening on %s (EADDRINUSE)", path)
	}
	if err := os.Remove(path); err != nil { // stale: its server is gone
		return nil, err
	}
	return lc.Listen(ctx, "unix", path)
}
