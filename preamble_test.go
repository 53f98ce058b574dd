package tcpkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// lineHeader is a Preamble for the tests: a line "HELLO <ip>:<port>\n"
// naming the client, which the connection then reports as RemoteAddr.
// Parse counts its calls, and what each was shown.
type lineHeader struct {
	calls chan string // each call's p and end, for tests that look
}

func (h *lineHeader) preamble(timeout time.Duration) *Preamble {
	return &Preamble{Parse: h.parse, Timeout: timeout}
}

func (h *lineHeader) parse(p []byte, end error) (int, net.Addr, net.Addr, error) {
	if h.calls != nil {
		h.calls <- fmt.Sprintf("%q %v", p, end)
	}
	const prefix = "HELLO "
	if !bytes.HasPrefix(p, []byte(prefix)[:min(len(p), len(prefix))]) {
		return 0, nil, nil, errors.New("not a HELLO line")
	}
	i := bytes.IndexByte(p, '\n')
	switch {
	case i < 0 && end != nil:
		return 0, nil, nil, fmt.Errorf("only %d bytes of the line: %w", len(p), end)
	case i < 0:
		return 0, nil, nil, nil
	}
	a, err := net.ResolveTCPAddr("tcp", string(p[len(prefix):i]))
	if err != nil {
		return 0, nil, nil, err
	}
	return i + 1, a, nil, nil
}

// A preamble that comes in pieces, with pauses between them, is read
// whole; Parse is shown all of it each time; what came after it in the
// same write is the first data; the connection reports the preamble's
// address.
func TestPreambleInPieces(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		h := &lineHeader{calls: make(chan string, 16)}
		rec := newRecorder()
		var remote string
		addr := startServer(t, &Server{Engine: e, Preamble: h.preamble(0), Events: rec.record(Events{
			OnConnect: func(c *Conn) { remote = c.RemoteAddr().String() },
			OnData:    func(c *Conn, p []byte) { c.Write(p) },
		})})
		nc := rawDial(t, addr)
		for _, piece := range []string{"HEL", "LO 192.0.2.7:", "4000"} {
			if _, err := nc.Write([]byte(piece)); err != nil {
				t.Fatal(err)
			}
			<-h.calls // the server read it: the next piece comes in a read of its own
		}
		if _, err := nc.Write([]byte("0\nfirst")); err != nil {
			t.Fatal(err)
		}
		if got := <-h.calls; got != `"HELLO 192.0.2.7:40000\nfirst" <nil>` {
			t.Errorf("Parse was shown %s, want everything read so far", got)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "first" {
			t.Fatalf("client read %q, %v; want the echo of what followed the preamble", buf, err)
		}
		nc.CloseWrite()
		readEOF(t, nc)
		rec.wait(t, "close false")
		assertEvents(t, "server", rec.events(), []string{"connect", "data first", "end", "close false"})
		if remote != "192.0.2.7:40000" {
			t.Errorf("RemoteAddr = %s, want the preamble's 192.0.2.7:40000", remote)
		}
	})
}

// A preamble that does not come whole in time: Parse is shown what came
// with ErrPreambleTimeout, and its error goes to OnReject with the
// socket's address; the connection is closed unserved. The time counts
// from the accept, however the pieces come.
func TestPreambleTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		for _, sent := range []string{"", "HELLO 192.0"} {
			rec := newRecorder()
			rj := newRejections()
			srv := &Server{Engine: e, Preamble: (&lineHeader{}).preamble(200 * time.Millisecond), Events: rec.record(Events{}), OnReject: rj.onReject}
			addr := startServer(t, srv)
			start := time.Now()
			nc := rawDial(t, addr)
			nc.Write([]byte(sent))
			got := rj.next(t)
			took := time.Since(start)
			if !errors.Is(got.err, ErrPreambleTimeout) || got.remote != nc.LocalAddr().String() {
				t.Errorf("sent %q: OnReject(%s, %v), want (%s, ErrPreambleTimeout)", sent, got.remote, got.err, nc.LocalAddr())
			}
			if want := fmt.Sprintf("only %d bytes of the line", len(sent)); !strings.Contains(got.err.Error(), want) {
				t.Errorf("sent %q: OnReject's error %q, want Parse's, saying %q", sent, got.err, want)
			}
			if took < 200*time.Millisecond || took > 200*time.Millisecond+waitTime/2 {
				t.Errorf("sent %q: refused after %v, want after the 200ms timeout", sent, took)
			}
			readEOF(t, nc)
			waitUntil(t, "Conns() to be 0", func() bool { return srv.Conns() == 0 })
			assertEvents(t, "server", rec.events(), nil)
		}
	})
}

