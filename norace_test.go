//go:build !race

package tcpkit

const raceEnabled = false
