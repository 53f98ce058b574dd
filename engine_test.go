package tcpkit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Each engine's name parses back to it; other names fail, saying which
// are known.
func TestParseEngine(t *testing.T) {
	for e, name := range map[Engine]string{EngineAuto: "auto", EngineStd: "std", EngineEpoll: "epoll"} {
		if got := e.String(); got != name {
			t.Errorf("Engine(%d).String() = %q, want %q", uint8(e), got, name)
		}
		if got, err := ParseEngine(name); got != e || err != nil {
			t.Errorf("ParseEngine(%q) = %v, %v; want %v, nil", name, got, err, e)
		}
	}
	if got := Engine(9).String(); got != "Engine(9)" {
		t.Errorf("Engine(9).String() = %q, want %q", got, "Engine(9)")
	}
	for _, name := range []string{"gnet", "", "EPOLL", "Engine(9)"} {
		_, err := ParseEngine(name)
		if err == nil {
			t.Errorf("ParseEngine(%q) succeeded", name)
			continue
		}
		if want := `unknown engine "` + name + `": use auto, epoll or std`; err.Error() != want {
			t.Errorf("ParseEngine(%q): error %q, want %q", name, err, want)
		}
	}
}

// EngineFor picks epoll for TCP and Unix socket listeners where it is
// built, with a Handshake or not, and std for everything else; explicit
// epoll where it cannot serve is an error that says why.
func TestServerEngineFor(t *testing.T) {
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	unix, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Skipf("no Unix sockets here: %v", err)
	}
	defer unix.Close()
	wrapped := wrappedListener{tcp}
	shake := func(nc net.Conn) (net.Conn, error) { return nc, nil }

	auto, epollErr := EngineStd, "it runs on Linux only" // where epoll is not built
	wrappedErr := epollErr
	if epollBuilt {
		auto, epollErr = EngineEpoll, ""
		wrappedErr = "it serves TCP and Unix socket listeners only, not tcpkit.wrappedListener"
	}
	for _, tt := range []struct {
		name      string
		engine    Engine
		handshake func(net.Conn) (net.Conn, error)
		ln        net.Listener
		want      Engine
		wantErr   string // what the error says; "" for none
	}{
		{"auto/tcp", EngineAuto, nil, tcp, auto, ""},
		{"auto/tcp with Handshake", EngineAuto, shake, tcp, auto, ""},
		{"auto/unix", EngineAuto, nil, unix, auto, ""},
		{"auto/wrapped", EngineAuto, nil, wrapped, EngineStd, ""},
		{"std/tcp", EngineStd, nil, tcp, EngineStd, ""},
		{"std/tcp with Handshake", EngineStd, shake, tcp, EngineStd, ""},
		{"std/unix", EngineStd, nil, unix, EngineStd, ""},
		{"epoll/tcp", EngineEpoll, nil, tcp, EngineEpoll, epollErr},
		{"epoll/tcp with Handshake", EngineEpoll, shake, tcp, EngineEpoll, epollErr},
		{"epoll/unix", EngineEpoll, nil, unix, EngineEpoll, epollErr},
		{"epoll/wrapped", EngineEpoll, nil, wrapped, EngineEpoll, wrappedErr},
		{"unknown", Engine(9), nil, tcp, Engine(9), "tcpkit: unknown Engine(9)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{Engine: tt.engine, Handshake: tt.handshake}
			got, err := srv.EngineFor(tt.ln)
			if got != tt.want {
				t.Errorf("EngineFor = %v, want %v", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("EngineFor error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("EngineFor error %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr != "" && tt.engine == EngineEpoll && !errors.Is(err, errNoEpoll):
				t.Errorf("EngineFor error %v, want errNoEpoll", err)
			}
		})
	}
}

// wrappedListener is a listener of the caller's own, whose connections
// the epoll engine cannot take over.
type wrappedListener struct{ net.Listener }

// Serve with EngineEpoll on a listener it cannot serve fails at once with
// EngineFor's error, and closes the listener: nothing is served on a
// listener the caller expected epoll to serve.
func TestServeEpollOnWrappedListenerFails(t *testing.T) {
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	ln := wrappedListener{tcp}
	srv := &Server{Engine: EngineEpoll}
	_, want := srv.EngineFor(ln)
	if want == nil {
		t.Fatalf("EngineFor = nil, want an error")
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		if !errors.Is(err, errNoEpoll) || err.Error() != want.Error() {
			t.Errorf("Serve = %v, want EngineFor's error %v", err, want)
		}
	case <-time.After(waitTime):
		srv.Close()
		<-served
		t.Fatalf("Serve with EngineEpoll on a wrapped listener was still serving after %v; want its error at once", waitTime)
	}
	// A deadline already past: Accept on an open listener fails at once
	// with a timeout rather than waiting; on a closed one, with ErrClosed.
	tcp.(*net.TCPListener).SetDeadline(time.Now())
	if _, err := tcp.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("after Serve failed, Accept = %v, want net.ErrClosed: Serve must close the listener", err)
	}
	if n := srv.Conns(); n != 0 {
		t.Errorf("Conns() = %d, want 0", n)
	}
}

