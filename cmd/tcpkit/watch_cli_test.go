package main

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bad input: one line that says what to do, and the exit code.
func TestWatchUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notCapture := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notCapture, []byte("hello, not a capture\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	usb := filepath.Join(dir, "usb.pcap") // a pcap header of link type 147
	if err := os.WriteFile(usb, []byte("\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x93\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no port", []string{"watch"}, exitUsage, "give the server's PORT to watch, as in 'tcpkit watch 5000'"},
		{"not a port", []string{"watch", "http"}, exitUsage, `PORT "http" is not a port: give a number from 1 to 65535`},
		{"port out of range", []string{"watch", "70000"}, exitUsage, `PORT "70000" is not a port`},
		{"two ports", []string{"watch", "5000", "5001"}, exitUsage, `unexpected argument "5001": give one PORT`},
		{"bad colour", []string{"watch", "--color", "rainbow", "5000"}, exitUsage, `--color "rainbow": use auto, always or never`},
		{"file and interface", []string{"watch", "--read", notCapture, "--iface", "eth0"}, exitUsage, "--read draws a file, --iface captures: give one of them"},
		{"no such file", []string{"watch", "--read", filepath.Join(dir, "none.pcap")}, exitFail, "cannot read " + filepath.Join(dir, "none.pcap") + ": no such file or directory"},
		{"not a capture", []string{"watch", "--read", notCapture}, exitFail, notCapture + " is not a pcap or pcapng capture (as tcpdump -w and tshark -w write)"},
		{"unknown link type", []string{"watch", "--read", usb}, exitFail, usb + " holds frames of link type 147, which watch cannot decode: capture on an Ethernet or loopback interface, or with tshark -i any"},
		{"no such interface", []string{"watch", "--iface", "nosuch0", "5000"}, exitFail, `there is no network interface "nosuch0": 'ip link' lists them`},
		{"pcap not creatable", []string{"watch", "--read", notCapture, "--pcap", filepath.Join(dir, "no", "dir.pcap")}, exitFail, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errLines := runTcpkit(t, tt.args...)
			checkExit(t, "watch", code, tt.code)
			checkLines(t, "stdout", out, nil)
			if tt.want == "" { // the file is read first: any one line will do
				checkOneLine(t, "stderr", errLines, "tcpkit watch: ")
				return
			}
			checkOneLine(t, "stderr", errLines, "tcpkit watch: "+tt.want)
		})
	}
}

// Without CAP_NET_RAW, watch says so and how to get it, in one line, and
// exits 1. setpriv takes the capability out of the bounding set, so that
// even root's tcpkit runs without it.
func TestWatchWithoutCapNetRaw(t *testing.T) {
	setpriv := needPeer(t, "setpriv")
	code, out, errLines := runTcpkitPeer(t, setpriv, "--inh-caps=-all", "--bounding-set=-net_raw", tcpkitBin, "watch", "5000")
	checkExit(t, "watch without CAP_NET_RAW", code, exitFail)
	checkLines(t, "stdout", out, nil)
	want := "tcpkit watch: capturing packets needs root or CAP_NET_RAW: run it with sudo, or allow it once with 'sudo setcap cap_net_raw+ep " + tcpkitBin + "'"
	checkLines(t, "stderr", errLines, []string{want})
}

// SIGINT ends the capture and finishes the files: the pcap holds every
// segment drawn and tshark reads it whole; the page holds every arrow.
func TestWatchSIGINTFinishesFiles(t *testing.T) {
	_, port := serve(t)
	dir := t.TempDir()
	pcap, page := filepath.Join(dir, "run.pcap"), filepath.Join(dir, "run.html")
	w := startWatch(t, port, "--pcap", pcap, "--html", page)
	for range 3 {
		c := dial(t, port)
		write(t, c, "testing~")
		readAll(t, c)
		c.Close()
	}
	for range 3 {
		waitNote(t, w, "4-way close 4/4")
	}
	ladder, errLines := stopWatch(t, w)
	n := len(rungs(t, ladder))
	if want := strconv.Itoa(n) + " segments in 3 connections"; len(errLines) != 2 || errLines[1] != want {
		t.Errorf("stderr %q, want the watching line and %q", errLines, want)
	}
	if got := pcapSegments(t, pcap); len(got) != n {
		t.Errorf("tshark reads %d segments in the pcap, the ladder drew %d", len(got), n)
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(html), `<g class="seg `); got != n || !strings.HasSuffix(string(html), "</html>\n") {
		t.Errorf("the page has %d arrows (want %d) or is cut short", got, n)
	}
}

