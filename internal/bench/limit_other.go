//go:build !unix

package bench

// fdLimit: no limit on open files is known here.
func fdLimit() (limit, open int, ok bool) { return 0, 0, false }
