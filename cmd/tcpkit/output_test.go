package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    string // "" when an error is wanted
		wantErr string // in the error
	}{
		{in: "5000", want: "localhost:5000"},
		{in: "1", want: "localhost:1"},
		{in: "65535", want: "localhost:65535"},
		{in: "127.0.0.1:7000", want: "127.0.0.1:7000"},
		{in: "example.com:80", want: "example.com:80"},
		{in: "[::1]:5000", want: "[::1]:5000"},
		{in: "[fe80::1%eth0]:5000", want: "[fe80::1%eth0]:5000"},
		{in: ":5000", want: ":5000"}, // the local system, as Go dials it
		{in: "0", wantErr: "port 0 is out of range"},
		{in: "65536", wantErr: "port 65536 is out of range"},
		{in: "99999", wantErr: "port 99999 is out of range"},
		{in: "-1", wantErr: "port -1 is out of range"},
		{in: "localhost:0", wantErr: "port 0 is out of range"},
		{in: "", wantErr: `"" is not a PORT or HOST:PORT`},
		{in: "abc", wantErr: `"abc" is not a PORT or HOST:PORT`},
		{in: "localhost:", wantErr: `"localhost:" is not a PORT or HOST:PORT`},
		{in: "localhost:http", wantErr: `"localhost:http" is not a PORT or HOST:PORT`},
		{in: "::1", wantErr: `"::1" is not a PORT or HOST:PORT`}, // IPv6 needs brackets
		{in: "[::1]", wantErr: `"[::1]" is not a PORT or HOST:PORT`},
		{in: "5000 ", wantErr: `"5000 " is not a PORT or HOST:PORT`},
		// A sign or leading zeros: messages show the port as a number.
		{in: "+5000", want: "localhost:5000"},
		{in: "05000", want: "localhost:5000"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTarget(tt.in)
			var ok bool
			if tt.wantErr != "" {
				ok = err != nil && strings.Contains(err.Error(), tt.wantErr)
			} else {
				ok = err == nil && got == tt.want
			}
			switch {
			case ok:
			case tt.wantErr != "":
				t.Errorf("parseTarget(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
			default:
				t.Errorf("parseTarget(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// text prints a chunk as the seed's console.log(data.toString()) does,
// but as one line: the expectations for invalid UTF-8 are what Node 20's
// Buffer.toString() returns for the same bytes.
func TestLineWriterText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the line, without its newline
	}{
		{name: "plain", in: "testing~", want: "testing~"},
		{name: "empty", in: "", want: ""},
		{name: "trailing newline", in: "testing~\n", want: "testing~"},
		{name: "only one newline dropped", in: "a\n\n", want: "a\n"},
		{name: "only a newline", in: "\n", want: ""},
		{name: "CRLF", in: "a\r\n", want: "a"},
		{name: "lone CR kept", in: "a\r", want: "a\r"},
		{name: "inner newline kept", in: "a\nb", want: "a\nb"},
		{name: "valid UTF-8", in: "héllo ✓ 😀 한국어", want: "héllo ✓ 😀 한국어"},
		{name: "invalid byte", in: "a\xffb", want: "a\uFFFDb"},
		{name: "lone continuation bytes", in: "\x80\x80", want: "\uFFFD\uFFFD"},
		{name: "surrogate", in: "\xed\xa0\x80", want: "\uFFFD\uFFFD\uFFFD"},
		{name: "overlong", in: "\xc0\xaf", want: "\uFFFD\uFFFD"},
		{name: "invalid then newline", in: "a\xff\n", want: "a\uFFFD"},
		// Node replaces a truncated sequence (the maximal subpart, as the
		// WHATWG decoder does) with one U+FFFD.
		{name: "truncated 3-byte", in: "\xe2\x82", want: "\uFFFD"},
		{name: "truncated 3-byte then A", in: "\xe2\x82A", want: "\uFFFDA"},
		{name: "truncated 4-byte", in: "x\xf0\x9f\x98", want: "x\uFFFD"},
		{name: "truncated 4-byte then valid", in: "\xf0\x9f\x98\xe2\x82\xac", want: "\uFFFD€"},
		{name: "bad second byte after E0", in: "\xe0\x80\x80", want: "\uFFFD\uFFFD\uFFFD"},
		{name: "above U+10FFFF", in: "\xf4\x90\x80\x80", want: "\uFFFD\uFFFD\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			w := newLineWriter(&b, lineOptions{})
			w.text("receive: ", []byte(tt.in))
			w.Close(waitFor)
			got, want := b.String(), "receive: "+tt.want+"\n"
			switch {
			case got == want:
			default:
				t.Errorf("text(%q): got %q, want %q", tt.in, got, want)
			}
		})
	}
}

func TestLineWriterLine(t *testing.T) {
	var b bytes.Buffer
	w := newLineWriter(&b, lineOptions{})
	w.line("connect address : ", "127.0.0.1:5000")
	w.line()
	w.line("a", "b", "c")
	w.Close(waitFor)
	if got, want := b.String(), "connect address : 127.0.0.1:5000\n\nabc\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Lines from many goroutines come out whole, each goroutine's in order,
// and Close writes them all, more than the writer holds at once.
func TestLineWriterConcurrent(t *testing.T) {
	const writers, lines = 8, 2000
	pad := strings.Repeat("x", 100) // 8*2000*~110 bytes: over maxPending
	var b bytes.Buffer
	w := newLineWriter(&b, lineOptions{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range lines {
				if j%2 == 0 {
					w.line(fmt.Sprintf("%d %d ", i, j), pad)
				} else {
					w.text(fmt.Sprintf("%d %d ", i, j), []byte(pad+"\n"))
				}
			}
		}()
	}
	wg.Wait()
	w.Close(waitFor)

	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("got %d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		var i, j int
		var rest string
		if n, _ := fmt.Sscanf(l, "%d %d %s", &i, &j, &rest); n != 3 || i < 0 || i >= writers || rest != pad {
			t.Fatalf("garbled line %q", l)
		}
		if j != next[i] {
			t.Fatalf("writer %d: got line %d, want line %d", i, j, next[i])
		}
		next[i]++
	}
}
