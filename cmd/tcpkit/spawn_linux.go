package main

import (
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// startCmd starts cmd so that the kernel kills it (SIGKILL) when the
// server dies, however it dies: a crash or a SIGKILL leaves no command
// running for a client that is gone. Linux sends that parent-death signal
// when the thread that forked the child exits, not the process, and Go
// ends a thread whenever a goroutine locked to it returns; so every
// command is forked from one goroutine locked, for the life of the
// process, to a thread of its own. Go's fork lock serializes forks
// anyway: funnelling them through one thread costs no concurrency.
func startCmd(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawnOnce.Do(func() { go spawner() })
	done := make(chan error, 1)
	spawnReqs <- spawnReq{cmd, done}
	return <-done
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan<- error
}

var (
	spawnOnce sync.Once
	spawnReqs = make(chan spawnReq)
)

// spawner starts the commands. It never returns, so its thread lives as
// long as the process.
func spawner() {
	runtime.LockOSThread() // never unlocked
	for r := range spawnReqs {
		r.done <- r.cmd.Start()
	}
}

// awaitExit waits until the child pid has exited, without reaping it: its
// process ID, and so its process group's, stays taken until Wait, and the
// group can be killed without hitting a stranger. It reports false if it
// could not wait, and the caller must reap at once.
//
// It waits in the runtime's poller on a pidfd (Linux 5.3), which costs no
// thread while the command runs; on older kernels, in a blocking waitid.
func awaitExit(pid int) bool {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		exited, _ := waitNoReap(pid, 0)
		return exited
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	var exited bool
	var werr error
	rc, err := f.SyscallConn()
	if err == nil {
		// The pidfd turns readable when the process exits.
		err = rc.Read(func(uintptr) bool {
			exited, werr = waitNoReap(pid, unix.WNOHANG)
			return exited || werr != nil
		})
	}
	if err != nil { // the pidfd is not pollable here
		exited, _ = waitNoReap(pid, 0)
	}
	return exited
}

// waitNoReap waits for the child pid to exit, leaving it unreaped, and
// reports whether it has exited; with unix.WNOHANG it only looks. An
// error means there is nothing to wait for (not our child, or reaped).
func waitNoReap(pid, flags int) (bool, error) {
	for {
		var info unix.Siginfo // zeroed: with WNOHANG and nothing to report, Signo stays 0
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT|flags, nil)
		if err == unix.EINTR {
			continue
		}
		return err == nil && info.Signo != 0, err
	}
}
