//go:build !unix

package main

import (
	"errors"
	"os"
)

// sigStatus stands for SIGUSR1, which only Unix has: the tests that send
// it skip elsewhere (see proc.signal).
var sigStatus = os.Interrupt

// processGone reports whether no process pid exists.
func processGone(pid int) (bool, error) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true, err
	}
	p.Release()
	return false, errors.New("cannot tell without kill(2)")
}
