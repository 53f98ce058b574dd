// Package watch captures TCP segments and draws each connection as a
// ladder: the client on the left, the server on the right, one arrow per
// segment, with the 3-way handshake, the data, the 4-way close and the
// resets said in words. It is what `tcpkit watch` runs.
//
// A Source gives frames (Live captures them with AF_PACKET on Linux,
// OpenFile reads pcap and pcapng files); Decode finds the TCP segment in
// a frame; a Tracker turns segments into Steps; Text, WritePcap and
// WriteHTML draw them. Run wires them together.
package watch

import (
	"context"
	"errors"
	"io"
	"time"
)

// A Frame is one captured frame.
type Frame struct {
	Time    time.Time
	Link    LinkType
	Data    []byte // as captured; valid until the next call to Next
	OrigLen int    // the frame's length on the wire; 0 means len(Data)
}

// A Source gives captured frames one at a time. Next returns io.EOF at
// the end of a file; Close makes a Next in progress return. A Source
// with a method Drain (as Live has) is drained instead of closed when
// Run's context ends.
type Source interface {
	Next() (Frame, error)
	Close() error
}

// A drainer is a Source that can stop once it has given what it holds:
// when Run's context ends, the segments captured before are still drawn.
type drainer interface{ Drain() }

// Options say what Run draws and where.
type Options struct {
	// Port is the server's port: only segments to or from it are drawn.
	// Zero means every TCP segment.
	Port uint16
	// Out gets the ladder, one line per segment. Nil means none.
	Out io.Writer
	// Color colours each connection's lines with ANSI escapes.
	Color bool
	// Queue is how many lines may wait for a slow Out before lines are
	// dropped (and counted). Zero means DefaultQueue.
	Queue int
	// Pcap, if not nil, gets every segment drawn as a pcap file of raw IP
	// packets (link type 101), which tshark and Wireshark read.
	Pcap io.Writer
	// HTML, if not nil, gets a page with a ladder per connection, written
	// when Run ends. It holds the first MaxHTMLSteps segments.
	HTML io.Writer
	// OutWait is how long Run waits at its end for a slow Out to take the
	// queued lines. Zero means two seconds.
	OutWait time.Duration
}

// A Summary is what Run saw.
type Summary struct {
	Segments    int  // segments drawn
	Conns       int  // connections they belong to
	Dropped     int  // ladder lines not written: Out was too slow
	OutStuck    bool // Out had not taken every queued line when Run returned
	HTMLDropped int  // segments left out of the HTML page (over MaxHTMLSteps)
}

func (o Options) queue() int {
	if o.Queue > 0 {
		return o.Queue
	}
	return DefaultQueue
}

func (o Options) outWait() time.Duration {
	if o.OutWait > 0 {
		return o.OutWait
	}
	return 2 * time.Second
}

// Run draws the segments src gives until it ends (io.EOF) or ctx is
// done, then finishes the files. It closes src. The error is src's, or a
// file's; the end of src or of ctx is no error.
func Run(ctx context.Context, src Source, o Options) (Summary, error) {
	stop := context.AfterFunc(ctx, func() {
		if d, ok := src.(drainer); ok {
			d.Drain()
		} else {
			src.Close()
		}
	})
	defer stop()
	defer src.Close()

	var sum Summary
	var q *lineQueue
	if o.Out != nil {
		q = newLineQueue(o.Out, o.queue())
	}
	var pw *pcapWriter
	var err error
	if o.Pcap != nil {
		if pw, err = newPcapWriter(o.Pcap); err != nil {
			return sum, err
		}
	}
	var page *htmlPage
	if o.HTML != nil {
		page = &htmlPage{port: o.Port}
	}
	text := Text{Color: o.Color}
	tr := Tracker{Port: o.Port}

	for {
		f, nerr := src.Next()
		if nerr != nil {
			if ctx.Err() == nil && !errors.Is(nerr, io.EOF) {
				err = nerr
			}
			break
		}
		seg, derr := Decode(f.Link, f.Data)
		if derr != nil || o.Port != 0 && seg.Src.Port() != o.Port && seg.Dst.Port() != o.Port {
			continue
		}
		seg.Time = f.Time
		if pw != nil {
			if werr := pw.write(seg, f); werr != nil {
				err = werr
				break
			}
		}
		st := tr.Add(seg)
		sum.Segments++
		sum.Conns = max(sum.Conns, st.Conn)
		if q != nil {
			for _, l := range text.Lines(st) {
				q.put(l)
			}
		}
		if page != nil {
			page.add(st)
		}
	}

	if pw != nil {
		if ferr := pw.flush(); ferr != nil && err == nil {
			err = ferr
		}
	}
	if page != nil {
		sum.HTMLDropped = page.dropped
		if herr := page.write(o.HTML); herr != nil && err == nil {
			err = herr
		}
	}
	if q != nil {
		sum.OutStuck = !q.close(o.outWait())
		sum.Dropped = q.dropped
	}
	return sum, err
}
