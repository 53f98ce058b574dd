package rawsys

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A Reserve is a file descriptor held back for the moment the process
// runs out of them (EMFILE, ENFILE). Given up for one accept(2), it lets
// a server take a waiting client only to close it at once and say why,
// rather than leave it in the backlog with no answer while the listener
// stays ready and the loop spins. Once the limit has been met, every call
// that opens descriptors on the loops is made under the Reserve's lock
// (Lock, Unlock), so that no other loop takes the number lent to the
// accept. Make it with NewReserve.
type Reserve struct {
	mu      sync.Mutex
	fd      int // -1 when none is held
	atLimit atomic.Bool
}

// NewReserve holds a descriptor back, if one is to be had.
func NewReserve() *Reserve {
	r := &Reserve{fd: -1}
	r.takeLocked()
	return r
}

func (r *Reserve) takeLocked() bool {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		r.fd = -1
		return false
	}
	r.fd = fd
	return true
}

// Lock is taken around a call that opens descriptors once the limit has
// been met; it reports whether it locked, for Unlock. Before that it
// costs one atomic load.
func (r *Reserve) Lock() bool {
	if !r.atLimit.Load() {
		return false
	}
	r.mu.Lock()
	return true
}

// Unlock undoes Lock.
func (r *Reserve) Unlock(locked bool) {
	if locked {
		r.mu.Unlock()
	}
}

// Shed gives the reserve up for accept, which takes its number, and takes
// it back after: accept must have closed what it accepted by then, or
// the reserve is lost. It reports false, without calling accept, when
// there is no reserve to give up.
func (r *Reserve) Shed(accept func()) bool {
	r.atLimit.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 && !r.takeLocked() {
		return false
	}
	unix.Close(r.fd)
	accept()
	r.takeLocked()
	return true
}

// Refill takes a reserve back if one was lost at the limit: called once a
// descriptor was closed, whose number it can take.
func (r *Reserve) Refill() {
	if !r.atLimit.Load() {
		return
	}
	r.mu.Lock()
	if r.fd < 0 {
		r.takeLocked()
	}
	r.mu.Unlock()
}

// Close lets the reserve go, for good.
func (r *Reserve) Close() {
	r.mu.Lock()
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	r.mu.Unlock()
}
