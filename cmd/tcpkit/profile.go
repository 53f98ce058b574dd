package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile to name until the returned
// function is called; "" profiles nothing. For `go tool pprof`.
func startCPUProfile(name string, stderr io.Writer) (stop func(), ok bool) {
	if name == "" {
		return func() {}, true
	}
	f, err := os.Create(name)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit: --cpuprofile: %v\n", err)
		return nil, false
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, true
}
