package tcpkit

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// An Engine is the machinery a Server runs its connections on. Both run
// the same Events with the same semantics; they differ in cost and in
// what a callback may do.
//
// EngineStd gives each connection a goroutine, on the standard library's
// net package: a callback that blocks holds up only its own connection.
//
// EngineEpoll (Linux) runs a few event loops, one per core by default,
// each serving many connections straight from epoll: an idle connection
// costs no goroutine and no read buffer, and a busy one no scheduler hops.
// It serves TCP and Unix sockets, reads a Preamble from the loop, runs a
// Handshake (TLS) on a goroutine and the connection it returns on the
// loop, and runs the connections a Dialer opens on loops of its own.
// As in Node.js, the loop is the contract: callbacks run on a loop shared
// with other connections, so a callback that blocks (a database call, a
// sleep, a full pipe) stalls all of them. Hand slow work off with
// Conn.Offload, or to a goroutine of your own that calls Conn.Write.
type Engine uint8

const (
	// EngineAuto picks EngineEpoll where it can serve (TCP and Unix
	// sockets on Linux) and EngineStd elsewhere: on other systems, for a
	// listener that is neither (a wrapped one).
	EngineAuto Engine = iota
	// EngineStd serves each connection on a goroutine of its own.
	EngineStd
	// EngineEpoll serves connections on epoll event loops (Linux only).
	EngineEpoll
)

// String returns the name ParseEngine accepts.
func (e Engine) String() string {
	switch e {
	case EngineAuto:
		return "auto"
	case EngineStd:
		return "std"
	case EngineEpoll:
		return "epoll"
	}
	return fmt.Sprintf("Engine(%d)", uint8(e))
}

// ParseEngine returns the Engine named "auto", "std" or "epoll".
func ParseEngine(s string) (Engine, error) {
	for _, e := range []Engine{EngineAuto, EngineStd, EngineEpoll} {
		if s == e.String() {
			return e, nil
		}
	}
	return EngineAuto, fmt.Errorf("unknown engine %q: use auto, epoll or std", s)
}

// errNoEpoll says why EngineEpoll cannot serve a listener.
var errNoEpoll = errors.New("tcpkit: the epoll engine cannot serve this listener")

// EngineFor reports the engine Serve would run ln's connections on: the
// one Engine names, or for EngineAuto the one it picks. It returns an
// error if Engine is EngineEpoll and cannot serve ln.
func (s *Server) EngineFor(ln net.Listener) (Engine, error) {
	why := epollUnfit(ln)
	switch s.Engine {
	case EngineStd:
		return EngineStd, nil
	case EngineEpoll:
		if why != "" {
			return EngineEpoll, fmt.Errorf("%w: %s (the std engine can)", errNoEpoll, why)
		}
		return EngineEpoll, nil
	case EngineAuto:
		if why != "" {
			return EngineStd, nil
		}
		return EngineEpoll, nil
	}
	return s.Engine, fmt.Errorf("tcpkit: unknown %v", s.Engine)
}

// epollUnfit says why the epoll engine cannot serve ln, or "".
func epollUnfit(ln net.Listener) string {
	if !epollBuilt {
		return "it runs on Linux only, not " + runtime.GOOS
	}
	switch ln.(type) {
	case *net.TCPListener, *net.UnixListener:
		return ""
	}
	return fmt.Sprintf("it serves TCP and Unix socket listeners only, not %T", ln) // a wrapped listener
}

// loops is how many event loops the epoll engine runs: s.Loops, or one
// per core the Go scheduler may use.
func (s *Server) loopCount() int {
	if s.Loops > 0 {
		return s.Loops
	}
	return runtime.GOMAXPROCS(0)
}
