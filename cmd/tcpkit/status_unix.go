//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// statusSignal returns a channel that receives SIGUSR1, and a function
// that stops that.
func statusSignal() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	return ch, func() { signal.Stop(ch) }
}
