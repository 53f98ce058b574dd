//go:build !unix

package main

import "testing"

// fullBacklog needs a socket whose backlog can be filled, made with
// Unix's socket calls: elsewhere the tests that use it skip.
func fullBacklog(t testing.TB) int {
	t.Helper()
	t.Skip("needs a listener with a full backlog, made with Unix socket calls")
	return 0
}