// Offload runs a slow job off the connection's callback: other
// connections are served meanwhile (on epoll a callback that blocked
// would stall its loop), the job's Write reaches the client, and what
// the client sent meanwhile is delivered after the job, in order.
func TestOffload(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		started := make(chan *Conn, 1)
		release := make(chan struct{})
		releaseJob := sync.OnceFunc(func() { close(release) })
		defer releaseJob() // on failure too: the job must not outlive the test (goleak)
		jobErr := make(chan error, 1)
		srvRec := newRecorder()
		addr := startServer(t, &Server{
			Engine:      e,
			ConnOptions: ConnOptions{Framing: Lines},
			Events: srvRec.record(Events{OnData: func(c *Conn, p []byte) {
				if string(p) != "slow\n" {
					c.Write(p) // echo
					return
				}
				c.Offload(func() {
					started <- c
					<-release
					_, err := c.Write([]byte("done\n"))
					jobErr <- err
				})
			}}),
		})

		// a0 comes in the same write as slow, so it is read with it: the
		// pause must hold back delivery, not only the next read.
		a := rawDial(t, addr)
		if _, err := a.Write([]byte("slow\na0\n")); err != nil {
			t.Fatal(err)
		}
		var sc *Conn
		select {
		case sc = <-started:
		case <-time.After(waitTime):
			t.Fatalf("the offloaded job did not start within %v", waitTime)
		}
		if sc.RemoteAddr().String() != a.LocalAddr().String() {
			t.Errorf("the job runs for %v, want the client's %v", sc.RemoteAddr(), a.LocalAddr())
		}
		// Sent while the job runs: they wait for it.
		if _, err := a.Write([]byte("a1\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Write([]byte("a2\n")); err != nil {
			t.Fatal(err)
		}

		// Another connection is served while the job runs.
		b := rawDial(t, addr)
		if _, err := b.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "ping\n" {
			t.Fatalf("another client, while the job runs: read %q, %v; want %q", buf, err, "ping\n")
		}
		if evs := srvRec.events(); slices.Contains(evs, "data a0\n") || slices.Contains(evs, "data a1\n") {
			t.Errorf("server events %q: a message after slow was delivered before the job ended", evs)
		}

		releaseJob()
		r := bufio.NewReader(a)
		for _, want := range []string{"done\n", "a0\n", "a1\n", "a2\n"} {
			got, err := r.ReadString('\n')
			if err != nil || got != want {
				t.Fatalf("client read %q, %v; want %q (the job's reply, then the echoes in order)", got, err, want)
			}
		}
		if err := <-jobErr; err != nil {
			t.Errorf("Write in the offloaded job: %v", err)
		}
		a.CloseWrite()
		if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
			t.Errorf("client read %q, %v after the echoes; want EOF", rest, err)
		}
		srvRec.wait(t, "close false")
		var data []string
		for _, ev := range srvRec.events() {
			if strings.HasPrefix(ev, "data ") {
				data = append(data, ev)
			}
		}
		assertEvents(t, "server (data only)", data, []string{"data slow\n", "data ping\n", "data a0\n", "data a1\n", "data a2\n"})
	})
}

// A panic in an Offload func closes that connection with a PanicError,
// as one in a callback does, and the server goes on serving others.
func TestOffloadPanicClosesConnection(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		errs := make(chan error, 1)
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{
			OnData: func(c *Conn, p []byte) {
				if string(p) == "boom" {
					c.Offload(func() { panic("offload boom") })
					return
				}
				c.Write(p)
			},
			OnError: func(c *Conn, err error) { errs <- err },
		})})
		nc := rawDial(t, addr)
		if _, err := nc.Write([]byte("boom")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			var pe *PanicError
			if !errors.As(err, &pe) || pe.Value != "offload boom" {
				t.Errorf("OnError got %v, want a PanicError with value %q", err, "offload boom")
			}
		case <-time.After(waitTime):
			t.Fatalf("no OnError within %v of the panic", waitTime)
		}
		srvRec.wait(t, "close true")
		assertEvents(t, "server", srvRec.events(), []string{"connect", "data boom", "error", "close true"})
		if got, err := io.ReadAll(nc); err != nil || len(got) != 0 {
			t.Errorf("client read %q, %v; want the server's close and nothing before it", got, err)
		}

		nc2 := rawDial(t, addr)
		if _, err := nc2.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(nc2, buf); err != nil || string(buf) != "hi" {
			t.Errorf("after a panic in another connection's Offload: read %q, %v; want %q", buf, err, "hi")
		}
	})
}
