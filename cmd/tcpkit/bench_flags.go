package main

import (
	"fmt"
	"strconv"
	"strings"
)

// bench's own flag types.

// maxErrors is --max-errors: how many failed exchanges a run may have
// and still pass, as a count ("10") or a share of the exchanges
// attempted ("1%").
type maxErrors struct {
	n       int64
	percent float64 // used when isShare
	isShare bool
}

func (m *maxErrors) String() string {
	if m.isShare {
		return strconv.FormatFloat(m.percent, 'g', -1, 64) + "%"
	}
	return strconv.FormatInt(m.n, 10)
}

func (m *maxErrors) Set(s string) error {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 {
			return fmt.Errorf("%q: give a count, or a share from 0%% to 100%%", s)
		}
		*m = maxErrors{percent: v, isShare: true}
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("%q: give a count (0 or more), or a share such as 1%%", s)
	}
	*m = maxErrors{n: v}
	return nil
}

// allowed returns how many errors pass among attempts exchanges.
func (m *maxErrors) allowed(attempts int64) int64 {
	if m.isShare {
		return int64(m.percent / 100 * float64(attempts))
	}
	return m.n
}
