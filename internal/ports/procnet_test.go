package ports

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures were written in the format of a little-endian machine
// (x86, arm64): the kernel prints address words in its own byte order.
var fixtureOrder = binary.LittleEndian

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// readFixture returns a file of testdata/.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file string
		want []Socket
	}{
		{"proc_net_tcp", []Socket{
			{Proto: "tcp", Local: ap("0.0.0.0:8080"), Remote: ap("0.0.0.0:0"), State: Listen, UID: 33, Inode: 30001},
			{Proto: "tcp", Local: ap("127.0.0.1:3306"), Remote: ap("0.0.0.0:0"), State: Listen, UID: 105, Inode: 20001},
			{Proto: "tcp", Local: ap("127.0.0.53:53"), Remote: ap("0.0.0.0:0"), State: Listen, UID: 101, Inode: 18234},
			{Proto: "tcp", Local: ap("127.0.0.1:33996"), Remote: ap("127.0.0.1:5000"), State: Established, UID: 1000, Inode: 41003},
			{Proto: "tcp", Local: ap("127.0.0.1:34004"), Remote: ap("127.0.0.1:5000"), State: TimeWait},
			{Proto: "tcp", Local: ap("10.0.2.15:54952"), Remote: ap("93.184.216.34:443"), State: Established, SendQ: 1448, UID: 1000, Inode: 41100},
			{Proto: "tcp", Local: ap("10.0.2.15:54960"), Remote: ap("93.184.216.34:443"), State: SynSent, UID: 1000, Inode: 41101},
			{Proto: "tcp", Local: ap("127.0.0.1:8080"), Remote: ap("127.0.0.1:40112"), State: CloseWait, RecvQ: 1, UID: 33, Inode: 30010},
			{Proto: "tcp", Local: ap("127.0.0.1:40112"), Remote: ap("127.0.0.1:8080"), State: FinWait2, UID: 1000},
		}},
		{"proc_net_tcp6", []Socket{
			{Proto: "tcp6", Local: ap("[::]:5000"), Remote: ap("[::]:0"), State: Listen, UID: 1000, Inode: 41001},
			{Proto: "tcp6", Local: ap("[::1]:5432"), Remote: ap("[::]:0"), State: Listen, UID: 112, Inode: 22010},
			{Proto: "tcp6", Local: ap("[::ffff:127.0.0.1]:5000"), Remote: ap("[::ffff:127.0.0.1]:33996"), State: Established, RecvQ: 8, UID: 1000, Inode: 41002},
			{Proto: "tcp6", Local: ap("[::1]:5000"), Remote: ap("[::1]:51000"), State: Established, UID: 1000, Inode: 41020},
			{Proto: "tcp6", Local: ap("[::1]:51000"), Remote: ap("[::1]:5000"), State: Established, UID: 1000, Inode: 41021},
			{Proto: "tcp6", Local: ap("[::1]:51004"), Remote: ap("[::1]:5000"), State: TimeWait},
			{Proto: "tcp6", Local: ap("[2001:db8:0:1::10]:22"), Remote: ap("[2001:db8:0:2::5]:62000"), State: Established, Inode: 15001},
			{Proto: "tcp6", Local: ap("[fe80::5054:ff:fe12:3456]:22"), Remote: ap("[::]:0"), State: Listen, Inode: 15000},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parse(bytes.NewReader(readFixture(t, tt.file)), fixtureOrder)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d sockets, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("socket %d:\ngot  %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestParseByteOrder checks that address words are read in the given
// byte order, so that Parse, which uses the machine's, reads the kernel's
// tables right on big-endian machines too.
func TestParseByteOrder(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		order binary.ByteOrder
		want  netip.AddrPort
	}{
		{"v4 little", "0: 0100007F:1388", binary.LittleEndian, ap("127.0.0.1:5000")},
		{"v4 big", "0: 7F000001:1388", binary.BigEndian, ap("127.0.0.1:5000")},
		{"v6 little", "0: B80D0120000000000000000001000000:0016", binary.LittleEndian, ap("[2001:db8::1]:22")},
		{"v6 big", "0: 20010DB8000000000000000000000001:0016", binary.BigEndian, ap("[2001:db8::1]:22")},
		{"v4-mapped little", "0: 0000000000000000FFFF00000100007F:1388", binary.LittleEndian, ap("[::ffff:127.0.0.1]:5000")},
		{"v4-mapped big", "0: 00000000000000000000FFFF7F000001:1388", binary.BigEndian, ap("[::ffff:127.0.0.1]:5000")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := strings.Fields(tt.line)[1]
			remote := strings.Repeat("0", len(local)-5) + ":0000"
			line := tt.line + " " + remote + " 0A 00000000:00000000 00:00000000 00000000 0 0 1 1 0\n"
			got, err := parse(strings.NewReader(line), tt.order)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Local != tt.want {
				t.Errorf("got %+v, want local %v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	const good = "   0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41001 1 0 100 0 0 10 0\n"
	line := func(repl ...string) string { return strings.NewReplacer(repl...).Replace(good) }
	tests := []struct {
		name  string
		input string
		want  string // in the error
	}{
		{"too few fields", header + good + "   1: 0100007F:1388 00000000:0000 0A\n", "line 3: 4 fields"},
		{"no port", header + line("0100007F:1388", "0100007F"), "line 2: local address \"0100007F\": want ADDR:PORT"},
		{"short port", header + line("0100007F:1388", "0100007F:138"), "port: want 4 hex digits"},
		{"bad address length", header + line("0100007F:1388", "0100007:1388"), "want 8 hex digits (IPv4) or 32 (IPv6)"},
		{"bad hex", header + line("00000000:0000", "0000000G:0000"), "line 2: remote address \"0000000G:0000\": address: not hex"},
		{"mixed families", header + line("00000000:0000", "00000000000000000000000000000000:0000"), "different families"},
		{"bad state", header + line(" 0A ", " XY "), "state \"XY\""},
		{"bad queues", header + line("00000000:00000000", "00000000-00000000"), "queues"},
		{"bad uid", header + line("  1000 ", " -1000 "), "uid \"-1000\""},
		{"uid overflow", header + line("  1000 ", " 4294967296 "), "uid"},
		{"bad inode", header + line(" 41001 ", " 4x001 "), "inode \"4x001\""},
		{"inode overflow", header + line(" 41001 ", " 18446744073709551616 "), "inode"},
		{"no header, garbage", "hello world\n", "line 1: 2 fields"},
		{"header twice", header + header, "line 2"},
		{"long line", header + strings.Repeat("0", 70<<10) + "\n", "line 2: longer than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(strings.NewReader(tt.input), fixtureOrder)
			if err == nil {
				t.Fatalf("got %+v and no error, want an error with %q", got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"nothing", ""},
		{"header only", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"},
		{"blank lines", "\n   \n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.input))
			if err != nil || len(got) != 0 {
				t.Errorf("got %+v, %v; want no sockets, no error", got, err)
			}
		})
	}
}

func TestParseStateString(t *testing.T) {
	tests := []struct {
		state State
		want  string
	}{
		{Established, "ESTABLISHED"},
		{SynSent, "SYN_SENT"},
		{SynRecv, "SYN_RECV"},
		{FinWait1, "FIN_WAIT1"},
		{FinWait2, "FIN_WAIT2"},
		{TimeWait, "TIME_WAIT"},
		{Close, "CLOSE"},
		{CloseWait, "CLOSE_WAIT"},
		{LastAck, "LAST_ACK"},
		{Listen, "LISTEN"},
		{Closing, "CLOSING"},
		{0, "STATE(0x00)"},
		{0x0D, "STATE(0x0D)"},
		{0xFF, "STATE(0xFF)"},
	}
	for _, tt := range tests {
		if got := tt.state.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q, want %q", uint8(tt.state), got, tt.want)
		}
	}
}

// FuzzParse feeds Parse arbitrary tables: it must return sockets or an
// error, never panic, and every socket it returns must be consistent.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"proc_net_tcp", "proc_net_tcp6"} {
		b := readFixture(f, name)
		f.Add(b)
		lines := bytes.SplitAfter(b, []byte("\n"))
		for _, l := range lines[1:] {
			f.Add(l) // each line alone, without the header
		}
	}
	f.Add([]byte("0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n"))
	f.Add([]byte("0: :1388 :0000 0A ::: 00:00000000 00000000 0 0 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, err := parse(bytes.NewReader(b), fixtureOrder)
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.Local.IsValid() || !s.Remote.IsValid() {
				t.Fatalf("invalid address in %+v", s)
			}
			if v6 := s.Proto == "tcp6"; v6 != s.Local.Addr().Is6() || v6 != s.Remote.Addr().Is6() {
				t.Fatalf("proto %q does not match the addresses of %+v", s.Proto, s)
			}
		}
	})
}
