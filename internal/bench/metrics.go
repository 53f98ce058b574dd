package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to a minute, to three
// significant digits: a fixed-size histogram, whatever the run's length.
const (
	lowestUS  = 1
	highestUS = 60_000_000
	sigFigs   = 3
)

func newHist() *hdr.Histogram { return hdr.New(lowestUS, highestUS, sigFigs) }

// An errKind is how an exchange failed.
type errKind int

const (
	errRefused    errKind = iota // nothing listening, or the backlog is full
	errReset                     // ECONNRESET or EPIPE
	errTimeout                   // connecting, sending or the reply took too long, or the run ended first
	errWrongReply                // the reply was not what --expect and its kin say
	errClosed                    // the server closed before the reply was complete
	errFDLimit                   // EMFILE or ENFILE: out of file descriptors
	errOther
	numKinds
)

var kindNames = [numKinds]string{"refused", "reset", "timeout", "wrong_reply", "closed", "emfile", "other"}

// An OpError is how one exchange failed: the step, and its cause.
type OpError struct {
	// Op is "connect", "send", "reply", "echo" (stream: the echo fell
	// short), "hold" (idle: the server ended a held connection) or "end"
	// (still in flight when the drain after the run ended).
	Op  string
	Err error
}

func (e *OpError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// errTimedOut is the cause of a timeout the generator itself measured.
var errTimedOut = timeoutError{}

func classify(err error) errKind {
	var ne net.Error
	var wrong *WrongReply
	switch {
	case errors.As(err, &wrong):
		return errWrongReply
	case errors.Is(err, syscall.ECONNREFUSED):
		return errRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return errReset
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return errFDLimit
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errClosed
	}
	return errOther
}

// timeoutError is a timeout that the generator measured itself.
type timeoutError struct{}

func (timeoutError) Error() string   { return "timed out" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// A shard holds the measurements of some of the workers. Workers record
// into shards rather than one shared place, to keep lock contention low,
// and not into one each, to keep memory fixed (a histogram is ~140 KiB).
type shard struct {
	mu        sync.Mutex
	total     *hdr.Histogram // the whole measured window
	interval  *hdr.Histogram // since the last tick
	connect   *hdr.Histogram // oneshot: connect latency
	exchanges int64
	bytes     int64
	errors    [numKinds]int64
	_         [64]byte // keep shards' locks on separate cache lines
}

// A recorder collects the measurements of a run.
type recorder struct {
	shards    []shard
	measuring atomic.Bool // true while the window is open: exchanges get a seq, bytes count
	start     time.Time   // when measuring began

	mu     sync.Mutex
	first  [numKinds]error // the first error of each kind, for the messages
	series []Point
	last   Point          // the latest tick, for the progress line
	second *hdr.Histogram // reused by tick: a histogram is ~140 KiB
}

func newRecorder() *recorder {
	r := &recorder{shards: make([]shard, 4*runtime.GOMAXPROCS(0))}
	for i := range r.shards {
		s := &r.shards[i]
		s.total, s.interval, s.connect = newHist(), newHist(), newHist()
	}
	return r
}

func (r *recorder) shard(worker int) *shard { return &r.shards[worker%len(r.shards)] }

// record counts exchange seq, which took lat (and connecting, connect).
// seq is 0 for the exchanges of the warmup, which are not counted; an
// exchange issued in the measured window counts whenever it ends.
func (r *recorder) record(worker int, seq int64, lat, connect time.Duration) {
	if seq == 0 {
		return
	}
	us := max(lat.Microseconds(), lowestUS)
	s := r.shard(worker)
	s.mu.Lock()
	s.total.RecordValue(us)
	s.interval.RecordValue(us)
	if connect > 0 {
		s.connect.RecordValue(max(connect.Microseconds(), lowestUS))
	}
	s.exchanges++
	s.mu.Unlock()
}

// addBytes counts streamed bytes.
func (r *recorder) addBytes(worker int, n int) {
	if !r.measuring.Load() {
		return
	}
	s := r.shard(worker)
	s.mu.Lock()
	s.bytes += int64(n)
	s.mu.Unlock()
}

// fail counts a failed exchange, seq as in record.
func (r *recorder) fail(worker int, seq int64, err error) {
	if seq == 0 {
		return
	}
	k := classify(err)
	s := r.shard(worker)
	s.mu.Lock()
	s.errors[k]++
	firstHere := s.errors[k] == 1
	s.mu.Unlock()
	if firstHere {
		r.mu.Lock()
		if r.first[k] == nil {
			r.first[k] = err
		}
		r.mu.Unlock()
	}
}

// connectSeq is the seq to count a failed connect with: counted while
// the window is open, not in the warmup nor during the drain.
func (r *recorder) connectSeq() int64 {
	if r.measuring.Load() {
		return 1
	}
	return 0
}

// A Point is one second of a run: for the report's latency-over-time chart.
type Point struct {
	T         float64 `json:"t"` // seconds since measuring began
	Exchanges int64   `json:"exchanges"`
	Errors    int64   `json:"errors"`
	P50us     int64   `json:"p50_us"`
	P99us     int64   `json:"p99_us"`
	MaxUS     int64   `json:"max_us"`
}

// tick closes the current interval into a Point.
func (r *recorder) tick(now time.Time) Point {
	if r.second == nil {
		r.second = newHist()
	}
	h := r.second
	h.Reset()
	var p Point
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		h.Merge(s.interval)
		s.interval.Reset()
		for _, n := range s.errors {
			p.Errors += n
		}
		s.mu.Unlock()
	}
	p.T = now.Sub(r.start).Seconds()
	p.Exchanges = h.TotalCount()
	if p.Exchanges > 0 {
		p.P50us, p.P99us, p.MaxUS = h.ValueAtQuantile(50), h.ValueAtQuantile(99), h.Max()
	}
	r.mu.Lock()
	if n := len(r.series); n > 0 { // errors are cumulative in the shards
		p.Errors -= r.errorsSoFar()
	}
	r.series = append(r.series, p)
	r.last = p
	r.mu.Unlock()
	return p
}

func (r *recorder) errorsSoFar() int64 {
	var n int64
	for _, p := range r.series {
		n += p.Errors
	}
	return n
}

// totals sums the shards.
func (r *recorder) totals() (total, connect *hdr.Histogram, exchanges, bytes int64, errs [numKinds]int64) {
	total, connect = newHist(), newHist()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		total.Merge(s.total)
		connect.Merge(s.connect)
		exchanges += s.exchanges
		bytes += s.bytes
		for k, n := range s.errors {
			errs[k] += n
		}
		s.mu.Unlock()
	}
	return
}
