package watch

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync/atomic"
	"time"
)

// Errors of OpenFile and of reading a file.
var (
	ErrNotCapture = errors.New("watch: not a pcap or pcapng file")
	ErrCutShort   = errors.New("watch: the file ends in the middle of a packet")
)

// maxFrame is the largest frame a capture file may hold: a loopback
// packet is at most 64 KiB, an offloaded one little more, and tcpdump
// keeps at most 256 KiB. A larger length is a damaged file, and is never
// allocated.
const maxFrame = 1 << 20

// pcapSnaplen is the snap length of the pcap files Run writes.
const pcapSnaplen = 256 << 10

// The first four bytes of each kind of file.
const (
	pcapMicro  = 0xa1b2c3d4
	pcapNano   = 0xa1b23c4d
	pcapngSHB  = 0x0a0d0d0a // also the section header block's type
	pcapngBOM  = 0x1a2b3c4d // a section's byte-order magic
	pcapngIDB  = 1
	pcapngPB   = 2 // the obsolete packet block
	pcapngSPB  = 3
	pcapngEPB  = 6
	tsresolOpt = 9
)

// OpenFile reads a capture file, pcap (tcpdump -w, tshark -F pcap) or
// pcapng (tshark -w, Wireshark), as a Source. A damaged file is
// ErrNotCapture; a pcap file of a link type Decode does not know is
// ErrLinkType.
func OpenFile(r io.Reader) (Source, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, ErrNotCapture
	}
	if binary.LittleEndian.Uint32(magic) == pcapngSHB {
		return &ngSource{r: br}, nil
	}
	var hdr [24]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, ErrNotCapture
	}
	s := &pcapSource{r: br}
	switch {
	case binary.LittleEndian.Uint32(hdr[:]) == pcapMicro:
		s.order, s.nano = binary.LittleEndian, false
	case binary.LittleEndian.Uint32(hdr[:]) == pcapNano:
		s.order, s.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(hdr[:]) == pcapMicro:
		s.order, s.nano = binary.BigEndian, false
	case binary.BigEndian.Uint32(hdr[:]) == pcapNano:
		s.order, s.nano = binary.BigEndian, true
	default:
		return nil, ErrNotCapture
	}
	if s.order.Uint16(hdr[4:]) != 2 {
		return nil, fmt.Errorf("%w: pcap version %d", ErrNotCapture, s.order.Uint16(hdr[4:]))
	}
	s.link = LinkType(s.order.Uint32(hdr[20:]) & 0xffff) // the bits above are FCS flags
	if !s.link.Known() {
		return nil, fmt.Errorf("%w %d", ErrLinkType, s.link)
	}
	return s, nil
}

// readFull reads len(b) bytes: io.EOF before the first, ErrCutShort
// after it.
func readFull(r io.Reader, b []byte) error {
	n, err := io.ReadFull(r, b)
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ErrCutShort
	}
	return err
}

// closed makes a file Source end at Close: Run closes its Source when its
// context ends.
type closed struct{ atomic.Bool }

// Close makes the next Next return io.EOF. It does not close the file.
func (c *closed) Close() error {
	c.Store(true)
	return nil
}

type pcapSource struct {
	closed
	r     *bufio.Reader
	order binary.ByteOrder
	nano  bool
	link  LinkType
	buf   []byte
}

func (s *pcapSource) Next() (Frame, error) {
	if s.Load() {
		return Frame{}, io.EOF
	}
	var h [16]byte
	if err := readFull(s.r, h[:]); err != nil {
		return Frame{}, err
	}
	sec, frac := int64(s.order.Uint32(h[0:])), int64(s.order.Uint32(h[4:]))
	caplen, orig := s.order.Uint32(h[8:]), s.order.Uint32(h[12:])
	if caplen > maxFrame {
		return Frame{}, fmt.Errorf("%w: a packet of %d bytes", ErrNotCapture, caplen)
	}
	if !s.nano {
		frac *= 1000
	}
	s.buf = grow(s.buf, int(caplen))
	if err := readFull(s.r, s.buf); err != nil {
		return Frame{}, cutShort(err)
	}
	return Frame{Time: time.Unix(sec, frac), Link: s.link, Data: s.buf, OrigLen: int(orig)}, nil
}

// cutShort is err, with the end of the file in the middle of a packet
// said as ErrCutShort.
func cutShort(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrCutShort
	}
	return err
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// ngSource reads pcapng: sections of blocks, each interface with its
// link type and time resolution.
type ngSource struct {
	closed
	r      *bufio.Reader
	order  binary.ByteOrder
	ifaces []ngIface
	body   []byte
}

type ngIface struct {
	link    LinkType
	snaplen uint32
	resol   byte // if_tsresol: 10^-n seconds, or 2^-n with the top bit set
}