// Allow refuses a peer at the accept, before a byte is read: what it sent
// is never shown to Parse.
func TestPreambleAllowRefuses(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		h := &lineHeader{calls: make(chan string, 4)}
		errNo := errors.New("not from there")
		pr := h.preamble(0)
		pr.Allow = func(remote net.Addr) error { return errNo }
		rj := newRejections()
		addr := startServer(t, &Server{Engine: e, Preamble: pr, OnReject: rj.onReject})
		nc := rawDial(t, addr)
		nc.Write([]byte("HELLO 192.0.2.7:40000\n"))
		if got := rj.next(t); got.err != errNo || got.remote != nc.LocalAddr().String() {
			t.Errorf("OnReject(%s, %v), want (%s, %v)", got.remote, got.err, nc.LocalAddr(), errNo)
		}
		io.ReadAll(nc) // the close; a reset if the server had not read what came
		select {
		case got := <-h.calls:
			t.Errorf("Parse was shown %s; want it never called for a refused peer", got)
		default:
		}
	})
}

// The peer's FIN before the preamble is whole: Parse decides with io.EOF.
func TestPreambleEOF(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rj := newRejections()
		addr := startServer(t, &Server{Engine: e, Preamble: (&lineHeader{}).preamble(0), OnReject: rj.onReject})
		nc := rawDial(t, addr)
		nc.Write([]byte("HELLO 19"))
		nc.CloseWrite()
		got := rj.next(t)
		if !errors.Is(got.err, io.EOF) || !strings.Contains(got.err.Error(), "only 8 bytes") {
			t.Errorf("OnReject(%s, %v), want Parse's error at io.EOF", got.remote, got.err)
		}
		readEOF(t, nc)
	})
}

// A Parse that keeps asking for more is cut at MaxPreamble bytes.
func TestPreambleTooLarge(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rj := newRejections()
		waitMore := &Preamble{Parse: func(p []byte, end error) (int, net.Addr, net.Addr, error) { return 0, nil, nil, end }}
		addr := startServer(t, &Server{Engine: e, Preamble: waitMore, OnReject: rj.onReject})
		nc := rawDial(t, addr)
		go nc.Write(make([]byte, MaxPreamble+1000)) // a reset may cut it short: the server stops reading
		if got := rj.next(t); got.err != ErrPreambleTooLarge {
			t.Errorf("OnReject(%s, %v), want ErrPreambleTooLarge", got.remote, got.err)
		}
	})
}

// Close cuts a connection reading its preamble without telling OnReject;
// Shutdown gives it FirstMessageGrace, then cuts it too.
func TestPreambleCutByCloseAndShutdown(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		for _, shutdown := range []bool{false, true} {
			h := &lineHeader{calls: make(chan string, 4)}
			rj := newRejections()
			srv := &Server{Engine: e, Preamble: h.preamble(time.Minute), OnReject: rj.onReject}
			addr := startServer(t, srv)
			nc := rawDial(t, addr)
			nc.Write([]byte("HEL"))
			<-h.calls
			if n := srv.Conns(); n != 1 {
				t.Errorf("Conns() = %d with one connection reading its preamble, want 1", n)
			}
			start := time.Now()
			if shutdown {
				if err := srv.Shutdown(context.Background()); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
				if took := time.Since(start); took < FirstMessageGrace || took > FirstMessageGrace+waitTime/2 {
					t.Errorf("Shutdown took %v, want about FirstMessageGrace", took)
				}
			} else {
				srv.Close()
			}
			readEOF(t, nc)
			waitUntil(t, "Conns() to be 0", func() bool { return srv.Conns() == 0 })
			if got := rj.all(); len(got) != 0 {
				t.Errorf("shutdown %v: OnReject(%s, %v) for a connection the server cut; want no call", shutdown, got[0].remote, got[0].err)
			}
		}
	})
}

// The preamble comes first, then Handshake, which reads what followed it
// and sees the preamble's address; the limits see it too.
func TestPreambleThenHandshake(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rec := newRecorder()
		rj := newRejections()
		srv := &Server{
			Engine:        e,
			MaxConnsPerIP: 1,
			Preamble:      (&lineHeader{}).preamble(0),
			Handshake: func(nc net.Conn) (net.Conn, error) {
				b := make([]byte, 3)
				if _, err := io.ReadFull(nc, b); err != nil || string(b) != "SYN" {
					return nil, fmt.Errorf("handshake read %q, %v", b, err)
				}
				return nc, nil
			},
			Events: rec.record(Events{
				OnConnect: func(c *Conn) { rec.add("from " + c.RemoteAddr().String()) },
				OnData:    func(c *Conn, p []byte) { c.Write(p) },
			}),
			OnReject: rj.onReject,
		}
		addr := startServer(t, srv)
		a := rawDial(t, addr)
		a.Write([]byte("HELLO 192.0.2.7:1\nSYNping"))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("client read %q, %v; want the echo of ping", buf, err)
		}
		rec.wait(t, "from 192.0.2.7:1")
		b := rawDial(t, addr) // the same claimed address: over MaxConnsPerIP
		b.Write([]byte("HELLO 192.0.2.7:2\nSYN"))
		if got := rj.next(t); got.err != ErrTooManyConnsFromIP || got.remote != "192.0.2.7:2" {
			t.Errorf("OnReject(%s, %v), want (192.0.2.7:2, ErrTooManyConnsFromIP)", got.remote, got.err)
		}
		readEOF(t, b)
	})
}
