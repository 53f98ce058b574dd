package main

import (
	"strconv"
	"strings"
	"testing"
)

func TestEscapeUnescape(t *testing.T) {
	tests := []struct {
		in   string
		want string // when err is ""
		err  string // a part of the error, or "" for none
	}{
		{"", "", ""},
		{"plain text", "plain text", ""},
		{`PING\n`, "PING\n", ""},
		{`\r\n`, "\r\n", ""},
		{`a\tb`, "a\tb", ""},
		{`\\`, `\`, ""},
		{`\\n`, `\n`, ""}, // an escaped backslash, then a plain n
		{`\0`, "\x00", ""},
		{`a\0b`, "a\x00b", ""},
		{`\x00\x41\x7f\x80\xff`, "\x00A\x7f\x80\xff", ""},
		{`\xAb\xaB`, "\xab\xab", ""},
		{`\x414`, "A4", ""}, // exactly two digits
		{`\n\r\t\\\0\x20`, "\n\r\t\\\x00 ", ""},
		{"caf\u00e9 \xff", "caf\u00e9 \xff", ""}, // other bytes pass through
		{`\`, "", "ends with a lone backslash"},
		{`abc\`, "", "ends with a lone backslash"},
		{`\\\`, "", "ends with a lone backslash"},
		{`bad\q`, "", `unknown escape \q (use \n \r \t \\ \0 \xHH)`},
		{`\a`, "", `unknown escape \a`},
		{`\"`, "", `unknown escape \"`},
		{`\N`, "", `unknown escape \N`},
		{`\x`, "", `\x needs two hex digits`},
		{`\x4`, "", `\x needs two hex digits`},
		{`ab\x4`, "", `\x needs two hex digits`},
		{`\xg0`, "", `\x needs two hex digits`},
		{`\x0g`, "", `\x needs two hex digits`},
		{`\x-1`, "", `\x needs two hex digits`},
		{`\x+f`, "", `\x needs two hex digits`},
		{`\x_1`, "", `\x needs two hex digits`},
	}
	for _, tt := range tests {
		got, err := unescape(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("unescape(%q): unexpected error %v", tt.in, err)
		case tt.err == "" && string(got) != tt.want:
			t.Errorf("unescape(%q) = %q, want %q", tt.in, got, tt.want)
		case tt.err != "" && err == nil:
			t.Errorf("unescape(%q) = %q, want an error containing %q", tt.in, got, tt.err)
		case tt.err != "" && !strings.Contains(err.Error(), tt.err):
			t.Errorf("unescape(%q): error %q, want it to contain %q", tt.in, err, tt.err)
		case tt.err != "" && !strings.Contains(err.Error(), strconv.Quote(tt.in)):
			t.Errorf("unescape(%q): error %q, want it to quote the argument", tt.in, err)
		}
	}
}
