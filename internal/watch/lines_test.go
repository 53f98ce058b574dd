package watch

import (
	"strings"
	"testing"
	"time"
)

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
	// The writer holds one batch (at least line 0) and the queue up to 4
	// more: the rest were dropped.
	if q.dropped < 100-5 || q.dropped > 100-1 {
		t.Errorf("dropped %d of 100 with a queue of 4", q.dropped)
	}
	close(g.open)
	if !q.close(waitFor) {
		t.Fatal("the output did not take the queued lines after it was unblocked")
	}
	out := g.sink.String()
	notice := "... " + itoa(q.dropped) + " lines not drawn: the output was too slow (a --pcap file has every segment)\n"
	if !strings.HasPrefix(out, "line 0\n") || !strings.HasSuffix(out, notice) {
		t.Errorf("output:\n%s\nwant line 0 first, and last %q", out, notice)
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
