package bench

import (
	"fmt"
	"runtime"
)

// An FDLimitError says that a run needs more file descriptors than this
// process may open: past the limit every connect fails with EMFILE.
type FDLimitError struct {
	Conns int // the connections asked for
	Need  int // the descriptors the run needs, those already open included
	Limit int // RLIMIT_NOFILE
}

func (e *FDLimitError) Error() string {
	return fmt.Sprintf("%d connections need about %d file descriptors; the limit is %d (EMFILE past it)", e.Conns, e.Need, e.Limit)
}

// MaxConns is the most connections the limit leaves room for, at least 0.
func (e *FDLimitError) MaxConns() int { return max(e.Limit-(e.Need-e.Conns), 0) }

// fdSpare is what a run opens besides its connections: an epoll fd per
// loop, /proc files for the counters and the server's memory, and some
// slack for the runtime and the outputs.
func fdSpare() int { return runtime.GOMAXPROCS(0) + 8 }

// checkFDs returns an *FDLimitError when cfg's connections do not fit
// under the limit on open files, where there is one.
func checkFDs(cfg *Config) error {
	limit, open, ok := fdLimit()
	if !ok {
		return nil
	}
	if need := open + cfg.conns() + fdSpare(); need > limit {
		return &FDLimitError{Conns: cfg.conns(), Need: need, Limit: limit}
	}
	return nil
}

// OpenFileLimit returns the limit on open files (RLIMIT_NOFILE), or 0
// where none is known.
func OpenFileLimit() int {
	limit, _, ok := fdLimit()
	if !ok {
		return 0
	}
	return limit
}
