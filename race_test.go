//go:build race

package tcpkit

// raceEnabled says the race detector is on: memory figures mean nothing
// then (it shadows every allocation), so tests only report them.
const raceEnabled = true
