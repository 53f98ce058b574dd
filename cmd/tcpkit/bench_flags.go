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

// rateFlag is --rate: exchanges per second, "R", or "START:END" for a
// ramp from START to END.
type rateFlag struct {
	start, end float64 // end is 0 without a ramp
}

func (r *rateFlag) String() string {
	if r.end == 0 {
		if r.start == 0 {
			return ""
		}
		return strconv.FormatFloat(r.start, 'g', -1, 64)
	}
	return strconv.FormatFloat(r.start, 'g', -1, 64) + ":" + strconv.FormatFloat(r.end, 'g', -1, 64)
}

func (r *rateFlag) Set(s string) error {
	from, to, ramp := strings.Cut(s, ":")
	start, err := strconv.ParseFloat(from, 64)
	if err != nil || start < 0 {
		return fmt.Errorf("%q: give exchanges per second, such as 2000, or START:END for a ramp, such as 100:2000", s)
	}
	end := 0.0
	if ramp {
		if end, err = strconv.ParseFloat(to, 64); err != nil || end <= 0 {
			return fmt.Errorf("%q: a ramp's END must be a rate above 0, such as 100:2000", s)
		}
	}
	*r = rateFlag{start: start, end: end}
	return nil
}
