//go:build !unix

package main

import "os"

// statusSignal: no SIGUSR1 here, so no status on demand.
func statusSignal() (<-chan os.Signal, func()) { return nil, func() {} }
