package bench

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what a run measured. Its JSON form is the contract of
// "tcpkit bench --json": fields are added, never renamed.
type Result struct {
	Mode        string           `json:"mode"`
	Target      string           `json:"target"`
	Connections int              `json:"connections"`
	DurationS   float64          `json:"duration_s"` // the measured window, warmup excluded
	EndedBy     string           `json:"ended_by"`   // what ended the window: duration, count or signal
	Exchanges   int64            `json:"exchanges"`  // those issued in the window that succeeded
	RatePerS    float64          `json:"rate_per_s"`
	LatencyUS   Latency          `json:"latency_us"`
	ConnectUS   *Latency         `json:"connect_us,omitempty"` // oneshot and idle: connecting alone
	Errors      map[string]int64 `json:"errors"`               // kind → count; every kind present
	Bytes       *int64           `json:"bytes,omitempty"`      // stream: sent, or with --echo echoed
	BytesPerS   *float64         `json:"bytes_per_s,omitempty"`

	Held               int      `json:"held,omitempty"`                  // idle: connections still open at the end
	OpenS              float64  `json:"open_s,omitempty"`                // idle: how long opening them took
	ServerPID          int      `json:"server_pid,omitempty"`            // idle with --server-pid
	ServerRSSBeforeKiB int64    `json:"server_rss_before_kib,omitempty"` // before the first connection
	ServerRSSKiB       int64    `json:"server_rss_kib,omitempty"`        // with the connections held
	ServerKiBPerConn   *float64 `json:"server_kib_per_conn,omitempty"`   // absent when it cannot be read
	ServerExited       bool     `json:"server_exited,omitempty"`         // the process was gone at the end

	Kernel map[string]int64 `json:"kernel,omitempty"` // change of the system's TCP counters over the run

	WindowStartUnixNS int64 `json:"window_start_unix_ns"`
	WindowEndUnixNS   int64 `json:"window_end_unix_ns"`

	Series []Point `json:"series"` // one point a second

	// Histogram is the latency histogram (µs), HDR V2 compressed, base64:
	// what merge adds up.
	Histogram        string `json:"histogram"`
	ConnectHistogram string `json:"connect_histogram,omitempty"`
	Merged           int    `json:"merged,omitempty"` // how many results a merge combined

	first [numKinds]error // the first error of each kind; not in the JSON
}

// FirstError returns the first error of a kind ("refused", "timeout"...)
// the run met, or nil: for messages that say why. It is an *OpError.
func (res *Result) FirstError(kind string) error {
	for k, name := range kindNames {
		if name == kind {
			return res.first[k]
		}
	}
	return nil
}

// ErrorCount is the sum of Errors.
func (res *Result) ErrorCount() int64 {
	var n int64
	for _, c := range res.Errors {
		n += c
	}
	return n
}

// setServerMemory fills in the server's memory: its RSS before and with
// the connections held; the cost per connection only where it can be
// read (the process is there, connections were held, RSS did not shrink).
func (res *Result) setServerMemory(pid int, before, after int64, afterErr error, held int) {
	res.ServerPID, res.ServerRSSBeforeKiB = pid, before
	if afterErr != nil {
		res.ServerExited = true
		return
	}
	res.ServerRSSKiB = after
	if held > 0 && after >= before {
		per := float64(after-before) / float64(held)
		res.ServerKiBPerConn = &per
	}
}

