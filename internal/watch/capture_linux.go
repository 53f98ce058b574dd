package watch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Live is a capture of one interface's TCP segments to or from one port,
// with an AF_PACKET socket: no libpcap. It needs root or CAP_NET_RAW.
type Live struct {
	f        *os.File
	rc       syscall.RawConn
	ifindex  int
	loopback bool
	buf, oob []byte
	close    sync.Once
	// drainUntil is zero, or since Drain the UnixNano time at which Next
	// stops draining.
	drainUntil atomic.Int64
	drops      atomic.Uint64 // counted by Drops
}

// liveSnaplen is the most of a packet Live keeps: a loopback packet is
// at most 64 KiB, and an offloaded one on another interface little more.
const liveSnaplen = 256 << 10

// OpenLive starts capturing the TCP segments to or from port on the
// interface iface. The kernel drops the other packets before they reach
// the socket.
func OpenLive(iface string, port uint16) (*Live, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrNoInterface, iface)
	}
	// SOCK_DGRAM: the kernel strips the link header, so every frame
	// starts with its IP header whatever the interface.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return nil, ErrPermission
	}
	if err != nil {
		return nil, fmt.Errorf("watch: packet socket: %w", err)
	}
	fail := func(what string, err error) (*Live, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("watch: %s: %w", what, err)
	}
	loopback := ifi.Flags&net.FlagLoopback != 0
	if err := attachPortFilter(fd, port, loopback); err != nil {
		return fail("filter", err)
	}
	// A large buffer rides out a burst while the ladder is drawn; as
	// root it may pass net.core.rmem_max.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("timestamps", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind to "+iface, err)
	}
	f := os.NewFile(uintptr(fd), "packet socket on "+iface)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Live{
		f: f, rc: rc, ifindex: ifi.Index, loopback: loopback,
		buf: make([]byte, liveSnaplen), oob: make([]byte, 64),
	}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// drainFor bounds Drain on a port that stays busy.
const drainFor = time.Second

// Next waits for the next segment. Its Data is valid until the next call.
func (l *Live) Next() (Frame, error) {
	for {
		var n, oobn, flags int
		var from unix.Sockaddr
		var rerr error
		recv := func(fd uintptr) bool {
			n, oobn, flags, from, rerr = unix.Recvmsg(int(fd), l.buf, l.oob, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		}
		var err error
		if until := l.drainUntil.Load(); until != 0 {
			// Draining: what the socket holds, without waiting for more.
			if time.Now().UnixNano() > until {
				return Frame{}, io.EOF
			}
			err = l.rc.Control(func(fd uintptr) { recv(fd) })
			if err == nil && rerr == unix.EAGAIN {
				return Frame{}, io.EOF
			}
		} else if err = l.rc.Read(recv); errors.Is(err, os.ErrDeadlineExceeded) {
			continue // Drain woke this wait
		}
		if err != nil {
			return Frame{}, err // closed
		}
		if rerr != nil {
			return Frame{}, fmt.Errorf("watch: reading the packet socket: %w", rerr)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Ifindex != l.ifindex {
			continue // from before the bind
		}
		// On loopback every packet passes twice, going out and coming in:
		// keep it once, as tcpdump does.
		if l.loopback && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if ll.Protocol != htons(unix.ETH_P_IP) && ll.Protocol != htons(unix.ETH_P_IPV6) {
			continue
		}
		f := Frame{Time: stamp(l.oob[:oobn]), Link: LinkRaw, Data: l.buf[:min(n, len(l.buf))]}
		if flags&unix.MSG_TRUNC != 0 {
			f.OrigLen = n
		}
		return f, nil
	}
}

// stamp is the kernel's receive time from the control message, or now.
func stamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SO_TIMESTAMPNS {
				continue
			}
			switch len(m.Data) { // struct timespec: two longs
			case 16:
				return time.Unix(int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:])))
			case 8:
				return time.Unix(int64(int32(binary.NativeEndian.Uint32(m.Data))), int64(int32(binary.NativeEndian.Uint32(m.Data[4:]))))
			}
		}
	}
	return time.Now()
}

