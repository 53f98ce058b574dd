package ports

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A fakeProc is a process of a fake /proc: its name and its open files,
// fd number → link target ("socket:[41001]", "/dev/null").
type fakeProc struct {
	pid    int
	comm   string
	fds    map[string]string
	denied bool // another user's: its fd directory cannot be read
}

// fakeEnv serves the fixtures as /proc/net/tcp{,6} and procs as /proc.
func fakeEnv(t testing.TB, procs ...fakeProc) *env {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		// List reads tables in the machine's byte order.
		t.Skip("the fixtures are little-endian tables; this machine is big-endian")
	}
	files := map[string][]byte{
		"/proc/net/tcp":  readFixture(t, "proc_net_tcp"),
		"/proc/net/tcp6": readFixture(t, "proc_net_tcp6"),
	}
	dirs := map[string][]string{"/proc": {"net", "self", "sys"}}
	links := map[string]string{}
	denied := map[string]bool{}
	for _, p := range procs {
		pid := fmt.Sprint(p.pid)
		dirs["/proc"] = append(dirs["/proc"], pid)
		files["/proc/"+pid+"/comm"] = []byte(p.comm + "\n")
		dir := "/proc/" + pid + "/fd/"
		if p.denied {
			denied[dir] = true
		}
		for fd, link := range p.fds {
			dirs[dir] = append(dirs[dir], fd)
			links[dir+fd] = link
		}
	}
	notExist := func(op, name string) error { return &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist} }
	return &env{
		open: func(name string) (io.ReadCloser, error) {
			if b, ok := files[name]; ok {
				return io.NopCloser(bytes.NewReader(b)), nil
			}
			return nil, notExist("open", name)
		},
		readDir: func(name string) ([]string, error) {
			if denied[name] {
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
			}
			if d, ok := dirs[name]; ok {
				return d, nil
			}
			return nil, notExist("open", name)
		},
		readlink: func(name string) (string, error) {
			if l, ok := links[name]; ok {
				return l, nil
			}
			return "", notExist("readlink", name)
		},
		readFile: func(name string) ([]byte, error) {
			if b, ok := files[name]; ok {
				return b, nil
			}
			return nil, notExist("open", name)
		},
	}
}

// The processes of the fixtures: a node server on [::]:5000 with one
// connection from tcpkit connect and one over ::1, nginx with a worker
// sharing its listener, and other users' processes hidden.
var fixtureProcs = []fakeProc{
	{pid: 1, comm: "systemd", denied: true},
	{pid: 812, comm: "sshd", denied: true},
	{pid: 900, comm: "nginx", fds: map[string]string{"0": "/dev/null", "6": "socket:[30001]"}},
	{pid: 901, comm: "nginx", fds: map[string]string{"6": "socket:[30001]", "7": "socket:[30010]"}},
	{pid: 4242, comm: "node", fds: map[string]string{"1": "pipe:[1234]", "19": "socket:[41001]", "20": "socket:[41002]", "21": "socket:[41020]"}},
	{pid: 4300, comm: "tcpkit", fds: map[string]string{"3": "socket:[41003]", "4": "anon_inode:[eventpoll]", "5": "socket:[41021]"}},
	{pid: 5000, comm: "curl", fds: map[string]string{"5": "socket:[41100]", "6": "socket:[41101]"}},
}

// row is a socket as the list tests compare it.
func row(s Socket) string {
	owner := "-"
	if s.PID != 0 {
		owner = fmt.Sprintf("%d/%s", s.PID, s.Command)
	}
	return fmt.Sprintf("%s %v %v %v %s", s.Proto, s.Local, s.Remote, s.State, owner)
}

