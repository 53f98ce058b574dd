package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// traceLine matches a --trace text line: "  0.000123 #1 read  in 4 bytes [...]".
var traceLine = regexp.MustCompile(`^\s*\d+\.\d{6} #(\d+) (\S+)\s+(.*)$`)

// traceEvents returns the event names of the --trace lines in lines.
func traceEvents(lines []string) (events []string, text map[string]string) {
	text = map[string]string{}
	for _, l := range lines {
		if m := traceLine.FindStringSubmatch(l); m != nil {
			events = append(events, m[2])
			text[m[2]] = m[3]
		}
	}
	return events, text
}

// The seed's scenario with --trace on both sides: each side's events in
// order, in words.
func TestTraceSeedScenarioCLI(t *testing.T) {
	srv, port := serve(t, "--trace")
	code, out, errLines := runTcpkit(t, "connect", addr(port), "--trace", "--interval", "100ms")
	checkExit(t, "connect", code, exitBroken)
	checkLines(t, "connect stdout", out, []string{"connect to server!", "receive: test", "disconnected."})

	cli, cliText := traceEvents(errLines)
	wantCli := []string{"connected", "write", "read", "peer-fin", "fin", "closed", "write-failed"}
	if !slices.Equal(cli, wantCli) {
		t.Errorf("client trace events %q, want %q", cli, wantCli)
	}
	for event, want := range map[string]string{
		"connected":    "3-way handshake done: connected to " + addr(port),
		"write":        "out 8 bytes [",
		"read":         "in 4 bytes",
		"peer-fin":     "FIN from the server: it ended the connection, 4-way handshake started by the peer",
		"fin":          "our FIN, in answer to the server's",
		"write-failed": "the server ended the connection, so nothing more can be sent (EPIPE",
	} {
		if !strings.Contains(cliText[event], want) {
			t.Errorf("client %s line %q, want it to contain %q", event, cliText[event], want)
		}
	}

	stop(t, srv)
	srvEvents, srvText := traceEvents(srv.stderr.all())
	wantSrv := []string{"connected", "read", "write", "fin", "peer-fin", "closed"}
	if !slices.Equal(srvEvents, wantSrv) {
		t.Errorf("server trace events %q, want %q", srvEvents, wantSrv)
	}
	if want := "our FIN: we ended our side, 4-way handshake started by us"; !strings.Contains(srvText["fin"], want) {
		t.Errorf("server fin line %q, want %q", srvText["fin"], want)
	}
	if want := "FIN from the client, in answer to ours"; !strings.Contains(srvText["peer-fin"], want) {
		t.Errorf("server peer-fin line %q, want %q", srvText["peer-fin"], want)
	}
}

