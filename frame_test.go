package tcpkit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestSplit(t *testing.T) {
	len32 := func(s string) string {
		return string(binary.BigEndian.AppendUint32(nil, uint32(len(s)))) + s
	}
	tests := []struct {
		name    string
		f       Framing
		in      string
		max     int
		msg     string
		n       int
		wantErr error
	}{
		{"raw takes all", Raw, "abc", 10, "abc", 3, nil},
		{"line complete", Lines, "ab\ncd", 10, "ab\n", 3, nil},
		{"line incomplete", Lines, "abcd", 10, "", 0, nil},
		{"line at limit", Lines, "abcd\n", 4, "abcd\n", 5, nil},
		{"line over limit, complete", Lines, "abcde\n", 4, "", 0, ErrMessageTooLarge},
		{"line over limit, incomplete", Lines, "abcde", 4, "", 0, ErrMessageTooLarge},
		{"empty line", Lines, "\n", 4, "\n", 1, nil},
		{"len32 complete", Len32, len32("hello") + "x", 10, "hello", 9, nil},
		{"len32 short header", Len32, "\x00\x00", 10, "", 0, nil},
		{"len32 short body", Len32, len32("hello")[:6], 10, "", 0, nil},
		{"len32 empty", Len32, len32(""), 10, "", 4, nil},
		{"len32 over limit before body", Len32, "\xff\xff\xff\xff", 10, "", 0, ErrMessageTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, n, err := tt.f.split([]byte(tt.in), tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if string(msg) != tt.msg || n != tt.n {
				t.Errorf("split = %q, %d; want %q, %d", msg, n, tt.msg, tt.n)
			}
		})
	}
}

func TestParseFraming(t *testing.T) {
	for _, f := range []Framing{Raw, Lines, Len32} {
		if got, err := ParseFraming(f.String()); got != f || err != nil {
			t.Errorf("ParseFraming(%q) = %v, %v", f.String(), got, err)
		}
	}
	if _, err := ParseFraming("json"); err == nil {
		t.Errorf("ParseFraming(json) succeeded")
	}
}

// FuzzSplit checks that any input splits into messages that re-frame to
// the same bytes, without a panic or a message over the limit.
func FuzzSplit(f *testing.F) {
	f.Add(uint8(1), []byte("a\nbb\n\nccc"))
	f.Add(uint8(2), []byte("\x00\x00\x00\x03abc\x00\x00\x00\x00\x00\x00"))
	f.Add(uint8(2), []byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, kind uint8, in []byte) {
		fr := Framing(kind % 3)
		const max = 64
		var rebuilt []byte
		rest := in
		for len(rest) > 0 {
			msg, n, err := fr.split(rest, max)
			if err != nil {
				if !errors.Is(err, ErrMessageTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if n == 0 {
				break
			}
			if fr != Raw && len(msg) > max+1 {
				t.Fatalf("message of %d bytes over the limit %d", len(msg), max)
			}
			rebuilt, _ = fr.appendMessage(rebuilt, msg)
			rest = rest[n:]
		}
		if !bytes.Equal(append(rebuilt, rest...), in) {
			t.Fatalf("re-framed %q, want %q", append(rebuilt, rest...), in)
		}
	})
}

// Messages split across reads, and several in one read, reach OnData
// once each, whole; WriteMessage frames the replies.
func TestFramedMessagesOverTheWire(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		for _, fr := range []Framing{Lines, Len32} {
			t.Run(fr.String(), func(t *testing.T) {
				srvRec := newRecorder()
				addr := startServer(t, &Server{
					Engine: e,
					Events: srvRec.record(Events{OnData: func(c *Conn, p []byte) {
						c.WriteMessage(bytes.ToUpper(bytes.TrimSuffix(p, []byte("\n"))))
					}}),
					ConnOptions: ConnOptions{Framing: fr},
				})
				nc := rawDial(t, addr)
				var wire []byte
				for _, m := range []string{"one", "two", "three"} {
					wire, _ = fr.appendMessage(wire, []byte(m))
				}
				nc.Write(wire[:2]) // a message split across reads
				srvRec.wait(t, "connect")
				nc.Write(wire[2:]) // the rest of it, and two more in one read
				srvRec.waitN(t, "data "+framed(fr, "three"), 1)
				nc.CloseWrite()
				got, err := io.ReadAll(nc)
				if err != nil {
					t.Fatal(err)
				}
				var want []byte
				for _, m := range []string{"ONE", "TWO", "THREE"} {
					want, _ = fr.appendMessage(want, []byte(m))
				}
				if !bytes.Equal(got, want) {
					t.Errorf("replies %q, want %q", got, want)
				}
				srvRec.wait(t, "close false")
				assertEvents(t, "server", srvRec.events(), []string{"connect",
					"data " + framed(fr, "one"), "data " + framed(fr, "two"), "data " + framed(fr, "three"),
					"end", "close false"})
			})
		}
	})
}

// framed is what OnData receives for message m.
func framed(fr Framing, m string) string {
	if fr == Lines {
		return m + "\n"
	}
	return m
}

// An oversized message closes the connection with ErrMessageTooLarge
// before the server buffers it.
func TestOversizedMessageClosesConnection(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		srvRec := newRecorder()
		var gotErr error
		addr := startServer(t, &Server{
			Engine:      e,
			Events:      srvRec.record(Events{OnError: func(c *Conn, err error) { gotErr = err }}),
			ConnOptions: ConnOptions{Framing: Len32, MaxMessage: 1024},
		})
		nc := rawDial(t, addr)
		nc.Write([]byte{0, 0, 4, 1}) // 1025 bytes announced
		srvRec.wait(t, "close true")
		if !errors.Is(gotErr, ErrMessageTooLarge) {
			t.Errorf("error %v, want ErrMessageTooLarge", gotErr)
		}
	})
}

// A last line without its newline is delivered at the peer's FIN; a
// Len32 message cut short by the FIN is an error.
func TestMessageCutByFIN(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		for _, tt := range []struct {
			fr   Framing
			send string
			want []string
		}{
			{Lines, "a\nlast", []string{"connect", "data a\n", "data last", "end", "close false"}},
			{Len32, "\x00\x00\x00\x05ab", []string{"connect", "error", "close true"}},
		} {
			t.Run(tt.fr.String(), func(t *testing.T) {
				srvRec := newRecorder()
				addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{}), ConnOptions: ConnOptions{Framing: tt.fr}})
				nc := rawDial(t, addr)
				nc.Write([]byte(tt.send))
				nc.CloseWrite()
				srvRec.wait(t, tt.want[len(tt.want)-1])
				assertEvents(t, "server", srvRec.events(), tt.want)
			})
		}
	})
}
