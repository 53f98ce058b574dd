package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"tcpkit"
)

// errnoNames maps the system errors users meet most to their C names, so
// that messages name the cause the way man pages and Node do.
var errnoNames = map[syscall.Errno]string{
	syscall.EPIPE:         "EPIPE",
	syscall.ECONNRESET:    "ECONNRESET",
	syscall.ECONNREFUSED:  "ECONNREFUSED",
	syscall.ETIMEDOUT:     "ETIMEDOUT",
	syscall.EADDRINUSE:    "EADDRINUSE",
	syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL",
	syscall.EACCES:        "EACCES",
	syscall.ENETUNREACH:   "ENETUNREACH",
	syscall.EHOSTUNREACH:  "EHOSTUNREACH",
	syscall.ECONNABORTED:  "ECONNABORTED",
	syscall.EPERM:         "EPERM",
	syscall.ENOENT:        "ENOENT",
	syscall.ENOTDIR:       "ENOTDIR",
	syscall.EISDIR:        "EISDIR",
	syscall.EEXIST:        "EEXIST",
	syscall.EROFS:         "EROFS",
	syscall.ENOSPC:        "ENOSPC",
	syscall.EINVAL:        "EINVAL",
}

// errnoOf returns the system error inside err and its C name.
func errnoOf(err error) (syscall.Errno, string) {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name, ok := errnoNames[errno]; ok {
			return errno, name
		}
		return errno, fmt.Sprintf("errno %d", int(errno))
	}
	return 0, ""
}

// explainPathErr says what a file system call's error was, with the
// errno's name, without Go's "open PATH:" prefix: the caller names the
// path.
func explainPathErr(err error) string {
	var pe *fs.PathError
	var le *os.LinkError
	inner := err
	switch {
	case errors.As(err, &pe):
		inner = pe.Err
	case errors.As(err, &le):
		inner = le.Err
	}
	if errno, name := errnoOf(inner); name != "" {
		return fmt.Sprintf("%v (%s)", errno, name)
	}
	return inner.Error()
}

// explainBroken says in plain words why a send failed or an open
// connection broke; peer names the other side ("server", "client").
func explainBroken(err error, peer string) string {
	errno, name := errnoOf(err)
	switch {
	case errors.Is(err, tcpkit.ErrPeerEnded), errno == syscall.EPIPE:
		return "the " + peer + " ended the connection, so nothing more can be sent (EPIPE: broken pipe)"
	case errno == syscall.ECONNRESET:
		return "the " + peer + " reset the connection (ECONNRESET: connection reset by peer)"
	case errno == syscall.ETIMEDOUT:
		return "the connection timed out: the " + peer + " stopped acknowledging data (ETIMEDOUT)"
	case errors.Is(err, tcpkit.ErrMessageTooLarge):
		return strings.TrimPrefix(err.Error(), "tcpkit: ") + " (--max-message)"
	case errors.Is(err, tcpkit.ErrReadTimeout):
		return strings.TrimPrefix(err.Error(), "tcpkit: ") + " (--read-timeout)"
	case errors.Is(err, tcpkit.ErrWriteTimeout):
		return strings.TrimPrefix(err.Error(), "tcpkit: ") + " (--write-timeout)"
	case errors.Is(err, tcpkit.ErrEndTimeout):
		return strings.TrimPrefix(err.Error(), "tcpkit: ") + " after the connection was ended, so it was cut"
	case tlsAlert(err) != "":
		return tlsAlert(err)
	case name != "":
		return fmt.Sprintf("%v (%s)", errno, name)
	}
	return err.Error()
}

// explainDial says in plain words why connecting to addr failed.
func explainDial(addr string, err error) string {
	var dnsErr *net.DNSError
	var addrErr *net.AddrError
	errno, name := errnoOf(err)
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("cannot connect to %s: unknown host %q", addr, dnsErr.Name)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot connect to %s: cannot look up %q: %v", addr, dnsErr.Name, dnsErr.Err)
	case errno == syscall.ECONNREFUSED:
		return fmt.Sprintf("cannot connect to %s: connection refused, nothing is listening there (ECONNREFUSED)", addr)
	case isTLSError(err):
		return fmt.Sprintf("cannot connect to %s: %v", addr, err)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errno == syscall.ETIMEDOUT:
		return fmt.Sprintf("cannot connect to %s: no answer in time (ETIMEDOUT)", addr)
	case errors.As(err, &addrErr):
		return fmt.Sprintf("cannot connect to %s: %s is not an address of the family asked for (-4/-6)", addr, addrErr.Addr)
	case name != "":
		return fmt.Sprintf("cannot connect to %s: %v (%s)", addr, errno, name)
	}
	return fmt.Sprintf("cannot connect to %s: %v", addr, err)
}

// explainListen says in plain words why listening on addr failed. flag
// is the option that chose the address, for the advice ("--port").
func explainListen(addr, flag string, err error) string {
	var dnsErr *net.DNSError
	errno, name := errnoOf(err)
	port := 0
	if _, p, perr := net.SplitHostPort(addr); perr == nil {
		port, _ = strconv.Atoi(p)
	}
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot listen on %s: unknown host %q", addr, dnsErr.Name)
	case errno == syscall.EADDRINUSE:
		who := "another process"
		if h := portHolder(port); h != "" {
			who = h
		}
		advice := "pick another with " + flag
		if flag != "--port" {
			advice = "pick another address with " + flag
		}
		return fmt.Sprintf("cannot listen on %s: port %d is already in use by %s (EADDRINUSE); %s", addr, port, who, advice)
	case errno == syscall.EACCES:
		return fmt.Sprintf("cannot listen on %s: permission denied, ports below 1024 need root (EACCES)", addr)
	case errno == syscall.EADDRNOTAVAIL:
		return fmt.Sprintf("cannot listen on %s: that address is not one of this machine's (EADDRNOTAVAIL)", addr)
	case name != "":
		return fmt.Sprintf("cannot listen on %s: %v (%s)", addr, errno, name)
	}
	return fmt.Sprintf("cannot listen on %s: %v", addr, err)
}
