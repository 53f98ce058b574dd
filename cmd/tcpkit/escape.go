package main

import (
	"fmt"
	"strconv"
)

// unescape turns the escapes of --send and --expect into bytes: \n \r \t
// \\ \0 and \xHH. Any other backslash sequence is an error, so a typo
// does not silently send something else.
func unescape(s string) ([]byte, error) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		if i+1 == len(s) {
			return nil, fmt.Errorf("%q ends with a lone backslash", s)
		}
		i++
		switch s[i] {
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case '0':
			b = append(b, 0)
		case '\\':
			b = append(b, '\\')
		case 'x':
			if i+3 > len(s) {
				return nil, fmt.Errorf("%q: \\x needs two hex digits", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("%q: \\x needs two hex digits", s)
			}
			b = append(b, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("%q: unknown escape \\%c (use \\n \\r \\t \\\\ \\0 \\xHH)", s, s[i])
		}
	}
	return b, nil
}
