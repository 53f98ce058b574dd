//go:build !unix

package tcpkit

// lingerZero does nothing where the socket options are not unix's: Reset
// closes as Close does there.
func lingerZero(fd uintptr) {}
