package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A Dir is a direction bytes flow in through a pair.
type Dir uint8

const (
	Up   Dir = iota // from the client to the target
	Down            // from the target to the client
)

func (d Dir) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// The kinds of toxic, as toxiproxy has them (its names in brackets).
const (
	Latency   = "latency"     // delay each chunk by Latency, give or take Jitter [latency]
	Bandwidth = "bandwidth"   // at most Rate bytes per second [bandwidth]
	Slice     = "slice"       // cut chunks into Size-byte segments, Delay apart [slicer]
	ResetAt   = "reset_after" // reset both sides after Bytes bytes, or After [reset_peer]
	Stall     = "stall"       // hold the bytes; end both sides After (0: never) [timeout]
	LimitData = "limit_data"  // end both sides after Bytes bytes [limit_data]
	SlowClose = "slow_close"  // hold the FIN for Delay [slow_close]
)

// toxicTypes are the kinds, in the order the docs list them.
var toxicTypes = []string{Latency, Bandwidth, Slice, ResetAt, Stall, LimitData, SlowClose}

// A Toxic is a fault a relay adds to its pairs' bytes, in one direction
// or both. It is what the control API lists, adds and removes, as JSON.
// Only the fields of its Type may be set.
type Toxic struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Direction string   `json:"direction"`         // up (client to target), down, or both
	Latency   Duration `json:"latency,omitempty"` // latency
	Jitter    Duration `json:"jitter,omitempty"`  // latency: each delay is Latency ± up to Jitter
	Rate      int64    `json:"rate,omitempty"`    // bandwidth: bytes per second
	Size      int      `json:"size,omitempty"`    // slice: bytes per segment
	Delay     Duration `json:"delay,omitempty"`   // slice: between segments; slow_close: before the FIN
	Bytes     int64    `json:"bytes,omitempty"`   // reset_after, limit_data: after this many bytes
	After     Duration `json:"after,omitempty"`   // reset_after: this long after the pair opened; stall: end both sides this long after it began (0: never)
}

// validName reports whether name is 1 to 64 ASCII letters, digits, -
// and _: it goes into URLs and log lines, where nothing a control
// client sends may become a path or a terminal's escape sequence.
func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// applies reports whether t acts on bytes going in direction d.
func (t *Toxic) applies(d Dir) bool {
	return t.Direction == "both" || t.Direction == d.String()
}

// Check fills in the defaults (Direction both, Name TYPE_DIRECTION) and
// reports, in one line that says what to do, what is wrong with t.
func (t *Toxic) Check() error {
	if !slices.Contains(toxicTypes, t.Type) {
		return fmt.Errorf("unknown toxic type %q: use %s", t.Type, strings.Join(toxicTypes, ", "))
	}
	switch t.Direction {
	case "":
		t.Direction = "both"
	case "up", "down", "both":
	default:
		return fmt.Errorf("direction %q: use up (client to target), down (target to client) or both", t.Direction)
	}
	if t.Name == "" {
		t.Name = t.Type + "_" + t.Direction
	}
	if !validName(t.Name) {
		return fmt.Errorf("toxic name %q: use up to 64 letters, digits, - and _", t.Name)
	}
	var set []string // the attributes given
	for _, a := range []struct {
		name string
		on   bool
	}{{"latency", t.Latency != 0}, {"jitter", t.Jitter != 0}, {"rate", t.Rate != 0}, {"size", t.Size != 0},
		{"delay", t.Delay != 0}, {"bytes", t.Bytes != 0}, {"after", t.After != 0}} {
		if a.on {
			set = append(set, a.name)
		}
	}
	allowed := map[string][]string{
		Latency: {"latency", "jitter"}, Bandwidth: {"rate"}, Slice: {"size", "delay"}, ResetAt: {"bytes", "after"},
		Stall: {"after"}, LimitData: {"bytes"}, SlowClose: {"delay"},
	}[t.Type]
	for _, a := range set {
		if !slices.Contains(allowed, a) {
			return fmt.Errorf("a %s toxic has no %q: give %s", t.Type, a, strings.Join(allowed, " or "))
		}
	}
	switch {
	case t.Latency < 0 || t.Jitter < 0 || t.Rate < 0 || t.Size < 0 || t.Delay < 0 || t.Bytes < 0 || t.After < 0:
		return fmt.Errorf("%s: durations and sizes must not be negative", t.Name)
	case t.Type == Latency && t.Latency == 0:
		return fmt.Errorf("%s: give the latency, such as 50ms", t.Name)
	case t.Type == Latency && t.Jitter > t.Latency:
		return fmt.Errorf("%s: jitter %v is over the latency %v: a delay cannot be negative", t.Name, t.Jitter, t.Latency)
	case t.Type == Bandwidth && t.Rate == 0:
		return fmt.Errorf("%s: give the rate in bytes per second, such as 1048576", t.Name)
	case t.Type == Slice && t.Size == 0:
		return fmt.Errorf("%s: give the segment size in bytes, such as 64", t.Name)
	case t.Type == ResetAt && (t.Bytes == 0) == (t.After == 0):
		return fmt.Errorf("%s: give bytes (reset after that many) or after (a duration), one of the two", t.Name)
	case t.Type == LimitData && t.Bytes == 0:
		return fmt.Errorf("%s: give the bytes to let through, such as 1000", t.Name)
	case t.Type == SlowClose && t.Delay == 0:
		return fmt.Errorf("%s: give the delay before the FIN, such as 1s", t.Name)
	}
	return nil
}

