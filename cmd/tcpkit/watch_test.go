package main

import (
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startWatch starts "tcpkit watch" with args and waits until it
// captures: its line on stderr comes once the packet socket is bound.
func startWatch(t testing.TB, port int, args ...string) *proc {
	t.Helper()
	needCapture(t)
	w := startTcpkit(t, append([]string{"watch"}, append(args, itoa(port))...)...)
	w.stderr.waitLine(t, "watching TCP port "+itoa(port)+" on lo (Ctrl-C stops)", waitFor)
	return w
}

// stopWatch sends SIGINT, checks that watch exits 0, and returns its
// ladder lines and its stderr.
func stopWatch(t testing.TB, w *proc) (ladder, stderr []string) {
	t.Helper()
	w.signal(t, syscall.SIGINT)
	if code := w.wait(t, waitFor); code != exitOK {
		t.Fatalf("watch exit code after SIGINT: got %d, want %d; stderr %q", code, exitOK, w.stderr.all())
	}
	return w.stdout.all(), w.stderr.all()
}

// waitNote waits for a ladder line containing note and returns it.
func waitNote(t testing.TB, w *proc, note string) string {
	t.Helper()
	return w.stdout.waitMatch(t, "containing "+strconv.Quote(note), func(l string) bool { return strings.Contains(l, note) }, waitFor)
}

// ladderLine matches a segment's line: "#1    0.000123  |--LABEL---->|  NOTES".
var ladderLine = regexp.MustCompile(`^#(\d+) +(\d+\.\d{6})  \|(<-+|--)(.*?)(-+>|--)\|(?:  (.*))?$`)

// A rung is one segment's line of the ladder, taken apart.
type rung struct {
	conn       int
	fromClient bool
	label      string
	notes      string
}

// rungs returns the segment lines of a ladder, failing the test on a
// line that is neither a segment nor a connection's header.
func rungs(t testing.TB, lines []string) []rung {
	t.Helper()
	var rs []rung
	for _, l := range lines {
		m := ladderLine.FindStringSubmatch(l)
		if m == nil {
			if !regexp.MustCompile(`^#\d+ +client \S+ +server \S+$`).MatchString(l) {
				t.Errorf("ladder line %q is neither a segment nor a connection's header", l)
			}
			continue
		}
		n, _ := strconv.Atoi(m[1])
		label := strings.Trim(m[4], "-")
		if m[3] != "--" { // "<---LABEL--": the label sits at the right end
			label = strings.TrimLeft(m[3][1:]+m[4], "-")
		}
		rs = append(rs, rung{conn: n, fromClient: m[3] == "--", label: label, notes: m[6]})
	}
	return rs
}

// checkStory checks that the rungs hold, in this order and among
// others, segments whose label starts with want[i].label, sent by the
// side it names, and whose notes contain want[i].note.
func checkStory(t testing.TB, rs []rung, want []storyStep) {
	t.Helper()
	i := 0
	for _, r := range rs {
		if i < len(want) && r.fromClient == want[i].fromClient && strings.HasPrefix(r.label, want[i].label) && strings.Contains(r.notes, want[i].note) {
			i++
		}
	}
	if i < len(want) {
		var got []string
		for _, r := range rs {
			got = append(got, r.label+" | "+r.notes)
		}
		t.Errorf("the ladder lacks, after the steps before it, %+v; it has:\n%s", want[i], strings.Join(got, "\n"))
	}
}

type storyStep struct {
	fromClient bool
	label      string
	note       string
}

// The seed's story, as the seed's server and client play it on the wire.
var seedStory = []storyStep{
	{true, "SYN seq=0", "3-way handshake 1/3: the client asks to connect"},
	{false, "SYN-ACK seq=0 ack=1", "3-way handshake 2/3"},
	{true, "ACK seq=1 ack=1", "3-way handshake 3/3: the client acknowledges: connected"},
	{true, `PSH-ACK seq=1 ack=1 "testing~" 8 B`, ""},
	{false, `PSH-ACK seq=1 ack=9 "test" 4 B`, ""},
	{false, "FIN-ACK seq=5 ack=9", "4-way close 1/4: the server's FIN: it has ended its side, and the 4-way close begins"},
	{true, "FIN-ACK seq=9 ack=6", "the client acknowledges the server's FIN and sends its own"},
	{false, "ACK seq=6 ack=10", "4-way close 4/4: the server acknowledges the client's FIN: closed; the server, which sent the first FIN, waits in TIME_WAIT"},
}

// tsharkFields are what the segment comparison looks at.
var tsharkFields = []string{"-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.len"}

// tsharkLive captures port with tshark and prints tsharkFields per
// segment; extra comes before them (-w FILE -P, say). It returns once
// tshark has printed a marker connection's SYN: it captures. The
// markers' segments are then left out by segs.
type tsharkLive struct {
	p       *proc
	port    int
	markers map[string]bool
}

func startTshark(t *testing.T, port int, extra ...string) *tsharkLive {
	t.Helper()
	args := append([]string{"-l", "-i", "lo", "-f", "tcp port " + itoa(port)}, extra...)
	ts := &tsharkLive{p: start(t, tshark(t), append(args, tsharkFields...)...), port: port, markers: map[string]bool{}}
	ts.p.stderr.waitMatch(t, "Capture started", func(l string) bool { return strings.Contains(l, "Capture started") }, waitFor)
	t.Cleanup(func() { // SIGINT: tshark then stops dumpcap, which holds the pipe
		select {
		case <-ts.p.done:
		default:
			ts.p.signal(t, syscall.SIGINT)
			ts.p.wait(t, waitFor)
		}
	})
	deadline := time.Now().Add(waitFor)
	for {
		nc, err := net.Dial("tcp4", addr(port))
		if err != nil {
			t.Fatalf("marker connection: %v", err)
		}
		marker := strconv.Itoa(nc.LocalAddr().(*net.TCPAddr).Port)
		nc.Close()
		ts.markers[marker] = true
		if _, ok := ncWaitPrefixOrEnd(ts.p.stdout, marker+"\t"+itoa(port)+"\t0x0002\t", 250*time.Millisecond); ok {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not show a marker connection within %v: %q", waitFor, ts.p.stderr.all())
		}
	}
}

// segs returns tshark's lines so far without the markers'.
func (ts *tsharkLive) segs() []string {
	var out []string
	for _, l := range ts.p.stdout.all() {
		f := strings.Split(l, "\t")
		if len(f) == len(tsharkFields[2:])/2 && !ts.markers[f[0]] && !ts.markers[f[1]] {
			out = append(out, l)
		}
	}
	return out
}

// pcapSegments reads a pcap file with tshark, as tsharkFields lines.
func pcapSegments(t *testing.T, file string) []string {
	t.Helper()
	code, out, errLines := runTcpkitPeer(t, tshark(t), append([]string{"-r", file}, tsharkFields...)...)
	if code != 0 {
		t.Fatalf("tshark -r %s: exit %d, %q", file, code, errLines)
	}
	return out
}

// runTcpkitPeer runs a peer program to the end, as runTcpkit does tcpkit.
func runTcpkitPeer(t *testing.T, name string, args ...string) (int, []string, []string) {
	t.Helper()
	p := start(t, name, args...)
	code := p.wait(t, waitFor)
	return code, p.stdout.all(), p.stderr.all()
}

// The acceptance: the seed's Node client talks to tcpkit serve;
// watch draws the 3-way handshake, the 8-byte and 4-byte data and both
// FINs, and its pcap holds the very segments tshark captured of the run.
//
// The client's late writes fail with EPIPE in the client, and nothing of
// them reaches the wire: Node 20 refuses to write on a socket it has
// ended itself (after the server's FIN it sends its own), so there is
// no RST in this run. TestWatchLateWriteReset makes the RST the
// tutorial describes.
func TestWatchSeedScenario(t *testing.T) {
	srv, port := serve(t)
	ts := startTshark(t, port)
	pcap := filepath.Join(t.TempDir(), "seed.pcap")
	w := startWatch(t, port, "--pcap", pcap)

	cl := nodeClient(t, port, "100")
	cl.waitLine(t, "write error: EPIPE", waitFor)
	kill(t, cl)
	waitNote(t, w, "4-way close 4/4")
	ladder, errLines := stopWatch(t, w)
	stop(t, srv)

	rs := rungs(t, ladder)
	checkStory(t, rs, seedStory)
	for _, r := range rs {
		if r.conn != 1 || strings.Contains(r.label, "RST") {
			t.Errorf("rung %+v: want connection 1 only, and no RST", r)
		}
	}
	if want := strconv.Itoa(len(rs)) + " segments in 1 connection"; !slices.Contains(errLines, want) {
		t.Errorf("watch stderr %q, want the line %q", errLines, want)
	}

	got := pcapSegments(t, pcap)
	if len(got) != len(rs) {
		t.Errorf("the pcap holds %d segments, the ladder drew %d", len(got), len(rs))
	}
	if len(got) == 0 {
		t.Fatal("the pcap holds no segment")
	}
	last := got[len(got)-1]
	ts.p.stdout.waitMatch(t, strconv.Quote(last), func(l string) bool { return l == last }, waitFor)
	checkLines(t, "segments in watch's pcap (tshark -r) against tshark's own capture", got, ts.segs())
}

// The tutorial's EPIPE on the wire: the server closes its socket after
// its reply; the client, which has not ended its side, writes again; the
// server's kernel answers with a RST, and the client's next write fails.
func TestWatchLateWriteReset(t *testing.T) {
	port := listener(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(waitFor))
		buf := make([]byte, 8)
		io.ReadFull(c, buf)
		c.Write([]byte("test"))
		c.Close()
	})
	w := startWatch(t, port)
	c := dial(t, port)
	write(t, c, "testing~")
	if got := readAll(t, c); got != "test" {
		t.Fatalf("client read %q before the server's FIN, want test", got)
	}
	write(t, c, "testing~") // the server's socket is closed: RST
	waitNote(t, w, "RST")
	ladder, _ := stopWatch(t, w)
	checkStory(t, rungs(t, ladder), lateWriteStory)
}

