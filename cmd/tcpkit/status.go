package main

import (
	"fmt"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"

	"tcpkit"
)

// statusLine says how a running server is doing, for SIGUSR1: what an
// operator checks first when a server seems stuck or leaking.
func statusLine(srv *tcpkit.Server) string {
	fds := "?"
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = fmt.Sprint(len(ents))
	}
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(sample)
	heap := float64(sample[0].Value.Uint64()) / (1 << 20)
	return fmt.Sprintf("%s, %d goroutines, %s open fds, %.1f MiB heap",
		plural(srv.Conns(), "open connection"), runtime.NumGoroutine(), fds, heap)
}
