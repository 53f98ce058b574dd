//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import (
	"io"
	"os"
)

// isTerminal reports whether w may be a terminal. Without a way to ask,
// any character device counts, which errs on the side of escaping.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