// The tutorial's EPIPE on the wire, after the handshake.
var lateWriteStory = []storyStep{
	{false, `PSH-ACK seq=1 ack=9 "test" 4 B`, ""},
	{false, "FIN-ACK seq=5 ack=9", "4-way close 1/4: the server's FIN"},
	// The client's ACK of the FIN may come alone or with the data.
	{true, `PSH-ACK seq=9 ack=6 "testing~" 8 B`, "the client writes after the server's FIN"},
	{false, "RST seq=6", "RST: the client wrote to a connection the server had closed (the tutorial's EPIPE)"},
}

// A connection to a port where nothing listens: SYN, then the kernel's
// RST.
func TestWatchRefused(t *testing.T) {
	port := ncFreePort(t)
	w := startWatch(t, port)
	if c, err := net.Dial("tcp4", addr(port)); err == nil {
		c.Close()
		t.Fatalf("port %d was taken meanwhile", port)
	}
	waitNote(t, w, "RST")
	ladder, _ := stopWatch(t, w)
	checkStory(t, rungs(t, ladder), []storyStep{
		{true, "SYN seq=0", "3-way handshake 1/3"},
		{false, "RST-ACK seq=0 ack=1", "RST: connection refused: nothing listens on port " + itoa(port)},
	})
}

// Two connections at once: every line names its connection, each
// connection's lines tell its own story, and with --color always each
// has its colour (and without, on a pipe, there is no escape at all).
func TestWatchConnectionsAtOnce(t *testing.T) {
	_, port := serve(t, "--keep-open")
	for _, color := range []bool{false, true} {
		args := []string{}
		if color {
			args = append(args, "--color", "always")
		}
		w := startWatch(t, port, args...)
		a, b := dial(t, port), dial(t, port)
		write(t, a, "first")
		write(t, b, "second")
		readN(t, a, 4)
		readN(t, b, 4)
		a.Close()
		b.Close()
		for range 2 {
			waitNote(t, w, "4-way close 4/4")
		}
		ladder, _ := stopWatch(t, w)
		raw := strings.Join(ladder, "\n")
		if color {
			if !strings.Contains(raw, "\x1b[36m#1 ") || !strings.Contains(raw, "\x1b[33m#2 ") {
				t.Errorf("--color always: connection 1 should be cyan (36), 2 yellow (33):\n%q", raw)
			}
			continue
		}
		if strings.Contains(raw, "\x1b") {
			t.Errorf("escapes on a pipe without --color:\n%q", raw)
		}
		rs := rungs(t, ladder)
		for n, data := range map[int]string{1: `"first" 5 B`, 2: `"second" 6 B`} {
			var mine []rung
			for _, r := range rs {
				if r.conn == n {
					mine = append(mine, r)
				}
			}
			checkStory(t, mine, []storyStep{
				{true, "SYN seq=0", "1/3"}, {false, "SYN-ACK", "2/3"}, {true, "ACK seq=1 ack=1", "3/3"},
				{true, "PSH-ACK seq=1 ack=1 " + data, ""},
				{false, `PSH-ACK seq=1`, ""},
				{true, "FIN-ACK", "4-way close 1/4: the client's FIN"},
				{true, "ACK", "4-way close 4/4: the client acknowledges the server's FIN: closed; the client, which sent the first FIN, waits in TIME_WAIT"},
			})
		}
	}
}

// A peer's bytes are shown escaped: nothing it sends reaches the
// operator's terminal as a control sequence.
func TestWatchEscapesPayload(t *testing.T) {
	_, port := serve(t)
	w := startWatch(t, port)
	c := dial(t, port)
	write(t, c, "\x1b[2J\x07\xff\r\n")
	readAll(t, c)
	c.Close()
	line := waitNote(t, w, "\\x1b")
	if want := `"\x1b[2J\x07\xff\r\n" 8 B`; !strings.Contains(line, want) {
		t.Errorf("ladder line %q, want the payload shown as %s", line, want)
	}
	ladder, _ := stopWatch(t, w)
	for _, l := range ladder {
		if strings.ContainsAny(l, "\x1b\x07\r\xff") {
			t.Errorf("a raw control byte in the ladder: %q", l)
		}
	}
}
