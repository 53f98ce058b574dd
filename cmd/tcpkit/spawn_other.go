//go:build !linux

package main

import "os/exec"

// startCmd starts cmd. Only Linux can have the kernel kill it when the
// server dies (see spawn_linux.go).
func startCmd(cmd *exec.Cmd) error { return cmd.Start() }

// awaitExit reports false: this system cannot wait for a child without
// reaping it, so the caller reaps it at once.
func awaitExit(pid int) bool { return false }
