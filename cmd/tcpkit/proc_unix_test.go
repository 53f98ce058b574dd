//go:build unix

package main

import (
	"errors"
	"syscall"
)

// sigStatus is the signal that makes tcpkit serve print its status.
var sigStatus = syscall.SIGUSR1

// processGone reports whether no process pid exists (kill(pid, 0) says
// ESRCH), with kill's error.
func processGone(pid int) (bool, error) {
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH), err
}
