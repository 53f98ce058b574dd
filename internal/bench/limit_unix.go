//go:build unix

package bench

import (
	"os"
	"syscall"
)

// fdLimit returns the soft limit on open files (which Go raises to the
// hard limit at start) and how many are open now.
func fdLimit() (limit, open int, ok bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 /* unlimited, in effect */ {
		return 0, 0, false
	}
	open = 3 // stdin, stdout, stderr
	if entries, err := os.ReadDir("/proc/self/fd"); err == nil {
		open = len(entries)
	}
	return int(rl.Cur), open, true
}
