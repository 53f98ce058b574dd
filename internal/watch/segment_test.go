package watch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var (
	cli4 = netip.MustParseAddrPort("127.0.0.1:40000")
	srv4 = netip.MustParseAddrPort("127.0.0.1:5000")
	cli6 = netip.MustParseAddrPort("[::1]:40000")
	srv6 = netip.MustParseAddrPort("[::1]:5000")
)

// packet builds an IPv4 or IPv6 packet holding a TCP segment, as the
// wire has it (checksums aside, which Decode does not read).
func packet(src, dst netip.AddrPort, seq, ack uint32, f Flags, win uint16, payload []byte) []byte {
	tcp := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = byte(f)
	binary.BigEndian.PutUint16(tcp[14:], win)
	tcp = append(tcp, payload...)
	if src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(tcp))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[6] = 0x40 // don't fragment
		ip[8] = 64
		ip[9] = 6
		a, b := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[i:]))
		}
		sum = sum>>16 + sum&0xffff
		sum += sum >> 16
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		return append(ip, tcp...)
	}
	ip := make([]byte, 40, 40+len(tcp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
	ip[6] = 6
	ip[7] = 64
	a, b := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], a[:])
	copy(ip[24:], b[:])
	return append(ip, tcp...)
}

func TestDecode(t *testing.T) {
	v4 := packet(cli4, srv4, 1000, 2000, PSH|ACK, 512, []byte("testing~"))
	v6 := packet(cli6, srv6, 1000, 2000, PSH|ACK, 512, []byte("testing~"))
	eth := func(etype uint16, p []byte) []byte {
		h := make([]byte, 14)
		binary.BigEndian.PutUint16(h[12:], etype)
		return append(h, p...)
	}
	vlan := append(make([]byte, 12), 0x81, 0x00, 0, 5, 0x08, 0x00)
	sll := append(make([]byte, 14), 0x08, 0x00)
	sll2 := append([]byte{0x86, 0xdd}, make([]byte, 18)...)
	frag := bytes.Clone(v4)
	frag[6] = 0x20 // more fragments
	udp := bytes.Clone(v4)
	udp[9] = 17
	hop := append(bytes.Clone(v6[:40]), append([]byte{6, 0, 0, 0, 0, 0, 0, 0}, v6[40:]...)...)
	hop[6] = 0 // hop-by-hop options, then TCP
	binary.BigEndian.PutUint16(hop[4:], uint16(len(hop)-40))

	tests := []struct {
		name  string
		link  LinkType
		frame []byte
		want  error
		src   netip.AddrPort
	}{
		{"raw IPv4", LinkRaw, v4, nil, cli4},
		{"raw IPv6", LinkRaw, v6, nil, cli6},
		{"IPv4 link type", LinkIPv4, v4, nil, cli4},
		{"Ethernet IPv4", LinkEthernet, eth(0x0800, v4), nil, cli4},
		{"Ethernet IPv6", LinkEthernet, eth(0x86dd, v6), nil, cli6},
		{"Ethernet VLAN", LinkEthernet, append(vlan, v4...), nil, cli4},
		{"Linux cooked", LinkLinuxSLL, append(sll, v4...), nil, cli4},
		{"Linux cooked v2", LinkLinuxSLL2, append(sll2, v6...), nil, cli6},
		{"BSD loopback", LinkNull, append([]byte{2, 0, 0, 0}, v4...), nil, cli4},
		{"IPv6 hop-by-hop", LinkRaw, hop, nil, cli6},
		{"ARP", LinkEthernet, eth(0x0806, make([]byte, 28)), ErrNotTCP, netip.AddrPort{}},
		{"UDP", LinkRaw, udp, ErrNotTCP, netip.AddrPort{}},
		{"fragment", LinkRaw, frag, ErrFragment, netip.AddrPort{}},
		{"cut in the IP header", LinkRaw, v4[:12], ErrTruncated, netip.AddrPort{}},
		{"cut in the TCP header", LinkRaw, v4[:30], ErrTruncated, netip.AddrPort{}},
		{"unknown link", LinkType(147), v4, ErrLinkType, netip.AddrPort{}},
		{"empty", LinkRaw, nil, ErrTruncated, netip.AddrPort{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode(tt.link, tt.frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			dst := srv4
			if tt.src.Addr().Is6() {
				dst = srv6
			}
			if s.Src != tt.src || s.Dst != dst || s.Seq != 1000 || s.Ack != 2000 || s.Flags != PSH|ACK || s.Window != 512 || s.Len != 8 || string(s.Payload) != "testing~" {
				t.Errorf("got %+v, want %v → %v seq 1000 ack 2000 PSH-ACK win 512, 8 bytes testing~", s, tt.src, dst)
			}
			if s.Packet[0]>>4 != 4 && s.Packet[0]>>4 != 6 {
				t.Errorf("Packet does not start at the IP header: % x", s.Packet[:4])
			}
		})
	}

	// A capture that kept only the headers: the length is the IP header's.
	s, err := Decode(LinkRaw, v4[:40])
	if err != nil || s.Len != 8 || len(s.Payload) != 0 {
		t.Errorf("snapped packet: got len %d, payload %q, err %v; want 8, none, nil", s.Len, s.Payload, err)
	}
}

func TestFlagsString(t *testing.T) {
	for f, want := range map[Flags]string{
		SYN: "SYN", SYN | ACK: "SYN-ACK", ACK: "ACK", PSH | ACK: "PSH-ACK",
		FIN | ACK: "FIN-ACK", RST: "RST", RST | ACK: "RST-ACK", FIN | PSH | ACK: "FIN-PSH-ACK", 0: "none",
	} {
		if got := f.String(); got != want {
			t.Errorf("Flags(%#x): got %q, want %q", uint8(f), got, want)
		}
	}
}

// A peer's payload is shown so that it cannot drive the terminal: no
// control byte and no invalid UTF-8 reaches the output as it is.
func TestPreview(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"testing~", 8, `"testing~"`},
		{"test", 4, `"test"`},
		{"\x1b[31mred\x1b[0m", 12, `"\x1b[31mred\x1b[0m"`},
		{"a\r\nb\t\"q\\", 8, `"a\r\nb\t\"q\\"`},
		{"\xff\xfe ok", 5, `"\xff\xfe ok"`},
		{"héllo", 6, `"héllo"`},
		{"bidi \u202e override", 17, `"bidi \xe2\x80\xae override"`},
		{"\x00\x07\x7f", 3, `"\x00\x07\x7f"`},
		{"0123456789abcdefghijklmnop", 26, `"0123456789abcdefghij"...`},
		{"GET", 100, `"GET"...`}, // the capture kept fewer bytes than were sent
	}
	for _, tt := range tests {
		if got := Preview([]byte(tt.in), tt.n); got != tt.want {
			t.Errorf("Preview(%q, %d): got %s, want %s", tt.in, tt.n, got, tt.want)
		}
		if got := Preview([]byte(tt.in), tt.n); strings.ContainsAny(got, "\x1b\x00\x07\x7f\r\n\u202e") {
			t.Errorf("Preview(%q) lets a control character through: %q", tt.in, got)
		}
	}
}

