package bench

import (
	"math"
	"time"
)

// A schedule says when exchange slot i of an open loop is due, counted
// from the start of the load.
type schedule struct {
	from, to float64 // exchanges per second at the start and from the end of the ramp on
	ramp     float64 // the ramp's length in seconds; 0 for a constant rate
	perConn  bool    // each connection has its own schedule (RatePerConn)
	stagger  float64 // perConn: seconds between the connections' schedules
}

// newSchedule returns cfg's schedule, or nil for a closed loop.
func newSchedule(cfg *Config) *schedule {
	switch {
	case cfg.RateEnd > 0:
		return &schedule{from: cfg.Rate, to: cfg.RateEnd, ramp: cfg.rampLength().Seconds()}
	case cfg.Rate > 0:
		return &schedule{from: cfg.Rate, to: cfg.Rate}
	case cfg.RatePerConn > 0:
		// Spread the connections' schedules over one interval, so that
		// they do not all send at once.
		return &schedule{from: cfg.RatePerConn, to: cfg.RatePerConn, perConn: true, stagger: 1 / cfg.RatePerConn / float64(cfg.conns())}
	}
	return nil
}

// at returns when slot i (from 0) is due on connection w.
//
// On a ramp the rate at time t is from + (to-from)·t/ramp, so the number
// of exchanges due by t is N(t) = from·t + (to-from)·t²/(2·ramp); slot i
// is due when N(t) = i, the root of that quadratic. After the ramp the
// rate is to.
func (s *schedule) at(i int64, w int) time.Duration {
	n := float64(i)
	var t float64
	switch {
	case s.ramp == 0:
		t = n / s.to
	case n >= (s.from+s.to)/2*s.ramp: // after the ramp
		t = s.ramp + (n-(s.from+s.to)/2*s.ramp)/s.to
	case s.from == s.to:
		t = n / s.to
	default:
		k := (s.to - s.from) / s.ramp // the rate's slope, per second
		t = (math.Sqrt(s.from*s.from+2*k*n) - s.from) / k
	}
	if s.perConn {
		t += float64(w) * s.stagger
	}
	return time.Duration(t * float64(time.Second))
}