// ParseFlag makes a toxic of type typ from a flag's value:
// [up:|down:]VALUE[,KEY=VALUE...], where VALUE is the toxic's main
// attribute (a duration, a byte count or a rate) and the keys are its
// others: --latency down:50ms,jitter=10ms.
func ParseFlag(typ, s string) (Toxic, error) {
	t := Toxic{Type: typ, Direction: "both"}
	if d, rest, ok := strings.Cut(s, ":"); ok && (d == "up" || d == "down") {
		t.Direction, s = d, rest
	}
	main, extra, _ := strings.Cut(s, ",")
	if main == "" {
		return t, fmt.Errorf("%q: give a value, as in %s", s, flagExample[typ])
	}
	var err error
	switch typ {
	case Latency:
		err = t.Latency.parse(main)
	case Bandwidth:
		t.Rate, err = ParseBytes(main)
	case Slice:
		var n int64
		n, err = ParseBytes(main)
		t.Size = int(n)
	case ResetAt:
		if n, berr := ParseBytes(main); berr == nil {
			t.Bytes = n
		} else if err = t.After.parse(main); err != nil {
			err = fmt.Errorf("%q is neither a byte count nor a duration", main)
		}
	case Stall:
		err = t.After.parse(main)
	case LimitData:
		t.Bytes, err = ParseBytes(main)
	case SlowClose:
		err = t.Delay.parse(main)
	default:
		return t, fmt.Errorf("unknown toxic type %q", typ)
	}
	if err != nil {
		return t, fmt.Errorf("%v: use, say, %s", err, flagExample[typ])
	}
	for _, kv := range strings.Split(extra, ",") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case typ == Latency && k == "jitter":
			err = t.Jitter.parse(v)
		case typ == Slice && k == "delay":
			err = t.Delay.parse(v)
		default:
			return t, fmt.Errorf("%q: unknown setting %q, use, say, %s", s, k, flagExample[typ])
		}
		if err != nil {
			return t, fmt.Errorf("%s=%v", k, err)
		}
	}
	return t, t.Check()
}

// flagExample shows each toxic flag's value.
var flagExample = map[string]string{
	Latency:   "50ms or down:50ms,jitter=10ms",
	Bandwidth: "1048576 (bytes per second) or up:64KiB",
	Slice:     "64 or down:64,delay=1ms",
	ResetAt:   "1000 (bytes) or 2s",
	Stall:     "5s, or 0 to hold for ever",
	LimitData: "1000 (bytes)",
	SlowClose: "1s",
}

// ParseBytes parses a byte count: a whole number, or one with a binary
// unit: 64KiB, 1MiB, 1GiB.
func ParseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a byte count", s)
	}
	return n * mult, nil
}

// A Duration is a time.Duration that JSON writes and reads as a string:
// "50ms".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`durations are strings with a unit, such as "50ms"`)
	}
	return d.parse(s)
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (50ms, 2s)", s)
	}
	*d = Duration(v)
	return nil
}

// Toxics is the set of toxics a relay applies: what the flags set at
// start, and what the control API adds and removes while it runs. It is
// safe for concurrent use.
type Toxics struct {
	mu       sync.Mutex
	list     []Toxic                     // in the order added
	onChange func()                      // the relay's: apply to the open pairs; under mu
	snap     atomic.Pointer[[2][]*Toxic] // by Dir, made on each change: read without mu
}

// List returns the toxics, in the order they were added.
func (ts *Toxics) List() []Toxic {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.list)
}

// ErrExists and ErrNoToxic are Add's and Remove's errors.
var (
	ErrExists  = errors.New("a toxic of that name exists: remove it first, or give another name")
	ErrNoToxic = errors.New("no toxic of that name")
)

// Add checks t and adds it; it acts on the pairs open now and those to
// come.
func (ts *Toxics) Add(t Toxic) (Toxic, error) {
	if err := t.Check(); err != nil {
		return t, err
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if slices.ContainsFunc(ts.list, func(x Toxic) bool { return x.Name == t.Name }) {
		return t, fmt.Errorf("%s: %w", t.Name, ErrExists)
	}
	ts.list = append(ts.list, t)
	ts.changedLocked()
	return t, nil
}

// Remove removes the toxic named name. What it held back goes on.
func (ts *Toxics) Remove(name string) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	i := slices.IndexFunc(ts.list, func(x Toxic) bool { return x.Name == name })
	if i < 0 {
		return fmt.Errorf("%s: %w", name, ErrNoToxic)
	}
	ts.list = slices.Delete(ts.list, i, i+1)
	ts.changedLocked()
	return nil
}

func (ts *Toxics) changedLocked() {
	var snap [2][]*Toxic
	for _, d := range []Dir{Up, Down} {
		for i := range ts.list {
			if ts.list[i].applies(d) {
				t := ts.list[i] // a copy: the list may change under the pairs
				snap[d] = append(snap[d], &t)
			}
		}
	}
	ts.snap.Store(&snap)
	if ts.onChange != nil {
		ts.onChange()
	}
}

// forDir returns the toxics acting on direction d, as of now: one atomic
// load, so that a relay with none pays nothing more per chunk.
func (ts *Toxics) forDir(d Dir) []*Toxic {
	if ts == nil {
		return nil
	}
	if s := ts.snap.Load(); s != nil {
		return s[d]
	}
	return nil
}
