package watch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// A pcap written by Run's writer reads back: the same packets, times and
// link type.
func TestPcapRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	pw, err := newPcapWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	pkts := [][]byte{
		packet(cli4, srv4, 1, 0, SYN, 512, nil),
		packet(cli6, srv6, 2, 3, PSH|ACK, 512, []byte("testing~")),
	}
	for i, p := range pkts {
		s, err := Decode(LinkRaw, p)
		if err != nil {
			t.Fatal(err)
		}
		s.Time = t0.Add(time.Duration(i) * time.Microsecond)
		if err := pw.write(s, Frame{Data: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.flush(); err != nil {
		t.Fatal(err)
	}
	src, err := OpenFile(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range pkts {
		f, err := src.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if f.Link != LinkRaw || !bytes.Equal(f.Data, want) || !f.Time.Equal(t0.Add(time.Duration(i)*time.Microsecond)) {
			t.Errorf("packet %d: link %d, time %v, % x; want raw, %v, % x", i, f.Link, f.Time, f.Data, t0, want)
		}
	}
	if _, err := src.Next(); err != io.EOF {
		t.Errorf("after the last packet: %v, want EOF", err)
	}
}

// FuzzOpenFile reads any bytes as a capture file: no panic, and no
// endless loop, whatever the file says.
func FuzzOpenFile(f *testing.F) {
	for _, name := range []string{"../../testdata/watch/seed.pcap", "../../testdata/watch/epipe.pcap"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src, err := OpenFile(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrNotCapture) && !errors.Is(err, ErrLinkType) {
				t.Fatalf("OpenFile: %v, want ErrNotCapture or ErrLinkType", err)
			}
			return
		}
		for range len(b) + 1 { // each frame takes at least a byte of the file
			fr, err := src.Next()
			if err != nil {
				return
			}
			Decode(fr.Link, fr.Data)
		}
		t.Fatalf("more frames than bytes in a %d-byte file", len(b))
	})
}

// order is a byte order that also appends.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// ngFile builds a pcapng file in byte order o from blocks of (type, body).
func ngFile(o order, blocks ...[]any) []byte {
	var b []byte
	block := func(typ uint32, body []byte) {
		body = append(body, make([]byte, (4-len(body)%4)%4)...)
		total := uint32(12 + len(body))
		b = o.AppendUint32(b, typ)
		b = o.AppendUint32(b, total)
		b = append(b, body...)
		b = o.AppendUint32(b, total)
	}
	for _, bl := range blocks {
		block(bl[0].(uint32), bl[1].([]byte))
	}
	return b
}

func shb(o order) []any {
	body := o.AppendUint32(nil, pcapngBOM)
	body = o.AppendUint16(body, 1)
	body = o.AppendUint16(body, 0)
	body = o.AppendUint64(body, ^uint64(0)) // section length unknown
	return []any{uint32(pcapngSHB), body}
}

func idb(o order, link LinkType, resol byte) []any {
	body := o.AppendUint16(nil, uint16(link))
	body = o.AppendUint16(body, 0)
	body = o.AppendUint32(body, 0)
	if resol != 0 {
		body = o.AppendUint16(body, tsresolOpt)
		body = o.AppendUint16(body, 1)
		body = append(body, resol, 0, 0, 0)
		body = append(body, 0, 0, 0, 0) // end of options
	}
	return []any{uint32(pcapngIDB), body}
}

func epb(o order, iface uint32, ts uint64, pkt []byte) []any {
	body := o.AppendUint32(nil, iface)
	body = o.AppendUint32(body, uint32(ts>>32))
	body = o.AppendUint32(body, uint32(ts))
	body = o.AppendUint32(body, uint32(len(pkt)))
	body = o.AppendUint32(body, uint32(len(pkt)))
	return []any{uint32(pcapngEPB), append(body, pkt...)}
}

// pcapng as Wireshark and tshark write it: either byte order, the
// interfaces' link types and time resolutions, several sections, simple
// packet blocks; and damaged files said so.
func TestPcapng(t *testing.T) {
	v4 := packet(cli4, srv4, 1, 0, SYN, 512, nil)
	eth := append(append(make([]byte, 12), 0x08, 0x00), v4...)
	le, be := order(binary.LittleEndian), order(binary.BigEndian)
	sec := uint64(1767225600) // 2026-01-01
	tests := []struct {
		name  string
		file  []byte
		times []time.Time
		err   error
	}{
		{"little-endian, microseconds", ngFile(le, shb(le), idb(le, LinkRaw, 0), epb(le, 0, sec*1e6+5, v4)),
			[]time.Time{time.Unix(int64(sec), 5000)}, nil},
		{"big-endian, nanoseconds, Ethernet", ngFile(be, shb(be), idb(be, LinkEthernet, 9), epb(be, 0, sec*1e9+7, eth)),
			[]time.Time{time.Unix(int64(sec), 7)}, nil},
		{"binary fractions", ngFile(le, shb(le), idb(le, LinkRaw, 0x80|10), epb(le, 0, sec<<10|512, v4)),
			[]time.Time{time.Unix(int64(sec), 5e8)}, nil},
		{"two interfaces, two sections", append(
			ngFile(le, shb(le), idb(le, LinkEthernet, 0), idb(le, LinkRaw, 0), epb(le, 1, sec*1e6, v4), epb(le, 0, sec*1e6+1, eth)),
			ngFile(be, shb(be), idb(be, LinkRaw, 3), epb(be, 0, sec*1e3+2, v4))...),
			[]time.Time{time.Unix(int64(sec), 0), time.Unix(int64(sec), 1000), time.Unix(int64(sec), 2e6)}, nil},
		{"simple packet block", ngFile(le, shb(le), idb(le, LinkRaw, 0), []any{uint32(pcapngSPB), append(le.AppendUint32(nil, uint32(len(v4))), v4...)}),
			[]time.Time{{}}, nil},
		{"a packet of an interface not described", ngFile(le, shb(le), idb(le, LinkRaw, 0), epb(le, 1, 0, v4)), nil, ErrNotCapture},
		{"a packet longer than its block", func() []byte {
			b := ngFile(le, shb(le), idb(le, LinkRaw, 0), epb(le, 0, 0, v4))
			le.PutUint32(b[len(b)-len(v4)-4-8:], 1<<30) // the captured length
			return b
		}(), nil, ErrNotCapture},
		{"a block of 4 GiB", func() []byte {
			b := ngFile(le, shb(le), idb(le, LinkRaw, 0))
			return le.AppendUint32(le.AppendUint32(b, pcapngEPB), 0xfffffffc)
		}(), nil, ErrNotCapture},
		{"cut short", func() []byte {
			b := ngFile(le, shb(le), idb(le, LinkRaw, 0), epb(le, 0, 0, v4))
			return b[:len(b)-6]
		}(), nil, ErrCutShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := OpenFile(bytes.NewReader(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var times []time.Time
			for {
				f, err := src.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					if !errors.Is(err, tt.err) {
						t.Fatalf("error %v, want %v", err, tt.err)
					}
					return
				}
				if s, err := Decode(f.Link, f.Data); err != nil || s.Src != cli4 {
					t.Errorf("frame %d: %v, %+v", len(times)+1, err, s)
				}
				times = append(times, f.Time)
			}
			if tt.err != nil {
				t.Fatalf("no error, want %v", tt.err)
			}
			if len(times) != len(tt.times) {
				t.Fatalf("%d frames, want %d", len(times), len(tt.times))
			}
			for i := range times {
				if !times[i].Equal(tt.times[i]) {
					t.Errorf("frame %d at %v, want %v", i+1, times[i], tt.times[i])
				}
			}
		})
	}
}

// A damaged pcap says so rather than allocating what it claims.
func TestPcapDamaged(t *testing.T) {
	var buf bytes.Buffer
	pw, _ := newPcapWriter(&buf)
	pw.flush()
	hdr := buf.Bytes()
	rec := binary.LittleEndian.AppendUint32(make([]byte, 8), 0xfffffff0) // captured length
	rec = binary.LittleEndian.AppendUint32(rec, 0xfffffff0)
	for _, tt := range []struct {
		name string
		file []byte
		want error
	}{
		{"a 4 GiB packet", append(bytes.Clone(hdr), rec...), ErrNotCapture},
		{"cut in a record header", append(bytes.Clone(hdr), rec[:7]...), ErrCutShort},
		{"cut in a packet", append(append(bytes.Clone(hdr), binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(make([]byte, 8), 40), 40)...), 0x45), ErrCutShort},
	} {
		src, err := OpenFile(bytes.NewReader(tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if _, err := src.Next(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := OpenFile(bytes.NewReader(hdr[:20])); !errors.Is(err, ErrNotCapture) {
		t.Errorf("a header cut short: %v, want ErrNotCapture", err)
	}
	bad := bytes.Clone(hdr)
	binary.LittleEndian.PutUint32(bad[20:], 147)
	if _, err := OpenFile(bytes.NewReader(bad)); !errors.Is(err, ErrLinkType) {
		t.Errorf("link type 147: %v, want ErrLinkType", err)
	}
}
