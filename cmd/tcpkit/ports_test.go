package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tcpkit/internal/ports"
)

// runPorts runs "tcpkit ports args..." in this process.
func runPorts(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"ports"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// A portsConn is a listener on 127.0.0.1 and one connection to it, which
// "tcpkit ports" must show as a LISTEN row and two ESTABLISHED ones.
type portsConn struct {
	port           string // the listener's port
	server, client string // the addresses of the two ends
}

// rows picks from the rows of a table those of c, keyed "LOCAL REMOTE".
// Other sockets may share c's port number: another test's TIME_WAIT left
// from a connection to an earlier listener on the same port.
func (c portsConn) rows(rows [][]string) map[string][]string {
	ours := map[string][]string{}
	for _, r := range rows {
		key := r[1] + " " + r[2]
		switch key {
		case c.server + " 0.0.0.0:*", c.server + " " + c.client, c.client + " " + c.server:
			ours[key] = r
		}
	}
	return ours
}

// portsListener opens a portsConn, closed when the test ends.
func portsListener(t testing.TB) portsConn {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("tcpkit ports reads Linux's /proc; this is %s", runtime.GOOS)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return portsConn{
		port:   strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
		server: ln.Addr().String(),
		client: c.LocalAddr().String(),
	}
}

// portsRows splits a table into its header's columns and its rows'.
func portsRows(t testing.TB, table string) (header []string, rows [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if i == 0 {
			header = f
			continue
		}
		if len(f) != 7 {
			t.Fatalf("row %q has %d columns, want 7", l, len(f))
		}
		rows = append(rows, f)
	}
	return header, rows
}

// checkListenersFirst fails unless every LISTEN row comes before the others.
func checkListenersFirst(t testing.TB, states []string) {
	t.Helper()
	if i := slices.IndexFunc(states, func(s string) bool { return s != "LISTEN" }); i >= 0 && slices.Contains(states[i:], "LISTEN") {
		t.Errorf("listeners are not first: states %q", states)
	}
}

func TestPortsTable(t *testing.T) {
	t.Parallel()
	c := portsListener(t)
	code, stdout, stderr := runPorts(t, c.port)
	if code != exitOK || stderr != "" {
		t.Fatalf("got exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	header, rows := portsRows(t, stdout)
	wantHeader := []string{"PROTO", "LOCAL", "REMOTE", "STATE", "SEND-Q", "RECV-Q", "PID/COMMAND"}
	if !slices.Equal(header, wantHeader) {
		t.Errorf("got header %q, want %q", header, wantHeader)
	}
	var states []string
	for _, r := range rows {
		states = append(states, r[3])
	}
	checkListenersFirst(t, states)
	self := strconv.Itoa(os.Getpid()) + "/"
	ours := c.rows(rows)
	for _, want := range [][]string{
		{"tcp", c.server, "0.0.0.0:*", "LISTEN", "0", "0"},
		{"tcp", c.server, c.client, "ESTABLISHED", "0", "0"},
		{"tcp", c.client, c.server, "ESTABLISHED", "0", "0"},
	} {
		got, ok := ours[want[1]+" "+want[2]]
		if !ok {
			t.Errorf("no row %q in\n%s", want, stdout)
			continue
		}
		if !slices.Equal(got[:6], want) || !strings.HasPrefix(got[6], self) {
			t.Errorf("got row %q, want %q and PID/COMMAND %s...", got, want, self)
		}
	}
}

func TestPortsJSON(t *testing.T) {
	t.Parallel()
	c := portsListener(t)
	code, stdout, stderr := runPorts(t, "--json", c.port)
	if code != exitOK || stderr != "" {
		t.Fatalf("got exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, stdout)
	}
	wantKeys := []string{"command", "inode", "local", "pid", "proto", "recv_q", "remote", "send_q", "state", "uid"}
	for _, obj := range raw {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, wantKeys) {
			t.Fatalf("got fields %q, want %q", keys, wantKeys)
		}
	}
	var socks []struct {
		Proto, Local, Remote, State string
		SendQ                       uint32 `json:"send_q"`
		RecvQ                       uint32 `json:"recv_q"`
		PID                         int
		Command                     string
		Inode                       uint64
		UID                         uint32
	}
	if err := json.Unmarshal([]byte(stdout), &socks); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, s := range socks {
		if s.Local != c.server && s.Local != c.client {
			continue // another process's socket with the same port number
		}
		found++
		if s.Proto != "tcp" || s.PID != os.Getpid() || s.Command == "" || s.Inode == 0 || s.UID != uint32(os.Getuid()) {
			t.Errorf("got %+v, want a tcp socket of PID %d, uid %d", s, os.Getpid(), os.Getuid())
		}
		if s.Remote == "0.0.0.0:0" && s.State != "LISTEN" || s.Remote != "0.0.0.0:0" && s.State != "ESTABLISHED" {
			t.Errorf("got %+v, want LISTEN for the listener, ESTABLISHED for the ends", s)
		}
	}
	if found != 3 {
		t.Errorf("found %d of our 3 sockets (the listener and two ends) in\n%s", found, stdout)
	}
}

func TestPortsJSONEmpty(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := writePortsJSON(&out, nil); err != nil || strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("got %q, %v; want [] for no sockets", out.String(), err)
	}
}

func TestPortsListen(t *testing.T) {
	t.Parallel()
	c := portsListener(t)
	tests := []struct {
		args  []string
		nours int // how many of c's three sockets are shown
	}{
		{[]string{c.port}, 3},
		{[]string{c.port, "--listen"}, 1},
		{[]string{"-listen"}, 1}, // every listener: ours among them
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runPorts(t, tt.args...)
			if code != exitOK {
				t.Fatalf("got exit %d, stderr %q", code, stderr)
			}
			_, rows := portsRows(t, stdout)
			if got := len(c.rows(rows)); got != tt.nours {
				t.Errorf("got %d of our sockets, want %d:\n%s", got, tt.nours, stdout)
			}
			if !slices.Contains(tt.args, "--listen") && !slices.Contains(tt.args, "-listen") {
				return
			}
			for _, r := range rows {
				if r[3] != "LISTEN" {
					t.Errorf("--listen shows a %s row:\n%s", r[3], stdout)
				}
			}
		})
	}
}

func TestPortsBadArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string // the one line of stderr
	}{
		{[]string{"http"}, `tcpkit ports: PORT "http" is not a number: give a port from 1 to 65535 (run 'tcpkit ports -h' for help)`},
		{[]string{"70000"}, `tcpkit ports: port 70000 is out of range: use 1 to 65535 (run 'tcpkit ports -h' for help)`},
		{[]string{"0"}, `tcpkit ports: port 0 is out of range: use 1 to 65535 (run 'tcpkit ports -h' for help)`},
		{[]string{"--", "-1"}, `tcpkit ports: port -1 is out of range: use 1 to 65535 (run 'tcpkit ports -h' for help)`},
		{[]string{"5000", "5001"}, `tcpkit ports: unexpected argument "5001": give at most one PORT (run 'tcpkit ports -h' for help)`},
		{[]string{"--udp"}, `tcpkit ports: unknown flag --udp (run 'tcpkit ports -h' for help)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runPorts(t, tt.args...)
			if code != exitUsage || stdout != "" || stderr != tt.want+"\n" {
				t.Errorf("got exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestPortsHelp(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runPorts(t, "-h")
	if code != exitOK || !strings.HasPrefix(stdout, "Usage: tcpkit ports [flags] [PORT]") || !strings.Contains(stdout, "-listen") {
		t.Errorf("got exit %d and\n%s\nwant 0 and the usage with the flags", code, stdout)
	}
}

func TestPortsHiddenNote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		hidden int
		euid   int
		want   string
	}{
		{"none hidden", 0, 1000, ""},
		{"root sees all", 3, 0, ""},
		{"one", 1, 1000, `tcpkit ports: note: 1 socket belongs to other users' processes, hidden from you (PID/COMMAND "-"); run with sudo to see them`},
		{"several", 4, 1000, `tcpkit ports: note: 4 sockets belong to other users' processes, hidden from you (PID/COMMAND "-"); run with sudo to see them`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hiddenNote(ports.Result{Hidden: tt.hidden}, tt.euid); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
