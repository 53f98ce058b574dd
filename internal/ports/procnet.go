package ports

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Parse reads the lines of /proc/net/tcp or /proc/net/tcp6 from r and
// returns one Socket per line, with no owner (PID and Command are empty:
// the table does not say; List finds them). The header line is skipped,
// and so are blank lines. A line that is not in the kernel's format is an
// error that names its line number. Parse makes no system calls.
func Parse(r io.Reader) ([]Socket, error) {
	return parse(r, binary.NativeEndian)
}

// parse is Parse with the byte order of the machine that wrote the table:
// the kernel prints each 32-bit word of an address as a number in its own
// byte order, so a table captured on a little-endian machine (the
// fixtures) reads the same everywhere only if the order is given.
func parse(r io.Reader, order binary.ByteOrder) ([]Socket, error) {
	sc := bufio.NewScanner(r)
	// The kernel pads every line to a fixed width (150 bytes for tcp6);
	// 64 KiB is room for far longer lines, and a bigger read buffer means
	// fewer read calls on a table of 10,000 lines.
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var socks []Socket
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		var f [maxFields][]byte
		nf := splitFields(line, f[:])
		if nf == 0 || (n == 1 && string(f[0]) == "sl") {
			continue // blank, or the header
		}
		s, err := parseLine(f[:nf], order)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		socks = append(socks, s)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than 64 KiB: this is not a /proc/net/tcp table", n+1)
		}
		return nil, err
	}
	return socks, nil
}

// The fields parseLine reads, by position in a line:
//
//	0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41234 1 ...
//	sl local        remote        st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode
const (
	fieldLocal  = 1
	fieldRemote = 2
	fieldState  = 3
	fieldQueues = 4
	fieldUID    = 7
	fieldInode  = 9
	minFields   = fieldInode + 1
	maxFields   = 20 // the kernel prints 12 to 17; the rest are not read
)

// splitFields splits line at runs of spaces into f, as strings.Fields
// does but without allocating, and returns how many it filled. Fields past
// len(f) are dropped.
func splitFields(line []byte, f [][]byte) int {
	n := 0
	for n < len(f) {
		line = bytes.TrimLeft(line, " \t")
		if len(line) == 0 {
			break
		}
		end := bytes.IndexAny(line, " \t")
		if end < 0 {
			end = len(line)
		}
		f[n], line = line[:end], line[end:]
		n++
	}
	return n
}

func parseLine(f [][]byte, order binary.ByteOrder) (Socket, error) {
	if len(f) < minFields {
		return Socket{}, fmt.Errorf("%d fields, want at least %d: this is not a /proc/net/tcp line", len(f), minFields)
	}
	var s Socket
	var err error
	if s.Local, err = parseAddrPort(f[fieldLocal], order); err != nil {
		return Socket{}, fmt.Errorf("local address %q: %w", f[fieldLocal], err)
	}
	if s.Remote, err = parseAddrPort(f[fieldRemote], order); err != nil {
		return Socket{}, fmt.Errorf("remote address %q: %w", f[fieldRemote], err)
	}
	if s.Local.Addr().Is4() != s.Remote.Addr().Is4() {
		return Socket{}, fmt.Errorf("local address %q and remote address %q are of different families", f[fieldLocal], f[fieldRemote])
	}
	s.Proto = "tcp"
	if s.Local.Addr().Is6() {
		s.Proto = "tcp6"
	}
	st, ok := parseHex(f[fieldState], 2)
	if !ok {
		return Socket{}, fmt.Errorf("state %q: want 2 hex digits", f[fieldState])
	}
	s.State = State(st)
	tx, rx, ok := bytes.Cut(f[fieldQueues], []byte{':'})
	sendQ, ok1 := parseHex(tx, 8)
	recvQ, ok2 := parseHex(rx, 8)
	if !ok || !ok1 || !ok2 {
		return Socket{}, fmt.Errorf("queues %q: want tx_queue:rx_queue, 8 hex digits each", f[fieldQueues])
	}
	s.SendQ, s.RecvQ = uint32(sendQ), uint32(recvQ)
	uid, ok := parseDec(f[fieldUID], 32)
	if !ok {
		return Socket{}, fmt.Errorf("uid %q: want a decimal number", f[fieldUID])
	}
	s.UID = uint32(uid)
	if s.Inode, ok = parseDec(f[fieldInode], 64); !ok {
		return Socket{}, fmt.Errorf("inode %q: want a decimal number", f[fieldInode])
	}
	return s, nil
}

// parseAddrPort reads "ADDR:PORT": ADDR is 8 hex digits (IPv4) or 32
// (IPv6), a sequence of 32-bit words each printed as a number in the
// kernel's byte order, so 127.0.0.1 is 0100007F on x86; PORT is 4 hex
// digits, a plain number.
func parseAddrPort(b []byte, order binary.ByteOrder) (netip.AddrPort, error) {
	a, p, ok := bytes.Cut(b, []byte{':'})
	if !ok {
		return netip.AddrPort{}, errors.New("want ADDR:PORT")
	}
	port, ok := parseHex(p, 4)
	if !ok {
		return netip.AddrPort{}, errors.New("port: want 4 hex digits")
	}
	var ip [16]byte
	if len(a) != 8 && len(a) != 32 {
		return netip.AddrPort{}, errors.New("address: want 8 hex digits (IPv4) or 32 (IPv6)")
	}
	for i := 0; i < len(a); i += 8 {
		w, ok := parseHex(a[i:i+8], 8)
		if !ok {
			return netip.AddrPort{}, errors.New("address: not hex")
		}
		order.PutUint32(ip[i/2:], uint32(w))
	}
	addr := netip.AddrFrom16(ip)
	if len(a) == 8 {
		addr = netip.AddrFrom4([4]byte(ip[:4]))
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// parseHex reads exactly digits hex digits (either case).
func parseHex(b []byte, digits int) (uint64, bool) {
	if len(b) != digits {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// parseDec reads a decimal number that fits in bits bits.
func parseDec(b []byte, bits uint) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false // overflows uint64
		}
		v = v*10 + d
	}
	if bits < 64 && v >= 1<<bits {
		return 0, false
	}
	return v, true
}
