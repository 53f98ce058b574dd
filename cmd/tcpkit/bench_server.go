package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"tcpkit/internal/bench"
	"tcpkit/internal/ports"
)

// checkServerPID checks --server-pid before the run. The process must
// exist. If it does not listen on the target's port, bench says so on
// stderr and measures it all the same: it may be the backend behind a
// proxy that the target is.
func checkServerPID(cfg *bench.Config, stderr io.Writer) int {
	pid := cfg.ServerPID
	switch {
	case pid == 0:
		return exitOK
	case cfg.Mode != bench.Idle:
		return usageError(stderr, "bench", "--server-pid goes with idle")
	case pid < 0 || !processExists(pid):
		return usageError(stderr, "bench", "--server-pid %d: no such process", pid)
	}
	if why := notListening(pid, cfg.Addr); why != "" {
		fmt.Fprintf(stderr, "tcpkit bench: %s\n", why)
	}
	return exitOK
}

func processExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// notListening says, for a target on this machine, that process pid
// does not listen on its port; "" if it does or it cannot be told.
func notListening(pid int, addr string) string {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, _ := strconv.Atoi(portText)
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return ""
	}
	res, err := ports.List(ports.Options{Port: uint16(port), Listen: true})
	if err != nil || res.Hidden > 0 {
		return ""
	}
	for _, s := range res.Sockets {
		if s.Local.Port() == uint16(port) && s.PID == pid {
			return ""
		}
	}
	name := ""
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		q := strconv.Quote(strings.TrimSpace(string(b))) // another user's process names its own self
		name = " (" + q[1:len(q)-1] + ")"
	}
	return fmt.Sprintf("--server-pid %d%s does not listen on port %d: its memory is measured all the same", pid, name, port)
}
