//go:build !race

package main

// raceEnabled tells TestMain to build the tcpkit binary with -race too.
const raceEnabled = false