// --read draws what tshark captured, as pcapng (its own format) and as
// pcap (tcpdump's): the same ladder as watch draws live, with or without
// the PORT.
func TestWatchReadsCaptures(t *testing.T) {
	_, port := serve(t)
	dir := t.TempDir()
	ng, classic, ours := filepath.Join(dir, "run.pcapng"), filepath.Join(dir, "run.pcap"), filepath.Join(dir, "watch.pcap")
	tsNg := startTshark(t, port, "-w", ng, "-P")
	tsPcap := startTshark(t, port, "-F", "pcap", "-w", classic, "-P")
	w := startWatch(t, port, "--pcap", ours)
	c := dial(t, port)
	write(t, c, "testing~")
	readAll(t, c)
	c.Close()
	waitNote(t, w, "4-way close 4/4")
	ladder, _ := stopWatch(t, w)
	live := rungs(t, ladder)
	// Each tshark has its file complete once it printed the last segment
	// watch drew.
	segs := pcapSegments(t, ours)
	last := segs[len(segs)-1]
	for _, ts := range []*tsharkLive{tsNg, tsPcap} {
		ts.p.stdout.waitMatch(t, strconv.Quote(last), func(l string) bool { return l == last }, waitFor)
		ts.p.signal(t, syscall.SIGINT)
		ts.p.wait(t, waitFor)
	}

	for _, file := range []string{ng, classic, ours} {
		for _, args := range [][]string{{"--read", file, itoa(port)}, {"--read", file}} {
			code, out, errLines := runTcpkit(t, append([]string{"watch"}, args...)...)
			checkExit(t, "watch "+strings.Join(args, " "), code, exitOK)
			got := rungs(t, out)
			var mine []rung // without the markers' connections
			for _, r := range got {
				if r.conn == got[len(got)-1].conn {
					mine = append(mine, r)
				}
			}
			if len(mine) != len(live) {
				t.Fatalf("watch %s: %d segments of the last connection, live %d:\n%s", strings.Join(args, " "), len(mine), len(live), strings.Join(out, "\n"))
			}
			for i := range live {
				if mine[i].label != live[i].label || mine[i].notes != live[i].notes || mine[i].fromClient != live[i].fromClient {
					t.Errorf("watch %s, segment %d: %+v, live %+v", strings.Join(args, " "), i+1, mine[i], live[i])
				}
			}
			if !strings.HasSuffix(errLines[len(errLines)-1], "segments in "+itoa(got[len(got)-1].conn)+" connections") && got[len(got)-1].conn > 1 {
				t.Errorf("watch %s stderr %q", strings.Join(args, " "), errLines)
			}
		}
	}

	// A page from a file: an arrow per segment.
	page := filepath.Join(dir, "run.html")
	code, _, errLines := runTcpkit(t, "watch", "--read", ours, "--html", page)
	checkExit(t, "watch --read --html", code, exitOK)
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(html), `<g class="seg `); got != len(live) {
		t.Errorf("the page of watch --read %s --html has %d arrows, want %d; stderr %q", ours, got, len(live), errLines)
	}

	// A file cut in the middle of a packet: what comes before is drawn,
	// and one line says the file was cut short.
	data, err := os.ReadFile(ours)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, data[:len(data)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errLines := runTcpkit(t, "watch", "--read", cut)
	checkExit(t, "watch --read of a cut file", code, exitFail)
	if n := len(rungs(t, out)); n != len(live)-1 {
		t.Errorf("a file cut in its last packet: %d segments drawn, want %d", n, len(live)-1)
	}
	want := "tcpkit watch: " + cut + " ends in the middle of a packet (was the capture cut short?): drew the " + itoa(len(live)-1) + " segments before it"
	if errLines[len(errLines)-1] != want {
		t.Errorf("stderr %q, want last %q", errLines, want)
	}
}