func TestListFixtures(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		want   []string
		hidden int
	}{
		{"all", Options{}, []string{
			"tcp6 [fe80::5054:ff:fe12:3456]:22 [::]:0 LISTEN -",
			"tcp 127.0.0.53:53 0.0.0.0:0 LISTEN -",
			"tcp 127.0.0.1:3306 0.0.0.0:0 LISTEN -",
			"tcp6 [::]:5000 [::]:0 LISTEN 4242/node",
			"tcp6 [::1]:5432 [::]:0 LISTEN -",
			"tcp 0.0.0.0:8080 0.0.0.0:0 LISTEN 900/nginx",
			"tcp6 [2001:db8:0:1::10]:22 [2001:db8:0:2::5]:62000 ESTABLISHED -",
			"tcp6 [::1]:5000 [::1]:51000 ESTABLISHED 4242/node",
			"tcp6 [::ffff:127.0.0.1]:5000 [::ffff:127.0.0.1]:33996 ESTABLISHED 4242/node",
			"tcp 127.0.0.1:8080 127.0.0.1:40112 CLOSE_WAIT 901/nginx",
			"tcp 127.0.0.1:33996 127.0.0.1:5000 ESTABLISHED 4300/tcpkit",
			"tcp 127.0.0.1:34004 127.0.0.1:5000 TIME_WAIT -",
			"tcp 127.0.0.1:40112 127.0.0.1:8080 FIN_WAIT2 -",
			"tcp6 [::1]:51000 [::1]:5000 ESTABLISHED 4300/tcpkit",
			"tcp6 [::1]:51004 [::1]:5000 TIME_WAIT -",
			"tcp 10.0.2.15:54952 93.184.216.34:443 ESTABLISHED 5000/curl",
			"tcp 10.0.2.15:54960 93.184.216.34:443 SYN_SENT 5000/curl",
		}, 5},
		{"port 5000, local or remote", Options{Port: 5000}, []string{
			"tcp6 [::]:5000 [::]:0 LISTEN 4242/node",
			"tcp6 [::1]:5000 [::1]:51000 ESTABLISHED 4242/node",
			"tcp6 [::ffff:127.0.0.1]:5000 [::ffff:127.0.0.1]:33996 ESTABLISHED 4242/node",
			"tcp 127.0.0.1:33996 127.0.0.1:5000 ESTABLISHED 4300/tcpkit",
			"tcp 127.0.0.1:34004 127.0.0.1:5000 TIME_WAIT -",
			"tcp6 [::1]:51000 [::1]:5000 ESTABLISHED 4300/tcpkit",
			"tcp6 [::1]:51004 [::1]:5000 TIME_WAIT -",
		}, 0},
		{"listeners", Options{Listen: true}, []string{
			"tcp6 [fe80::5054:ff:fe12:3456]:22 [::]:0 LISTEN -",
			"tcp 127.0.0.53:53 0.0.0.0:0 LISTEN -",
			"tcp 127.0.0.1:3306 0.0.0.0:0 LISTEN -",
			"tcp6 [::]:5000 [::]:0 LISTEN 4242/node",
			"tcp6 [::1]:5432 [::]:0 LISTEN -",
			"tcp 0.0.0.0:8080 0.0.0.0:0 LISTEN 900/nginx",
		}, 4},
		{"listeners on 8080", Options{Port: 8080, Listen: true}, []string{
			"tcp 0.0.0.0:8080 0.0.0.0:0 LISTEN 900/nginx",
		}, 0},
		{"remote port 443", Options{Port: 443}, []string{
			"tcp 10.0.2.15:54952 93.184.216.34:443 ESTABLISHED 5000/curl",
			"tcp 10.0.2.15:54960 93.184.216.34:443 SYN_SENT 5000/curl",
		}, 0},
		{"nothing on the port", Options{Port: 9}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := fakeEnv(t, fixtureProcs...).list(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range res.Sockets {
				got = append(got, row(s))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
			if res.Hidden != tt.hidden {
				t.Errorf("got Hidden %d, want %d", res.Hidden, tt.hidden)
			}
		})
	}
}

func TestListUnreadable(t *testing.T) {
	tests := []struct {
		name       string
		procs      []fakeProc
		opts       Options
		unreadable int
		hidden     int
	}{
		// Owners of every socket found before the denied processes: they
		// are not even read.
		{"all found first", []fakeProc{
			{pid: 10, comm: "node", fds: map[string]string{"3": "socket:[41001]"}},
			{pid: 20, comm: "x", denied: true},
		}, Options{Port: 5000, Listen: true}, 0, 0},
		{"one denied", []fakeProc{
			{pid: 10, comm: "x", denied: true},
			{pid: 20, comm: "node", fds: map[string]string{"3": "socket:[41001]"}},
		}, Options{Port: 5000, Listen: true}, 1, 0},
		{"owner denied", []fakeProc{
			{pid: 10, comm: "x", denied: true},
			{pid: 11, comm: "y", denied: true},
		}, Options{Port: 5000, Listen: true}, 2, 1},
		{"only TIME_WAIT: /proc not read", []fakeProc{{pid: 10, comm: "x", denied: true}}, Options{Port: 34004}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := fakeEnv(t, tt.procs...).list(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Unreadable != tt.unreadable || res.Hidden != tt.hidden {
				t.Errorf("got Unreadable %d, Hidden %d; want %d, %d", res.Unreadable, res.Hidden, tt.unreadable, tt.hidden)
			}
		})
	}
}