// Drops is how many packets the kernel dropped because Live did not read
// them fast enough, since it started; after Close, until Close.
func (l *Live) Drops() uint64 {
	l.rc.Control(func(fd uintptr) { // fails once closed: then drops is final
		// The kernel resets its counters each time they are read.
		if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			l.drops.Add(uint64(st.Drops))
		}
	})
	return l.drops.Load()
}

// Drain makes Next return io.EOF once it has given the packets the
// kernel holds for it, or after a second on a port that stays busy.
func (l *Live) Drain() {
	l.drainUntil.Store(time.Now().Add(drainFor).UnixNano())
	l.f.SetReadDeadline(time.Now()) // wakes a Next that waits
}

// Close stops the capture; a Next in progress returns.
func (l *Live) Close() error {
	var err error
	l.close.Do(func() {
		l.Drops()
		err = l.f.Close()
	})
	return err
}

// skfPktType is where a classic BPF program loads the packet's type
// from (SKF_AD_OFF + SKF_AD_PKTTYPE in linux/filter.h).
const skfPktType = 0xfffff000 + 4

// attachPortFilter makes the kernel pass the socket only TCP segments to
// or from port, in IPv4 or in IPv6 without extension headers: the rest of
// the interface's traffic never wakes the capture. On loopback it also
// drops the outgoing copy of each packet, which arrives again. The
// program reads the IP header, where a SOCK_DGRAM packet socket's data
// starts.
func attachPortFilter(fd int, port uint16, loopback bool) error {
	const (
		accept = 19
		drop   = 20
	)
	p := uint32(port)
	var outgoing []unix.SockFilter
	if loopback { // jumps are relative: these two shift nothing below
		outgoing = []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfPktType},
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.PACKET_OUTGOING, Jt: drop},
		}
	}
	// jump builds a conditional jump at index i to the indexes t and f.
	jump := func(i int, op uint16, k uint32, t, f int) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, Jt: uint8(t - i - 1), Jf: uint8(f - i - 1), K: k}
	}
	ld := func(size uint16, k uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | size | unix.BPF_ABS, K: k}
	}
	ldInd := func(size uint16, k uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | size | unix.BPF_IND, K: k}
	}
	prog := []unix.SockFilter{
		0:      ld(unix.BPF_B, 0), // the IP version
		1:      {Code: unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K, K: 4},
		2:      jump(2, unix.BPF_JEQ, 4, 3, 12),
		3:      ld(unix.BPF_B, 9), // IPv4: the protocol
		4:      jump(4, unix.BPF_JEQ, 6, 5, drop),
		5:      ld(unix.BPF_H, 6), // a fragment after the first has no TCP header
		6:      jump(6, unix.BPF_JSET, 0x1fff, drop, 7),
		7:      {Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 0}, // X = the IPv4 header's length
		8:      ldInd(unix.BPF_H, 0),                                   // source port
		9:      jump(9, unix.BPF_JEQ, p, accept, 10),
		10:     ldInd(unix.BPF_H, 2), // destination port
		11:     jump(11, unix.BPF_JEQ, p, accept, drop),
		12:     jump(12, unix.BPF_JEQ, 6, 13, drop),
		13:     ld(unix.BPF_B, 6), // IPv6: the next header
		14:     jump(14, unix.BPF_JEQ, 6, 15, drop),
		15:     ld(unix.BPF_H, 40),
		16:     jump(16, unix.BPF_JEQ, p, accept, 17),
		17:     ld(unix.BPF_H, 42),
		18:     jump(18, unix.BPF_JEQ, p, accept, drop),
		accept: {Code: unix.BPF_RET | unix.BPF_K, K: liveSnaplen},
		drop:   {Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	prog = append(outgoing, prog...)
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}