// Latency is a latency distribution's summary, in microseconds.
type Latency struct {
	Min  int64 `json:"min"`
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

func summarize(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{h.Min(), h.ValueAtQuantile(50), h.ValueAtQuantile(90), h.ValueAtQuantile(99), h.ValueAtQuantile(99.9), h.Max()}
}

func encodeHist(h *hdr.Histogram) string {
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeHist(s string) (*hdr.Histogram, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return hdr.Decode(b)
}

// result builds the Result of a run whose measured window ended at end.
func (r *runner) result(end time.Time, kernel map[string]int64) *Result {
	total, connect, exchanges, bytes, errs := r.rec.totals()
	window := end.Sub(r.rec.start)
	res := &Result{
		Mode:              string(r.cfg.Mode),
		Target:            r.cfg.Addr,
		Connections:       r.cfg.conns(),
		DurationS:         window.Seconds(),
		Exchanges:         exchanges,
		LatencyUS:         summarize(total),
		Errors:            map[string]int64{},
		Kernel:            kernel,
		WindowStartUnixNS: r.rec.start.UnixNano(),
		WindowEndUnixNS:   end.UnixNano(),
		Series:            r.rec.series,
		Histogram:         encodeHist(total),
	}
	r.rec.mu.Lock()
	res.first = r.rec.first
	r.rec.mu.Unlock()
	for k, n := range errs {
		res.Errors[kindNames[k]] = n
	}
	if window > 0 {
		res.RatePerS = float64(exchanges) / window.Seconds()
	}
	if r.cfg.Mode == Stream {
		perS := 0.0
		if window > 0 {
			perS = float64(bytes) / window.Seconds()
		}
		res.Bytes, res.BytesPerS = &bytes, &perS
	}
	if connect.TotalCount() > 0 {
		l := summarize(connect)
		res.ConnectUS = &l
		res.ConnectHistogram = encodeHist(connect)
	}
	return res
}

// Merge combines results of runs made at the same time from several
// machines into one: counts and rates add up, histograms merge, so the
// percentiles are those of all exchanges together.
func Merge(results []*Result) (*Result, error) {
	if len(results) == 0 {
		return nil, errors.New("nothing to merge")
	}
	total, connect := newHist(), newHist()
	m := &Result{Mode: results[0].Mode, Target: results[0].Target, Errors: map[string]int64{}, Kernel: map[string]int64{}}
	for i, r := range results {
		if r.Mode != m.Mode {
			return nil, fmt.Errorf("result %d is mode %s, the first is %s: merge runs of one mode", i+1, r.Mode, m.Mode)
		}
		h, err := decodeHist(r.Histogram)
		if err != nil {
			return nil, fmt.Errorf("result %d: histogram: %w", i+1, err)
		}
		total.Merge(h)
		if r.ConnectHistogram != "" {
			if h, err := decodeHist(r.ConnectHistogram); err == nil {
				connect.Merge(h)
			}
		}
		for _, earlier := range results[:i] {
			if sameRun(earlier, r) {
				return nil, &SameRunError{A: indexOf(results, earlier), B: i}
			}
		}
		m.Connections += r.Connections
		m.Exchanges += r.Exchanges
		m.RatePerS += r.RatePerS
		m.Bytes = addPtr(m.Bytes, r.Bytes)
		m.BytesPerS = addPtr(m.BytesPerS, r.BytesPerS)
		m.Held += r.Held
		m.DurationS = max(m.DurationS, r.DurationS)
		for k, n := range r.Errors {
			m.Errors[k] += n
		}
		for k, n := range r.Kernel {
			m.Kernel[k] += n
		}
		if m.WindowStartUnixNS == 0 || r.WindowStartUnixNS < m.WindowStartUnixNS {
			m.WindowStartUnixNS = r.WindowStartUnixNS
		}
		m.WindowEndUnixNS = max(m.WindowEndUnixNS, r.WindowEndUnixNS)
		m.Series = mergeSeries(m.Series, r.Series)
		m.Merged += max(r.Merged, 1)
	}
	m.LatencyUS = summarize(total)
	m.Histogram = encodeHist(total)
	if connect.TotalCount() > 0 {
		l := summarize(connect)
		m.ConnectUS, m.ConnectHistogram = &l, encodeHist(connect)
	}
	return m, nil
}

// A SameRunError says that two results given to Merge, A and B (from
// 0), are one run: the same window and histogram. Merged, its counts
// would count twice.
type SameRunError struct{ A, B int }

func (e *SameRunError) Error() string {
	return fmt.Sprintf("results %d and %d are the same run", e.A+1, e.B+1)
}

func sameRun(a, b *Result) bool {
	return a.WindowStartUnixNS == b.WindowStartUnixNS && a.WindowEndUnixNS == b.WindowEndUnixNS &&
		a.Histogram == b.Histogram && a.Target == b.Target
}

func indexOf(results []*Result, r *Result) int {
	for i, x := range results {
		if x == r {
			return i
		}
	}
	return -1
}

func addPtr[T int64 | float64](sum, v *T) *T {
	if v == nil {
		return sum
	}
	n := *v
	if sum != nil {
		n += *sum
	}
	return &n
}

// mergeSeries adds b's points to a's, second by second. Counts add up;
// for the percentiles of a second only the worst is kept, since the
// seconds' histograms are not in the result.
func mergeSeries(a, b []Point) []Point {
	out := slices.Clone(a)
	for i, p := range b {
		if i >= len(out) {
			out = append(out, p)
			continue
		}
		q := &out[i]
		q.Exchanges += p.Exchanges
		q.Errors += p.Errors
		q.P50us, q.P99us, q.MaxUS = max(q.P50us, p.P50us), max(q.P99us, p.P99us), max(q.MaxUS, p.MaxUS)
	}
	return out
}

// ReadResult reads a --json result.
func ReadResult(r io.Reader) (*Result, error) {
	var res Result
	if err := json.NewDecoder(r).Decode(&res); err != nil {
		return nil, err
	}
	if res.Histogram == "" {
		return nil, errors.New("no histogram in it: is it a tcpkit bench --json result?")
	}
	return &res, nil
}

// WriteJSON writes res as one JSON object.
func (res *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// WriteText writes the summary a person reads, with units everywhere.
func (res *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %d connections to %s, %.2f s measured\n", res.Mode, res.Connections, res.Target, res.DurationS)
	if res.Merged > 1 {
		fmt.Fprintf(&b, "merged     %d results\n", res.Merged)
	}
	if res.Mode == string(Idle) {
		fmt.Fprintf(&b, "held       %d of %d connections (opening took %.2f s)\n", res.Held, res.Connections, res.OpenS)
		if res.ServerPID != 0 {
			fmt.Fprintf(&b, "server     %s\n", res.serverText())
		}
	} else {
		fmt.Fprintf(&b, "exchanges  %d (%.0f/s)\n", res.Exchanges, res.RatePerS)
	}
	if res.BytesPerS != nil {
		var all int64
		if res.Bytes != nil {
			all = *res.Bytes
		}
		fmt.Fprintf(&b, "throughput %s/s (%s in all)\n", byteCount(*res.BytesPerS), byteCount(float64(all)))
	}
	if res.Exchanges > 0 || res.Mode == string(Idle) {
		fmt.Fprintf(&b, "latency    %s\n", latencyText(res.LatencyUS))
	}
	if res.ConnectUS != nil && res.Mode != string(Idle) {
		fmt.Fprintf(&b, "connect    %s\n", latencyText(*res.ConnectUS))
	}
	fmt.Fprintf(&b, "errors     %s\n", countsText(res.Errors, "%s %d", "none"))
	if res.Kernel != nil {
		fmt.Fprintf(&b, "kernel     %s\n", countsText(res.Kernel, "%s %+d", "no TCP counter changed"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// serverText is the idle summary's server line: never a negative cost.
func (res *Result) serverText() string {
	delta := res.ServerRSSKiB - res.ServerRSSBeforeKiB
	switch {
	case res.ServerExited:
		return fmt.Sprintf("process %d was gone at the end: no memory to read", res.ServerPID)
	case res.ServerKiBPerConn != nil:
		return fmt.Sprintf("%.2f KiB per connection (RSS %d KiB, %+d KiB with %d held)", *res.ServerKiBPerConn, res.ServerRSSKiB, delta, res.Held)
	case res.Held == 0:
		return fmt.Sprintf("RSS %d KiB; no connection held, so no cost per connection", res.ServerRSSKiB)
	}
	return fmt.Sprintf("RSS %d KiB, %d KiB less than before: no cost per connection can be read (the server freed memory meanwhile)", res.ServerRSSKiB, -delta)
}

func latencyText(l Latency) string {
	return fmt.Sprintf("min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s",
		us(l.Min), us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
}

func us(v int64) string { return (time.Duration(v) * time.Microsecond).String() }

// countsText lists the non-zero counts, sorted by name.
func countsText(m map[string]int64, format, none string) string {
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf(format, k, m[k]))
		}
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, ", ")
}

func byteCount(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	div, exp := float64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", n/div, "KMGTPE"[exp])
}
