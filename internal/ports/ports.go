// Package ports lists the TCP sockets of this machine, listeners and
// connections, IPv4 and IPv6, with the process that holds each: what
// "lsof -i -P" and "ss -tanp" show. It backs "tcpkit ports".
//
// On Linux it reads /proc/net/tcp and /proc/net/tcp6 for the sockets and
// /proc/PID/fd for their owners. Elsewhere List returns ErrUnsupported.
package ports

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
)

// ErrUnsupported is returned by List on systems other than Linux.
var ErrUnsupported = errors.New("ports: listing sockets is supported on Linux only")

// A Socket is one line of the kernel's TCP table and, where it could be
// read, the process that holds it.
type Socket struct {
	Proto  string         // "tcp" or "tcp6"; a tcp6 socket may carry IPv4-mapped addresses (::ffff:a.b.c.d)
	Local  netip.AddrPort // a listener on every interface is 0.0.0.0 or ::
	Remote netip.AddrPort // zero address and port 0 for a listener
	State  State
	SendQ  uint32 // bytes sent and not yet acknowledged by the peer
	RecvQ  uint32 // bytes received and not yet read; for a listener, connections waiting for accept
	UID    uint32 // the user that created the socket
	// Inode identifies the socket in /proc/PID/fd. It is 0 for sockets
	// no process holds any more: those in TIME_WAIT, and those closed by
	// their process before the connection finished closing (FIN_WAIT2,
	// LAST_ACK, ...).
	Inode uint64
	// PID and Command are the process that holds the socket, the one with
	// the lowest PID if several share it (a forking server's listener).
	// PID is 0 and Command empty where no owner was found: the socket has
	// none (Inode 0), or it belongs to a process whose /proc/PID/fd this
	// process may not read (another user's, without root).
	PID     int
	Command string // the process name from /proc/PID/comm, at most 15 bytes
}

// State is a TCP state as the kernel numbers it (include/net/tcp_states.h).
type State uint8

// The states of RFC 793, in the kernel's numbering. Listeners are LISTEN;
// the side that closes first goes through FIN_WAIT1, FIN_WAIT2 and
// TIME_WAIT, the other through CLOSE_WAIT and LAST_ACK.
const (
	Established State = 0x01
	SynSent     State = 0x02
	SynRecv     State = 0x03
	FinWait1    State = 0x04
	FinWait2    State = 0x05
	TimeWait    State = 0x06
	Close       State = 0x07
	CloseWait   State = 0x08
	LastAck     State = 0x09
	Listen      State = 0x0A
	Closing     State = 0x0B
)

var stateNames = [...]string{
	Established: "ESTABLISHED",
	SynSent:     "SYN_SENT",
	SynRecv:     "SYN_RECV",
	FinWait1:    "FIN_WAIT1",
	FinWait2:    "FIN_WAIT2",
	TimeWait:    "TIME_WAIT",
	Close:       "CLOSE",
	CloseWait:   "CLOSE_WAIT",
	LastAck:     "LAST_ACK",
	Listen:      "LISTEN",
	Closing:     "CLOSING",
}

// String returns the state's name as netstat and ss print it, such as
// "ESTABLISHED", or "STATE(0x0D)" for a number this package does not know.
func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE(0x%02X)", uint8(s))
}

// Options select the sockets List returns. The zero Options select all.
type Options struct {
	// Port keeps only the sockets whose local or remote port is Port.
	// Zero keeps every port.
	Port uint16
	// Listen keeps only listeners (state LISTEN).
	Listen bool
}

func (o Options) match(s *Socket) bool {
	if o.Listen && s.State != Listen {
		return false
	}
	return o.Port == 0 || s.Local.Port() == o.Port || s.Remote.Port() == o.Port
}

// A Result is what List found.
type Result struct {
	// Sockets are sorted listeners first, then by local port, protocol,
	// local address and remote address.
	Sockets []Socket
	// Hidden counts the sockets held by a process (Inode not 0) whose
	// owner was not found: they belong to processes whose /proc/PID/fd
	// could not be read, which for a user other than root means other
	// users' processes.
	Hidden int
	// Unreadable counts the processes whose open files could not be read
	// (permission denied).
	Unreadable int
}

// env is the file system access List needs, as functions so that tests
// can serve fixtures instead of /proc.
type env struct {
	open     func(name string) (io.ReadCloser, error)
	readDir  func(name string) ([]string, error) // entry names, unsorted is fine
	readlink func(name string) (string, error)
	readFile func(name string) ([]byte, error)
}

// sortSockets puts listeners first, then orders by local port and, for a
// stable order, protocol and addresses.
func sortSockets(socks []Socket) {
	slices.SortFunc(socks, func(a, b Socket) int {
		if al, bl := a.State == Listen, b.State == Listen; al != bl {
			if al {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(a.Local.Port(), b.Local.Port()),
			cmp.Compare(a.Proto, b.Proto),
			a.Local.Compare(b.Local),
			a.Remote.Compare(b.Remote),
		)
	})
}
