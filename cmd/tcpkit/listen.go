package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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

// maxUnixPath is the longest path a Unix socket may have: the socket
// address holds it and a NUL (107 bytes on Linux, 103 on the BSDs).
var maxUnixPath = len(syscall.RawSockaddrUnix{}.Path) - 1

// checkUnixPath refuses a socket path the system cannot take, before
// anything is tried: bind would only say "invalid argument".
func checkUnixPath(path string) error {
	if len(path) > maxUnixPath {
		return fmt.Errorf("--unix path is %d bytes, over the %d-byte limit of a Unix socket path: use a shorter one, such as /tmp/tcpkit.sock", len(path), maxUnixPath)
	}
	return nil
}

// listenUnix listens on a Unix socket at path. A socket file left behind
// by a server that died is replaced; one a live server answers on is an
// error, as is any other kind of file there. Errors are said in full:
// "cannot listen on PATH: why".
func listenUnix(ctx context.Context, path string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", path)
	if err == nil {
		return ln, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, errors.New(explainListenUnix(path, err))
	}
	fi, serr := os.Lstat(path)
	if serr != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("cannot listen on %s: %s exists and is not a socket: remove it or pick another path", path, path)
	}
	if nc, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
		nc.Close()
		return nil, fmt.Errorf("cannot listen on %s: a live server is listening on %s (EADDRINUSE)", path, path)
	}
	if err := os.Remove(path); err != nil { // stale: its server is gone
		return nil, fmt.Errorf("cannot listen on %s: cannot remove the stale socket: %s", path, explainPathErr(err))
	}
	if ln, err = lc.Listen(ctx, "unix", path); err != nil {
		return nil, errors.New(explainListenUnix(path, err))
	}
	return ln, nil
}

// explainListenUnix says in plain words why listening on the Unix socket
// path failed.
func explainListenUnix(path string, err error) string {
	errno, name := errnoOf(err)
	dir := filepath.Dir(path)
	switch {
	case errno == syscall.EACCES:
		return fmt.Sprintf("cannot listen on %s: permission denied: this user may not create files in %s (EACCES)", path, dir)
	case errno == syscall.ENOENT:
		return fmt.Sprintf("cannot listen on %s: the directory %s does not exist (ENOENT)", path, dir)
	case name != "":
		return fmt.Sprintf("cannot listen on %s: %v (%s)", path, errno, name)
	}
	return fmt.Sprintf("cannot listen on %s: %v", path, err)
}
