//go:build !unix

package main

import (
	"errors"
	"syscall"
)

func reusePort(network, address string, c syscall.RawConn) error {
	return errors.New("--reuseport is not supported on this system")
}