// A standard output nobody reads never holds up the capture: the lines
// that do not fit are counted, the pcap still gets every segment, and
// SIGINT still ends watch. The run is bounded: 600 connections to a Go
// listener on loopback.
func TestWatchSlowOutput(t *testing.T) {
	needCapture(t)
	port := listener(t, func(c net.Conn) {
		c.Write([]byte("x"))
		c.Close()
	})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	pcap := filepath.Join(t.TempDir(), "slow.pcap")
	w := ncStart(t, nil, pw, tcpkitBin, "watch", "--pcap", pcap, itoa(port))
	pw.Close() // watch has it; the test never reads pr until the end
	w.stderr.waitLine(t, "watching TCP port "+itoa(port)+" on lo (Ctrl-C stops)", waitFor)

	const conns = 600
	deadline := time.Now().Add(30 * time.Second)
	for i := range conns {
		if time.Now().After(deadline) {
			t.Fatalf("only %d connections in 30 s", i)
		}
		c, err := net.DialTimeout("tcp4", addr(port), waitFor)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(waitFor))
		io.Copy(io.Discard, c)
		c.Close()
	}
	// On SIGINT watch reads what the kernel holds for it, then stops.
	if err := w.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(t, 3*waitFor); code != exitOK {
		t.Fatalf("watch exit %d after SIGINT with a stuck output; stderr %q", code, w.stderr.all())
	}
	errLines := w.stderr.all()
	text := strings.Join(errLines, "\n")
	m := regexp.MustCompile(`(\d+) segments in (\d+) connections`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("stderr %q: no summary", errLines)
	}
	segs, _ := strconv.Atoi(m[1])
	if m[2] != itoa(conns) {
		t.Errorf("watch saw %s connections, want %d: what came before SIGINT is drawn", m[2], conns)
	}
	if !regexp.MustCompile(`^\d+ ladder lines were not drawn: the output was too slow \(` + regexp.QuoteMeta(pcap) + ` has every segment\)$`).MatchString(lineWith(errLines, "ladder lines")) {
		t.Errorf("stderr %q, want a line counting the ladder lines not drawn", errLines)
	}
	if lineWith(errLines, "the output did not take the last lines in time; stopped anyway") == "" {
		t.Errorf("stderr %q, want a line saying the output was left behind", errLines)
	}
	if got := pcapSegments(t, pcap); len(got) != segs {
		t.Errorf("the pcap holds %d segments, watch counted %d", len(got), segs)
	}
}

