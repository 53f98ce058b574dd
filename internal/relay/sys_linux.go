package relay

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The splice path's system calls that x/sys/unix makes through
// syscall.Syscall, made raw here, as internal/rawsys makes the epoll
// engine's: none blocks on a nonblocking socket. connect(2) matters
// most: on loopback it does the handshake's work inline, tens of
// microseconds, and a thread that long in a system call the runtime
// knows of gets its P taken away by sysmon, which then, having found
// work, keeps waking every 20 µs on the relay's core (perf showed the
// relay's context switches at five times HAProxy's).

// A rawAddr is a socket address in the kernel's layout, for connect.
type rawAddr struct {
	buf [unsafe.Sizeof(unix.RawSockaddrUnix{})]byte
	n   uintptr
}

// newRawAddr lays out sa: an IPv4, IPv6 or Unix socket address.
func newRawAddr(sa unix.Sockaddr) *rawAddr {
	a := new(rawAddr)
	p := unsafe.Pointer(&a.buf[0])
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		r := (*unix.RawSockaddrInet4)(p)
		r.Family = unix.AF_INET
		r.Port = htons(sa.Port)
		r.Addr = sa.Addr
		a.n = unix.SizeofSockaddrInet4
	case *unix.SockaddrInet6:
		r := (*unix.RawSockaddrInet6)(p)
		r.Family = unix.AF_INET6
		r.Port = htons(sa.Port)
		r.Addr = sa.Addr
		a.n = unix.SizeofSockaddrInet6
	case *unix.SockaddrUnix:
		r := (*unix.RawSockaddrUnix)(p)
		r.Family = unix.AF_UNIX
		for i := 0; i < len(sa.Name) && i < len(r.Path)-1; i++ {
			r.Path[i] = int8(sa.Name[i])
		}
		a.n = uintptr(2 + len(sa.Name) + 1) // the path and its NUL
	}
	return a
}

// htons puts a port in network byte order, as the raw address holds it.
func htons(port int) uint16 {
	b := [2]byte{byte(port >> 8), byte(port)}
	return *(*uint16)(unsafe.Pointer(&b[0]))
}

// rawConnect is connect(2) of the nonblocking socket fd to a.
func rawConnect(fd int, a *rawAddr) syscall.Errno {
	_, _, e := syscall.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&a.buf[0])), a.n)
	return e
}

// rawSetsockoptInt is setsockopt(2) of an int option.
func rawSetsockoptInt(fd, level, opt, value int) syscall.Errno {
	v := int32(value)
	_, _, e := syscall.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), 4, 0)
	return e
}

// rawLingerZero sets SO_LINGER with a zero timeout: the close that
// follows sends a RST.
func rawLingerZero(fd int) {
	l := unix.Linger{Onoff: 1, Linger: 0}
	syscall.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
}