// --trace-format json prints one JSON object per line with the fields
// tools rely on; a refused connect is traced too.
func TestTraceJSON(t *testing.T) {
	_, port := serve(t)
	code, _, errLines := runTcpkit(t, "connect", addr(port), "--count", "1", "--trace", "--trace-format", "json")
	checkExit(t, "connect", code, exitOK)
	var kinds []string
	for _, l := range errLines {
		var ev struct {
			T       float64 `json:"t"`
			Conn    uint64  `json:"conn"`
			Event   string  `json:"event"`
			Bytes   int     `json:"bytes"`
			Explain string  `json:"explain"`
			TCP     *struct {
				State string `json:"state"`
				RTTus int64  `json:"rtt_us"`
			} `json:"tcp"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("trace line %q is not JSON: %v", l, err)
		}
		if ev.Conn != 1 || ev.Explain == "" {
			t.Errorf("trace line %q lacks conn 1 or explain", l)
		}
		// A closed socket has no TCP_INFO: after close, and for a peer-fin
		// after our own FIN, which completes the close as it is read.
		closing := ev.Event == "closed" || ev.Event == "peer-fin" && slices.Contains(kinds, "fin")
		if !closing && (ev.TCP == nil || ev.TCP.State == "") {
			t.Errorf("trace line %q lacks tcp.state", l)
		}
		kinds = append(kinds, ev.Event)
	}
	// The server sends its reply and its FIN back to back. Whether the
	// client's reader sees that FIN before --count makes the client end
	// is a race between two of its goroutines: either order is the same
	// 4-way close on the wire.
	want := []string{"connected", "write", "read", "peer-fin", "fin", "closed"}
	alt := []string{"connected", "write", "read", "fin", "peer-fin", "closed"}
	if !slices.Equal(kinds, want) && !slices.Equal(kinds, alt) {
		t.Errorf("events %q, want %q (or fin and peer-fin the other way round)", kinds, want)
	}

	code, _, errLines = runTcpkit(t, "connect", addr(refusedPort(t)), "--trace")
	checkExit(t, "connect to a refused port", code, exitFail)
	if ev, text := traceEvents(errLines); !slices.Equal(ev, []string{"connect-failed"}) || !strings.Contains(text["connect-failed"], "ECONNREFUSED") {
		t.Errorf("refused connect traced as %q %q, want one connect-failed line naming ECONNREFUSED", ev, text)
	}
}

// A busy port's error names the process that holds it.
func TestBusyPortNamesHolder(t *testing.T) {
	srv, port := serve(t)
	code, _, errLines := runTcpkit(t, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	checkExit(t, "serve on a busy port", code, exitFail)
	want := "is already in use by tcpkit (PID " + strconv.Itoa(srv.cmd.Process.Pid) + ")"
	checkOneLine(t, "serve stderr", errLines, want)
}

// tshark returns the tshark command, or skips the test without it (and
// fails it in CI, which installs it).
func tshark(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("tshark is needed in CI (apt-get install tshark): %v", err)
		}
		t.Skip("tshark not installed")
	}
	return p
}

// A wire is a live tshark capture of the TCP segments to and from one
// port on loopback.
type wire struct {
	p       *proc
	port    int
	markers map[string]bool // source ports of marker connections, left out of segments
}

// capture starts capturing port; it returns once packets are recorded.
func capture(t *testing.T, port int) *wire {
	t.Helper()
	w := &wire{port: port, markers: map[string]bool{}}
	w.p = start(t, tshark(t), "-l", "-i", "lo", "-f", "tcp port "+strconv.Itoa(port),
		"-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.fin", "-e", "tcp.flags.reset")
	w.p.stderr.waitMatch(t, "Capture started", func(l string) bool { return strings.Contains(l, "Capture started") }, waitFor)
	// SIGINT, not the SIGKILL of start's cleanup: tshark then stops its
	// dumpcap child, which would otherwise keep the output pipe open.
	t.Cleanup(func() {
		w.p.signal(t, syscall.SIGINT)
		w.p.wait(t, waitFor)
	})
	w.sync(t)
	return w
}

// sync opens and closes a marker connection and waits until tshark has
// printed its SYN: every segment sent before is then in the output. This
// replaces sleeping until the capture has caught up.
func (w *wire) sync(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		nc, err := net.Dial("tcp4", addr(w.port))
		if err != nil {
			t.Fatalf("marker connection: %v", err)
		}
		marker := strconv.Itoa(nc.LocalAddr().(*net.TCPAddr).Port)
		nc.Close()
		w.markers[marker] = true
		syn := marker + "\t" + strconv.Itoa(w.port) + "\t1\t"
		retry := time.Now().Add(250 * time.Millisecond) // a marker sent before the capture began is never seen
		for time.Now().Before(retry) {
			if slices.ContainsFunc(w.p.stdout.all(), func(l string) bool { return strings.HasPrefix(l, syn) }) {
				return
			}
			time.Sleep(5 * time.Millisecond) // polling tshark's output, not waiting for the system
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not show a marker connection within %v: %q", waitFor, w.p.stderr.all())
		}
	}
}

// segments returns the FIN and RST segments seen so far, other than the
// markers', as "SRCPORT FLAGS" (F, R) in the order they crossed the wire.
func (w *wire) segments(t *testing.T) []string {
	t.Helper()
	w.sync(t)
	var segs []string
	for _, l := range w.p.stdout.all() {
		f := strings.Split(l, "\t")
		if len(f) != 5 || w.markers[f[0]] || w.markers[f[1]] {
			continue
		}
		flags := ""
		if f[3] == "1" {
			flags += "F"
		}
		if f[4] == "1" {
			flags += "R"
		}
		if flags != "" {
			segs = append(segs, f[0]+" "+flags)
		}
	}
	return segs
}

// The trace's FINs and RSTs are the segments on the wire: in the seed's
// scenario one FIN each way, the server's first, and no reset; when a
// client aborts, one RST, which the server traces as a reset.
func TestTraceMatchesWire(t *testing.T) {
	t.Run("seed", func(t *testing.T) {
		srv, port := serve(t, "--trace")
		w := capture(t, port)
		// The seed's client: it ends only in answer to the server's FIN,
		// so the order of the FINs is fixed.
		code, _, errLines := runTcpkit(t, "connect", addr(port), "--trace", "--interval", "100ms")
		checkExit(t, "connect", code, exitBroken)
		wire := w.segments(t)
		stop(t, srv)

		cli, cliText := traceEvents(errLines)
		m := regexp.MustCompile(` from [^ ]+:(\d+) in `).FindStringSubmatch(cliText["connected"])
		if m == nil {
			t.Fatalf("client connected line %q names no local port", cliText["connected"])
		}
		clientPort := m[1]
		srvEvents := connTrace(t, srv.stderr.all(), clientPort)
		if want := []string{strconv.Itoa(port) + " F", clientPort + " F"}; !slices.Equal(wire, want) {
			t.Errorf("FIN/RST segments on the wire %q, want %q", wire, want)
		}
		wantSrv := []string{"connected", "read", "write", "fin", "peer-fin", "closed"}
		wantCli := []string{"connected", "write", "read", "peer-fin", "fin", "closed", "write-failed"}
		if !slices.Equal(srvEvents, wantSrv) || !slices.Equal(cli, wantCli) {
			t.Errorf("traces: server %q, client %q; want %q and %q: the server's FIN first, the client's in answer, no reset, as on the wire", srvEvents, cli, wantSrv, wantCli)
		}
	})
	t.Run("abort", func(t *testing.T) {
		srv, port := serve(t, "--trace", "--keep-open")
		w := capture(t, port)
		nc, err := net.Dial("tcp4", addr(port))
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte("testing~"))
		buf := make([]byte, 4)
		nc.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := nc.Read(buf); err != nil {
			t.Fatal(err)
		}
		clientPort := strconv.Itoa(nc.LocalAddr().(*net.TCPAddr).Port)
		nc.(*net.TCPConn).SetLinger(0) // close sends RST
		nc.Close()
		srv.stderr.waitMatch(t, "a traced reset", func(l string) bool { return strings.Contains(l, " reset ") }, waitFor)
		wire := w.segments(t)
		stop(t, srv)

		if want := []string{clientPort + " R"}; !slices.Equal(wire, want) {
			t.Errorf("FIN/RST segments on the wire %q, want %q", wire, want)
		}
		srvEvents := connTrace(t, srv.stderr.all(), clientPort)
		_, text := traceEvents(srv.stderr.all())
		if want := []string{"connected", "read", "write", "reset", "closed"}; !slices.Equal(srvEvents, want) || !strings.Contains(text["reset"], "ECONNRESET") {
			t.Errorf("server trace %q, want %q with the reset explained as ECONNRESET, as on the wire", srvEvents, want)
		}
	})
}

// connTrace returns the trace events of the server's connection from
// clientPort: the one whose connected line names it.
func connTrace(t *testing.T, lines []string, clientPort string) []string {
	t.Helper()
	id := ""
	var events []string
	for _, l := range lines {
		m := traceLine.FindStringSubmatch(l)
		switch {
		case m == nil:
		case id == "" && m[2] == "connected" && strings.Contains(m[3]+" ", ":"+clientPort+" "):
			id = m[1]
			events = append(events, m[2])
		case id != "" && m[1] == id:
			events = append(events, m[2])
		}
	}
	if id == "" {
		t.Fatalf("no traced connection from port %s in %q", clientPort, lines)
	}
	return events
}