// lineWith returns the first line containing s, or "".
func lineWith(lines []string, s string) string {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// -h prints the usage with the examples and the flags.
func TestWatchHelp(t *testing.T) {
	code, out, _ := runTcpkit(t, "watch", "-h")
	checkExit(t, "watch -h", code, exitOK)
	text := strings.Join(out, "\n")
	for _, want := range []string{"Usage: tcpkit watch [flags] PORT", "sudo tcpkit watch 5000", "-pcap file", "-read file", "-html file", "-iface interface"} {
		if !strings.Contains(text, want) {
			t.Errorf("watch -h lacks %q:\n%s", want, text)
		}
	}
}

// The way out the message names: a copy of tcpkit given CAP_NET_RAW
// with setcap captures when run by an unprivileged user (nobody).
func TestWatchWithSetcap(t *testing.T) {
	needCapture(t) // root, to give the capability and to become nobody
	setcap, setpriv := needPeer(t, "setcap"), needPeer(t, "setpriv")
	dir, err := os.MkdirTemp("", "tcpkit-setcap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "tcpkit")
	data, err := os.ReadFile(tcpkitBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // nobody may reach the binary
		t.Fatal(err)
	}
	if code, _, errLines := runTcpkitPeer(t, setcap, "cap_net_raw+ep", bin); code != 0 {
		t.Fatalf("setcap cap_net_raw+ep: exit %d, %q", code, errLines)
	}

	_, port := serve(t)
	w := start(t, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin, "watch", itoa(port))
	w.stderr.waitLine(t, "watching TCP port "+itoa(port)+" on lo (Ctrl-C stops)", waitFor)
	c := dial(t, port)
	write(t, c, "testing~")
	readAll(t, c)
	c.Close()
	waitNote(t, w, "4-way close 4/4")
	ladder, _ := stopWatch(t, w)
	checkStory(t, rungs(t, ladder), seedStory[:5])
}

// docs/watch.md: its ladders tell the
// stories the live tests check.
func TestWatchDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/watch.md")
	if err != nil {
		t.Fatal(err)
	}
	// Each ladder block starts with the command that draws it from a
	// capture in testdata: run it, and compare.
	block := func(marker string) []string {
		_, rest, ok := strings.Cut(string(doc), "<!-- example: "+marker)
		_, rest, ok2 := strings.Cut(rest, "```console\n$ tcpkit ")
		body, _, ok3 := strings.Cut(rest, "```\n")
		if !ok || !ok2 || !ok3 {
			t.Fatalf("docs/watch.md has no block starting with a tcpkit command after <!-- %s", marker)
		}
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		lines = lines[:len(lines)-1] // the summary on stderr, as a terminal shows it
		args := strings.Fields(strings.ReplaceAll(lines[0], "testdata/", "../../testdata/"))
		code, out, errLines := runTcpkit(t, args...)
		checkExit(t, "tcpkit "+lines[0], code, exitOK)
		checkLines(t, "docs/watch.md's output of tcpkit "+lines[0]+" (got is the command's)", out, lines[1:])
		checkLines(t, "stderr of tcpkit "+lines[0], errLines, []string{"10 segments in 1 connection"})
		return lines[1:]
	}
	checkStory(t, rungs(t, block("watch-seed-ladder")), seedStory)
	checkStory(t, rungs(t, block("watch-epipe-ladder")), append(seedStory[:4:4], lateWriteStory...))
}

// On a terminal the lines are coloured, one colour per connection;
// NO_COLOR turns that off. script(1) gives watch a terminal.
func TestWatchColourOnTerminal(t *testing.T) {
	script := needPeer(t, "script")
	cmd := tcpkitBin + " watch --read ../../testdata/watch/seed.pcap"
	code, out, _ := runTcpkitPeer(t, script, "-q", "-e", "-c", cmd, "/dev/null")
	checkExit(t, "watch on a terminal", code, 0)
	if len(out) < 2 || !strings.HasPrefix(out[0], "\x1b[36m#1 ") || !strings.HasPrefix(out[1], "\x1b[36m#1    0.000000  |--SYN") {
		t.Errorf("on a terminal: %q, want connection 1's lines in cyan", out)
	}
	code, out, _ = runTcpkitPeer(t, script, "-q", "-e", "-c", "NO_COLOR=1 "+cmd, "/dev/null")
	checkExit(t, "watch on a terminal with NO_COLOR", code, 0)
	if len(out) < 2 || strings.Contains(strings.Join(out, ""), "\x1b") {
		t.Errorf("with NO_COLOR: %q, want no escapes", out)
	}
}

// A standard output closed by its reader (tcpkit watch 5000 | head) ends
// watch as Ctrl-C does: exit 0, the pcap finished, one line saying why.
func TestWatchStdoutClosed(t *testing.T) {
	needCapture(t)
	_, port := serve(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pcap := filepath.Join(t.TempDir(), "closed.pcap")
	w := ncStart(t, nil, pw, tcpkitBin, "watch", "--pcap", pcap, itoa(port))
	pw.Close()
	w.stderr.waitLine(t, "watching TCP port "+itoa(port)+" on lo (Ctrl-C stops)", waitFor)
	pr.Close() // the reader goes away, as head does after its lines
	c := dial(t, port)
	write(t, c, "testing~")
	readAll(t, c)
	c.Close()
	checkExit(t, "watch with its standard output closed", w.wait(t, waitFor), exitOK)
	errLines := w.stderr.all()
	if lineWith(errLines, "standard output was closed: stopped") == "" {
		t.Errorf("stderr %q, want a line saying standard output was closed", errLines)
	}
	m := regexp.MustCompile(`^(\d+) segments? in 1 connection$`).FindStringSubmatch(errLines[len(errLines)-1])
	if m == nil {
		t.Fatalf("stderr %q, want the count last", errLines)
	}
	if got := pcapSegments(t, pcap); itoa(len(got)) != m[1] || len(got) == 0 {
		t.Errorf("the pcap holds %d segments, watch counted %s", len(got), m[1])
	}
}

// A damaged capture: the segments before the damage are drawn, then one
// line says where it is; the absurd length is never allocated.
func TestWatchReadDamaged(t *testing.T) {
	data, err := os.ReadFile("../../testdata/watch/seed.pcap")
	if err != nil {
		t.Fatal(err)
	}
	off := 24 // past the file header: skip four records
	for range 4 {
		off += 16 + int(binary.LittleEndian.Uint32(data[off+8:]))
	}
	binary.LittleEndian.PutUint32(data[off+8:], 0xfffffff0)
	file := filepath.Join(t.TempDir(), "damaged.pcap")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errLines := runTcpkit(t, "watch", "--read", file)
	checkExit(t, "watch --read of a damaged file", code, exitFail)
	checkStory(t, rungs(t, out), seedStory[:4])
	if n := len(rungs(t, out)); n != 4 {
		t.Errorf("%d segments drawn, want the 4 before the damage", n)
	}
	want := "tcpkit watch: " + file + " is damaged after its first 4 segments (a packet of 4294967280 bytes): drew those"
	if len(errLines) == 0 || errLines[len(errLines)-1] != want {
		t.Errorf("stderr %q, want last %q", errLines, want)
	}
}
