package watch

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"time"
)

// Flags are a TCP segment's control bits, as in its header's 14th byte.
type Flags uint8

// The control bits.
const (
	FIN Flags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// flagOrder is the order flags are named in: "SYN-ACK", "FIN-PSH-ACK".
var flagOrder = []struct {
	f    Flags
	name string
}{{SYN, "SYN"}, {FIN, "FIN"}, {RST, "RST"}, {PSH, "PSH"}, {ACK, "ACK"}, {URG, "URG"}, {ECE, "ECE"}, {CWR, "CWR"}}

// String names the flags that are set, joined by "-": "SYN-ACK",
// "PSH-ACK"; "none" when none is.
func (f Flags) String() string {
	var names []string
	for _, o := range flagOrder {
		if f&o.f != 0 {
			names = append(names, o.name)
		}
	}
	if names == nil {
		return "none"
	}
	return strings.Join(names, "-")
}

// A LinkType says what header comes before the IP packet in a captured
// frame: the LINKTYPE_ values of pcap files.
type LinkType uint32

// The link types Decode understands.
const (
	LinkNull      LinkType = 0   // BSD loopback: 4-byte address family, host order
	LinkEthernet  LinkType = 1   // Ethernet II, with 802.1Q tags; Linux loopback
	LinkRaw       LinkType = 101 // the IP packet alone: what watch captures and writes
	LinkLoop      LinkType = 108 // OpenBSD loopback: 4-byte address family, network order
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1 (tcpdump -i any)
	LinkIPv4      LinkType = 228 // the IPv4 packet alone
	LinkIPv6      LinkType = 229 // the IPv6 packet alone
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2 (tshark -i any)
)

// Known reports whether Decode understands frames of this link type.
func (l LinkType) Known() bool {
	switch l {
	case LinkNull, LinkEthernet, LinkRaw, LinkLoop, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2:
		return true
	}
	return false
}

// A Segment is one TCP segment as captured.
type Segment struct {
	Time     time.Time
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    Flags
	Window   uint16 // as sent, not scaled: zero is zero at any scale
	Len      int    // payload bytes, from the IP header's length
	Payload  []byte // the payload bytes captured: Len or fewer when the capture cut the packet
	Packet   []byte // the IP packet as captured, from its first byte: what a pcap file gets
}

// Errors of Decode: the frame holds something other than a whole TCP
// header, which watch leaves out.
var (
	ErrNotTCP    = errors.New("watch: not a TCP segment")
	ErrTruncated = errors.New("watch: frame too short for its headers")
	ErrFragment  = errors.New("watch: an IP fragment")
	ErrLinkType  = errors.New("watch: unknown link type")
)

// Decode finds the TCP segment in a frame of link type link. The
// segment's slices point into frame; Time is left zero.
func Decode(link LinkType, frame []byte) (Segment, error) {
	pkt, err := ipPacket(link, frame)
	if err != nil {
		return Segment{}, err
	}
	if len(pkt) < 1 {
		return Segment{}, ErrTruncated
	}
	var s Segment
	var tcp []byte // from the TCP header on, as captured
	var tcpLen int // the TCP header and payload, by the IP header
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return s, ErrTruncated
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl {
			return s, ErrTruncated
		}
		if pkt[9] != 6 {
			return s, ErrNotTCP
		}
		if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 { // more fragments, or an offset
			return s, ErrFragment
		}
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if total == 0 { // a large segment the NIC will split (TSO): the capture has it all
			total = len(pkt)
		}
		if total < ihl {
			return s, ErrTruncated
		}
		src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		s.Src, s.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		tcp, tcpLen = pkt[ihl:], total-ihl
	case 6:
		if len(pkt) < 40 {
			return s, ErrTruncated
		}
		plen := int(binary.BigEndian.Uint16(pkt[4:6]))
		if plen == 0 { // a jumbogram or a large offloaded segment
			plen = len(pkt) - 40
		}
		next, off := pkt[6], 40
		for next != 6 {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(pkt) < off+2 {
					return s, ErrTruncated
				}
				next, off = pkt[off], off+(int(pkt[off+1])+1)*8
			case 44:
				return s, ErrFragment
			default:
				return s, ErrNotTCP
			}
		}
		if len(pkt) < off || plen+40 < off {
			return s, ErrTruncated
		}
		src, dst := netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		s.Src, s.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		tcp, tcpLen = pkt[off:], plen+40-off
	default:
		return s, ErrNotTCP
	}
	if len(tcp) < 20 {
		return s, ErrTruncated
	}
	hlen := int(tcp[12]>>4) * 4
	if hlen < 20 || len(tcp) < hlen || tcpLen < hlen {
		return s, ErrTruncated
	}
	s.Src = netip.AddrPortFrom(s.Src.Addr(), binary.BigEndian.Uint16(tcp[0:2]))
	s.Dst = netip.AddrPortFrom(s.Dst.Addr(), binary.BigEndian.Uint16(tcp[2:4]))
	s.Seq = binary.BigEndian.Uint32(tcp[4:8])
	s.Ack = binary.BigEndian.Uint32(tcp[8:12])
	s.Flags = Flags(tcp[13])
	s.Window = binary.BigEndian.Uint16(tcp[14:16])
	s.Len = tcpLen - hlen
	s.Payload = tcp[hlen:min(len(tcp), tcpLen)]
	s.Packet = pkt
	return s, nil
}

// ipPacket strips the link-layer header of frame. Frames that carry
// something other than IP are ErrNotTCP.
func ipPacket(link LinkType, frame []byte) ([]byte, error) {
	switch link {
	case LinkRaw, LinkIPv4, LinkIPv6:
		return frame, nil
	case LinkNull, LinkLoop:
		if len(frame) < 4 {
			return nil, ErrTruncated
		}
		return frame[4:], nil // the family is checked by the IP version
	case LinkEthernet:
		off := 12
		for {
			if len(frame) < off+2 {
				return nil, ErrTruncated
			}
			switch binary.BigEndian.Uint16(frame[off:]) {
			case 0x8100, 0x88a8: // VLAN tags
				off += 4
				continue
			case 0x0800, 0x86dd:
				return frame[off+2:], nil
			}
			return nil, ErrNotTCP
		}
	case LinkLinuxSLL:
		if len(frame) < 16 {
			return nil, ErrTruncated
		}
		return etherIP(binary.BigEndian.Uint16(frame[14:16]), frame[16:])
	case LinkLinuxSLL2:
		if len(frame) < 20 {
			return nil, ErrTruncated
		}
		return etherIP(binary.BigEndian.Uint16(frame[0:2]), frame[20:])
	}
	return nil, ErrLinkType
}

func etherIP(proto uint16, rest []byte) ([]byte, error) {
	if proto != 0x0800 && proto != 0x86dd {
		return nil, ErrNotTCP
	}
	return rest, nil
}
