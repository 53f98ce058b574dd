//go:build !linux

package bench

// Elsewhere pingpong always runs a goroutine per connection.
func (r *runner) epollLoops() bool { return false }

func (r *runner) pingpongLoop(l, loops int) { r.goroutineWorkers(l, loops) }