func TestListErrors(t *testing.T) {
	tests := []struct {
		name  string
		patch func(e *env)
		want  string
	}{
		{"no /proc", func(e *env) {
			e.open = func(name string) (io.ReadCloser, error) {
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			}
		}, "is /proc mounted?"},
		{"no IPv6 is fine", func(e *env) {
			open := e.open
			e.open = func(name string) (io.ReadCloser, error) {
				if name == "/proc/net/tcp6" {
					return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
				}
				return open(name)
			}
		}, ""},
		{"garbled table", func(e *env) {
			e.open = func(name string) (io.ReadCloser, error) {
				return io.NopCloser(strings.NewReader("  sl  local_address\n   0: nonsense\n")), nil
			}
		}, "reading /proc/net/tcp: line 2"},
		{"cannot list /proc", func(e *env) {
			e.readDir = func(name string) ([]string, error) { return nil, errors.New("boom") }
		}, "cannot list processes: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := fakeEnv(t, fixtureProcs...)
			tt.patch(e)
			_, err := e.list(Options{})
			if tt.want == "" {
				if err != nil {
					t.Errorf("got error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// listen opens a listener on 127.0.0.1:0 and a connection to it, and
// returns the listener, the client's end and the server's end.
func listenPair(t testing.TB) (net.Listener, net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return ln, client, server
}

func addrPort(a net.Addr) netip.AddrPort { return a.(*net.TCPAddr).AddrPort() }

// find returns the socket with these addresses, if listed.
func find(socks []Socket, local, remote netip.AddrPort) (Socket, bool) {
	for _, s := range socks {
		if s.Local == local && s.Remote == remote {
			return s, true
		}
	}
	return Socket{}, false
}

// ownComm is the name the kernel gives this test binary in
// /proc/self/comm: the executable's name, cut to 15 bytes.
func ownComm() string {
	name := filepath.Base(os.Args[0])
	return name[:min(len(name), 15)]
}

func TestListLive(t *testing.T) {
	ln, client, server := listenPair(t)
	lnAddr, clientAddr := addrPort(ln.Addr()), addrPort(client.LocalAddr())
	res, err := List(Options{Port: lnAddr.Port()})
	if err != nil {
		t.Fatal(err)
	}
	pid, comm := os.Getpid(), ownComm()
	tests := []struct {
		name          string
		local, remote netip.AddrPort
		state         State
	}{
		{"listener", lnAddr, netip.AddrPortFrom(netip.IPv4Unspecified(), 0), Listen},
		{"client", clientAddr, lnAddr, Established},
		{"server", lnAddr, clientAddr, Established},
	}
	for _, tt := range tests {
		s, ok := find(res.Sockets, tt.local, tt.remote)
		if !ok {
			t.Errorf("%s: no socket %v → %v in %+v", tt.name, tt.local, tt.remote, res.Sockets)
			continue
		}
		if s.Proto != "tcp" || s.State != tt.state || s.PID != pid || s.Command != comm || s.Inode == 0 || s.UID != uint32(os.Getuid()) {
			t.Errorf("%s: got %+v, want tcp %v owned by %d/%s, uid %d", tt.name, s, tt.state, pid, comm, os.Getuid())
		}
	}
	if res.Sockets[0].State != Listen {
		t.Errorf("listener not first: %+v", res.Sockets)
	}

	// The client closes first, so its side ends in TIME_WAIT once the
	// server, seeing EOF, closes too.
	client.Close()
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("server read got %d, %v; want the client's FIN (EOF)", n, err)
	}
	server.Close()
	s := waitState(t, clientAddr, lnAddr, TimeWait, 5*time.Second)
	if s.Inode != 0 || s.PID != 0 {
		t.Errorf("TIME_WAIT socket has an owner: %+v", s)
	}
}

// waitState polls the table until the socket local → remote is in state
// want, and fails the test after timeout.
func waitState(t testing.TB, local, remote netip.AddrPort, want State, timeout time.Duration) Socket {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	var last Socket
	for {
		res, err := List(Options{Port: local.Port()})
		if err != nil {
			t.Fatal(err)
		}
		s, ok := find(res.Sockets, local, remote)
		if ok && s.State == want {
			return s
		}
		last = s
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("socket %v → %v not in %v after %v; last seen: %+v", local, remote, want, timeout, last)
		}
	}
}

// BenchmarkList10k times one full listing with 10,000 sockets of this
// process open: 5,000 loopback connections, both ends.
func BenchmarkList10k(b *testing.B) {
	const conns = 5000
	raiseFileLimit(b, 2*conns+100)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, conns)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var open []net.Conn
	defer func() {
		// Reset rather than close: 5,000 TIME_WAIT entries would linger
		// for a minute in the table of a machine others use too.
		for _, c := range open {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatalf("after %d connections: %v", len(open)/2, err)
		}
		open = append(open, c, <-accepted)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		res, err := List(Options{})
		if err != nil {
			b.Fatal(err)
		}
		n = len(res.Sockets)
	}
	if n < 2*conns {
		b.Fatalf("listed %d sockets, want at least %d", n, 2*conns)
	}
	b.ReportMetric(float64(n), "sockets")
}

// raiseFileLimit makes room for n open files, or skips the benchmark.
func raiseFileLimit(b *testing.B, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("cannot read the open file limit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	old := lim
	lim.Cur = max(lim.Max, n)
	lim.Max = lim.Cur
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("needs %d open files, the limit is %d (hard %d) and cannot be raised: %v; try 'ulimit -n %d'", n, old.Cur, old.Max, err, n)
	}
	b.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}