// FuzzDecode feeds any bytes, as any link type, through the decoder, the
// tracker and the renderers: none may panic, and a decoded segment must
// lie within the frame.
func FuzzDecode(f *testing.F) {
	v4 := packet(cli4, srv4, 1, 1, PSH|ACK, 512, []byte("testing~"))
	f.Add(uint8(0), v4)
	f.Add(uint8(1), packet(cli6, srv6, 0, 0, SYN, 65535, nil))
	f.Add(uint8(2), append(append(make([]byte, 12), 0x08, 0x00), v4...))
	f.Add(uint8(4), append(append(make([]byte, 14), 0x86, 0xdd), packet(srv6, cli6, 9, 9, FIN|ACK, 0, []byte("\x1b[2J"))...))
	links := []LinkType{LinkRaw, LinkIPv6, LinkEthernet, LinkNull, LinkLinuxSLL, LinkLinuxSLL2, LinkLoop, LinkIPv4}
	f.Fuzz(func(t *testing.T, li uint8, frame []byte) {
		var tr Tracker
		for _, port := range []uint16{0, 5000} {
			tr.Port = port
			s, err := Decode(links[int(li)%len(links)], frame)
			if err != nil {
				continue
			}
			if len(s.Payload) > s.Len || len(s.Packet) > len(frame) {
				t.Fatalf("payload %d bytes of %d, packet %d of frame %d", len(s.Payload), s.Len, len(s.Packet), len(frame))
			}
			for range 3 { // again: retransmissions and duplicates
				st := tr.Add(s)
				for _, l := range (Text{Color: true}).Lines(st) {
					if strings.ContainsAny(Label(st), "\x1b\r\n") {
						t.Fatalf("a control character in the label %q (line %q)", Label(st), l)
					}
				}
				var p htmlPage
				p.add(st)
			}
		}
	})
}