func (s *ngSource) Next() (Frame, error) {
	for {
		if s.Load() {
			return Frame{}, io.EOF
		}
		typ, body, err := s.block()
		if err != nil {
			return Frame{}, err
		}
		switch typ {
		case pcapngIDB:
			if len(body) < 8 {
				return Frame{}, fmt.Errorf("%w: an interface block of %d bytes", ErrNotCapture, len(body))
			}
			ifc := ngIface{link: LinkType(s.order.Uint16(body)), snaplen: s.order.Uint32(body[4:]), resol: 6}
			for opts := body[8:]; len(opts) >= 4; {
				code, n := s.order.Uint16(opts), int(s.order.Uint16(opts[2:]))
				if code == 0 || 4+n > len(opts) {
					break
				}
				if code == tsresolOpt && n >= 1 {
					ifc.resol = opts[4]
				}
				opts = opts[min(4+(n+3)&^3, len(opts)):]
			}
			s.ifaces = append(s.ifaces, ifc)
		case pcapngEPB, pcapngPB:
			if len(body) < 20 {
				return Frame{}, fmt.Errorf("%w: a packet block of %d bytes", ErrNotCapture, len(body))
			}
			id := s.order.Uint32(body)
			if typ == pcapngPB {
				id = uint32(s.order.Uint16(body))
			}
			caplen, orig := s.order.Uint32(body[12:]), s.order.Uint32(body[16:])
			if id >= uint32(len(s.ifaces)) || caplen > uint32(len(body)-20) {
				return Frame{}, fmt.Errorf("%w: a packet block of interface %d, %d bytes in %d", ErrNotCapture, id, caplen, len(body)-20)
			}
			ifc := s.ifaces[id]
			ts := uint64(s.order.Uint32(body[4:]))<<32 | uint64(s.order.Uint32(body[8:]))
			return Frame{Time: ifc.time(ts), Link: ifc.link, Data: body[20 : 20+caplen], OrigLen: int(orig)}, nil
		case pcapngSPB:
			if len(s.ifaces) == 0 || len(body) < 4 {
				return Frame{}, fmt.Errorf("%w: a simple packet block before any interface", ErrNotCapture)
			}
			orig := s.order.Uint32(body)
			n := min(uint64(orig), uint64(len(body)-4))
			if sl := s.ifaces[0].snaplen; sl != 0 {
				n = min(n, uint64(sl))
			}
			return Frame{Link: s.ifaces[0].link, Data: body[4 : 4+n], OrigLen: int(orig)}, nil
		}
	}
}

// block reads the next block; a section header block is handled here.
func (s *ngSource) block() (typ uint32, body []byte, err error) {
	var h [8]byte
	if err := readFull(s.r, h[:]); err != nil {
		return 0, nil, err
	}
	if binary.LittleEndian.Uint32(h[:]) == pcapngSHB {
		var bom [4]byte
		if err := readFull(s.r, bom[:]); err != nil {
			return 0, nil, cutShort(err)
		}
		switch uint32(pcapngBOM) {
		case binary.LittleEndian.Uint32(bom[:]):
			s.order = binary.LittleEndian
		case binary.BigEndian.Uint32(bom[:]):
			s.order = binary.BigEndian
		default:
			return 0, nil, fmt.Errorf("%w: a section without its byte-order magic", ErrNotCapture)
		}
		s.ifaces = s.ifaces[:0] // a new section has its own interfaces
		total := s.order.Uint32(h[4:])
		if total < 28 || total%4 != 0 || total > maxFrame {
			return 0, nil, fmt.Errorf("%w: a section header of %d bytes", ErrNotCapture, total)
		}
		if _, err := s.r.Discard(int(total) - 12); err != nil {
			return 0, nil, cutShort(err)
		}
		return pcapngSHB, nil, nil
	}
	if s.order == nil {
		return 0, nil, ErrNotCapture
	}
	typ, total := s.order.Uint32(h[:]), s.order.Uint32(h[4:])
	if total < 12 || total%4 != 0 || total > maxFrame+64 {
		return 0, nil, fmt.Errorf("%w: a block of %d bytes", ErrNotCapture, total)
	}
	s.body = grow(s.body, int(total)-8) // the body and the length again
	if err := readFull(s.r, s.body); err != nil {
		return 0, nil, cutShort(err)
	}
	return typ, s.body[:total-12], nil
}

// time turns a timestamp in the interface's resolution into a time.
func (ifc ngIface) time(ts uint64) time.Time {
	n := uint(ifc.resol & 0x7f)
	if ifc.resol&0x80 != 0 { // 2^-n seconds
		if n >= 64 {
			return time.Unix(0, 0)
		}
		sec, frac := ts>>n, ts&(1<<n-1)
		hi, lo := bits.Mul64(frac, 1e9)
		nanos := lo >> n
		if n > 0 {
			nanos |= hi << (64 - n)
		}
		return time.Unix(int64(sec), int64(nanos))
	}
	unit := uint64(1)
	for range min(n, 19) {
		unit *= 10
	}
	sec, frac := ts/unit, ts%unit
	switch {
	case n <= 9:
		for range 9 - n {
			frac *= 10
		}
	default:
		for range min(n, 19) - 9 {
			frac /= 10
		}
	}
	return time.Unix(int64(sec), int64(frac))
}

// A pcapWriter writes segments as raw IP packets in a pcap file with
// nanosecond timestamps.
type pcapWriter struct {
	bw  *bufio.Writer
	hdr [16]byte
}

func newPcapWriter(w io.Writer) (*pcapWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], pcapNano)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], pcapSnaplen)
	binary.LittleEndian.PutUint32(h[20:], uint32(LinkRaw))
	if _, err := bw.Write(h[:]); err != nil {
		return nil, err
	}
	return &pcapWriter{bw: bw}, nil
}

// write writes seg's IP packet, captured in frame f.
func (p *pcapWriter) write(seg Segment, f Frame) error {
	pkt := seg.Packet[:min(len(seg.Packet), pcapSnaplen)]
	orig := len(seg.Packet)
	if f.OrigLen > len(f.Data) { // the capture cut the frame: keep its real length
		orig = f.OrigLen - (len(f.Data) - len(seg.Packet))
	}
	h := p.hdr[:]
	binary.LittleEndian.PutUint32(h[0:], uint32(seg.Time.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(seg.Time.Nanosecond()))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(pkt)))
	binary.LittleEndian.PutUint32(h[12:], uint32(orig))
	if _, err := p.bw.Write(h); err != nil {
		return err
	}
	_, err := p.bw.Write(pkt)
	return err
}

func (p *pcapWriter) flush() error { return p.bw.Flush() }
