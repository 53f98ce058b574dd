package watch

import (
	"strings"
	"testing"
	"time"
)

// A seg is one segment of a scripted connection between cli4 and srv4:
// c says the client sends it; seq and ack are absolute.
type seg struct {
	c        bool
	seq, ack uint32
	f        Flags
	win      uint16
	data     string
}

// track runs segs through a Tracker for port 5000, 1 ms apart.
func track(segs []seg) []Step {
	tr := Tracker{Port: 5000}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var steps []Step
	for i, s := range segs {
		src, dst := srv4, cli4
		if s.c {
			src, dst = cli4, srv4
		}
		win := s.win
		if win == 0 && s.f&RST == 0 {
			win = 512
		}
		if s.win == 1 { // 1 stands for a zero window in these scripts
			win = 0
		}
		steps = append(steps, tr.Add(Segment{
			Time: t0.Add(time.Duration(i) * time.Millisecond), Src: src, Dst: dst,
			Seq: s.seq, Ack: s.ack, Flags: s.f, Window: win, Len: len(s.data), Payload: []byte(s.data),
		}))
	}
	return steps
}

// The seed's run: client ISN 100, server ISN 700.
var seedRun = []seg{
	{true, 100, 0, SYN, 0, ""},
	{false, 700, 101, SYN | ACK, 0, ""},
	{true, 101, 701, ACK, 0, ""},
	{true, 101, 701, PSH | ACK, 0, "testing~"},
	{false, 701, 109, ACK, 0, ""},
	{false, 701, 109, PSH | ACK, 0, "test"},
	{true, 109, 705, ACK, 0, ""},
	{false, 705, 109, FIN | ACK, 0, ""},
	{true, 109, 706, FIN | ACK, 0, ""},
	{false, 706, 110, ACK, 0, ""},
}

// checkSteps checks each step's label and notes: want[i] is the label,
// then " | " and a part of the notes ("" for none).
func checkSteps(t *testing.T, steps []Step, want []string) {
	t.Helper()
	if len(steps) != len(want) {
		t.Fatalf("got %d steps, want %d", len(steps), len(want))
	}
	for i, st := range steps {
		label, note, _ := strings.Cut(want[i], " | ")
		notes := strings.Join(st.Notes, "; ")
		if got := Label(st); got != label {
			t.Errorf("step %d: label %q, want %q", i+1, got, label)
		}
		if note == "" && notes != "" || !strings.Contains(notes, note) {
			t.Errorf("step %d (%s): notes %q, want %q", i+1, label, notes, note)
		}
	}
}

func TestTrackSeedRun(t *testing.T) {
	steps := track(seedRun)
	checkSteps(t, steps, []string{
		"SYN seq=0 | 3-way handshake 1/3: the client asks to connect (SYN)",
		"SYN-ACK seq=0 ack=1 | 3-way handshake 2/3: the server accepts",
		"ACK seq=1 ack=1 | 3-way handshake 3/3: the client acknowledges: connected",
		`PSH-ACK seq=1 ack=1 "testing~" 8 B | `,
		"ACK seq=1 ack=9 | ",
		`PSH-ACK seq=1 ack=9 "test" 4 B | `,
		"ACK seq=9 ack=5 | ",
		"FIN-ACK seq=5 ack=9 | 4-way close 1/4: the server's FIN: it has ended its side",
		"FIN-ACK seq=9 ack=6 | 4-way close 2/4 and 3/4: the client acknowledges the server's FIN and sends its own",
		"ACK seq=6 ack=10 | 4-way close 4/4: the server acknowledges the client's FIN: closed; the server, which sent the first FIN, waits in TIME_WAIT",
	})
	for i, st := range steps {
		if st.Conn != 1 || st.First != (i == 0) || st.Client != cli4 || st.Server != srv4 || st.Elapsed != time.Duration(i)*time.Millisecond {
			t.Errorf("step %d: conn %d first %v client %v server %v elapsed %v", i+1, st.Conn, st.First, st.Client, st.Server, st.Elapsed)
		}
	}
}

