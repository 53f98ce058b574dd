package watch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Errors of OpenFile and of reading a file.
var (
	ErrNotCapture = errors.New("watch: not a pcap or pcapng file")
	ErrCutShort   = errors.New("watch: the file ends in the middle of a packet")
)

// pcapSnaplen is the longest packet a pcap file of Run's may hold: a
// loopback segment is at most 64 KiB.
const pcapSnaplen = 256 << 10

// OpenFile reads a capture file, pcap (tcpdump -w) or pcapng (tshark -w,
// Wireshark), as a Source. A file of a link type Decode does not know is
// ErrLinkType.
func OpenFile(r io.Reader) (Source, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, ErrNotCapture
	}
	if string(magic) == "\x0a\x0d\x0d\x0a" {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotCapture, err)
		}
		if l := LinkType(ng.LinkType()); !l.Known() {
			return nil, fmt.Errorf("%w %d", ErrLinkType, l)
		}
		return &fileSource{read: ng.ReadPacketData, link: func(ci gopacket.CaptureInfo) LinkType {
			ifc, err := ng.Interface(ci.InterfaceIndex)
			if err != nil {
				return LinkType(ng.LinkType())
			}
			return LinkType(ifc.LinkType)
		}}, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCapture, err)
	}
	l := LinkType(pr.LinkType())
	if !l.Known() {
		return nil, fmt.Errorf("%w %d", ErrLinkType, l)
	}
	return &fileSource{read: pr.ReadPacketData, link: func(gopacket.CaptureInfo) LinkType { return l }}, nil
}

type fileSource struct {
	read   func() ([]byte, gopacket.CaptureInfo, error)
	link   func(gopacket.CaptureInfo) LinkType
	closed atomic.Bool
}

func (s *fileSource) Next() (Frame, error) {
	if s.closed.Load() {
		return Frame{}, io.EOF
	}
	data, ci, err := s.read()
	switch {
	case errors.Is(err, io.EOF):
		return Frame{}, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Frame{}, ErrCutShort
	case err != nil:
		return Frame{}, fmt.Errorf("%w: %v", ErrNotCapture, err)
	}
	return Frame{Time: ci.Timestamp, Link: s.link(ci), Data: data, OrigLen: ci.Length}, nil
}

// Close makes the next Next return io.EOF. It does not close the file.
func (s *fileSource) Close() error {
	s.closed.Store(true)
	return nil
}

// A pcapWriter writes segments as raw IP packets in a pcap file with
// nanosecond timestamps.
type pcapWriter struct {
	bw *bufio.Writer
	w  *pcapgo.Writer
}

func newPcapWriter(w io.Writer) (*pcapWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(pcapSnaplen, layers.LinkTypeRaw); err != nil {
		return nil, err
	}
	return &pcapWriter{bw: bw, w: pw}, nil
}

// write writes seg's IP packet, captured in frame f.
func (p *pcapWriter) write(seg Segment, f Frame) error {
	pkt := seg.Packet[:min(len(seg.Packet), pcapSnaplen)]
	orig := len(seg.Packet)
	if f.OrigLen > len(f.Data) { // the capture cut the frame: keep its real length
		orig = f.OrigLen - (len(f.Data) - len(seg.Packet))
	}
	return p.w.WritePacket(gopacket.CaptureInfo{Timestamp: seg.Time, CaptureLength: len(pkt), Length: orig}, pkt)
}

func (p *pcapWriter) flush() error { return p.bw.Flush() }
