//go:build !linux

package ports

// List returns ErrUnsupported: this package reads Linux's /proc, and
// other systems have no such files (darwin's equivalent, libproc, is for
// later).
func List(opts Options) (Result, error) {
	return Result{}, ErrUnsupported
}
