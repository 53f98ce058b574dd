//go:build !linux

package bench

import "syscall"

// bindNoPort is Linux-only; elsewhere the bound port is chosen at bind.
func bindNoPort(network, address string, c syscall.RawConn) error { return nil }
