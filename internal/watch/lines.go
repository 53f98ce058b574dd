package watch

import (
	"io"
	"strings"
	"time"
)

// DefaultQueue is how many lines may wait for a slow output before lines
// are dropped.
const DefaultQueue = 4096

// A lineQueue writes lines to w on a goroutine of its own, so that a slow
// reader of them (a terminal scrolled back, a pipe nobody reads) never
// holds up the capture: when the queue is full, lines are dropped and
// counted, and once there is room again a line says how many.
//
// Put and close are called from one goroutine only.
type lineQueue struct {
	w       io.Writer
	ch      chan string
	done    chan struct{} // closed when the writer goroutine has returned
	pending int           // dropped since the last "not drawn" line
	dropped int           // dropped in all
}

func newLineQueue(w io.Writer, size int) *lineQueue {
	q := &lineQueue{w: w, ch: make(chan string, size), done: make(chan struct{})}
	go q.write()
	return q
}

// write writes what is queued, as many lines at once as are waiting.
func (q *lineQueue) write() {
	defer close(q.done)
	var b strings.Builder
	for line := range q.ch {
		b.Reset()
		b.WriteString(line)
		b.WriteByte('\n')
	more:
		for b.Len() < 64<<10 {
			select {
			case l, ok := <-q.ch:
				if !ok {
					break more
				}
				b.WriteString(l)
				b.WriteByte('\n')
			default:
				break more
			}
		}
		if _, err := io.WriteString(q.w, b.String()); err != nil {
			for range q.ch { // the reader is gone: count the rest as dropped
			}
			return
		}
	}
}

// put queues line, or drops it if the queue is full.
func (q *lineQueue) put(line string) {
	if q.pending > 0 {
		select {
		case q.ch <- q.notice():
			q.pending = 0
		default:
			q.pending++
			q.dropped++
			return
		}
	}
	select {
	case q.ch <- line:
	default:
		q.pending++
		q.dropped++
	}
}

// close lets the queued lines be written, waiting at most wait for them:
// it reports false if the output did not take them in that time.
func (q *lineQueue) close(wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	if q.pending > 0 {
		select {
		case q.ch <- q.notice():
		case <-t.C:
			close(q.ch)
			return false
		}
	}
	close(q.ch)
	select {
	case <-q.done:
		return true
	case <-t.C:
		return false
	}
}

// notice is the line that says how many lines were dropped.
func (q *lineQueue) notice() string {
	return "... " + itoa(q.pending) + " lines not drawn: the output was too slow (a --pcap file has every segment)"
}
