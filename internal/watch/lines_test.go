package watch

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor bounds every wait of these tests.
const waitFor = 5 * time.Second

// lineSink collects Run's output and lets a test wait for a line.
type lineSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLineSink() *lineSink { return &lineSink{changed: make(chan struct{})} }

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *lineSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// wait waits until the output contains want.
func (s *lineSink) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, changed := strings.Contains(s.buf.String(), want), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %q in the ladder within %v:\n%s", want, waitFor, s.String())
		}
	}
}

// gateWriter blocks every Write until open is closed.
type gateWriter struct {
	open chan struct{}
	sink *lineSink
}

func (g gateWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.sink.Write(p)
}

// A stuck output never holds up put: the lines that do not fit are
// counted, and once the output moves again a line says how many.
func TestLineQueueDropsWhenStuck(t *testing.T) {
	g := gateWriter{open: make(chan struct{}), sink: newLineSink()}
	q := newLineQueue(g, 4)
	start := time.Now()
	for i := range 100 {
		q.put("line " + itoa(i))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100 puts into a stuck output took %v", d)
	}
	// The writer holds one batch (line 0, and whatever else was put
	// before it woke) and the queue up to 4 more: the rest were dropped.
	// How many the first batch took depends on when the writer woke; that
	// every line is written or counted is checked below.
	if q.dropped < 1 || q.dropped > 100-1 {
		t.Errorf("dropped %d of 100 with a queue of 4", q.dropped)
	}
	close(g.open)
	if !q.close(waitFor) {
		t.Fatal("the output did not take the queued lines after it was unblocked")
	}
	// Every line is either written, in order, or counted by a notice.
	lines := strings.Split(strings.TrimSuffix(g.sink.String(), "\n"), "\n")
	notice := regexp.MustCompile(`^\.\.\. (\d+) lines not drawn: the output was too slow \(a --pcap file has every segment\)$`)
	written, counted, last := 0, 0, -1
	for _, l := range lines {
		if m := notice.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			counted += n
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(l, "line "))
		if err != nil || n <= last {
			t.Fatalf("line %q out of place in:\n%s", l, strings.Join(lines, "\n"))
		}
		last = n
		written++
	}
	if lines[0] != "line 0" || counted != q.dropped || written+counted != 100 {
		t.Errorf("%d lines written, %d counted as dropped (%d dropped), want line 0 first and all 100 accounted for:\n%s",
			written, counted, q.dropped, strings.Join(lines, "\n"))
	}
}

// close gives up on an output that never moves, and says so.
func TestLineQueueCloseGivesUp(t *testing.T) {
	g := gateWriter{open: make(chan struct{}), sink: newLineSink()}
	q := newLineQueue(g, 4)
	q.put("stuck")
	if q.close(50 * time.Millisecond) {
		t.Error("close reported the lines written, but the output never took them")
	}
	close(g.open) // let the writer goroutine end
	<-q.done
}
