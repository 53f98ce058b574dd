package proxy

import (
	"testing"

	"go.uber.org/goleak"
)

// No test may leave a goroutine behind: a Handshake that returned has
// nothing left reading its connection.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
