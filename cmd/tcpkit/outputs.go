package main

import (
	"errors"
	"io"
	"syscall"
	"time"
)

// outputGrace is the least time serve's output gets to be written when
// the server stops; what its reader has not taken by then is dropped, so
// that a stuck reader cannot keep the process from exiting.
const outputGrace = 200 * time.Millisecond

// outputs are serve's (and relay's) two streams, each written through a lineWriter that
// never holds the server up. Per-connection lines go to out; trace lines,
// status and notices to err, so that they keep their order there.
type outputs struct {
	out, err *lineWriter
}

// newOutputs wires serve's stdout and stderr. When stdout's reader cannot
// keep up, lines are dropped and stderr says so once; when it is gone
// (EPIPE: the pipe's reader exited, as "tcpkit serve | head -2" does),
// stderr says so and stop is called: the server drains and exits as on
// SIGTERM, rather than serving on with nowhere to report.
func newOutputs(stdout, stderr io.Writer, stop func()) *outputs {
	return newOutputsOf("serve", stdout, stderr, stop)
}

// newOutputsOf is newOutputs for the command cmd, which its notices name.
func newOutputsOf(cmd string, stdout, stderr io.Writer, stop func()) *outputs {
	o := &outputs{err: newLineWriter(stderr, lineOptions{drop: true, escape: isTerminal(stderr)})}
	o.out = newLineWriter(stdout, lineOptions{
		drop:   true,
		escape: isTerminal(stdout),
		onDrop: func() {
			counted := "counted in the last line"
			if cmd == "serve" {
				counted += ", and in tcpkit_output_dropped_lines_total with --metrics"
			}
			o.err.line("tcpkit " + cmd + ": standard output is not keeping up: lines are dropped until it does (" + counted + ")")
		},
		onBroken: func(err error) {
			why := err.Error()
			if errors.Is(err, syscall.EPIPE) {
				why = "its reader is gone (EPIPE)"
			}
			o.err.line("tcpkit "+cmd+": cannot write to standard output: ", why, "; stopping as on SIGTERM")
			stop()
		},
	})
	return o
}

// close writes what is left, giving stdout until deadline (and at least
// outputGrace) and stderr outputGrace more.
func (o *outputs) close(deadline time.Time) {
	o.out.Close(max(time.Until(deadline), outputGrace))
	o.err.Close(outputGrace)
}
