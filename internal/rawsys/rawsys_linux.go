// Package rawsys makes the system calls of a nonblocking socket's hot
// path raw, without telling the Go scheduler: on nonblocking sockets none
// of them blocks, and at hundreds of thousands of calls a second the
// scheduler's bookkeeping around each costs more than some of the calls
// themselves. A call that may sleep (a blocking epoll_wait) must not be
// made here. Errors come back as the errno, 0 for none, so that the
// common EAGAIN allocates nothing and compares as a number.
package rawsys

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read is read(2).
func Read(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// Write is write(2). Go programs ignore SIGPIPE on sockets: a write to a
// reset or shut connection fails with EPIPE instead.
func Write(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// EpollPoll is epoll_wait with a zero timeout: it returns at once.
func EpollPoll(epfd int, events []unix.EpollEvent) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// EpollCtl is epoll_ctl(2) for fd. The event's data is the fd and tag
// (EpollEvent's Fd and Pad), for the caller to tell its fds apart by.
func EpollCtl(epfd, op, fd int, events uint32, tag int32) syscall.Errno {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: tag}
	_, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	return e
}

// Accept accepts a connection from the listening socket lfd, nonblocking
// and close-on-exec, and reads the peer's address without an allocation
// or the getsockopt(SO_PROTOCOL) that unix.Accept4 makes per call.
func Accept(lfd int) (int, netip.AddrPort, syscall.Errno) {
	var rsa unix.RawSockaddrAny
	size := uint32(unix.SizeofSockaddrAny)
	fd, _, e := syscall.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&size)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(fd), addrPort(&rsa), 0
}

// Close is close(2); on a socket without SO_LINGER it does not block.
func Close(fd int) {
	syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
}

// Shutdown is shutdown(2).
func Shutdown(fd, how int) syscall.Errno {
	_, _, e := syscall.RawSyscall(syscall.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return e
}

// addrPort reads an IPv4 or IPv6 socket address.
func addrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		ip := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
				ip = ip.WithZone(ifi.Name)
			}
		}
		return netip.AddrPortFrom(ip, uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}