func TestTrackNotes(t *testing.T) {
	hs := seedRun[:3]
	tests := []struct {
		name string
		segs []seg
		want []string // for the segments after the handshake
	}{
		{"the tutorial's EPIPE: a write after the server closed", []seg{
			{false, 701, 101, FIN | ACK, 0, ""},
			{true, 101, 702, ACK, 0, ""},
			{true, 101, 702, PSH | ACK, 0, "testing~"},
			{false, 702, 0, RST, 0, ""},
		}, []string{
			"FIN-ACK seq=1 ack=1 | 4-way close 1/4",
			"ACK seq=1 ack=2 | 4-way close 2/4: the client acknowledges the server's FIN",
			`PSH-ACK seq=1 ack=2 "testing~" 8 B | the client writes after the server's FIN`,
			"RST seq=2 | RST: the client wrote to a connection the server had closed (the tutorial's EPIPE)",
		}},
		{"an abort", []seg{
			{true, 101, 701, RST | ACK, 0, ""},
		}, []string{
			"RST-ACK seq=1 ack=1 | RST: the client aborted the connection; the server's next read or write fails (ECONNRESET)",
		}},
		{"a retransmission and duplicate ACKs", []seg{
			{true, 101, 701, PSH | ACK, 0, "aaaa"},
			{true, 105, 701, PSH | ACK, 0, "bbbb"},
			{false, 701, 101, ACK, 0, ""},
			{false, 701, 101, ACK, 0, ""},
			{false, 701, 101, ACK, 0, ""},
			{true, 101, 701, PSH | ACK, 0, "aaaa"},
			{false, 701, 109, ACK, 0, ""},
		}, []string{
			`PSH-ACK seq=1 ack=1 "aaaa" 4 B | `,
			`PSH-ACK seq=5 ack=1 "bbbb" 4 B | `,
			"ACK seq=1 ack=1 | ",
			"ACK seq=1 ack=1 | duplicate ACK #1: the server asks again for byte 1",
			"ACK seq=1 ack=1 | duplicate ACK #2",
			`PSH-ACK seq=1 ack=1 "aaaa" 4 B | retransmission: the client sends these bytes again`,
			"ACK seq=1 ack=9 | ",
		}},
		{"a zero window", []seg{
			{true, 101, 701, PSH | ACK, 0, "aaaa"},
			{false, 701, 105, ACK, 1, ""},
		}, []string{
			`PSH-ACK seq=1 ack=1 "aaaa" 4 B | `,
			"ACK seq=1 ack=5 win=0 | zero window: the server's receive buffer is full: the client must wait",
		}},
		{"FINs that cross", []seg{
			{true, 101, 701, FIN | ACK, 0, ""},
			{false, 701, 101, FIN | ACK, 0, ""},
			{true, 102, 702, ACK, 0, ""},
			{false, 702, 102, ACK, 0, ""},
		}, []string{
			"FIN-ACK seq=1 ack=1 | 4-way close 1/4: the client's FIN",
			"FIN-ACK seq=1 ack=1 | the server's FIN crosses the client's: both close at once, and both wait in TIME_WAIT",
			"ACK seq=2 ack=2 | the client acknowledges the server's FIN",
			"ACK seq=2 ack=2 | the server acknowledges the client's FIN: closed; both sent a FIN before seeing the other's, so both wait in TIME_WAIT",
		}},
		{"the client ends first", []seg{
			{true, 101, 701, FIN | ACK, 0, ""},
			{false, 701, 102, ACK, 0, ""},
			{false, 701, 102, FIN | ACK, 0, ""},
			{true, 102, 702, ACK, 0, ""},
		}, []string{
			"FIN-ACK seq=1 ack=1 | 4-way close 1/4: the client's FIN",
			"ACK seq=1 ack=2 | 4-way close 2/4: the server acknowledges the client's FIN",
			"FIN-ACK seq=1 ack=2 | 4-way close 3/4: the server's FIN: it ends its side too",
			"ACK seq=2 ack=2 | 4-way close 4/4: the client acknowledges the server's FIN: closed; the client, which sent the first FIN, waits in TIME_WAIT",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps := track(append(append([]seg(nil), hs...), tt.segs...))
			checkSteps(t, steps[len(hs):], tt.want)
		})
	}
}

func TestTrackConnections(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		steps := track([]seg{{true, 100, 0, SYN, 0, ""}, {false, 0, 101, RST | ACK, 0, ""}})
		checkSteps(t, steps, []string{
			"SYN seq=0 | 3-way handshake 1/3",
			"RST-ACK seq=0 ack=1 | RST: connection refused: nothing listens on port 5000",
		})
	})
	t.Run("a SYN again", func(t *testing.T) {
		steps := track([]seg{{true, 100, 0, SYN, 0, ""}, {true, 100, 0, SYN, 0, ""}})
		checkSteps(t, steps, []string{"SYN seq=0 | 3-way handshake 1/3", "SYN seq=0 | the client's SYN again: no answer yet (retransmission)"})
	})
	t.Run("the same ports again", func(t *testing.T) {
		steps := track(append(append([]seg(nil), seedRun...), seg{true, 5000, 0, SYN, 0, ""}))
		if last := steps[len(steps)-1]; last.Conn != 2 || !last.First || last.Seq != 0 {
			t.Errorf("a new SYN on a closed connection's ports: conn %d, first %v, seq %d; want a new connection 2", last.Conn, last.First, last.Seq)
		}
	})
	t.Run("joined midway", func(t *testing.T) {
		steps := track(seedRun[3:])
		checkSteps(t, steps[:2], []string{`PSH-ACK seq=1 ack=1 "testing~" 8 B | `, "ACK seq=1 ack=9 | "})
	})
	t.Run("roles without a port", func(t *testing.T) {
		tr := Tracker{}
		st := tr.Add(Segment{Src: srv4, Dst: cli4, Flags: SYN | ACK})
		if st.Client != cli4 || st.Server != srv4 || st.FromClient {
			t.Errorf("a SYN-ACK seen first: client %v server %v fromClient %v", st.Client, st.Server, st.FromClient)
		}
		st = tr.Add(Segment{Src: cli6, Dst: srv6, Flags: ACK})
		if st.Server != srv6 {
			t.Errorf("no SYN: server %v, want the lower port %v", st.Server, srv6)
		}
	})
}

// The ladder's lines: the header's addresses above the bars, the arrows
// between them, and colour only when asked.
func TestTextLines(t *testing.T) {
	steps := track(seedRun)
	got := append(Text{}.Lines(steps[0]), Text{}.Lines(steps[5])...)
	want := []string{
		"#1              client 127.0.0.1:40000        server 127.0.0.1:5000",
		"#1    0.000000  |--SYN seq=0------------------------------------->|  3-way handshake 1/3: the client asks to connect (SYN)",
		`#1    0.005000  |<----------------PSH-ACK seq=1 ack=9 "test" 4 B--|`,
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if c := (Text{Color: true}).Lines(steps[1])[0]; !strings.HasPrefix(c, "\x1b[36m#1 ") || !strings.Contains(c, "\x1b[0m") {
		t.Errorf("coloured line %q, want connection 1's colour", c)
	}
}
